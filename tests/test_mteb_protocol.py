"""protocol=mteb (zsa_eval.tasks.mteb_protocol, zsa_eval.tasks.mteb_kinds): mteb's own evaluation on zsa-eval's
embeddings. End to end, each test runs protocol=mteb on a local dataset of synthesized audio, then runs mteb itself
on a dataset the test builds as mteb's Hub datasets hold clips (decoded samples, not item ids), with a wrapper model
of the test's own that answers with the run's saved embeddings (found by the clip's samples) and the family's text
embeddings: every mteb score is equal. A second run of the same model and clips encodes nothing (the cache); a
mistake is one line."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
from transformers import ClapModel

from conftest import compose_config, count_encoded_clips, noise, run_cli, tone
from saved_embeddings import SavedEmbeddings
from zsa_eval.config import checked
from zsa_eval.errors import UserError
from zsa_eval.tasks.mteb_compare import compare_protocols
from zsa_eval.tasks.mteb_kinds import candidate_of_class, caption_rows, split_names

RATE = 16000
SOUNDS = {"low": 300.0, "high": 3000.0, "hiss": None}
SMALL = ["model=tiny_random", "save_embeddings=true", "protocol=mteb"]


# --- the dataset rules, without mteb ----------------------------------------------------------------------------

def test_zero_shot_classes_are_found_among_mtebs_candidate_texts():
    esc50 = ["This is a sound of dog", "This is a sound of sea_waves", "This is a sound of hand_saw"]
    assert candidate_of_class(esc50, ["hand_saw", "dog", "sea_waves"], "ESC50_Zeroshot") == \
        {"hand_saw": 2, "dog": 0, "sea_waves": 1}
    assert candidate_of_class(["Yes", "No", "Up"], ["up", "yes", "no"], "SpeechCommands") == \
        {"up": 2, "yes": 0, "no": 1}
    urban = ["This is a sound of air conditioner", "This is a sound of car horn"]
    assert candidate_of_class(urban, ["car_horn", "air_conditioner"], "UrbanSound8k") == \
        {"car_horn": 1, "air_conditioner": 0}
    with pytest.raises(UserError, match=r"mteb's ESC50_Zeroshot has no candidate label for 1 class\(es\) of this "
                                        r"dataset \('siren'\): use dataset=mteb"):
        candidate_of_class(esc50, ["dog", "siren"], "ESC50_Zeroshot")


def test_splits_come_from_the_split_column_or_folds_named_train_and_test():
    folds = pd.DataFrame({"fold": [1, 2, 1]})
    named = pd.DataFrame({"fold": ["train", "test", "train"]})
    mteb_items = pd.DataFrame({"fold": pd.NA, "split": ["test", "train"]})
    assert split_names(folds) is None
    assert split_names(named).tolist() == ["train", "test", "train"]
    assert split_names(mteb_items).tolist() == ["test", "train"]
    captions = caption_rows(pd.DataFrame({"item_id": ["a", "b"], "captions": [["one", "two"], ["three"]]}))
    assert captions.to_dict("list") == {"caption_id": ["a#0", "a#1", "b#0"], "item_id": ["a", "a", "b"],
                                        "caption": ["one", "two", "three"]}


@pytest.mark.parametrize("override, message", [
    ("protocol.kind=bogus", "protocol.kind=bogus is not valid: protocol.kind takes one of zeroshot, classification, "
                            "multilabel, retrieval_a2t, retrieval_t2a, clustering, pair_classification, reranking, or "
                            "null"),
    ("protocol.similarity=l2", "protocol.similarity=l2 is not valid: protocol.similarity takes one of auto, cosine, "
                               "dot"),
])
def test_a_bad_protocol_setting_is_one_line(override, message):
    with pytest.raises(UserError) as raised:
        checked(compose_config("dataset=synthetic", "protocol=mteb", override))
    assert str(raised.value) == message


def test_a_comparison_pairs_the_measures_two_protocols_share_and_says_why_they_differ():
    evaluator = {"class": "AbsTaskClassification", "is_cross_validation": True, "n_splits": 5, "seed": 42,
                 "samples_per_label": 8, "evaluator_model": {"class": "LogisticRegression", "max_iter": 100, "C": 1.0}}
    mteb_run = {"protocol": "mteb", "mteb_kind": "classification", "mteb_task": "ESC50", "n_evaluated": 40,
                "mteb_evaluator": evaluator, "mteb_metrics": ["accuracy", "f1"], "mteb_accuracy": 0.5, "mteb_f1": 0.25,
                "mteb_recall": 0.375}
    probe = {"protocol": "linear_probe", "protocol_label": "linear_probe", "n_evaluated": 40, "n_tested": 40,
             "accuracy": 0.75, "balanced_accuracy": 0.625, "macro_f1": 0.5, "split": {"description": "5 official folds"},
             "protocol_settings": {"c_grid": [0.1, 1.0], "max_iter": 1000}}
    comparison = compare_protocols(Path("probe"), probe, Path("mteb"), mteb_run, 1000, 0)
    assert comparison.metric_deltas[["metric", "a", "b", "delta"]].to_dict("list") == {
        "metric": ["accuracy / mteb accuracy", "balanced_accuracy / mteb recall", "macro_f1 / mteb f1"],
        "a": [0.75, 0.625, 0.5], "b": [0.5, 0.375, 0.25], "delta": [-0.25, -0.25, -0.25]}
    assert comparison.verdict().startswith("accuracy / mteb accuracy B - A = -0.2500 (0.7500 -> 0.5000)")
    assert comparison.reasons[0].endswith("zsa-eval linear_probe: 5 official folds")
    assert "(delta = B - A; no interval: mteb keeps its predictions" in comparison.markdown()
    assert "bootstrap" not in comparison.markdown()
    other_kind = mteb_run | {"mteb_kind": "zeroshot", "mteb_task": "ESC50_Zeroshot"}
    assert compare_protocols(Path("a"), mteb_run, Path("b"), other_kind, 1000, 0).metric_deltas.empty


def test_without_mteb_protocol_mteb_is_one_line_naming_the_extra(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "mteb", None)
    code, _, stderr = run_cli(monkeypatch, capsys, "dataset=synthetic", "model=tiny_random", "protocol=mteb")
    assert code == 2
    assert stderr.strip() == ("zsa-eval: error: protocol=mteb needs mteb, an optional extra: pip install "
                              "'zsa-eval[mteb]' (mteb==2.26.24)")


# --- end to end: protocol=mteb against mteb run directly ---------------------------------------------------------

def clip(name: str, take: int) -> np.ndarray:
    frequency = SOUNDS[name]
    return noise(take + 10 * list(SOUNDS).index(name), RATE) if frequency is None \
        else tone(frequency * (1 + 0.04 * take), RATE)


def write_folder(root: Path, rows: list[dict]) -> Path:
    """Audio files and a metadata.csv (each row's `audio` written to its file_name)."""
    root.mkdir(parents=True)
    for row in rows:
        sf.write(root / row["file_name"], row.pop("audio"), RATE)
    pd.DataFrame(rows).drop_duplicates().to_csv(root / "metadata.csv", index=False)
    return root


@pytest.fixture(scope="module")
def folders(tmp_path_factory) -> dict[str, Path]:
    """A classification folder with folds named train and test, a multi-label one, and captioned clips."""
    root = tmp_path_factory.mktemp("mteb_protocol")
    paired = [{"file_name": f"{name}{take}.wav", "audio": clip(name, take), "label": name,
               "fold": "train" if take < 4 else "test"} for name in SOUNDS for take in range(6)]
    sets = [("low",), ("high",), ("low", "hiss"), ("high", "hiss"), ("hiss",), ("low", "high")]
    tagged = [{"file_name": f"mix{take}.wav", "labels": ",".join(sets[take % 6]),
               "fold": "train" if take < 8 else "test",
               "audio": (sum(clip(name, take) for name in sets[take % 6]) / len(sets[take % 6])).astype(np.float32)}
              for take in range(12)]
    # unique captions: mteb breaks exact ties of retrieval scores by document id, and the test names its own
    captioned = [{"file_name": f"{name}{take}.wav", "audio": clip(name, take), "caption": caption}
                 for name in SOUNDS for take in range(3) for caption in (f"a {name} sound, take {take}",
                                                                          f"{name} number {take}")]
    return {"paired": write_folder(root / "paired", paired), "tagged": write_folder(root / "tagged", tagged),
            "captions": write_folder(root / "captions", captioned)}


def samples_key(array) -> bytes:
    return np.asarray(array, dtype=np.float32).tobytes()


def saved_embeddings(run_dir: Path, family) -> SavedEmbeddings:
    """The run's saved embeddings, found by the samples of the files they were made from."""
    items = pd.read_csv(run_dir / "embeddings" / "audio_items.csv")
    vectors = np.load(run_dir / "embeddings" / "audio.npy")
    return SavedEmbeddings({samples_key(sf.read(path, dtype="float32")[0]): vector
                            for path, vector in zip(items["path"], vectors)}, family, samples_key)


def audio_cell(path: str) -> dict:
    samples, rate = sf.read(path, dtype="float32")
    return {"array": samples, "sampling_rate": rate}


def nan_as_none(value):
    if isinstance(value, dict):
        return {key: nan_as_none(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [nan_as_none(item) for item in value]
    return None if isinstance(value, float) and math.isnan(value) else value


def direct_mteb_scores(task_name: str, dataset: dict, run_dir: Path, family) -> dict:
    """mteb.evaluate of mteb's task `task_name` on `dataset` (its `task.dataset`) with the test's own model."""
    import mteb
    task = mteb.get_task(task_name)
    task.dataset, task.data_loaded = dataset, True
    result = mteb.evaluate(saved_embeddings(run_dir, family), task, cache=None, overwrite_strategy="always",
                           co2_tracker=False, show_progress_bar=False, encode_kwargs={"batch_size": 4})
    return nan_as_none(result.task_results[0].scores)


def assert_same_scores(run: dict, direct: dict, path: str = "scores") -> None:
    """Every score equal (numbers to 1e-12), every name present in both; `languages` is the task's metadata (a task
    built for a local dataset has its template's), not a score."""
    if isinstance(direct, dict):
        assert set(run) == set(direct), path
        for key in set(direct) - {"languages"}:
            assert_same_scores(run[key], direct[key], f"{path}.{key}")
    elif isinstance(direct, list):
        assert len(run) == len(direct), path
        for index, (mine, theirs) in enumerate(zip(run, direct)):
            assert_same_scores(mine, theirs, f"{path}[{index}]")
    elif isinstance(direct, float):
        assert abs(run - direct) <= 1e-12, (path, run, direct)
    else:
        assert run == direct, (path, run, direct)


def saved_items(run_dir: Path) -> pd.DataFrame:
    return pd.read_csv(run_dir / "embeddings" / "audio_items.csv")


def run_mteb(monkeypatch, capsys, run_dir: Path, *overrides: str) -> dict:
    code, stdout, stderr = run_cli(monkeypatch, capsys, *SMALL, *overrides, f"output_dir={run_dir}")
    assert code == 0, stderr
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert stdout.startswith(f"{metrics['dataset']} | tiny_random | mteb {metrics['mteb_task']} ")
    return metrics


def classification_dataset(run_dir: Path, labels: dict[str, int], label_column: str, splits: dict | None = None):
    """mteb's dataset of a classification task: decoded clips and labels, every clip in `train` or in the split
    `splits` maps its file name to."""
    from datasets import Dataset, DatasetDict
    items = saved_items(run_dir)
    split_of = [splits[Path(path).name] if splits else "train" for path in items["path"]]
    return {"default": DatasetDict({split: Dataset.from_dict({
        "audio": [audio_cell(path) for path, side in zip(items["path"], split_of) if side == split],
        label_column: [labels[Path(path).name] for path, side in zip(items["path"], split_of) if side == split]})
        for split in dict.fromkeys(split_of)})}


@pytest.mark.slow
def test_built_zero_shot_then_cross_validation_equal_mteb_and_encode_once(tiny_model, tmp_path, monkeypatch, capsys):
    """On the synthetic clips: zero-shot with mteb's ESC-50 prompt around the class names as stored, then mteb's
    ESC50 probe (5 shuffled KFold splits) from the cache."""
    import mteb
    zero_shot = run_mteb(monkeypatch, capsys, tmp_path / "zs", "dataset=synthetic", "dataset.clips_per_class=4",
                         "protocol.kind=zeroshot")
    categories = pd.read_csv(Path(zero_shot["identity"]["dataset_source"]) / "meta" / "esc50.csv") \
        .set_index("filename")["category"]
    classes = {name: zero_shot["labels"].index(category) for name, category in categories.items()}
    prompts = [f"This is a sound of {name}" for name in zero_shot["labels"]]
    assert any("_" in prompt for prompt in prompts)  # underscores kept, as mteb's ESC-50 prompts keep them
    monkeypatch.setattr(type(mteb.get_task("ESC50_Zeroshot")), "get_candidate_labels", lambda self: prompts)
    assert_same_scores(zero_shot["mteb_scores"], direct_mteb_scores(
        "ESC50_Zeroshot", classification_dataset(tmp_path / "zs", classes, "target"), tmp_path / "zs",
        tiny_model.family))
    assert (zero_shot["task"], zero_shot["protocol"], zero_shot["mteb_main_score"], zero_shot["mteb_version"],
            zero_shot["mteb_task_built"]) == ("classification", "mteb", "accuracy", mteb.__version__, True)
    assert zero_shot["mteb_accuracy"] == zero_shot["mteb_scores"]["train"][0]["main_score"]

    encoded = count_encoded_clips(monkeypatch, ClapModel)
    probe = run_mteb(monkeypatch, capsys, tmp_path / "cv", "dataset=synthetic", "dataset.clips_per_class=4",
                     "protocol.mteb_task=ESC50")
    assert encoded == [] and probe["cache_hits"] == 20
    assert_same_scores(probe["mteb_scores"], direct_mteb_scores(
        "ESC50", classification_dataset(tmp_path / "cv", classes, "target"), tmp_path / "cv", tiny_model.family))
    evaluator = probe["mteb_evaluator"]
    assert (evaluator["class"], evaluator["is_cross_validation"], evaluator["n_splits"], evaluator["samples_per_label"],
            evaluator["evaluator_model"]["max_iter"]) == ("AbsTaskClassification", True, 5, 8, 100)
    assert len(probe["mteb_scores"]["train"][0]["scores_per_experiment"]) == 5
    assert any("ignoring the dataset's official folds" in warning for warning in probe["warnings"])
    assert (probe["main_score"], probe["protocol_label"]) == ("mteb_accuracy", "mteb ESC50")
    assert probe["similarity"] == "mteb's cosine similarity of the family's embeddings"  # auto: CLAP's


@pytest.mark.slow
def test_zero_shot_on_esc50_clips_equals_mtebs_esc50_zeroshot(esc50_folder, tiny_model, tmp_path, monkeypatch, capsys):
    """mteb's own candidate texts, each ESC-50 class matched to its own."""
    import mteb
    categories = pd.read_csv(esc50_folder / "meta" / "esc50.csv").set_index("filename")["category"]
    metrics = run_mteb(monkeypatch, capsys, tmp_path / "run", "dataset=esc50_folder", f"dataset.path={esc50_folder}",
                       "protocol.mteb_task=ESC50_Zeroshot")
    candidates = mteb.get_task("ESC50_Zeroshot").get_candidate_labels()
    targets = {name: candidates.index(f"This is a sound of {category}") for name, category in categories.items()}
    assert_same_scores(metrics["mteb_scores"], direct_mteb_scores(
        "ESC50_Zeroshot", classification_dataset(tmp_path / "run", targets, "target"), tmp_path / "run",
        tiny_model.family))


@pytest.mark.slow
def test_train_test_classification_equals_mtebs_vocalsound_evaluator_named_or_built(folders, tiny_model, tmp_path,
                                                                                     monkeypatch, capsys):
    metadata = pd.read_csv(folders["paired"] / "metadata.csv").set_index("file_name")
    dataset = ["dataset=audiofolder", f"dataset.path={folders['paired']}", "dataset.fold_column=fold"]
    for name, overrides in (("named", ["protocol.mteb_task=VocalSound"]), ("built", [])):
        metrics = run_mteb(monkeypatch, capsys, tmp_path / name, *dataset, *overrides)
        classes = {file: metrics["labels"].index(label) for file, label in metadata["label"].items()}
        direct = classification_dataset(tmp_path / name, classes, "answer", metadata["fold"].to_dict())
        assert_same_scores(metrics["mteb_scores"], direct_mteb_scores("VocalSound", direct, tmp_path / name,
                                                                      tiny_model.family))
        assert len(metrics["mteb_scores"]["test"][0]["scores_per_experiment"]) == 10
        assert not metrics["mteb_evaluator"]["is_cross_validation"]


@pytest.mark.slow
def test_multilabel_equals_mtebs_fsd50k_evaluator(folders, tiny_model, tmp_path, monkeypatch, capsys):
    from datasets import Dataset, DatasetDict
    metadata = pd.read_csv(folders["tagged"] / "metadata.csv").set_index("file_name")
    metrics = run_mteb(monkeypatch, capsys, tmp_path / "run", "dataset=audiofolder",
                       f"dataset.path={folders['tagged']}",
                       "dataset.task=multilabel", "dataset.label_column=labels", 'dataset.label_delimiter=","',
                       "dataset.fold_column=fold", "protocol.mteb_task=FSD50K")
    items = saved_items(tmp_path / "run")
    files = [Path(path).name for path in items["path"]]
    direct = {"default": DatasetDict({split: Dataset.from_dict({
        "audio": [audio_cell(path) for path, file in zip(items["path"], files) if metadata.at[file, "fold"] == split],
        "labels": [[metrics["labels"].index(label) for label in metadata.at[file, "labels"].split(",")]
                   for file in files if metadata.at[file, "fold"] == split]}) for split in ("train", "test")})}
    assert_same_scores(metrics["mteb_scores"],
                       direct_mteb_scores("FSD50K", direct, tmp_path / "run", tiny_model.family))
    assert metrics["mteb_main_score"] == "lrap"


@pytest.mark.slow
def test_retrieval_both_ways_equals_mtebs_audiocaps_evaluators(folders, tiny_model, tmp_path, monkeypatch, capsys):
    from datasets import Dataset
    metadata = pd.read_csv(folders["captions"] / "metadata.csv")
    dataset = ["dataset=captions_folder", f"dataset.path={folders['captions']}"]
    for kind, task_name in (("retrieval_a2t", "AudioCapsA2TRetrieval"), ("retrieval_t2a", "AudioCapsT2ARetrieval")):
        metrics = run_mteb(monkeypatch, capsys, tmp_path / kind, *dataset, f"protocol.kind={kind}")
        paths = saved_items(tmp_path / kind)["path"]
        clips = Dataset.from_dict({"id": [f"clip{row}" for row in range(len(paths))],
                                   "audio": [audio_cell(path) for path in paths]})
        clip_of = {Path(path).name: f"clip{row}" for row, path in enumerate(paths)}
        texts = Dataset.from_dict({"id": [f"text{row}" for row in range(len(metadata))],
                                   "text": metadata["caption"].tolist()})
        pairs = [(clip_of[file], f"text{row}") for row, file in enumerate(metadata["file_name"])]
        relevant: dict = {}
        for clip_id, text_id in pairs:
            query, document = (clip_id, text_id) if kind == "retrieval_a2t" else (text_id, clip_id)
            relevant.setdefault(query, {})[document] = 1
        queries, corpus = (clips, texts) if kind == "retrieval_a2t" else (texts, clips)
        direct = {"default": {"test": {"queries": queries, "corpus": corpus, "relevant_docs": relevant,
                                       "top_ranked": None}}}
        assert_same_scores(metrics["mteb_scores"], direct_mteb_scores(task_name, direct, tmp_path / kind,
                                                                      tiny_model.family))
        assert (metrics["mteb_task"], metrics["mteb_main_score"]) == (f"captions_folder:{kind}", "hit_rate_at_5")


@pytest.mark.slow
@pytest.mark.parametrize("overrides, message", [
    (["dataset=captions_folder", "dataset.path=PATH", "protocol.mteb_task=ESC50"],
     "zsa-eval: error: mteb's ESC50 is an mteb classification evaluation, which dataset=captions_folder (a retrieval "
     "dataset) cannot give: choose an mteb task of kind retrieval_a2t, retrieval_t2a (protocol.mteb_task=NAME, or "
     "protocol.kind)"),
    (["dataset=synthetic", "protocol.mteb_task=NoSuchTask"], "zsa-eval: error: protocol.mteb_task=NoSuchTask is not an "
                                                            "mteb 2.26.24 task"),
    (["dataset=synthetic", "protocol.mteb_task=AudioCapsT2ARetrieval"],
     "zsa-eval: error: mteb's AudioCapsT2ARetrieval is an mteb retrieval_t2a evaluation, which dataset=synthetic"),
    (["dataset=esc50_folder", "dataset.path=ESC50", "protocol.mteb_task=ESC50"],
     "zsa-eval: error: mteb 2.26.24's ESC50 evaluator failed on these clips: ValueError: pos_label=1 is not a valid "
     "label. It should be one of [0 2] (mteb's own error; more clips or classes may avoid it, debug=true shows "
     "where)"),
    (["dataset=synthetic", "protocol.mteb_task=VocalSound"],
     "zsa-eval: error: mteb's VocalSound trains on its 'train' split and tests on 'test', and this dataset's items "
     "name no splits: use dataset=mteb dataset.task_name=VocalSound, or a dataset whose folds are named train and "
     "test"),
])
def test_a_task_the_dataset_cannot_give_is_one_line(folders, esc50_folder, tiny_model_dir, overrides, message,
                                                    monkeypatch, capsys):
    """Refused before anything is embedded; mteb failing on the clips (its binary AP of a fold holding two classes
    other than 0 and 1) after."""
    overrides = [override.replace("PATH", str(folders["captions"])).replace("ESC50", str(esc50_folder))
                 if "path=" in override else override for override in overrides]
    code, _, stderr = run_cli(monkeypatch, capsys, "model=tiny_random", "protocol=mteb", *overrides)
    lines = stderr.strip().splitlines()
    assert code == 2 and lines[-1].startswith(message), stderr
    assert all(line.startswith("zsa-eval: ") for line in lines), stderr  # no traceback


@pytest.mark.slow
def test_a_catalog_datasets_mteb_figures_pass_the_checks_before_the_data(hub_unreachable, tiny_model_dir, monkeypatch,
                                                                         capsys):
    """esc50's published MTEB figures name mteb scores (mteb_accuracy) a protocol=mteb run reports: the run goes on
    to its data (here: no Hub)."""
    code, _, stderr = run_cli(monkeypatch, capsys, "dataset=esc50", "model=tiny_random", "protocol=mteb")
    assert code == 2 and "cannot load dataset 'ashraq/esc50' from the Hugging Face Hub" in stderr, stderr


@pytest.mark.slow
def test_compare_and_leaderboard_tell_mtebs_probe_from_the_official_fold_probe(tiny_model_dir, tmp_path, monkeypatch,
                                                                                capsys):
    from zsa_eval.report.board import collect_runs, leaderboard
    from zsa_eval.report.compare import compare_runs
    common = ["dataset=synthetic", "dataset.clips_per_class=4", "model=tiny_random", f"results_dir={tmp_path}"]
    code, _, stderr = run_cli(monkeypatch, capsys, *common, "protocol=linear_probe", f"output_dir={tmp_path / 'probe'}")
    assert code == 0, stderr
    encoded = count_encoded_clips(monkeypatch, ClapModel)
    code, _, stderr = run_cli(monkeypatch, capsys, *common, "protocol=mteb", f"output_dir={tmp_path / 'mteb'}")
    assert code == 0 and encoded == [], stderr  # the probe's embeddings, from the cache
    probe, mteb_run = (json.loads((tmp_path / folder / "metrics.json").read_text()) for folder in ("probe", "mteb"))
    comparison = compare_runs(tmp_path / "probe", tmp_path / "mteb")
    accuracy = comparison.metric_deltas.set_index("metric").loc["accuracy / mteb accuracy"]
    assert (accuracy["a"], accuracy["b"]) == (probe["accuracy"], mteb_run["mteb_accuracy"])
    why = " ".join(comparison.summary()["why"])
    for reason in ("5 shuffled KFold splits (seed 42) over every clip", "2 official folds", "draws 8 per label",
                   "LogisticRegression(max_iter=100, C=1.0) on the raw embeddings", "standardizes them first"):
        assert reason in why
    board = leaderboard(collect_runs(tmp_path)).set_index("protocol")
    assert board.loc["mteb synthetic:classification", "main_score"] == "mteb_accuracy"
    assert board.loc["mteb synthetic:classification", "mteb_accuracy"] == mteb_run["mteb_accuracy"]
    assert board.loc["linear_probe", "accuracy"] == probe["accuracy"]
    assert board.loc["mteb synthetic:classification", "interval"].startswith("none: mteb gives no interval")
    report = (tmp_path / "mteb" / "report.html").read_text()
    assert "mteb 2.26.24&#39;s own AbsTaskClassification evaluator" in report and "bootstrap" not in report
