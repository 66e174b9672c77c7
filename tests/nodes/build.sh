#!/usr/bin/env bash
# Builds one of the Go programs under tests/nodes/ (tlsnode, the default, or timeinterop)
# into target/nodes/, offline, against Debian's go-dqlite sources in GOPATH mode. Installs
# golang-go and golang-github-canonical-go-dqlite-dev (with gcc for cgo) when they are
# missing. Does nothing when the binary is newer than its sources; safe to run concurrently
# (flock).
# Usage: bash tests/nodes/build.sh [PROGRAM]     Prints the binary's path on stdout.
set -euo pipefail
cd "$(dirname "$0")/../.."
root="$PWD"
name="${1:-tlsnode}"
case "$name" in
  tlsnode | timeinterop) ;;
  *)
    echo "build.sh: unknown program '$name' (tlsnode or timeinterop)" >&2
    exit 2
    ;;
esac
out="$root/target/nodes"
bin="$out/$name"
src="$root/tests/nodes/$name"
script="$root/tests/nodes/build.sh"
mkdir -p "$out"

exec 9>"$out/.build.lock"
flock 9

fresh() {
  [ -x "$bin" ] || return 1
  [ -z "$(find "$src" "$script" -newer "$bin" -print -quit)" ]
}
if fresh; then
  echo "$bin"
  exit 0
fi

need=()
command -v go >/dev/null 2>&1 || need+=(golang-go)
[ -d /usr/share/gocode/src/github.com/canonical/go-dqlite/app ] || need+=(golang-github-canonical-go-dqlite-dev)
command -v cc >/dev/null 2>&1 || need+=(gcc libc6-dev)
if [ "${#need[@]}" -gt 0 ]; then
  echo "build.sh: installing ${need[*]}" >&2
  if [ "$(id -u)" -ne 0 ]; then
    echo "build.sh: need root to install ${need[*]}; run: apt-get install -y ${need[*]}" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  apt-get install -y -qq "${need[@]}" >&2
fi

# GOPATH mode against /usr/share/gocode: no module download. The cgo bindings of
# go-dqlite link with -Wl,-z,now, which go refuses unless allowed.
(cd "$src" && GO111MODULE=off GOPATH=/usr/share/gocode \
  GOCACHE="$out/gocache" CGO_LDFLAGS_ALLOW='-Wl,-z,now' \
  go build -o "$bin.tmp" .) >&2
mv "$bin.tmp" "$bin"
echo "$bin"
