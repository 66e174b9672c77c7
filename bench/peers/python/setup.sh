#!/usr/bin/env bash
# Provides a private CPython 3.13 and a venv with the PyPI package dqlite-client (import name
# dqliteclient, which needs Python >= 3.13) for bench/peers/python/bench.py, without touching
# the system: Debian trixie's python3.13 packages (and the trixie glibc and shared libraries
# they need) are fetched with a private apt configuration, unpacked with dpkg -x under
# target/peers/py313/root, and run through the unpacked trixie dynamic loader by the wrapper
# target/peers/py313/bin/python3.13. The venv is target/peers/pyvenv (pip comes from trixie's
# python3-pip-whl). apt's lists and the .deb files stay in target/peers/py313-apt.
# Idempotent: a second run only checks the result. FORCE=1 rebuilds everything.
# Usage: bash bench/peers/python/setup.sh   (then: target/peers/pyvenv/bin/python ...)
set -euo pipefail
cd "$(dirname "$0")/../../.."
source scripts/private-apt.sh

client_version=0.8.0
peers="$PWD/target/peers"
apt_dir="$peers/py313-apt"
prefix="$peers/py313"
root="$prefix/root"
libdir="$root/usr/lib/x86_64-linux-gnu"
python="$prefix/bin/python3.13"
venv="$peers/pyvenv"
vpython="$venv/bin/python"

die() {
  echo "setup.sh: error: $*" >&2
  exit 1
}
trap 'echo "setup.sh: error: command failed (line $LINENO): $BASH_COMMAND" >&2' ERR

report() {
  echo "python 3.13 interpreter: $python"
  echo "venv with dqlite-client $client_version: $venv (run $vpython)"
}

# Already set up: the venv's interpreter imports the wanted dqliteclient.
check_venv() {
  [ -x "$vpython" ] && "$vpython" - "$client_version" >/dev/null 2>&1 <<'EOF'
import sys, ssl, sqlite3, decimal, ctypes, resource, asyncio, dqliteclient
sys.exit(sys.version_info[:2] != (3, 13) or dqliteclient.__version__ != sys.argv[1])
EOF
}
if [ "${FORCE:-0}" != 1 ] && check_venv; then
  report
  exit 0
fi

[ "$(uname -m)" = x86_64 ] || die "only x86_64 is handled (trixie amd64 packages), not $(uname -m)"
for tool in apt-get dpkg; do
  command -v "$tool" >/dev/null 2>&1 || die "$tool is needed (Debian or a derivative)"
done
keyring=/usr/share/keyrings/debian-archive-keyring.gpg
[ -r "$keyring" ] || die "$keyring is missing (apt-get install debian-archive-keyring)"

# 1. A private apt configuration for trixie (scripts/private-apt.sh).
private_apt "$apt_dir" trixie "$keyring" || die "apt-get update of the private trixie sources failed"

# The interpreter, its standard library, ensurepip's wheels, trixie's glibc, and every
# shared library the interpreter or a stdlib extension module links against.
packages=(
  python3.13 python3.13-minimal libpython3.13-minimal libpython3.13-stdlib python3.13-venv
  python3-pip-whl python3-setuptools-whl
  libc6 libgcc-s1 zlib1g libexpat1 libssl3t64 libzstd1 libffi8 libsqlite3-0 libbz2-1.0
  liblzma5 libuuid1 libreadline8t64 libncursesw6 libtinfo6 libdb5.3t64
)
rm -f "$apt_dir"/debs/*.deb
echo "downloading: ${packages[*]}"
(cd "$apt_dir/debs" && apt-get "${apt_opts[@]}" -qq download "${packages[@]}") ||
  die "apt-get download from trixie failed"

# 2. Unpack them into a fresh private root.
rm -rf "$prefix"
mkdir -p "$root" "$prefix/bin" "$prefix/lib"
for deb in "$apt_dir"/debs/*.deb; do
  dpkg -x "$deb" "$root" || die "dpkg -x $deb failed"
done
loader="$libdir/ld-linux-x86-64.so.2"
[ -x "$root/usr/bin/python3.13" ] || die "usr/bin/python3.13 missing after unpacking"
[ -e "$loader" ] || die "trixie's dynamic loader missing after unpacking"

# Every ELF object of the interpreter must find all its libraries inside the root: the
# loader falls back to the system's (bookworm) directories for one it misses there.
missing=$(
  for f in "$root/usr/bin/python3.13" "$root"/usr/lib/python3.13/lib-dynload/*.so; do
    "$loader" --library-path "$libdir" --list "$f" 2>&1 |
      awk -v f="${f##*/}" -v r="$root/" '$2 == "=>" && index($3, r) != 1 { print f ": " $0 }'
  done
)
[ -z "$missing" ] || die "shared libraries not found in the unpacked trixie root (add their packages to setup.sh):
$missing"

# 3. The wrapper. It passes its own invocation path as argv[0] so that Python takes it as
#    sys.executable: through the venv's bin/python symlink that finds pyvenv.cfg, and here
#    the prefix search finds lib/python3.13 beside bin/ (a symlink into the root), so no
#    PYTHONHOME is needed and child processes started with sys.executable work too.
ln -sfn ../root/usr/lib/python3.13 "$prefix/lib/python3.13"
cat >"$python" <<'EOF'
#!/bin/sh
# Runs Debian trixie's python3.13 (unpacked by bench/peers/python/setup.sh) through the
# unpacked trixie dynamic loader and libraries; the system's own libraries are not used.
self=$(readlink -f "$0") || exit 1
root=$(dirname "$self")/../root
lib="$root/usr/lib/x86_64-linux-gnu"
argv0=$(cd "$(dirname "$0")" && pwd)/$(basename "$0") || exit 1
exec "$lib/ld-linux-x86-64.so.2" --library-path "$lib" --argv0 "$argv0" "$root/usr/bin/python3.13" "$@"
EOF
chmod +x "$python"
"$python" -c '
import sys, ssl, sqlite3, decimal, ctypes, lzma, bz2, zlib, uuid, hashlib, resource, asyncio, venv
assert sys.version_info[:2] == (3, 13), sys.version
' || die "the unpacked python3.13 does not start or lacks stdlib modules"

# 4. The venv, pip from trixie's wheel (Debian's python3.13 has no bundled ensurepip
#    wheels), then dqlite-client from PyPI.
rm -rf "$venv"
"$python" -m venv --without-pip "$venv" || die "python3.13 -m venv failed"
pip_wheel=$(ls "$root"/usr/share/python-wheels/pip-*.whl 2>/dev/null | head -n 1)
[ -n "$pip_wheel" ] || die "pip wheel missing from python3-pip-whl"
"$vpython" "$pip_wheel/pip" install -q --no-index "$pip_wheel" || die "installing pip into the venv failed"
"$vpython" -m pip install -q --disable-pip-version-check "dqlite-client==$client_version" ||
  die "pip install dqlite-client==$client_version failed (is PyPI reachable?)"
check_venv || die "the venv does not import dqliteclient $client_version"
report
