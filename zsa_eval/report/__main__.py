"""`python -m zsa_eval.report leaderboard results/`, `python -m zsa_eval.report compare RUN_A RUN_B` and
`python -m zsa_eval.report reproducibility results/ --out docs/reproducibility.md`."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from zsa_eval.config import CONFIG_DIR
from zsa_eval.errors import UserError
from zsa_eval.store import METRICS_FILE, RUN_FILE, atomic_write
from zsa_eval.report.compare import COMPARE_CLIPS, compare_runs, comparison_dir, write_comparison
from zsa_eval.report.leaderboard import leaderboard_markdown, rebuild_leaderboard
from zsa_eval.report.reproducibility import reproducibility_page


def printed(text: str) -> None:
    """Print a command's result on stdout; a reader that stops early (`| head`) is no error: the files are written
    before, so the rest goes nowhere and the command exits as it would have."""
    try:
        print(text, end="", flush=True)
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # Python flushes stdout again at exit


def results_directory(path: Path, purpose: str) -> Path:
    """A directory of runs to read (and write `purpose` into): not a run's own directory, whose files are its run's
    alone (a resume or an overwrite would then find files the run never wrote)."""
    if not path.is_dir():
        raise UserError(f"{path} is not a directory; pass the results directory")
    if (path / RUN_FILE).is_file():
        raise UserError(f"{path} is a run's own directory, which holds that run's files only: pass the results "
                        f"directory that holds the runs (e.g. {path.parent}) for the {purpose}")
    return path


def holds_runs(path: Path) -> bool:
    return next(path.rglob(METRICS_FILE), None) is not None


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
    reproducibility = commands.add_parser(
        "reproducibility", help="the published figures of the dataset configs beside the runs that reproduce them")
    reproducibility.add_argument("results_dir", type=Path, nargs="?", default=Path("results"))
    reproducibility.add_argument("--config-dir", type=Path, action="append", default=[], dest="config_dirs",
                                 help="a config directory of your own (its dataset/ and reference/ files), as for "
                                      "zsa-eval --config-dir; may be given more than once")
    reproducibility.add_argument("--out", type=Path, default=None,
                                 help="where the page goes (default: reproducibility.md in the results directory, "
                                      "and printed)")
    arguments = parser.parse_args(argv)
    try:
        if arguments.command == "reproducibility":
            results_dir = results_directory(arguments.results_dir, "reproducibility page")
            page = reproducibility_page(results_dir, [Path(CONFIG_DIR), *arguments.config_dirs], str(results_dir))
            if arguments.out is None and not holds_runs(results_dir):
                raise UserError(f"{results_dir} holds no zsa-eval run, so the page would go into a folder of no "
                                "results: pass the results directory, or --out FILE to write the page (every figure "
                                "'not run') elsewhere")
            out = arguments.out or arguments.results_dir / "reproducibility.md"
            atomic_write(out, page)
            if arguments.out is None:
                printed(page)
            print(f"zsa-eval: reproducibility page written to {out}", file=sys.stderr)
        elif arguments.command == "leaderboard":
            results_dir = results_directory(arguments.results_dir, "leaderboard")
            printed(leaderboard_markdown(rebuild_leaderboard(results_dir, arguments.every_run)))
        else:
            if arguments.clips < 0:
                raise UserError(f"--clips {arguments.clips} is below 0; pass --clips 0 for no players, or more")
            comparison = compare_runs(arguments.run_a, arguments.run_b, arguments.resamples, arguments.seed)
            out = arguments.out or comparison_dir(arguments.run_a, arguments.run_b)
            if (out / RUN_FILE).is_file():
                raise UserError(f"--out {out} is a run's own directory, which holds that run's files only: choose "
                                "another folder for the comparison")
            printed(write_comparison(comparison, out, arguments.clips))
            print(f"zsa-eval: comparison written to {out}", file=sys.stderr)
    except UserError as error:
        print(f"zsa-eval: error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
