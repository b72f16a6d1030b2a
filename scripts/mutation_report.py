"""Summarize a mutmut run (scripts/mutation.sh): kill rate per module, survivors that
scripts/mutation_equivalents.tsv explains as equivalent, and the unexplained rest. Prints the table and writes it
to results/mutation.md.

A survivor matches an equivalents entry by its function and the mutated line as `mutmut show` prints it (stable
across runs, unlike mutmut's numbering)."""

from __future__ import annotations

import collections
import csv
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EQUIVALENTS = ROOT / "scripts" / "mutation_equivalents.tsv"
RESULT_LINE = re.compile(r"\s*(?P<name>(?P<module>[\w.]+?)\.x(?:_|\u01c1)(?P<function>\S*?)__mutmut_\d+): (?P<status>.+)")


def mutmut(*args: str) -> str:
    return subprocess.run([sys.executable, "-m", "mutmut", *args], cwd=ROOT, capture_output=True, text=True,
                          check=True).stdout


def mutated_line(name: str) -> str:
    """The first added line of the mutant's diff, stripped."""
    added = [line[1:].strip() for line in mutmut("show", name).splitlines()
             if line.startswith("+") and not line.startswith("+++")]
    return added[0] if added else ""


def read_equivalents() -> dict[tuple[str, str], str]:
    """(module.function, mutated line) -> why the mutant cannot change behaviour."""
    with EQUIVALENTS.open(newline="") as handle:
        rows = csv.DictReader((line for line in handle if not line.startswith("#")), delimiter="\t",
                              quoting=csv.QUOTE_NONE)
        return {(row["function"], row["mutated_line"]): row["reason"] for row in rows}


def main() -> None:
    equivalents = read_equivalents()
    counts: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    unexplained, explained = [], []
    for line in mutmut("results", "--all", "true").splitlines():
        match = RESULT_LINE.match(line)
        if not match:
            continue
        module, status = match["module"], match["status"].strip()
        if status == "survived":
            function = f"{module}.{match['function'].replace(chr(0x1c1), '.')}"
            change = mutated_line(match["name"])
            reason = equivalents.get((function, change))
            (explained if reason else unexplained).append((match["name"], change, reason))
            status = "equivalent" if reason else status
        counts[module][status] += 1
    header = "| module | mutants | killed | of which timeout | equivalent | survived | no tests | not checked | kill rate |"
    lines = [header, "|" + "---|" * 9]
    total = collections.Counter()
    for module in [*sorted(counts), "all"]:
        tally = total if module == "all" else counts[module]
        if module != "all":
            total.update(tally)
        killed = tally["killed"] + tally["timeout"]
        live = killed + tally["survived"] + tally["no tests"]
        lines.append(f"| {module} | {sum(tally.values())} | {killed} | {tally['timeout']} | {tally['equivalent']} | "
                     f"{tally['survived']} | {tally['no tests']} | {tally['not checked']} | {killed / max(live, 1):.1%} |")
    lines += ["", "kill rate = killed / (mutants checked - equivalent ones); a timeout counts as killed (mutmut's "
              "rule), so on busy cores check them again", "",
              f"unexplained survivors ({len(unexplained)}; `mutmut show NAME`):",
              *(f"- {name}: `{change}`" for name, change, _ in unexplained)]
    report = "\n".join(lines) + "\n"
    print(report)
    (ROOT / "results").mkdir(exist_ok=True)
    (ROOT / "results" / "mutation.md").write_text(report)


if __name__ == "__main__":
    main()
