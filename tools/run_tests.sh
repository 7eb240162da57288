#!/usr/bin/env bash
# The whole test suite (what `make test` and CI run). Expects the venv's bin on PATH.
set -euo pipefail
cd "$(dirname "$0")/.."
start=$SECONDS
step() { echo; echo "=== $1  [t=$((SECONDS - start)) s]"; }

step "0/4 browser for the animation tests"
bash tools/ensure_chromium.sh

step "1/4 sync: nbdev_export + nbdev_clean + README must change nothing"
bash tools/check_sync.sh

step "2/4 nbdev_test: every notebook runs top to bottom"
# Two notebooks run at once on two cores: one thread each, or their OpenMP pools fight over the cores.
OMP_NUM_THREADS=1 nbdev_test --n_workers 2 --timing

step "3/4 pytest --nbval: committed outputs still match"
python -m pytest --nbval --nbval-current-env --nbval-sanitize-with tools/nbval_sanitize.cfg \
    -p no:cacheprovider -q nbs/

step "4/4 pytest tests/"
python -m pytest -p no:cacheprovider -q tests/

echo
echo "All test stages passed in $((SECONDS - start)) s."
