#!/bin/bash
# The bench's load generator against wrk, on the same minimal server
# (fixtures/ceiling), alternating, as BENCHMARKS.md reports them.
#
#   cargo build --release && bash benches/generator_vs_wrk.sh [ROUNDS] [SECONDS] [CONNECTIONS]
#
# Needs wrk (Debian: apt install wrk). Every process it starts is ended by
# its PID.
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${1:-3}
SECS=${2:-5}
CONNS=${3:-32}
POEM=fixtures/poems/tyger.txt
BIN=target/release
command -v wrk >/dev/null || { echo "wrk is not installed" >&2; exit 2; }
[ -x $BIN/poetry-ceiling ] && [ -x $BIN/poetry-harness ] || { echo "run cargo build --release first" >&2; exit 2; }
LOG=$(mktemp)
trap 'rm -f "$LOG"' EXIT
for i in $(seq 1 "$ROUNDS"); do
  $BIN/poetry-ceiling --port 0 --http $POEM > "$LOG" 2>&1 &
  SERVER=$!
  for _ in $(seq 50); do grep -q listening "$LOG" && break; sleep 0.1; done
  PORT=$(sed -n 's/.*:\([0-9]*\)$/\1/p' "$LOG")
  WRK=$(wrk -t 2 -c "$CONNS" -d "${SECS}s" -H "Connection: close" "http://127.0.0.1:$PORT/" | awk '/Requests\/sec/ {print $2}')
  kill "$SERVER"; wait "$SERVER" 2>/dev/null || true
  OURS=$($BIN/poetry-harness bench --cmd "$BIN/poetry-ceiling --port {port} {poem}" --force \
      --connections "$CONNS" --duration "${SECS}s" --runs 1 | awk '/^cmd 1 \(/ {print $5, $NF}')
  echo "round $i, $CONNS connections: wrk $WRK requests/s; poetry-harness bench ${OURS% *} poems/s (generator CPU ${OURS#* })"
done
