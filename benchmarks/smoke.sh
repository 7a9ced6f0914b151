#!/usr/bin/env bash
# Runs every benchmark in --quick mode: a smoke test that the scripts still work (the figures
# printed mean nothing). From anywhere: bash benchmarks/smoke.sh. Exits non-zero on the first
# script that fails. start_latency needs root and is skipped (with a note) without it.
set -euo pipefail
cd "$(dirname "$0")/.."
python="${PYTHON:-python3}"
for script in machine_binding fsm_overhead scale concurrency start_latency thin_snapshot; do
    echo "### benchmarks/${script}.py --quick"
    SECONDS=0
    "$python" -m "benchmarks.${script}" --quick
    printf '### %s: ok in %d s\n\n' "$script" "$SECONDS"
done
echo "### all benchmarks ran (smoke)"
