#!/usr/bin/env bash
# Builds every cargo-fuzz target and runs each for a short bounded time from the committed
# seeds and regressions: RUNS inputs (default 50 000) from a fixed seed, so that a run is
# repeatable and CI's verdict does not depend on luck, but never longer than SECONDS (default
# 60). New inputs go to a temporary directory, never into the tree; a crash fails the script
# and leaves its input in fuzz/artifacts/<target>/. Longer, unseeded runs find new things:
# see fuzz/README.md.
# Usage: bash fuzz/smoke.sh [SECONDS_PER_TARGET] [RUNS_PER_TARGET]
# Needs the nightly toolchain and cargo-fuzz (installed here if missing).
set -euo pipefail
cd "$(dirname "$0")"
secs="${1:-60}"
runs_per_target="${2:-50000}"

if ! cargo +nightly --version >/dev/null 2>&1; then
  if ! command -v rustup >/dev/null 2>&1; then
    echo "fuzz/smoke.sh: the nightly toolchain is missing (rustup toolchain install nightly)" >&2
    exit 1
  fi
  echo "fuzz/smoke.sh: installing the nightly toolchain"
  rustup toolchain install nightly --profile minimal
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "fuzz/smoke.sh: installing cargo-fuzz"
  cargo install cargo-fuzz --locked --quiet
fi

cargo +nightly fuzz build 2>&1 | tail -n 3
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
for target in $(cargo +nightly fuzz list); do
  mkdir -p "$work/$target"
  dirs=(corpus/"$target")
  [ -d regressions/"$target" ] && dirs+=(regressions/"$target")
  extra=()
  [ -f dicts/"$target".dict ] && extra+=(-dict=dicts/"$target".dict)
  start=$(date +%s)
  if ! cargo +nightly fuzz run "$target" "$work/$target" "${dirs[@]}" -- \
      -seed=1 -runs="$runs_per_target" -max_total_time="$secs" -timeout=10 "${extra[@]}" \
      >"$work/$target.log" 2>&1; then
    tail -n 60 "$work/$target.log"
    echo "fuzz/smoke.sh: $target FAILED (input in fuzz/artifacts/$target/)"
    exit 1
  fi
  runs=$(grep -ao 'Done [0-9]* runs' "$work/$target.log" | tail -n 1 | tr -dc '0-9')
  echo "fuzz/smoke.sh: $target passed ${runs:-?} runs in $(($(date +%s) - start)) s"
done
