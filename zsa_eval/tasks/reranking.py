"""Audio reranking (task: reranking): each query clip ranks its candidate documents (other clips) by the cosine
similarity of their pooled audio embeddings, and its positives should come first. Item rows carry `role` (query or
document); a query's `positives` and `candidates` are document item ids joined by "|" (empty candidates: every
document, of the query's `hf_subset` where the items name subsets, but the query's own file where it is a document
too).

Per query, with R its positives and r_1 < r_2 < ... their 1-based ranks among its candidates, at each k of K_VALUES
(mteb's names and trec_eval's definitions, which mteb's retrieval evaluator uses): map_at_k = sum over r_j <= k of
j / r_j, over R; ndcg_at_k (binary gains, log2 discounts, over the ideal ranking's); recall_at_k; precision_at_k
(hits in the first k, over k); hit_rate_at_k (a positive in the first k); mrr_at_k (1 / r_1 when r_1 <= k). Each is
the mean over queries, with a 95% percentile bootstrap interval over queries; `map_at_1000` (MAP) is the main score,
as in mteb's GTZANAudioReranking.

Ranks: candidates whose scores are within the retrieval task's tie tolerance are tied (float noise between batches
must not reorder them) and rank in candidate order; trec_eval breaks exact ties by document id instead, so the two
agree wherever no two candidates of a query tie. A skipped document leaves its queries' candidates and positives; a
query with no evaluated positive is left out (n_queries_without_positive)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from zsa_eval.data import AudioDataset
from zsa_eval.data.items import DOCUMENT, ID_SEPARATOR, QUERY
from zsa_eval.errors import UserError
from zsa_eval.results import Comparison, MetricSpec, Mistake, Mistakes, TaskResults
from zsa_eval.stats import bootstrap_indices, percentile_interval
from zsa_eval.tasks import Evaluated, RunContext, clip_features, skipped_note, timing_note, worst_first
from zsa_eval.tasks.comparing import (bootstrap_record, largest_first, legend, paired_deltas, paired_items,
                                      paired_means, run_table)
from zsa_eval.tasks.embedded import RESAMPLES, AudioEmbeddingTask, require_columns, saved_embeddings
from zsa_eval.tasks.retrieval import rank_queries
from zsa_eval.text import counted

K_VALUES = (1, 3, 5, 10, 20, 100, 1000)  # mteb's retrieval cut-offs
KINDS = ("map", "ndcg", "recall", "precision", "hit_rate", "mrr")
METRIC_NAMES = tuple(f"{kind}_at_{k}" for kind in KINDS for k in K_VALUES)
SIMILARITY = "cosine similarity of the query's and each candidate's pooled audio embeddings, highest first"


def ids_of(cell) -> list[str]:
    """The item ids of a positives or candidates cell."""
    return [item_id for item_id in str(cell).split(ID_SEPARATOR) if item_id]


def subset_of(items: pd.DataFrame) -> np.ndarray:
    """Each item's subset (dataset=mteb's `hf_subset`: a query with no candidates ranks its own subset's
    documents); one for all where the items name none."""
    return items["hf_subset"].to_numpy(dtype=object) if "hf_subset" in items else np.zeros(len(items), dtype=object)


def query_values(ranks: np.ndarray, n_positives: int) -> dict[str, float]:
    """Every metric of one query whose `n_positives` positives rank at `ranks` (ascending, 1-based)."""
    values = {}
    found = np.arange(1, len(ranks) + 1)
    ideal = np.cumsum(1 / np.log2(np.arange(2, max(K_VALUES) + 2)))
    for k in K_VALUES:
        within = ranks <= k
        values |= {f"map_at_{k}": float((found / ranks)[within].sum() / n_positives),
                   f"ndcg_at_{k}": float((1 / np.log2(ranks[within] + 1)).sum() / ideal[min(n_positives, k) - 1]),
                   f"recall_at_{k}": float(within.sum() / n_positives), f"precision_at_{k}": float(within.sum() / k),
                   f"hit_rate_at_{k}": float(within.any()),
                   f"mrr_at_{k}": float(1 / ranks[0]) if within.any() else 0.0}
    return values


def ranked_queries(items: pd.DataFrame, features: np.ndarray) -> pd.DataFrame:
    """Each evaluated query with an evaluated positive: query_id, query_row, n_candidates, n_positives, the ranks of
    its positives, its top retrieved document ids (best first) and every metric's value."""
    roles = items["role"].to_numpy()
    ids = items["item_id"].to_numpy(dtype=object)
    paths = items["path"].to_numpy(dtype=object) if "path" in items else ids
    subsets = subset_of(items)
    document_row = {item_id: row for row, item_id in enumerate(ids) if roles[row] == DOCUMENT}
    norms = np.linalg.norm(features, axis=1)
    unit = features / np.where(norms > 0, norms, 1.0)[:, None]
    rows = []
    for row in np.flatnonzero(roles == QUERY):
        listed = ids_of(items.at[row, "candidates"]) or [  # every document of its subset, but its own file
            item_id for item_id, document in document_row.items()
            if subsets[document] == subsets[row] and not (paths[row] and paths[document] == paths[row])]
        candidates = [document_row[item_id] for item_id in listed if item_id in document_row]
        positives = {document_row[item_id] for item_id in ids_of(items.at[row, "positives"]) if item_id in document_row}
        if not positives:
            continue
        similarity = unit[candidates] @ unit[row]
        ranked = rank_queries(similarity[None, :], [[index for index, candidate in enumerate(candidates)
                                                      if candidate in positives]])
        ranks = ranked.relevant_ranks[0]
        rows.append({"query_id": ids[row], "query_row": row, "n_candidates": len(candidates),
                     "n_positives": len(positives), "positive_ranks": ";".join(map(str, ranks.tolist())),
                     **{f"top{place + 1}": ids[candidates[index]] for place, index in enumerate(ranked.top[0])},
                     **query_values(ranks, len(positives))})
    return pd.DataFrame(rows)


def reranking_metrics(per_query: pd.DataFrame, resamples: int, seed: int) -> dict:
    """Every metric's mean over the queries, with a 95% percentile bootstrap interval over queries."""
    values = per_query[list(METRIC_NAMES)].to_numpy(dtype=np.float64)
    samples = values[bootstrap_indices(len(values), resamples, seed)].mean(axis=1)
    metrics = {name: float(value) for name, value in zip(METRIC_NAMES, values.mean(axis=0))}
    metrics |= {f"{name}_ci95": percentile_interval(samples[:, column]) for column, name in enumerate(METRIC_NAMES)}
    return metrics | {"bootstrap": bootstrap_record(resamples, seed) | {"over": "queries"}}


def check_queries(items: pd.DataFrame, name: str) -> None:
    """Roles are query or document; item ids are unique; every query has positives, and its positives and
    candidates are documents of the dataset (its positives among its candidates, where it lists candidates)."""
    require_columns(items, ("role", "positives", "candidates"), name, "reranking",
                    "role (query or document); a query's positives and candidates, document ids joined by |")
    roles = set(items["role"])
    if not roles <= {QUERY, DOCUMENT} or QUERY not in roles or DOCUMENT not in roles:
        raise UserError(f"dataset {name} has roles {', '.join(sorted(map(str, roles)))}: a reranking dataset has "
                        f"{QUERY} and {DOCUMENT} items, some of each")
    duplicated = items["item_id"][items["item_id"].duplicated()]
    if len(duplicated):
        raise UserError(f"dataset {name}: item id {duplicated.iloc[0]!r} is used twice; give each item its own id")
    documents = set(items.loc[items["role"] == DOCUMENT, "item_id"])
    for query in items[items["role"] == QUERY].itertuples(index=False):
        positives, candidates = ids_of(query.positives), ids_of(query.candidates)
        if not positives:
            raise UserError(f"query {query.item_id!r} of dataset {name} has no positives: name the documents it should "
                            "rank first (their ids joined by |)")
        for column, named in (("positives", positives), ("candidates", candidates)):
            unknown = [item_id for item_id in named if item_id not in documents]
            if unknown:
                raise UserError(f"query {query.item_id!r} of dataset {name} names {unknown[0]!r} in its {column}, "
                                "which is no document of the dataset")
        outside = [item_id for item_id in positives if candidates and item_id not in candidates]
        if outside:
            raise UserError(f"query {query.item_id!r} of dataset {name}: its positive {outside[0]!r} is not among its "
                            "candidates; add it to them (or leave the candidates empty to rank every document)")


class RerankingTask(AudioEmbeddingTask):
    name = "reranking"
    kind = "a reranking dataset"
    main_score = "map_at_1000"
    metrics = (MetricSpec("map_at_1000", "MAP"), MetricSpec("mrr_at_10", "MRR@10"),
               MetricSpec("ndcg_at_10", "nDCG@10"), MetricSpec("recall_at_1", "R@1", shown=False))

    def check_dataset(self, dataset: AudioDataset) -> list[str]:
        check_queries(dataset.items, dataset.name)
        return []

    def results(self, context: RunContext, evaluated: Evaluated) -> TaskResults:
        """Every evaluated query's candidates ranked; the metrics with intervals, rankings.csv (a row per query: its
        ranks, its values of the leaderboard's metrics, its top retrieved documents)."""
        cfg, items = context.cfg, evaluated.items
        features = clip_features(context.loaded.family, evaluated.audio)
        per_query = ranked_queries(items, features)
        n_queries = int((context.dataset.items["role"] == QUERY).sum())
        evaluated_queries = int((items["role"] == QUERY).sum())
        if per_query.empty:
            raise UserError(f"no evaluated query has an evaluated positive ({evaluated_queries} of {n_queries} "
                            "queries evaluated); see errors.csv")
        tables, arrays = saved_embeddings(cfg, evaluated, features)
        metrics = reranking_metrics(per_query, RESAMPLES, cfg.seed) | {
            "n_queries": n_queries, "n_queries_evaluated": len(per_query),
            "n_queries_without_positive": evaluated_queries - len(per_query),
            "n_documents_evaluated": int((items["role"] == DOCUMENT).sum()),
            "k_values": list(K_VALUES), "similarity": SIMILARITY, "template": None,
            "metrics_cover": "the evaluated queries with an evaluated positive, ranking their evaluated candidates "
                             "(skipped clips are listed in errors.csv)"}
        shown = ["query_id", "n_candidates", "n_positives", "positive_ranks", *(spec.name for spec in self.metrics),
                 *[column for column in per_query if column.startswith("top")]]
        return TaskResults(metrics, {"rankings": per_query[shown]} | tables, arrays=arrays)

    def mistakes(self, context: RunContext, evaluated: Evaluated, results: TaskResults) -> Mistakes:
        """The queries of lowest average precision, each with the document it ranked first."""
        cfg, rankings = context.cfg, results.tables["rankings"]
        row_of = {item_id: row for row, item_id in enumerate(evaluated.items["item_id"])}
        poor = rankings[rankings["map_at_1000"] < 1].assign(loss=lambda table: 1 - table["map_at_1000"], group="")
        chosen = worst_first(poor, "loss", "group", cfg.report_mistakes, cfg.report_mistakes)
        items = [Mistake(query.query_id, (("query", evaluated.positions[row_of[query.query_id]]),
                                          ("ranked first", evaluated.positions[row_of[query.top1]])),
                         {"average precision": float(query.map_at_1000), "its positives' ranks": query.positive_ranks,
                          "ranked first": query.top1, "candidates": int(query.n_candidates)})
                 for query in chosen.itertuples(index=False)]
        return Mistakes(f"The {len(items)} queries of lowest average precision (of the {len(poor)} below 1; at most "
                        f"{cfg.report_mistakes}), worst first, each with the document it ranked first.", items)

    def compare(self, run_a: Path, metrics_a: dict, run_b: Path, metrics_b: dict, resamples: int,
                seed: int) -> RerankingComparison:
        return compare_reranking(run_a, metrics_a, run_b, metrics_b, resamples, seed)

    def summary_line(self, metrics: dict, wall_s: float) -> str:
        low, high = metrics["map_at_1000_ci95"]
        return (f"{metrics['dataset']} | {metrics['model']} | reranking: MAP {metrics['map_at_1000']:.4f} "
                f"[{low:.4f}, {high:.4f}] (MRR@10 {metrics['mrr_at_10']:.4f}, nDCG@10 {metrics['ndcg_at_10']:.4f}) "
                f"over {metrics['n_queries_evaluated']} of {metrics['n_queries']} queries "
                f"({counted(metrics['n_documents_evaluated'], 'document')}){skipped_note(metrics)}"
                f"{timing_note(metrics, wall_s)}")


TASK = RerankingTask()
COMPARED_METRICS = ["map_at_1000", "mrr_at_10", "ndcg_at_10", "recall_at_1"]  # rankings.csv's per-query columns
COMPARED_QUERIES = 20  # compare.md lists the queries whose average precision changed most


@dataclass(frozen=True)
class RerankingComparison(Comparison):
    query_changes: pd.DataFrame = None  # query_id, n_candidates, map_at_1000_a, map_at_1000_b, change (largest first)

    def shown_tables(self) -> list[tuple[str, pd.DataFrame]]:
        changed = self.query_changes[self.query_changes["change"] != 0]
        return [(f"Queries whose average precision changed: {len(changed)} (the {min(len(changed), COMPARED_QUERIES)} "
                 "largest changes; all in query_changes.csv)", changed.head(COMPARED_QUERIES))]

    def tables(self) -> dict[str, pd.DataFrame]:
        return {"query_changes": self.query_changes}


def compare_reranking(run_a: Path, metrics_a: dict, run_b: Path, metrics_b: dict, resamples: int,
                      seed: int) -> RerankingComparison:
    """Run B against run A on the queries both ranked, the per-query metrics' means with paired bootstrap deltas
    over those queries (refused where a common query ranked another number of candidates: its ranks do not
    compare)."""
    rankings_a, rankings_b = (run_table(run, "rankings.csv", "reranking", ("query_id", "positive_ranks"),
                                        ("n_candidates", *COMPARED_METRICS)) for run in (run_a, run_b))
    both = paired_items(rankings_a, rankings_b, run_a, run_b, "queries", "another number of candidates (a document "
                        "skipped in one)", key="query_id", label="n_candidates",
                        fix="compare reranking runs over the same documents")
    values = {run: both[[f"{name}_{run}" for name in COMPARED_METRICS]].to_numpy(dtype=np.float64) for run in "ab"}
    point, samples = paired_means(values, COMPARED_METRICS, resamples, seed)
    changes = pd.DataFrame({"query_id": both["query_id"], "n_candidates": both["n_candidates_a"],
                            "map_at_1000_a": both["map_at_1000_a"], "map_at_1000_b": both["map_at_1000_b"],
                            "change": both["map_at_1000_b"] - both["map_at_1000_a"]})
    return RerankingComparison(
        str(run_a), str(run_b), legend("A", run_a, metrics_a), legend("B", run_b, metrics_b), len(rankings_a),
        len(rankings_b), len(both), "queries", paired_deltas(point, samples, COMPARED_METRICS),
        bootstrap_record(resamples, seed), query_changes=largest_first(changes, "change"))

