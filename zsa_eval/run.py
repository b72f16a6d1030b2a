"""One evaluation, for any task: dataset -> task -> engine -> task results -> report. Everything comes from the
Hydra config; the task (zsa_eval/tasks/, picked by the dataset's `task` and the `protocol`) decides what is embedded
and measured."""

from __future__ import annotations

import os
import sys
import time
from contextlib import ExitStack
from datetime import datetime, timezone
from pathlib import Path

import torch
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from zsa_eval.cache import EmbeddingCache, model_fingerprint
from zsa_eval.config import checked
from zsa_eval.data import AudioDataset, limit_items
from zsa_eval.distributed import Ranks, ranks_from_env
from zsa_eval.engine import check_engine_family
from zsa_eval.errors import GateFailed, RunInterrupted, UserError
from zsa_eval.families import AUDIO_EMBEDDING_KINDS, ModelFamily
from zsa_eval.interrupts import stop_if_interrupted
from zsa_eval.long_audio import LongAudio, check_family_policy, long_audio_policy
from zsa_eval.models import LoadedModel, resolve_device
from zsa_eval.processing import ProcessedItems, log_batches, process_items
from zsa_eval.provenance import environment, files_fingerprint, identity_hash, items_fingerprint
from zsa_eval.store import (METRICS_FILE, RUN_FILE, ProgressLog, check_resumable, json_text, write_results,
                             write_run_file)
from zsa_eval.store.embeddings import read_embedding_parts, remove_embedding_parts
from zsa_eval.report.gate import check_baseline_dataset, gate_failures, read_baseline, reference_failures
from zsa_eval.report.leaderboard import leaderboard_of, update_leaderboard
from zsa_eval.report.references import check_references, references_of, run_checkpoint, run_references
from zsa_eval.report.run_report import report_run
from zsa_eval.store.skips import check_skip_fraction, skip_status, write_skips
from zsa_eval.tasks import Evaluated, RunContext, Task
from zsa_eval.tasks.labels import template_protocol_warnings
from zsa_eval.tasks.registry import ZEROSHOT, task_for, task_named

# Settings that do not change a run's results: a run may be resumed with other values of these.
RESULT_NEUTRAL_KEYS = ("output_dir", "results_dir", "resume", "overwrite", "progress", "verbose", "debug",
                       "batch_size", "num_workers", "cache", "cache_dir", "on_error", "max_skip_fraction", "gate",
                       "save_embeddings",
                       "reference", "report", "report_mistakes", "report_mistakes_per_class")
SELECTION_KEYS = ("label_column", "label_names", "label_delimiter", "classes", "folds", "subset", "split_folder",
                  "hf_subsets", "benchmark")  # the last two: dataset=mteb's subsets, and the benchmark defining them


def resolve_num_workers(num_workers: int | str, device: torch.device) -> int:
    """`auto`: no worker processes on CPU, where they contend with the model's own threads (measured on 2 cores:
    the embed engine at 0.67 of encoder speed with workers, 0.89 without), else up to 8, one core kept free."""
    if num_workers == "auto":
        return 0 if device.type == "cpu" else min(8, max(1, (os.cpu_count() or 2) - 1))
    return num_workers


def build(node: DictConfig, **kwargs):
    """Instantiate a config group's `_target_`, letting our own UserError through unwrapped."""
    try:
        return instantiate(node, _convert_="all", **kwargs)
    except InstantiationException as error:
        if isinstance(error.__cause__, UserError):
            raise error.__cause__ from None
        raise


RECOMMENDED_KEYS = ("prompts", "instruction")  # what a dataset or model config recommends to the template


def loader_config(node: DictConfig) -> DictConfig:
    """A dataset or model config as its loader takes it: without the prompts and instruction it recommends
    (template=auto reads the prompts, every template the dataset's instruction), the published figures
    (zsa_eval.report.references reads those) and the mteb tasks of its clips (protocol=mteb reads those)."""
    return OmegaConf.masked_copy(node, [key for key in node
                                        if key not in (*RECOMMENDED_KEYS, "references", "references_data",
                                                       "mteb_tasks")])


def run_identity(resolved: dict) -> dict:
    """The settings that determine a run's results (a resumed run must match them). Of the protocol: nothing for a
    zero-shot run (its run.json reads as before protocols existed), a probe's settings (its output folder aside)."""
    identity = {key: value for key, value in resolved.items() if key not in (*RESULT_NEUTRAL_KEYS, "protocol")}
    if resolved["protocol"]["name"] != ZEROSHOT:
        identity["protocol"] = {key: value for key, value in resolved["protocol"].items() if key != "folder"}
    return identity


def load_scorer(cfg: DictConfig, device: torch.device, family: ModelFamily | None = None) -> LoadedModel:
    """The model on its device (`family`: one already loaded, zsa_eval.evaluate's), if the engine can run its family
    (the pipeline hears a fused CLAP's short clips as transformers does: its short_clip_fusion is that)."""
    if family is not None:
        loaded = LoadedModel(str(cfg.model.name), cfg.model.get("name_or_path"), family.device, family.dtype, family)
    else:
        node = loader_config(cfg.model)
        if cfg.engine == "pipeline" and node.get("short_clip_fusion") == "auto":
            node.short_clip_fusion = "transformers"
        loaded = build(node, device=device, precision=cfg.precision)
    check_engine_family(cfg.engine, loaded.family, str(cfg.model.name_or_path))
    return loaded


def audio_cache(cfg: DictConfig, loaded: LoadedModel, long_audio: LongAudio) -> EmbeddingCache | None:
    """The model's audio-embedding cache, unless cache=false, the model has no audio embeddings (an audio language
    model: README, "Audio language models") or its family gives nothing to key them on (no weights fingerprint:
    said in a note)."""
    if not cfg.cache or loaded.family.kind not in AUDIO_EMBEDDING_KINDS:
        return None
    identity = loaded.family.cache_identity()
    if identity is None:
        print(f"zsa-eval: note: no embedding cache for model {loaded.name}: its family ({loaded.family.name}) gives "
              "no weights fingerprint to key it on; set model.fingerprint=NAME_OF_THE_WEIGHTS to cache it",
              file=sys.stderr)
        return None
    return EmbeddingCache(Path(cfg.cache_dir) / "audio_embeddings", model_fingerprint(identity, long_audio.identity()))


def common_identity(cfg: DictConfig, dataset: AudioDataset, loaded: LoadedModel, long_audio: LongAudio) -> dict:
    """What determines a run's results, whatever its task, in the terms a reader compares runs by (the task adds
    its own: prompts, a caption column)."""
    family_settings = loaded.family.settings()
    return {
        "family": loaded.family.name,
        **({"family_settings": family_settings} if family_settings else {}),
        "model_name_or_path": str(cfg.model.name_or_path),
        "model_revision": loaded.family.revision or cfg.model.get("revision"),
        "weight_fingerprint": loaded.family.weight_fingerprint,
        "dataset": dataset.name,
        "dataset_source": dataset.source,
        "dataset_revision": dataset.revision,
        "items_fingerprint": items_fingerprint(dataset.items),
        "selection": {key: OmegaConf.to_container(cfg.dataset[key]) if OmegaConf.is_config(cfg.dataset[key])
                      else cfg.dataset[key] for key in SELECTION_KEYS if key in cfg.dataset}
        | {"limit": cfg.limit, "limit_mode": cfg.limit_mode, "seed": cfg.seed},
        "engine": cfg.engine,
        "precision": cfg.precision,
        **long_audio.identity(),
    }


def run_facts(context: RunContext, ranks: Ranks, work: ProcessedItems, started_at: datetime, start: float,
              cache_hits: int, encoded: int) -> dict:
    """metrics.json's account of how the run went: where and how batched, how many processes, what was resumed,
    times (`start`: perf_counter at the run's start), the cache hits and the encoder's speed."""
    return {
        "device": str(context.loaded.device),
        "batch_size": context.cfg.batch_size,
        "num_workers": context.num_workers,
        "resumed_items": len(work.done),
        "processes": ranks.world_size,
        "started_at": started_at.isoformat(timespec="seconds"),
        "finished_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "scoring_s": round(work.seconds, 3),
        "elapsed_s": round(time.perf_counter() - start, 3),
        "cache_hits": cache_hits,
        "encoded_clips_per_s": round(encoded / work.seconds, 3) if encoded and work.seconds > 0 else None,
        "output_dir": str(work.output_dir),
    }


def evaluated_items(task: Task, context: RunContext, records: dict[int, dict], output_dir: Path) -> Evaluated:
    """The items the task finished, in dataset order, with their records and (a run that keeps them) their stored
    audio embeddings; none at all is an error."""
    positions = [index for index, record in sorted(records.items()) if task.finished_key in record]
    if not positions:
        raise UserError(f"none of the {len(context.dataset)} items could be evaluated; see "
                        f"{output_dir / 'errors.csv'}")
    stored = read_embedding_parts(output_dir) if task.keeps_embeddings(context.cfg) else None
    return Evaluated(positions, context.dataset.items.iloc[positions].reset_index(drop=True),
                     [records[position] for position in positions],
                     [stored[position] for position in positions] if stored is not None else None)


def without_idle_limit(cfg: DictConfig, n_items: int) -> DictConfig:
    """`limit` at or above the item count selects every item: it is no selection (the run is the unlimited one:
    the same identity, leaderboard row and published figures)."""
    if cfg.limit is None or cfg.limit < n_items:
        return cfg
    cfg = cfg.copy()
    cfg.limit = None
    return cfg


def run(cfg: DictConfig, family: ModelFamily | None = None) -> dict | None:
    """Evaluate cfg.model on cfg.dataset for its task; write the run directory; return metrics.json's content.

    Every finished batch is logged first, so an interrupted run resumes (resume=true) where it stopped and ends
    with the same results as an uninterrupted one. Under torchrun or accelerate launch each process scores its
    share of the items; rank 0 writes the results and returns the metrics, the other ranks return None. `family`:
    a family already loaded (zsa_eval.evaluate's model=<instance>) in place of cfg.model's."""
    started_at, start = datetime.now(timezone.utc), time.perf_counter()
    cfg = checked(cfg)
    check_resumable(Path(cfg.output_dir), cfg.resume, cfg.overwrite)
    task = task_for(cfg)
    ranks = ranks_from_env()
    prompts = task.prompts(cfg)
    task.check(cfg)
    metric_names = [spec.name for spec in task.metrics]
    check_references(cfg, prompts, metric_names, None)  # before the data loads; the limit once items are counted
    baseline = read_baseline(cfg.gate.baseline)
    device = family.device if family is not None else \
        resolve_device(cfg.device, ranks.local_rank if ranks.distributed else None)
    dataset = build(loader_config(cfg.dataset))
    cfg = without_idle_limit(cfg, len(dataset))
    protocol = check_references(cfg, prompts, metric_names, cfg.limit)
    dataset = limit_items(dataset, cfg.limit, cfg.limit_mode, cfg.seed)
    resolved = OmegaConf.to_container(cfg, resolve=True)
    loaded = load_scorer(cfg, device, family)  # before the run directory exists: a model that fails leaves none
    task.check_model(cfg, loaded)
    check_family_policy(loaded.family, cfg.long_audio.name)
    long_audio = long_audio_policy(cfg.long_audio, loaded.family.window_seconds, loaded.sampling_rate, cfg.model.name,
                                   loaded.family.frame_seconds)
    cache = audio_cache(cfg, loaded, long_audio)
    identity = task.identity(common_identity(cfg, dataset, loaded, long_audio), cfg)
    check_baseline_dataset(baseline, cfg.gate.baseline, identity)
    warnings = task.check_dataset(dataset) + template_protocol_warnings(cfg)
    for warning in warnings if ranks.is_main else []:
        print(f"zsa-eval: warning: {warning}", file=sys.stderr)
    context = RunContext(cfg, dataset, loaded, cache, prompts, resolve_num_workers(cfg.num_workers, device),
                         cfg.progress and ranks.is_main, long_audio)
    with ExitStack() as held:  # the run directory's lock, held until its results are written
        try:
            work = process_items(cfg, ranks, device, run_identity(resolved), dataset.items["item_id"].tolist(),
                                 Path(cfg.output_dir), lambda log, todo: log_batches(task, context, log, todo),
                                 task.keeps_embeddings(cfg), held)
            if work is None:
                return None
            return finish_run(task, context, ranks, work, identity, protocol, baseline, resolved, warnings,
                              (started_at, start))
        except KeyboardInterrupt:  # outside the batches (which say how far they got): opening, or writing results
            raise interrupted_outside_batches(Path(cfg.output_dir), len(dataset)) from None


def interrupted_outside_batches(output_dir: Path, n_items: int) -> RunInterrupted:
    """Ctrl-C while the run directory was opened or the results were written: resumable once the directory holds
    the run (run.json), else nothing was written."""
    if not (output_dir / RUN_FILE).is_file():
        return RunInterrupted(f"interrupted before the run started: nothing was written to {output_dir}", None)
    finished = len(ProgressLog(output_dir).read())
    return RunInterrupted(f"interrupted before the results were written ({finished} of {n_items} items finished); "
                          f"what was finished is kept in {output_dir}", str(output_dir))


def finish_run(task: Task, context: RunContext, ranks: Ranks, work: ProcessedItems, identity: dict, protocol: dict,
               baseline: dict | None, resolved: dict, warnings: list[str], started: tuple[datetime, float]) -> dict:
    """Rank 0, every item processed: measure what was evaluated, then write the run's files (metrics.json last),
    its report and the leaderboard; a failed gate or too many skips raise after everything is written. `warnings`:
    what the run said of its selection before its results (kept in metrics.json); `started`: when (UTC, and
    perf_counter)."""
    started_at, start = started
    cfg, dataset, loaded, long_audio = context.cfg, context.dataset, context.loaded, context.long_audio
    output_dir = work.output_dir
    records, cache_hits, encoded = work.outcomes(task.finished_key)
    errors = write_skips(dataset.items, dataset.ignored_files, records, output_dir)
    evaluated = evaluated_items(task, context, records, output_dir)
    results = task.results(context, evaluated)
    baseline_accuracy = None if baseline is None else float(baseline["accuracy"])
    accuracy = results.metrics.get("accuracy")  # the gate bounds an accuracy (tasks without one refuse it)
    failures = ([] if accuracy is None
                else gate_failures(accuracy, cfg.gate.min_accuracy, baseline_accuracy, cfg.gate.max_drop))
    references = run_references(references_of(cfg), run_checkpoint(cfg.model), results.metrics, protocol)
    failures += reference_failures(references, cfg.gate.max_drop) if cfg.gate.reference else []
    metrics = {
        "task": task.name,
        **results.metrics,
        "family": loaded.family.name,
        "n_items": len(dataset),
        "n_evaluated": len(evaluated.positions),
        "n_skipped": len(errors),
        "skipped_by_reason": errors["reason"].value_counts().to_dict(),
        "n_ignored_files": len(dataset.ignored_files),
        "status": skip_status(len(errors), len(dataset), cfg.max_skip_fraction),
        "dataset": dataset.name,
        "model": cfg.model.name,
        "model_name_or_path": cfg.model.name_or_path,
        "engine": cfg.engine,
        "precision": cfg.precision,
        "long_audio": long_audio.counts(evaluated.records, loaded.family.long_clips_heard),
        "identity": identity,
        "identity_hash": identity_hash(identity),
        "provenance": {**environment(loaded.device), **results.provenance,
                       "files_fingerprint": files_fingerprint(dataset.items["path"].tolist())},
        **run_facts(context, ranks, work, started_at, start, cache_hits, encoded),
        "references": references,
        "warnings": warnings,
        "gate": {"passed": not failures, "failures": failures, "baseline_accuracy": baseline_accuracy},
        "leaderboard": leaderboard_of(output_dir, Path(cfg.results_dir)),
        "config": resolved,
    }
    metrics |= task.declaration(metrics)
    write_results(output_dir, results, OmegaConf.to_yaml(resolved))
    remove_embedding_parts(output_dir)
    metrics["report"] = report_run(output_dir, metrics, results, lambda: task.mistakes(context, evaluated, results),
                                   dataset.clips, cfg.report, cfg.debug)
    stop_if_interrupted()  # a Ctrl-C swallowed while the report decoded a clip again
    write_run_file(output_dir, METRICS_FILE, json_text(metrics))
    update_leaderboard(metrics)
    check_skip_fraction(metrics, cfg.max_skip_fraction, output_dir)
    if failures:
        raise GateFailed(f"gate failed: {'; '.join(failures)} (results in {output_dir})", metrics)
    return metrics


def format_summary(metrics: dict, wall_s: float) -> str:
    """The run in one line, as its task writes it; `wall_s` counts from the process start (imports, config, model
    load included)."""
    task = task_named(metrics.get("task", "classification"), metrics.get("protocol", ZEROSHOT))
    return task.summary_line(metrics, wall_s)
