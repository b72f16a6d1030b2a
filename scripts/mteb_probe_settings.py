"""mteb's classification probe on a protocol=mteb run's saved embeddings, one of mteb's settings changed at a time
(its own evaluator, identical draws): how much of the gap to protocol=linear_probe each setting makes.

    python -m zsa_eval dataset=synthetic dataset.clips_per_class=40 model=tiny_random protocol=mteb \\
        save_embeddings=true output_dir=results/mteb_probe
    python scripts/mteb_probe_settings.py results/mteb_probe

The run must be a cross-validated mteb probe (ESC50, UrbanSound8k, GTZANGenre, ... or one built for a dataset
without train and test splits, which borrows ESC50's evaluator); it prints accuracy and its change from mteb's own
settings (README "mteb")."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import mteb
import numpy as np
import pandas as pd
from datasets import Dataset, DatasetDict
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from zsa_eval.tasks.mteb_kinds import lookup_model

EVERY_CLIP = 10**9  # samples_per_label that draws every training clip


def accuracy(run: Path, evaluator_model=None, samples_per_label: int = 8) -> float:
    """mteb's accuracy on the run's embeddings with its evaluator's classifier and draw size replaced."""
    metrics = json.loads((run / "metrics.json").read_text())
    items = pd.read_csv(run / "embeddings" / "audio_items.csv", keep_default_na=False, dtype=str)
    vectors = np.load(run / "embeddings" / "audio.npy")
    task = mteb.get_task("ESC50" if metrics["mteb_task_built"] else metrics["mteb_task"])
    if not metrics["mteb_evaluator"].get("is_cross_validation"):
        sys.exit(f"{run}: mteb's {metrics['mteb_task']} trains on a train split; this script takes a cross-validated "
                 "probe run")
    split = task.metadata.eval_splits[0]
    labels = [metrics["labels"].index(label) for label in items["label"]]
    task.dataset = {"default": DatasetDict({split: Dataset.from_dict({task.input_column_name: items["item_id"].tolist(),
                                                                        task.label_column_name: labels})})}
    task.data_loaded = True
    task.samples_per_label = samples_per_label
    if evaluator_model is not None:
        task.evaluator_model = evaluator_model
    model = lookup_model(dict(zip(items["item_id"], vectors)), None, "saved", "cosine", False)
    return mteb.evaluate(model, task, cache=None, overwrite_strategy="always", co2_tracker=False,
                         show_progress_bar=False).task_results[0].get_score()


def main(run: Path) -> None:
    scaled = make_pipeline(StandardScaler(), LogisticRegression(max_iter=100, random_state=42))
    base = accuracy(run)
    for setting, value in {"mteb's own (LogisticRegression(max_iter=100), 8 per label)": base,
                           "+ StandardScaler": accuracy(run, scaled),
                           "max_iter=1000": accuracy(run, LogisticRegression(max_iter=1000, random_state=42)),
                           "every training clip": accuracy(run, samples_per_label=EVERY_CLIP),
                           "every training clip + StandardScaler": accuracy(run, scaled, EVERY_CLIP)}.items():
        print(f"{value:.4f}  {value - base:+.4f}  {setting}")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
