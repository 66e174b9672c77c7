#!/usr/bin/env bash
# Shows that the fuzz targets can fail: each patch in fuzz/mutants/ breaks the core on purpose
# (a discovery that never reports a leader, skips a node, or stops growing its pauses; a
# connection that refuses every statement or sends parameters in the wrong order). For each,
# this builds the broken core in a temporary git worktree and runs the target named by the
# patch's prefix (discovery-* -> leader, connection-* -> connection) for at most SECONDS
# (default 60). The check passes when every broken build is caught within its time.
# Usage: bash fuzz/check-mutants.sh [SECONDS] [PATCH...]
# Needs the nightly toolchain and cargo-fuzz (see fuzz/smoke.sh), and a git checkout.
set -euo pipefail
cd "$(dirname "$0")/.."
repo="$(pwd)"
secs="${1:-60}"
shift || true
patches=("$@")
[ "${#patches[@]}" -gt 0 ] || patches=(fuzz/mutants/*.patch)

work="$(mktemp -d)"
tree="$work/tree"
cleanup() {
  git -C "$repo" worktree remove --force "$tree" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
# One target directory for every mutant, kept between runs: only the core is rebuilt.
export CARGO_TARGET_DIR="$repo/target/fuzz-mutants"

failed=0
for patch in "${patches[@]}"; do
  name="$(basename "$patch" .patch)"
  case "$name" in
    discovery-*) target=leader ;;
    connection-*) target=connection ;;
    *) echo "check-mutants.sh: $name: no target for this prefix" >&2; exit 1 ;;
  esac
  git -C "$repo" worktree remove --force "$tree" >/dev/null 2>&1 || true
  git -C "$repo" worktree add --quiet --detach "$tree" HEAD
  git -C "$tree" apply "$repo/$patch"
  (cd "$tree/fuzz" && cargo +nightly fuzz build "$target" >"$work/build.log" 2>&1) || {
    tail -n 30 "$work/build.log"
    echo "check-mutants.sh: $name does not build"
    exit 1
  }
  rm -rf "$work/corpus" && mkdir -p "$work/corpus"
  start=$(date +%s)
  if (cd "$tree/fuzz" && cargo +nightly fuzz run "$target" "$work/corpus" "corpus/$target" -- \
      -max_total_time="$secs" -timeout=10 >"$work/run.log" 2>&1); then
    echo "check-mutants.sh: $name NOT caught by $target in $secs s"
    failed=1
  else
    took=$(($(date +%s) - start))
    why="$(grep -a -m1 -A1 'panicked at' "$work/run.log" | tail -n 1 | cut -c1-160)"
    if [ -z "$why" ]; then
      tail -n 30 "$work/run.log"
      echo "check-mutants.sh: $name: $target failed without a check failing"
      exit 1
    fi
    echo "check-mutants.sh: $name caught by $target in $took s: $why"
  fi
done
exit "$failed"
