"""Sweeps and leaderboards, comparisons, the CI gate, and their figures."""

import json
from pathlib import Path

import matplotlib.image
import pandas as pd
import pytest

from conftest import run_cli
from zsa_eval.report.__main__ import main as report_main
from zsa_eval.report.compare import compare_runs

OTHER_TINY_MODEL = """\
defaults:
  - tiny_random
name: tiny_other
name_or_path: ${cache_dir}/models/tiny_other
random_init_seed: 1
"""


def png_shape(path: Path) -> tuple[int, ...]:
    image = matplotlib.image.imread(path)
    assert image[..., :3].std() > 0.02  # not a blank canvas
    return image.shape


@pytest.fixture
def sweep(monkeypatch, capsys, tmp_path):
    """2 tiny models x 2 templates, as `python -m zsa_eval -m model=... template=...`."""
    extra_configs = tmp_path / "extra_conf"
    (extra_configs / "model").mkdir(parents=True)
    (extra_configs / "model" / "tiny_other.yaml").write_text(OTHER_TINY_MODEL)
    results, cache = tmp_path / "results", tmp_path / "cache"
    code, stdout, stderr = run_cli(
        monkeypatch, capsys, "-m", "dataset=synthetic", "model=tiny_random,tiny_other", "template=sound_of,plain",
        f"hydra.searchpath=[file://{extra_configs}]", f"results_dir={results}", f"cache_dir={cache}")
    assert code == 0, stderr
    return results, cache, stdout


def test_multirun_writes_a_sorted_leaderboard_and_heatmap(sweep):
    results, cache, stdout = sweep
    assert stdout.count("synthetic | tiny_") == 4
    board = pd.read_csv(results / "leaderboard.csv")
    assert list(board.columns) == ["dataset", "model", "template", "accuracy", "top_k_accuracy", "balanced_accuracy",
                                   "macro_f1", "n", "clips_per_s", "date", "run_dir"]
    assert sorted(zip(board["model"], board["template"])) == [
        ("tiny_other", "plain"), ("tiny_other", "sound_of"), ("tiny_random", "plain"), ("tiny_random", "sound_of")]
    assert board["accuracy"].is_monotonic_decreasing and (board["n"] == 40).all()
    for run_dir in board["run_dir"]:
        metrics = json.loads((results / run_dir / "metrics.json").read_text())
        assert (metrics["model"], metrics["template"]) in zip(board["model"], board["template"])
    markdown = (results / "leaderboard.md").read_text()
    assert markdown.startswith("| dataset ") and markdown.count("\n") == 6
    height, width, _ = png_shape(results / "leaderboard_heatmap.png")
    assert width > 300 and height > 200


def test_templates_of_one_model_share_its_audio_embeddings(sweep):
    _, cache, _ = sweep
    per_model = sorted(len(list(folder.glob("*.npy"))) for folder in (cache / "audio_embeddings").iterdir())
    assert per_model == [40, 40]  # 2 models x 40 clips, not x 2 templates


def test_leaderboard_rebuilds_identically_from_the_runs(sweep, capsys):
    results, _, _ = sweep
    written = {name: (results / name).read_bytes() for name in ("leaderboard.csv", "leaderboard.md")}
    for name in written:
        (results / name).unlink()
    assert report_main(["leaderboard", str(results)]) == 0
    assert capsys.readouterr().out == written["leaderboard.md"].decode()
    assert {name: (results / name).read_bytes() for name in written} == written


def write_run(run_dir: Path, labels: list[str], recalls: list[float], predictions: list[tuple[str, str, str]],
              accuracy: float) -> Path:
    """A hand-made finished run: metrics.json, per_class.csv and predictions.csv."""
    run_dir.mkdir(parents=True)
    metrics = {"accuracy": accuracy, "top_k_accuracy": 1.0, "balanced_accuracy": accuracy, "macro_f1": accuracy / 2,
               "n_evaluated": len(predictions), "n_skipped": 0, "labels": labels}
    (run_dir / "metrics.json").write_text(json.dumps(metrics))
    pd.DataFrame({"label": labels, "precision": 0.5, "recall": recalls, "f1": 0.5, "support": 2}).to_csv(
        run_dir / "per_class.csv", index=False)
    pd.DataFrame([{"item_id": item, "true_label": true, "predicted_label": predicted, "correct": true == predicted}
                  for item, true, predicted in predictions]).to_csv(run_dir / "predictions.csv", index=False)
    return run_dir


def test_compare_two_hand_made_runs(tmp_path, capsys):
    labels = ["cat", "dog", "rain"]
    run_a = write_run(tmp_path / "a", labels, [1.0, 0.5, 0.0],
                      [("1", "cat", "cat"), ("2", "dog", "dog"), ("3", "rain", "dog"), ("4", "dog", "cat")], 0.5)
    run_b = write_run(tmp_path / "b", labels, [1.0, 0.0, 1.0],
                      [("1", "cat", "cat"), ("2", "dog", "rain"), ("3", "rain", "rain"), ("4", "dog", "cat")], 0.5)
    comparison = compare_runs(run_a, run_b)
    assert comparison.metric_deltas.set_index("metric")["delta"].to_dict() == {
        "accuracy": 0.0, "top_k_accuracy": 0.0, "balanced_accuracy": 0.0, "macro_f1": 0.0, "n_evaluated": 0,
        "n_skipped": 0}
    assert comparison.recall_deltas[["label", "delta"]].values.tolist() == [["rain", 1.0], ["dog", -0.5],
                                                                             ["cat", 0.0]]
    assert comparison.changed[["item_id", "predicted_a", "predicted_b"]].values.tolist() == [
        ["2", "dog", "rain"], ["3", "dog", "rain"]]
    out = tmp_path / "comparison"
    assert report_main(["compare", str(run_a), str(run_b), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "Items whose prediction changed: 2 (1 now right, 1 now wrong)" in printed
    assert (out / "compare.md").read_text() == printed
    assert len(pd.read_csv(out / "changed_predictions.csv")) == 2
    height, width, _ = png_shape(out / "compare_recall.png")
    assert width > 400 and height > 300


def test_compare_refuses_different_label_sets(tmp_path, capsys):
    run_a = write_run(tmp_path / "a", ["cat", "dog"], [1.0, 0.0], [("1", "cat", "cat")], 1.0)
    run_b = write_run(tmp_path / "b", ["cat", "rain"], [1.0, 0.0], [("1", "cat", "cat")], 1.0)
    assert report_main(["compare", str(run_a), str(run_b)]) == 2
    stderr = capsys.readouterr().err
    assert stderr.count("\n") == 1 and "different label sets (1 only in" in stderr


@pytest.fixture(scope="module")
def smoke_accuracy(tmp_path_factory, tiny_model_dir) -> float:
    from conftest import compose_config
    from zsa_eval.run import run

    out = tmp_path_factory.mktemp("gate") / "run"
    return run(compose_config("dataset=synthetic", "model=tiny_random", f"output_dir={out}"))["accuracy"]


def test_gate_exit_codes(monkeypatch, capsys, tmp_path, smoke_accuracy):
    def gate(*arguments):
        code, _, stderr = run_cli(monkeypatch, capsys, "dataset=synthetic", "model=tiny_random",
                                  f"output_dir={tmp_path / str(len(list(tmp_path.iterdir())))}", *arguments)
        return code, stderr.strip()

    assert gate(f"gate.min_accuracy={smoke_accuracy}") == (0, "")
    code, line = gate("gate.min_accuracy=0.99")
    assert code == 3 and line.startswith(f"zsa-eval: gate failed: accuracy {smoke_accuracy:.4f} is below "
                                         f"gate.min_accuracy=0.99 by {0.99 - smoke_accuracy:.4f}")
    baseline = tmp_path / "baseline.json"
    baseline.write_text(json.dumps({"accuracy": smoke_accuracy + 0.05}))
    code, line = gate(f"gate.baseline={baseline}", "gate.max_drop=0.01")
    assert code == 3 and "dropped 0.0500 below the baseline's" in line and "gate.max_drop=0.01" in line
    assert gate(f"gate.baseline={baseline}", "gate.max_drop=0.06") == (0, "")
    code, line = gate(f"gate.baseline={tmp_path / 'missing.json'}")
    assert code == 2 and "gate.baseline=" in line and line.count("\n") == 0


def test_a_failing_job_does_not_stop_the_sweep(monkeypatch, capsys, tmp_path, tiny_model_dir):
    results = tmp_path / "results"
    code, stdout, stderr = run_cli(monkeypatch, capsys, "-m", "dataset=synthetic", "model=tiny_random",
                                   "template=sound_of,plain", "gate.min_accuracy=0.99", f"results_dir={results}")
    assert code == 3
    assert stderr.count("gate failed") == 2 and "2 job(s) of the sweep failed" in stderr
    assert len(pd.read_csv(results / "leaderboard.csv")) == 2  # both jobs wrote their results first
    failed = list(results.glob("sweeps/*/failed_jobs.jsonl"))
    assert len(failed) == 1 and len(failed[0].read_text().splitlines()) == 2
