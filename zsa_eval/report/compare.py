"""Compare two runs on the same labels: metric deltas, per-class recall deltas, items whose prediction changed."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from zsa_eval.errors import UserError
from zsa_eval.report import atomic_write, write_csv
from zsa_eval.report.plots import recall_bars_png

METRICS = ["accuracy", "top_k_accuracy", "balanced_accuracy", "macro_f1", "n_evaluated", "n_skipped"]


@dataclass(frozen=True)
class Comparison:
    name_a: str
    name_b: str
    legend_a: str                 # "A: model | template", for figures
    legend_b: str
    metric_deltas: pd.DataFrame   # metric, a, b, delta
    recall_deltas: pd.DataFrame   # label, recall_a, recall_b, delta (largest change first)
    changed: pd.DataFrame         # item_id, true_label, predicted_a, predicted_b, correct_a, correct_b


def read_run(run_dir: Path) -> tuple[dict, pd.DataFrame, pd.DataFrame]:
    try:
        metrics = json.loads((run_dir / "metrics.json").read_text())
        per_class = pd.read_csv(run_dir / "per_class.csv", keep_default_na=False)
        predictions = pd.read_csv(run_dir / "predictions.csv", keep_default_na=False, dtype={"item_id": str})
    except (OSError, ValueError) as error:
        raise UserError(f"{run_dir} is not a finished zsa-eval run (metrics.json, per_class.csv, predictions.csv): "
                        f"{error}; pass run directories such as results/esc50/clap/sound_of/<timestamp>") from error
    return metrics, per_class, predictions


def legend(letter: str, run_dir: Path, metrics: dict) -> str:
    return f"{letter}: {metrics.get('model', run_dir.name)} | {metrics.get('template', '')}".rstrip(" |")


def compare_runs(run_a: Path, run_b: Path) -> Comparison:
    metrics_a, per_class_a, predictions_a = read_run(run_a)
    metrics_b, per_class_b, predictions_b = read_run(run_b)
    labels_a, labels_b = set(metrics_a["labels"]), set(metrics_b["labels"])
    if labels_a != labels_b:
        raise UserError(f"the runs use different label sets ({len(labels_a - labels_b)} only in {run_a}, "
                        f"{len(labels_b - labels_a)} only in {run_b}); compare runs on the same labels")
    metric_deltas = pd.DataFrame({"metric": METRICS, "a": [metrics_a[m] for m in METRICS],
                                  "b": [metrics_b[m] for m in METRICS]})
    metric_deltas["delta"] = metric_deltas["b"] - metric_deltas["a"]
    recalls = per_class_a[["label", "recall"]].merge(per_class_b[["label", "recall"]], on="label",
                                                     suffixes=("_a", "_b"))
    recalls["delta"] = recalls["recall_b"] - recalls["recall_a"]
    recalls = recalls.reindex(recalls["delta"].abs().sort_values(ascending=False, kind="stable").index)
    both = predictions_a.merge(predictions_b, on="item_id", suffixes=("_a", "_b"))
    changed = both[both["predicted_label_a"] != both["predicted_label_b"]]
    changed = pd.DataFrame({"item_id": changed["item_id"], "true_label": changed["true_label_a"],
                            "predicted_a": changed["predicted_label_a"], "predicted_b": changed["predicted_label_b"],
                            "correct_a": changed["correct_a"], "correct_b": changed["correct_b"]})
    return Comparison(str(run_a), str(run_b), legend("A", run_a, metrics_a), legend("B", run_b, metrics_b),
                      metric_deltas.reset_index(drop=True),
                      recalls.reset_index(drop=True), changed.reset_index(drop=True))


def comparison_markdown(comparison: Comparison) -> str:
    fixed = int((comparison.changed["correct_b"] & ~comparison.changed["correct_a"]).sum())
    broken = int((comparison.changed["correct_a"] & ~comparison.changed["correct_b"]).sum())
    return "\n".join([
        f"# {comparison.name_b} vs {comparison.name_a}", "",
        "A = " + comparison.name_a, "B = " + comparison.name_b, "",
        "## Metrics (delta = B - A)", "", comparison.metric_deltas.to_markdown(index=False, floatfmt=".4f"), "",
        "## Per-class recall, largest change first", "",
        comparison.recall_deltas.to_markdown(index=False, floatfmt=".4f"), "",
        f"## Items whose prediction changed: {len(comparison.changed)} ({fixed} now right, {broken} now wrong)", "",
        comparison.changed.to_markdown(index=False) if len(comparison.changed) else "(none)", "",
    ])


def write_comparison(comparison: Comparison, out_dir: Path) -> str:
    """compare.md, compare_recall.png, changed_predictions.csv in `out_dir`; returns the Markdown."""
    out_dir.mkdir(parents=True, exist_ok=True)
    markdown = comparison_markdown(comparison)
    atomic_write(out_dir / "compare.md", markdown)
    write_csv(comparison.changed, out_dir / "changed_predictions.csv")
    atomic_write(out_dir / "compare_recall.png", recall_bars_png(comparison.recall_deltas.sort_values("label"),
                                                                 comparison.legend_a, comparison.legend_b))
    return markdown
