#!/usr/bin/env bash
# Mutation testing of the pure modules (metrics, audio, data/, cache, report tables) with their fast
# tests: mutmut (pip install -e '.[test,mutation]') changes one operator or constant at a time and reruns the tests
# that reach it; a mutant the tests do not notice "survives". Prints the kill rate per module, then the survivors
# that scripts/mutation_equivalents.tsv does not explain as equivalent. Pass mutant names or globs to run a part
# (e.g. 'zsa_eval.tasks.classification*').
# Slow (tens of minutes on 2 cores), so not part of CI. Settings: [tool.mutmut] in pyproject.toml.
set -euo pipefail
cd "$(dirname "$0")/.."
rm -rf mutants
python -m mutmut run --max-children "${MUTATION_JOBS:-2}" "$@" > mutants.log 2>&1 || { tail -40 mutants.log; exit 1; }
python scripts/mutation_report.py   # the table (also results/mutation.md) and the unexplained survivors
