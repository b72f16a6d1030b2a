#!/usr/bin/env bash
# Steps of the CI benchmark job (.github/workflows/benchmark.yml) that are more than one command, runnable anywhere:
#
#   bash scripts/ci_step.sh install    # README command 1, timed: the time goes to the log and the job summary
#   bash scripts/ci_step.sh summary    # the job summary's links: the results artifact and the pages inside it
#
# The summary reads ARTIFACT_URL (the upload step's artifact-url; a plain note without it) and ZSA_EVAL_RESULTS
# (default results/); both write to GITHUB_STEP_SUMMARY when it is set, and always to stdout.
set -euo pipefail
cd "$(dirname "$0")/.."
results="${ZSA_EVAL_RESULTS:-results}"

summarize() {
  if [ -n "${GITHUB_STEP_SUMMARY:-}" ]; then tee -a "$GITHUB_STEP_SUMMARY"; else cat; fi
}

case "${1:-}" in
  install)
    start=$SECONDS
    bash scripts/install.sh
    echo "Install (scripts/install.sh) took $((SECONDS - start)) s." | summarize
    ;;
  summary)
    {
      echo "## zsa-eval pages"
      echo
      if [ -n "${ARTIFACT_URL:-}" ]; then
        echo "Download the [results artifact]($ARTIFACT_URL) (zsa-eval-results.zip) and open these pages in it:"
      else
        echo "The results artifact was not uploaded; the pages were written here:"
      fi
      echo
      if [ -f "$results/leaderboard.html" ]; then echo "- \`leaderboard.html\`: every run, ranked"; fi
      find "$results" -name report.html -not -path "*/compare/*" 2>/dev/null | sort | while read -r page; do
        echo "- \`${page#"$results"/}\`: the run's figures, tables and mistakes to listen to"
      done
    } | summarize
    ;;
  *)
    echo "usage: bash scripts/ci_step.sh install|summary" >&2
    exit 2
    ;;
esac
