"""Clustering (task: clustering): each clip has one label, as for classification; the clips' audio embeddings are
clustered by k-means into as many clusters as the evaluated clips have labels, and the clusters are scored against
the labels: V-measure (the harmonic mean of homogeneity and completeness, as scikit-learn defines them), adjusted
Rand index and adjusted mutual information.

k-means: scikit-learn's KMeans (Lloyd), k-means++ seeded by the run's seed, the best of K_MEANS_INITS starts (least
inertia), on every evaluated clip at once. mteb (AbsTaskClustering) instead averages ten MiniBatchKMeans fits (one
start each, batches of 512, seed 42) on ten draws of 16,384 clips with replacement: protocol=mteb gives its figure.

Intervals: percentile bootstrap over the clips with the partition held fixed (each resample recounts the label x
cluster table: the uncertainty of scoring these clips, not of k-means' own start), centred on the estimate's median
bias as for average precision (a resample's plug-in entropies are biased); no interval for ARI and AMI."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import sparse
from sklearn.cluster import KMeans
from sklearn.metrics import adjusted_mutual_info_score, adjusted_rand_score
from threadpoolctl import threadpool_limits

from zsa_eval.data import AudioDataset
from zsa_eval.errors import UserError
from zsa_eval.results import Comparison, MetricSpec, Mistake, Mistakes, TaskResults
from zsa_eval.stats import median_centred_interval
from zsa_eval.tasks import Evaluated, RunContext, clip_features, skipped_note, timing_note, worst_first
from zsa_eval.tasks.comparing import bootstrap_record, legend, paired_deltas, paired_items, run_table
from zsa_eval.tasks.embedded import RESAMPLES, AudioEmbeddingTask, saved_embeddings
from zsa_eval.tasks.tagging import resample_counts
from zsa_eval.text import counted

K_MEANS_INITS = 10
ENTROPY_METRICS = ("v_measure", "homogeneity", "completeness")  # the metrics with an interval


def k_means(features: np.ndarray, n_clusters: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Each clip's cluster and its distance to that cluster's centre (single-threaded: deterministic for a seed)."""
    with threadpool_limits(1):
        model = KMeans(n_clusters=n_clusters, n_init=K_MEANS_INITS, random_state=seed).fit(features)
        distances = model.transform(features)
    return model.labels_, distances[np.arange(len(features)), model.labels_]


def contingency_tables(labels: np.ndarray, clusters: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """(resamples, labels, clusters) how often each label x cluster cell is drawn (`counts`: (clips, resamples)
    draws of each clip; integer codes `labels` and `clusters`)."""
    n_labels, n_clusters = labels.max() + 1, clusters.max() + 1
    cells = sparse.csr_matrix((np.ones(len(labels)), (labels * n_clusters + clusters, np.arange(len(labels)))),
                              shape=(n_labels * n_clusters, len(labels)))
    return np.asarray((cells @ counts).T, dtype=np.float64).reshape(counts.shape[1], n_labels, n_clusters)


def entropy(probabilities: np.ndarray, axis: tuple[int, ...]) -> np.ndarray:
    """-sum p log p over `axis` (0 log 0 = 0)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return -np.where(probabilities > 0, probabilities * np.log(probabilities), 0.0).sum(axis=axis)


def entropy_scores(tables: np.ndarray) -> dict[str, np.ndarray]:
    """Homogeneity, completeness and V-measure of each (labels, clusters) contingency table, as scikit-learn's
    homogeneity_completeness_v_measure defines them (natural logs; a single label is homogeneous, a single cluster
    complete)."""
    joint = tables / tables.sum(axis=(1, 2), keepdims=True)
    label_entropy = entropy(joint.sum(axis=2), (1,))
    cluster_entropy = entropy(joint.sum(axis=1), (1,))
    mutual = label_entropy + cluster_entropy - entropy(joint, (1, 2))
    with np.errstate(divide="ignore", invalid="ignore"):
        homogeneity = np.where(label_entropy > 0, mutual / label_entropy, 1.0)
        completeness = np.where(cluster_entropy > 0, mutual / cluster_entropy, 1.0)
        v_measure = np.where(homogeneity + completeness > 0,
                             2 * homogeneity * completeness / (homogeneity + completeness), 0.0)
    return {"v_measure": v_measure, "homogeneity": homogeneity, "completeness": completeness}


def clustering_metrics(labels: np.ndarray, clusters: np.ndarray, resamples: int, seed: int) -> dict:
    """V-measure, homogeneity and completeness with 95% intervals over the clips (the partition held fixed), ARI
    and AMI; `labels` and `clusters` are integer codes."""
    point = entropy_scores(contingency_tables(labels, clusters, np.ones((len(labels), 1))))
    samples = entropy_scores(contingency_tables(labels, clusters, resample_counts(len(labels), resamples, seed)))
    metrics = {name: float(point[name][0]) for name in ENTROPY_METRICS}
    metrics |= {f"{name}_ci95": median_centred_interval(samples[name], metrics[name], bounds=(0.0, 1.0))
                for name in ENTROPY_METRICS}
    return metrics | {"ari": float(adjusted_rand_score(labels, clusters)),
                      "ami": float(adjusted_mutual_info_score(labels, clusters)),
                      "bootstrap": bootstrap_record(resamples, seed) | {"over": "clips (the clusters held fixed)"}}


def contingency_table(labels: pd.Series, clusters: np.ndarray) -> pd.DataFrame:
    """contingency.csv: a row per label, a column per cluster (cluster_0, ...), clip counts."""
    table = pd.crosstab(labels.to_numpy(), clusters).rename(columns=lambda cluster: f"cluster_{cluster}")
    return table.rename_axis(index="label", columns=None).reset_index()


class ClusteringTask(AudioEmbeddingTask):
    name = "clustering"
    kind = "a clustering dataset"
    main_score = "v_measure"
    metrics = (MetricSpec("v_measure", "V-measure"), MetricSpec("ari", "ARI", interval=False),
               MetricSpec("ami", "AMI", interval=False, shown=False),
               MetricSpec("homogeneity", "homogeneity", shown=False),
               MetricSpec("completeness", "completeness", shown=False))

    def check_dataset(self, dataset: AudioDataset) -> list[str]:
        """One label per clip (the classification item table)."""
        if dataset.items["label"].eq("").all():
            raise UserError(f"dataset {dataset.name} has task clustering but its clips carry no label: set "
                            "dataset.label_column to the column of each clip's label")
        return []

    def results(self, context: RunContext, evaluated: Evaluated) -> TaskResults:
        """k-means of the evaluated clips' embeddings into one cluster per label present; the metrics with
        intervals, clusters.csv (each clip's cluster and distance to its centre) and contingency.csv."""
        cfg, items = context.cfg, evaluated.items
        label_names, labels = np.unique(items["label"].to_numpy(dtype=str), return_inverse=True)
        if len(items) < len(label_names):
            raise UserError(f"{counted(len(items), 'clip')} evaluated for {len(label_names)} labels: k-means needs at "
                            "least one clip per cluster; evaluate more clips")
        features = clip_features(context.loaded.family, evaluated.audio)
        clusters, distances = k_means(features, len(label_names), cfg.seed)
        table = pd.DataFrame({"item_id": items["item_id"], "path": items["path"], "label": items["label"],
                              "cluster": clusters, "distance": distances})
        tables, arrays = saved_embeddings(cfg, evaluated, features)
        metrics = clustering_metrics(labels, clusters, RESAMPLES, cfg.seed) | {
            "n_clusters": len(label_names), "n_classes": len(label_names), "labels": label_names.tolist(),
            "k_means": {"algorithm": "scikit-learn KMeans (lloyd), k-means++", "n_init": K_MEANS_INITS,
                        "seed": cfg.seed, "features": "the family's pooled clip embeddings, as it gives them"},
            "metrics_cover": "the evaluated clips (skipped clips are listed in errors.csv)", "template": None}
        return TaskResults(metrics, {"clusters": table, "contingency": contingency_table(items["label"], clusters)}
                           | tables, arrays=arrays)

    def mistakes(self, context: RunContext, evaluated: Evaluated, results: TaskResults) -> Mistakes:
        """Clips in a cluster where another label is the most common, those nearest its centre first (the clips
        k-means most surely put with another label)."""
        cfg, clusters = context.cfg, results.tables["clusters"]
        majority = clusters.groupby("cluster")["label"].agg(lambda labels: labels.value_counts().index[0])
        misplaced = clusters.assign(majority=clusters["cluster"].map(majority), nearness=-clusters["distance"])
        misplaced = misplaced[misplaced["label"] != misplaced["majority"]]
        chosen = worst_first(misplaced, "nearness", "label", cfg.report_mistakes_per_class, cfg.report_mistakes)
        items = [Mistake(row.item_id, (("clip", evaluated.positions[index]),),
                         {"label": row.label, "cluster": int(row.cluster), "its cluster's most common label":
                          row.majority, "distance to the cluster's centre": float(row.distance)})
                 for index, row in zip(chosen.index, chosen.itertuples(index=False))]
        return Mistakes(f"{len(items)} of the {len(misplaced)} clips in a cluster where another label is the most "
                        f"common (at most {cfg.report_mistakes_per_class} per label, {cfg.report_mistakes} in all), "
                        "nearest their cluster's centre first.", items)

    def compare(self, run_a: Path, metrics_a: dict, run_b: Path, metrics_b: dict, resamples: int,
                seed: int) -> ClusteringComparison:
        return compare_clusterings(run_a, metrics_a, run_b, metrics_b, resamples, seed)

    def summary_line(self, metrics: dict, wall_s: float) -> str:
        low, high = metrics["v_measure_ci95"]
        return (f"{metrics['dataset']} | {metrics['model']} | clustering: V-measure {metrics['v_measure']:.4f} "
                f"[{low:.4f}, {high:.4f}] (homogeneity {metrics['homogeneity']:.4f}, completeness "
                f"{metrics['completeness']:.4f}, ARI {metrics['ari']:.4f}) into {metrics['n_clusters']} clusters of "
                f"{metrics['n_evaluated']} of {counted(metrics['n_items'], 'clip')}{skipped_note(metrics)}"
                f"{timing_note(metrics, wall_s)}")


TASK = ClusteringTask()


@dataclass(frozen=True)
class ClusteringComparison(Comparison):
    def deltas_note(self) -> str:
        return (f"{super().deltas_note()}, over the common clips with each run's clusters held fixed (ARI and AMI "
                "have no interval: they are in each run's metrics.json)")


def compare_clusterings(run_a: Path, metrics_a: dict, run_b: Path, metrics_b: dict, resamples: int,
                        seed: int) -> ClusteringComparison:
    """Run B against run A on the clips both clustered: V-measure, homogeneity and completeness of each run's
    clusters over those clips, with paired bootstrap deltas (the same resampled clips for both partitions)."""
    clusters_a, clusters_b = (run_table(run, "clusters.csv", "clustering", ("item_id", "label"), ("cluster",))
                              for run in (run_a, run_b))
    both = paired_items(clusters_a, clusters_b, run_a, run_b, "clips", "another label", label="label")
    labels = np.unique(both["label_a"].to_numpy(dtype=str), return_inverse=True)[1]
    counts = resample_counts(len(both), resamples, seed)
    point, samples = {}, {}
    for run in "ab":
        clusters = np.unique(both[f"cluster_{run}"].to_numpy(), return_inverse=True)[1]
        measured = entropy_scores(contingency_tables(labels, clusters, np.ones((len(labels), 1))))
        point[run] = {name: float(measured[name][0]) for name in ENTROPY_METRICS}
        samples[run] = entropy_scores(contingency_tables(labels, clusters, counts))
    return ClusteringComparison(
        str(run_a), str(run_b), legend("A", run_a, metrics_a), legend("B", run_b, metrics_b), len(clusters_a),
        len(clusters_b), len(both), "clips", paired_deltas(point, samples, list(ENTROPY_METRICS)),
        bootstrap_record(resamples, seed))
