# Sourced by loadtest/bench-*.sh: what every benchmark section carries besides its own
# figures. A script run with `--section FILE` writes FILE as one JSON object,
# `corridor-bench/section/v1`, which loadtest/bench renders into BENCHMARKS.md:
#
#   name, title       the section's key (http, dns, meta, redis) and heading
#   setup             Markdown: what runs where (the script owns this text)
#   command           the exact command, every flag spelt out
#   statistic, rounds which figure of the rounds counts, and how many rounds ran
#   quick             true for a --quick run (plumbing check, figures not meaningful)
#   started, finished UTC, around the measured rounds only (builds and set-up excluded)
#   load_before, load_after   1-minute load average at those two moments
#   commit, machine   `git describe --always --dirty`; cores, CPU model, kernel
#   tables            [{title, markdown}]: the results, ratios included
#   goals             [{issue, what, value, unit, op, threshold, rounds}]: loadtest/bench
#                     judges each (value op threshold) and prints its verdict line;
#                     unit is "x" (a ratio), "us" or "count"; value null = not measured
#   notes             the section's part of docs/performance.md (a path with #anchor)
#   remarks           [Markdown lines]: anything a reader must know about this run
#
# The script sets BENCH_NAME, BENCH_TITLE, BENCH_SETUP, BENCH_COMMAND, BENCH_NOTES and
# BENCH_QUICK (0 or 1), calls bench_start and bench_end around its measured rounds, and
# bench_write_section FILE BODY with BODY a JSON file holding statistic, rounds, tables,
# goals and remarks.

# The 1-minute load average.
bench_load() { cut -d' ' -f1 /proc/loadavg; }

# Marks the start of the measured rounds.
bench_start() {
  BENCH_STARTED=$(date -u +%Y-%m-%dT%H:%M:%SZ)
  BENCH_LOAD_BEFORE=$(bench_load)
}

# Marks their end.
bench_end() {
  BENCH_FINISHED=$(date -u +%Y-%m-%dT%H:%M:%SZ)
  BENCH_LOAD_AFTER=$(bench_load)
}

# bench_write_section FILE BODY: FILE gets the section object (see above).
bench_write_section() {
  local file=$1 body=$2
  BENCH_COMMIT=$(git describe --always --dirty --abbrev=7 2>/dev/null || echo unknown)
  BENCH_CPU=$(sed -n 's/^model name[[:space:]]*:[[:space:]]*//p' /proc/cpuinfo | head -1)
  BENCH_CORES=$(nproc)
  BENCH_KERNEL=$(uname -r)
  export BENCH_NAME BENCH_TITLE BENCH_SETUP BENCH_COMMAND BENCH_NOTES BENCH_QUICK \
    BENCH_STARTED BENCH_FINISHED BENCH_LOAD_BEFORE BENCH_LOAD_AFTER \
    BENCH_COMMIT BENCH_CPU BENCH_CORES BENCH_KERNEL
  python3 - "$file" "$body" <<'PY'
import json, os, sys
out, body = sys.argv[1], json.load(open(sys.argv[2]))
e = os.environ
section = {
    "schema": "corridor-bench/section/v1",
    "name": e["BENCH_NAME"], "title": e["BENCH_TITLE"],
    "setup": e["BENCH_SETUP"].strip(), "command": e["BENCH_COMMAND"],
    "statistic": body["statistic"], "rounds": body["rounds"],
    "quick": e.get("BENCH_QUICK", "0") == "1",
    "started": e["BENCH_STARTED"], "finished": e["BENCH_FINISHED"],
    "load_before": float(e["BENCH_LOAD_BEFORE"]), "load_after": float(e["BENCH_LOAD_AFTER"]),
    "commit": e["BENCH_COMMIT"],
    "machine": {"cores": int(e["BENCH_CORES"]), "cpu": e["BENCH_CPU"], "kernel": e["BENCH_KERNEL"]},
    "tables": body["tables"], "goals": body["goals"],
    "notes": e["BENCH_NOTES"], "remarks": body.get("remarks", []),
}
with open(out, "w") as f:
    json.dump(section, f, indent=1, ensure_ascii=False)
    f.write("\n")
PY
}

# The Debian package version of $1 without epoch or Debian revision (1.22.1), or "?".
bench_pkg_version() {
  local v
  v=$(dpkg-query -W -f='${Version}' "$1" 2>/dev/null | sed 's/^[0-9]*://; s/[-+~].*//')
  echo "${v:-?}"
}

# The version of the Envoy binary $1 (1.40.0), or "?".
bench_envoy_version() {
  local v
  v=$("$1" --version 2>/dev/null | sed -n 's|.*version: [0-9a-f]*/\([0-9.]*\)/.*|\1|p')
  echo "${v:-?}"
}

# A random 127.<n>.0.0/16 for the controller's gateway addresses. A service's address is
# a hash of its name within the range, so a fixed range would make two runs at once (or a
# run beside a hand-started mesh) collide on the same address and port.
bench_cidr() { echo "127.$((RANDOM % 150 + 101)).0.0/16"; }

# bench_pairs N A B: N back-to-back pairs of the commands A and B (strings, run with eval;
# each prints one figure), A first in odd pairs and second in even ones, so neither always
# runs on the other's heels. Prints "<pair> <A's figure> <B's figure>" per pair, 0 where a
# command printed nothing. loadtest/pairstats.py summarises them.
bench_pairs() {
  # Locals named so that the commands, evaluated here, still see the caller's variables.
  local _bp_i _bp_a _bp_b
  for _bp_i in $(seq "$1"); do
    if [ $((_bp_i % 2)) -eq 1 ]; then _bp_a=$(eval "$2"); _bp_b=$(eval "$3")
    else _bp_b=$(eval "$3"); _bp_a=$(eval "$2"); fi
    echo "$_bp_i ${_bp_a:-0} ${_bp_b:-0}"
  done
}
