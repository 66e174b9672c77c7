#!/usr/bin/env bash
# Provides the two newer dqlite server generations the real-cluster tests run against, without
# touching the system: for each Debian suite, `libdqlite0` and `go-dqlite` (whose `dqlite-demo`
# and `dqlite` shell the tests use) plus the suite's own glibc and every shared library they
# need are fetched with a private apt configuration, unpacked with dpkg -x under
# target/servers/<suite>/root, and run through the unpacked dynamic loader by wrappers:
#
#   trixie (Debian stable):  libdqlite0 1.18.1, go-dqlite 2.0.0
#   forky  (Debian testing): libdqlite0 1.18.x, go-dqlite 3.0.x (testing moves on)
#
# Result per suite, in target/servers/<suite>/:
#   bin/dqlite-demo, bin/dqlite  wrappers that exec the real programs through the loader
#   VERSION                      the upstream version of the libdqlite0 that was unpacked
#   PACKAGES                     every unpacked package as name=debian-version
# apt's lists and the .deb files stay in target/servers/<suite>-apt.
#
# Idempotent: a suite that is already set up is only checked. FORCE=1 rebuilds.
# Usage: bash tests/servers/setup.sh [trixie] [forky]     (default: both)
# Then, for instance:
#   DQLITE_SERVER=$PWD/target/servers/forky/bin/dqlite-demo \
#   DQLITE_SERVER_VERSION=$(cat target/servers/forky/VERSION) cargo test -p dqlite-tests
set -euo pipefail
cd "$(dirname "$0")/../.."
source scripts/private-apt.sh

servers="$PWD/target/servers"
keyring=/usr/share/keyrings/debian-archive-keyring.gpg

die() {
  echo "setup.sh: error: $*" >&2
  exit 1
}
trap 'echo "setup.sh: error: command failed (line $LINENO): $BASH_COMMAND" >&2' ERR

# The ELF programs a suite provides, relative to its root.
programs=(usr/bin/dqlite-demo usr/bin/dqlite)

# Writes wrapper $1 that runs program $2 (relative to the root) through the unpacked loader.
# `exec` keeps the wrapper's pid (and so its process group) for the real server.
write_wrapper() {
  cat >"$1" <<EOF
#!/bin/sh
# Runs Debian's /$2 unpacked by tests/servers/setup.sh, through the unpacked dynamic loader
# and libraries; the system's own libraries are not used.
self=\$(readlink -f "\$0") || exit 1
root=\$(dirname "\$self")/../root
lib="\$root/usr/lib/x86_64-linux-gnu"
exec "\$lib/ld-linux-x86-64.so.2" --library-path "\$lib" --argv0 "\$0" "\$root/$2" "\$@"
EOF
  chmod +x "$1"
}

# Lists the shared libraries of the suite's programs that the loader resolves outside the
# unpacked root (or not at all); empty when the root is self-contained.
outside_libraries() {
  local root="$1" libdir="$1/usr/lib/x86_64-linux-gnu" f
  for f in "${programs[@]}"; do
    "$libdir/ld-linux-x86-64.so.2" --library-path "$libdir" --list "$root/$f" 2>&1 |
      awk -v f="${f##*/}" -v r="$root/" \
        '($2 == "=>" && index($3, r) != 1) || /not found/ { print f ": " $0 }'
  done
}

# Already set up: VERSION is there, the root is self-contained, the wrappers start.
check_suite() {
  local prefix="$servers/$1"
  [ -s "$prefix/VERSION" ] && [ -x "$prefix/bin/dqlite-demo" ] && [ -x "$prefix/bin/dqlite" ] &&
    [ -z "$(outside_libraries "$prefix/root")" ] &&
    "$prefix/bin/dqlite-demo" --help >/dev/null 2>&1 &&
    "$prefix/bin/dqlite" --help >/dev/null 2>&1
}

report() {
  local prefix="$servers/$1"
  echo "$1: libdqlite0 $(cat "$prefix/VERSION"), $(grep '^go-dqlite=' "$prefix/PACKAGES"):" \
    "$prefix/bin/dqlite-demo (shell: $prefix/bin/dqlite)"
}

setup_suite() {
  local suite="$1"
  local apt_dir="$servers/$suite-apt" prefix="$servers/$suite"
  local root="$prefix/root"
  local libdir="$root/usr/lib/x86_64-linux-gnu"

  # 1. A private apt configuration for the suite (scripts/private-apt.sh).
  local apt_opts
  private_apt "$apt_dir" "$suite" "$keyring" ||
    die "apt-get update of the private $suite sources failed"

  # 2. The dependency closure of the two packages (Depends and Pre-Depends only; the status
  #    file is empty, so glibc and everything below it are included), then the download.
  local packages
  mapfile -t packages < <(
    apt-cache "${apt_opts[@]}" depends --recurse --no-recommends --no-suggests \
      --no-conflicts --no-breaks --no-replaces --no-enhances go-dqlite libdqlite0 |
      grep -v '^[ <]' | sort -u
  )
  [ "${#packages[@]}" -gt 0 ] || die "$suite: apt-cache depends resolved nothing"
  rm -f "$apt_dir"/debs/*.deb
  echo "$suite: downloading ${packages[*]}"
  (cd "$apt_dir/debs" && apt-get "${apt_opts[@]}" -qq download "${packages[@]}") ||
    die "apt-get download from $suite failed"

  # 3. Unpack into a fresh private root and record what was unpacked.
  rm -rf "$prefix"
  mkdir -p "$root" "$prefix/bin"
  local deb
  : >"$prefix/PACKAGES"
  for deb in "$apt_dir"/debs/*.deb; do
    dpkg -x "$deb" "$root" || die "dpkg -x $deb failed"
    dpkg-deb -f "$deb" Package Version | paste -sd= - | sed 's/^Package: //; s/=Version: /=/' \
      >>"$prefix/PACKAGES"
  done
  local f
  for f in "${programs[@]}"; do
    [ -x "$root/$f" ] || die "$suite: $f missing after unpacking"
  done
  [ -e "$libdir/ld-linux-x86-64.so.2" ] || die "$suite: the dynamic loader is missing after unpacking"

  # Every library must come from inside the root: the loader falls back to the system's
  # directories for one it misses there, which would mix two glibc generations.
  local missing
  missing=$(outside_libraries "$root")
  [ -z "$missing" ] || die "$suite: shared libraries not found in the unpacked root:
$missing"

  # 4. The version actually unpacked (testing moves on, so it is detected, never assumed):
  #    the Debian version without epoch and revision, e.g. 1.18.1-1 -> 1.18.1.
  local version
  version=$(sed -n 's/^libdqlite0=//p' "$prefix/PACKAGES")
  version=${version#*:}
  version=${version%%-*}
  version=${version%%[+~]*}
  [[ "$version" =~ ^[0-9]+\.[0-9]+\.[0-9]+$ ]] || die "$suite: cannot read the libdqlite0 version ($version)"
  echo "$version" >"$prefix/VERSION"

  # 5. The wrappers.
  write_wrapper "$prefix/bin/dqlite-demo" usr/bin/dqlite-demo
  write_wrapper "$prefix/bin/dqlite" usr/bin/dqlite
  check_suite "$suite" || die "$suite: the unpacked dqlite-demo or dqlite does not start"
}

suites=("$@")
[ "${#suites[@]}" -gt 0 ] || suites=(trixie forky)
for suite in "${suites[@]}"; do
  case "$suite" in
    trixie | forky) ;;
    *) die "unknown suite $suite (known: trixie forky)" ;;
  esac
done

[ "$(uname -m)" = x86_64 ] || die "only x86_64 is handled (amd64 packages), not $(uname -m)"
for tool in apt-get apt-cache dpkg dpkg-deb; do
  command -v "$tool" >/dev/null 2>&1 || die "$tool is needed (Debian or a derivative)"
done
[ -r "$keyring" ] || die "$keyring is missing (apt-get install debian-archive-keyring)"

for suite in "${suites[@]}"; do
  if [ "${FORCE:-0}" = 1 ] || ! check_suite "$suite"; then
    setup_suite "$suite"
  fi
  report "$suite"
done
