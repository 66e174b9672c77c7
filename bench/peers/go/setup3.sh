#!/usr/bin/env bash
# Builds the second Go peer, target/peers/gobench3: bench/peers/go/main.go (the same source as
# target/peers/gobench) against go-dqlite 3.0.x from Debian forky (testing), with forky's Go
# toolchain, without touching the system and without the Go module proxy:
#
#   1. a private apt configuration for forky (scripts/private-apt.sh) resolves the closure of
#      golang-go and golang-github-canonical-go-dqlite-dev (Depends and Pre-Depends), of
#      which only the Go toolchain (golang-go, golang-src, golang-1.NN-go, golang-1.NN-src)
#      and the golang-*-dev source packages are kept: the C libraries the closure also names
#      (libdqlite-dev and below) serve go-dqlite's cgo node bindings, which the peer does not
#      import (it uses the client and driver packages only, pure Go);
#   2. the .debs are unpacked with dpkg -x under target/peers/forky-go/root;
#   3. main.go is built in GOPATH mode: GOROOT the unpacked usr/lib/go-1.NN, GOPATH the
#      unpacked usr/share/gocode, GO111MODULE=off, GOTOOLCHAIN=local, GOCACHE
#      target/peers/gocache3, with the build tag nosqlite3. The client package's
#      DatabaseNodeStore (which the peer does not use) imports go-sqlite3, a cgo package
#      linking the system's libsqlite3; go-dqlite's nosqlite3 tag leaves it out, so the build
#      needs neither libsqlite3-dev nor forky's sqlite3 headers. cgo otherwise stays at Go's
#      default (on when a C compiler is there, for the net package's resolver), as for the
#      other Go peer; nothing the peer runs goes through C.
#
# go-dqlite 3's go.mod names the module github.com/canonical/go-dqlite/v3 and its packages
# import each other by /v3/ paths, but Debian unpacks it at the unversioned
# src/github.com/canonical/go-dqlite. GOPATH mode resolves such imports itself (code under a
# go.mod that imports x/v3/p, where x/go.mod says module x/v3, reads x/p), so main.go keeps
# its unversioned imports and compiles unchanged against 1.11.x and 3.0.x.
#
# Result: target/peers/gobench3, and target/peers/gobench3.VERSION with the Debian version of
# golang-github-canonical-go-dqlite-dev and the Go version (`go version`). The binary reports
# go_dqlite_version (the upstream version, e.g. 3.0.4) and go_version in its JSON line.
# apt's lists and the .debs stay in target/peers/forky-go-apt.
# Idempotent: with the root unpacked and the binary newer than main.go, it only reports; a
# changed main.go is rebuilt without fetching again. FORCE=1 fetches and builds everything.
# Usage: bash bench/peers/go/setup3.sh   (then: target/peers/gobench3 -cluster A,B,C ...)
set -euo pipefail
cd "$(dirname "$0")/../../.."
source scripts/private-apt.sh

peers="$PWD/target/peers"
apt_dir="$peers/forky-go-apt"
prefix="$peers/forky-go"
root="$prefix/root"
gopath="$root/usr/share/gocode"
bin="$peers/gobench3"
version_file="$peers/gobench3.VERSION"
src=bench/peers/go/main.go
self="$PWD/bench/peers/go/setup3.sh"
keyring=/usr/share/keyrings/debian-archive-keyring.gpg

die() {
  echo "setup3.sh: error: $*" >&2
  exit 1
}
trap 'echo "setup3.sh: error: command failed (line $LINENO): $BASH_COMMAND" >&2' ERR

report() {
  echo "go-dqlite peer ($(paste -sd, "$version_file" | sed 's/,/, /g')): $bin"
}

# The unpacked Go toolchain (usr/lib/go-1.NN), empty when there is none.
goroot() {
  local d
  for d in "$root"/usr/lib/go-1.*; do
    [ -x "$d/bin/go" ] && echo "$d" && return 0
  done
  return 0
}

unpacked() {
  [ -s "$prefix/PACKAGES" ] && [ -n "$(goroot)" ] &&
    [ -f "$gopath/src/github.com/canonical/go-dqlite/go.mod" ]
}

built() {
  [ -x "$bin" ] && [ -s "$version_file" ] && [ "$bin" -nt "$src" ] && [ "$bin" -nt "$self" ]
}

if [ "${FORCE:-0}" != 1 ] && unpacked && built; then
  report
  exit 0
fi

if [ "${FORCE:-0}" = 1 ] || ! unpacked; then
  [ "$(uname -m)" = x86_64 ] || die "only x86_64 is handled (forky amd64 packages), not $(uname -m)"
  for tool in apt-get apt-cache dpkg dpkg-deb; do
    command -v "$tool" >/dev/null 2>&1 || die "$tool is needed (Debian or a derivative)"
  done
  [ -r "$keyring" ] || die "$keyring is missing (apt-get install debian-archive-keyring)"

  # 1. The private forky configuration, the closure, the download.
  private_apt "$apt_dir" forky "$keyring" || die "apt-get update of the private forky sources failed"
  mapfile -t packages < <(
    apt-cache "${apt_opts[@]}" depends --recurse --no-recommends --no-suggests \
      --no-conflicts --no-breaks --no-replaces --no-enhances \
      golang-go golang-github-canonical-go-dqlite-dev |
      grep -v '^[ <]' | sort -u |
      grep -E '^golang-(go|src|[0-9]+\.[0-9]+-(go|src)|.+-dev)$'
  )
  printf '%s\n' "${packages[@]}" | grep -qx golang-github-canonical-go-dqlite-dev ||
    die "forky: apt-cache depends did not resolve golang-github-canonical-go-dqlite-dev"
  rm -f "$apt_dir"/debs/*.deb
  echo "forky: downloading ${#packages[@]} packages: ${packages[*]}"
  (cd "$apt_dir/debs" && apt-get "${apt_opts[@]}" -qq download "${packages[@]}") ||
    die "apt-get download from forky failed"

  # 2. Unpack into a fresh private root and record what was unpacked.
  rm -rf "$prefix"
  mkdir -p "$root"
  : >"$prefix/PACKAGES"
  for deb in "$apt_dir"/debs/*.deb; do
    dpkg -x "$deb" "$root" || die "dpkg -x $deb failed"
    dpkg-deb -f "$deb" Package Version | paste -sd= - | sed 's/^Package: //; s/=Version: /=/' \
      >>"$prefix/PACKAGES"
  done
  unpacked || die "forky: the Go toolchain or go-dqlite is missing after unpacking"
fi

# 3. The build.
goroot=$(goroot)
gotool() {
  env -u GOFLAGS -u GOBIN GOROOT="$goroot" GOPATH="$gopath" GO111MODULE=off GOTOOLCHAIN=local \
    GOCACHE="$peers/gocache3" "$goroot/bin/go" "$@"
}
debian_version=$(sed -n 's/^golang-github-canonical-go-dqlite-dev=//p' "$prefix/PACKAGES")
upstream=${debian_version#*:}
upstream=${upstream%-*}
upstream=${upstream%%[+~]*}
[[ "$upstream" =~ ^[0-9]+\.[0-9]+\.[0-9]+$ ]] || die "cannot read the go-dqlite version ($debian_version)"
go_version=$(gotool version) || die "the unpacked go does not run"
# Every go-dqlite package the peer links must come from the unpacked forky tree.
dqlite_dirs=$(cd bench/peers/go && gotool list -tags nosqlite3 -deps -f '{{if not .Standard}}{{.ImportPath}} {{.Dir}}{{end}}' .) ||
  die "go list failed against the unpacked GOPATH"
if printf '%s\n' "$dqlite_dirs" | grep 'go-dqlite' | grep -v " $gopath/" >&2; then
  die "the packages above do not come from $gopath"
fi
echo "building $bin (go-dqlite $debian_version, $go_version)"
rm -f "$bin"
(cd bench/peers/go && gotool build -tags nosqlite3 -ldflags "-X main.goDqliteVersion=$upstream" -o "$bin" .) ||
  die "go build of bench/peers/go against go-dqlite $debian_version failed"
printf 'golang-github-canonical-go-dqlite-dev=%s\n%s\n' "$debian_version" "$go_version" >"$version_file"
report
