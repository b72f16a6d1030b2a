"""The gate, for CI: bounds a finished run's accuracy must meet (gate.min_accuracy, and gate.baseline's accuracy less
gate.max_drop), read from the runs' metrics.json; a baseline of other data is refused before the run. With
gate.reference=true, every metric with a published figure of the run's own protocol (metrics.json `references`)
must not land below it by more than gate.max_drop."""

from __future__ import annotations

import json
from pathlib import Path

from zsa_eval.errors import UserError
from zsa_eval.report.references import figure_digits


def read_baseline(baseline: str | None) -> dict | None:
    """The metrics.json of the earlier run that gate.baseline names, if any (read before the run), with its
    accuracy."""
    if baseline is None:
        return None
    try:
        metrics = json.loads(Path(baseline).read_text())
        float(metrics["accuracy"])
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise UserError(f"gate.baseline={baseline} is not a readable metrics.json with an accuracy "
                        f"({type(error).__name__}); point it at an earlier run's metrics.json") from error
    return metrics


BASELINE_DATASET_FIELDS = ("dataset", "items_fingerprint", "dataset_revision")  # what makes accuracies comparable


def check_baseline_dataset(baseline: dict | None, path: str | None, identity: dict) -> None:
    """A baseline's accuracy bounds this run's only when both evaluated the same items: the same dataset, the
    same items with the same labels and folds (the items fingerprint; a local folder may lie at another path),
    the same Hub revision. Fields a baseline lacks (a hand-written one, an older run) are not compared."""
    if baseline is None:
        return
    recorded = {"dataset": baseline.get("dataset")} | (baseline.get("identity") or {})
    differing = [name for name in BASELINE_DATASET_FIELDS
                 if recorded.get(name) is not None and identity.get(name) is not None
                 and recorded[name] != identity[name]]
    if differing:
        shown = ", ".join(f"{name} {recorded[name]!r} there, {identity[name]!r} here" for name in differing)
        raise UserError(f"gate.baseline={path} evaluated other data ({shown}): its accuracy does not bound this "
                        "run's; point gate.baseline at a run of the same dataset and selection")


def gate_failures(
    accuracy: float, min_accuracy: float | None, baseline_accuracy: float | None, max_drop: float
) -> list[str]:
    """The gate bounds this accuracy breaks, each said with the amount by which it misses."""
    failures = []
    if min_accuracy is not None and accuracy < min_accuracy:
        failures.append(f"accuracy {accuracy:.4f} is below gate.min_accuracy={min_accuracy} by "
                        f"{min_accuracy - accuracy:.4f}")
    if baseline_accuracy is not None and baseline_accuracy - accuracy > max_drop:
        failures.append(f"accuracy {accuracy:.4f} dropped {baseline_accuracy - accuracy:.4f} below the baseline's "
                        f"{baseline_accuracy:.4f}, more than gate.max_drop={max_drop}")
    return failures


def reference_failures(references: list[dict], max_drop: float) -> list[str]:
    """The published figures of the run's own protocol its measurement falls below by more than `max_drop`."""
    return [f"{row['metric']} {row['measured']:.{digits}f} is {row['value'] - row['measured']:.{digits}f} below the "
            f"published {row['value']:.{digits}f} of reference {row['id']}, more than gate.max_drop={max_drop}"
            for row in references if row["same_protocol"] and row["value"] - row["measured"] > max_drop
            for digits in [figure_digits(row)]]
