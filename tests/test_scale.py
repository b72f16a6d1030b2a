"""Scaling out: data-parallel runs under torchrun (gloo, CPU), Hydra launchers, concurrent runs."""

import json
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from conftest import run_cli, run_cli_in_a_shared_fixture

ROOT = Path(__file__).resolve().parent.parent
RUN_SPECIFIC = {"started_at", "finished_at", "scoring_s", "elapsed_s", "encoded_clips_per_s", "resumed_items",
                "output_dir", "config", "processes", "num_workers"}


def zsa_eval(*arguments: str, launcher: tuple[str, ...] = ("-m",)) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *launcher, "zsa_eval", *arguments, "progress=false"], cwd=ROOT,
                          capture_output=True, text=True, timeout=600)


def assert_same_results(out: Path, reference: Path) -> None:
    """Identical metrics, errors and predicted labels; scores equal to float32 rounding (torchrun runs each
    process with one thread, and batches hold other clips, so the last bits of a score may differ)."""
    metrics, expected = (json.loads((run / "metrics.json").read_text()) for run in (out, reference))
    assert {k: v for k, v in metrics.items() if k not in RUN_SPECIFIC} == {
        k: v for k, v in expected.items() if k not in RUN_SPECIFIC}
    assert (out / "errors.csv").read_bytes() == (reference / "errors.csv").read_bytes()
    predictions, expected_predictions = (pd.read_csv(run / "predictions.csv") for run in (out, reference))
    scores = [name for name in predictions.columns if name.endswith("score")]
    pd.testing.assert_frame_equal(predictions.drop(columns=scores), expected_predictions.drop(columns=scores))
    assert (predictions["score"] - expected_predictions["score"]).abs().max() < 1e-6


@pytest.mark.slow
def test_torchrun_two_processes_match_one(tiny_model_dir, writable_esc50_folder, tmp_path):
    """2 processes, gloo backend, CPU: items sharded without duplicates or drops, rank 0 merges."""
    audio = writable_esc50_folder / "audio"
    (audio / "missing-on-purpose.wav").unlink(missing_ok=True)
    meta = pd.read_csv(writable_esc50_folder / "meta" / "esc50.csv")
    meta.loc[len(meta)] = {"filename": "broken.wav", "fold": 1, "target": 0, "category": "dog", "esc10": True,
                           "src_file": "x", "take": "A"}
    (audio / "broken.wav").write_bytes(b"not audio")
    meta.to_csv(writable_esc50_folder / "meta" / "esc50.csv", index=False)
    common = ["dataset=esc50_folder", f"dataset.path={writable_esc50_folder}", "model=tiny_random", "batch_size=2",
              "cache=false", "max_skip_fraction=1"]
    code, _, stderr = run_cli_in_a_shared_fixture(*common, f"output_dir={tmp_path / 'single'}")  # the reference
    assert code == 0, stderr
    start = time.perf_counter()
    double = zsa_eval(*common, f"output_dir={tmp_path / 'double'}",
                      launcher=("-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", "-m"))
    double_s = time.perf_counter() - start
    assert double.returncode == 0, double.stderr
    assert double.stdout.count("esc50_folder | tiny_random") == 1  # rank 0 reports
    parts = sorted(path.name for path in (tmp_path / "double").glob("progress*.jsonl"))
    assert parts == ["progress-rank0.jsonl", "progress-rank1.jsonl"]
    indices = [json.loads(line)["index"] for part in parts
               for line in (tmp_path / "double" / part).read_text().splitlines()]
    assert sorted(indices) == list(range(13))  # every item once, none twice
    assert_same_results(tmp_path / "double", tmp_path / "single")
    metrics = json.loads((tmp_path / "double" / "metrics.json").read_text())
    assert metrics["processes"] == 2 and metrics["n_evaluated"] == 12 and metrics["n_skipped"] == 1
    print(f"two processes {double_s:.1f} s")


@pytest.mark.slow
@pytest.mark.parametrize("launcher", ["joblib", "submitit_local"])
def test_sweeps_through_hydra_launchers(launcher, tiny_model_dir, tmp_path):
    results = tmp_path / "results"
    outcome = zsa_eval("-m", f"hydra/launcher={launcher}", "dataset=synthetic", "model=tiny_random",
                       "template=sound_of,plain", f"results_dir={results}")
    assert outcome.returncode == 0, outcome.stderr
    board = pd.read_csv(results / "leaderboard.csv")
    assert sorted(board["template"]) == ["plain", "sound_of"] and (board["n"] == 40).all()


@pytest.mark.slow
def test_concurrent_runs_leave_a_whole_leaderboard(tiny_model_dir, tmp_path):
    results = tmp_path / "results"
    processes = [subprocess.Popen([sys.executable, "-m", "zsa_eval", "dataset=synthetic", "model=tiny_random",
                                   f"template={template}", f"results_dir={results}", "progress=false"],
                                  cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                 for template in ("sound_of", "plain", "ensemble")]
    for process in processes:
        assert process.wait(timeout=300) == 0, process.stderr.read()
    board = pd.read_csv(results / "leaderboard.csv")
    assert sorted(board["template"]) == ["ensemble", "plain", "sound_of"]
    assert (results / "leaderboard.md").read_text().count("\n") == 5
    assert not list(results.glob(".*.tmp"))


def test_slurm_launcher_config_composes(monkeypatch, capsys):
    code, stdout, _ = run_cli(monkeypatch, capsys, "--cfg", "hydra", "hydra/launcher=slurm",
                              "hydra.launcher.partition=gpu", "hydra.launcher.timeout_min=30")
    assert code == 0
    assert "SlurmLauncher" in stdout and "partition: gpu" in stdout and "timeout_min: 30" in stdout
    assert "gpus_per_node: 1" in stdout
