"""Compare two runs of one task on what both evaluated (`python -m zsa_eval.report compare RUN_A RUN_B`): the task
of the runs (their metrics.json) does the comparison; this writes what it returns: compare.md, compare.json and
its tables and figures."""

from __future__ import annotations

import json
import os
from pathlib import Path

from zsa_eval.errors import UserError
from zsa_eval.report import atomic_write, short_hash, write_csv, write_json
from zsa_eval.tasks.registry import task_named
from zsa_eval.tasks.comparing import Comparison


def run_metrics(run_dir: Path) -> dict:
    """A finished run's metrics.json."""
    try:
        metrics = json.loads((run_dir / "metrics.json").read_text())
    except (OSError, ValueError) as error:
        raise UserError(f"{run_dir} is not a finished zsa-eval run (metrics.json, predictions.csv): {error}; "
                        "pass run directories such as results/esc50/clap/sound_of/<timestamp>") from error
    if not isinstance(metrics, dict):
        raise UserError(f"{run_dir / 'metrics.json'} is not a zsa-eval metrics.json; pass the directory of a run")
    return metrics


def compare_runs(run_a: Path, run_b: Path, resamples: int = 1000, seed: int = 0) -> Comparison:
    """Compare run B against run A, through their task, on what both evaluated (runs of two tasks are refused)."""
    if resamples < 1:
        raise UserError(f"--resamples {resamples} leaves no bootstrap resample; pass --resamples 1000 or so")
    metrics_a, metrics_b = run_metrics(run_a), run_metrics(run_b)
    task_a, task_b = (metrics.get("task", "classification") for metrics in (metrics_a, metrics_b))
    if task_a != task_b:
        raise UserError(f"{run_a} is a {task_a} run and {run_b} a {task_b} run: compare runs of one task")
    return task_named(task_a).compare(run_a, metrics_a, run_b, metrics_b, resamples, seed)


def comparison_dir(run_a: Path, run_b: Path) -> Path:
    """A comparison's default folder, its own for each pair of runs: `<results>/compare/<A>__vs__<B>-<hash>`
    (`<results>`: $ZSA_EVAL_RESULTS or results; the hash of both runs' full paths tells apart runs whose
    directories share a name)."""
    pair = short_hash([str(run_a.resolve()), str(run_b.resolve())], 6)
    return Path(os.environ.get("ZSA_EVAL_RESULTS", "results")) / "compare" / f"{run_a.name}__vs__{run_b.name}-{pair}"


def write_comparison(comparison: Comparison, out_dir: Path) -> str:
    """compare.md, compare.json and the comparison's tables (CSV) and figures (PNG) in `out_dir`; returns the
    Markdown."""
    out_dir.mkdir(parents=True, exist_ok=True)
    markdown = comparison.markdown()
    atomic_write(out_dir / "compare.md", markdown)
    write_json(comparison.summary(), out_dir / "compare.json")
    for name, table in comparison.tables().items():
        write_csv(table, out_dir / f"{name}.csv")
    for name, png in comparison.figures().items():
        atomic_write(out_dir / name, png)
    return markdown
