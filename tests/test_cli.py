"""End to end through the command line, offline: tiny random model, synthesized audio."""

import json
import re
from pathlib import Path

import pandas as pd
import pytest
import torch

from conftest import CLASS_SOUNDS, compose_config, run_cli
from zsa_eval.run import run

DATASETS = sorted(path.stem for path in (Path(__file__).resolve().parent.parent / "conf" / "dataset").glob("*.yaml"))

NEEDS_NO_CUDA = pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on a machine without CUDA")
RESULT_FILES = {"metrics.json", "per_class.csv", "per_fold.csv", "predictions.csv", "confusion_matrix.csv",
                "confusion_matrix.png", "config.yaml", "errors.csv", "report.html", "report_assets"}


def test_smoke_run_writes_every_result(monkeypatch, capsys, tiny_model_dir, tmp_path):
    out = tmp_path / "run"
    code, stdout, _ = run_cli(monkeypatch, capsys, "dataset=synthetic", "model=tiny_random", "num_workers=2",
                              f"output_dir={out}")
    assert code == 0
    assert stdout.startswith("synthetic | tiny_random | auto: accuracy ") and str(out) in stdout
    wall_s, scoring_s = map(float, re.search(r" in ([\d.]+) s \(([\d.]+) s scoring, ", stdout).groups())
    assert RESULT_FILES <= {path.name for path in out.iterdir()}
    metrics = json.loads((out / "metrics.json").read_text())
    assert (metrics["n_items"], metrics["n_evaluated"], metrics["n_skipped"]) == (40, 40, 0)
    assert metrics["labels"] == ["clicks", "high_beep", "low_hum", "rising_chirp", "white_noise"]
    assert metrics["candidate_labels"][1] == "high beep"
    assert metrics["config"]["model"]["name"] == "tiny_random" and metrics["device"] == "cpu"
    assert {"torch", "transformers", "datasets"} <= set(metrics["provenance"]["versions"])
    assert metrics["elapsed_s"] > 0 and metrics["cache_hits"] + metrics["n_evaluated"] >= 40
    # the summary's time counts from the process start, so it holds the run's own time and more
    assert wall_s >= metrics["elapsed_s"] - 0.05 and scoring_s == pytest.approx(metrics["scoring_s"], abs=0.05 + 1e-9)
    predictions = pd.read_csv(out / "predictions.csv")
    assert len(predictions) == 40
    assert metrics["accuracy"] == pytest.approx(predictions["correct"].mean())
    assert (predictions["predicted_label"] == predictions["top1_label"]).all()
    confusion = pd.read_csv(out / "confusion_matrix.csv", index_col=0)
    assert list(confusion.columns) == metrics["labels"] and confusion.to_numpy().sum() == 40
    per_fold = pd.read_csv(out / "per_fold.csv", dtype={"fold": str})
    assert per_fold["fold"].tolist() == ["1", "2", "mean", "std"] and per_fold["n"].tolist()[:2] == [20, 20]


@pytest.mark.slow
def test_same_config_twice_gives_identical_predictions(tiny_model_dir, tmp_path):
    for name in ("a", "b"):
        run(compose_config("dataset=synthetic", "model=tiny_random", "template=ensemble", "batch_size=5",
                           "dataset.duration_s=11.0", "dataset.clips_per_class=2", f"output_dir={tmp_path / name}"))
    assert (tmp_path / "a" / "predictions.csv").read_bytes() == (tmp_path / "b" / "predictions.csv").read_bytes()


def test_esc50_folder_with_folds(tiny_model_dir, esc50_folder, tmp_path):
    metrics = run(compose_config("dataset=esc50_folder", f"dataset.path={esc50_folder}", "dataset.folds=[2]",
                                 "model=tiny_random", "template=plain", f"output_dir={tmp_path / 'run'}"))
    assert metrics["n_items"] == 6 and metrics["labels"] == sorted(CLASS_SOUNDS)
    predictions = pd.read_csv(tmp_path / "run" / "predictions.csv")
    assert set(predictions["fold"]) == {2}
    per_fold = pd.read_csv(tmp_path / "run" / "per_fold.csv", dtype={"fold": str})
    assert per_fold["fold"].tolist() == ["2", "mean", "std"]


@pytest.mark.slow
def test_audiofolder_pipeline_engine_matches_embed(tiny_model_dir, audiofolder, tmp_path):
    """The embed engine hearing short clips as the pipeline does (transformers' fusion mode; under engine=pipeline
    auto is that mode) gives its predictions."""
    common = ["dataset=audiofolder", f"dataset.path={audiofolder}", "model=tiny_random", "num_workers=0",
              "model.short_clip_fusion=transformers"]
    embed = run(compose_config(*common, f"output_dir={tmp_path / 'embed'}"))
    pipeline = run(compose_config(*common, "engine=pipeline", f"output_dir={tmp_path / 'pipeline'}"))
    assert embed["n_evaluated"] == pipeline["n_evaluated"] == 9
    assert not (tmp_path / "embed" / "per_fold.csv").exists()
    a = pd.read_csv(tmp_path / "embed" / "predictions.csv")
    b = pd.read_csv(tmp_path / "pipeline" / "predictions.csv")
    assert (a["predicted_label"] == b["predicted_label"]).all()
    assert (a["score"] - b["score"]).abs().max() < 1e-4


def one_line_error(code: int, stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1, stderr
    assert "Traceback" not in stderr
    return lines[0]


@pytest.mark.parametrize("arguments, message", [
    (["dataset=esc51"], f"unknown dataset 'esc51': choose one of {', '.join(DATASETS)} (conf/dataset/)"),
    (["model=clip"], "unknown model 'clip': choose one of audioflamingo3, audioflamingo3_tiny_random, auto, clap"),
    (["dataset=esc50_folder"], "dataset=esc50_folder needs dataset.path: add dataset.path="),
    (["dataset=esc50"], "cannot load dataset 'ashraq/esc50' from the Hugging Face Hub"),
    (["dataset=synthetic", "template.prompts=[a sound]"], "needs exactly one {} where the label goes"),
    (["dataset=synthetic", "template.prompts=['{} {}']"],
     "prompt '{} {}' has 2 places for the label: it needs exactly one {} where the label goes, e.g. 'This is a "
     "sound of {}.'"),
    (["dataset=synthetic", "template.prompts=[A sound of {}]"],
     "cannot read the override 'template.prompts=[A sound of {}]' (no viable alternative at input '[A sound of {'): "
     "a value holding braces, quotes or commas must be quoted, and the whole override quoted for the shell, e.g. "
     "'template.prompts=[\"A sound of {}\"]'"),
    (["dataset=synthetic", "engine=pipeline", "template=ensemble"], "engine=pipeline takes a single prompt"),
    pytest.param(["dataset=synthetic", "precision=fp16"], "precision=fp16 needs a CUDA device", marks=NEEDS_NO_CUDA),
    pytest.param(["dataset=synthetic", "device=cuda"], "CUDA is not available here", marks=NEEDS_NO_CUDA),
    # wrong types and values: the key, the value and what is allowed (zsa_eval/config/)
    (["dataset=synthetic", "engine=turbo"], "engine=turbo is not valid: engine takes one of embed, pipeline"),
    (["dataset=synthetic", "batch_size=0"], "batch_size=0 is not valid: batch_size takes a whole number of at least 1"),
    (["dataset=synthetic", "limit=0"], "limit=0 is not valid: limit takes a whole number of at least 1, or null"),
    (["dataset=synthetic", "num_workers=abc"],
     "num_workers=abc is not valid: num_workers takes auto or a whole number of at least 0"),
    (["dataset=synthetic", "gate.min_accuracy=abc"],
     "gate.min_accuracy=abc is not valid: gate.min_accuracy takes a number from 0 to 1, or null"),
    (["dataset=synthetic", "gate.min_accuracy=1.5"], "gate.min_accuracy=1.5 is not valid"),
    (["dataset=synthetic", "gate.max_drop=-0.1"], "gate.max_drop=-0.1 is not valid: gate.max_drop takes a number of "
                                                  "at least 0"),
    (["dataset=synthetic", "seed=abc"], "seed=abc is not valid: seed takes a whole number"),
    (["dataset=synthetic", "device=gpu"], "device=gpu is not valid: device takes auto, cpu, cuda or cuda:N"),
    (["dataset=synthetic", "precision=int4"], "precision=int4 is not valid: precision takes one of fp32, fp16, bf16"),
    (["dataset=synthetic", "featurizer=gpu"], "featurizer=gpu is not valid: featurizer takes one of auto, workers, "
                                              "device"),
    (["dataset=synthetic", "limit_mode=random"], "limit_mode=random is not valid: limit_mode takes one of "
                                                 "stratified, first"),
    (["dataset=synthetic", "verbose=maybe"], "verbose=maybe is not valid: verbose takes true or false"),
    (["dataset=synthetic", "dataset.folds=abc"],
     "dataset.folds=abc is not valid: dataset.folds takes one or a list of whole numbers, or null"),
    (["dataset=synthetic", "dataset.clips_per_class=0"], "dataset.clips_per_class=0 is not valid"),
    (["dataset=synthetic", "model.random_init=huge"],
     "model.random_init=huge is not valid: model.random_init takes one of tiny, full, pe_tiny, pe_frame_tiny, pe_av_small, "
     "qwen2_audio_tiny, audioflamingo3_tiny, qwen2_5_omni_tiny, voxtral_tiny, phi4_multimodal_tiny, "
     "msclap_2022_tiny, msclap_2023_tiny, msclap_2022_full, msclap_2023_full, or null"),
    (["dataset=synthetic", "gate=3"], "gate=3 is not valid: gate takes keys of its own (min_accuracy, baseline, "
                                      "max_drop, reference)"),
    # unknown keys: refused with the key meant, never a suggestion to add them with +
    (["dataset=synthetic", "bogus_key=1"], "unknown key bogus_key: --help lists every key"),
    (["dataset=synthetic", "modle=clap"], "unknown key modle: did you mean model?"),
    (["dataset=synthetic", "+modle=clap"], "unknown key modle: did you mean model?"),
    (["dataset=synthetic", "gate.max_drp=0.1"], "unknown key gate.max_drp: did you mean gate.max_drop? gate takes "
                                                "min_accuracy, baseline, max_drop"),
    (["dataset=synthetic", "dataset.pth=/data"], "unknown key dataset.pth: did you mean dataset.path?"),
    (["dataset=synthetic", "+dataset.pth=/data"], "unknown key dataset.pth: did you mean dataset.path?"),
    # a key of another family's models: said at once, not "add it with +" (which would be refused after the load)
    (["dataset=synthetic", "model.scoring=generate"], "model.scoring is a setting of audio language models, which "
                                                      "this model file does not set: choose one of them "
                                                      "(model=audioflamingo3, audioflamingo3_tiny_random, gemma3n, "
                                                      "phi4_multimodal, phi4_multimodal_tiny_random, qwen2_5_omni, "
                                                      "qwen2_5_omni_tiny_random, qwen2_audio, qwen2_audio_tiny_random, "
                                                      "voxtral, voxtral_tiny_random), or model=auto with such a "
                                                      "checkpoint (model=auto model.name_or_path=... "
                                                      "model.scoring=VALUE)"),
    (["dataset=synthetic", "model=pe_tiny_random", "model.frame_pooling=mean"],
     "model.frame_pooling is a setting of frame-level PE-Audio models, which this model file does not set: choose one "
     "of them (model=pe_a_frame_base, pe_frame_tiny_random)"),
    (["dataset=synthetic", "model.max_seconds=5"], "model.max_seconds is a setting of PE-Audio models"),
    (["dataset=audiofolder", "dataset.path=/"], "dataset.path=/ is the root of the file system: point it at the "
                                                "folder that holds the dataset's audio"),
    # resume and overwrite
    (["dataset=synthetic", "resume=true", "overwrite=true"], "resume=true continues the run in output_dir and "
                                                             "overwrite=true replaces it: choose one"),
    # Hydra's own advice is kept whole
    (["dataset=synthetic", "template=sound_of,plain"], "3. To sweep over it, add --multirun to your command line"),
])
def test_user_mistakes_end_in_one_line_and_exit_2(monkeypatch, capsys, tmp_path, hub_unreachable, arguments,
                                                  message):
    code, _, stderr = run_cli(monkeypatch, capsys, "model=tiny_random", f"output_dir={tmp_path / 'run'}",
                              *arguments)
    line = one_line_error(code, stderr)
    assert message in line
    assert "+modle" not in line and "To append to your config" not in line
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("suite", ["zeroshot", "retrieval"])
def test_a_suite_without_multirun_says_to_add_it(monkeypatch, capsys, tmp_path, hub_unreachable, suite):
    out = tmp_path / "run"
    code, _, stderr = run_cli(monkeypatch, capsys, f"suite={suite}", "model=tiny_random", f"output_dir={out}")
    assert one_line_error(code, stderr) == (
        f"zsa-eval: error: suite={suite} is a sweep over datasets: run it with -m "
        f"(python -m zsa_eval -m suite={suite} model=tiny_random output_dir={out} progress=false)")
    assert not out.exists()


def test_missing_model_directory_says_so(monkeypatch, capsys, tmp_path):
    missing = tmp_path / "nonexistent_dir"
    code, _, stderr = run_cli(monkeypatch, capsys, "dataset=synthetic", "model=clap", f"model.name_or_path={missing}",
                              f"output_dir={tmp_path / 'out'}")
    line = one_line_error(code, stderr)
    assert f"model directory '{missing}' does not exist" in line and "hf download" not in line


def test_folds_present_are_plain_numbers(monkeypatch, capsys, esc50_folder, tmp_path):
    code, _, stderr = run_cli(monkeypatch, capsys, "dataset=esc50_folder", f"dataset.path={esc50_folder}",
                              "dataset.folds=7", "model=tiny_random", f"output_dir={tmp_path / 'out'}")
    assert "no items in folds [7]; folds present: [1, 2]" in one_line_error(code, stderr)


def test_single_values_where_lists_are_expected(tiny_model_dir, esc50_folder, tmp_path):
    """dataset.folds=2 is dataset.folds=[2]; a prompt given as a string is a template of one prompt."""
    metrics = run(compose_config("dataset=esc50_folder", f"dataset.path={esc50_folder}", "dataset.folds=2",
                                 "model=tiny_random", "template.prompts='sound of {}'",
                                 f"output_dir={tmp_path / 'run'}"))
    assert metrics["n_items"] == 6 and metrics["prompts"] == ["sound of {}"]
    assert metrics["config"]["dataset"]["folds"] == [2]
    assert set(pd.read_csv(tmp_path / "run" / "predictions.csv")["fold"]) == {2}


def test_unreadable_model_directory_is_one_line(monkeypatch, capsys, tmp_path):
    (tmp_path / "model").mkdir()
    code, _, stderr = run_cli(monkeypatch, capsys, "dataset=synthetic", "model=clap",
                              f"model.name_or_path={tmp_path / 'model'}", f"output_dir={tmp_path / 'out'}")
    assert "cannot read model directory" in one_line_error(code, stderr)
    assert not (tmp_path / "out").exists()  # checked before the run directory is made


def test_unreachable_hub_is_one_line(monkeypatch, capsys, tmp_path, hub_unreachable):
    """Without the Hugging Face Hub the default model cannot be fetched."""
    code, _, stderr = run_cli(monkeypatch, capsys, "dataset=synthetic", "model=clap", f"output_dir={tmp_path}")
    line = one_line_error(code, stderr)
    assert "cannot load model 'laion/clap-htsat-fused'" in line and "model.name_or_path=" in line


def test_the_quoting_advised_for_a_prompt_works(monkeypatch, capsys, tiny_model_dir, tmp_path):
    from zsa_eval.config.overrides import quoted_override

    advised = quoted_override("template.prompts=[A sound of {}, The {} noise.]")
    assert advised == "'template.prompts=[\"A sound of {}\",\"The {} noise.\"]'"
    code, _, _ = run_cli(monkeypatch, capsys, "dataset=synthetic", "model=tiny_random", advised.strip("'"),
                         f"output_dir={tmp_path / 'run'}")
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert code == 0 and metrics["prompts"] == ["A sound of {}", "The {} noise."]


@pytest.mark.slow
def test_a_run_outside_results_dir_says_no_leaderboard_lists_it(monkeypatch, capsys, tiny_model_dir, tmp_path):
    results = tmp_path / "results"
    common = ["dataset=synthetic", "dataset.clips_per_class=2", "model=tiny_random", f"results_dir={results}"]
    code, stdout, _ = run_cli(monkeypatch, capsys, *common, f"output_dir={tmp_path / 'elsewhere' / 'run'}")
    lines = stdout.strip().splitlines()
    assert code == 0 and len(lines) == 2 and lines[0].startswith("synthetic | tiny_random | auto: accuracy")
    assert lines[1] == (f"zsa-eval: note: output_dir lies outside results_dir ({results}), so no leaderboard lists "
                        f"this run; python -m zsa_eval.report leaderboard {tmp_path / 'elsewhere'} builds one beside "
                        "it")
    assert json.loads((tmp_path / "elsewhere" / "run" / "metrics.json").read_text())["leaderboard"] is None
    code, stdout, _ = run_cli(monkeypatch, capsys, *common, f"output_dir={results / 'inside'}")
    assert code == 0 and len(stdout.strip().splitlines()) == 1 and (results / "leaderboard.md").is_file()
    assert json.loads((results / "inside" / "metrics.json").read_text())["leaderboard"] == str(results)


def test_debug_shows_the_traceback(monkeypatch, capsys, tmp_path):
    from zsa_eval.errors import UserError

    with pytest.raises(UserError, match="needs exactly one"):
        run_cli(monkeypatch, capsys, "debug=true", "dataset=synthetic", "template.prompts=[nothing]",
                f"output_dir={tmp_path}")
