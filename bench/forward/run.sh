#!/usr/bin/env bash
# bench/forward: iperf3 throughput through asyncore-forward (sync mode on epoll, and thread
# mode, each splicing and copying) against a node:net pipe() forwarder and socat, in one run,
# on loopback.
#
#   bench/forward/run.sh            (from the repository root; writes bench/forward/RESULTS.md)
#
# The forwarder under test is pinned to CPU 0, iperf3's client and server to CPU 1, so the
# forwarder has one core to itself and the figures say what that one core can move. Every
# configuration runs RUNS times for SECONDS seconds, interleaved round by round so a drift
# in the machine touches them all alike; the median is reported.
set -euo pipefail
cd "$(dirname "$0")/../.."

RUNS=${RUNS:-3}
SECONDS_PER_RUN=${SECONDS_PER_RUN:-5}
FORWARDER_CPU=0
IPERF_CPU=1
OUT=bench/forward/RESULTS.md
COMMAND="bench/forward/run.sh (RUNS=$RUNS SECONDS_PER_RUN=$SECONDS_PER_RUN)"

for tool in iperf3 socat; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$tool" >/dev/null
  fi
done
[ -f dist/cli/forward.js ] || npx tsc -p tsconfig.build.json

work=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# Starts a command in the background; its pid goes to $started_pid, its output to $work/$1.log.
start() {
  local name=$1
  shift
  "$@" >"$work/$name.log" 2>&1 &
  started_pid=$!
  pids+=("$started_pid")
}

# Waits for a "listening on HOST:PORT" line in a log and prints PORT.
listening_port() {
  local log=$1
  for _ in $(seq 100); do
    if grep -q 'listening on' "$log"; then
      sed -n 's/^listening on .*:\([0-9][0-9]*\) (.*/\1/p' "$log" | head -1
      return
    fi
    sleep 0.1
  done
  echo "no 'listening on' line in $log:" >&2
  cat "$log" >&2
  exit 1
}

wait_for_port() {
  for _ in $(seq 100); do
    python3 -c "import socket, sys; socket.create_connection(('127.0.0.1', $1), 1)" 2>/dev/null && return
    sleep 0.1
  done
  echo "nothing listens on $1" >&2
  exit 1
}

# The receiver's throughput in an iperf3 JSON report, in Gbit/s.
gbit_per_s() {
  python3 -c 'import json, sys; r = json.load(open(sys.argv[1])); print("%.2f" % (r["end"]["sum_received"]["bits_per_second"] / 1e9))' "$1"
}

# CPU seconds (user + system) a process has used so far, with its reaped children's
# (socat forks one child per connection).
cpu_seconds() {
  awk -v tck="$(getconf CLK_TCK)" '{ print ($14 + $15 + $16 + $17) / tck }' "/proc/$1/stat"
}

iperf_port=$(free_port)
start iperf3-server taskset -c "$IPERF_CPU" iperf3 -s -B 127.0.0.1 -p "$iperf_port"
wait_for_port "$iperf_port"

# Every forwarder listens all the time (an idle one costs nothing); each is pinned to the
# forwarder's CPU and forwards to the iperf3 server.
declare -A port pid
names=()

# asyncore-forward four ways: both loops, splicing (the default on Linux) and copying (--copy).
for mode in sync thread; do
  for transfer in splice copy; do
    name="asyncore $mode epoll $transfer"
    names+=("$name")
    flags=()
    [ "$transfer" = copy ] && flags+=(--copy)
    start "asyncore-$mode-$transfer" taskset -c "$FORWARDER_CPU" node dist/cli/forward.js \
      -l 127.0.0.1 -p 0 -r 127.0.0.1 -P "$iperf_port" --mode "$mode" --backend epoll "${flags[@]}"
    pid[$name]=$started_pid
    port[$name]=$(listening_port "$work/asyncore-$mode-$transfer.log")
  done
done
names+=("node:net pipe" "socat")

start node-net taskset -c "$FORWARDER_CPU" node bench/forward/node-forward.mjs 127.0.0.1 0 127.0.0.1 "$iperf_port"
pid["node:net pipe"]=$started_pid
port["node:net pipe"]=$(listening_port "$work/node-net.log")

socat_port=$(free_port)
start socat taskset -c "$FORWARDER_CPU" socat "TCP-LISTEN:$socat_port,bind=127.0.0.1,reuseaddr,fork" \
  "TCP:127.0.0.1:$iperf_port"
pid["socat"]=$started_pid
port["socat"]=$socat_port
wait_for_port "$socat_port"

load_before=$(cut -d' ' -f1-3 /proc/loadavg)
declare -A gbits cpu
for run in $(seq "$RUNS"); do
  for name in "${names[@]}"; do
    before=$(cpu_seconds "${pid[$name]}")
    json="$work/iperf-$run-${port[$name]}.json"
    taskset -c "$IPERF_CPU" iperf3 -c 127.0.0.1 -p "${port[$name]}" -t "$SECONDS_PER_RUN" -J >"$json"
    after=$(cpu_seconds "${pid[$name]}")
    rate=$(gbit_per_s "$json")
    gbits[$name]="${gbits[$name]:-} $rate"
    cpu[$name]="${cpu[$name]:-} $(awk -v a="$before" -v b="$after" -v s="$SECONDS_PER_RUN" 'BEGIN { printf "%.0f", 100 * (b - a) / s }')"
    echo "run $run: $name: $rate Gbit/s" >&2
  done
  # The baseline without a forwarder: what iperf3 itself manages on its one core.
  json="$work/iperf-$run-direct.json"
  taskset -c "$IPERF_CPU" iperf3 -c 127.0.0.1 -p "$iperf_port" -t "$SECONDS_PER_RUN" -J >"$json"
  rate=$(gbit_per_s "$json")
  gbits[direct]="${gbits[direct]:-} $rate"
  echo "run $run: direct: $rate Gbit/s" >&2
done

median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

# Throughput per unit of forwarder CPU over all runs: what one fully busy core would move.
efficiency() {
  awk -v g="$1" -v c="$2" 'BEGIN { n = split(g, gs, " "); split(c, cs, " "); for (i = 1; i <= n; i++) { G += gs[i]; C += cs[i] / 100 } printf "%.1f", G / C }'
}

node_median=$(echo "${gbits[node:net pipe]}" | median)
{
  echo "# Forwarder throughput: asyncore-forward vs node:net pipe() vs socat"
  echo
  echo "- Command: \`$COMMAND\`"
  echo "- Date: $(date -u '+%Y-%m-%d %H:%M UTC')"
  echo "- Machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(uname -sr)"
  echo "- Node: $(node --version); iperf3: $(iperf3 --version | head -1 | cut -d' ' -f2); socat: $(socat -V | sed -n 's/^socat version \([^ ]*\).*/\1/p')"
  echo "- Load average before the run: $load_before"
  echo "- Setup: loopback only; the forwarder pinned to CPU $FORWARDER_CPU, iperf3 client and server to CPU $IPERF_CPU"
  echo "  (\`taskset\`); one TCP stream, client to server, $RUNS runs of $SECONDS_PER_RUN s per configuration,"
  echo "  interleaved round by round; median reported. Forwarder CPU is user+system time over the run."
  echo
  echo "| forwarder | runs (Gbit/s) | median (Gbit/s) | vs node:net | forwarder CPU per run (%) | Gbit/s per forwarder CPU-second |"
  echo "|---|---|---|---|---|---|"
  for name in "${names[@]}"; do
    m=$(echo "${gbits[$name]}" | median)
    ratio=$(awk -v a="$m" -v b="$node_median" 'BEGIN { printf "%.2fx", a / b }')
    echo "| $name |${gbits[$name]} | $m | $ratio |${cpu[$name]} | $(efficiency "${gbits[$name]}" "${cpu[$name]}") |"
  done
  echo "| (no forwarder: iperf3 direct) |${gbits[direct]} | $(echo "${gbits[direct]}" | median) | | | |"
  cat <<'NOTES'

How to read it: asyncore-forward's default on Linux ("splice") moves bytes from socket to
kernel pipe to socket with splice(2) (SplicePipe): they never reach user space. With --copy
("copy") it receives into one shared buffer and sends from it, copying in JavaScript only
what the receiving socket does not take at once; node:net allocates a Buffer per read and
goes through streams; socat forks per connection and copies with read()/write() through an
8 KiB buffer by default. The copying forwarders move every byte across the user/kernel
boundary twice. The iperf3 client and server share CPU 1 and do as much copying there as the
forwarder does on CPU 0: a forwarder CPU near 100 % means the forwarder's core was the limit,
one well below it means the forwarder was waiting for iperf3's core. The last column
(throughput per forwarder CPU-second) compares the forwarders' own costs either way.
NOTES
} >"$OUT"
cat "$OUT"
