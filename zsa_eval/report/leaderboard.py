"""The leaderboard: one row per run found under the results directory, rebuilt from the runs themselves."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
from filelock import FileLock

from zsa_eval.report import atomic_write, write_csv
from zsa_eval.report.plots import accuracy_heatmap_png

COLUMNS = ["dataset", "model", "template", "accuracy", "top_k_accuracy", "balanced_accuracy", "macro_f1", "n",
           "clips_per_s", "date", "run_dir"]
RUN_KEYS = {"dataset", "model", "template", "accuracy", "top_k_accuracy", "balanced_accuracy", "macro_f1",
            "n_evaluated", "started_at"}


def collect_runs(results_dir: Path) -> pd.DataFrame:
    """Every run directory (holding a zsa-eval metrics.json) below `results_dir`, best accuracy first."""
    rows = []
    for metrics_file in sorted(results_dir.rglob("metrics.json")):
        try:
            metrics = json.loads(metrics_file.read_text())
        except (OSError, json.JSONDecodeError):
            continue
        if not isinstance(metrics, dict) or not RUN_KEYS <= metrics.keys():
            continue
        rows.append({**{key: metrics[key] for key in COLUMNS[:7]}, "n": metrics["n_evaluated"],
                     "clips_per_s": metrics.get("clips_per_s"), "date": metrics["started_at"],
                     "run_dir": metrics_file.parent.relative_to(results_dir).as_posix()})
    board = pd.DataFrame(rows, columns=COLUMNS)
    return board.sort_values(["accuracy", "date", "run_dir"], ascending=[False, False, True],
                             kind="stable").reset_index(drop=True)


def leaderboard_markdown(board: pd.DataFrame) -> str:
    return board.to_markdown(index=False, floatfmt=".4f") + "\n"


def write_leaderboard(results_dir: Path) -> pd.DataFrame:
    """Rebuild leaderboard.csv, leaderboard.md and leaderboard_heatmap.png in `results_dir`.

    Under a file lock, so concurrent runs finishing together leave a leaderboard that holds all of them."""
    results_dir.mkdir(parents=True, exist_ok=True)
    with FileLock(results_dir / ".leaderboard.lock"):
        board = collect_runs(results_dir)
        write_csv(board, results_dir / "leaderboard.csv")
        atomic_write(results_dir / "leaderboard.md", leaderboard_markdown(board))
        if not board.empty:
            atomic_write(results_dir / "leaderboard_heatmap.png", accuracy_heatmap_png(board))
    return board
