#!/usr/bin/env bash
# KRPC serving, two builds side by side: each round starts build A's dht-node, then build
# B's, pinned to CPU 0 on loopback (--no-bootstrap), gives it a routing table like one on
# the live DHT (`xtask fill`), and loads it from CPU 1 (`xtask load`, one load thread) for
# DURATION seconds per query kind. Rounds alternate A and B so that drift in what else the
# machine does falls on both. Prints answered/s per run and the median of each build.
#
# usage: contrib/perf/serve_ab.sh A_DHT_NODE B_DHT_NODE [ROUNDS=8] [DURATION=5] [QUERIES="ping find_node"]
# The xtask binary is target/release/xtask (`cargo build --release -p xtask`).
# LIBTORRENT=1 adds libtorrent's DHT node (contrib/perf/libtorrent_node.py, python3-libtorrent)
# as a third server L in every round, first in odd rounds and last in even ones, filled and
# loaded the same way; its median and B/L are printed too. `cargo xtask perf --libtorrent`
# does the same beside the echo ceiling.
set -euo pipefail
A=$1; B=$2; ROUNDS=${3:-8}; DURATION=${4:-5}; QUERIES=${5:-"ping find_node"}
XTASK=${XTASK:-target/release/xtask}
PORT=${PORT:-47100}
LIBTORRENT=${LIBTORRENT:-0}
PYTHON=${DHT_INTEROP_PYTHON:-/usr/bin/python3}
LT_NODE="$(dirname "$0")/libtorrent_node.py"
results=$(mktemp)
run() { # label bin query
  local label=$1 bin=$2 q=$3
  if [ "$label" = L ]; then
    taskset -c 0 "$PYTHON" "$LT_NODE" "127.0.0.1:$PORT" >/dev/null 2>&1 &
  else
    taskset -c 0 "$bin" --listen "127.0.0.1:$PORT" --no-bootstrap >/dev/null 2>&1 &
  fi
  local pid=$!
  sleep 0.5
  # The interpreter and libtorrent take longer to start than a binary.
  if [ "$label" = L ]; then sleep 1.5; fi
  taskset -c 1 "$XTASK" fill --target "127.0.0.1:$PORT" --seconds 3 >/dev/null 2>&1 || true
  local rate
  rate=$(taskset -c 1 "$XTASK" load --target "127.0.0.1:$PORT" --query "$q" \
    --duration "$DURATION" --quiet --json | tail -1 |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["answered_per_s"])')
  kill "$pid"; wait "$pid" 2>/dev/null || true
  echo "$label $q $rate" | tee -a "$results"
}
for r in $(seq 1 "$ROUNDS"); do
  for q in $QUERIES; do
    if (( r % 2 )); then
      if [ "$LIBTORRENT" = 1 ]; then run L - "$q"; fi
      run A "$A" "$q"; run B "$B" "$q"
    else
      run B "$B" "$q"; run A "$A" "$q"
      if [ "$LIBTORRENT" = 1 ]; then run L - "$q"; fi
    fi
  done
done
python3 - "$results" <<'PY'
import sys, statistics, collections
runs = collections.defaultdict(list)
for line in open(sys.argv[1]):
    label, q, rate = line.split()
    runs[(q, label)].append(float(rate))
for q in sorted({q for q, _ in runs}):
    a, b = statistics.median(runs[(q, "A")]), statistics.median(runs[(q, "B")])
    print(f"{q}: median A {a:.0f}/s, B {b:.0f}/s, B/A {b / a:.3f} "
          f"(A {sorted(runs[(q, 'A')])}, B {sorted(runs[(q, 'B')])})")
    if runs[(q, "L")]:
        lt = statistics.median(runs[(q, "L")])
        lt_or_1 = lt if lt > 0 else float("nan")
        print(f"{q}: median libtorrent {lt:.0f}/s, A/L {a / lt_or_1:.3f}, B/L {b / lt_or_1:.3f} "
              f"(L {sorted(runs[(q, 'L')])})")
PY
rm -f "$results"
