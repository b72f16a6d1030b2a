#!/usr/bin/env bash
# Mutation testing of the pure modules (metrics, audio, data, folders, cache, report tables) with their fast
# tests: mutmut (pip install -e '.[mutation]') changes one operator or constant at a time and reruns the tests
# that reach it; a mutant the tests do not notice "survives". Prints the kill rate per module, then the survivors.
# Slow (tens of minutes on 2 cores), so not part of CI. Settings: [tool.mutmut] in pyproject.toml.
set -euo pipefail
cd "$(dirname "$0")/.."
rm -rf mutants
python -m mutmut run --max-children "${MUTATION_JOBS:-2}" > mutants.log 2>&1 || { tail -40 mutants.log; exit 1; }
python -m mutmut results --all true > mutants/results.txt
python - <<'PY'
import collections, re

counts, survivors = collections.defaultdict(collections.Counter), []
for line in open("mutants/results.txt"):
    match = re.match(r"\s*([\w.]+?)\.(?:x_|x\u01c1)\S*__mutmut_\d+: (.+)", line)
    if match:
        module, status = match.group(1), match.group(2).strip()
        counts[module][status] += 1
        survivors += [line.split(":")[0].strip()] if status == "survived" else []
print(f"{'module':28} {'mutants':>7} {'killed':>6} {'survived':>8} {'no tests':>8} {'unchecked':>9} {'kill rate':>9}")
total = collections.Counter()
for module in [*sorted(counts), "all"]:
    c = total if module == "all" else counts[module]
    total.update(c if module != "all" else {})
    checked = c["killed"] + c["timeout"] + c["survived"] + c["no tests"]
    print(f"{module:28} {sum(c.values()):7} {c['killed'] + c['timeout']:6} {c['survived']:8} {c['no tests']:8} "
          f"{c['not checked']:9} {(c['killed'] + c['timeout']) / max(checked, 1):9.1%}")
print("\nsurviving mutants (mutmut show NAME):", *survivors, sep="\n  ")
PY
