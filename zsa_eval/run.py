"""One evaluation: dataset -> model -> engine -> metrics -> report. Everything comes from the Hydra config."""

from __future__ import annotations

import json
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
from zsa_eval.config import checked
from zsa_eval.distributed import Ranks, agree, process_group, ranks_from_env, shard
from zsa_eval.data import LABEL_NOT_CANDIDATE, AudioDataset, Selection, candidate_labels, limit_items
from zsa_eval.engine import check_engine_settings, score_clips
from zsa_eval.errors import GateFailed, RunInterrupted, UserError
from zsa_eval.metrics import (
    confusion_table,
    gate_failures,
    per_class_table,
    per_fold_table,
    predictions_table,
    summary_metrics,
)
from zsa_eval.models import LoadedModel, resolve_device
from zsa_eval.report import ProgressLog, open_run_dir, write_csv, write_run
from zsa_eval.report.leaderboard import write_leaderboard

# Settings that do not change a run's results: a run may be resumed with other values of these.
RESULT_NEUTRAL_KEYS = ("output_dir", "results_dir", "resume", "overwrite", "progress", "verbose", "debug",
                       "batch_size", "num_workers", "cache", "cache_dir", "on_error", "max_skip_fraction", "gate")
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
            raise UserError(
                f"prompt {prompt!r} is not a valid template ({error}); write the label place as {{}}"
            ) from error
        if filled.count("\0") != 1:
            raise UserError(f"prompt {prompt!r} needs exactly one {{}} where the label goes, "
                            "e.g. 'This is a sound of {}.'")
    return list(prompts)


def resolve_num_workers(num_workers: int | str, device: torch.device) -> int:
    """`auto`: no worker processes on CPU, where they contend with the model's own threads (measured on 2 cores:
    the embed engine at 0.67 of encoder speed with workers, 0.89 without), else up to 8, one core kept free."""
    if num_workers == "auto":
        return 0 if device.type == "cpu" else min(8, max(1, (os.cpu_count() or 2) - 1))
    return num_workers


def package_versions() -> dict[str, str]:
    versions = {}
    for package in VERSIONED_PACKAGES:
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = "not installed"
    return versions


def baseline_accuracy(baseline: str | None) -> float | None:
    """The accuracy of the earlier run that gate.baseline names, if any (read before the run)."""
    if baseline is None:
        return None
    try:
        return float(json.loads(Path(baseline).read_text())["accuracy"])
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise UserError(f"gate.baseline={baseline} is not a readable metrics.json with an accuracy "
                        f"({type(error).__name__}); point it at an earlier run's metrics.json") from error


def build(node: DictConfig, **kwargs):
    """Instantiate a config group's `_target_`, letting our own UserError through unwrapped."""
    try:
        return instantiate(node, _convert_="all", **kwargs)
    except InstantiationException as error:
        if isinstance(error.__cause__, UserError):
            raise error.__cause__ from None
        raise


def run_identity(resolved: dict) -> dict:
    """The settings that determine a run's results (a resumed run must match them)."""
    return {key: value for key, value in resolved.items() if key not in RESULT_NEUTRAL_KEYS}


def check_and_compact(log: ProgressLog, item_ids: list[str]) -> None:
    """Check what an earlier, interrupted run finished against the dataset as it is now; merge its log parts."""
    records = log.read()
    for index, record in records.items():
        if index >= len(item_ids) or item_ids[index] != record["item_id"]:
            raise UserError(f"the dataset changed since the interrupted run (item {index} was {record['item_id']!r}); "
                            "use overwrite=true to start again")
    log.compact(records)


def open_run(output_dir: Path, identity: dict, cfg: DictConfig, item_ids: list[str], ranks: Ranks) -> set[int]:
    """Rank 0 creates or reopens the run directory; every rank learns which items are already done."""
    failure = None
    if ranks.is_main:
        try:
            open_run_dir(output_dir, identity, cfg.resume, cfg.overwrite)
            check_and_compact(ProgressLog(output_dir), item_ids)
        except UserError as error:
            failure = str(error)
    agree(ranks, failure)
    return set(ProgressLog(output_dir).read())


def load_scorer(cfg: DictConfig, device: torch.device) -> tuple[LoadedModel, EmbeddingCache | None]:
    """The model on its device, and its audio-embedding cache unless cache=false."""
    loaded = build(cfg.model, device=device, precision=cfg.precision)
    cache = (EmbeddingCache(Path(cfg.cache_dir) / "audio_embeddings",
                            model_fingerprint(loaded.model, loaded.feature_extractor, device))
             if cfg.cache else None)
    return loaded, cache


def score_items(cfg: DictConfig, loaded: LoadedModel, cache: EmbeddingCache | None, dataset: AudioDataset,
                labels: list[str], prompts: list[str], log: ProgressLog, todo: list[int], batch_size: int,
                num_workers: int, progress: bool) -> None:
    """Score the items at positions `todo`, appending each batch's outcomes to the log as it finishes."""
    if not todo:
        return
    item_ids = dataset.items["item_id"].tolist()
    batches = score_clips(loaded, Selection(dataset.clips, todo), [item_ids[i] for i in todo], labels, prompts,
                          cfg.engine, batch_size, num_workers, cfg.seed, progress, cache, cfg.featurizer)
    try:
        for batch in batches:
            scored = [{"index": todo[row], "item_id": item_ids[todo[row]], "probabilities": probabilities.tolist()}
                      for row, probabilities in zip(batch.indices, batch.probabilities)]
            skipped = [{"index": todo[row], "item_id": item_ids[todo[row]], "reason": reason, "detail": detail}
                       for row, reason, detail in batch.skipped]
            log.append(scored + skipped)
            if skipped and cfg.on_error == "raise":
                first = skipped[0]
                raise UserError(f"item {first['item_id']!r}: {first['reason']}: {first['detail']}; fix or remove it, "
                                "or set on_error=skip to record bad items and go on")
    except KeyboardInterrupt:
        finished = len(log.read())
        raise RunInterrupted(
            f"interrupted after {finished} of {len(dataset)} items; their results are kept in {log.directory}; "
            f"resume with the same arguments plus output_dir={log.directory} resume=true"
        ) from None


def skipped_table(dataset: AudioDataset, records: dict[int, dict]) -> pd.DataFrame:
    """Every skipped item: bad audio from the log, and items whose label is not a candidate."""
    bad = [{"item_id": record["item_id"], "path": dataset.items["path"].iat[index], "reason": record["reason"],
            "detail": record["detail"]} for index, record in sorted(records.items()) if "reason" in record]
    off_label = [{"item_id": row.item_id, "path": row.path, "reason": LABEL_NOT_CANDIDATE,
                  "detail": f"label {row.label!r} is not one of dataset.classes"}
                 for row in dataset.excluded.itertuples()]
    return pd.DataFrame(bad + off_label, columns=["item_id", "path", "reason", "detail"])


def evaluation_tables(dataset: AudioDataset, records: dict[int, dict], output_dir: Path):
    """True classes and probabilities of the evaluated items, and the predictions/per-class/per-fold tables."""
    positions = [index for index, record in sorted(records.items()) if "probabilities" in record]
    if not positions:
        raise UserError(f"none of the {len(dataset) + len(dataset.excluded)} items could be evaluated; "
                        f"see {output_dir / 'errors.csv'}")
    probabilities = np.asarray([records[index]["probabilities"] for index in positions], dtype=np.float32)
    evaluated = dataset.items.iloc[positions].reset_index(drop=True)
    y_true = evaluated["label"].map({name: i for i, name in enumerate(dataset.class_names)}).to_numpy()
    y_pred = probabilities.argmax(axis=1)
    tables = {
        "predictions": predictions_table(evaluated, y_true, probabilities, dataset.class_names),
        "per_class": per_class_table(y_true, y_pred, dataset.class_names),
    }
    if dataset.has_folds:
        tables["per_fold"] = per_fold_table(y_true, y_pred, evaluated["fold"].to_numpy())
    return y_true, probabilities, tables


def run(cfg: DictConfig) -> dict | None:
    """Evaluate cfg.model with cfg.template on cfg.dataset; write the run directory; return metrics.json's content.

    Every finished batch is logged first, so an interrupted run resumes (resume=true) where it stopped and ends
    with the same results as an uninterrupted one. Under torchrun or accelerate launch each process scores its
    share of the items; rank 0 writes the results and returns the metrics, the other ranks return None."""
    started_at = datetime.now(timezone.utc)
    start = time.perf_counter()
    cfg = checked(cfg)
    ranks = ranks_from_env()
    prompts = check_prompts(list(cfg.template.prompts), cfg.template.name)
    batch_size = cfg.batch_size
    baseline = baseline_accuracy(cfg.gate.baseline)
    check_engine_settings(cfg.engine, prompts)
    device = resolve_device(cfg.device, ranks.local_rank if ranks.distributed else None)
    num_workers = resolve_num_workers(cfg.num_workers, device)
    dataset = limit_items(build(cfg.dataset), cfg.limit)
    labels = candidate_labels(dataset.class_names)
    resolved = OmegaConf.to_container(cfg, resolve=True)
    output_dir = Path(cfg.output_dir)
    loaded, cache = load_scorer(cfg, device)  # before the run directory exists: a model that fails leaves none
    with process_group(ranks, device.type):
        done = open_run(output_dir, run_identity(resolved), cfg, dataset.items["item_id"].tolist(), ranks)
        remaining = [index for index in range(len(dataset)) if index not in done]
        scoring_start, failure = time.perf_counter(), None
        try:
            score_items(cfg, loaded, cache, dataset, labels, prompts, ProgressLog(output_dir, ranks.progress_part),
                        shard(remaining, ranks), batch_size, num_workers, cfg.progress and ranks.is_main)
        except UserError as error:
            failure = str(error)
        agree(ranks, failure)
        scoring_s = time.perf_counter() - scoring_start
        if not ranks.is_main:
            return None
    n_scored = len(remaining)

    records = ProgressLog(output_dir).read()
    errors = skipped_table(dataset, records)
    write_csv(errors, output_dir / "errors.csv")
    y_true, probabilities, tables = evaluation_tables(dataset, records, output_dir)
    summary = summary_metrics(y_true, probabilities, len(labels))
    failures = gate_failures(summary["accuracy"], cfg.gate.min_accuracy, baseline, cfg.gate.max_drop)
    metrics = {
        **summary,
        "metrics_cover": "evaluated items only (skipped items are listed in errors.csv)",
        "n_items": len(dataset) + len(dataset.excluded),
        "n_evaluated": len(y_true),
        "n_skipped": len(errors),
        "skipped_by_reason": errors["reason"].value_counts().to_dict(),
        "dataset": dataset.name,
        "model": cfg.model.name,
        "model_name_or_path": cfg.model.name_or_path,
        "template": cfg.template.name,
        "prompts": prompts,
        "engine": cfg.engine,
        "labels": dataset.class_names,
        "candidate_labels": labels,
        "device": str(device),
        "precision": cfg.precision,
        "batch_size": batch_size,
        "num_workers": num_workers,
        "resumed_items": len(done),
        "processes": ranks.world_size,
        "started_at": started_at.isoformat(timespec="seconds"),
        "scoring_s": round(scoring_s, 3),
        "elapsed_s": round(time.perf_counter() - start, 3),
        "clips_per_s": round(n_scored / scoring_s, 3) if scoring_s > 0 else None,
        "output_dir": str(output_dir),
        "gate": {"passed": not failures, "failures": failures, "baseline_accuracy": baseline},
        "versions": package_versions(),
        "config": resolved,
    }
    write_run(output_dir, metrics, tables, confusion_table(y_true, probabilities.argmax(axis=1), dataset.class_names),
              OmegaConf.to_yaml(resolved))
    results_dir = Path(cfg.results_dir)
    if results_dir.resolve() in output_dir.resolve().parents:
        write_leaderboard(results_dir)
    check_skip_fraction(metrics, cfg.max_skip_fraction, output_dir)
    if failures:
        raise GateFailed(f"gate failed: {'; '.join(failures)} (results in {output_dir})")
    return metrics


def check_skip_fraction(metrics: dict, max_skip_fraction: float, output_dir: Path) -> None:
    """After everything is written: too many bad items fail the run (exit 2), pointing at the list."""
    fraction = metrics["n_skipped"] / metrics["n_items"]
    if fraction > max_skip_fraction:
        raise UserError(f"{metrics['n_skipped']} of {metrics['n_items']} items ({fraction:.1%}) were skipped, above "
                        f"max_skip_fraction={max_skip_fraction}; the list is in {output_dir / 'errors.csv'} "
                        "(results were written for the rest)")


def format_summary(metrics: dict, wall_s: float) -> str:
    """The run in one line; `wall_s` counts from the process start (imports, config, model load included)."""
    skipped = f", {metrics['n_skipped']} skipped (see errors.csv)" if metrics["n_skipped"] else ""
    return (
        f"{metrics['dataset']} | {metrics['model']} | {metrics['template']}: "
        f"accuracy {metrics['accuracy']:.4f} (top-{metrics['top_k']} {metrics['top_k_accuracy']:.4f}, "
        f"balanced {metrics['balanced_accuracy']:.4f}, macro F1 {metrics['macro_f1']:.4f}) "
        f"on {metrics['n_evaluated']} of {metrics['n_items']} clips{skipped} in {wall_s:.1f} s "
        f"({metrics['scoring_s']:.1f} s scoring, {metrics['clips_per_s']} clips/s) -> {metrics['output_dir']}"
    )
