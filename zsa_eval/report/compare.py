"""Compare two runs of one task on what both evaluated (`python -m zsa_eval.report compare RUN_A RUN_B`): the task
of the runs (their metrics.json) does the comparison; this writes what it returns: compare.md, compare.json, its
tables and figures, and compare.html (the same, sortable, with a player of each listed item's clip)."""

from __future__ import annotations

import json
import os
import re
from dataclasses import replace
from pathlib import Path

import pandas as pd

from zsa_eval.errors import UserError
from zsa_eval.provenance import short_hash
from zsa_eval.store import atomic_write, write_csv, write_json
from zsa_eval.report.html import Clip, ClipFiles, figure_title, png_data_uri, remove_page, render, table
from zsa_eval.tasks.registry import MTEB, ZEROSHOT, task_named
from zsa_eval.results import Comparison


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
    if run_a.resolve() == run_b.resolve():
        raise UserError(f"{run_a} and {run_b} are the same run: pass two runs to compare")
    metrics_a, metrics_b = run_metrics(run_a), run_metrics(run_b)
    task_a, task_b = (metrics.get("task", "classification") for metrics in (metrics_a, metrics_b))
    if task_a != task_b:
        raise UserError(f"{run_a} is a {task_a} run and {run_b} a {task_b} run: compare runs of one task")
    mteb = MTEB in (metrics_a.get("protocol"), metrics_b.get("protocol"))  # compared by figures: mteb's own
    comparison = task_named(task_a, MTEB if mteb else ZEROSHOT).compare(run_a, metrics_a, run_b, metrics_b, resamples,
                                                                        seed)
    return replace(comparison, data_note=data_differences(metrics_a, metrics_b))


def data_differences(metrics_a: dict, metrics_b: dict) -> str:
    """What differs between the data the two runs read, from their metrics.json (the dataset, its selection: item
    ids, labels and folds, its local files: paths, sizes and times), or "" when nothing recorded does."""
    differences = []
    if metrics_a.get("dataset") != metrics_b.get("dataset"):
        differences.append(f"datasets {metrics_a.get('dataset')} and {metrics_b.get('dataset')}")
    for name, what, place, field in (
            ("selection", "item ids, labels or folds", "identity", "items_fingerprint"),
            ("files", "paths, sizes or modification times", "provenance", "files_fingerprint")):
        a, b = ((metrics.get(place) or {}).get(field) for metrics in (metrics_a, metrics_b))
        if a and b and a != b:
            differences.append(f"their {name} ({what}: {field} {a} and {b})")
    if not differences:
        return ""
    return (f"the runs read different data: {'; '.join(differences)}. Only what both evaluated is compared, matched "
            "by id: an id may name other audio in each run.")


def run_name(run_dir: Path) -> tuple[str, str]:
    """What a run is, in a few words (a comparison's name): its dataset, and its model with its template or a probe's
    protocol; its directory's name for a run whose metrics.json names none of them."""
    metrics = run_metrics(run_dir)
    setting = metrics.get("protocol_label") or metrics.get("template")
    return str(metrics.get("dataset") or ""), \
        " ".join(str(part) for part in (metrics.get("model"), setting) if part) or run_dir.name


def pair_names(run_a: Path, run_b: Path) -> tuple[str, str, str]:
    """The runs' names (run_name), each with its run directory's name when both read alike, and their common
    dataset ("" when they name two, each then in its run's name)."""
    (dataset_a, name_a), (dataset_b, name_b) = run_name(run_a), run_name(run_b)
    if dataset_a != dataset_b:
        name_a, name_b = (" ".join(filter(None, parts)) for parts in ((dataset_a, name_a), (dataset_b, name_b)))
    if name_a == name_b:
        name_a, name_b = f"{name_a} ({run_a.name})", f"{name_b} ({run_b.name})"
    return name_a, name_b, dataset_a if dataset_a == dataset_b else ""


def pair_title(run_a: Path, run_b: Path) -> str:
    """`A vs B`, each run by its name: "clap sound_of vs clap linear_probe on esc50"."""
    name_a, name_b, dataset = pair_names(run_a, run_b)
    return f"{name_a} vs {name_b}" + (f" on {dataset}" if dataset else "")


NAME_CHARACTERS = 60  # of each run's part of a comparison folder's name


def folder_part(name: str) -> str:
    """A run's name as part of a folder name: runs of characters other than letters, digits, `.` and `-` as `_`."""
    return re.sub(r"[^A-Za-z0-9.-]+", "_", name).strip("_")[:NAME_CHARACTERS]


def comparison_dir(run_a: Path, run_b: Path) -> Path:
    """A comparison's default folder, its own for each pair of runs and named after them: `<results>/compare/<A>__vs__
    <B>__on__<dataset>-<hash>` (`<results>`: $ZSA_EVAL_RESULTS or results; A, B and the dataset: pair_names; the hash
    of both runs' full paths tells apart pairs of runs that read alike)."""
    pair = short_hash([str(run_a.resolve()), str(run_b.resolve())], 6)
    name_a, name_b, dataset = pair_names(run_a, run_b)
    name = f"{folder_part(name_a)}__vs__{folder_part(name_b)}" + (f"__on__{folder_part(dataset)}" if dataset else "")
    return Path(os.environ.get("ZSA_EVAL_RESULTS", "results")) / "compare" / f"{name}-{pair}"


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
    return render(COMPARE_PAGE + ".j2", title=pair_title(Path(comparison.name_a), Path(comparison.name_b)),
                  comparison=comparison, deltas=table(comparison.metric_deltas), tests=comparison.tests(),
                  tables=tables, clips=clips,
                  figures=[(figure_title(name), png_data_uri(png)) for name, png in figures.items()])


def write_comparison(comparison: Comparison, out_dir: Path, clips: int = COMPARE_CLIPS) -> str:
    """compare.md, compare.json, the comparison's tables (CSV) and figures (PNG), and compare.html (its clips:
    report_assets/) in `out_dir`; returns the Markdown."""
    out_dir.mkdir(parents=True, exist_ok=True)
    markdown = comparison.markdown(pair_title(Path(comparison.name_a), Path(comparison.name_b)))
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
