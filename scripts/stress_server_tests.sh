#!/usr/bin/env bash
# The server tests REPEAT times in a row (default 20), under -n 2 while one busy-loop process per core
# competes for the CPU: timing races (keep-alive, deadlines, shutdown) show up here long before CI.
# Usage: make stress   or   REPEAT=5 bash scripts/stress_server_tests.sh [pytest args]
# HOGS (default: one per core) sets the number of busy loops; HOGS=0 when another job is the load.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
REPEAT=${REPEAT:-20}
hogs=()
cleanup() { for pid in "${hogs[@]}"; do kill "$pid" 2>/dev/null || true; done; }
trap cleanup EXIT
for _ in $(seq "${HOGS:-$(nproc)}"); do
    "$PY" -c "while True: pass" &
    hogs+=("$!")
done
for i in $(seq "$REPEAT"); do
    start=$(date +%s)
    if ! "$PY" -m pytest -n 2 -q -p no:cacheprovider tests/server "$@" > /tmp/stylenorm-stress-$$.log 2>&1; then
        cat /tmp/stylenorm-stress-$$.log
        echo "stress: run $i of $REPEAT FAILED under load"
        exit 1
    fi
    echo "stress: run $i of $REPEAT passed under load in $(( $(date +%s) - start )) s: $(tail -1 /tmp/stylenorm-stress-$$.log)"
done
rm -f /tmp/stylenorm-stress-$$.log
echo "stress: $REPEAT of $REPEAT runs passed under a parallel CPU load"
