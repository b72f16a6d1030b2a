"""`python -m zsa_eval.report compare A B` where a run is protocol=mteb: mteb keeps its predictions to itself, so the
runs are compared by their figures (no paired interval), each mteb score beside the zsa-eval metric that measures
the same thing (accuracy and accuracy, mteb's macro recall and balanced accuracy, mteb's hit rate at k and zsa-eval's
R@k), and the comparison says why the protocols' figures differ, as each run's metrics.json records its protocol."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from zsa_eval.results import Comparison
from zsa_eval.tasks.comparing import legend

SAME_MEASURE = {  # mteb kind -> (zsa-eval metric, mteb score) pairs that measure the same thing
    "classification": [("accuracy", "accuracy"), ("balanced_accuracy", "recall"), ("macro_f1", "f1")],
    "zeroshot": [("accuracy", "accuracy"), ("balanced_accuracy", "recall"), ("macro_f1", "f1")],
    "retrieval_t2a": [(f"t2a_recall_at_{k}", f"hit_rate_at_{k}") for k in (1, 5, 10)],
    "retrieval_a2t": [(f"a2t_recall_at_{k}", f"hit_rate_at_{k}") for k in (1, 5, 10)],
}


def figure(metrics: dict, zsa_name: str, mteb_name: str) -> float | None:
    """A run's value of a paired measure: its mteb score, or its zsa-eval metric."""
    value = metrics.get(f"mteb_{mteb_name}") if metrics.get("protocol") == "mteb" else metrics.get(zsa_name)
    return None if value is None else float(value)


def probe_reasons(mteb: dict, other: dict) -> list[str]:
    """Why mteb's probe figure and a zsa-eval probe's differ, from what each run records of its protocol."""
    evaluator = mteb["mteb_evaluator"]
    model = evaluator.get("evaluator_model", {})
    sides = (f"mteb: {evaluator['n_splits']} shuffled KFold splits (seed {evaluator['seed']}) over every clip, the "
             "dataset's official folds ignored, so clips of one recording (and folds a dataset keeps apart) can be "
             "on both sides of a split" if evaluator.get("is_cross_validation")
             else f"mteb: {evaluator.get('n_experiments')} draws from its {evaluator.get('train_split')!r} split")
    split = (other.get("split") or {}).get("description", "its own test items")
    reasons = [f"test items: {sides}; zsa-eval {other.get('protocol_label') or other.get('protocol')}: {split}"]
    if "samples_per_label" in evaluator:
        reasons.append(f"training clips: mteb draws {evaluator['samples_per_label']} per label (re-seeding "
                       "RandomState(42) each experiment); zsa-eval's linear probe trains on every clip of the other "
                       "folds" if other.get("protocol") == "linear_probe" else
                       f"training clips: mteb draws {evaluator['samples_per_label']} per label; zsa-eval's few-shot "
                       f"{other.get('shots')} per class, {other.get('repeats')} times")
    settings = other.get("protocol_settings") or {}
    chosen = (f"C chosen from {settings['c_grid']} by inner cross-validation" if settings.get("c_grid")
              else f"C={settings.get('c')}")
    reasons.append(f"classifier: mteb {model.get('class')}(max_iter={model.get('max_iter')}, C={model.get('C')}) on "
                   f"the raw embeddings; zsa-eval standardizes them first (StandardScaler), {chosen}, "
                   f"max_iter={settings.get('max_iter')}")
    return reasons


def zero_shot_reasons(mteb: dict, other: dict) -> list[str]:
    return [f"prompts: mteb's candidate texts (its ESC-50 form \"This is a sound of {{}}\": class names as stored, "
            f"underscores kept, no final period); zsa-eval's template {other.get('template')!r} with readable labels",
            f"scores: {mteb.get('similarity')}; zsa-eval: "
            f"{other.get('similarity') or other.get('score_kind_description')}"]


def retrieval_reasons(mteb: dict, other: dict) -> list[str]:
    return ["mteb's recall_at_k of an audio query is the share of its captions retrieved in the top k; zsa-eval's "
            "R@k (both ways) is mteb's hit_rate_at_k: whether any relevant candidate is in the top k",
            "mteb breaks exact score ties by document id; zsa-eval by candidate order, within a tolerance"]


REASONS = {"classification": probe_reasons, "zeroshot": zero_shot_reasons, "retrieval_t2a": retrieval_reasons,
           "retrieval_a2t": retrieval_reasons}


@dataclass(frozen=True)
class ProtocolComparison(Comparison):
    """Two runs' figures side by side (B - A) and, when one is protocol=mteb, why its protocol differs."""

    reasons: list[str] = field(default_factory=list)

    def verdict(self) -> str:
        if self.metric_deltas.empty:
            return "The runs report no measure in common: see why their protocols differ below."
        row = self.metric_deltas.iloc[0]
        return (f"{row['metric']} B - A = {row['delta']:+.4f} ({row['a']:.4f} -> {row['b']:.4f}); mteb keeps its "
                "predictions, so no paired interval: the difference is the protocols', on the same embeddings when "
                "both runs read them from one cache.")

    def deltas_note(self) -> str:
        return "delta = B - A; no interval: mteb keeps its predictions, so the runs cannot be resampled together"

    def sections(self) -> list[str]:
        return ["## Why the protocols' figures differ", "", *(f"- {reason}" for reason in self.reasons), ""]

    def extra_summary(self) -> dict:
        return {"why": self.reasons}


def compare_protocols(run_a: Path, metrics_a: dict, run_b: Path, metrics_b: dict, resamples: int,
                      seed: int) -> ProtocolComparison:
    """Run B's figures against run A's, one of them (or both) a protocol=mteb run."""
    mteb, other = (metrics_a, metrics_b) if metrics_a.get("protocol") == "mteb" else (metrics_b, metrics_a)
    kind, both = mteb["mteb_kind"], other.get("protocol") == "mteb"
    same = [] if both and other["mteb_kind"] != kind else \
        [(name, name) for name in mteb["mteb_metrics"] if name in other["mteb_metrics"]] if both \
        else SAME_MEASURE.get(kind, [])
    rows = []
    for zsa_name, mteb_name in same:
        a, b = figure(metrics_a, zsa_name, mteb_name), figure(metrics_b, zsa_name, mteb_name)
        if a is not None and b is not None:
            rows.append({"metric": f"{zsa_name} / mteb {mteb_name}", "a": a, "b": b, "delta": b - a,
                         "delta_ci95_low": np.nan, "delta_ci95_high": np.nan})
    reasons = REASONS.get(kind, lambda mteb, other: [])(mteb, other) if not both else \
        [f"two mteb evaluations: {metrics_a['mteb_task']} ({metrics_a['mteb_kind']}) and {metrics_b['mteb_task']} "
         f"({metrics_b['mteb_kind']})"]
    return ProtocolComparison(str(run_a), str(run_b), legend("A", run_a, metrics_a), legend("B", run_b, metrics_b),
                              metrics_a.get("n_tested", metrics_a["n_evaluated"]),
                              metrics_b.get("n_tested", metrics_b["n_evaluated"]),
                              min(metrics_a["n_evaluated"], metrics_b["n_evaluated"]), "clips",
                              pd.DataFrame(rows, columns=["metric", "a", "b", "delta", "delta_ci95_low",
                                                          "delta_ci95_high"]),
                              {"level": 0.95, "resamples": resamples, "seed": seed}, reasons)
