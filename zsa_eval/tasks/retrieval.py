"""Text-audio retrieval (task: retrieval): every clip's audio embedding is kept, every caption is embedded as
written (no template), and the family's audio-text logits rank every clip for every caption (text to audio) and
every caption for every clip (audio to text), as laion_clap's `evaluate_clotho_audiocaps` (after Mei et al.)
defines the metrics: R@1, R@5, R@10, mAP@10, median and mean rank, each with a bootstrap interval over queries.

Ranks are 1-based. Scores closer than TIE_TOLERANCE of the query's largest score (in magnitude, at least 1) are
ties: the float32 noise of an embedding computed in another batch (about 1e-7 of it, measured) must not reorder two
candidates. Tied candidates rank in candidate order (the clip or caption listed first ranks higher), so the same
clips and captions give the same ranks whatever batches they were embedded in. Comparing two runs pairs their
queries, each direction's metrics with paired bootstrap deltas."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from omegaconf import DictConfig

from zsa_eval.engine import caption_embeddings, family_logits
from zsa_eval.errors import UserError
from zsa_eval.models import LoadedModel
from zsa_eval.plots import recall_at_k_png
from zsa_eval.provenance import short_hash
from zsa_eval.store.embeddings import EMBEDDINGS_DIR
from zsa_eval.stats import bootstrap_indices, percentile_interval
from zsa_eval.tasks import (Evaluated, LoggedBatch, RunContext, Task, check_embedding_run, check_text_tower,
                            clip_features, embedding_batches, skipped_note, timing_note, worst_first)
from zsa_eval.results import MetricSpec, Mistake, Mistakes, TaskResults
from zsa_eval.text import counted
from zsa_eval.tasks.comparing import bootstrap_record, largest_first, legend, paired_deltas, run_table
from zsa_eval.results import Comparison

RECALL_AT = (1, 5, 10)
MAP_AT = 10
TOP_RETRIEVED = 5
DIRECTIONS = {"t2a": "text_to_audio", "a2t": "audio_to_text"}
DIRECTION_METRICS = ("recall_at_1", "recall_at_5", "recall_at_10", "map_at_10", "median_rank", "mean_rank")
INTERVAL_METRICS = tuple(f"{direction}_{name}" for direction in DIRECTIONS for name in DIRECTION_METRICS)


@dataclass(frozen=True)
class Queries:
    """One direction's queries: the 1-based ranks of each query's relevant candidates (ascending), and its top
    retrieved candidates (indices, best first)."""

    relevant_ranks: list[np.ndarray]
    top: np.ndarray

    @property
    def best_ranks(self) -> np.ndarray:
        return np.array([ranks[0] for ranks in self.relevant_ranks], dtype=np.int64)

    @property
    def average_precision(self) -> np.ndarray:
        """AP@10 per query: sum over its relevant candidates ranked within 10 of (how many of them rank at or
        above it) / (its rank), divided by its number of relevant candidates."""
        return np.array([(np.arange(1, len(ranks) + 1) / ranks)[ranks <= MAP_AT].sum() / len(ranks)
                         for ranks in self.relevant_ranks])


TIE_TOLERANCE = 1e-5  # scores within this share of the query's largest |score| (at least 1) are tied


def tie_groups(similarity: np.ndarray) -> np.ndarray:
    """Per query (row), a tie group number for every candidate: 0 for the best-scored group, counting down the
    scores; consecutive scores (highest first) closer than the row's tolerance share a group."""
    order = np.argsort(-similarity, axis=1, kind="stable")
    ranked = np.take_along_axis(similarity, order, axis=1)
    tolerance = TIE_TOLERANCE * np.maximum(1.0, np.abs(similarity).max(axis=1, keepdims=True))
    starts = np.concatenate([np.zeros((len(ranked), 1), bool), ranked[:, :-1] - ranked[:, 1:] > tolerance], axis=1)
    groups = np.empty_like(order)
    np.put_along_axis(groups, order, np.cumsum(starts, axis=1), axis=1)
    return groups


def rank_queries(similarity: np.ndarray, relevant: Sequence[Sequence[int]]) -> Queries:
    """Rank every candidate (column of `similarity`) for every query (row); `relevant[q]` lists query q's relevant
    candidates (at least one). Tied scores (tie_groups): the candidate with the lower index ranks higher."""
    order = np.argsort(tie_groups(similarity), axis=1, kind="stable")
    ranks = np.empty_like(order)
    np.put_along_axis(ranks, order, np.arange(1, similarity.shape[1] + 1)[None, :], axis=1)
    relevant_ranks = [np.sort(ranks[query, list(targets)]) for query, targets in enumerate(relevant)]
    return Queries(relevant_ranks, order[:, :TOP_RETRIEVED])


def direction_values(best_ranks: np.ndarray, average_precision: np.ndarray) -> dict[str, np.ndarray]:
    """Each metric's per-query values (the metric is their mean), except the ranks, summarized by median and mean."""
    return {**{f"recall_at_{k}": (best_ranks <= k).astype(float) for k in RECALL_AT},
            f"map_at_{MAP_AT}": average_precision}


def median_rank(ranks: np.ndarray, axis: int | None = None) -> np.ndarray:
    """laion_clap's median rank: floor of the median of the 1-based best ranks."""
    return np.floor(np.median(ranks, axis=axis))


def direction_point_and_samples(best_ranks: np.ndarray, average_precision: np.ndarray,
                                indices: np.ndarray) -> tuple[dict, dict]:
    """One direction's metrics on its queries, and on each resample of them (rows of `indices`)."""
    values = direction_values(best_ranks, average_precision)
    point = {name: float(per_query.mean()) for name, per_query in values.items()}
    samples = {name: per_query[indices].mean(axis=1) for name, per_query in values.items()}
    point |= {"median_rank": float(median_rank(best_ranks)), "mean_rank": float(best_ranks.mean())}
    samples |= {"median_rank": median_rank(best_ranks[indices], axis=1), "mean_rank": best_ranks[indices].mean(axis=1)}
    return point, samples


def direction_metrics(queries: Queries, prefix: str, resamples: int, seed: int) -> dict:
    """R@1, R@5, R@10, mAP@10, median and mean rank of one direction, each with a 95% percentile bootstrap
    interval over its queries (`<name>_ci95`)."""
    best = queries.best_ranks
    indices = bootstrap_indices(len(best), resamples, seed)
    point, samples = direction_point_and_samples(best, queries.average_precision, indices)
    metrics = {f"{prefix}_{name}": point[name] for name in DIRECTION_METRICS}
    metrics |= {f"{prefix}_{name}_ci95": percentile_interval(samples[name]) for name in DIRECTION_METRICS}
    return metrics | {f"{prefix}_n_queries": len(best)}


@dataclass(frozen=True)
class Retrieval:
    """Both directions of one run: text-to-audio over every caption, audio-to-text over every clip that has one."""

    t2a: Queries
    a2t: Queries
    a2t_clips: np.ndarray  # the clips (rows of the similarity) that are audio-to-text queries


def retrieve(similarity: np.ndarray, caption_clips: np.ndarray) -> Retrieval:
    """`similarity`: (clips, captions), the family's audio-text logits; `caption_clips[j]`: the clip of caption j."""
    captions_of = [np.flatnonzero(caption_clips == clip) for clip in range(similarity.shape[0])]
    a2t_clips = np.array([clip for clip, captions in enumerate(captions_of) if len(captions)], dtype=np.int64)
    return Retrieval(
        t2a=rank_queries(similarity.T, [[clip] for clip in caption_clips]),
        a2t=rank_queries(similarity[a2t_clips], [captions_of[clip] for clip in a2t_clips]),
        a2t_clips=a2t_clips,
    )


def retrieval_metrics(retrieval: Retrieval, resamples: int = 1000, seed: int = 0) -> dict:
    """metrics.json's retrieval figures: `t2a_*` and `a2t_*` with intervals, and how they were bootstrapped."""
    return {**direction_metrics(retrieval.t2a, "t2a", resamples, seed),
            **direction_metrics(retrieval.a2t, "a2t", resamples, seed),
            "bootstrap": bootstrap_record(resamples, seed) | {"over": "queries"}}


def recall_curve(best_ranks: np.ndarray, max_k: int) -> np.ndarray:
    """Recall at k = 1..max_k: the share of queries whose best relevant candidate ranks within k."""
    return np.array([(best_ranks <= k).mean() for k in range(1, max_k + 1)])


def ranks_table(retrieval: Retrieval, clips: pd.DataFrame, captions: pd.DataFrame) -> pd.DataFrame:
    """ranks.csv: one row per query of each direction: its id and text, its rank (the best rank of a relevant
    item), every relevant item's rank, its AP@10, and the top retrieved (clip ids for t2a, caption texts for a2t).

    `clips`: item_id per evaluated clip (rows of the similarity); `captions`: caption_id, caption per caption."""
    clip_ids = clips["item_id"].to_numpy(dtype=object)
    texts = captions["caption"].to_numpy(dtype=object)
    parts = []
    for direction, queries, ids, query_texts, retrieved in (
        ("t2a", retrieval.t2a, captions["caption_id"].to_numpy(dtype=object), texts, clip_ids),
        ("a2t", retrieval.a2t, clip_ids[retrieval.a2t_clips], clip_ids[retrieval.a2t_clips], texts),
    ):
        table = pd.DataFrame({
            "direction": DIRECTIONS[direction],
            "query_id": ids,
            "query": query_texts,
            "rank": queries.best_ranks,
            "relevant_ranks": [";".join(map(str, ranks.tolist())) for ranks in queries.relevant_ranks],
            f"ap_at_{MAP_AT}": queries.average_precision,
        })
        for column in range(queries.top.shape[1]):
            table[f"top{column + 1}"] = retrieved[queries.top[:, column]]
        parts.append(table)
    return pd.concat(parts, ignore_index=True)


def retrieval_summary(metrics: dict, wall_s: float) -> str:
    """A retrieval run in one line; `wall_s` counts from the process start."""
    def direction(prefix: str) -> str:
        low, high = metrics[f"{prefix}_recall_at_1_ci95"]
        return (f"{prefix.upper()} R@1 {metrics[f'{prefix}_recall_at_1']:.4f} [{low:.4f}, {high:.4f}] "
                f"R@5 {metrics[f'{prefix}_recall_at_5']:.4f} R@10 {metrics[f'{prefix}_recall_at_10']:.4f} "
                f"mAP@10 {metrics[f'{prefix}_map_at_10']:.4f}")

    return (f"{metrics['dataset']} | {metrics['model']} | retrieval: {direction('t2a')}; {direction('a2t')} "
            f"on {metrics['n_evaluated']} of {counted(metrics['n_items'], 'clip')} "
            f"({counted(metrics['n_captions_evaluated'], 'caption')}){skipped_note(metrics)}"
            f"{timing_note(metrics, wall_s)}")


RECALL_PLOT_MAX_K = 50
SIMILARITY = "the family's audio-text logits (CLAP: cosine similarity times the logit scale; PE-Audio: scaled dot " \
             "product plus bias), ranked highest first"
METRIC_LABELS = {"recall_at_1": "R@1", "recall_at_5": "R@5", "recall_at_10": "R@10", "map_at_10": "mAP@10",
                 "median_rank": "median rank", "mean_rank": "mean rank"}


def caption_table(clips: pd.DataFrame) -> pd.DataFrame:
    """One row per caption of the evaluated clips: caption_id (`<item_id>#<n>`, n counting the clip's captions from
    0), item_id, clip (its row among the evaluated clips), caption."""
    rows = [(f"{item_id}#{number}", item_id, clip, caption)
            for clip, (item_id, captions) in enumerate(zip(clips["item_id"], clips["captions"]))
            for number, caption in enumerate(captions)]
    return pd.DataFrame(rows, columns=["caption_id", "item_id", "clip", "caption"])


@torch.inference_mode()
def similarity_matrix(loaded: LoadedModel, audio: list[np.ndarray], text: torch.Tensor) -> np.ndarray:
    """(clips, captions) logits of the family, from the stored audio embeddings and the captions' embeddings."""
    audio_tensors = [torch.from_numpy(embedding).to(loaded.device) for embedding in audio]
    return family_logits(loaded.family, audio_tensors, text).float().cpu().numpy()


def recall_curves(retrieval: Retrieval, n_clips: int, n_captions: int) -> dict[str, np.ndarray]:
    """Recall at k = 1..min(50, candidates) of each direction, for the plot."""
    return {"text to audio": recall_curve(retrieval.t2a.best_ranks, min(RECALL_PLOT_MAX_K, n_clips)),
            "audio to text": recall_curve(retrieval.a2t.best_ranks, min(RECALL_PLOT_MAX_K, n_captions))}


class RetrievalTask(Task):
    name = "retrieval"
    finished_key = "embedded"
    main_score = "t2a_recall_at_1"
    metrics = tuple(MetricSpec(f"{direction}_{name}", f"{direction.upper()} {METRIC_LABELS[name]}",
                               higher_is_better=name not in ("median_rank", "mean_rank"),
                               shown=name not in ("median_rank", "mean_rank"), whole=name == "median_rank")
                    for direction in DIRECTIONS for name in DIRECTION_METRICS)

    def check(self, cfg: DictConfig) -> None:
        check_embedding_run(cfg, "a retrieval dataset", "ranks captions", "retrieval needs an embedding model "
                            "(model=clap, model=pe_av_small, ...)")

    def check_model(self, cfg: DictConfig, loaded: LoadedModel) -> None:
        """Retrieval compares audio and caption embeddings: a scoring family has none (ranking every caption for
        every clip by its likelihood would cost clips x captions passes of a language model), an audio encoder no
        caption embeddings."""
        check_text_tower(loaded, f"dataset={cfg.dataset.name} (a retrieval dataset)")
        if loaded.family.kind == "scoring":
            raise UserError(f"dataset={cfg.dataset.name} is a retrieval dataset: it needs audio and caption "
                            f"embeddings, which {loaded.family.name} models do not have (scoring every caption for "
                            "every clip would cost clips x captions model passes); use an embedding model "
                            "(model=clap, model=pe_av_small, ...)")

    def prompts(self, cfg: DictConfig) -> None:
        """Captions are used as written: no prompt."""
        return None

    def identity(self, base: dict, cfg: DictConfig) -> dict:
        """As for the label tasks, less the template (captions are used as written), plus the task and the caption
        column."""
        return {"task": self.name, **base, "selection": base["selection"] | {"caption_column": cfg.dataset.caption_column}}

    def keeps_embeddings(self, cfg: DictConfig) -> bool:
        return True

    def batches(self, context: RunContext, positions: list[int]) -> Iterator[LoggedBatch]:
        """Each clip's audio embedding, as the family returns it (frames for frame-level models), kept."""
        return embedding_batches(context, positions, self.finished_key)

    def results(self, context: RunContext, evaluated: Evaluated) -> TaskResults:
        """Every caption of the evaluated clips against every evaluated clip, both ways: metrics with intervals,
        ranks.csv, the recall curves, and with save_embeddings the embeddings."""
        cfg, dataset, loaded = context.cfg, context.dataset, context.loaded
        clips = evaluated.items
        captions = caption_table(clips)
        if captions.empty:
            raise UserError(f"none of the {len(clips)} evaluated clips has a caption; check dataset.caption_column")
        with torch.inference_mode():
            text = caption_embeddings(loaded, captions["caption"].tolist(), cfg.batch_size)
        retrieval = retrieve(similarity_matrix(loaded, evaluated.audio, text), captions["clip"].to_numpy())
        n_captions = int(dataset.items["captions"].map(len).sum())
        metrics = {
            **retrieval_metrics(retrieval, seed=cfg.seed),
            "directions": DIRECTIONS,
            "metrics_cover": "evaluated clips and their captions (a skipped clip's captions are left out of both "
                             "directions: see errors.csv)",
            "similarity": SIMILARITY,
            "n_captions": n_captions,
            "n_captions_evaluated": len(captions),
            "n_captions_skipped": n_captions - len(captions),
            "template": None,
        }
        figure = recall_at_k_png(recall_curves(retrieval, len(clips), len(captions)),
                                 f"{dataset.name} | {cfg.model.name}: recall at k")
        tables, arrays = {"ranks": ranks_table(retrieval, clips, captions)}, {}
        if cfg.save_embeddings:
            arrays = {f"{EMBEDDINGS_DIR}/audio.npy": clip_features(loaded.family, evaluated.audio).astype(np.float32),
                      f"{EMBEDDINGS_DIR}/text.npy": text.float().cpu().numpy()}
            tables |= {f"{EMBEDDINGS_DIR}/audio_items": clips[["item_id"]],
                       f"{EMBEDDINGS_DIR}/text_captions": captions[["caption_id", "item_id", "caption"]]}
        provenance = {"captions_fingerprint": short_hash(dataset.items["captions"].map(list).tolist(), 16)}
        return TaskResults(metrics, tables, {"recall_at_k.png": figure}, arrays, provenance=provenance)

    def mistakes(self, context: RunContext, evaluated: Evaluated, results: TaskResults) -> Mistakes:
        """The captions whose clip ranked worst among the clips (text to audio), each with the clip they retrieved
        first."""
        cfg = context.cfg
        ranks = results.tables["ranks"]
        captions = ranks[ranks["direction"] == DIRECTIONS["t2a"]].reset_index(drop=True) \
            .assign(clip=caption_table(evaluated.items)["clip"])
        chosen = worst_first(captions[captions["rank"] > 1], "rank", "clip", cfg.report_mistakes_per_class,
                             cfg.report_mistakes)
        clip_ids = evaluated.items["item_id"].tolist()
        row_of = {item_id: row for row, item_id in enumerate(clip_ids)}
        items = [Mistake(query.query_id, (("its clip", evaluated.positions[query.clip]),
                                          ("retrieved first", evaluated.positions[row_of[query.top1]])),
                         {"caption": query.query, "its clip": clip_ids[query.clip], "its clip's rank": int(query.rank),
                          "retrieved first": query.top1})
                 for query in chosen.itertuples(index=False)]
        return Mistakes(f"The {len(items)} captions whose clip ranked worst among the {len(clip_ids)} clips (text "
                        f"to audio; at most {cfg.report_mistakes_per_class} captions of one clip, "
                        f"{cfg.report_mistakes} in all), worst first, each with the clip it retrieved first.", items)

    def summary_line(self, metrics: dict, wall_s: float) -> str:
        return retrieval_summary(metrics, wall_s)

    def compare(self, run_a: Path, metrics_a: dict, run_b: Path, metrics_b: dict, resamples: int,
                seed: int) -> RetrievalComparison:
        return compare_retrieval(run_a, metrics_a, run_b, metrics_b, resamples, seed)


TASK = RetrievalTask()
COMPARED_RANKS = 20  # compare.md lists the queries whose rank changed most


@dataclass(frozen=True)
class RetrievalComparison(Comparison):
    rank_changes: pd.DataFrame = None  # direction, query_id, query, rank_a, rank_b, change (largest first)
    curves: dict = None                # "A text to audio" -> recall at k, ..., for the figure

    def shown_tables(self) -> list[tuple[str, pd.DataFrame]]:
        changed = self.rank_changes[self.rank_changes["change"] != 0]
        return [(f"Queries whose rank changed: {len(changed)} (the {min(len(changed), COMPARED_RANKS)} largest "
                 "changes; all in rank_changes.csv)", changed.head(COMPARED_RANKS))]

    def tables(self) -> dict[str, pd.DataFrame]:
        return {"rank_changes": self.rank_changes}

    def figures(self) -> dict[str, bytes]:
        return {"compare_recall_at_k.png": recall_at_k_png(self.curves, "recall at k of both runs")}


def run_ranks(run_dir: Path) -> pd.DataFrame:
    """A finished retrieval run's ranks.csv (direction, query_id, query, rank, ap_at_10, ...)."""
    return run_table(run_dir, "ranks.csv", "retrieval", ("query_id", "query", "direction"))


def compare_retrieval(run_a: Path, metrics_a: dict, run_b: Path, metrics_b: dict, resamples: int,
                      seed: int) -> RetrievalComparison:
    """Run B against run A on the queries both ran, each direction's metrics with paired bootstrap deltas over its
    common queries (refused when the runs ranked other candidates: ranks among other clips or captions do not
    compare)."""
    for key in ("n_evaluated", "n_captions_evaluated"):
        if metrics_a.get(key) != metrics_b.get(key):
            raise UserError(f"the runs ranked other candidates ({key} {metrics_a.get(key)} in {run_a}, "
                            f"{metrics_b.get(key)} in {run_b}); compare retrieval runs over the same clips")
    ranks_a, ranks_b = run_ranks(run_a), run_ranks(run_b)
    both = ranks_a.merge(ranks_b, on=["direction", "query_id"], suffixes=("_a", "_b"))
    if both.empty:
        raise UserError(f"the runs share no query ({len(ranks_a)} in {run_a}, {len(ranks_b)} in {run_b}); compare "
                        "runs of the same dataset")
    point, samples, curves = {"a": {}, "b": {}}, {"a": {}, "b": {}}, {}
    for prefix, direction in DIRECTIONS.items():
        queries = both[both["direction"] == direction]
        indices = bootstrap_indices(len(queries), resamples, seed)
        for run in "ab":
            best = queries[f"rank_{run}"].to_numpy(dtype=np.int64)
            run_point, run_samples = direction_point_and_samples(best, queries[f"ap_at_10_{run}"].to_numpy(float),
                                                                 indices)
            point[run] |= {f"{prefix}_{name}": value for name, value in run_point.items()}
            samples[run] |= {f"{prefix}_{name}": value for name, value in run_samples.items()}
            candidates = metrics_a["n_evaluated" if prefix == "t2a" else "n_captions_evaluated"]
            curves[f"{run.upper()} {direction.replace('_', ' ')}"] = recall_curve(best, min(RECALL_PLOT_MAX_K,
                                                                                         candidates))
    changes = pd.DataFrame({"direction": both["direction"], "query_id": both["query_id"], "query": both["query_a"],
                            "rank_a": both["rank_a"], "rank_b": both["rank_b"],
                            "change": both["rank_b"] - both["rank_a"]})
    changes = largest_first(changes, "change")
    captions, clips = (int((both["direction"] == direction).sum()) for direction in DIRECTIONS.values())
    return RetrievalComparison(
        str(run_a), str(run_b), legend("A", run_a, metrics_a), legend("B", run_b, metrics_b), len(ranks_a),
        len(ranks_b), len(both), f"queries ({captions} captions, {clips} clips)",
        paired_deltas(point, samples, list(INTERVAL_METRICS)), bootstrap_record(resamples, seed),
        rank_changes=changes, curves=curves)
