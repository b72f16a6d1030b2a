import io
import socket

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from conftest import CLASS_SOUNDS, tone, unset_offline_variables
from zsa_eval import data
from zsa_eval.audio import load_clip
from zsa_eval.errors import UserError


@pytest.mark.parametrize("raw, readable", [
    ("chirping_birds", "chirping birds"), ("door_wood_knock", "door wood knock"),
    ("Vacuum-cleaner ", "Vacuum cleaner"), ("dog", "dog"), ("a__b  c", "a b c"),
])
def test_readable_label(raw, readable):
    assert data.readable_label(raw) == readable


def test_candidate_labels_refuse_collisions():
    assert data.candidate_labels(["dog", "chirping_birds"]) == ["dog", "chirping birds"]
    with pytest.raises(UserError, match="collide"):
        data.candidate_labels(["chirping_birds", "chirping-birds"])


ESC50_COLUMNS = {"label_column": "category", "fold_column": "fold", "subset_column": "esc10"}  # conf/dataset


def esc50(path, **options):
    return data.load_esc50_folder("esc50_folder", None if path is None else str(path), **{**ESC50_COLUMNS, **options})


def test_esc50_folder_items_and_classes(esc50_folder):
    dataset = esc50(esc50_folder)
    assert len(dataset) == 12
    assert dataset.class_names == sorted(CLASS_SOUNDS)
    assert list(dataset.items.columns) == ["item_id", "path", "label", "fold", "group"]
    assert dataset.items["group"].isna().all()  # no dataset.group_column
    grouped = esc50(esc50_folder, group_column="src_file")
    assert grouped.items["group"].tolist() == [str(int(name.split("-")[1])) for name in grouped.items["item_id"]]
    assert dataset.has_folds and set(dataset.items["fold"]) == {1, 2}
    assert dataset.clips[0] == str(esc50_folder / "audio" / dataset.items["item_id"][0])
    assert load_clip(dataset.clips[0], 48000).size == 48000


def test_esc50_folder_folds_subset_and_limit(esc50_folder):
    fold_one = esc50(esc50_folder, folds=[1])
    assert set(fold_one.items["fold"]) == {1} and len(fold_one) == 6
    assert [str(c) for c in fold_one.clips] == fold_one.items["path"].tolist()
    esc10 = esc50(esc50_folder, subset="esc10")
    assert esc10.class_names == ["chirping_birds", "dog"] and len(esc10) == 8
    limited = data.limit_items(esc50(esc50_folder), 2)
    assert len(limited) == 2 and len(limited.clips) == 2
    assert limited.class_names == sorted(CLASS_SOUNDS)


@pytest.mark.parametrize("call, message", [
    (lambda root: esc50(None), "needs dataset.path"),
    (lambda root: esc50(root / "nope"), "not a directory"),
    (lambda root: esc50(root / "audio"), "meta/esc50.csv"),
    (lambda root: esc50(root, label_column="kind"), "dataset.label_column"),
    (lambda root: esc50(root, folds=[7]), "folds present"),
    (lambda root: esc50(root, subset="esc20"), "subset=esc10"),
    (lambda root: data.limit_items(esc50(root), 0), "limit=0"),
])
def test_esc50_folder_mistakes_name_the_fix(esc50_folder, call, message):
    with pytest.raises(UserError, match=message):
        call(esc50_folder)


def test_audiofolder_with_class_subfolders(audiofolder):
    dataset = data.load_audiofolder("audiofolder", str(audiofolder), label_column="label")
    assert dataset.class_names == sorted(CLASS_SOUNDS)
    assert len(dataset) == 9 and not dataset.has_folds
    assert sorted(dataset.items["item_id"])[0] == "chirping_birds/0.wav"
    for item, clip in zip(dataset.items.itertuples(), dataset.clips):
        assert item.item_id.split("/")[0] == item.label and clip.endswith(item.item_id)


def test_audiofolder_with_metadata_csv(tmp_path):
    root = tmp_path / "flat"
    root.mkdir()
    rows = []
    for index, category in enumerate(["crackling_fire", "rain", "crackling_fire"]):
        sf.write(root / f"clip{index}.wav", tone(200.0 * (index + 1)), 44100)
        rows.append({"file_name": f"clip{index}.wav", "category": category, "split_fold": index % 2 + 1})
    pd.DataFrame(rows).to_csv(root / "metadata.csv", index=False)
    dataset = data.load_audiofolder("audiofolder", str(root), label_column="category", fold_column="split_fold")
    assert dataset.class_names == ["crackling_fire", "rain"]
    assert dataset.items.set_index("item_id")["label"].to_dict() == {
        "clip0.wav": "crackling_fire", "clip1.wav": "rain", "clip2.wav": "crackling_fire"}
    assert sorted(dataset.items["fold"]) == [1, 1, 2]
    with pytest.raises(UserError, match=r"one of \['category', 'file_name', 'split_fold'\]"):
        data.load_audiofolder("audiofolder", str(root), label_column="label")


def test_hub_loader_reads_encoded_audio(monkeypatch):
    """The Hub path, offline: a stand-in for ashraq/esc50 with the same columns and encoded audio bytes."""
    import datasets

    def wav_bytes(frequency):
        buffer = io.BytesIO()
        sf.write(buffer, tone(frequency), 44100, format="WAV")
        return buffer.getvalue()

    table = {
        "filename": ["1-1-A-0.wav", "2-1-A-1.wav", "1-2-A-1.wav"], "fold": [1, 2, 1], "target": [0, 1, 1],
        "category": ["dog", "chirping_birds", "chirping_birds"], "esc10": [True, False, False],
        "audio": [{"bytes": wav_bytes(f), "path": None} for f in (300.0, 3000.0, 3100.0)],
    }
    stand_in = datasets.Dataset.from_dict(table).cast_column("audio", datasets.Audio(decode=False))
    calls = []
    monkeypatch.setattr(datasets, "load_dataset", lambda *args, **kwargs: calls.append((args, kwargs)) or stand_in)
    dataset = data.load_hub_dataset("esc50", "ashraq/esc50", "train", None, "audio", "filename", folds=[1],
                                    **ESC50_COLUMNS)
    assert calls == [(("ashraq/esc50",), {"split": "train", "revision": None})]
    assert dataset.items["item_id"].tolist() == ["1-1-A-0.wav", "1-2-A-1.wav"]
    assert dataset.class_names == ["chirping_birds", "dog"]
    assert isinstance(dataset.clips[1], bytes)
    wave = load_clip(dataset.clips[1], 48000)
    peak = np.fft.rfftfreq(wave.size, 1 / 48000)[np.abs(np.fft.rfft(wave)).argmax()]
    assert peak == pytest.approx(3100.0, abs=2.0)


def network_unreachable(*args, **kwargs):
    raise OSError("Network is unreachable")


@pytest.mark.parametrize("kept, named", [
    ("HF_HUB_OFFLINE", "HF_HUB_OFFLINE=1"), ("HF_DATASETS_OFFLINE", "HF_DATASETS_OFFLINE=1"),
    ("TRANSFORMERS_OFFLINE", "TRANSFORMERS_OFFLINE=1"), (None, "huggingface_hub.constants.HF_HUB_OFFLINE=True"),
])
def test_offline_mode_not_the_network_is_named_when_a_dataset_is_not_cached(hub_unreachable, monkeypatch, kept,
                                                                            named):
    unset_offline_variables(monkeypatch, kept)
    with pytest.raises(UserError) as error:
        data.load_hub_dataset("esc50", "someone/not-cached", "test", None, "audio", None, label_column="label")
    assert str(error.value) == (
        f"cannot load dataset 'someone/not-cached' from the Hugging Face Hub: offline mode is set ({named}) and it is "
        "not in the local cache: unset offline mode to download it, or set dataset.hub_id to a local copy (a folder "
        "holding data/test-*.parquet)")


def test_an_unreachable_hub_without_offline_mode_is_named(hub_unreachable, monkeypatch):
    import datasets
    from huggingface_hub import constants

    unset_offline_variables(monkeypatch)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(socket, "create_connection", network_unreachable)
    with pytest.raises(UserError) as error:
        data.load_hub_dataset("esc50", "someone/not-cached", "test", None, "audio", None, label_column="label")
    assert str(error.value).startswith("cannot load dataset 'someone/not-cached' from the Hugging Face Hub "
                                       "(unreachable or not found) and it is not in the local cache: run once where "
                                       "the Hub is reachable")
    assert "offline mode" not in str(error.value)


def test_synthetic_dataset_is_written_once(tmp_path):
    first = data.load_synthetic("synthetic", str(tmp_path / "syn"), 4, 44100, 0.5, label_column="category")
    assert len(first) == 20 and first.class_names == sorted(["low_hum", "high_beep", "white_noise",
                                                             "rising_chirp", "clicks"])
    stamp = (tmp_path / "syn" / "meta" / "esc50.csv").stat().st_mtime_ns
    second = data.load_synthetic("synthetic", str(tmp_path / "syn"), 4, 44100, 0.5, label_column="category")
    assert (tmp_path / "syn" / "meta" / "esc50.csv").stat().st_mtime_ns == stamp
    assert second.items.equals(first.items)
    assert sf.info(second.clips[0]).samplerate == 44100


def test_synthetic_sounds_replace_only_a_folder_zsa_eval_wrote(tmp_path):
    """A user's folder given as dataset.path of dataset=synthetic is refused, never emptied; an empty folder and
    zsa-eval's own earlier sounds (other settings) are written over."""
    users = tmp_path / "my_sounds"
    (users / "dog").mkdir(parents=True)
    (users / "dog" / "bark.wav").write_bytes(b"the user's recording")
    with pytest.raises(UserError, match=r"dataset.path=.*my_sounds holds files zsa-eval did not write, and "
                                        r"dataset=synthetic writes its sounds there.*use dataset=audiofolder"):
        data.load_synthetic("synthetic", str(users), 2, 16000, 0.2, label_column="category")
    assert (users / "dog" / "bark.wav").read_bytes() == b"the user's recording" and len(list(users.iterdir())) == 1
    (tmp_path / "empty").mkdir()
    assert len(data.load_synthetic("synthetic", str(tmp_path / "empty"), 2, 16000, 0.2, label_column="category")) == 10
    again = data.load_synthetic("synthetic", str(tmp_path / "empty"), 3, 16000, 0.2, label_column="category")
    assert len(again) == 15 and len(list((tmp_path / "empty" / "audio").iterdir())) == 15
    assert [path.name for path in tmp_path.iterdir() if path.name.startswith(".")] == []  # no staging folder left
