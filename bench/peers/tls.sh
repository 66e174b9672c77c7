#!/usr/bin/env bash
# TLS overhead: dqlite-bench (tokio) and the go-dqlite peer, each over plaintext and over
# mutual TLS, against three 3-node clusters of the repository's go-dqlite node program
# (tests/nodes/tlsnode): one plaintext, one with `app.WithTLS(SimpleListenTLSConfig,
# SimpleDialTLSConfig)` and a cluster certificate made per run with openssl, and one
# plaintext behind a proxy hop (below). The clusters run at once; every round runs the six
# clients in both placements (bench/peers/lib.sh), alternating, so that ratios come from one
# run. Workload b runs on its own so that the servers' CPU per inserted row can be read.
#
# In TLS mode go-dqlite's app does not serve clients from the dqlite engine: it terminates TLS
# in a Go proxy that forwards the bytes over a unix socket to the engine. The go-dqlite
# client's TLS/plaintext ratio measures that hop plus Go's TLS; ours, the same hop plus
# rustls: the difference between the two ratios is the clients' own share. The third cluster
# (tlsnode --links, every link direct) has the same hop without TLS: its nodes accept clients
# in a Go proxy of their own that forwards the bytes over a unix socket to the engine. Its
# lines carry "transport":"tcp-proxied", and TLS against it is the cost of TLS alone.
#
# Prints one JSON line per client run, then per placement the medians and ratios
# (bench/peers/summarize.py --transports). The lines are kept in target/peers/tls.jsonl.
# Usage: bash bench/peers/tls.sh [rounds]   (default 5; PLACEMENTS="pinned" for one)
set -euo pipefail
cd "$(dirname "$0")/../.."
rounds="${1:-5}"
placements="${PLACEMENTS:-pinned shared}"
out=target/peers
# shellcheck source=bench/peers/lib.sh
. bench/peers/lib.sh
build_gobench
node=$(bash tests/nodes/build.sh tlsnode)
cargo build -q --release -p dqlite-bench
bench=target/release/dqlite-bench

dir=$(mktemp -d)
pids=()
trap 'for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done; rm -rf "$dir"' EXIT
# The cluster certificate: its own CA, an IP name for our client (which checks the address
# it dials) and a DNS name for go-dqlite's (SimpleDialTLSConfig takes the first DNS name).
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=dqlite \
  -keyout "$dir/key.pem" -out "$dir/cert.pem" -config /dev/null \
  -addext "subjectAltName=DNS:dqlite,IP:127.0.0.1" -addext "basicConstraints=critical,CA:FALSE" \
  -addext "keyUsage=critical,digitalSignature,keyEncipherment" \
  -addext "extendedKeyUsage=serverAuth,clientAuth" 2>/dev/null

# start_cluster NAME PORT_PREFIX [TLS FLAGS...]: nodes on 127.0.0.1:${PORT_PREFIX}1..3.
start_cluster() {
  local name="$1" port="$2" i join
  shift 2
  for i in 1 2 3; do
    join=()
    [ "$i" -gt 1 ] && join=(--join "127.0.0.1:${port}1")
    "$node" --db "127.0.0.1:${port}$i" -D "$dir/$name$i" "${join[@]}" "$@" >"$dir/$name$i.log" 2>&1 &
    pids+=($!)
    disown
    for _ in $(seq 1 100); do
      (exec 3<>"/dev/tcp/127.0.0.1/${port}$i") 2>/dev/null && break
      sleep 0.1
    done
  done
  # Ready when node 1 reports itself leader of three voters.
  for _ in $(seq 1 600); do
    if tail -n 1 "$dir/${name}1.log" | grep -q "leader=127.0.0.1:${port}1 voters=3"; then
      return 0
    fi
    sleep 0.2
  done
  echo "tls.sh: the $name cluster did not get three voters; its logs are in $dir" >&2
  cat "$dir/${name}"?.log >&2
  return 1
}
start_cluster plain 931
start_cluster tls 932 --cert "$dir/cert.pem" --key "$dir/key.pem"
# Every link direct: FROM TO TO.
for from in 1 2 3; do
  for to in 1 2 3; do
    [ "$from" = "$to" ] || echo "127.0.0.1:933$from 127.0.0.1:933$to 127.0.0.1:933$to"
  done
done >"$dir/links"
start_cluster proxied 933 --links "$dir/links"
plain=127.0.0.1:9312,127.0.0.1:9313,127.0.0.1:9311
tls=127.0.0.1:9322,127.0.0.1:9323,127.0.0.1:9321
proxied=127.0.0.1:9332,127.0.0.1:9333,127.0.0.1:9331
certs="$dir/cert.pem,$dir/key.pem"
servers="${pids[*]}"

{
  # Creates the tables once per cluster.
  "$bench" --cluster "$plain" --runtime tokio --workloads a >/dev/null
  "$bench" --cluster "$tls" --tls "$certs" --runtime tokio --workloads a >/dev/null
  "$bench" --cluster "$proxied" --runtime tokio --workloads a >/dev/null
  for r in $(seq 1 "$rounds"); do
    for p in $placements; do
      # shellcheck disable=SC2086
      place_servers "$p" $servers
      tagged "$p" "$servers" 20000 "$bench" --cluster "$plain" --runtime tokio --workloads b
      tagged "$p" "$servers" 0 "$bench" --cluster "$plain" --runtime tokio --workloads acde
      tagged "$p" "$servers" 20000 "$bench" --cluster "$tls" --tls "$certs" --runtime tokio --workloads b
      tagged "$p" "$servers" 0 "$bench" --cluster "$tls" --tls "$certs" --runtime tokio --workloads acde
      tagged "$p" "$servers" 10000 "$out/gobench" -cluster "$plain" -workloads b
      tagged "$p" "$servers" 0 "$out/gobench" -cluster "$plain" -workloads acde
      tagged "$p" "$servers" 10000 "$out/gobench" -cluster "$tls" -tls "$certs" -workloads b
      tagged "$p" "$servers" 0 "$out/gobench" -cluster "$tls" -tls "$certs" -workloads acde
      {
        tagged "$p" "$servers" 20000 "$bench" --cluster "$proxied" --runtime tokio --workloads b
        tagged "$p" "$servers" 0 "$bench" --cluster "$proxied" --runtime tokio --workloads acde
        tagged "$p" "$servers" 10000 "$out/gobench" -cluster "$proxied" -workloads b
        tagged "$p" "$servers" 0 "$out/gobench" -cluster "$proxied" -workloads acde
      } | sed 's/"transport":"tcp"/"transport":"tcp-proxied"/'

    done
  done
} | tee "$out/tls.jsonl"
echo
python3 bench/peers/summarize.py --transports <"$out/tls.jsonl"
