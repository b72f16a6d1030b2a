"""`python -m zsa_eval.report leaderboard results/` and `python -m zsa_eval.report compare RUN_A RUN_B`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from zsa_eval.errors import UserError
from zsa_eval.report.compare import COMPARE_CLIPS, compare_runs, comparison_dir, write_comparison
from zsa_eval.report.leaderboard import leaderboard_markdown, write_leaderboard


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m zsa_eval.report", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    leaderboard = commands.add_parser("leaderboard", help="rebuild the leaderboard from the run directories")
    leaderboard.add_argument("results_dir", type=Path, nargs="?", default=Path("results"))
    leaderboard.add_argument("--all", action="store_true", dest="every_run",
                             help="every run, whatever its status, with a status column (leaderboard_all.*)")
    compare = commands.add_parser("compare", help="compare two runs (B against A)")
    compare.add_argument("run_a", type=Path)
    compare.add_argument("run_b", type=Path)
    compare.add_argument("--out", type=Path, default=None,
                         help="where compare.md, .json, .html, compare_recall.png and changed_predictions.csv go "
                              "(default: a folder of this pair's own under $ZSA_EVAL_RESULTS or results/, compare/)")
    compare.add_argument("--resamples", type=int, default=1000, help="paired bootstrap resamples")
    compare.add_argument("--seed", type=int, default=0, help="seed of the paired bootstrap")
    compare.add_argument("--clips", type=int, default=COMPARE_CLIPS,
                         help="compare.html plays the clips of the first N items it lists (0: none)")
    arguments = parser.parse_args(argv)
    try:
        if arguments.command == "leaderboard":
            if not arguments.results_dir.is_dir():
                raise UserError(f"{arguments.results_dir} is not a directory; pass the results directory")
            print(leaderboard_markdown(write_leaderboard(arguments.results_dir, arguments.every_run)), end="")
        else:
            if arguments.clips < 0:
                raise UserError(f"--clips {arguments.clips} is below 0; pass --clips 0 for no players, or more")
            comparison = compare_runs(arguments.run_a, arguments.run_b, arguments.resamples, arguments.seed)
            out = arguments.out or comparison_dir(arguments.run_a, arguments.run_b)
            print(write_comparison(comparison, out, arguments.clips), end="")
            print(f"zsa-eval: comparison written to {out}", file=sys.stderr)
    except UserError as error:
        print(f"zsa-eval: error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
