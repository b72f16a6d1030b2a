"""Text-audio retrieval metrics and tables, from a (clips x captions) similarity matrix and which clip each caption
describes: text-to-audio (each caption finds its clip among all clips) and audio-to-text (each clip finds its
captions among all captions), as laion_clap's `evaluate_clotho_audiocaps` (after Mei et al.) defines them.

Ranks are 1-based. Scores closer than TIE_TOLERANCE of the query's largest score (in magnitude, at least 1) are
ties: the float32 noise of an embedding computed in another batch (about 1e-7 of it, measured) must not reorder two
candidates. Tied candidates rank in candidate order (the clip or caption listed first ranks higher), so the same
clips and captions give the same ranks whatever batches they were embedded in."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from zsa_eval.metrics import BOOTSTRAP_LEVEL, bootstrap_indices, percentile_interval

RECALL_AT = (1, 5, 10)
MAP_AT = 10
TOP_RETRIEVED = 5
DIRECTIONS = {"t2a": "text_to_audio", "a2t": "audio_to_text"}
DIRECTION_METRICS = ("recall_at_1", "recall_at_5", "recall_at_10", "map_at_10", "median_rank", "mean_rank")
INTERVAL_METRICS = tuple(f"{direction}_{name}" for direction in DIRECTIONS for name in DIRECTION_METRICS)
MAIN_SCORE = "t2a_recall_at_1"  # what the leaderboard orders retrieval rows by


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


def direction_metrics(queries: Queries, prefix: str, resamples: int, seed: int) -> dict:
    """R@1, R@5, R@10, mAP@10, median and mean rank of one direction, each with a 95% percentile bootstrap
    interval over its queries (`<name>_ci95`)."""
    best, values = queries.best_ranks, direction_values(queries.best_ranks, queries.average_precision)
    indices = bootstrap_indices(len(best), resamples, seed)
    point = {name: float(per_query.mean()) for name, per_query in values.items()}
    samples = {name: per_query[indices].mean(axis=1) for name, per_query in values.items()}
    point |= {"median_rank": float(median_rank(best)), "mean_rank": float(best.mean())}
    samples |= {"median_rank": median_rank(best[indices], axis=1), "mean_rank": best[indices].mean(axis=1)}
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
            "bootstrap": {"resamples": resamples, "seed": seed, "level": BOOTSTRAP_LEVEL, "over": "queries"}}


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


def format_retrieval_summary(metrics: dict, wall_s: float) -> str:
    """A retrieval run in one line; `wall_s` counts from the process start."""
    def direction(prefix: str) -> str:
        low, high = metrics[f"{prefix}_recall_at_1_ci95"]
        return (f"{prefix.upper()} R@1 {metrics[f'{prefix}_recall_at_1']:.4f} [{low:.4f}, {high:.4f}] "
                f"R@5 {metrics[f'{prefix}_recall_at_5']:.4f} R@10 {metrics[f'{prefix}_recall_at_10']:.4f} "
                f"mAP@10 {metrics[f'{prefix}_map_at_10']:.4f}")

    skipped = f", {metrics['n_skipped']} skipped (see errors.csv)" if metrics["n_skipped"] else ""
    return (f"{metrics['dataset']} | {metrics['model']} | retrieval: {direction('t2a')}; {direction('a2t')} "
            f"on {metrics['n_evaluated']} of {metrics['n_items']} clips ({metrics['n_captions_evaluated']} captions)"
            f"{skipped} in {wall_s:.1f} s ({metrics['scoring_s']:.1f} s scoring, {metrics['cache_hits']} from the "
            f"cache) -> {metrics['output_dir']}")
