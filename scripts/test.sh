#!/usr/bin/env bash
# The README's test command: install, run the test suite offline, run the smoke experiment, and execute
# both notebooks against the smoke results. CI (.ci/run) calls exactly this.
set -euo pipefail
cd "$(dirname "$0")/.."

# torch first and pinned: an unpinned install pulls several GB of CUDA packages.
python -m pip install --quiet --disable-pip-version-check "torch==2.13.0"
python -m pip install --quiet --disable-pip-version-check -e ".[dev]"

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TRANSFORMERS_OFFLINE=1 WANDB_MODE=disabled
export HF_HOME="$tmp/hf" WANDB_DIR="$tmp/wandb" MPLCONFIGDIR="$tmp/mpl" MPLBACKEND=Agg

echo "== pytest"
python -m pytest -n 2 -p no:cacheprovider --durations=25   # the slowest tests, for keeping CI short

echo "== smoke experiment"
python scripts/run.py experiment=smoke logger=none hydra.run.dir="$tmp/smoke"

echo "== notebooks (against the smoke results)"
for nb in notebooks/*.ipynb; do
  STAIRS_RESULTS="$tmp/smoke" python -m jupyter nbconvert --to notebook --execute "$nb" \
    --output-dir "$tmp/nb" --ExecutePreprocessor.timeout=600
done
echo "all checks passed"
