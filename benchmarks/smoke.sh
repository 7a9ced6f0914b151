#!/usr/bin/env bash
# Runs every benchmark in --quick mode: a smoke test that the scripts still work (the figures
# printed mean nothing). From anywhere: bash benchmarks/smoke.sh [script ...] (default: all).
# Exits non-zero on the first script that fails. What needs root (start_latency, fsm_overhead's
# runc side, image_pull_load, image_create) or dm-thin (thin_snapshot) is skipped with a note
# without it; image_create without dm-thin measures overlay and vfs on the host instead (skipped
# only where overlay cannot mount either); image_pull_load is skipped without buildah, podman,
# skopeo or docker-registry.
set -euo pipefail
cd "$(dirname "$0")/.."
python="${PYTHON:-python3}"
scripts=("$@")
if [ ${#scripts[@]} -eq 0 ]; then
    scripts=(machine_binding fsm_overhead scale concurrency start_latency thin_snapshot
             image_create image_pull_load)
fi
for script in "${scripts[@]}"; do
    echo "### benchmarks/${script}.py --quick"
    SECONDS=0
    extra=()
    if [ "$script" = fsm_overhead ]; then
        extra=(--explain)  # the statement counts and the profile must keep working too
    fi
    "$python" -m "benchmarks.${script}" --quick "${extra[@]}"
    printf '### %s: ok in %d s\n\n' "$script" "$SECONDS"
done
echo "### all benchmarks ran (smoke)"
