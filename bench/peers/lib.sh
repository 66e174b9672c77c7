# Sourced by the benchmark scripts (run from the repository's root): the peers' build, where
# servers and clients run, and what the servers spend.
#
# build_gobench                    builds the go-dqlite peer (bench/peers/go) into
#                                  target/peers/gobench, offline from Debian's packages
#                                  (installing golang-go and golang-github-canonical-go-dqlite-dev
#                                  when missing).
# build_gobench3                   builds the same source against Debian forky's go-dqlite 3.0.x
#                                  and Go into target/peers/gobench3 (bench/peers/go/setup3.sh:
#                                  everything unpacked under target/peers/forky-go, nothing
#                                  installed); fails, and says so, when that cannot be done.
# Each peer reports the go-dqlite version it was built against (go_dqlite_version).
#
# Two placements, as users run them:
#   pinned  every server thread on core 0, the client on core 1 (taskset), so client and
#           servers never compete for a core;
#   shared  no pinning: client and servers share both cores, as on a small host.
# place_servers PLACEMENT PID...   moves every thread of the given processes.
# client_prefix PLACEMENT          sets the array `client` to the command prefix for clients.
# servers_cpu_ms PID...            user + system CPU the processes have used so far, in ms.
# tagged PLACEMENT PIDS INSERTS CMD...
#                                  runs CMD as a client and prints its JSON lines with the
#                                  placement and the servers' CPU during the run added:
#                                  with INSERTS > 0 as `b_server_us_per_insert` (per inserted
#                                  row), otherwise as `server_cpu_ms` (the whole run); and,
#                                  when the variable server_version is set, the server's
#                                  version as `server_version`.

place_servers() {
  local placement="$1" cpus pid
  shift
  case "$placement" in
    pinned) cpus=0 ;;
    shared) cpus=0-"$(($(nproc) - 1))" ;;
    *)
      echo "unknown placement '$placement' (pinned or shared)" >&2
      return 2
      ;;
  esac
  for pid in "$@"; do
    taskset -a -p -c "$cpus" "$pid" >/dev/null
  done
}

client_prefix() {
  case "$1" in
    pinned) client=(taskset -c 1) ;;
    *) client=() ;;
  esac
}

servers_cpu_ms() {
  local ticks total=0 pid
  ticks=$(getconf CLK_TCK)
  for pid in "$@"; do
    # Fields 14 and 15 of /proc/PID/stat: user and system time in clock ticks.
    total=$((total + $(awk '{print $14 + $15}' "/proc/$pid/stat")))
  done
  echo $((total * 1000 / ticks))
}

tagged() {
  local placement="$1" pids="$2" inserts="$3" before after out extra
  shift 3
  client_prefix "$placement"
  # shellcheck disable=SC2086 # pids is a list
  before=$(servers_cpu_ms $pids)
  out=$("${client[@]}" "$@")
  # shellcheck disable=SC2086
  after=$(servers_cpu_ms $pids)
  if [ "$inserts" -gt 0 ]; then
    extra="\"b_server_us_per_insert\":$(((after - before) * 1000 / inserts)),"
  else
    extra="\"server_cpu_ms\":$((after - before)),"
  fi
  extra="\"placement\":\"$placement\",$extra"
  if [ -n "${server_version:-}" ]; then
    extra="\"server_version\":\"$server_version\",$extra"
  fi
  printf '%s\n' "$out" | sed "s/^{/{$extra/"
}

build_gobench() {
  local need=()
  command -v go >/dev/null 2>&1 || need+=(golang-go)
  [ -d /usr/share/gocode/src/github.com/canonical/go-dqlite ] || need+=(golang-github-canonical-go-dqlite-dev)
  if [ "${#need[@]}" -gt 0 ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq && apt-get install -y -qq "${need[@]}"
  fi
  mkdir -p target/peers
  # The upstream version of the installed go-dqlite, e.g. 1.11.5-1 -> 1.11.5.
  local version
  version=$(dpkg-query -W -f='${Version}' golang-github-canonical-go-dqlite-dev)
  version=${version#*:}
  version=${version%-*}
  version=${version%%[+~]*}
  # go-dqlite from Debian's packages, built offline in GOPATH mode.
  (cd bench/peers/go && GO111MODULE=off GOPATH=/usr/share/gocode GOCACHE="$PWD/../../../target/peers/gocache" \
    go build -ldflags "-X main.goDqliteVersion=$version" -o ../../../target/peers/gobench .)
}

build_gobench3() {
  if ! bash bench/peers/go/setup3.sh >&2 || [ ! -x target/peers/gobench3 ]; then
    echo "build_gobench3: the go-dqlite 3 peer (target/peers/gobench3) could not be built" >&2
    return 1
  fi
}
