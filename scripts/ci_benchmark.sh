#!/usr/bin/env bash
# The CI benchmark job's own steps, runnable anywhere: evaluate, gate, rebuild the leaderboard, summarize.
#
#   bash scripts/ci_benchmark.sh
#
# Real model: when ZSA_EVAL_REAL_MODEL=1, or when the Hugging Face cache already holds LAION's checkpoints
# (lukewys/laion_clap), it reproduces LAION's published ESC-50 figure (reference=esc50-laion-readme-fused: its
# checkpoint, 630k-audioset-fusion-best.pt, fold 1, prompt and preprocessing) and gates on that figure
# (gate.reference: no more than ZSA_EVAL_MAX_DROP below it, default 0.02) and on the floor ZSA_EVAL_MIN_ACCURACY
# (default 0.80). Otherwise it runs the offline smoke config
# (tiny random CLAP, synthetic sounds) and gates it against scripts/ci_baseline.json with no drop allowed: a check
# that the whole pipeline still produces the same result. Exit codes: 0 pass, 2 user error, 3 gate failed. Results
# go to ZSA_EVAL_RESULTS (default results/).
set -euo pipefail
cd "$(dirname "$0")/.."
results="${ZSA_EVAL_RESULTS:-results}"
hub_cache="${HF_HOME:-$HOME/.cache/huggingface}/hub/models--lukewys--laion_clap"

if [ "${ZSA_EVAL_REAL_MODEL:-0}" = 1 ] || [ -d "$hub_cache" ]; then
  echo "ci_benchmark: real model: LAION's published ESC-50 figure for 630k-audioset-fusion-best.pt, reproduced and gated"
  python -m zsa_eval reference=esc50-laion-readme-fused progress=false results_dir="$results" \
    gate.reference=true gate.max_drop="${ZSA_EVAL_MAX_DROP:-0.02}" gate.min_accuracy="${ZSA_EVAL_MIN_ACCURACY:-0.80}"
else
  echo "ci_benchmark: offline smoke config (tiny random model, synthetic data)"
  python -m zsa_eval dataset=synthetic model=tiny_random model.random_init_seed=1 progress=false \
    results_dir="$results" \
    gate.baseline=scripts/ci_baseline.json gate.max_drop=0
fi

python -m zsa_eval.report leaderboard "$results" >/dev/null
if [ -n "${GITHUB_STEP_SUMMARY:-}" ]; then
  { echo "## zsa-eval leaderboard"; echo; cat "$results/leaderboard.md"; } >>"$GITHUB_STEP_SUMMARY"
fi
cat "$results/leaderboard.md"
