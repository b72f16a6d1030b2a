"""Local folders of real-world files: every file evaluated, skipped or ignored with its reason; every format FFmpeg
reads; any number of classes from two up."""

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pandas as pd
import pytest
import soundfile as sf

from conftest import run_cli, tone
from zsa_eval import data
from zsa_eval.errors import UserError

# Every container/codec the issue names that this machine's FFmpeg can write (amr has no encoder in Debian's build).
FFMPEG_FORMATS = ["flac", "ogg", "mp3", "opus", "m4a", "webm", "wma", "aif", "aiff", "oga", "mka", "caf", "ac3",
                  "mp4"]
RUN_FILES = {"metrics.json", "per_class.csv", "predictions.csv", "confusion_matrix.csv", "confusion_matrix.png",
             "config.yaml", "errors.csv", "excluded.csv", "ignored_files.csv", "scores.parquet", "run.json",
             "progress.jsonl"}


def audiofolder(path: Path, **options) -> data.AudioDataset:
    return data.load_audiofolder("audiofolder", str(path), **{"label_column": "label", **options})


def write_tone(path: Path, frequency: float, seconds: float = 0.5) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, tone(frequency, 44100, seconds), 44100)
    return path


def every_file(root: Path) -> set[str]:
    """Each file entry below root (links included, not followed), as a path relative to root."""
    found = set()
    for folder, folders, files in os.walk(root):
        entries = files + [name for name in folders if os.path.islink(os.path.join(folder, name))]
        found |= {Path(folder, name).relative_to(root).as_posix() for name in entries}
    return found


@pytest.fixture
def messy_folder(tmp_path) -> Path:
    """Class folders as users have them: nested audio, split-like names, hidden files, notes, loose files,
    and symlinks of every kind (inside, outside, loops, broken)."""
    root = tmp_path / "sounds"
    outside = tmp_path / "elsewhere"
    write_tone(root / "dog" / "bark.wav", 300)
    write_tone(root / "dog" / "2024" / "night" / "howl.wav", 350)
    write_tone(root / "cat" / "test-meow.wav", 900)          # names an audiofolder would read as splits
    write_tone(root / "cat" / "train_purr.wav", 950)
    write_tone(root / "cat" / "valid.wav", 1000)
    write_tone(root / "cat" / ".meow-backup.wav", 900)        # hidden file
    write_tone(root / ".cache" / "dog" / "x.wav", 300)        # hidden folder
    write_tone(root / "loose.wav", 500)                       # audio outside any class folder
    (root / "README.txt").write_text("my sounds\n")
    (root / "cat" / "notes.xyz").write_text("not audio\n")
    write_tone(outside / "bird" / "tweet.wav", 3000)
    write_tone(outside / "far.wav", 3000)
    os.symlink(root / "dog" / "bark.wav", root / "cat" / "also-bark.wav")    # file link inside: its own item
    os.symlink(outside / "far.wav", root / "dog" / "far.wav")               # file link leaving the folder
    os.symlink(outside / "bird", root / "bird")                             # folder link leaving the folder
    os.symlink(root / "dog", root / "dog" / "2024" / "again")               # folder link inside (a loop)
    os.symlink(root / "cat" / "gone.wav", root / "cat" / "broken.wav")      # broken link
    os.symlink(outside, outside / "bird" / "up")                            # loop outside (when followed)
    return root


def test_every_file_of_a_messy_folder_is_an_item_or_ignored_with_its_reason(messy_folder):
    dataset = audiofolder(messy_folder)
    items = dataset.items.set_index("item_id")["label"].to_dict()
    assert items == {"cat/also-bark.wav": "cat", "cat/broken.wav": "cat", "cat/test-meow.wav": "cat",
                     "cat/train_purr.wav": "cat", "cat/valid.wav": "cat", "dog/2024/night/howl.wav": "dog",
                     "dog/bark.wav": "dog"}
    ignored = dict(zip(dataset.ignored_files["path"], dataset.ignored_files["reason"]))
    assert ignored == {
        ".cache/dog/x.wav": "inside hidden folder .cache",
        "README.txt": "not audio (.txt; audio extensions are set by dataset.extensions)",
        "bird": f"symlink to {messy_folder.parent / 'elsewhere' / 'bird'}, outside dataset.path "
                "(dataset.follow_symlinks=true follows it)",
        "cat/.meow-backup.wav": "hidden file",
        "cat/notes.xyz": "not audio (.xyz; audio extensions are set by dataset.extensions)",
        "dog/2024/again": f"symlink to folder {messy_folder / 'dog'}, whose files are listed where they are",
        "dog/far.wav": f"symlink to {messy_folder.parent / 'elsewhere' / 'far.wav'}, outside dataset.path "
                       "(dataset.follow_symlinks=true follows it)",
        "loose.wav": "audio outside any class folder (put it in <class>/)",
    }
    assert set(items) | set(ignored) == every_file(messy_folder)
    assert not set(items) & set(ignored)
    assert dataset.clips[list(items).index("cat/also-bark.wav")] == str(messy_folder / "cat" / "also-bark.wav")


def test_symlinks_out_of_the_folder_are_followed_when_asked_and_loops_end(messy_folder):
    dataset = audiofolder(messy_folder, follow_symlinks=True)
    items = dataset.items.set_index("item_id")["label"].to_dict()
    assert items["bird/tweet.wav"] == "bird" and items["dog/far.wav"] == "dog"
    assert items["bird/up/far.wav"] == "bird"  # the outside folder, reached once through bird/up
    ignored = dict(zip(dataset.ignored_files["path"], dataset.ignored_files["reason"]))
    assert ignored["bird/up/bird"].startswith("symlink loop:")
    assert dataset.class_names == ["bird", "cat", "dog"]


def test_extensions_decide_what_counts_as_audio(messy_folder):
    dataset = audiofolder(messy_folder, extensions=["XYZ", ".wav"])
    assert "cat/notes.xyz" in set(dataset.items["item_id"])
    only_flac = write_tone(messy_folder / "cat" / "purr.flac", 800)
    dataset = audiofolder(messy_folder, extensions=["flac", "wav"])
    assert only_flac.relative_to(messy_folder).as_posix() in set(dataset.items["item_id"])


def test_metadata_jsonl_lists_items_and_unlisted_audio_is_ignored(tmp_path):
    root = tmp_path / "flat"
    for name, frequency in [("a.wav", 200), ("b.wav", 400), ("c.wav", 800), ("stray.wav", 100)]:
        write_tone(root / name, frequency)
    rows = [{"file_name": "a.wav", "label": "NA"}, {"file_name": "b.wav", "label": "01"},
            {"file_name": "c.wav", "label": "NA"}, {"file_name": "missing.wav", "label": "01"}]
    (root / "metadata.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    dataset = audiofolder(root)
    assert dataset.items.set_index("item_id")["label"].to_dict() == {"a.wav": "NA", "b.wav": "01", "c.wav": "NA",
                                                                     "missing.wav": "01"}
    assert dataset.ignored_files.to_dict("records") == [
        {"path": "metadata.jsonl", "reason": "dataset metadata"},
        {"path": "stray.wav", "reason": "audio not listed in metadata.jsonl"}]


def test_esc50_folder_accounts_for_files_outside_its_metadata(writable_esc50_folder):
    (writable_esc50_folder / "README.md").write_text("ESC-50\n")
    write_tone(writable_esc50_folder / "audio" / "extra.wav", 100)
    dataset = data.load_esc50_folder("esc50_folder", str(writable_esc50_folder), label_column="category")
    assert len(dataset) == 12
    assert dataset.ignored_files.to_dict("records") == [
        {"path": "README.md", "reason": "not audio (.md; audio extensions are set by dataset.extensions)"},
        {"path": "audio/extra.wav", "reason": "audio not listed in meta/esc50.csv"},
        {"path": "meta/esc50.csv", "reason": "dataset metadata"}]


def one_class_with_unknown_extensions(root: Path) -> None:
    write_tone(root / "dog" / "bark.wav", 300)
    for name in ("meow.xyz", "purr.xyz"):
        (root / "cat").mkdir(exist_ok=True)
        (root / "cat" / name).write_text("?")


def notes_only(root: Path) -> None:
    (root / "x").mkdir(parents=True)
    (root / "x" / "notes.txt").write_text("?")


def flat_recordings(root: Path) -> None:
    for name, frequency in (("beep.wav", 900), ("hum.wav", 120)):
        write_tone(root / name, frequency)


def output_inside_the_folder(root: Path) -> None:
    for label, frequency in (("dog", 300), ("bird", 3000)):
        write_tone(root / label / "a.wav", frequency)


def colliding_class_names(root: Path) -> None:
    write_tone(root / "dog_bark" / "a.wav", 300)
    write_tone(root / "dog-bark" / "b.wav", 300)


@pytest.mark.parametrize("build, message", [
    (one_class_with_unknown_extensions,
     r"has audio for one class only \('dog'; ignored 2 files: \.xyz \(2\)\).*dataset\.extensions"),
    (Path.mkdir, "is empty: put audio files in class subfolders"),
    (notes_only, r"no audio files found in class folders under .*\(ignored 1 file: \.txt \(1\)\)"),
    (flat_recordings, r"no audio files found in class folders under .*\(2 audio files outside any class folder, "
     r"e\.g\. (beep|hum)\.wav; no other files\): .*\(move each file into a folder named by its class\)"),
    (colliding_class_names, r"class names 'dog-bark' and 'dog_bark' collide once made readable \(both read 'dog bark'\)"),
    (output_inside_the_folder, r"output_dir=.*/folder/run is inside dataset.path=.*/folder: the run's files \(its "
     r"report clips among them\) would join the dataset on the next run"),
])
def test_folder_mistakes_are_one_clear_line(monkeypatch, capsys, tiny_model_dir, tmp_path, build, message):
    root = tmp_path / "folder"
    build(root)
    output_dir = root / "run" if build is output_inside_the_folder else tmp_path / "run"
    code, _, stderr = run_cli(monkeypatch, capsys, "dataset=audiofolder", f"dataset.path={root}", "model=tiny_random",
                              f"output_dir={output_dir}")
    assert code == 2 and len(stderr.strip().splitlines()) == 1
    assert re.search(message, stderr), stderr
    assert not output_dir.exists()


def ffmpeg_convert(source: Path, target: Path) -> Path:
    subprocess.run(["ffmpeg", "-loglevel", "error", "-y", "-i", str(source), str(target)], check=True)
    return target


@pytest.mark.slow
def test_every_format_ffmpeg_reads_is_evaluated_in_a_two_class_run(monkeypatch, capsys, tiny_model_dir, tmp_path):
    root = tmp_path / "formats"
    for label, frequency in [("low hum", 200.0), ("high whistle", 4000.0)]:
        wav = write_tone(root / label / "clip.wav", frequency, seconds=0.6)
        for extension in FFMPEG_FORMATS:
            ffmpeg_convert(wav, root / label / f"clip.{extension}")
    (root / "low hum" / "broken.m4a").write_text("this is not audio")
    out = tmp_path / "run"
    code, stdout, stderr = run_cli(monkeypatch, capsys, "dataset=audiofolder", f"dataset.path={root}",
                                   "model=tiny_random", "max_skip_fraction=0.5", f"output_dir={out}")
    assert code == 0, stderr
    metrics = json.loads((out / "metrics.json").read_text())
    assert (metrics["n_items"], metrics["n_evaluated"], metrics["n_skipped"], metrics["n_ignored_files"]) == (
        2 * (1 + len(FFMPEG_FORMATS)) + 1, 2 * (1 + len(FFMPEG_FORMATS)), 1, 0)
    assert metrics["top_k"] == 2 and metrics["labels"] == ["high whistle", "low hum"]
    predictions = pd.read_csv(out / "predictions.csv", keep_default_na=False)
    assert sorted(predictions["item_id"]) == sorted(f"{label}/clip.{extension}" for label in ["low hum", "high whistle"]
                                                    for extension in ["wav", *FFMPEG_FORMATS])
    errors = pd.read_csv(out / "errors.csv")
    assert errors["item_id"].tolist() == ["low hum/broken.m4a"]
    assert errors["reason"].tolist() == ["undecodable audio"]
    assert "soundfile: " in errors["detail"][0] and "; FFmpeg: " in errors["detail"][0]
    assert RUN_FILES <= {path.name for path in out.iterdir()}
    assert "top-" not in stdout  # top-2 of 2 classes always holds the truth: not shown


@pytest.mark.parametrize("n_classes", [2, 3, pytest.param(50, marks=pytest.mark.slow)])
def test_any_number_of_classes_writes_a_full_run_directory(monkeypatch, capsys, tiny_model_dir, tmp_path, n_classes):
    root = tmp_path / "classes"
    for index in range(n_classes):
        write_tone(root / f"class_{index:02d}" / "clip.wav", 100.0 * (index + 1), seconds=0.2)
    out = tmp_path / "run"
    code, _, stderr = run_cli(monkeypatch, capsys, "dataset=audiofolder", f"dataset.path={root}", "model=tiny_random",
                              f"output_dir={out}")
    assert code == 0, stderr
    assert RUN_FILES <= {path.name for path in out.iterdir()}
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["top_k"] == min(5, n_classes) and metrics["n_evaluated"] == n_classes
    assert len(pd.read_csv(out / "per_class.csv")) == n_classes
    assert pd.read_csv(out / "confusion_matrix.csv", index_col=0).shape == (n_classes, n_classes)


SYSTEM_SOUNDS = Path("/usr/share/sounds")


@pytest.mark.slow
@pytest.mark.skipif(not (SYSTEM_SOUNDS / "freedesktop").is_dir() or not (SYSTEM_SOUNDS / "alsa").is_dir(),
                    reason="needs Debian's sound-theme-freedesktop and alsa-utils (scripts/install.sh installs them)")
def test_real_system_recordings_in_class_folders(monkeypatch, capsys, tiny_model_dir, tmp_path):
    """Debian's freedesktop theme (OGG Vorbis named .oga, one called audio-test-signal) and ALSA's spoken WAVs."""
    root = tmp_path / "system sounds"
    shutil.copytree(SYSTEM_SOUNDS / "freedesktop" / "stereo", root / "alerts")
    shutil.copytree(SYSTEM_SOUNDS / "alsa", root / "speech")
    (root / "alerts" / "index.theme").write_text("[Sound Theme]\n")
    out = tmp_path / "run"
    code, _, stderr = run_cli(monkeypatch, capsys, "dataset=audiofolder", f"dataset.path={root}", "model=tiny_random",
                              f"output_dir={out}")
    assert code == 0, stderr
    metrics = json.loads((out / "metrics.json").read_text())
    n_files = len(list(root.rglob("*.oga"))) + len(list(root.rglob("*.wav")))
    assert metrics["n_items"] == metrics["n_evaluated"] == n_files
    assert "alerts/audio-test-signal.oga" in set(pd.read_csv(out / "predictions.csv")["item_id"])
    assert pd.read_csv(out / "ignored_files.csv").to_dict("records") == [
        {"path": "alerts/index.theme", "reason": "not audio (.theme; audio extensions are set by dataset.extensions)"}]


@pytest.fixture
def split_folder_layout(tmp_path) -> Path:
    """Split folders above the class folders (a common download layout), in mixed case, with stray audio."""
    root = tmp_path / "splits"
    write_tone(root / "TRAIN" / "dog" / "bark.wav", 300)
    write_tone(root / "TRAIN" / "cat" / "meow.wav", 900)
    write_tone(root / "test" / "dog" / "howl.wav", 350)
    write_tone(root / "test" / "cat" / "purr.wav", 950)
    write_tone(root / "test" / "cat" / "2024" / "hiss.wav", 1200)
    write_tone(root / "test" / "stray.wav", 500)
    (root / "test" / "notes.txt").write_text("recorded in 2024\n")
    return root


def test_split_folder_picks_the_classes_of_one_split_and_ignores_the_others(split_folder_layout):
    dataset = audiofolder(split_folder_layout, split_folder="test")
    items = dataset.items.set_index("item_id")["label"].to_dict()
    assert items == {"test/cat/2024/hiss.wav": "cat", "test/cat/purr.wav": "cat", "test/dog/howl.wav": "dog"}
    assert dataset.class_names == ["cat", "dog"]
    ignored = dict(zip(dataset.ignored_files["path"], dataset.ignored_files["reason"]))
    assert ignored == {
        "TRAIN/cat/meow.wav": "outside the evaluated split (dataset.split_folder=test)",
        "TRAIN/dog/bark.wav": "outside the evaluated split (dataset.split_folder=test)",
        "test/notes.txt": "not audio (.txt; audio extensions are set by dataset.extensions)",
        "test/stray.wav": "audio outside any class folder (put it in test/<class>/)",
    }
    assert set(items) | set(ignored) == every_file(split_folder_layout)


@pytest.mark.parametrize("layout", [
    {"train/whistle.wav": 300, "car/horn.wav": 900},              # a class named like a split, beside another
    {"test/a.wav": 300, "train/b.wav": 900},                       # split names without class folders below
])
def test_split_like_names_are_classes_unless_every_top_folder_is_a_split_with_subfolders(tmp_path, layout):
    for name, frequency in layout.items():
        write_tone(tmp_path / "sounds" / name, frequency)
    dataset = audiofolder(tmp_path / "sounds")
    assert dataset.class_names == sorted(name.split("/")[0] for name in layout)


def test_split_folders_without_the_key_are_refused_in_one_line(monkeypatch, capsys, tiny_model_dir,
                                                                split_folder_layout, tmp_path):
    code, _, stderr = run_cli(monkeypatch, capsys, "dataset=audiofolder", f"dataset.path={split_folder_layout}",
                              "model=tiny_random", f"output_dir={tmp_path / 'run'}")
    assert code == 2 and len(stderr.strip().splitlines()) == 1
    assert stderr.strip() == (f"zsa-eval: error: {split_folder_layout} holds split folders (TRAIN, test) above its "
                              "class folders: set dataset.split_folder to the split to evaluate (e.g. "
                              "dataset.split_folder=test); its sub-folders are the classes")
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("split_folder, message", [
    ("valid", r"dataset.split_folder=valid is not a top-level folder of .*splits holding audio: use one of TRAIN, "
              r"test$"),
    ("test/dog", r"dataset.split_folder=test/dog is not a top-level folder"),
])
def test_split_folder_must_be_a_top_level_folder_with_audio(split_folder_layout, split_folder, message):
    with pytest.raises(UserError, match=message):
        audiofolder(split_folder_layout, split_folder=split_folder)


def test_split_folder_with_a_metadata_file_is_refused(split_folder_layout):
    (split_folder_layout / "metadata.csv").write_text("file_name,label\ntest/dog/howl.wav,dog\n")
    with pytest.raises(UserError, match=r"dataset.split_folder=test picks class folders, but .* has a "
                                             r"metadata.csv listing its items: drop dataset.split_folder"):
        audiofolder(split_folder_layout, split_folder="test")


def test_a_run_on_a_split_folder_records_it(monkeypatch, capsys, tiny_model_dir, split_folder_layout, tmp_path):
    out = tmp_path / "run"
    code, _, stderr = run_cli(monkeypatch, capsys, "dataset=audiofolder", f"dataset.path={split_folder_layout}",
                              "dataset.split_folder=test", "model=tiny_random", f"output_dir={out}")
    assert code == 0, stderr
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["config"]["dataset"]["split_folder"] == "test"
    assert metrics["identity"]["selection"]["split_folder"] == "test"
    assert (metrics["n_items"], metrics["n_ignored_files"]) == (3, 4)
    ignored = pd.read_csv(out / "ignored_files.csv")
    assert sorted(ignored["path"]) == ["TRAIN/cat/meow.wav", "TRAIN/dog/bark.wav", "test/notes.txt", "test/stray.wav"]
    assert sorted(pd.read_csv(out / "predictions.csv")["item_id"]) == ["test/cat/2024/hiss.wav", "test/cat/purr.wav",
                                                                       "test/dog/howl.wav"]
