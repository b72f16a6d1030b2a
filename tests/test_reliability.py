"""Bad items, bad configuration, interruptions and safety: nothing lost, nothing silent."""

import glob
import io
import json
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from conftest import class_clip, noise, run_cli, tone
from zsa_eval.errors import UserError
from zsa_eval.store import ProgressLog
from zsa_eval.store.skips import skip_rate_lower_bound, too_many_skips

CLASSES = ["chirping_birds", "dog", "vacuum_cleaner"]
TIMING_KEYS = {"started_at", "finished_at", "scoring_s", "elapsed_s", "encoded_clips_per_s", "resumed_items",
               "batch_size", "config", "num_workers"}


def wav_bytes(wave: np.ndarray, rate: int = 44100, subtype: str = "PCM_16") -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, wave, rate, format="WAV", subtype=subtype)
    return buffer.getvalue()


def with_non_finite(value: float) -> np.ndarray:
    wave = tone(440.0)
    wave[100] = value
    return wave


# name -> (how to write it at `path`, expected outcome: None = evaluated, else the skip reason)
BAD_ITEMS = {
    "truncated.wav": (lambda p: p.write_bytes(wav_bytes(tone(300.0))[:30000]), None),
    "corrupt.wav": (lambda p: p.write_bytes(b"RIFF\x10\x00\x00\x00WAVEfmt garbage" * 20), "undecodable audio"),
    "zero_bytes.wav": (lambda p: p.write_bytes(b""), "undecodable audio"),
    "text.wav": (lambda p: p.write_text("these are not the samples you are looking for\n" * 50), "undecodable audio"),
    "directory.wav": (lambda p: p.mkdir(), "unreadable file"),
    "silence.wav": (lambda p: sf.write(p, np.zeros(44100, np.float32), 44100), None),
    "nan.wav": (lambda p: sf.write(p, with_non_finite(np.nan), 44100, subtype="FLOAT"), "non-finite samples"),
    "inf.wav": (lambda p: sf.write(p, with_non_finite(np.inf), 44100, subtype="FLOAT"), "non-finite samples"),
    "stereo.wav": (lambda p: sf.write(p, tone(500.0, channels=2), 44100), None),
    "six_channels.wav": (lambda p: sf.write(p, tone(500.0, channels=6), 44100), None),
    "rate_8k.wav": (lambda p: sf.write(p, tone(400.0, 8000), 8000), None),
    "rate_96k.wav": (lambda p: sf.write(p, tone(400.0, 96000), 96000), None),
    "pcm_u8.wav": (lambda p: sf.write(p, tone(600.0), 44100, subtype="PCM_U8"), None),
    "pcm_24.wav": (lambda p: sf.write(p, tone(600.0), 44100, subtype="PCM_24"), None),
    "float.wav": (lambda p: sf.write(p, tone(600.0), 44100, subtype="FLOAT"), None),
    "tiny_0.05s.wav": (lambda p: sf.write(p, tone(700.0, seconds=0.05), 44100), None),
    "long_60s.wav": (lambda p: sf.write(p, noise(5, 16000, seconds=60.0), 16000), None),
    "clip.flac": (lambda p: sf.write(p, tone(800.0), 44100), None),
    "clip.ogg": (lambda p: sf.write(p, tone(800.0), 44100), None),
    "clip.mp3": (lambda p: sf.write(p, tone(800.0), 44100), None),
}
MISSING = "listed_but_missing.wav"
OFF_LABEL = "off_label.wav"
EXCLUDED = "excluded: label outside dataset.classes"  # a selection, not an error


def write_bad_esc50(root: Path, good_per_class: int = 2) -> dict[str, str | None]:
    """An ESC-50 folder mixing good clips with every bad item above; returns item -> expected skip reason."""
    (root / "audio").mkdir(parents=True)
    (root / "meta").mkdir()
    rows, expected = [], {}
    for category in CLASSES:
        for take in range(good_per_class):
            name = f"good-{category}-{take}.wav"
            sf.write(root / "audio" / name, class_clip(category, take), 44100)
            rows.append((name, category))
            expected[name] = None
    for index, (name, (write, outcome)) in enumerate(BAD_ITEMS.items()):
        write(root / "audio" / name)
        rows.append((name, CLASSES[index % len(CLASSES)]))
        expected[name] = outcome
    rows.append((MISSING, "dog"))
    expected[MISSING] = "missing file"
    sf.write(root / "audio" / OFF_LABEL, tone(900.0), 44100)
    rows.append((OFF_LABEL, "helicopter"))
    expected[OFF_LABEL] = EXCLUDED
    pd.DataFrame([{"filename": name, "fold": i % 2 + 1, "category": category, "esc10": True, "src_file": i}
                  for i, (name, category) in enumerate(rows)]).to_csv(root / "meta" / "esc50.csv", index=False)
    return expected


def assert_outcomes(out: Path, expected: dict[str, str | None]) -> None:
    predictions = pd.read_csv(out / "predictions.csv")
    errors = pd.read_csv(out / "errors.csv")
    excluded = pd.read_csv(out / "excluded.csv")
    metrics = json.loads((out / "metrics.json").read_text())
    evaluated = {Path(item).name for item in predictions["item_id"]}
    skipped = {Path(item).name: reason for item, reason in zip(errors["item_id"], errors["reason"])}
    assert evaluated == {name for name, outcome in expected.items() if outcome is None}
    assert skipped == {name: outcome for name, outcome in expected.items() if outcome not in (None, EXCLUDED)}
    assert {Path(item).name for item in excluded["item_id"]} == {
        name for name, outcome in expected.items() if outcome == EXCLUDED}
    assert errors["detail"].str.len().min() > 0
    assert (metrics["n_items"], metrics["n_evaluated"], metrics["n_skipped"], metrics["n_excluded"]) == (
        len(evaluated) + len(skipped), len(evaluated), len(skipped), len(excluded))
    assert metrics["skipped_by_reason"] == pd.Series(list(skipped.values())).value_counts().to_dict()
    assert np.isfinite(predictions["score"]).all()


@pytest.fixture
def bad_esc50(tmp_path):
    root = tmp_path / "ESC-50"
    return root, write_bad_esc50(root)


@pytest.mark.slow
def test_bad_items_in_an_esc50_folder_are_evaluated_or_recorded(monkeypatch, capsys, tiny_model_dir, bad_esc50,
                                                                tmp_path):
    root, expected = bad_esc50
    out = tmp_path / "run"
    code, stdout, _ = run_cli(monkeypatch, capsys, "dataset=esc50_folder", f"dataset.path={root}",
                              f"dataset.classes=[{','.join(CLASSES)}]", "model=tiny_random", "max_skip_fraction=1",
                              "num_workers=2", f"output_dir={out}")
    assert code == 0, stdout
    assert "skipped (see errors.csv)" in stdout
    assert_outcomes(out, expected)


@pytest.mark.slow
def test_bad_items_in_an_audiofolder_are_evaluated_or_recorded(monkeypatch, capsys, tiny_model_dir, tmp_path):
    source = tmp_path / "ESC-50"
    expected = write_bad_esc50(source)
    root = tmp_path / "folder"
    rows = []
    meta = pd.read_csv(source / "meta" / "esc50.csv")
    for name, category in zip(meta["filename"], meta["category"]):
        path = source / "audio" / name
        if name in (MISSING, "directory.wav"):  # an audiofolder lists only files that exist
            expected.pop(name)
            continue
        (root / category).mkdir(parents=True, exist_ok=True)
        (root / category / name).write_bytes(path.read_bytes())
        rows.append(name)
    out = tmp_path / "run"
    code, stdout, _ = run_cli(monkeypatch, capsys, "dataset=audiofolder", f"dataset.path={root}",
                              f"dataset.classes=[{','.join(CLASSES)}]", "model=tiny_random", "max_skip_fraction=1",
                              f"output_dir={out}")
    assert code == 0, stdout
    assert_outcomes(out, expected)


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files without read permission")
def test_file_without_read_permission_is_recorded(monkeypatch, capsys, tiny_model_dir, bad_esc50, tmp_path):
    root, expected = bad_esc50
    (root / "audio" / "silence.wav").chmod(0)
    expected["silence.wav"] = "unreadable file"
    out = tmp_path / "run"
    code, _, _ = run_cli(monkeypatch, capsys, "dataset=esc50_folder", f"dataset.path={root}",
                         f"dataset.classes=[{','.join(CLASSES)}]", "model=tiny_random", "max_skip_fraction=1",
                         f"output_dir={out}")
    assert code == 0
    assert_outcomes(out, expected)


def one_line(code: int, stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1 and "Traceback" not in stderr, stderr
    return lines[0]


def test_too_many_skips_exit_2_after_writing_everything(monkeypatch, capsys, tiny_model_dir, bad_esc50, tmp_path):
    root, expected = bad_esc50
    out = tmp_path / "run"
    code, stdout, stderr = run_cli(monkeypatch, capsys, "dataset=esc50_folder", f"dataset.path={root}",
                                   f"dataset.classes=[{','.join(CLASSES)}]", "model=tiny_random", f"output_dir={out}")
    n_skipped = sum(outcome not in (None, EXCLUDED) for outcome in expected.values())
    summary = stdout.strip()  # the results' summary first, then why the run failed
    assert summary.startswith("esc50_folder | tiny_random | auto: accuracy ") and summary.endswith(f"-> {out}")
    assert f", {n_skipped} skipped (see errors.csv)" in summary
    n_selected = sum(outcome != EXCLUDED for outcome in expected.values())  # excluded clips are no error
    assert one_line(code, stderr) == (
        f"zsa-eval: error: {n_skipped} of {n_selected} items ({n_skipped / n_selected:.1%}) were skipped: items are "
        f"bad at a rate above max_skip_fraction=0.05 (at least {skip_rate_lower_bound(n_skipped, n_selected):.1%}, "
        f"97.5% lower bound); the list is in {out / 'errors.csv'} (results were written for the rest)")
    assert_outcomes(out, expected)
    assert json.loads((out / "metrics.json").read_text())["status"] == "too_many_skips"


@pytest.mark.slow
def test_one_bad_file_in_a_small_folder_passes_a_systematic_failure_does_not(monkeypatch, capsys, tiny_model_dir,
                                                                             tmp_path):
    folder = tmp_path / "sounds"
    for index in range(20):
        category = ("dog", "rain")[index % 2]
        (folder / category).mkdir(parents=True, exist_ok=True)
        sf.write(folder / category / f"{index:02d}.wav", tone(200.0 + 10 * index, seconds=0.2), 16000)
    (folder / "dog" / "00.wav").write_bytes(b"not audio")  # 1 of 20: 5%
    common = ["dataset=audiofolder", f"dataset.path={folder}", "model=tiny_random"]
    code, stdout, stderr = run_cli(monkeypatch, capsys, *common, f"output_dir={tmp_path / 'one'}")
    metrics = json.loads((tmp_path / "one" / "metrics.json").read_text())
    assert code == 0 and metrics["n_skipped"] == 1 and metrics["status"] == "complete"
    for index in (2, 4, 6):  # 4 of 20: the bad share is above 5% beyond chance
        (folder / "dog" / f"{index:02d}.wav").write_bytes(b"not audio")
    code, stdout, stderr = run_cli(monkeypatch, capsys, *common, f"output_dir={tmp_path / 'four'}")
    assert code == 2 and "4 of 20 items (20.0%) were skipped: items are bad at a rate above" in stderr
    assert json.loads((tmp_path / "four" / "metrics.json").read_text())["status"] == "too_many_skips"


def test_the_skip_rule_at_its_boundaries():
    assert [too_many_skips(k, 20, 0.05) for k in range(5)] == [False, False, False, False, True]
    assert too_many_skips(3, 6, 0.05) and not too_many_skips(1, 3, 0.05)
    assert not too_many_skips(60, 1000, 0.05) and too_many_skips(100, 1000, 0.05)
    assert too_many_skips(1, 10_000, 0.0) and not too_many_skips(0, 10, 0.0)  # 0: any skip fails
    assert not too_many_skips(19, 20, 1.0)
    assert skip_rate_lower_bound(4, 20) == pytest.approx(0.0573, abs=1e-4)  # scipy.stats.binomtest's exact CI
    from scipy.stats import binomtest

    exact = binomtest(7, 40).proportion_ci(confidence_level=0.95, method="exact").low
    assert skip_rate_lower_bound(7, 40) == pytest.approx(exact)


def test_on_error_raise_stops_at_the_first_bad_item(monkeypatch, capsys, tiny_model_dir, bad_esc50, tmp_path):
    root, _ = bad_esc50
    code, _, stderr = run_cli(monkeypatch, capsys, "dataset=esc50_folder", f"dataset.path={root}",
                              "model=tiny_random", "on_error=raise", "batch_size=4", f"output_dir={tmp_path / 'r'}")
    assert "item 'corrupt.wav': undecodable audio" in one_line(code, stderr)
    assert "on_error=skip" in stderr


@pytest.mark.parametrize("arguments, message", [
    (["dataset.classes=[dog]"], "has a single class ['dog']"),
    (["dataset.folds=[1]", "dataset.subset=esc10", "dataset.label_column=fold"], "has a single class ['1']"),
    (["dataset.label_column=kind"], "column 'kind' not found; set dataset.label_column to one of"),
    (["on_error=ignore"], "on_error=ignore is not valid: on_error takes one of skip, raise"),
    (["max_skip_fraction=2"], "max_skip_fraction=2.0 is not valid: max_skip_fraction takes a number from 0 to 1"),
    (["limit=abc"], "limit=abc is not valid: limit takes a whole number of at least 1, or null"),
    (["batch_size=-1"], "batch_size=-1 is not valid: batch_size takes a whole number of at least 1"),
])
def test_dataset_and_setting_mistakes(monkeypatch, capsys, tiny_model_dir, esc50_folder, tmp_path, arguments,
                                      message):
    code, _, stderr = run_cli(monkeypatch, capsys, "dataset=esc50_folder", f"dataset.path={esc50_folder}",
                              "model=tiny_random", f"output_dir={tmp_path / 'run'}", *arguments)
    assert message in one_line(code, stderr)


@pytest.mark.slow
def test_empty_audiofolder_and_unwritable_output_dir(monkeypatch, capsys, tmp_path):
    (tmp_path / "empty").mkdir()
    code, _, stderr = run_cli(monkeypatch, capsys, "dataset=audiofolder", f"dataset.path={tmp_path / 'empty'}",
                              "model=tiny_random", f"output_dir={tmp_path / 'run'}")
    assert "is empty: put audio files in class subfolders" in one_line(code, stderr)
    (tmp_path / "blocker").write_text("")
    code, _, stderr = run_cli(monkeypatch, capsys, "dataset=synthetic", "model=tiny_random",
                              f"output_dir={tmp_path / 'blocker' / 'run'}")
    assert "cannot write to output_dir" in one_line(code, stderr)


@pytest.mark.slow
def test_output_dir_of_another_config_needs_overwrite(monkeypatch, capsys, tiny_model_dir, esc50_folder, tmp_path):
    common = ["dataset=esc50_folder", f"dataset.path={esc50_folder}", "model=tiny_random",
              f"output_dir={tmp_path / 'run'}"]
    assert run_cli(monkeypatch, capsys, *common)[0] == 0
    code, _, stderr = run_cli(monkeypatch, capsys, *common, "template=plain")
    assert "holds a run of another config (differs in: template.name, template.prompts)" in one_line(code, stderr)
    code, _, stderr = run_cli(monkeypatch, capsys, *common, "template=plain", "resume=true")
    assert "another config" in one_line(code, stderr)
    code, _, stderr = run_cli(monkeypatch, capsys, *common)
    assert "already holds this run: resume=true" in one_line(code, stderr)
    assert run_cli(monkeypatch, capsys, *common, "resume=true", "batch_size=3")[0] == 0
    assert run_cli(monkeypatch, capsys, *common, "template=plain", "overwrite=true")[0] == 0
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["template"] == "plain"
    code, _, stderr = run_cli(monkeypatch, capsys, *common, "resume=true", "overwrite=true")
    assert "resume=true continues the run in output_dir and overwrite=true replaces it: choose one" in \
        one_line(code, stderr)
    elsewhere = tmp_path / "elsewhere"
    code, _, stderr = run_cli(monkeypatch, capsys, *common[:-1], f"output_dir={elsewhere}", "resume=true")
    assert f"resume=true, but output_dir '{elsewhere}' holds no run to resume" in one_line(code, stderr)
    assert not elsewhere.exists()
    mine = tmp_path / "mine"  # a folder of the user's that looks like a run's
    (mine / "report_assets").mkdir(parents=True)
    for name in ("metrics.json", "predictions.csv", "report.html", "config.yaml", "report_assets/clip-000000.flac"):
        (mine / name).write_text("the user's")
    code, _, stderr = run_cli(monkeypatch, capsys, *common[:-1], f"output_dir={mine}", "overwrite=true")
    assert f"output_dir '{mine}' holds no zsa-eval run (5 such files" in one_line(code, stderr)
    assert all(path.read_text() == "the user's" for path in mine.rglob("*") if path.is_file())


@pytest.mark.slow
def test_hostile_label_names_never_escape_output_dir(monkeypatch, capsys, tiny_model_dir, tmp_path):
    labels = ["../../escape", "a/b\\c", "ünïcödé 音", "x" * 300]
    root = tmp_path / "ESC-50"
    (root / "audio").mkdir(parents=True)
    (root / "meta").mkdir()
    rows = []
    for index, label in enumerate(labels):
        sf.write(root / "audio" / f"{index}.wav", tone(200.0 * (index + 1)), 44100)
        rows.append({"filename": f"{index}.wav", "fold": 1, "category": label, "src_file": index})
    pd.DataFrame(rows).to_csv(root / "meta" / "esc50.csv", index=False)
    before = {path for path in tmp_path.rglob("*")}
    out = tmp_path / "out" / "run"
    code, _, _ = run_cli(monkeypatch, capsys, "dataset=esc50_folder", f"dataset.path={root}", "model=tiny_random",
                         f"output_dir={out}")
    assert code == 0
    created = {path for path in tmp_path.rglob("*")} - before
    assert all(path == out.parent or out in path.parents or path == out for path in created)
    assert {path.name for path in out.iterdir()} == {"metrics.json", "per_class.csv", "per_fold.csv",
                                                     "predictions.csv", "confusion_matrix.csv",
                                                     "confusion_matrix.png", "config.yaml", "errors.csv",
                                                     "excluded.csv", "ignored_files.csv", "scores.parquet",
                                                     "run.json", "progress.jsonl", "report.html",
                                                     "report_assets", ".zsa-eval-files", ".zsa-eval.lock"}
    assert sorted(pd.read_csv(out / "per_class.csv")["label"]) == sorted(labels)
    assert list(pd.read_csv(out / "confusion_matrix.csv", index_col=0).columns) == sorted(labels)
    code, _, stderr = run_cli(monkeypatch, capsys, "dataset=esc50_folder", f"dataset.path={root}", "model=tiny_random",
                              "engine=pipeline", f"output_dir={tmp_path / 'pipeline'}")
    assert "engine=pipeline cannot score the prompt for label 'xxxx" in one_line(code, stderr)


def test_trust_remote_code_stays_off_unless_set(monkeypatch, tiny_model_dir):
    import torch
    import transformers

    from conftest import compose_config
    from zsa_eval.models import load_model

    assert compose_config("model=clap").model.trust_remote_code is False
    seen = []
    original = transformers.AutoModel.from_pretrained
    monkeypatch.setattr(transformers.AutoModel, "from_pretrained",
                        lambda *args, **kwargs: seen.append(kwargs["trust_remote_code"]) or original(*args, **kwargs))
    load_model("tiny", str(tiny_model_dir), torch.device("cpu"), "fp32")
    load_model("tiny", str(tiny_model_dir), torch.device("cpu"), "fp32", trust_remote_code=True)
    assert seen == [False, True]


# --- interruptions, with real subprocesses ---------------------------------------------------------------------

N_CLIPS, BATCH_SIZE, BATCHES_BEFORE_STALL = 8, 2, 2

# The command line, with the audio encoder stalling in the batch after BATCHES_BEFORE_STALL: the test kills or
# interrupts the process there, mid-batch, with exactly that many batches in the log (no race with a fast run).
STALLING_CLI = f"""
import sys, time
from transformers import ClapModel
from zsa_eval.__main__ import main
encode, calls = ClapModel.get_audio_features, []
def encode_or_stall(self, *args, **kwargs):
    calls.append(1)
    if len(calls) > {BATCHES_BEFORE_STALL}:
        time.sleep(600)
    return encode(self, *args, **kwargs)
ClapModel.get_audio_features = encode_or_stall
sys.argv[0] = "zsa-eval"
main()
"""


def write_many_clips(root: Path, n_clips: int) -> Path:
    (root / "audio").mkdir(parents=True)
    (root / "meta").mkdir()
    rows = []
    for index in range(n_clips):
        category = CLASSES[index % 3]
        sf.write(root / "audio" / f"{index:04d}.wav", class_clip(category, index % 7)[:11025], 44100)
        rows.append({"filename": f"{index:04d}.wav", "fold": index % 5 + 1, "category": category,
                     "src_file": index})
    pd.DataFrame(rows).to_csv(root / "meta" / "esc50.csv", index=False)
    return root


def run_arguments(root: Path, out: Path) -> list[str]:
    return ["dataset=esc50_folder", f"dataset.path={root}", "model=tiny_random", f"batch_size={BATCH_SIZE}",
            "cache=false", "progress=false", f"output_dir={out}"]


def cli_process(script: str, arguments: list[str]) -> subprocess.Popen:
    """`script` (which ends in the entry point) run with `arguments`, in a process group of its own (a Ctrl-C it
    sends to its group reaches no test runner)."""
    # A shell that runs this suite in the background ignores SIGINT for its children: restore Ctrl-C for the run.
    return subprocess.Popen([sys.executable, "-c", script, *arguments], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=Path(__file__).resolve().parent.parent,
                            start_new_session=True, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def stalling_process(root: Path, out: Path) -> subprocess.Popen:
    return cli_process(STALLING_CLI, run_arguments(root, out))


def wait_for_progress(out: Path, lines: int, process: subprocess.Popen, timeout_s: float = 120) -> Path:
    """Wait until the run directory `out` (a glob pattern where its name is not known) has `lines` outcomes logged;
    return it."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and process.poll() is None:
        for progress in map(Path, glob.glob(str(out / "progress.jsonl"))):
            if progress.read_text().count("\n") >= lines:
                return progress.parent
        time.sleep(0.01)
    raise AssertionError(f"no progress in {out}: {process.poll()} {process.stderr.read() if process.stderr else ''}")


def comparable(out: Path) -> tuple[bytes, dict]:
    metrics = json.loads((out / "metrics.json").read_text())
    return (out / "predictions.csv").read_bytes(), {k: v for k, v in metrics.items()
                                                     if k not in TIMING_KEYS | {"output_dir", "leaderboard"}}


def resume_in_process(root: Path, out: Path) -> dict:
    from conftest import compose_config
    from zsa_eval.run import run

    return run(compose_config(*run_arguments(root, out), "resume=true"))


@pytest.fixture(scope="module")
def many_clips(tmp_path_factory):
    return write_many_clips(tmp_path_factory.mktemp("many") / "ESC-50", N_CLIPS)


@pytest.fixture(scope="module")
def uninterrupted(many_clips, tiny_model_dir, tmp_path_factory):
    from conftest import compose_config
    from zsa_eval.run import run

    out = tmp_path_factory.mktemp("reference") / "run"
    run(compose_config(*run_arguments(many_clips, out)))
    return comparable(out)


@pytest.mark.slow
def test_sigkill_then_resume_matches_an_uninterrupted_run(many_clips, uninterrupted, tmp_path):
    out = tmp_path / "run"
    process = stalling_process(many_clips, out)
    finished = BATCHES_BEFORE_STALL * BATCH_SIZE
    wait_for_progress(out, finished, process)
    with pytest.raises(UserError, match=rf"output_dir '{out}' is being written by another zsa-eval run \(process "
                                        rf"{process.pid}\)"):  # a second writer, following the advice to resume
        resume_in_process(many_clips, out)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    assert process.returncode == -signal.SIGKILL
    assert (out / "progress.jsonl").read_text().count("\n") == finished and not (out / "metrics.json").exists()
    resumed = resume_in_process(many_clips, out)
    assert comparable(out) == uninterrupted
    assert resumed["resumed_items"] == finished


@pytest.mark.slow
def test_ctrl_c_stops_cleanly_and_says_how_to_resume(many_clips, uninterrupted, tmp_path):
    out = tmp_path / "run"
    process = stalling_process(many_clips, out)
    finished = BATCHES_BEFORE_STALL * BATCH_SIZE
    wait_for_progress(out, finished, process)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in stderr, stderr
    assert lines[0] == (f"zsa-eval: interrupted after {finished} of {N_CLIPS} items; their results are kept in {out}; "
                        f"resume with the same arguments plus output_dir={out} resume=true")
    assert (out / "progress.jsonl").read_text().count("\n") == finished
    resume_in_process(many_clips, out)
    assert comparable(out) == uninterrupted


# The command line, with a Ctrl-C sent to the process group (as a terminal sends it) from inside soundfile's cffi read
# callback while one clip is decoded (the file named by argv[1], decoded from its bytes as a Hub clip is): Python's own
# KeyboardInterrupt would be swallowed there ("Exception ignored from cffi callback") and the run would go on.
CTRL_C_IN_DECODING_CLI = """
import io, os, signal, sys
from zsa_eval import audio
from zsa_eval.__main__ import main
target = sys.argv.pop(1)
decode = audio.decode_with_soundfile

class CtrlCOnRead(io.BytesIO):
    pressed = False

    def readinto(self, buffer):
        if not self.pressed:
            self.pressed = True
            os.killpg(0, signal.SIGINT)
        return super().readinto(buffer)

def decode_with_ctrl_c(source):  # the file's bytes read through Python: soundfile's cffi callbacks run
    return decode(CtrlCOnRead(open(source, "rb").read()) if source == target else source)

audio.decode_with_soundfile = decode_with_ctrl_c
sys.argv[0] = "zsa-eval"
main()
"""


@pytest.mark.slow
@pytest.mark.parametrize("num_workers", [0, 2])
def test_ctrl_c_while_a_clip_is_decoded_stops_cleanly(many_clips, uninterrupted, tmp_path, num_workers):
    out = tmp_path / "run"
    first_unfinished = BATCHES_BEFORE_STALL * BATCH_SIZE  # in file order; with workers, later batches may be logged
    target = many_clips / "audio" / f"{first_unfinished:04d}.wav"
    process = cli_process(CTRL_C_IN_DECODING_CLI,
                          [str(target), *run_arguments(many_clips, out), f"num_workers={num_workers}"])
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stderr
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in stderr, stderr
    finished = sorted(ProgressLog(out).read())
    kept = (f"interrupted after {len(finished)} of {N_CLIPS} items; their results are kept in {out}" if finished
            else f"interrupted before any of the {N_CLIPS} items finished (the run is set up in {out})")
    assert lines[0] == f"zsa-eval: {kept}; resume with the same arguments plus output_dir={out} resume=true"
    assert first_unfinished not in finished
    if num_workers == 0:  # clips are decoded in order, between the batches
        assert finished == list(range(first_unfinished))
    resume_in_process(many_clips, out)
    assert comparable(out) == uninterrupted


# The command line, with a Ctrl-C sent to the process when the run reaches a moment outside the batches (argv[1]):
# `imports` (before the run's imports), `model` (the model's load) or `results` (drawing the confusion matrix, while
# the results are written).
CTRL_C_AT_CLI = """
import os, signal, sys
import zsa_eval.__main__ as entry
moment = sys.argv.pop(1)

def ctrl_c_before(function):
    def wrapped(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGINT)
        return function(*args, **kwargs)
    return wrapped

if moment == "imports":
    entry.quiet_libraries = ctrl_c_before(entry.quiet_libraries)
elif moment == "model":
    import zsa_eval.run
    zsa_eval.run.load_scorer = ctrl_c_before(zsa_eval.run.load_scorer)
else:
    import zsa_eval.tasks.classification as classification
    classification.confusion_png = ctrl_c_before(classification.confusion_png)
sys.argv[0] = "zsa-eval"
entry.main()
"""


@pytest.mark.slow
@pytest.mark.parametrize("moment", ["imports", "model", "results"])
def test_ctrl_c_outside_the_batches_is_one_line_and_exit_130(many_clips, uninterrupted, tmp_path, moment):
    """Before the run has a directory nothing was written; while results are written, the run resumes to the same
    results as an uninterrupted one."""
    out = tmp_path / "run"
    process = cli_process(CTRL_C_AT_CLI, [moment, *run_arguments(many_clips, out)])
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stderr
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in stderr, stderr
    if moment != "results":
        assert lines[0] == "zsa-eval: interrupted before the run started: nothing was written" and not out.exists()
        return
    assert lines[0] == (f"zsa-eval: interrupted before the results were written ({N_CLIPS} of {N_CLIPS} items "
                        f"finished); what was finished is kept in {out}; resume with the same arguments plus "
                        f"output_dir={out} resume=true")
    assert not (out / "metrics.json").exists()
    resume_in_process(many_clips, out)
    assert comparable(out) == uninterrupted


TEMPLATES, SWEEP_LIMIT = ["sound_of", "plain"], 6
SWEEP_SETTINGS = ["dataset=synthetic", "model=tiny_random", f"limit={SWEEP_LIMIT}", f"batch_size={BATCH_SIZE}",
                  "cache=false", "progress=false"]


@pytest.mark.slow
def test_ctrl_c_stops_a_sweep_and_the_printed_command_resumes_all_of_it(monkeypatch, capsys, tiny_model_dir,
                                                                        tmp_path):
    from conftest import compose_config
    from zsa_eval.run import run

    results = tmp_path / "results"
    uninterrupted_runs = []
    for template in TEMPLATES:
        run(compose_config(*SWEEP_SETTINGS, f"template={template}", f"output_dir={tmp_path / template}"))
        uninterrupted_runs.append(comparable(tmp_path / template))
    sweep = ["-m", *SWEEP_SETTINGS, f"template={','.join(TEMPLATES)}", f"results_dir={results}"]
    process = cli_process(STALLING_CLI, sweep)
    finished = BATCHES_BEFORE_STALL * BATCH_SIZE
    first_job = wait_for_progress(results / "synthetic" / "tiny_random" / "sound_of" / "*", finished, process)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in stderr, stderr
    assert "; resume the whole sweep with: " in lines[0], lines[0]
    kept, resume = lines[0].split("; resume the whole sweep with: ")
    assert kept == (f"zsa-eval: interrupted after {finished} of {SWEEP_LIMIT} items; their results are kept in "
                    f"{first_job}")
    [sweep_dir] = (results / "sweeps").iterdir()
    command = shlex.split(resume)
    assert command == ["python", "-m", "zsa_eval", *sweep, f"hydra.sweep.dir={sweep_dir}", "resume=true"]
    assert first_job.name == f"{sweep_dir.name}-0" and not (results / "synthetic" / "tiny_random" / "plain").exists()

    code, _, stderr = run_cli(monkeypatch, capsys, *command[3:])
    assert code == 0, stderr
    job_dirs = [results / "synthetic" / "tiny_random" / template / f"{sweep_dir.name}-{job}"
                for job, template in enumerate(TEMPLATES)]
    assert [comparable(job_dir) for job_dir in job_dirs] == uninterrupted_runs
    resumed_items = [json.loads((job_dir / "metrics.json").read_text())["resumed_items"] for job_dir in job_dirs]
    assert resumed_items == [finished, 0]
