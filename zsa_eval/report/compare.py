"""Compare two runs on the items both evaluated: metric deltas with paired bootstrap intervals, an exact McNemar
test of the accuracy difference, per-class recall deltas, items whose prediction changed."""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import binomtest

from zsa_eval.errors import UserError
from zsa_eval.metrics import (
    BOOTSTRAP_LEVEL,
    INTERVAL_METRICS,
    bootstrap_indices,
    percentile_interval,
    point_metrics,
    resampled_metrics,
)
from zsa_eval.report import atomic_write, read_predictions, short_hash, write_csv, write_json
from zsa_eval.report.plots import recall_bars_png

SIGNIFICANCE_LEVEL = 0.05
TOP_LABEL = re.compile(r"top\d+_label")


@dataclass(frozen=True)
class Comparison:
    name_a: str
    name_b: str
    legend_a: str                 # "A: model | template #prompts (run directory)", for figures
    legend_b: str
    n_a: int                      # items each run evaluated
    n_b: int
    n_common: int                 # items both evaluated: every figure below is computed on these
    metric_deltas: pd.DataFrame   # metric, a, b, delta, delta_ci95_low, delta_ci95_high
    mcnemar: dict                 # a_only_correct, b_only_correct, p_value, significant
    bootstrap: dict               # resamples, seed, level
    recall_deltas: pd.DataFrame   # label, recall_a, recall_b, delta (largest change first)
    changed: pd.DataFrame         # item_id, true_label, predicted_a, predicted_b, correct_a, correct_b


def read_run(run_dir: Path) -> tuple[dict, pd.DataFrame]:
    """A finished run's metrics.json and predictions.csv (item ids unique, with its top-k labels)."""
    try:
        metrics = json.loads((run_dir / "metrics.json").read_text())
        if metrics.get("task", "classification") != "classification":
            raise UserError(f"{run_dir} is a {metrics['task']} run: compare compares single-label classification "
                            "runs only; compare other tasks by the leaderboard's metrics and intervals")
        predictions = read_predictions(run_dir / "predictions.csv")
    except (OSError, ValueError) as error:
        raise UserError(f"{run_dir} is not a finished zsa-eval run (metrics.json, predictions.csv): {error}; "
                        "pass run directories such as results/esc50/clap/sound_of/<timestamp>") from error
    has_top_k = "top5_labels" in predictions or any(map(TOP_LABEL.fullmatch, predictions.columns))
    if predictions["item_id"].duplicated().any() or not has_top_k:
        raise UserError(f"{run_dir / 'predictions.csv'} is not a zsa-eval predictions table (repeated item ids or "
                        "no top-k labels); pass the directory of a zsa-eval run")
    return metrics, predictions


def top_k_hits(predictions: pd.DataFrame) -> np.ndarray:
    """Whether each item's true label is among its top-k labels (top1_label... columns; runs written before those
    existed hold them |-joined in top5_labels)."""
    if "top5_labels" in predictions:
        return np.array([true in ranked.split("|")
                         for true, ranked in zip(predictions["true_label"], predictions["top5_labels"])])
    ranked = predictions[[name for name in predictions.columns if TOP_LABEL.fullmatch(name)]]
    return ranked.eq(predictions["true_label"], axis=0).any(axis=1).to_numpy()


def mcnemar_test(correct_a: np.ndarray, correct_b: np.ndarray) -> dict:
    """Exact McNemar test: under equal accuracy, the items only one run gets right split 50:50 between them
    (two-sided binomial test on the discordant pairs; p = 1 when there are none)."""
    a_only, b_only = int((correct_a & ~correct_b).sum()), int((~correct_a & correct_b).sum())
    p_value = float(binomtest(a_only, a_only + b_only, 0.5).pvalue) if a_only + b_only else 1.0
    return {"a_only_correct": a_only, "b_only_correct": b_only, "p_value": p_value,
            "significant": p_value < SIGNIFICANCE_LEVEL, "alpha": SIGNIFICANCE_LEVEL}


def legend(letter: str, run_dir: Path, metrics: dict) -> str:
    """Letter, model, template, prompts hash and run directory name: two runs of one model and template differ."""
    prompts = f" #{metrics['prompts_hash']}" if metrics.get("prompts_hash") else ""
    return f"{letter}: {metrics.get('model', '?')} | {metrics.get('template', '?')}{prompts} ({run_dir.name})"


def compare_runs(run_a: Path, run_b: Path, resamples: int = 1000, seed: int = 0) -> Comparison:
    """Compare run B against run A on the items both evaluated (refused when there are none, or when the label
    sets or the items' true labels differ)."""
    if resamples < 1:
        raise UserError(f"--resamples {resamples} leaves no bootstrap resample; pass --resamples 1000 or so")
    metrics_a, predictions_a = read_run(run_a)
    metrics_b, predictions_b = read_run(run_b)
    labels_a, labels_b = set(metrics_a["labels"]), set(metrics_b["labels"])
    if labels_a != labels_b:
        raise UserError(f"the runs use different label sets ({len(labels_a - labels_b)} only in {run_a}, "
                        f"{len(labels_b - labels_a)} only in {run_b}); compare runs on the same labels")
    both = predictions_a.assign(hit=top_k_hits(predictions_a)).merge(
        predictions_b.assign(hit=top_k_hits(predictions_b)), on="item_id", suffixes=("_a", "_b"))
    if both.empty:
        raise UserError(f"the runs share no item ({len(predictions_a)} in {run_a}, {len(predictions_b)} in {run_b}); "
                        "compare runs of the same dataset")
    relabelled = int((both["true_label_a"] != both["true_label_b"]).sum())
    if relabelled:
        raise UserError(f"{relabelled} of the {len(both)} common items have another true label in each run; "
                        "compare runs that read the same label column")
    classes = {label: index for index, label in enumerate(sorted(labels_a))}
    y_true = both["true_label_a"].map(classes).to_numpy()
    predicted = {run: both[f"predicted_label_{run}"].map(classes).to_numpy() for run in "ab"}
    hits = {run: both[f"hit_{run}"].to_numpy(dtype=bool) for run in "ab"}
    point = {run: point_metrics(y_true, predicted[run], hits[run]) for run in "ab"}
    indices = bootstrap_indices(len(both), resamples, seed)
    samples = {run: resampled_metrics(y_true, predicted[run], hits[run], indices, len(classes)) for run in "ab"}
    metric_deltas = pd.DataFrame([
        {"metric": name, "a": point["a"][name], "b": point["b"][name], "delta": point["b"][name] - point["a"][name],
         **dict(zip(("delta_ci95_low", "delta_ci95_high"),
                    percentile_interval(samples["b"][name] - samples["a"][name])))}
        for name in INTERVAL_METRICS])
    correct = {run: predicted[run] == y_true for run in "ab"}
    recalls = pd.DataFrame({"label": both["true_label_a"], "recall_a": correct["a"], "recall_b": correct["b"]}) \
        .groupby("label", sort=True).mean().reset_index()
    recalls["delta"] = recalls["recall_b"] - recalls["recall_a"]
    recalls = recalls.reindex(recalls["delta"].abs().sort_values(ascending=False, kind="stable").index)
    changed = both[both["predicted_label_a"] != both["predicted_label_b"]]
    changed = pd.DataFrame({"item_id": changed["item_id"], "true_label": changed["true_label_a"],
                            "predicted_a": changed["predicted_label_a"], "predicted_b": changed["predicted_label_b"],
                            "correct_a": changed["correct_a"], "correct_b": changed["correct_b"]})
    return Comparison(str(run_a), str(run_b), legend("A", run_a, metrics_a), legend("B", run_b, metrics_b),
                      len(predictions_a), len(predictions_b), len(both), metric_deltas,
                      mcnemar_test(correct["a"], correct["b"]),
                      {"resamples": resamples, "seed": seed, "level": BOOTSTRAP_LEVEL},
                      recalls.reset_index(drop=True), changed.reset_index(drop=True))


def verdict(comparison: Comparison) -> str:
    """One sentence: the accuracy difference, its interval, and whether McNemar's test finds it significant."""
    accuracy = comparison.metric_deltas.set_index("metric").loc["accuracy"]
    test = comparison.mcnemar
    significance = "significant" if test["significant"] else "not significant"
    return (f"Accuracy B - A = {accuracy['delta']:+.4f} (95% CI [{accuracy['delta_ci95_low']:+.4f}, "
            f"{accuracy['delta_ci95_high']:+.4f}]) on {comparison.n_common} common items: {significance} at "
            f"{test['alpha']} (exact McNemar p = {test['p_value']:.4g}; only A right on {test['a_only_correct']}, "
            f"only B right on {test['b_only_correct']}).")


def comparison_markdown(comparison: Comparison) -> str:
    fixed = int((comparison.changed["correct_b"] & ~comparison.changed["correct_a"]).sum())
    broken = int((comparison.changed["correct_a"] & ~comparison.changed["correct_b"]).sum())
    bootstrap = comparison.bootstrap
    return "\n".join([
        f"# {comparison.name_b} vs {comparison.name_a}", "",
        "A = " + comparison.name_a, "B = " + comparison.name_b, "",
        f"Compared on the {comparison.n_common} items both runs evaluated (A evaluated {comparison.n_a}, "
        f"B {comparison.n_b}).", "",
        verdict(comparison), "",
        f"## Metrics on the {comparison.n_common} common items (delta = B - A; paired bootstrap "
        f"{bootstrap['level']:.0%} interval, {bootstrap['resamples']} resamples, seed {bootstrap['seed']})", "",
        comparison.metric_deltas.to_markdown(index=False, floatfmt=".4f"), "",
        "## Per-class recall on the common items, largest change first", "",
        comparison.recall_deltas.to_markdown(index=False, floatfmt=".4f"), "",
        f"## Items whose prediction changed: {len(comparison.changed)} ({fixed} now right, {broken} now wrong)", "",
        comparison.changed.to_markdown(index=False) if len(comparison.changed) else "(none)", "",
    ])


def comparison_json(comparison: Comparison) -> dict:
    return {
        "run_a": comparison.name_a, "run_b": comparison.name_b,
        "n_a": comparison.n_a, "n_b": comparison.n_b, "n_common": comparison.n_common,
        "metrics": {row.metric: {"a": row.a, "b": row.b, "delta": row.delta,
                                 "delta_ci95": [row.delta_ci95_low, row.delta_ci95_high]}
                    for row in comparison.metric_deltas.itertuples()},
        "mcnemar": comparison.mcnemar,
        "bootstrap": comparison.bootstrap,
        "n_changed": len(comparison.changed),
    }


def comparison_dir(run_a: Path, run_b: Path) -> Path:
    """A comparison's default folder, its own for each pair of runs: `<results>/compare/<A>__vs__<B>-<hash>`
    (`<results>`: $ZSA_EVAL_RESULTS or results; the hash of both runs' full paths tells apart runs whose
    directories share a name)."""
    pair = short_hash([str(run_a.resolve()), str(run_b.resolve())], 6)
    return Path(os.environ.get("ZSA_EVAL_RESULTS", "results")) / "compare" / f"{run_a.name}__vs__{run_b.name}-{pair}"


def write_comparison(comparison: Comparison, out_dir: Path) -> str:
    """compare.md, compare.json, compare_recall.png, changed_predictions.csv in `out_dir`; returns the Markdown."""
    out_dir.mkdir(parents=True, exist_ok=True)
    markdown = comparison_markdown(comparison)
    atomic_write(out_dir / "compare.md", markdown)
    write_json(comparison_json(comparison), out_dir / "compare.json")
    write_csv(comparison.changed, out_dir / "changed_predictions.csv")
    atomic_write(out_dir / "compare_recall.png", recall_bars_png(comparison.recall_deltas.sort_values("label"),
                                                                 comparison.legend_a, comparison.legend_b))
    return markdown
