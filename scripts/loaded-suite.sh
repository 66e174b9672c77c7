#!/usr/bin/env bash
# Runs the test suite (scripts/test-all.sh) several times in a row while two CPU hogs keep
# both cores of a small machine busy, to show that no test depends on timing. Stops at the
# first failing run; the hogs stop with the script.
# Usage: bash scripts/loaded-suite.sh [RUNS] [GENERATION...]
#        (default: 3 runs of bookworm; generations as scripts/test-all.sh takes them)
set -euo pipefail
cd "$(dirname "$0")/.."
runs="${1:-3}"
shift || true
generations=("$@")
[ "${#generations[@]}" -gt 0 ] || generations=(bookworm)

hogs=()
trap 'kill "${hogs[@]}" 2>/dev/null || true' EXIT
for _ in 1 2; do
  # A shell busy loop: one core's worth of work each, at normal priority.
  sh -c 'while :; do :; done' &
  hogs+=($!)
done
echo "loaded-suite.sh: two CPU hogs running (pids ${hogs[*]})"
for r in $(seq 1 "$runs"); do
  start=$(date +%s)
  if ! bash scripts/test-all.sh "${generations[@]}"; then
    echo "loaded-suite.sh: run $r of $runs FAILED after $(($(date +%s) - start)) s"
    exit 1
  fi
  echo "loaded-suite.sh: run $r of $runs passed in $(($(date +%s) - start)) s"
done
echo "loaded-suite.sh: $runs runs passed in a row with two CPU hogs"
