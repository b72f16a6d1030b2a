"""dataset=mteb: mteb's own task metadata and loader decide the items, read offline from local copies written in the
layout of each task's Hub repository (parquet files, README.md configs); the catalog's `mteb_tasks:` and
suite=maeb checked against mteb's registry."""

from __future__ import annotations

import importlib.util
import io
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import yaml

from conftest import compose_config, run_cli
from saved_embeddings import SavedEmbeddings
from zsa_eval.config import CONFIG_DIR
from zsa_eval.errors import TaskUnavailable, UserError
from zsa_eval.integrations import import_mteb

from zsa_eval.data.mteb_items import TASK_OF_KIND
from zsa_eval.data.mteb_tasks import load_mteb_task, mteb_kind, task_kind

# the extra zsa-eval[mteb], imported by the tests that use it, not at collection (it imports datasets)
pytestmark = pytest.mark.skipif(importlib.util.find_spec("mteb") is None, reason="needs the extra zsa-eval[mteb]")

CREMA_D_CLASSES = ["Anger", "Disgust", "Fear", "Happy", "Neutral", "Sad"]
RAVDESS_CLASSES = ["neutral", "calm", "happy", "sad", "angry", "fearful", "disgust", "surprised"]


@pytest.fixture(autouse=True)
def own_datasets_cache(monkeypatch, tmp_path) -> None:
    """A datasets cache per test (the session's HF_DATASETS_CACHE does not reach a `datasets` imported before it was
    set, and an earlier copy's cache must not answer for a later one)."""
    import datasets

    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", str(tmp_path / "hf_datasets"))


def wav(seed: int) -> dict:
    """A distinct 0.1 s clip as an Audio cell: the encoded file's bytes."""
    buffer = io.BytesIO()
    sf.write(buffer, np.random.default_rng(seed).uniform(-0.5, 0.5, 1600).astype(np.float32), 16000, format="WAV")
    return {"bytes": buffer.getvalue(), "path": f"clip{seed}.wav"}


def hub_copy(folder: Path, configs: dict[str, dict[str, dict]], features: dict[str, dict]) -> Path:
    """A Hub dataset repository's files: each config's splits as data/<config>/<split>-00000-of-00001.parquet
    (columns and `datasets` features as given per config) and README.md declaring the configs."""
    from datasets import Dataset, Features

    entries = []
    for config, splits in configs.items():
        files = []
        for split, columns in splits.items():
            relative = f"data/{config}/{split}-00000-of-00001.parquet"
            (folder / relative).parent.mkdir(parents=True, exist_ok=True)
            Dataset.from_dict(columns, features=Features(features[config])).to_parquet(str(folder / relative))
            files.append({"split": split, "path": relative})
        entries.append({"config_name": config, "data_files": files})
    (folder / "README.md").write_text(f"---\n{yaml.safe_dump({'configs': entries})}---\n")
    return folder


def clips(count: int, start: int = 0) -> list[dict]:
    return [wav(start + row) for row in range(count)]


def loaded(task_name: str, folder: Path, **keys):
    name = keys.pop("name", task_name)
    return load_mteb_task(name=name, task_name=task_name, path=str(folder), **keys)


def clip_bytes(dataset, index: int) -> bytes:
    return dataset.clips[index]


def test_cross_validation_classification_items_are_mteb_rows_named_by_their_class_label(tmp_path):
    from datasets import Audio, ClassLabel

    labels = [0, 1, 2, 3, 4, 5, 5, 4, 3, 2, 1, 0]
    audio = clips(len(labels))
    folder = hub_copy(tmp_path / "crema-d", {"default": {"train": {"audio": audio, "label": labels}}},
                      {"default": {"audio": Audio(), "label": ClassLabel(names=CREMA_D_CLASSES)}})
    dataset = loaded("CREMA_D", folder)
    assert dataset.mteb_task == "CREMA_D" and dataset.task == "classification"
    assert dataset.source == str(folder.resolve()) and dataset.revision is None
    assert dataset.class_names == CREMA_D_CLASSES
    assert dataset.items["item_id"].tolist() == [f"train/{row}" for row in range(len(labels))]
    assert dataset.items["label"].tolist() == [CREMA_D_CLASSES[label] for label in labels]
    assert set(dataset.items["split"]) == {"train"} and set(dataset.items["hf_subset"]) == {"default"}
    assert dataset.items["fold"].isna().all()  # cross-validation: mteb folds the whole split itself
    assert [clip_bytes(dataset, row) for row in (0, 7)] == [audio[0]["bytes"], audio[7]["bytes"]]


def test_train_test_classification_keeps_both_splits_as_folds_after_mteb_s_own_filter(tmp_path):
    from datasets import Audio, Value

    ages = {"train": ["teens", "thirties", "teens", "thirties", "not_defined"],
            "test": ["thirties", "teens", "eighties", "teens"]}
    folder = hub_copy(tmp_path / "age", {"default": {split: {"audio": clips(len(values), 10 * n), "age": values}
                                                     for n, (split, values) in enumerate(ages.items())}},
                      {"default": {"audio": Audio(), "age": Value("string")}})
    dataset = loaded("CommonLanguageAgeDetection", folder)
    kept = {split: [row for row, age in enumerate(values) if age not in ("not_defined", "eighties")]
            for split, values in ages.items()}  # mteb's dataset_transform drops these two labels
    assert dataset.items["item_id"].tolist() == [f"{split}/{row}" for split in ("train", "test")
                                                 for row in range(len(kept[split]))]
    assert dataset.items["fold"].tolist() == dataset.items["split"].tolist() == ["train"] * 4 + ["test"] * 3
    assert dataset.items["label"].tolist() == [ages[split][row] for split in ("train", "test") for row in kept[split]]
    assert dataset.class_names == ["teens", "thirties"]
    assert clip_bytes(dataset, 4) == wav(10 + kept["test"][0])["bytes"]


def test_integer_codes_without_names_are_classes_in_code_order(tmp_path):
    from datasets import Audio, Value

    codes = [10, 2, 0, 1, 2, 10]
    folder = hub_copy(tmp_path / "codes", {"default": {"test": {"audio": clips(6), "label": codes}}},
                      {"default": {"audio": Audio(), "label": Value("int64")}})
    dataset = loaded("VehicleSoundClustering", folder)
    assert dataset.class_names == ["0", "1", "2", "10"] and dataset.items["label"].tolist() == list(map(str, codes))


def test_zero_shot_class_names_are_mteb_s_candidate_texts_in_label_order(tmp_path):
    from datasets import Audio, ClassLabel

    labels = [7, 0, 3, 3, 1]
    folder = hub_copy(tmp_path / "ravdess", {"default": {"train": {"audio": clips(5), "labels": labels}}},
                      {"default": {"audio": Audio(), "labels": ClassLabel(names=RAVDESS_CLASSES)}})
    dataset = loaded("RavdessZeroshot", folder)
    texts = import_mteb("test").get_task("RavdessZeroshot").get_candidate_labels()
    assert dataset.class_names == texts and len(texts) == len(RAVDESS_CLASSES)
    assert dataset.items["label"].tolist() == [texts[label] for label in labels]
    assert compose_config("dataset=mteb", "dataset.task_name=RavdessZeroshot").dataset.prompts == ["{}"]


FSD_SOUNDS = {"train": [["Bark"], ["Bark", "Meow"], ["Meow"]], "test": [["Meow", "Bark"], ["Bark"]]}


def fsd_copy(folder: Path, sounds: dict[str, list[list[str]]] = FSD_SOUNDS) -> Path:
    """FSD2019Kaggle's two subsets (curated, noisy), each with these train and test label sets (distinct clips)."""
    from datasets import Audio, Sequence, Value

    configs = {subset: {split: {"audio": clips(len(rows), 1000 * n + 100 * k), "sound": rows}
                        for k, (split, rows) in enumerate(sounds.items())}
               for n, subset in enumerate(("curated", "noisy"))}
    features = {subset: {"audio": Audio(), "sound": Sequence(Value("string"))} for subset in configs}
    return hub_copy(folder, configs, features)


def test_multilabel_items_carry_label_sets_of_both_splits_of_every_subset(tmp_path):
    dataset = loaded("FSD2019Kaggle", fsd_copy(tmp_path / "fsd"))
    assert dataset.task == "multilabel" and dataset.class_names == ["Bark", "Meow"]
    assert [list(labels) for labels in dataset.items["labels"]] == (FSD_SOUNDS["train"] + FSD_SOUNDS["test"]) * 2
    assert dataset.items["fold"].tolist() == (["train"] * 3 + ["test"] * 2) * 2
    assert dataset.items["item_id"].tolist()[:4] == ["curated/train/0", "curated/train/1", "curated/train/2",
                                                      "curated/test/0"]
    assert dataset.items["hf_subset"].tolist() == ["curated"] * 5 + ["noisy"] * 5


@pytest.mark.slow  # mteb.get_benchmark: 5 s
def test_a_benchmark_s_task_keeps_the_subsets_the_benchmark_chose(tmp_path):
    folder = fsd_copy(tmp_path / "fsd")
    dataset = loaded("FSD2019Kaggle", folder, benchmark="MAEB(v1)")
    assert set(dataset.items["hf_subset"]) == {"curated"} and len(dataset) == 5
    assert dataset.items["item_id"].tolist()[0] == "train/0"  # one subset: ids without it
    with pytest.raises(UserError, match="has no subset 'loud'.*curated, noisy"):
        loaded("FSD2019Kaggle", folder, hf_subsets=["loud"])


def clotho_copy(folder: Path) -> tuple[Path, list[list[str]]]:
    """mteb/Clotho's columns: `text` holds a clip's captions joined by ". " (mteb splits it at "."; a final period
    leaves it a blank text), `raw_text` the list."""
    from datasets import Audio, Sequence, Value

    captions = [[f"clip {row} caption {n}" for n in range(3)] for row in range(4)]
    texts = [". ".join(row) + ("." if number == 0 else "") for number, row in enumerate(captions)]
    columns = {"index": [f"c{row}" for row in range(4)], "audio": clips(4), "text": texts, "raw_text": captions}
    features = {"index": Value("string"), "audio": Audio(), "text": Value("string"),
                "raw_text": Sequence(Value("string"))}
    return hub_copy(folder, {"default": {"test": columns}}, {"default": features}), captions


@pytest.mark.parametrize("task_name", ["ClothoT2ARetrieval", "ClothoA2TRetrieval"])
def test_retrieval_items_are_clips_with_the_texts_mteb_s_qrels_relate_to_them(tmp_path, task_name):
    folder, captions = clotho_copy(tmp_path / "clotho")
    dataset = loaded(task_name, folder)
    assert task_kind(task_name) == "retrieval" == dataset.task
    split = [text.split(".") for text in (". ".join(row) for row in captions)]  # as mteb reads them
    assert dataset.items["item_id"].tolist() == [f"c{row}" for row in range(4)]
    assert [list(texts) for texts in dataset.items["captions"]] == split
    assert [list(texts) for texts in dataset.items["caption_texts"]] == [split[0] + [""], *split[1:]]
    assert [len(ids) for ids in dataset.items["caption_ids"]] == [4, 3, 3, 3]
    assert clip_bytes(dataset, 2) == wav(2)["bytes"]


def vehicles_copy(folder: Path, labels: list[str]) -> Path:
    """VehicleSoundClustering's repository: a test split of clips and their text labels."""
    from datasets import Audio, Value

    return hub_copy(folder, {"default": {"test": {"audio": clips(len(labels)), "label": labels}}},
                    {"default": {"audio": Audio(), "label": Value("string")}})


VEHICLES_HUB_PATH = "mteb/Vehicle_sounds_classification_dataset"


def test_clustering_items_are_labelled_clips_of_the_eval_split(tmp_path):
    labels = ["bus", "car", "bus", "truck"]
    dataset = loaded("VehicleSoundClustering", vehicles_copy(tmp_path / "vehicles", labels))
    assert dataset.task == "clustering" and dataset.class_names == ["bus", "car", "truck"]
    assert dataset.items["label"].tolist() == labels


def test_pair_items_are_both_clips_of_each_pair_in_order(tmp_path):
    from datasets import Audio, Value

    folder = hub_copy(tmp_path / "pairs", {"default": {"test": {"audio1": clips(3), "audio2": clips(3, 100),
                                                                "label": [1, 0, 1]}}},
                      {"default": {"audio1": Audio(), "audio2": Audio(), "label": Value("int64")}})
    dataset = loaded("CREMADPairClassification", folder)
    items = dataset.items
    assert dataset.task == "pair_classification" and dataset.class_names == ["0", "1"]
    assert items["item_id"].tolist() == [f"test/{pair}:{side}" for pair in range(3) for side in (1, 2)]
    assert items["pair_id"].tolist() == [f"test/{pair}" for pair in range(3) for _ in (1, 2)]
    assert items["pair_side"].tolist() == ["1", "2"] * 3 and items["label"].tolist() == ["1", "1", "0", "0", "1", "1"]
    assert [clip_bytes(dataset, row) for row in (2, 3)] == [wav(1)["bytes"], wav(101)["bytes"]]


def rerank_copy(folder: Path, queries: int = 2, documents: int = 3) -> Path:
    """A reranking repository (corpus, queries, qrels as `default`, top_ranked): query i's positive is document
    (i + 1) mod n, and query 1 also has document 2 (when there are more than two); every query ranks the first two
    documents and its positives."""
    from datasets import Audio, Sequence, Value

    docs = [f"d{row}" for row in range(documents)]
    positives = {f"q{row}": [docs[(row + 1) % documents]] for row in range(queries)}
    positives["q1"] = [docs[0], docs[2]] if documents > 2 else positives["q1"]
    pairs = [(query, doc) for query, found in positives.items() for doc in found]
    features = {"corpus": {"id": Value("string"), "audio": Audio()},
                "queries": {"id": Value("string"), "audio": Audio()},
                "default": {"query-id": Value("string"), "corpus-id": Value("string"), "score": Value("int64")},
                "top_ranked": {"query-id": Value("string"), "corpus-ids": Sequence(Value("string"))}}
    configs = {"corpus": {"test": {"id": docs, "audio": clips(documents)}},
               "queries": {"test": {"id": list(positives), "audio": clips(queries, 50)}},
               "default": {"test": {"query-id": [q for q, _ in pairs], "corpus-id": [d for _, d in pairs],
                                    "score": [1] * len(pairs)}},
               "top_ranked": {"test": {"query-id": list(positives),
                                       "corpus-ids": [list(dict.fromkeys(docs[:2] + found))
                                                      for found in positives.values()]}}}
    return hub_copy(folder, configs, features)


def test_reranking_items_are_queries_with_positives_and_candidates_then_documents(tmp_path):
    dataset = loaded("GTZANAudioReranking", rerank_copy(tmp_path / "rerank"))
    items = dataset.items.set_index("item_id")
    assert dataset.task == "reranking"
    assert dataset.items["item_id"].tolist() == ["query:q0", "query:q1", "d0", "d1", "d2"]
    assert items.loc["query:q1", "positives"].split("|") == ["d0", "d2"]
    assert items.loc["query:q0", "candidates"] == "d0|d1" and items.loc["d1", "role"] == "document"
    assert items.loc["query:q1", "candidates"] == "d0|d1|d2"
    assert [clip_bytes(dataset, row) for row in (1, 4)] == [wav(51)["bytes"], wav(2)["bytes"]]


def test_a_task_of_another_kind_or_an_unknown_name_is_one_line():
    with pytest.raises(TaskUnavailable, match="JamAltArtistA2ARetrieval .* a kind zsa-eval does not evaluate.*"
                                        "AudioClassification"):
        task_kind("JamAltArtistA2ARetrieval")
    with pytest.raises(UserError, match=r"no task 'CREMA_DD' \(did you mean CREMA_D"):
        task_kind("CREMA_DD")
    with pytest.raises(UserError, match="dataset.task_name=<mteb task name>"):
        task_kind(None)


def test_without_the_hub_or_a_copy_the_load_is_one_line_naming_the_repository(hub_unreachable):
    revision = import_mteb("test").get_task("CREMA_D").metadata.dataset["revision"]
    with pytest.raises(TaskUnavailable, match=f"needs mteb/crema-d@{revision} from the Hugging Face Hub.*dataset.path"):
        load_mteb_task(name="CREMA_D", task_name="CREMA_D")


def test_a_mirror_holding_the_task_s_hub_path_is_read_and_a_missing_path_is_one_line(tmp_path):
    vehicles_copy(tmp_path / "mirror" / VEHICLES_HUB_PATH, ["bus", "car"])
    dataset = load_mteb_task(name="v", task_name="VehicleSoundClustering", mirror=str(tmp_path / "mirror"))
    assert dataset.source == str((tmp_path / "mirror" / VEHICLES_HUB_PATH).resolve()) and len(dataset) == 2
    with pytest.raises(UserError, match="is not a directory"):
        loaded("VehicleSoundClustering", tmp_path / "nowhere")


@pytest.mark.slow  # a sweep with one run of the tiny model
def test_suite_maeb_runs_the_tasks_whose_data_are_here_and_skips_the_others_in_one_line_each(
        monkeypatch, capsys, tmp_path, hub_unreachable):
    mirror = tmp_path / "mirror"
    vehicles_copy(mirror / VEHICLES_HUB_PATH, ["bus", "car", "truck"] * 2)  # one MAEB task's copy
    code, stdout, stderr = run_cli(
        monkeypatch, capsys, "-m", "suite=maeb", "model=tiny_random", "protocol=zeroshot", f"dataset.mirror={mirror}",
        "dataset.task_name=VehicleSoundClustering,CREMA_D,JamAltArtistA2ARetrieval",
        f"results_dir={tmp_path / 'results'}", f"cache_dir={tmp_path / 'cache'}",
        f"hydra.sweep.dir={tmp_path / 'sweep'}")
    assert code == 0, stderr
    assert stdout.count("VehicleSoundClustering | tiny_random | clustering: V-measure") == 1
    skipped = [line for line in stderr.splitlines() if " skipped: " in line]
    assert [line.split(" skipped: ")[0] for line in skipped] == ["zsa-eval: job 1", "zsa-eval: job 2"]
    assert "mteb task CREMA_D needs mteb/crema-d@" in skipped[0] and "nor in dataset.mirror" in skipped[0]
    assert "JamAltArtistA2ARetrieval (Any2AnyRetrieval, a2a" in skipped[1]
    metrics = json.loads(next((tmp_path / "results" / "VehicleSoundClustering").rglob("metrics.json")).read_text())
    identity = metrics["identity"]
    assert metrics["dataset"] == identity["dataset"] == "VehicleSoundClustering"
    assert identity["dataset_source"] == str((mirror / VEHICLES_HUB_PATH).resolve())
    assert identity["selection"]["benchmark"] == "MAEB(v1)"


def catalog() -> dict[str, dict]:
    return {path.stem: yaml.safe_load(path.read_text()) for path in sorted(Path(CONFIG_DIR, "dataset").glob("*.yaml"))}


def test_every_catalog_mteb_task_exists_in_mteb_and_is_of_its_kind():
    mteb = import_mteb("test")
    named = {(dataset, kind, task) for dataset, config in catalog().items()
             for kind, task in (config.get("mteb_tasks") or {}).items()}
    assert len(named) >= 10
    assert {(dataset, kind, task) for dataset, kind, task in named
            if kind not in TASK_OF_KIND or mteb_kind(mteb.get_task(task).metadata) != kind} == set()


@pytest.mark.slow  # mteb.get_benchmark: 5 s
def test_suite_maeb_lists_mteb_s_maeb_v1_tasks():
    mteb = import_mteb("test")
    suite = yaml.safe_load(Path(CONFIG_DIR, "suite", "maeb.yaml").read_text())
    params = suite["hydra"]["sweeper"]["params"]
    listed = [name.strip() for name in params["dataset.task_name"].split(",")]
    composed = compose_config("suite=maeb", f"dataset.task_name={listed[0]}")
    assert (composed.dataset._target_, composed.dataset.benchmark, composed.protocol.name) == (
        "zsa_eval.data.load_mteb_task", "MAEB(v1)", "mteb")
    assert sorted(listed) == sorted(task.metadata.name for task in mteb.get_benchmark("MAEB(v1)").tasks)
    assert len(listed) == len(set(listed)) == 30


def loaded_clip_embeddings(run_dir: Path, dataset, family) -> SavedEmbeddings:
    """The run's saved embeddings, found by the samples of the loaded dataset's clips they were made from."""
    key_of_item = {item: samples_key(sf.read(io.BytesIO(dataset.clips[row]), dtype="float32")[0])
                   for row, item in enumerate(dataset.items["item_id"])}
    saved = pd.read_csv(run_dir / "embeddings" / "audio_items.csv")
    vectors = np.load(run_dir / "embeddings" / "audio.npy")
    return SavedEmbeddings({key_of_item[item]: vector for item, vector in zip(saved["item_id"], vectors)}, family,
                           samples_key)


def samples_key(samples: np.ndarray) -> bytes:
    """A clip's identity: its first samples, rounded (the test's clips are distinct noise)."""
    return np.round(np.asarray(samples, dtype=np.float64).reshape(-1)[:64], 4).tobytes()


def scores_equal(run, direct, path: str = "scores") -> list[str]:
    """Where two mteb score trees differ (numbers beyond 1e-12), `languages` aside (task metadata)."""
    if isinstance(direct, dict):
        if set(run) != set(direct):
            return [f"{path}: keys {sorted(set(run) ^ set(direct))}"]
        return [diff for key in set(direct) - {"languages"} for diff in scores_equal(run[key], direct[key],
                                                                                     f"{path}.{key}")]
    if isinstance(direct, list):
        if len(run) != len(direct):
            return [f"{path}: lengths {len(run)} != {len(direct)}"]
        return [diff for index, pair in enumerate(zip(run, direct)) for diff in scores_equal(*pair, f"{path}[{index}]")]
    if isinstance(direct, float) and isinstance(run, float) and abs(run - direct) <= 1e-12:
        return []
    nan = [value is None or (isinstance(value, float) and math.isnan(value)) for value in (run, direct)]
    return [] if run == direct or all(nan) else [f"{path}: {run!r} != {direct!r}"]


def crema_d_copy(folder: Path) -> Path:
    from datasets import Audio, ClassLabel

    labels = [row % 6 for row in range(60)]
    return hub_copy(folder, {"default": {"train": {"audio": clips(60), "label": labels}}},
                    {"default": {"audio": Audio(), "label": ClassLabel(names=CREMA_D_CLASSES)}})


def ravdess_copy(folder: Path) -> Path:
    from datasets import Audio, ClassLabel

    return hub_copy(folder, {"default": {"train": {"audio": clips(16), "labels": [row % 8 for row in range(16)]}}},
                    {"default": {"audio": Audio(), "labels": ClassLabel(names=RAVDESS_CLASSES)}})


def pairs_copy(folder: Path) -> Path:
    from datasets import Audio, Value

    return hub_copy(folder, {"default": {"test": {"audio1": clips(8), "audio2": clips(8, 100),
                                                  "label": [1, 0] * 4}}},
                    {"default": {"audio1": Audio(), "audio2": Audio(), "label": Value("int64")}})


def ages_copy(folder: Path) -> Path:
    """CommonLanguageAgeDetection: a train and a test split of age labels (text)."""
    from datasets import Audio, Value

    ages = {"train": ["teens", "thirties", "fifties"] * 10, "test": ["teens", "thirties", "fifties"] * 4}
    return hub_copy(folder, {"default": {split: {"audio": clips(len(values), 100 * n), "age": values}
                                         for n, (split, values) in enumerate(ages.items())}},
                    {"default": {"audio": Audio(), "age": Value("string")}})


LABEL_SETS = [["Bark"], ["Bark", "Meow"], ["Meow"], ["Purr"], ["Purr", "Bark"]]
COPIES = {  # a local copy per task, large enough for mteb's evaluator (8 clips per label to train on, folds)
    "CREMA_D": crema_d_copy, "CommonLanguageAgeDetection": ages_copy, "RavdessZeroshot": ravdess_copy,
    "FSD2019Kaggle": lambda folder: fsd_copy(folder, {"train": LABEL_SETS * 6, "test": LABEL_SETS * 3}),
    "VehicleSoundClustering": lambda folder: vehicles_copy(folder, ["bus", "car", "truck"] * 10),
    "CREMADPairClassification": pairs_copy, "GTZANAudioReranking": lambda folder: rerank_copy(folder, 4, 8),
    **{name: lambda folder: clotho_copy(folder)[0] for name in ("ClothoT2ARetrieval", "ClothoA2TRetrieval")},
}


@pytest.mark.slow  # a run of the tiny model, then mteb.evaluate, per task
@pytest.mark.parametrize("task_name", list(COPIES))
def test_protocol_mteb_on_dataset_mteb_equals_mteb_evaluate_on_the_task_mteb_loads_itself(
        task_name, tiny_model, tmp_path, monkeypatch, capsys, hub_unreachable):
    """The items dataset=mteb makes are the data mteb evaluates: protocol=mteb (its evaluator on zsa-eval's item
    table) equals mteb.evaluate of the task loaded by mteb from the same copy, every score."""
    mteb = import_mteb("test")
    folder, run_dir = COPIES[task_name](tmp_path / "copy"), tmp_path / "run"
    code, _, stderr = run_cli(monkeypatch, capsys, "dataset=mteb", f"dataset.task_name={task_name}",
                              f"dataset.path={folder}", "protocol=mteb", "model=tiny_random", "save_embeddings=true",
                              f"output_dir={run_dir}")
    assert code == 0, stderr
    metrics = json.loads((run_dir / "metrics.json").read_text())
    task = mteb.get_task(task_name)
    task.metadata = task.metadata.model_copy(update={"dataset": {**task.metadata.dataset, "path": str(folder)}})
    model = loaded_clip_embeddings(run_dir, loaded(task_name, folder), tiny_model.family)
    direct = mteb.evaluate(model, task, cache=None, overwrite_strategy="always", co2_tracker=False,
                           show_progress_bar=False, encode_kwargs={"batch_size": 4}).task_results[0].scores
    assert metrics["mteb_task"] == task_name
    assert scores_equal(metrics["mteb_scores"], direct) == []
