#!/usr/bin/env bash
# Runs the whole test suite on the three dqlite server generations:
#
#   bookworm  `cargo test --workspace --locked` with the default server, Debian bookworm's
#             dqlite-demo (libdqlite0 1.11), installed system-wide (apt-get install -y go-dqlite)
#   trixie    the real-cluster tests (`cargo test -p dqlite-tests -p sqlx-dqlite --locked`) on
#             Debian trixie's server (libdqlite0 1.18.1)
#   forky     the same on Debian forky's server (libdqlite0 1.18.x)
#
# The trixie and forky servers are unpacked under target/servers by tests/servers/setup.sh,
# which this script runs first (it only checks them when they are there already). A missing
# server fails the run; nothing is skipped.
# Usage: bash scripts/test-all.sh [bookworm] [trixie] [forky]     (default: all three)
set -euo pipefail
cd "$(dirname "$0")/.."

generations=("$@")
[ "${#generations[@]}" -gt 0 ] || generations=(bookworm trixie forky)
extra=()
for g in "${generations[@]}"; do
  case "$g" in
    bookworm) ;;
    trixie | forky) extra+=("$g") ;;
    *)
      echo "test-all.sh: unknown generation $g (known: bookworm trixie forky)" >&2
      exit 2
      ;;
  esac
done

if [[ " ${generations[*]} " == *" bookworm "* ]] && ! command -v dqlite-demo >/dev/null 2>&1; then
  echo "test-all.sh: dqlite-demo is missing; install it with: apt-get install -y go-dqlite" >&2
  exit 1
fi
if [ "${#extra[@]}" -gt 0 ]; then
  bash tests/servers/setup.sh "${extra[@]}"
fi

# Every generation runs even when an earlier one failed; the summary names the failures.
summary=()
failed=0
for g in "${generations[@]}"; do
  start=$(date +%s)
  status=0
  if [ "$g" = bookworm ]; then
    echo "== bookworm: cargo test --workspace --locked (dqlite-demo from PATH)"
    # The version comes from the installed libdqlite0 package unless given.
    env -u DQLITE_SERVER -u DQLITE_SERVER_ARGS cargo test --workspace --locked || status=$?
  else
    dir="$PWD/target/servers/$g"
    version=$(cat "$dir/VERSION")
    echo "== $g: cargo test -p dqlite-tests -p sqlx-dqlite --locked (libdqlite0 $version, $dir/bin/dqlite-demo)"
    DQLITE_SERVER="$dir/bin/dqlite-demo" DQLITE_SERVER_VERSION="$version" \
      env -u DQLITE_SERVER_ARGS cargo test -p dqlite-tests -p sqlx-dqlite --locked || status=$?
  fi
  result=passed
  if [ "$status" -ne 0 ]; then
    result=FAILED
    failed=1
  fi
  summary+=("$g $result in $(($(date +%s) - start)) s")
  echo "== $g: $result in $(($(date +%s) - start)) s"
done
printf 'test-all.sh: %s\n' "${summary[@]}"
exit "$failed"
