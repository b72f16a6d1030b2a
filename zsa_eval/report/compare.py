"""Compare two runs of one task on what both evaluated (`python -m zsa_eval.report compare RUN_A RUN_B`): the task
of the runs (their metrics.json) does the comparison; this writes what it returns: compare.md, compare.json, its
tables and figures, and compare.html (the same, sortable, with a player of each listed item's clip)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pandas as pd

from zsa_eval.errors import UserError
from zsa_eval.report import atomic_write, short_hash, write_csv, write_json
from zsa_eval.report.html import Clip, ClipFiles, figure_title, png_data_uri, remove_page, render, table
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


COMPARE_PAGE = "compare.html"
COMPARE_CLIPS = 100  # compare.html plays the clips of the first this many items of each table


def item_paths(run_dirs: list[Path]) -> dict[str, str]:
    """item_id -> the clip's path as the runs' predictions.csv record it (the first run's where both do); none for
    runs without one."""
    paths: dict[str, str] = {}
    for run_dir in reversed(run_dirs):
        file = run_dir / "predictions.csv"
        if file.is_file():
            recorded = pd.read_csv(file, keep_default_na=False, dtype=str,
                                   usecols=lambda name: name in ("item_id", "path"))
            paths |= dict(zip(recorded["item_id"], recorded["path"])) if "path" in recorded else {}
    return paths


def with_players(frame: pd.DataFrame, paths: dict[str, str], clips: ClipFiles, limit: int) -> pd.DataFrame:
    """`frame` with a `clip` column after item_id: a player of each of its first `limit` items' clip (from its path),
    or why there is none."""
    def player(item_id: str) -> Clip:
        path = paths.get(item_id)
        if not path:
            return Clip("clip", problem="no path in either run's predictions.csv")
        if not Path(path).is_file():
            return Clip("clip", problem=f"no audio file at {path} (a Hub dataset's items have no file path)")
        return clips.clip(f"clip-{short_hash(path, 12)}", "clip", path)

    players = [player(item_id) if row < limit else None for row, item_id in enumerate(frame["item_id"])]
    return frame.reindex(columns=[*frame.columns[:frame.columns.get_loc("item_id") + 1], "clip",
                                  *frame.columns[frame.columns.get_loc("item_id") + 1:]]).assign(clip=players)


def comparison_page(comparison: Comparison, figures: dict[str, bytes], out_dir: Path, clips: int) -> str:
    """compare.html: the deltas, the task's tests and tables (sortable; those listing items with a player of each
    of their first `clips` items) and `figures` (file name -> PNG); the clips in report_assets/ beside it."""
    files = ClipFiles(out_dir)
    shown_tables = comparison.shown_tables()
    playable = clips and any("item_id" in frame for _, frame in shown_tables)
    paths = item_paths([Path(comparison.name_a), Path(comparison.name_b)]) if playable else {}
    tables = [(heading, table(with_players(frame, paths, files, clips) if "item_id" in frame and clips else frame))
              for heading, frame in shown_tables]
    return render(COMPARE_PAGE + ".j2", title=f"{Path(comparison.name_a).name} vs {Path(comparison.name_b).name}",
                  comparison=comparison, deltas=table(comparison.metric_deltas), tests=comparison.extra_summary(),
                  tables=tables, clips=clips,
                  figures=[(figure_title(name), png_data_uri(png)) for name, png in figures.items()])


def write_comparison(comparison: Comparison, out_dir: Path, clips: int = COMPARE_CLIPS) -> str:
    """compare.md, compare.json, the comparison's tables (CSV) and figures (PNG), and compare.html (its clips:
    report_assets/) in `out_dir`; returns the Markdown."""
    out_dir.mkdir(parents=True, exist_ok=True)
    markdown = comparison.markdown()
    atomic_write(out_dir / "compare.md", markdown)
    write_json(comparison.summary(), out_dir / "compare.json")
    for name, frame in comparison.tables().items():
        write_csv(frame, out_dir / f"{name}.csv")
    figures = comparison.figures()  # drawn once: the PNG files and the page's inline copies
    for name, png in figures.items():
        atomic_write(out_dir / name, png)
    remove_page(out_dir / COMPARE_PAGE)
    atomic_write(out_dir / COMPARE_PAGE, comparison_page(comparison, figures, out_dir, clips))
    return markdown
