#!/usr/bin/env bash
# Instructions per answered KRPC query of a release dht-node, counted by callgrind (exact,
# whatever else the machine runs; user space only: the kernel's side of each system call is
# not counted, so the script also counts the node's system calls with strace in a second run).
#
# For each query kind: starts the node under callgrind on 127.0.0.1 (--no-bootstrap), fills
# its table (`xtask fill`), zeroes callgrind's counters, loads it for DURATION seconds
# (`xtask load`, a 60 s timeout so that nothing the node answered is counted as lost),
# dumps the counters and prints Ir / (answered + late). Then the same load against the node
# with `strace -c -f` attached for the load gives the system calls per answered query
# (strace slows the node, so its batches are larger than without it: a lower bound).
#
# usage: contrib/perf/serve_ir.sh DHT_NODE [DURATION=10] [QUERIES="ping find_node get_peers"]
# XTASK (default target/release/xtask), OUT (default /tmp/serve-ir) for the callgrind files:
# `callgrind_annotate --inclusive=yes OUT/QUERY.out.2` shows where the instructions went.
set -euo pipefail
NODE=$1; DURATION=${2:-10}; QUERIES=${3:-"ping find_node get_peers"}
XTASK=${XTASK:-target/release/xtask}
OUT=${OUT:-/tmp/serve-ir}
PORT=${PORT:-47200}
mkdir -p "$OUT"
load() { # query -> "answered late"
  "$XTASK" load --target "127.0.0.1:$PORT" --query "$1" --duration "$DURATION" \
    --timeout 60 --quiet --json | tail -1 |
    python3 -c 'import json,sys; r=json.load(sys.stdin); print(r["answered"], r["late"])'
}
for q in $QUERIES; do
  rm -f "$OUT/$q.out"*
  valgrind --tool=callgrind --callgrind-out-file="$OUT/$q.out" \
    "$NODE" --listen "127.0.0.1:$PORT" --no-bootstrap >/dev/null 2>"$OUT/$q.valgrind.log" &
  pid=$!
  sleep 3
  # The table's size moves the cost of find_node and get_peers (closest): say it.
  filled=$("$XTASK" fill --target "127.0.0.1:$PORT" --seconds 20 2>/dev/null | tail -1 |
    sed -n 's/.*, \([0-9]*\) pinged by the target.*/\1/p') || true
  callgrind_control --zero "$pid" >/dev/null
  read -r answered late < <(load "$q")
  callgrind_control --dump="after the $q load" "$pid" >/dev/null
  kill -INT "$pid"; wait "$pid" 2>/dev/null || true
  # The dump after the zeroing holds the load only.
  dump=$(grep -l "after the $q load" "$OUT/$q.out"* | head -1)
  ir=$(grep -m1 '^summary:' "$dump" | awk '{print $2}')
  python3 -c "a=$answered+$late; print(f'$q: {$ir} Ir for {a} answered, {$ir/max(a,1):.0f} Ir per answered, ${filled:-?} contacts admitted by fill ($dump)')"

  "$NODE" --listen "127.0.0.1:$PORT" --no-bootstrap >/dev/null 2>&1 &
  pid=$!
  sleep 1
  "$XTASK" fill --target "127.0.0.1:$PORT" --seconds 3 >/dev/null 2>&1 || true
  # Attached for the load only; SIGINT makes strace detach and write its summary.
  strace -f -c -o "$OUT/$q.strace" -p "$pid" 2>/dev/null &
  tracer=$!
  sleep 1
  read -r answered late < <(load "$q")
  kill -INT "$tracer"; wait "$tracer" 2>/dev/null || true
  kill -INT "$pid"; wait "$pid" 2>/dev/null || true
  python3 - "$OUT/$q.strace" "$answered" "$late" "$q" <<'PY'
import sys
path, answered, late, q = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
calls = {}
for line in open(path):
    parts = line.split()
    if len(parts) >= 5 and parts[-1].isidentifier() and parts[-1] != "total" and parts[3].isdigit():
        calls[parts[-1]] = int(parts[3])
a = max(answered + late, 1)
shown = ", ".join(f"{k} {v / a:.3f}" for k, v in sorted(calls.items(), key=lambda kv: -kv[1])[:6])
print(f"{q}: syscalls per answered under strace: {sum(calls.values()) / a:.3f} ({shown})")
PY
done
