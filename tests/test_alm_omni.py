"""The omni generation's audio language models (zsa_eval/families/alm_omni.py) on their tiny random twins: the chat
format and what the model hears, zero-shot runs from the command line in both modes, resume, generate against
transformers' own, and the settings they refuse. Likelihood scores against a plain forward pass: test_alm.py, for
every twin."""

import json

import numpy as np
import pandas as pd
import pytest
import torch

from conftest import compose_config, run_cli
from zsa_eval.families.alm import AudioLanguageFamily
from zsa_eval.models import load_model
from zsa_eval.run import run

OMNI_MODELS = ("qwen2_5_omni_tiny_random",)


def clip(seed: int, seconds: float = 2.0) -> np.ndarray:
    return (0.3 * np.random.default_rng(seed).standard_normal(int(16000 * seconds))).astype(np.float32)


def load_omni(tiny_alm_dirs, scoring: str = "likelihood") -> AudioLanguageFamily:
    return load_model("qwen2_5_omni", str(tiny_alm_dirs["qwen2_5_omni"]), torch.device("cpu"), "fp32",
                      scoring=scoring, max_new_tokens=8, label_batch_size=2).family


def test_qwen2_5_omni_prompt_holds_the_clip_before_the_instruction(tiny_alm_dirs):
    """The checkpoint's chat template: its default system turn, "<|audio_bos|><|AUDIO|><|audio_eos|>" then the text;
    <|AUDIO|> once per 40 ms of audio (2 s: 50), features padded to the 300 s the model hears."""
    family = load_omni(tiny_alm_dirs)
    assert family.prompt_text("Which one?") == (
        "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n"
        "<|audio_bos|><|AUDIO|><|audio_eos|>Which one?<|im_end|>\n<|im_start|>assistant\n")
    inputs = family.preparer("Which one?")(clip(0), 0)
    assert int((inputs["input_ids"] == family.processor.audio_token_id).sum()) == 50
    assert inputs["input_features"].shape == (1, 128, 30000)
    assert int(inputs["feature_attention_mask"].sum()) == 200  # 2 s of 10 ms frames
    assert family.window_seconds == 300.0


def test_qwen2_5_omni_greedy_answer_is_transformers_generate(tiny_alm_dirs):
    """Decoding on the prompt's cache (each new token at its rotary position) writes what model.generate writes."""
    family = load_omni(tiny_alm_dirs, scoring="generate")
    inputs = family.preparer("Which one?")(clip(1), 0)
    with torch.inference_mode():
        output = family.model.generate(**inputs, max_new_tokens=8, do_sample=False,
                                       eos_token_id=sorted(family.stop_ids))
    written = [token for token in output[0, inputs["input_ids"].shape[1]:].tolist() if token not in family.stop_ids]
    assert family.generate_answer(inputs) == family.tokenizer.decode(written, skip_special_tokens=True).strip()


@pytest.mark.slow
@pytest.mark.parametrize("model", OMNI_MODELS)
def test_a_likelihood_run_from_the_command_line(tiny_alm_dirs, tmp_path, monkeypatch, capsys, model):
    out = tmp_path / "run"
    code, stdout, _ = run_cli(monkeypatch, capsys, "dataset=synthetic", f"model={model}", "limit=4",
                              f"output_dir={out}")
    assert code == 0 and "accuracy" in stdout
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["score_kind"] == "softmax" and metrics["identity"]["family_settings"] == {"scoring": "likelihood"}
    assert metrics["long_audio"]["window_s"] == 300.0 and metrics["long_audio"]["n_clips_longer"] == 0
    probabilities = pd.read_parquet(out / "scores.parquet").filter(like="prob:").to_numpy()
    assert probabilities.shape[0] == 4 and np.allclose(probabilities.sum(axis=1), 1)


@pytest.mark.slow
@pytest.mark.parametrize("model", OMNI_MODELS)
def test_a_generate_run_from_the_command_line(tiny_alm_dirs, tmp_path, monkeypatch, capsys, model):
    out = tmp_path / "run"
    code, _, _ = run_cli(monkeypatch, capsys, "dataset=synthetic", f"model={model}", "model.scoring=generate",
                         "limit=4", f"output_dir={out}")
    assert code == 0
    metrics = json.loads((out / "metrics.json").read_text())
    predictions = pd.read_csv(out / "predictions.csv", keep_default_na=False)
    assert metrics["score_kind"] == "answer" and len(predictions) == 4
    assert sum(metrics["answer_matches"].values()) == 4  # each answer matched exactly, fuzzily or not at all


@pytest.mark.slow
@pytest.mark.parametrize("model", OMNI_MODELS)
def test_an_interrupted_run_resumes_with_the_same_scores(tiny_alm_dirs, tmp_path, monkeypatch, model):
    out = tmp_path / "run"
    overrides = ["dataset=synthetic", f"model={model}", "limit=6", "batch_size=2", f"output_dir={out}"]
    complete = run(compose_config(*overrides))
    predictions = (out / "predictions.csv").read_bytes()
    log = out / "progress.jsonl"
    lines = log.read_text().splitlines(keepends=True)
    log.write_text("".join(lines[:2]) + lines[2][:40])  # one batch and a line torn by a kill
    (out / "metrics.json").unlink()
    scored = []
    score = AudioLanguageFamily.answer_log_likelihoods
    monkeypatch.setattr(AudioLanguageFamily, "answer_log_likelihoods",
                        lambda self, inputs, answers: scored.append(1) or score(self, inputs, answers))
    resumed = run(compose_config(*overrides, "resume=true"))
    assert len(scored) == 6 - 2 and resumed["resumed_items"] == 2
    assert (out / "predictions.csv").read_bytes() == predictions
    assert resumed["accuracy"] == complete["accuracy"]


@pytest.mark.parametrize("model", OMNI_MODELS)
@pytest.mark.parametrize("overrides, message", [
    (["protocol=linear_probe"], "protocol=linear_probe trains on audio embeddings, and {family} models give none"),
    (["long_audio=windows"], "long_audio=windows: {family} models hear each clip whole"),
    (["engine=pipeline"], "engine=pipeline cannot run"),
])
def test_bad_combinations_are_one_line_and_exit_2(tiny_alm_dirs, tmp_path, monkeypatch, capsys, model, overrides,
                                                 message):
    code, _, stderr = run_cli(monkeypatch, capsys, "dataset=synthetic", f"model={model}",
                              f"output_dir={tmp_path / 'run'}", *overrides)
    family = model.removesuffix("_tiny_random")
    assert (code, stderr.count("\n")) == (2, 1) and message.format(family=family) in stderr, stderr
    assert not (tmp_path / "run").exists()
