"""One evaluation: dataset -> model -> engine -> metrics -> report. Everything comes from the Hydra config."""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from zsa_eval.cache import EmbeddingCache, model_fingerprint
from zsa_eval.data import AudioDataset, candidate_labels, limit_items
from zsa_eval.engine import BatchScores, score_clips
from zsa_eval.errors import UserError
from zsa_eval.metrics import confusion_table, per_class_table, per_fold_table, predictions_table, summary_metrics
from zsa_eval.models import resolve_device
from zsa_eval.report import prepare_output_dir, write_csv, write_run

VERSIONED_PACKAGES = ("zsa-eval", "torch", "transformers", "tokenizers", "datasets", "numpy", "scikit-learn",
                      "pandas", "soundfile", "soxr", "hydra-core")


def check_prompts(prompts: Sequence[str], template_name: str) -> list[str]:
    """Each prompt must hold exactly one `{}` where the label goes."""
    if not prompts:
        raise UserError(f"template {template_name} has no prompts: add template.prompts=['This is a sound of {{}}.']")
    for prompt in prompts:
        try:
            filled = prompt.format("\0")
        except (IndexError, KeyError, ValueError) as error:
            raise UserError(f"prompt {prompt!r} is not a valid template ({error}); write the label place as {{}}")
        if filled.count("\0") != 1:
            raise UserError(f"prompt {prompt!r} needs exactly one {{}} where the label goes, "
                            "e.g. 'This is a sound of {}.'")
    return list(prompts)


def check_batch_size(batch_size: int) -> int:
    if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
        raise UserError(f"batch_size={batch_size} must be a whole number of at least 1, e.g. batch_size=16")
    return batch_size


def resolve_num_workers(num_workers: int | str, device: torch.device) -> int:
    """`auto`: no worker processes on CPU, where they contend with the model's own threads (measured on 2 cores:
    the embed engine at 0.67 of encoder speed with workers, 0.89 without), else up to 8, one core kept free."""
    if num_workers == "auto":
        return 0 if device.type == "cpu" else min(8, max(1, (os.cpu_count() or 2) - 1))
    if not isinstance(num_workers, int) or isinstance(num_workers, bool) or num_workers < 0:
        raise UserError(f"num_workers={num_workers} must be auto or a whole number of at least 0, e.g. num_workers=2")
    return num_workers


def package_versions() -> dict[str, str]:
    versions = {}
    for package in VERSIONED_PACKAGES:
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = "not installed"
    return versions


def collect_scores(batches: Sequence[BatchScores] | object, n_classes: int):
    """Gather streamed batches into positions, a probability matrix and the skipped items."""
    indices: list[int] = []
    chunks: list[np.ndarray] = [np.zeros((0, n_classes), dtype=np.float32)]
    skipped: list[tuple[int, str]] = []
    for batch in batches:
        indices.extend(batch.indices)
        chunks.append(batch.probabilities)
        skipped.extend(batch.skipped)
    return np.asarray(indices, dtype=int), np.concatenate(chunks), skipped


def skipped_table(dataset: AudioDataset, skipped: list[tuple[int, str]]) -> pd.DataFrame:
    rows = dataset.items.iloc[[index for index, _ in skipped]]
    return pd.DataFrame({"item_id": rows["item_id"].to_numpy(), "path": rows["path"].to_numpy(),
                         "reason": [reason for _, reason in skipped]})


def build(node: DictConfig, **kwargs):
    """Instantiate a config group's `_target_`, letting our own UserError through unwrapped."""
    try:
        return instantiate(node, _convert_="all", **kwargs)
    except InstantiationException as error:
        if isinstance(error.__cause__, UserError):
            raise error.__cause__ from None
        raise


def run(cfg: DictConfig) -> dict:
    """Evaluate cfg.model with cfg.template on cfg.dataset; write the run directory; return metrics.json's content."""
    started_at = datetime.now(timezone.utc)
    start = time.perf_counter()
    prompts = check_prompts(list(cfg.template.prompts), cfg.template.name)
    batch_size = check_batch_size(cfg.batch_size)
    device = resolve_device(cfg.device)
    num_workers = resolve_num_workers(cfg.num_workers, device)
    dataset = limit_items(build(cfg.dataset), cfg.limit)
    labels = candidate_labels(dataset.class_names)
    output_dir = prepare_output_dir(Path(cfg.output_dir))
    loaded = build(cfg.model, device=device, precision=cfg.precision)

    cache = (EmbeddingCache(Path(cfg.cache_dir) / "audio_embeddings",
                            model_fingerprint(loaded.model, loaded.feature_extractor, device))
             if cfg.cache else None)
    scoring_start = time.perf_counter()
    batches = score_clips(loaded, dataset.clips, dataset.items["item_id"].tolist(), labels, prompts, cfg.engine,
                          batch_size, num_workers, cfg.seed, cfg.progress, cache, cfg.featurizer)
    indices, probabilities, skipped = collect_scores(batches, len(labels))
    scoring_s = time.perf_counter() - scoring_start

    errors = skipped_table(dataset, skipped)
    write_csv(errors, output_dir / "errors.csv")
    if len(indices) == 0:
        raise UserError(f"none of the {len(dataset)} items could be evaluated; see {output_dir / 'errors.csv'}")
    evaluated = dataset.items.iloc[indices].reset_index(drop=True)
    y_true = evaluated["label"].map({name: i for i, name in enumerate(dataset.class_names)}).to_numpy()
    y_pred = probabilities.argmax(axis=1)
    tables = {
        "predictions": predictions_table(evaluated, y_true, probabilities, dataset.class_names),
        "per_class": per_class_table(y_true, y_pred, dataset.class_names),
    }
    if dataset.has_folds:
        tables["per_fold"] = per_fold_table(y_true, y_pred, evaluated["fold"].to_numpy())
    resolved = OmegaConf.to_container(cfg, resolve=True)
    metrics = {
        **summary_metrics(y_true, probabilities, len(labels)),
        "metrics_cover": "evaluated items only (skipped items are listed in errors.csv)",
        "n_items": len(dataset),
        "n_evaluated": len(indices),
        "n_skipped": len(skipped),
        "skipped_by_reason": errors["reason"].value_counts().to_dict(),
        "dataset": dataset.name,
        "model": loaded.name,
        "model_name_or_path": loaded.name_or_path,
        "template": cfg.template.name,
        "prompts": prompts,
        "engine": cfg.engine,
        "labels": dataset.class_names,
        "candidate_labels": labels,
        "device": str(device),
        "precision": cfg.precision,
        "batch_size": batch_size,
        "num_workers": num_workers,
        "started_at": started_at.isoformat(timespec="seconds"),
        "scoring_s": round(scoring_s, 3),
        "elapsed_s": round(time.perf_counter() - start, 3),
        "clips_per_s": round(len(indices) / scoring_s, 3) if scoring_s > 0 else None,
        "output_dir": str(output_dir),
        "versions": package_versions(),
        "config": resolved,
    }
    write_run(output_dir, metrics, tables, confusion_table(y_true, y_pred, dataset.class_names),
              OmegaConf.to_yaml(resolved))
    return metrics


def format_summary(metrics: dict) -> str:
    skipped = f", {metrics['n_skipped']} skipped" if metrics["n_skipped"] else ""
    return (
        f"{metrics['dataset']} | {metrics['model']} | {metrics['template']}: "
        f"accuracy {metrics['accuracy']:.4f} (top-5 {metrics['top5_accuracy']:.4f}, "
        f"balanced {metrics['balanced_accuracy']:.4f}, macro F1 {metrics['macro_f1']:.4f}) "
        f"on {metrics['n_evaluated']} of {metrics['n_items']} clips{skipped} in {metrics['elapsed_s']:.1f} s "
        f"({metrics['clips_per_s']} clips/s scoring) -> {metrics['output_dir']}"
    )
