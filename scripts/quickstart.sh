#!/usr/bin/env bash
# Starts a local 3-node dqlite cluster on 127.0.0.1:9001-9003 (installing Debian's go-dqlite
# when dqlite-demo is missing), runs the quickstart example against it, then stops the
# cluster. Usage: bash scripts/quickstart.sh [tokio|smol]
set -euo pipefail
cd "$(dirname "$0")/.."
runtime="${1:-tokio}"
# Example names are unique across the workspace (cargo would write both to one file).
case "$runtime" in
  tokio) example=quickstart ;;
  smol) example=quickstart_smol ;;
  *) echo "usage: bash scripts/quickstart.sh [tokio|smol]" >&2; exit 2 ;;
esac

cargo build -q -p "dqlite-$runtime" --example "$example"
# shellcheck source=scripts/local-cluster.sh
. scripts/local-cluster.sh
start_local_cluster 800 900
cargo run -q -p "dqlite-$runtime" --example "$example" -- 127.0.0.1:9001 127.0.0.1:9002 127.0.0.1:9003
