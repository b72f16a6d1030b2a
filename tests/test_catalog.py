"""The dataset catalog (conf/dataset/*.yaml on the Hub): each config runs end to end on a local copy of its Hub
schema (the same columns and feature types, a few short clips) through the Hub code path, `dataset.hub_id=<dir>`."""

import io
import json
import re
from dataclasses import dataclass, replace
from pathlib import Path

import datasets
import pandas as pd
import pytest
import soundfile as sf
from datasets import Audio, ClassLabel, Features, Value, Video
from omegaconf import OmegaConf

from conftest import compose_config, run_cli, tone
from zsa_eval import data
from zsa_eval.config import checked, meanings
from zsa_eval.errors import UserError
from zsa_eval.run import loader_config, run

REPO = Path(__file__).resolve().parent.parent
GTZAN_GENRES = ["blues", "classical", "country", "disco", "hiphop", "jazz", "metal", "pop", "reggae", "rock"]
RAVDESS_EMOTIONS = ["neutral", "calm", "happy", "sad", "angry", "fearful", "disgust", "surprised"]
GTZAN_UPLOAD = "/home/sanchit/.cache/datasets/downloads/extracted/5022b0984afa/genres"  # where its `file` paths lie
UNPINNED = {"gtzan", "fsd50k", "audiocaps"}  # copies mteb does not use: no commit of theirs is known here


@dataclass(frozen=True)
class HubCopy:
    """A catalog config's Hub schema (from its dataset card or the code that built it), rows without their audio,
    and what a run on them must show: item ids in order, class names (sorted), candidate labels, prompts, folds."""

    split: str
    features: Features
    rows: list[dict]
    item_ids: list[str]
    labels: list[str]
    candidate_labels: list[str]
    prompts: list[str]
    folds: list[int] | None = None


CATALOG = {
    "esc50": HubCopy(  # ashraq/esc50
        "train",
        Features({"filename": Value("string"), "fold": Value("int64"), "target": Value("int64"),
                  "category": Value("string"), "esc10": Value("bool"), "src_file": Value("int64"),
                  "take": Value("string"), "audio": Audio(sampling_rate=44100)}),
        [{"filename": "1-100-A-0.wav", "fold": 1, "target": 0, "category": "dog", "esc10": True, "src_file": 100,
          "take": "A"},
         {"filename": "2-200-A-14.wav", "fold": 2, "target": 14, "category": "chirping_birds", "esc10": True,
          "src_file": 200, "take": "A"},
         {"filename": "2-300-B-36.wav", "fold": 2, "target": 36, "category": "vacuum_cleaner", "esc10": False,
          "src_file": 300, "take": "B"}],
        ["1-100-A-0.wav", "2-200-A-14.wav", "2-300-B-36.wav"],
        ["chirping_birds", "dog", "vacuum_cleaner"], ["chirping birds", "dog", "vacuum cleaner"],
        ["This is a sound of {}."], folds=[1, 2]),
    "us8k": HubCopy(  # danavery/urbansound8K at 8aa9177
        "train",
        Features({"audio": Audio(), "slice_file_name": Value("string"), "fsID": Value("int64"),
                  "start": Value("float64"), "end": Value("float64"), "salience": Value("int64"),
                  "fold": Value("int64"), "classID": Value("int64"), "class": Value("string")}),
        [{"slice_file_name": "100032-3-0-0.wav", "fsID": 100032, "start": 0.0, "end": 0.3, "salience": 1,
          "fold": 5, "classID": 3, "class": "dog_bark"},
         {"slice_file_name": "100263-5-0-1.wav", "fsID": 100263, "start": 1.0, "end": 1.5, "salience": 2,
          "fold": 10, "classID": 5, "class": "engine_idling"},
         {"slice_file_name": "100648-3-0-0.wav", "fsID": 100648, "start": 0.0, "end": 0.5, "salience": 1,
          "fold": 10, "classID": 3, "class": "dog_bark"}],
        ["100032-3-0-0.wav", "100263-5-0-1.wav", "100648-3-0-0.wav"],
        ["dog bark", "engine idling"], ["dog bark", "engine idling"], ["This is a sound of {}."], folds=[5, 10]),
    "gtzan": HubCopy(  # sanchit-gandhi/gtzan: `file` holds the uploader's cache paths
        "train",
        Features({"file": Value("string"), "audio": Audio(sampling_rate=32000),
                  "genre": ClassLabel(names=GTZAN_GENRES)}),
        [{"file": f"{GTZAN_UPLOAD}/hiphop/hiphop.00001.wav", "genre": 4},
         {"file": f"{GTZAN_UPLOAD}/blues/blues.00002.wav", "genre": 0},
         {"file": f"{GTZAN_UPLOAD}/hiphop/hiphop.00003.wav", "genre": 4}],
        ["hiphop.00001.wav", "blues.00002.wav", "hiphop.00003.wav"],
        ["blues", "hip hop"], ["blues", "hip hop"], ["This audio is a {} song."]),
    # mteb/SpeechCommandsZeroshotv0.02, as mteb's push_dataset_to_hub wrote it: audio, and label as plain integers
    # 0-9 in mteb's candidate order (Yes, No, Up, Down, Left, Right, On, Off, Stop, Go)
    "speech_commands": HubCopy(
        "test",
        Features({"audio": Audio(sampling_rate=16000), "label": Value("int64")}),
        [{"label": 0}, {"label": 8}, {"label": 6}],
        ["0", "1", "2"], ["on", "stop", "yes"], ["on", "stop", "yes"], ["A person saying {}."]),
    "ravdess": HubCopy(  # mteb/RavdessZeroshot (narad/ravdess's features)
        "train",
        Features({"audio": Audio(sampling_rate=48000), "text": Value("string"),
                  "labels": ClassLabel(names=RAVDESS_EMOTIONS), "emotion_name": Value("string"),
                  "speaker_id": Value("string"), "speaker_gender": Value("string")}),
        [{"text": "Kids are talking by the door", "labels": 6, "emotion_name": "disgust", "speaker_id": "01",
          "speaker_gender": "male"},
         {"text": "Dogs are sitting by the door", "labels": 1, "emotion_name": "calm", "speaker_id": "02",
          "speaker_gender": "female"},
         {"text": "Kids are talking by the door", "labels": 6, "emotion_name": "disgust", "speaker_id": "02",
          "speaker_gender": "female"}],
        ["0", "1", "2"], ["calm", "disgusted"], ["calm", "disgusted"], ["This person is feeling {}."]),
    "crema_d": HubCopy(  # mteb/crema-d
        "train",
        Features({"audio": Audio(sampling_rate=16000),
                  "label": ClassLabel(names=["Anger", "Disgust", "Fear", "Happy", "Neutral", "Sad"])}),
        [{"label": 0}, {"label": 5}, {"label": 3}],
        ["0", "1", "2"], ["angry", "happy", "sad"], ["angry", "happy", "sad"], ["This person is feeling {}."]),
    "vocalsound": HubCopy(  # mteb/vocalsound (lmms-lab/vocalsound's features)
        "test",
        Features({"audio": Audio(sampling_rate=16000), "spk_id": Value("string"), "answer": Value("string"),
                  "age_group": Value("int64")}),
        [{"spk_id": "f0003", "answer": "Throat clearing", "age_group": 1},
         {"spk_id": "m0101", "answer": "Laughter", "age_group": 2},
         {"spk_id": "f0003", "answer": "Sniff", "age_group": 1}],
        ["0", "1", "2"], ["laughter", "sniff", "throat clearing"], ["laughter", "sniff", "throat clearing"],
        ["This is a sound of {}."]),
    "nsynth": HubCopy(  # mteb/nsynth-mini (NSynth's integer instrument_source)
        "test",
        Features({"audio": Audio(sampling_rate=16000), "note_str": Value("string"), "pitch": Value("int64"),
                  "instrument_source": Value("int64"), "instrument_family": Value("int64")}),
        [{"note_str": "guitar_acoustic_010-060-050", "pitch": 60, "instrument_source": 0, "instrument_family": 3},
         {"note_str": "bass_synthetic_033-050-100", "pitch": 50, "instrument_source": 2, "instrument_family": 0},
         {"note_str": "organ_electronic_001-070-075", "pitch": 70, "instrument_source": 1, "instrument_family": 6}],
        ["0", "1", "2"], ["a synthesizer", "an acoustic instrument", "an electronic instrument"],
        ["a synthesizer", "an acoustic instrument", "an electronic instrument"],
        ["This is a musical note played on {}."]),
    "vggsound": HubCopy(  # mteb/VGGSound: {video, audio, label}
        "test",
        Features({"video": Video(), "audio": Audio(sampling_rate=16000),
                  "label": ClassLabel(names=["church bell ringing", "dog barking", "playing piano"])}),
        [{"video": {"bytes": b"\0" * 64, "path": "a.mp4"}, "label": 1},
         {"video": {"bytes": b"\0" * 64, "path": "b.mp4"}, "label": 2},
         {"video": {"bytes": b"\0" * 64, "path": "c.mp4"}, "label": 1}],
        ["0", "1", "2"], ["dog barking", "playing piano"], ["dog barking", "playing piano"],
        ["This is a sound of {}."]),
}


def wav_bytes(frequency: float) -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, tone(frequency, sample_rate=16000, seconds=0.5), 16000, format="WAV")
    return buffer.getvalue()


def write_hub_copy(root: Path, copy: HubCopy) -> Path:
    """`copy` as a Hub dataset folder (data/<split>-00000-of-00001.parquet, features kept in the parquet
    metadata), read by `datasets.load_dataset(root)` as it reads the downloaded Hub dataset."""
    rows = [{**row, "audio": {"bytes": wav_bytes(300.0 * (index + 1)), "path": f"{index}.wav"}}
            for index, row in enumerate(copy.rows)]
    table = {column: [row[column] for row in rows] for column in copy.features}
    (root / "data").mkdir(parents=True)
    datasets.Dataset.from_dict(table, features=copy.features).to_parquet(
        root / "data" / f"{copy.split}-00000-of-00001.parquet")
    return root


def config_file(name: str) -> Path:
    return REPO / "conf" / "dataset" / f"{name}.yaml"


def hub_config_files() -> list[Path]:
    return sorted(path for path in (REPO / "conf" / "dataset").glob("*.yaml") if "load_hub_dataset" in path.read_text())


def test_the_catalog_is_every_hub_config():
    """Each Hub dataset config has a local copy of its schema here (a new catalog file needs one); the retrieval
    ones (clotho, audiocaps) have theirs in test_retrieval.py, the multi-label fsd50k in test_multilabel.py."""
    assert {path.stem for path in hub_config_files()} == set(CATALOG) | {"clotho", "audiocaps", "fsd50k"}


def test_every_catalog_hub_config_pins_a_revision_unless_its_file_says_why_not():
    revisions = {path.stem: OmegaConf.load(path).revision for path in hub_config_files()}
    documented = {path.stem for path in hub_config_files() if meanings(path)["revision"].startswith("unpinned:")}
    assert documented == UNPINNED and all(revisions[name] is None for name in UNPINNED)
    pinned = {name: revision for name, revision in revisions.items() if name not in UNPINNED}
    assert all(re.fullmatch(r"[0-9a-f]{40}", str(revision)) for revision in pinned.values()), pinned
    assert checked(compose_config("dataset=esc50", "dataset.revision=null")).dataset.revision is None


def test_every_pinned_revision_says_whose_pin_it_is():
    """A pin's comment names the mteb version that pins it, or the published figures it is the data of (ESC-50 and
    UrbanSound8K: the copies MTEB's published results read, which mteb itself has since replaced)."""
    for path in hub_config_files():
        if path.stem not in UNPINNED:
            meaning = meanings(path)["revision"]
            assert re.search(r"mteb \d+\.\d+\.\d+|of MTEB's published figures", meaning), (path.stem, meaning)


@pytest.mark.parametrize("name", sorted(CATALOG))
def test_catalog_config_runs_on_its_hub_schema(name, tiny_model_dir, hub_unreachable, tmp_path):
    copy = CATALOG[name]
    hub_copy = write_hub_copy(tmp_path / "hub", copy)
    metrics = run(compose_config(f"dataset={name}", f"dataset.hub_id={hub_copy}", "model=tiny_random",
                                 f"output_dir={tmp_path / 'run'}", f"results_dir={tmp_path / 'results'}"))
    assert metrics["template"] == "auto" and metrics["prompts"] == copy.prompts
    assert metrics["identity"]["prompts"] == copy.prompts and metrics["identity"]["template"] == "auto"
    assert metrics["labels"] == copy.labels and metrics["candidate_labels"] == copy.candidate_labels
    assert metrics["n_items"] == metrics["n_evaluated"] == len(copy.rows) and metrics["n_skipped"] == 0
    # the config's pinned revision (if any) names a Hub commit; a local copy has none, and none is recorded
    assert metrics["config"]["dataset"]["revision"] == OmegaConf.load(config_file(name)).revision
    assert metrics["identity"]["dataset_revision"] is None
    predictions = pd.read_csv(tmp_path / "run" / "predictions.csv", dtype={"item_id": str})
    assert predictions["item_id"].tolist() == copy.item_ids
    # by definition: chance is 1/classes; with at most 5 classes the top-k list holds every class
    assert metrics["n_classes"] == len(copy.labels)
    assert metrics["chance_accuracy"] == pytest.approx(1 / len(copy.labels))
    assert metrics["top_k"] == len(copy.labels) and metrics["top_k_accuracy"] == 1.0
    assert metrics["accuracy"] == pytest.approx((predictions["true_label"] == predictions["predicted_label"]).mean())
    per_fold = tmp_path / "run" / "per_fold.csv"
    assert per_fold.is_file() == (copy.folds is not None)
    if copy.folds is not None:
        folds = pd.read_csv(per_fold, dtype={"fold": str})["fold"]
        assert sorted(int(fold) for fold in folds if fold.isdigit()) == copy.folds


def hub_loader_keys(*overrides: str) -> dict:
    """The keys load_hub_dataset takes, from the composed and checked config."""
    dataset = loader_config(checked(compose_config(*overrides)).dataset)
    return {key: value for key, value in dataset.items() if key != "_target_"}


def test_folds_select_items_of_a_catalog_dataset(hub_unreachable, tmp_path):
    hub_copy = write_hub_copy(tmp_path / "hub", CATALOG["us8k"])
    fold_ten = data.load_hub_dataset(**hub_loader_keys("dataset=us8k", f"dataset.hub_id={hub_copy}",
                                                       "dataset.folds=[10]"))
    assert fold_ten.items["item_id"].tolist() == ["100263-5-0-1.wav", "100648-3-0-0.wav"]
    assert fold_ten.class_names == ["dog bark", "engine idling"] and set(fold_ten.items["fold"]) == {10}


def test_gtzan_items_are_named_by_file_name_and_shared_names_are_refused(hub_unreachable, tmp_path):
    """GTZAN's `file` holds the uploader's absolute cache paths; two paths with one file name must not merge."""
    rows = [{"file": "/a/genres/blues/blues.00000.wav", "genre": 0},
            {"file": "/b/genres/blues/blues.00000.wav", "genre": 0},
            {"file": "/a/genres/pop/pop.00000.wav", "genre": 7}]
    hub_copy = write_hub_copy(tmp_path / "hub", replace(CATALOG["gtzan"], rows=rows))
    with pytest.raises(UserError) as error:
        data.load_hub_dataset(**hub_loader_keys("dataset=gtzan", f"dataset.hub_id={hub_copy}"))
    assert str(error.value) == ("dataset.id_basename=true names items by the file name in 'file', but "
                                "'/a/genres/blues/blues.00000.wav' and '/b/genres/blues/blues.00000.wav' share "
                                "'blues.00000.wav': set dataset.id_basename=false to name items by the whole 'file'")
    whole = data.load_hub_dataset(**hub_loader_keys("dataset=gtzan", f"dataset.hub_id={hub_copy}",
                                                    "dataset.id_basename=false"))
    assert whole.items["item_id"].tolist() == [row["file"] for row in rows]
    with pytest.raises(UserError, match="dataset.id_basename=true names items by the file name in dataset.id_column, "
                                        "which is null: set dataset.id_column, or drop dataset.id_basename"):
        data.load_hub_dataset(**hub_loader_keys("dataset=gtzan", f"dataset.hub_id={hub_copy}",
                                                "dataset.id_column=null"))


def gated_error(raised_by: str) -> Exception:
    """What loading jp1924/AudioCaps without granted access raises: huggingface_hub's GatedRepoError (HTTP 403), or
    the DatasetNotFoundError `datasets` rewords it into."""
    import httpx2
    from huggingface_hub.errors import GatedRepoError

    if raised_by == "datasets":
        return datasets.exceptions.DatasetNotFoundError(
            "Dataset 'jp1924/AudioCaps' is a gated dataset on the Hub. Visit the dataset page at "
            "https://huggingface.co/datasets/jp1924/AudioCaps to ask for access.")
    url = "https://huggingface.co/api/datasets/jp1924/AudioCaps"
    return GatedRepoError(f"403 Client Error.\n\nCannot access gated repo for url {url}.",
                          response=httpx2.Response(403, request=httpx2.Request("GET", url)))


@pytest.mark.parametrize("raised_by", ["datasets", "huggingface_hub"])
def test_gated_audiocaps_is_one_line_naming_the_open_copy(raised_by, monkeypatch, capsys, tiny_model_dir,
                                                          hub_unreachable, tmp_path):
    def gated(*args, **kwargs):
        raise gated_error(raised_by)

    monkeypatch.setattr(datasets, "load_dataset", gated)
    code, stdout, stderr = run_cli(monkeypatch, capsys, "dataset=audiocaps", "model=tiny_random",
                                   f"output_dir={tmp_path / 'run'}")
    assert code == 2 and stdout == ""
    assert stderr == ("zsa-eval: error: dataset 'jp1924/AudioCaps' is gated on the Hugging Face Hub (its page grants "
                      "access per account): ask for access there and log in (hf auth login), or use "
                      "dataset.hub_id=OpenSound/AudioCaps (the copy mteb uses)\n")


def test_integer_codes_without_names_are_refused(hub_unreachable, tmp_path):
    """us8k's classID without its label_names would put "3" in a prompt."""
    hub_copy = write_hub_copy(tmp_path / "hub", CATALOG["us8k"])
    with pytest.raises(UserError, match=r"column 'classID' holds integer codes with no names \(3, 5\): name each "
                                        r"code in dataset.label_names"):
        data.load_hub_dataset(**hub_loader_keys("dataset=us8k", f"dataset.hub_id={hub_copy}",
                                                "dataset.label_names=null"))
    by_name = data.load_hub_dataset(**hub_loader_keys("dataset=us8k", f"dataset.hub_id={hub_copy}",
                                                      "dataset.label_names=null", "dataset.label_column=class"))
    assert by_name.class_names == ["dog_bark", "engine_idling"]


@pytest.mark.parametrize("template", ["auto", "sound_of", "ensemble"])
def test_another_template_wins_over_the_dataset_prompts(template):
    cfg = checked(compose_config("dataset=gtzan", f"template={template}"))
    expected = {"auto": ["This audio is a {} song."], "sound_of": ["This is a sound of {}."],
                "ensemble": list(OmegaConf.load(REPO / "conf" / "template" / "ensemble.yaml").prompts)}
    assert cfg.template.name == template and list(cfg.template.prompts) == expected[template]
    assert len(expected["ensemble"]) > 1


@pytest.mark.parametrize("dataset", ["synthetic", "audiofolder", "esc50_folder"])
def test_auto_falls_back_to_this_is_a_sound_of(dataset):
    cfg = checked(compose_config(f"dataset={dataset}", "dataset.path=/data"))
    assert cfg.template.name == "auto" and list(cfg.template.prompts) == ["This is a sound of {}."]


@pytest.mark.slow
def test_leaderboard_tells_auto_from_another_template(tiny_model_dir, hub_unreachable, tmp_path):
    hub_copy = write_hub_copy(tmp_path / "hub", CATALOG["gtzan"])
    results = tmp_path / "results"
    runs = {template: run(compose_config("dataset=gtzan", f"dataset.hub_id={hub_copy}", "model=tiny_random",
                                         f"template={template}", f"results_dir={results}",
                                         f"output_dir={results / template}"))
            for template in ("auto", "sound_of")}
    board = pd.read_csv(results / "leaderboard.csv")
    hashes = {template: metrics["prompts_hash"] for template, metrics in runs.items()}
    assert sorted(zip(board["template"], board["prompts"])) == sorted(hashes.items())
    assert hashes["auto"] != hashes["sound_of"]
    # the label renaming decides the candidate labels, so it is part of what identifies a run
    assert runs["auto"]["identity"]["selection"]["label_names"] == {"hiphop": "hip hop"}


@pytest.mark.parametrize("script_id, copy", [
    ("marsyas/gtzan", "dataset=gtzan (its parquet copy sanchit-gandhi/gtzan)"),
    ("google/speech_commands", "dataset=speech_commands (its parquet copy mteb/SpeechCommandsZeroshotv0.02)"),
    ("agkphysics/AudioSet", "a parquet copy of AudioSet"),
    ("narad/ravdess", "dataset=ravdess (its parquet copy mteb/RavdessZeroshot)"),
])
def test_loading_script_datasets_fail_before_the_network(script_id, copy, monkeypatch, capsys, hub_unreachable):
    """The hub_unreachable fixture fails any connection; the loader is never reached either."""
    monkeypatch.setattr(datasets, "load_dataset", lambda *args, **kwargs: pytest.fail("load_dataset was called"))
    code, stdout, stderr = run_cli(monkeypatch, capsys, "dataset=gtzan", f"dataset.hub_id={script_id}",
                                   "model=tiny_random")
    assert code == 2 and stdout == ""
    assert stderr.startswith(f"zsa-eval: error: dataset.hub_id={script_id} is built by a loading script, which the "
                             f"datasets library no longer runs: use {copy}")
    assert stderr.count("\n") == 1


def test_datasets_refusing_a_script_is_one_line(monkeypatch, capsys, hub_unreachable, tmp_path):
    """A folder (or Hub repository) with a loading script that the mapping does not know."""
    (tmp_path / "my_sounds").mkdir()
    (tmp_path / "my_sounds" / "my_sounds.py").write_text("import datasets\n")
    code, _, stderr = run_cli(monkeypatch, capsys, "dataset=esc50", f"dataset.hub_id={tmp_path / 'my_sounds'}",
                              "model=tiny_random")
    assert code == 2 and stderr.count("\n") == 1
    assert "is built by a loading script, which the datasets library no longer runs: use a parquet copy of it" in stderr


def test_readme_catalog_table_lists_every_catalog_config():
    readme = (REPO / "README.md").read_text()
    table = readme[readme.index("## Dataset catalog"):]
    for name in CATALOG:
        assert f"| `{name}` |" in table


def test_readme_example_of_adding_a_dataset_runs(monkeypatch, capsys, tiny_model_dir, hub_unreachable, tmp_path):
    """The README's one-file dataset, as written there, in a config directory of one's own."""
    readme = (REPO / "README.md").read_text()
    example = readme[readme.index("**Adding a dataset**"):]
    example = example[example.index("```yaml\n") + len("```yaml\n"):example.index("```\n", 8)]
    (tmp_path / "conf" / "dataset").mkdir(parents=True)
    (tmp_path / "conf" / "dataset" / "my_bench.yaml").write_text(example)
    hub_copy = write_hub_copy(tmp_path / "hub", HubCopy(
        "test", Features({"file": Value("string"), "audio": Audio(), "label": Value("string")}),
        [{"file": "a.wav", "label": "bird_song"}, {"file": "b.wav", "label": "dog"}], [], [], [], []))
    code, stdout, stderr = run_cli(monkeypatch, capsys, "--config-dir", str(tmp_path / "conf"), "dataset=my_bench",
                                   f"dataset.hub_id={hub_copy}", "model=tiny_random", f"output_dir={tmp_path / 'run'}")
    assert code == 0, stderr
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["labels"] == ["bird singing", "dog"] and metrics["prompts"] == ["This is a sound of {}."]
    assert metrics["template"] == "auto" and stdout.startswith("my_bench | tiny_random | auto: accuracy ")


def test_every_suite_names_datasets_that_have_configs():
    configs = {path.stem for path in (REPO / "conf" / "dataset").glob("*.yaml")}
    suites = {path.stem: OmegaConf.load(path).hydra.sweeper.params.dataset.split(",")
              for path in (REPO / "conf" / "suite").glob("*.yaml")
              if "dataset" in OmegaConf.load(path).hydra.sweeper.params}  # suite=reproduce sweeps conf/reference/
    for name, datasets_of_suite in suites.items():
        assert set(datasets_of_suite) <= configs, name
    assert set(suites["zeroshot"]) == set(CATALOG) | {"fsd50k"}  # every classification and tagging benchmark
    assert set(suites["retrieval"]) == {"clotho", "audiocaps"}
