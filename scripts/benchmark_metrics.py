"""Cost of summary_metrics with its bootstrap intervals (1000 resamples by default).

    python scripts/benchmark_metrics.py                    # ESC-50 size: 2000 clips x 50 classes
    python scripts/benchmark_metrics.py --clips 20000 --classes 527
    python scripts/benchmark_metrics.py --task multilabel --clips 10231 --classes 200   # FSD50K eval size

Times the best of --repeats calls on synthetic scores (a fixed seed), prints a line per size and writes
results/benchmark/metrics_benchmark.json (metrics_benchmark_multilabel.json for --task multilabel).
"""

from __future__ import annotations

import argparse
import platform
import time
from pathlib import Path

import numpy as np

from zsa_eval.tasks import tagging as multilabel
from zsa_eval.tasks.accuracy import summary_metrics
from zsa_eval.store import write_json

LABELS_PER_CLIP = 2.8  # about FSD50K's label cardinality (leaf labels and their ancestors)


def time_summary_metrics(n_clips: int, n_classes: int, resamples: int, repeats: int) -> float:
    """Best wall time in seconds of summary_metrics on random scores that favour the true class."""
    rng = np.random.default_rng(0)
    y_true = rng.integers(0, n_classes, n_clips)
    probabilities = rng.random((n_clips, n_classes)).astype(np.float32)
    probabilities[np.arange(n_clips), y_true] += 0.5
    timings = []
    for _ in range(repeats):
        start = time.perf_counter()
        summary_metrics(y_true, probabilities, n_classes, resamples=resamples)
        timings.append(time.perf_counter() - start)
    return min(timings)


def time_multilabel_metrics(n_clips: int, n_classes: int, resamples: int, repeats: int) -> float:
    """Best wall time in seconds of the multi-label per-class table and summary (mAP, mAUC, d', LRAP with
    intervals) on random logits that favour each clip's classes, LABELS_PER_CLIP classes per clip on average."""
    rng = np.random.default_rng(0)
    y_true = rng.random((n_clips, n_classes)) < LABELS_PER_CLIP / n_classes
    logits = (rng.standard_normal((n_clips, n_classes)) + y_true).astype(np.float32)
    names = [str(column) for column in range(n_classes)]
    timings = []
    for _ in range(repeats):
        start = time.perf_counter()
        per_class = multilabel.per_class_table(y_true, logits, names)
        multilabel.summary_metrics(y_true, logits, per_class, resamples=resamples)
        timings.append(time.perf_counter() - start)
    return min(timings)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips", type=int, nargs="+", default=[2000])
    parser.add_argument("--classes", type=int, default=50)
    parser.add_argument("--resamples", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--task", choices=["classification", "multilabel"], default="classification")
    parser.add_argument("--out", type=Path, default=Path("results/benchmark"))
    arguments = parser.parse_args()
    rows = []
    for n_clips in arguments.clips:
        timer = time_multilabel_metrics if arguments.task == "multilabel" else time_summary_metrics
        seconds = timer(n_clips, arguments.classes, arguments.resamples, arguments.repeats)
        rows.append({"task": arguments.task, "clips": n_clips, "classes": arguments.classes,
                     "resamples": arguments.resamples, "seconds": round(seconds, 4)})
        print(f"{arguments.task} metrics, {n_clips} clips x {arguments.classes} classes, {arguments.resamples} "
              f"resamples: {seconds:.3f} s (best of {arguments.repeats})")
    arguments.out.mkdir(parents=True, exist_ok=True)
    write_json({"machine": platform.processor() or platform.machine(), "python": platform.python_version(),
                "runs": rows}, arguments.out / ("metrics_benchmark.json" if arguments.task == "classification"
                                                else f"metrics_benchmark_{arguments.task}.json"))


if __name__ == "__main__":
    main()
