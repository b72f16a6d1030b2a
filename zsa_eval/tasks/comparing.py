"""What every task's comparison of two runs shares: the metrics of both on what both evaluated, their deltas with
paired bootstrap intervals (the same resampled items for both runs), and compare.md's frame. A task's comparison
adds its own sections, tables and figures (zsa_eval.report.compare writes them)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from zsa_eval.errors import UserError
from zsa_eval.stats import BOOTSTRAP_LEVEL, percentile_interval

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
    setting = f"{template}{prompts} | {protocol}" if template and protocol else protocol or f"{template}{prompts}"
    return f"{letter}: {metrics.get('model', '?')} | {setting} ({run_dir.name})"


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
                 other_labels: str) -> pd.DataFrame:
    """Two runs' per-item tables on the items both evaluated (merged on item_id, columns suffixed _a and _b); refused
    when they share none (`unit`: "items", "clips"), or when a common item's true_label differs (`other_labels`:
    how to say so, e.g. "another true label")."""
    both = table_a.merge(table_b, on="item_id", suffixes=("_a", "_b"))
    if both.empty:
        raise UserError(f"the runs share no {unit.rstrip('s')} ({len(table_a)} in {run_a}, {len(table_b)} in {run_b}); "
                        "compare runs of the same dataset")
    relabelled = int((both["true_label_a"] != both["true_label_b"]).sum())
    if relabelled:
        raise UserError(f"{relabelled} of the {len(both)} common {unit} have {other_labels} in each run; compare runs "
                        "that read the same label column")
    return both


def bootstrap_record(resamples: int, seed: int) -> dict:
    return {"resamples": resamples, "seed": seed, "level": BOOTSTRAP_LEVEL}


@dataclass(frozen=True)
class Comparison:
    """Run B against run A on what both evaluated: `n_a` and `n_b` what each run evaluated, `n_common` what both did
    (in `unit`s: "items", "clips", "queries (20 captions, 4 clips)"), the metric deltas, the bootstrap settings.
    Subclasses add their verdict, sections and files."""

    name_a: str
    name_b: str
    legend_a: str
    legend_b: str
    n_a: int
    n_b: int
    n_common: int
    unit: str
    metric_deltas: pd.DataFrame
    bootstrap: dict

    def verdict(self) -> str:
        """One sentence on the main difference: the first metric's delta and whether its interval excludes 0."""
        row = self.metric_deltas.iloc[0]
        excludes_zero = row["delta_ci95_low"] > 0 or row["delta_ci95_high"] < 0
        return (f"{row['metric']} B - A = {row['delta']:+.4f} (95% CI [{row['delta_ci95_low']:+.4f}, "
                f"{row['delta_ci95_high']:+.4f}]) on {self.n_common} common {self.unit}: the interval "
                f"{'excludes' if excludes_zero else 'includes'} 0.")

    def shown_tables(self) -> list[tuple[str, pd.DataFrame]]:
        """The task's tables after the metrics, each under its heading (compare.md's sections, compare.html's)."""
        return []

    def sections(self) -> list[str]:
        """compare.md's task-specific sections after the metrics (Markdown lines): each shown table under its
        heading, "(none)" for an empty one."""
        lines = []
        for heading, table in self.shown_tables():
            lines += [f"## {heading}", "", table.to_markdown(index=False, floatfmt=".4f") if len(table) else "(none)",
                      ""]
        return lines

    def extra_summary(self) -> dict:
        """compare.json's task-specific fields."""
        return {}

    def tests(self) -> list[str]:
        """The task's tests of the difference, a sentence each (compare.html)."""
        return []

    def tables(self) -> dict[str, pd.DataFrame]:
        """CSV files (name without .csv -> table)."""
        return {}

    def figures(self) -> dict[str, bytes]:
        """PNG files (file name -> bytes)."""
        return {}

    def markdown(self, title: str | None = None) -> str:
        """compare.md, headed `title` (default: the two run directories)."""
        bootstrap = self.bootstrap
        return "\n".join([
            f"# {title or f'{self.name_a} vs {self.name_b}'}", "",
            f"A = {self.name_a}  ", self.legend_a, "",
            f"B = {self.name_b}  ", self.legend_b, "",
            f"Compared on the {self.n_common} {self.unit} both runs evaluated (A evaluated {self.n_a}, "
            f"B {self.n_b}).", "",
            self.verdict(), "",
            f"## Metrics on the {self.n_common} common {self.unit} (delta = B - A; paired bootstrap "
            f"{bootstrap['level']:.0%} interval, {bootstrap['resamples']} resamples, seed {bootstrap['seed']})", "",
            self.metric_deltas.to_markdown(index=False, floatfmt=".4f"), "",
            *self.sections(),
        ])

    def summary(self) -> dict:
        """compare.json."""
        return {
            "run_a": self.name_a, "run_b": self.name_b, "legend_a": self.legend_a, "legend_b": self.legend_b,
            "n_a": self.n_a, "n_b": self.n_b, "n_common": self.n_common,
            "metrics": {row.metric: {"a": row.a, "b": row.b, "delta": row.delta,
                                     "delta_ci95": [row.delta_ci95_low, row.delta_ci95_high]}
                        for row in self.metric_deltas.itertuples()},
            **self.extra_summary(),
            "bootstrap": self.bootstrap,
        }
