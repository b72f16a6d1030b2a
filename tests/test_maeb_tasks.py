"""MAEB's other task kinds behind the task seam: clustering, pair classification, reranking. Their metrics against
scikit-learn and mteb's own evaluators on the same embeddings; their local folders; their one-line refusals."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from sklearn.cluster import KMeans
from sklearn.metrics import adjusted_mutual_info_score, adjusted_rand_score, homogeneity_completeness_v_measure
from sklearn.metrics.pairwise import paired_cosine_distances, paired_euclidean_distances, paired_manhattan_distances

import plugin_families  # noqa: F401  (puts the example plugin's toy families on the path)
from conftest import run_cli
from zsa_eval.data import limit_items, load_pairs_folder, load_rerank_folder
from zsa_eval.errors import UserError
from zsa_eval.tasks.clustering import clustering_metrics, contingency_tables, entropy_scores
from zsa_eval.tasks.pair_classification import best_threshold_metrics, check_pairs, pair_metrics, pair_scores
from zsa_eval.tasks.reranking import K_VALUES, check_queries, ranked_queries, reranking_metrics

# -- clustering ---------------------------------------------------------------------------------------------------

def test_entropy_scores_are_scikit_learns_with_each_draw_a_repeated_clip():
    rng = np.random.default_rng(0)
    labels, clusters = rng.integers(0, 4, 60), rng.integers(0, 3, 60)
    counts = rng.integers(0, 3, (60, 5)).astype(np.float32)
    scores = entropy_scores(contingency_tables(labels, clusters, counts))
    for column in range(5):
        repeated = np.repeat(np.arange(60), counts[:, column].astype(int))
        expected = homogeneity_completeness_v_measure(labels[repeated], clusters[repeated])
        assert [scores[name][column] for name in ("homogeneity", "completeness", "v_measure")] == \
            pytest.approx(expected, abs=1e-12)


def test_clustering_metrics_hold_scikit_learns_and_an_interval_around_them():
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 3, 90)
    clusters = np.where(rng.random(90) < 0.7, labels, rng.integers(0, 3, 90))
    metrics = clustering_metrics(labels, clusters, resamples=200, seed=0)
    homogeneity, completeness, v_measure = homogeneity_completeness_v_measure(labels, clusters)
    assert (metrics["v_measure"], metrics["homogeneity"], metrics["completeness"]) == \
        pytest.approx((v_measure, homogeneity, completeness), abs=1e-12)
    assert (metrics["ari"], metrics["ami"]) == pytest.approx((adjusted_rand_score(labels, clusters),
                                                              adjusted_mutual_info_score(labels, clusters)))
    low, high = metrics["v_measure_ci95"]
    assert 0 <= low < v_measure < high <= 1
    assert metrics == clustering_metrics(labels, clusters, resamples=200, seed=0)


# -- pair classification -------------------------------------------------------------------------------------------

def mteb_pair_scores(first: np.ndarray, second: np.ndarray, matches: np.ndarray) -> dict:
    """mteb 2.26.24's pair-classification scores: its evaluator's distances (the sklearn calls it makes; the
    model's similarity taken as cosine) through the task's own _compute_metrics."""
    mteb = pytest.importorskip("mteb")
    cosine = 1 - paired_cosine_distances(first, second)
    distances = {"cosine_scores": cosine.tolist(), "similarity_scores": cosine.tolist(),
                 "euclidean_distances": paired_euclidean_distances(first, second).tolist(),
                 "manhattan_distances": paired_manhattan_distances(first, second).tolist(),
                 "dot_scores": np.einsum("ij,ij->i", first, second).tolist()}
    scores = mteb.get_task("CREMADPairClassification")._compute_metrics(distances, matches.astype(int).tolist())
    return {name: value for name, value in scores.items() if not name.startswith("similarity_")}


def test_pair_metrics_equal_mtebs_evaluator_on_the_same_embeddings():
    rng = np.random.default_rng(2)
    first, noise = rng.standard_normal((80, 16)), rng.standard_normal((80, 16))
    matches = rng.random(80) < 0.4
    second = np.where(matches[:, None], first + 1.5 * noise, noise)
    ours = pair_metrics(pair_scores(first, second), matches, resamples=200, seed=0)
    expected = mteb_pair_scores(first, second, matches)
    assert len(expected) == 4 * 5 + 5
    assert {name: ours[name] for name in expected} == pytest.approx(expected, abs=1e-12)
    for name in ("cosine_ap", "max_ap"):
        low, high = ours[f"{name}_ci95"]
        assert low <= ours[name] <= high and high > low


def test_best_thresholds_never_cut_through_tied_scores():
    similar = np.array([0.9, 0.5, 0.5, 0.1])
    matches = np.array([1, 1, 0, 0])
    # cuts after 0.9 (accuracy 3/4, F1 2/3) and after the two 0.5s (accuracy 3/4, F1 4/5), never between them
    assert best_threshold_metrics(similar, matches) == pytest.approx(
        {"accuracy": 0.75, "f1": 0.8, "precision": 2 / 3, "recall": 1.0})
    assert best_threshold_metrics(np.ones(3), np.array([1, 0, 1]))["accuracy"] == 0.0  # no cut at all


# -- reranking ------------------------------------------------------------------------------------------------------

def reranking_items(n_queries: int, n_documents: int, rng) -> pd.DataFrame:
    """Queries each with 1-3 positives among all or some of the documents."""
    documents = [f"doc{index}" for index in range(n_documents)]
    rows = []
    for query in range(n_queries):
        candidates = sorted(rng.choice(n_documents, int(rng.integers(4, n_documents)), replace=False)) \
            if query % 2 else []
        pool = candidates or range(n_documents)
        positives = rng.choice(list(pool), int(rng.integers(1, 4)), replace=False)
        rows.append({"item_id": f"q{query}", "role": "query", "positives": "|".join(documents[p] for p in positives),
                     "candidates": "|".join(documents[c] for c in candidates)})
    rows += [{"item_id": name, "role": "document", "positives": "", "candidates": ""} for name in documents]
    return pd.DataFrame(rows)


def mteb_reranking_scores(items: pd.DataFrame, features: np.ndarray) -> dict:
    """mteb 2.26.24's retrieval scores (trec_eval through pytrec_eval, its own MRR) of the cosine similarities."""
    pytest.importorskip("mteb")
    from mteb._evaluators.retrieval_metrics import calculate_retrieval_scores, make_score_dict

    unit = features / np.linalg.norm(features, axis=1, keepdims=True)
    row = {item_id: index for index, item_id in enumerate(items["item_id"])}
    documents = items.loc[items["role"] == "document", "item_id"].tolist()
    results, qrels = {}, {}
    for query in items[items["role"] == "query"].itertuples():
        candidates = query.candidates.split("|") if query.candidates else documents
        results[query.item_id] = {doc: float(unit[row[doc]] @ unit[row[query.item_id]]) for doc in candidates}
        qrels[query.item_id] = {doc: 1 for doc in query.positives.split("|")}
    evaluation = calculate_retrieval_scores(results, qrels, list(K_VALUES))
    return make_score_dict(ndcg=evaluation.ndcg, _map=evaluation.map, recall=evaluation.recall,
                           precision=evaluation.precision, mrr=evaluation.mrr, naucs={}, naucs_mrr={},
                           hit_rate=evaluation.hit_rate, task_scores={})


def as_mteb_reports(metrics: dict, names) -> dict:
    """Our figures as mteb reports them: its trec_eval means rounded to 5 decimals, its MRR not."""
    return {name: metrics[name] if name.startswith("mrr") else round(metrics[name], 5) for name in names}


def test_reranking_metrics_equal_mtebs_retrieval_evaluator_on_the_same_embeddings():
    rng = np.random.default_rng(3)
    items = reranking_items(12, 30, rng)
    features = rng.standard_normal((len(items), 8))
    ours = reranking_metrics(ranked_queries(items, features), resamples=100, seed=0)
    expected = {name: value for name, value in mteb_reranking_scores(items, features).items() if name != "accuracy"}
    assert len(expected) == 6 * len(K_VALUES)
    assert as_mteb_reports(ours, expected) == pytest.approx(expected, abs=1e-12)
    assert ours["ndcg_at_3"] != round(ours["ndcg_at_3"], 5)  # zsa-eval keeps full precision
    low, high = ours["map_at_1000_ci95"]
    assert low < ours["map_at_1000"] < high


def test_reranking_ranks_a_querys_own_candidates_only():
    features = np.array([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.8, 0.2]])
    items = pd.DataFrame({"item_id": ["q", "near", "far", "nearer_but_not_listed"],
                          "role": ["query", "document", "document", "document"],
                          "positives": ["far", "", "", ""], "candidates": ["near|far", "", "", ""]})
    ranked = ranked_queries(items, features).iloc[0]
    assert (ranked["n_candidates"], ranked["positive_ranks"], ranked["top1"], ranked["map_at_1000"]) == \
        (2, "2", "near", 0.5)


def test_a_query_without_candidates_ranks_the_documents_of_its_subset():
    items = pd.DataFrame({"item_id": ["en/q", "en/a", "fr/q", "fr/b"], "role": ["query", "document"] * 2,
                          "positives": ["en/a", "", "fr/b", ""], "candidates": "", "hf_subset": ["en", "en", "fr", "fr"]})
    ranked = ranked_queries(items, np.eye(4))
    assert ranked[["query_id", "n_candidates", "top1"]].values.tolist() == [["en/q", 1, "en/a"], ["fr/q", 1, "fr/b"]]



def test_a_query_without_candidates_never_ranks_its_own_file():
    """A file that is a query and also another query's document: ranked with every document, it is left out of its
    own candidates (it would rank itself first)."""
    items = pd.DataFrame({"item_id": ["query:r4.wav", "r4.wav", "r5.wav", "query:r5.wav"],
                          "path": ["/d/r4.wav", "/d/r4.wav", "/d/r5.wav", "/d/r5.wav"],
                          "role": ["query", "document", "document", "query"],
                          "positives": ["r5.wav", "", "", "r4.wav"], "candidates": ["", "", "", "r4.wav|r5.wav"]})
    ranked = ranked_queries(items, np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.0, 1.0]]))
    assert ranked[["query_id", "n_candidates", "top1"]].values.tolist() == [
        ["query:r4.wav", 1, "r5.wav"], ["query:r5.wav", 2, "r5.wav"]]  # listed candidates are taken as listed

# -- data: folders, limits, malformed tables ------------------------------------------------------------------------

def test_pairs_folder_gives_two_item_rows_per_pair(pairs_folder):
    dataset = load_pairs_folder("pairs_folder", str(pairs_folder))
    items = dataset.items
    assert len(items) == 56 and dataset.task == "pair_classification" and dataset.class_names == ["0", "1"]
    assert items.loc[:1, ["item_id", "pair_id", "pair_side", "label"]].values.tolist() == [
        ["0:1", "0", "1", "0"], ["0:2", "0", "2", "0"]]
    assert items.loc[1, "path"] == str(pairs_folder / "c1.wav")
    assert dataset.ignored_files["path"].tolist() == ["README.txt", "pairs.csv"]
    limited = limit_items(dataset, 5, "stratified", 0).items
    assert len(limited) == 10 and limited.groupby("pair_id")["pair_side"].apply(lambda sides: sorted(sides) == ["1", "2"]).all()
    check_pairs(limited, "pairs_folder")


def test_rerank_folder_gives_queries_and_the_documents_they_name(rerank_folder):
    dataset = load_rerank_folder("rerank_folder", str(rerank_folder))
    items = dataset.items
    assert items["role"].value_counts().to_dict() == {"document": 12, "query": 3}
    assert items.loc[0, ["item_id", "positives", "candidates"]].tolist() == [
        "query:q0.wav", "d0.wav|d3.wav|d6.wav|d9.wav", ""]
    check_queries(items, "rerank_folder")
    one = limit_items(dataset, 1, "first", 0).items  # q0 ranks every document: all are kept
    assert (one["role"] == "query").sum() == 1 and (one["role"] == "document").sum() == 12


def test_a_limited_query_keeps_only_the_documents_it_ranks():
    items = pd.DataFrame({"item_id": ["q1", "q2", "a", "b", "c"], "role": ["query"] * 2 + ["document"] * 3,
                          "positives": ["a", "c", "", "", ""], "candidates": ["a|b", "c", "", "", ""],
                          "label": ""})
    from zsa_eval.data.items import queries_with_their_documents
    assert queries_with_their_documents(items, 1, "first", 0) == [0, 2, 3]


@pytest.mark.parametrize("change, message", [
    (lambda items: items.drop(index=1), "pair '0' of dataset d has no second side (pair_side 2): every pair is two "
                                        "items, pair_side 1 and 2"),
    (lambda items: items.assign(label=["0", "1", "1", "1"]), "pair '0' of dataset d has label(s) 0, 1: a pair "
                                                             "carries one label on both items, 1 (a match) or 0"),
    (lambda items: items.assign(label="0"), "dataset d has no matching pair (label 1): average precision ranks the "
                                            "matches; add some"),
    (lambda items: items.drop(columns="pair_side"), "dataset d has task pair_classification but its items lack "
                                                    "column(s) pair_side: two item rows per pair, pair_side 1 and 2, "
                                                    "the pair's 0/1 label in the label column"),
])
def test_malformed_pairs_are_one_line(change, message):
    items = pd.DataFrame({"item_id": ["0:1", "0:2", "1:1", "1:2"], "pair_id": ["0", "0", "1", "1"],
                          "pair_side": ["1", "2", "1", "2"], "label": ["0", "0", "1", "1"]})
    check_pairs(items, "d")
    with pytest.raises(UserError) as raised:
        check_pairs(change(items), "d")
    assert str(raised.value) == message


@pytest.mark.parametrize("row, message", [
    ({"positives": ""}, "query 'q' of dataset d has no positives: name the documents it should rank first (their "
                        "ids joined by |)"),
    ({"candidates": "a|zz"}, "query 'q' of dataset d names 'zz' in its candidates, which is no document of the "
                             "dataset"),
    ({"positives": "b", "candidates": "a"}, "query 'q' of dataset d: its positive 'b' is not among its candidates; "
                                            "add it to them (or leave the candidates empty to rank every document)"),
])
def test_malformed_queries_are_one_line(row, message):
    items = pd.DataFrame({"item_id": ["q", "a", "b"], "role": ["query", "document", "document"],
                          "positives": ["a", "", ""], "candidates": ["a|b", "", ""]})
    check_queries(items, "d")
    for column, value in row.items():
        items.at[0, column] = value
    with pytest.raises(UserError) as raised:
        check_queries(items, "d")
    assert str(raised.value) == message


def test_a_pairs_file_row_without_its_second_file_is_one_line(pairs_folder, tmp_path, monkeypatch, capsys):
    table = pd.read_csv(pairs_folder / "pairs.csv", dtype=str)
    table.loc[2, "audio2"] = ""
    table.to_csv(pairs_folder / "pairs.csv", index=False)
    code, _, stderr = run_cli(monkeypatch, capsys, "dataset=pairs_folder", f"dataset.path={pairs_folder}",
                              "model=tiny_random", f"output_dir={tmp_path / 'out'}")
    assert code == 2 and stderr.strip() == ("zsa-eval: error: pairs.csv row 4 (pair '2') has no audio2: each pair "
                                            "names both of its files")


def test_a_pairs_folder_read_as_another_task_is_one_line(pairs_folder):
    with pytest.raises(UserError) as raised:
        load_pairs_folder("pairs_folder", str(pairs_folder), task="classification")
    assert str(raised.value) == ("dataset=pairs_folder holds pairs: its task is pair_classification, not "
                                 "classification; drop dataset.task")


@pytest.mark.parametrize("protocol", ["linear_probe", "few_shot"])
def test_a_probe_of_a_pairs_dataset_is_one_line(protocol, pairs_folder, tmp_path, monkeypatch, capsys):
    code, _, stderr = run_cli(monkeypatch, capsys, "dataset=pairs_folder", f"dataset.path={pairs_folder}",
                              "model=tiny_random", f"protocol={protocol}", f"output_dir={tmp_path / 'out'}")
    assert code == 2 and stderr.strip() == (
        f"zsa-eval: error: protocol={protocol} cannot evaluate dataset=pairs_folder (task pair_classification): it is "
        "measured on the audio embeddings as they are (a pair-classification dataset), with nothing to train: use "
        "protocol=zeroshot")


# -- whole runs -----------------------------------------------------------------------------------------------------

def run_dir_of(tmp_path, monkeypatch, capsys, *arguments: str):
    out = tmp_path / "results" / "run"
    code, stdout, stderr = run_cli(monkeypatch, capsys, *arguments, "save_embeddings=true", "batch_size=8",
                                   f"results_dir={tmp_path / 'results'}", f"output_dir={out}")
    assert code == 0, stderr
    return out, stdout, json.loads((out / "metrics.json").read_text()), np.load(out / "embeddings" / "audio.npy")


@pytest.mark.slow
def test_a_pairs_folder_run_measures_its_embeddings_as_mteb_does(pairs_folder, tmp_path, monkeypatch, capsys):
    out, stdout, metrics, embeddings = run_dir_of(tmp_path, monkeypatch, capsys, "dataset=pairs_folder",
                                                  f"dataset.path={pairs_folder}", "model=tiny_random")
    assert stdout.startswith("pairs_folder | tiny_random | pair classification: cosine AP ")
    assert "on 28 of 28 pairs (4 matching)" in stdout
    pairs = pd.read_csv(out / "pairs.csv", dtype={"pair_id": str, "label": str})
    expected = mteb_pair_scores(embeddings[0::2].astype(np.float64), embeddings[1::2].astype(np.float64),
                                pairs["label"].eq("1").to_numpy())
    assert {name: metrics[name] for name in expected} == pytest.approx(expected, abs=1e-6)
    assert metrics["task"] == "pair_classification" and metrics["main_score"] == "cosine_ap"
    board = pd.read_csv(tmp_path / "results" / "leaderboard.csv")
    assert board[["task", "cosine_ap"]].values.tolist() == [["pair_classification", metrics["cosine_ap"]]]
    assert (out / "report.html").is_file()


@pytest.mark.slow
def test_a_rerank_folder_run_measures_its_embeddings_as_mteb_does(rerank_folder, tmp_path, monkeypatch, capsys):
    out, stdout, metrics, embeddings = run_dir_of(tmp_path, monkeypatch, capsys, "dataset=rerank_folder",
                                                  f"dataset.path={rerank_folder}", "model=tiny_random")
    assert "reranking: MAP " in stdout and "over 3 of 3 queries (12 documents)" in stdout
    items = load_rerank_folder("rerank_folder", str(rerank_folder)).items
    expected = mteb_reranking_scores(items, embeddings.astype(np.float64))
    names = [name for name in expected if name != "accuracy"]
    assert as_mteb_reports(metrics, names) == pytest.approx({name: expected[name] for name in names}, abs=1e-12)
    assert pd.read_csv(out / "rankings.csv")["query_id"].tolist() == ["query:q0.wav", "query:q1.wav", "query:q2.wav"]


@pytest.mark.slow
def test_an_audio_encoder_clusters_a_folder_as_scikit_learn_does(audiofolder, tmp_path, monkeypatch, capsys):
    out, stdout, metrics, embeddings = run_dir_of(
        tmp_path, monkeypatch, capsys, "dataset=audiofolder", f"dataset.path={audiofolder}",
        "dataset.task=clustering", "model=plugin", "model.family=toy_family:ToyEncoderFamily", "model.name=toy")
    assert stdout.startswith("audiofolder | toy | clustering: V-measure ")
    clusters = pd.read_csv(out / "clusters.csv")
    expected = KMeans(n_clusters=3, n_init=10, random_state=0).fit_predict(embeddings.astype(np.float64))
    assert clusters["cluster"].tolist() == expected.tolist()
    _, _, v_measure = homogeneity_completeness_v_measure(clusters["label"], expected)
    assert metrics["v_measure"] == pytest.approx(v_measure) and metrics["n_clusters"] == 3
    assert pd.read_csv(out / "contingency.csv").iloc[:, 1:].to_numpy().sum() == 9


# -- protocol=mteb: mteb's own evaluator on the run's embeddings, as mteb run directly gives it ---------------------

class GivenEmbeddings:
    """An mteb encoder that returns given embeddings: each audio cell holds an item id."""

    def __init__(self, embeddings: dict[str, np.ndarray]):
        from mteb.models.model_meta import ModelMeta
        self.embeddings = embeddings
        self.mteb_model_meta = ModelMeta.create_empty(overwrites={"name": "test/given", "similarity_fn_name": "cosine",
                                                                  "modalities": ["audio"]})

    def encode(self, inputs, **kwargs) -> np.ndarray:
        return np.concatenate([np.stack([self.embeddings[item_id] for item_id in batch["audio"]]) for batch in inputs])

    def similarity(self, first, second):
        from mteb.similarity_functions import cos_sim
        return cos_sim(first, second)

    def similarity_pairwise(self, first, second):
        from mteb.similarity_functions import pairwise_cos_sim
        return pairwise_cos_sim(first, second)


def direct_mteb(task_name: str, split: str, dataset, run_dir) -> dict:
    """mteb.evaluate of its task `task_name` on `dataset` (as the task's `dataset`, one split) with the embeddings the
    run kept: its scores of that split."""
    mteb = pytest.importorskip("mteb")
    embeddings = np.load(run_dir / "embeddings" / "audio.npy")
    ids = pd.read_csv(run_dir / "embeddings" / "audio_items.csv", dtype=str)["item_id"]
    task = mteb.get_task(task_name)
    task.dataset, task.data_loaded = {"default": dataset}, True
    result = mteb.evaluate(GivenEmbeddings(dict(zip(ids, embeddings))), task, cache=None,
                           overwrite_strategy="always", co2_tracker=False, show_progress_bar=False).task_results[0]
    return result.scores[split][0]


def mteb_run(tmp_path, monkeypatch, capsys, *arguments: str) -> tuple:
    out = tmp_path / "results" / "run"
    code, _, stderr = run_cli(monkeypatch, capsys, *arguments, "model=tiny_random", "protocol=mteb",
                              "save_embeddings=true", f"results_dir={tmp_path / 'results'}", f"output_dir={out}")
    assert code == 0, stderr
    metrics = json.loads((out / "metrics.json").read_text())
    (split, [scores]), = metrics["mteb_scores"].items()
    return out, metrics, scores


def same_scores(ours: dict, direct: dict) -> None:
    """Every mteb score equal (the split's bookkeeping aside; an undefined score, NaN in mteb's, is null in
    metrics.json)."""
    names = set(direct) - {"hf_subset", "languages"}
    expected = {name: None if isinstance(direct[name], float) and np.isnan(direct[name]) else direct[name]
                for name in names}
    assert names and {name: ours[name] for name in names} == expected


@pytest.mark.slow
def test_protocol_mteb_clusters_as_mteb_does_on_the_same_embeddings(audiofolder, tmp_path, monkeypatch, capsys):
    from datasets import Dataset, DatasetDict
    out, metrics, scores = mteb_run(tmp_path, monkeypatch, capsys, "dataset=audiofolder",
                                    f"dataset.path={audiofolder}", "dataset.task=clustering")
    assert (metrics["task"], metrics["mteb_kind"], metrics["mteb_main_score"]) == ("clustering", "clustering",
                                                                                 "v_measure")
    ids = [f"{label}/{take}.wav" for label in sorted(p.name for p in audiofolder.iterdir()) for take in range(3)]
    direct = direct_mteb("CREMA_DClustering", "train", DatasetDict({"train": Dataset.from_dict(
        {"audio": ids, "label": [item_id.split("/")[0] for item_id in ids]})}), out)
    same_scores(scores, direct)
    assert metrics["mteb_v_measure"] == direct["v_measure"]


@pytest.mark.slow
def test_protocol_mteb_classifies_pairs_as_mteb_does_on_the_same_embeddings(pairs_folder, tmp_path, monkeypatch,
                                                                             capsys):
    from datasets import Dataset, DatasetDict
    out, metrics, scores = mteb_run(tmp_path, monkeypatch, capsys, "dataset=pairs_folder",
                                    f"dataset.path={pairs_folder}")
    pairs = pd.read_csv(pairs_folder / "pairs.csv")
    direct = direct_mteb("CREMADPairClassification", "test", DatasetDict({"test": Dataset.from_dict(
        {"audio1": [f"{row}:1" for row in pairs.index], "audio2": [f"{row}:2" for row in pairs.index],
         "label": pairs["label"].tolist()})}), out)
    same_scores(scores, direct)
    assert metrics["mteb_main_score"] == "max_ap" and metrics["mteb_max_ap"] == direct["max_ap"]


@pytest.mark.slow
def test_protocol_mteb_reranks_as_mteb_does_on_the_same_embeddings(rerank_folder, tmp_path, monkeypatch, capsys):
    from datasets import Dataset
    out, metrics, scores = mteb_run(tmp_path, monkeypatch, capsys, "dataset=rerank_folder",
                                    f"dataset.path={rerank_folder}")
    table = pd.read_csv(rerank_folder / "queries.csv", dtype=str, keep_default_na=False)
    queries = [f"query:{query}" for query in table["query"]]
    documents = [f"d{index}.wav" for index in range(12)]
    direct = direct_mteb("GTZANAudioReranking", "test", {"test": {
        "queries": Dataset.from_dict({"id": queries, "audio": queries}),
        "corpus": Dataset.from_dict({"id": documents, "audio": documents}),
        "relevant_docs": {query: dict.fromkeys(positives.split("|"), 1)
                          for query, positives in zip(queries, table["positives"])},
        "top_ranked": {query: candidates.split("|") if candidates else documents
                       for query, candidates in zip(queries, table["candidates"])}}}, out)
    same_scores(scores, direct)
    assert metrics["mteb_main_score"] == "map_at_1000"
