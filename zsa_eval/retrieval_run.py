"""One retrieval run (a dataset with `task: retrieval`): every clip's audio embedding through the embed engine (the
same cache, resume, skips and bad-audio records as classification; each batch's embeddings are kept in the run
directory so an interrupted run continues), then every caption's text embedding, the family's audio-text logits
between them, and zsa_eval.retrieval's metrics and tables. Captions are used as written: no template."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from omegaconf import DictConfig, OmegaConf

from zsa_eval.cache import EmbeddingCache
from zsa_eval.data import RETRIEVAL, AudioDataset, Selection, limit_items
from zsa_eval.distributed import ranks_from_env
from zsa_eval.engine import caption_embeddings, embed_clips
from zsa_eval.errors import UserError
from zsa_eval.interrupts import stop_if_interrupted
from zsa_eval.models import LoadedModel, resolve_device
from zsa_eval.provenance import environment, files_fingerprint
from zsa_eval.report import ProgressLog, atomic_write, short_hash, write_csv, write_json
from zsa_eval.report.embeddings import (
    EMBEDDINGS_DIR,
    npy_bytes,
    read_embedding_parts,
    remove_embedding_parts,
    store_embedding_part,
)
from zsa_eval.report.leaderboard import identity_hash
from zsa_eval.report.plots import recall_at_k_png
from zsa_eval.retrieval import DIRECTIONS, Retrieval, ranks_table, recall_curve, retrieval_metrics, retrieve
from zsa_eval.run import (
    build,
    check_skip_fraction,
    interruption,
    leaderboard_of,
    load_scorer,
    loader_config,
    process_items,
    raise_on_skip,
    resolve_num_workers,
    run_facts,
    result_identity,
    run_identity,
    skip_status,
    update_leaderboard,
    write_skips,
)

RECALL_PLOT_MAX_K = 50
SIMILARITY = "the family's audio-text logits (CLAP: cosine similarity times the logit scale; PE-Audio: scaled dot " \
             "product plus bias), ranked highest first"


def check_retrieval_settings(cfg: DictConfig) -> None:
    """What a retrieval run cannot do: the pipeline engine (it exposes no embeddings) and the accuracy gate."""
    if cfg.engine != "embed":
        raise UserError(f"dataset={cfg.dataset.name} is a retrieval dataset: it needs engine=embed (the pipeline "
                        "engine exposes no embeddings)")
    if cfg.gate.min_accuracy is not None or cfg.gate.baseline is not None:
        raise UserError(f"gate.min_accuracy and gate.baseline bound a classification accuracy, which a retrieval run "
                        f"(dataset={cfg.dataset.name}) does not have; drop them")


def caption_table(clips: pd.DataFrame) -> pd.DataFrame:
    """One row per caption of the evaluated clips: caption_id (`<item_id>#<n>`, n counting the clip's captions from
    0), item_id, clip (its row among the evaluated clips), caption."""
    rows = [(f"{item_id}#{number}", item_id, clip, caption)
            for clip, (item_id, captions) in enumerate(zip(clips["item_id"], clips["captions"]))
            for number, caption in enumerate(captions)]
    return pd.DataFrame(rows, columns=["caption_id", "item_id", "clip", "caption"])


def retrieval_identity(cfg: DictConfig, dataset: AudioDataset, loaded: LoadedModel, weights: str) -> dict:
    """What determines a retrieval run's results: as for classification, less the template (captions are used as
    written), plus the task and the caption column."""
    identity = result_identity(cfg, dataset, loaded, weights, [])
    identity = {key: value for key, value in identity.items() if key not in ("template", "prompts")}
    identity["selection"] |= {"caption_column": cfg.dataset.caption_column}
    return {"task": RETRIEVAL, **identity}


def embed_items(cfg: DictConfig, loaded: LoadedModel, cache: EmbeddingCache | None, dataset: AudioDataset,
                log: ProgressLog, todo: list[int], num_workers: int, progress: bool) -> None:
    """Embed the clips at positions `todo`; each batch's embeddings are stored in the run directory, then its
    outcomes (embedded, from the cache or not, or skipped) are appended to the log."""
    if not todo:
        return
    item_ids = dataset.items["item_id"].tolist()
    batches = embed_clips(loaded, Selection(dataset.clips, todo), [item_ids[i] for i in todo], cfg.batch_size,
                          num_workers, cfg.seed, progress, cache, cfg.featurizer)
    try:
        for batch in batches:
            positions = [todo[row] for row in batch.indices]
            if positions:
                store_embedding_part(log.directory, positions, [embedding.cpu().numpy() for embedding in batch.audio])
            cached = set(batch.cached_rows)
            skipped = [(todo[row], reason, detail) for row, reason, detail in batch.skipped]
            log.append([{"index": position, "item_id": item_ids[position], "embedded": True,
                         **({"cached": True} if row in cached else {})} for row, position in enumerate(positions)]
                       + [{"index": position, "item_id": item_ids[position], "reason": reason, "detail": detail}
                          for position, reason, detail in skipped])
            raise_on_skip(cfg.on_error, skipped, item_ids)
            stop_if_interrupted()
    except KeyboardInterrupt:
        raise interruption(log, len(dataset)) from None


@torch.inference_mode()
def similarity_matrix(loaded: LoadedModel, audio: list[np.ndarray], captions: list[str],
                      batch_size: int) -> np.ndarray:
    """(clips, captions) logits of the family, from the stored audio embeddings and the captions' embeddings."""
    text = caption_embeddings(loaded, captions, batch_size)
    audio_tensors = [torch.from_numpy(embedding).to(loaded.device) for embedding in audio]
    return loaded.family.logits(audio_tensors, text).float().cpu().numpy()


def write_retrieval_embeddings(output_dir: Path, loaded: LoadedModel, audio: list[np.ndarray],
                               clips: pd.DataFrame, captions: pd.DataFrame, batch_size: int) -> None:
    """save_embeddings=true: audio.npy (one row per evaluated clip, frame-level models pooled) with
    audio_items.csv, text.npy (one row per caption) with text_captions.csv."""
    folder = output_dir / EMBEDDINGS_DIR
    with torch.inference_mode():
        pooled = [loaded.family.clip_embedding(torch.from_numpy(embedding)).numpy() for embedding in audio]
        text = caption_embeddings(loaded, captions["caption"].tolist(), batch_size).cpu().numpy()
    atomic_write(folder / "audio.npy", npy_bytes(np.stack(pooled).astype(np.float32)))
    write_csv(clips[["item_id"]], folder / "audio_items.csv")
    atomic_write(folder / "text.npy", npy_bytes(text.astype(np.float32)))
    write_csv(captions[["caption_id", "item_id", "caption"]], folder / "text_captions.csv")


def recall_curves(retrieval: Retrieval, n_clips: int, n_captions: int) -> dict[str, np.ndarray]:
    """Recall at k = 1..min(50, candidates) of each direction, for the plot."""
    return {"text to audio": recall_curve(retrieval.t2a.best_ranks, min(RECALL_PLOT_MAX_K, n_clips)),
            "audio to text": recall_curve(retrieval.a2t.best_ranks, min(RECALL_PLOT_MAX_K, n_captions))}


def run_retrieval(cfg: DictConfig, started_at: datetime, start: float) -> dict | None:
    """Evaluate cfg.model on the retrieval dataset cfg.dataset (already checked); write the run directory; return
    metrics.json's content (None on the ranks other than 0 of a data-parallel run)."""
    ranks = ranks_from_env()
    check_retrieval_settings(cfg)
    device = resolve_device(cfg.device, ranks.local_rank if ranks.distributed else None)
    num_workers = resolve_num_workers(cfg.num_workers, device)
    dataset = limit_items(build(loader_config(cfg.dataset)), cfg.limit, cfg.limit_mode, cfg.seed)
    resolved = OmegaConf.to_container(cfg, resolve=True)
    loaded, weights, cache = load_scorer(cfg, device)
    identity = retrieval_identity(cfg, dataset, loaded, weights)
    work = process_items(cfg, ranks, device, run_identity(resolved), dataset.items["item_id"].tolist(),
                         Path(cfg.output_dir),
                         lambda log, todo: embed_items(cfg, loaded, cache, dataset, log, todo, num_workers,
                                                       cfg.progress and ranks.is_main),
                         keeps_embeddings=True)
    if work is None:
        return None
    output_dir = work.output_dir
    records, cache_hits, encoded = work.outcomes("embedded")
    errors = write_skips(dataset, records, output_dir)
    positions = [index for index, record in sorted(records.items()) if "embedded" in record]
    if not positions:
        raise UserError(f"none of the {len(dataset)} clips could be evaluated; see {output_dir / 'errors.csv'}")
    clips = dataset.items.iloc[positions].reset_index(drop=True)
    captions = caption_table(clips)
    if captions.empty:
        raise UserError(f"none of the {len(clips)} evaluated clips has a caption; check dataset.caption_column")
    stored = read_embedding_parts(output_dir)
    audio = [stored[position] for position in positions]
    retrieval = retrieve(similarity_matrix(loaded, audio, captions["caption"].tolist(), cfg.batch_size),
                         captions["clip"].to_numpy())
    write_csv(ranks_table(retrieval, clips, captions), output_dir / "ranks.csv")
    atomic_write(output_dir / "recall_at_k.png",
                 recall_at_k_png(recall_curves(retrieval, len(clips), len(captions)),
                                 f"{dataset.name} | {cfg.model.name}: recall at k"))
    if cfg.save_embeddings:
        write_retrieval_embeddings(output_dir, loaded, audio, clips, captions, cfg.batch_size)
    n_captions = int(dataset.items["captions"].map(len).sum())
    skipped_captions = int(dataset.items.loc[dataset.items["item_id"].isin(set(errors["item_id"])), "captions"]
                           .map(len).sum())
    metrics = {
        "task": RETRIEVAL,
        **retrieval_metrics(retrieval, seed=cfg.seed),
        "directions": DIRECTIONS,
        "metrics_cover": "evaluated clips and their captions (a skipped clip's captions are left out of both "
                         "directions: see errors.csv)",
        "similarity": SIMILARITY,
        "family": loaded.family.name,
        "n_items": len(dataset),
        "n_evaluated": len(positions),
        "n_skipped": len(errors),
        "skipped_by_reason": errors["reason"].value_counts().to_dict(),
        "n_captions": n_captions,
        "n_captions_evaluated": len(captions),
        "n_captions_skipped": skipped_captions,
        "n_ignored_files": len(dataset.ignored_files),
        "status": skip_status(len(errors), len(dataset), cfg.max_skip_fraction),
        "dataset": dataset.name,
        "model": cfg.model.name,
        "model_name_or_path": cfg.model.name_or_path,
        "template": None,
        "engine": cfg.engine,
        "precision": cfg.precision,
        "identity": identity,
        "identity_hash": identity_hash(identity),
        "provenance": {
            **environment(device),
            "captions_fingerprint": short_hash(dataset.items["captions"].map(list).tolist(), 16),
            "files_fingerprint": files_fingerprint(dataset.items["path"].tolist()),
        },
        **run_facts(device, cfg.batch_size, num_workers, ranks, work, started_at, start, cache_hits, encoded),
        "leaderboard": leaderboard_of(output_dir, Path(cfg.results_dir)),
        "config": resolved,
    }
    atomic_write(output_dir / "config.yaml", OmegaConf.to_yaml(resolved))
    write_json(metrics, output_dir / "metrics.json")
    remove_embedding_parts(output_dir)
    update_leaderboard(metrics)
    check_skip_fraction(metrics, cfg.max_skip_fraction, output_dir)
    return metrics
