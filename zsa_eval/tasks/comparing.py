"""What every task's comparison of two runs shares: the metrics of both on what both evaluated, their deltas with
paired bootstrap intervals (the same resampled items for both runs), and compare.md's frame. A task's comparison
adds its own sections, tables and figures (zsa_eval.report.compare writes them)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from zsa_eval.errors import UserError
from zsa_eval.stats import BOOTSTRAP_LEVEL, bootstrap_indices, percentile_interval

DELTA_COLUMNS = ["metric", "a", "b", "delta", "delta_ci95_low", "delta_ci95_high"]


def legend(letter: str, run_dir: Path, metrics: dict) -> str:
    """Letter, model, template, prompts hash, a probe's protocol (a few-shot run's: which of its draws is compared)
    and run directory name: two runs of one model and template differ."""
    prompts = f" #{metrics['prompts_hash']}" if metrics.get("prompts_hash") else ""
    scoring = ((metrics.get("identity") or {}).get("family_settings") or {}).get("scoring")
    template = metrics.get("template", "?")
    template = f"{template} ({scoring})" if scoring and template else template  # an audio language model's mode
    protocol = metrics.get("protocol_label")
    if protocol and (metrics.get("repeats") or 1) > 1:  # few-shot: predictions.csv holds the first draw's answers
        protocol += (f", compared on its repeat 0 of {metrics['repeats']} (predictions.csv; the run's headline "
                     "averages the repeats)")
    setting = (f"{template}{prompts} | {protocol}" if template and protocol
               else protocol or (f"{template}{prompts}" if template else ""))  # an embedding task has no template
    return f"{letter}: {' | '.join(filter(None, (metrics.get('model', '?'), setting)))} ({run_dir.name})"


def delta_interval(differences: np.ndarray) -> list[float]:
    """The percentile interval of the resamples' differences where both runs' metric is defined (a resample of few
    clips can lack a class's positives: its mAUC is then undefined)."""
    defined = differences[np.isfinite(differences)]
    return percentile_interval(defined) if len(defined) else [np.nan, np.nan]


def paired_deltas(point: dict[str, dict[str, float]], samples: dict[str, dict[str, np.ndarray]],
                  names: list[str]) -> pd.DataFrame:
    """metric, a, b, delta = b - a and its percentile interval over paired resamples (`samples[run][name]`: the
    metric on each resample, drawn alike for both runs)."""
    return pd.DataFrame([
        {"metric": name, "a": point["a"][name], "b": point["b"][name], "delta": point["b"][name] - point["a"][name],
         **dict(zip(("delta_ci95_low", "delta_ci95_high"), delta_interval(samples["b"][name] - samples["a"][name])))}
        for name in names], columns=DELTA_COLUMNS)


def paired_items(table_a: pd.DataFrame, table_b: pd.DataFrame, run_a: Path, run_b: Path, unit: str,
                 other_labels: str, key: str | list[str] = "item_id", label: str = "true_label",
                 fix: str = "compare runs that read the same label column") -> pd.DataFrame:
    """Two runs' per-item tables on the items both evaluated (merged on `key`, columns suffixed _a and _b); refused
    when they share none (`unit`: "items", "clips", "queries"), or when a common item's `label` differs
    (`other_labels`: how to say so, e.g. "another true label"; `fix`: what to compare instead)."""
    both = table_a.merge(table_b, on=key, suffixes=("_a", "_b"))
    if both.empty:
        one = unit[:-3] + "y" if unit.endswith("ies") else unit[:-1]  # queries: query; clips: clip
        raise UserError(f"the runs share no {one} ({len(table_a)} in {run_a}, {len(table_b)} in {run_b}); compare runs "
                        "of the same dataset")
    relabelled = int((both[f"{label}_a"] != both[f"{label}_b"]).sum())
    if relabelled:
        raise UserError(f"{relabelled} of the {len(both)} common {unit} have {other_labels} in each run; {fix}")
    return both


def run_table(run_dir: Path, file_name: str, task: str, text_columns: tuple[str, ...],
              columns: tuple[str, ...] = ()) -> pd.DataFrame:
    """A finished run's table (`file_name`, e.g. rankings.csv), its `text_columns` read as text; one line when the
    directory holds no such table, or one without the `text_columns` and `columns` compare reads (`task`: the kind of
    run that writes it)."""
    try:
        table = pd.read_csv(run_dir / file_name, keep_default_na=False, dtype=dict.fromkeys(text_columns, str))
    except (OSError, ValueError) as error:
        raise UserError(f"{run_dir} is not a finished zsa-eval {task} run ({file_name}): {error}; pass the "
                        f"directories of two {task} runs") from error
    missing = [column for column in (*text_columns, *columns) if column not in table]
    if missing:
        raise UserError(f"{run_dir / file_name} lacks the column{'s' if len(missing) > 1 else ''} "
                        f"{', '.join(missing)}: not a {task} run's table as zsa-eval writes it; pass the directories "
                        f"of two finished {task} runs")
    return table


def paired_means(tables: dict[str, np.ndarray], names: list[str], resamples: int,
                 seed: int) -> tuple[dict[str, dict[str, float]], dict[str, dict[str, np.ndarray]]]:
    """Per-item metric values of both runs (`tables[run]`: items x names, the same items in the same order) as
    paired_deltas takes them: each metric's mean, and its mean over the same bootstrap resamples of items."""
    indices = bootstrap_indices(len(tables["a"]), resamples, seed)
    point, samples = {}, {}
    for run, values in tables.items():
        resampled = values[indices].mean(axis=1)
        point[run] = dict(zip(names, values.mean(axis=0).tolist()))
        samples[run] = {name: resampled[:, column] for column, name in enumerate(names)}
    return point, samples


def largest_first(table: pd.DataFrame, column: str) -> pd.DataFrame:
    """The rows in order of the absolute value of `column`, largest first (ties in their order), indexed anew."""
    return table.reindex(table[column].abs().sort_values(ascending=False, kind="stable").index).reset_index(drop=True)


def bootstrap_record(resamples: int, seed: int) -> dict:
    return {"resamples": resamples, "seed": seed, "level": BOOTSTRAP_LEVEL}
