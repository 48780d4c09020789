#!/usr/bin/env bash
# The GPU kit: on a CUDA machine with this checkout installed (README) and no network, one command
#
#     bash scripts/gpu_check.sh
#
# runs the shipped tiny pair and the T5-large and T5-3B ARCHITECTURE pairs (seeded random weights, controlled-α
# draft) in bfloat16: greedy, hf_greedy, stairs, stairs_cached, hf_assisted, hf_assisted_default, k in {1, 2, 4, 8},
# alpha in {0.5, 0.7, 0.9} (conf/experiment/gpu_*.yaml). It writes results/tiny_gpu, results/paper_scale_t5_large_gpu
# and results/paper_scale_t5_3b_gpu (results.jsonl appended as it goes, env.json naming the GPU and versions), then
# regenerates paper_figures/ (the GPU figures go to paper_figures/cuda/, apart from the CPU ones). Sized to finish
# in under 10 minutes on one data-centre GPU (estimate: about 1 min tiny pair, 3-4 min each architecture pair).
# An interrupted kit continues where it stopped when run again (resume=true); delete a results/*_gpu folder to
# measure it afresh.
#
# Environment: DEVICE (default cuda), DTYPE (bfloat16), PYTHON (python), RESULTS (results), FIGURES
# (paper_figures), SMOKE=1: a rehearsal in about a minute on any machine (the t5-small architecture in place of
# both large targets, 1 example, 8 tokens; into a temp folder unless RESULTS/FIGURES are given), which is what the
# test suite runs.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python}
DEVICE=${DEVICE:-cuda}
DTYPE=${DTYPE:-bfloat16}
if [ "${SMOKE:-0}" = 1 ]; then     # a rehearsal never writes into the committed results/ and paper_figures/
  rehearsal=$(mktemp -d)
  RESULTS=${RESULTS:-$rehearsal/results}
  FIGURES=${FIGURES:-$rehearsal/figures}
fi
RESULTS=${RESULTS:-results}
FIGURES=${FIGURES:-paper_figures}
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 MPLBACKEND=Agg WANDB_MODE=${WANDB_MODE:-disabled}

small=()
if [ "${SMOKE:-0}" = 1 ]; then
  small=(model=t5_small_arch task.num_examples=1 task.max_new_tokens=8 warmup_max_new_tokens=4
         cost_ratio.rounds=2 cost_ratio.steps=4 progress=false)
fi

# A CPU rehearsal runs the kit's bfloat16 on whatever CPU it has (emulated where it has no bfloat16 matrix units).
[ "$DEVICE" = cpu ] && [ "${SMOKE:-0}" = 1 ] && small+=(allow_emulated_dtype=true)

if [ "$DEVICE" != cpu ]; then
  "$PYTHON" -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else \
'error: DEVICE=$DEVICE but torch sees no CUDA device (torch ' + torch.__version__ + '); DEVICE=cpu SMOKE=1 rehearses')"
fi

run() {   # run <experiment> <results folder> [overrides...]
  local exp=$1 dir=$2
  shift 2
  echo "== $exp -> $RESULTS/$dir ($(date -u +%H:%M:%S))"
  "$PYTHON" scripts/run.py "experiment=$exp" "device=$DEVICE" "dtype=$DTYPE" logger=none resume=true \
    "hydra.run.dir=$RESULTS/$dir" "$@"
}

start=$(date +%s)
tiny=()
[ "${SMOKE:-0}" = 1 ] && tiny=(task.num_examples=2 task.max_new_tokens=8 warmup_examples=1 progress=false)
[ "$DEVICE" = cpu ] && [ "${SMOKE:-0}" = 1 ] && tiny+=(allow_emulated_dtype=true)
run gpu_tiny tiny_gpu ${tiny[@]+"${tiny[@]}"}          # (this form: empty arrays under set -u, bash < 4.4)
run gpu_t5_large paper_scale_t5_large_gpu ${small[@]+"${small[@]}"}
run gpu_t5_3b paper_scale_t5_3b_gpu ${small[@]+"${small[@]}"}

echo "== figures -> $FIGURES"
"$PYTHON" scripts/make_figures.py "$RESULTS" --out "$FIGURES"
echo "gpu kit done in $(( $(date +%s) - start )) s: $RESULTS/{tiny_gpu,paper_scale_t5_large_gpu,paper_scale_t5_3b_gpu}"
