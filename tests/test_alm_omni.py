"""The omni generation's audio language models (zsa_eval/families/alm_omni.py: Qwen2.5-Omni, Voxtral) on their tiny
random twins: the chat format and what the model hears, zero-shot runs from the command line in both modes, resume,
generate against transformers' own, and the settings they refuse. Likelihood scores against a plain forward pass:
test_alm.py, for every twin. Voxtral's need mistral-common (its tokenizer), which zsa-eval does not install."""

import json
import sys

import numpy as np
import pandas as pd
import pytest
import torch

from conftest import NEEDS_MISTRAL_COMMON, run_cli
from zsa_eval.families.alm import AudioLanguageFamily
from zsa_eval.models import load_model

OMNI_MODELS = ("qwen2_5_omni_tiny_random", pytest.param("voxtral_tiny_random", marks=NEEDS_MISTRAL_COMMON))
WINDOWS = {"qwen2_5_omni_tiny_random": 300.0, "voxtral_tiny_random": 2400.0}  # what each hears of a clip, in seconds


def clip(seed: int, seconds: float = 2.0) -> np.ndarray:
    return (0.3 * np.random.default_rng(seed).standard_normal(int(16000 * seconds))).astype(np.float32)


def load_omni(tiny_alm_dirs, model_type: str = "qwen2_5_omni", scoring: str = "likelihood") -> AudioLanguageFamily:
    return load_model(model_type, str(tiny_alm_dirs[model_type]), torch.device("cpu"), "fp32", scoring=scoring,
                      max_new_tokens=8, label_batch_size=2).family


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


@NEEDS_MISTRAL_COMMON
def test_voxtral_prompt_is_mistral_commons_with_the_clip_in_30_s_chunks(tiny_alm_dirs):
    """mistral-common's chat: [BEGIN_AUDIO] then [AUDIO] 375 times per started 30 s chunk, then the text; the
    features in the same chunks; an answer's tokens are those mistral-common writes for an assistant turn."""
    family = load_omni(tiny_alm_dirs, "voxtral")
    assert family.prompt_text("Which one?") == "<s>[INST][BEGIN_AUDIO]" + "[AUDIO]" * 375 + "Which one?[/INST]"
    for seconds, chunks in ((2.0, 1), (31.0, 2)):
        inputs = family.preparer("Which one?")(clip(0, seconds), 0)
        assert int((inputs["input_ids"] == 24).sum()) == 375 * chunks
        assert inputs["input_features"].shape == (chunks, 128, 3000)
    conversation = family.clip_conversation(clip(0), "Which one?")
    prompt = family.tokenizer.apply_chat_template(conversation, tokenize=True, return_dict=True)["input_ids"]
    for label, answer in zip(["dog", "sea waves"], family.answer_tokens(["dog", "sea waves"])):
        chat = conversation + [{"role": "assistant", "content": label}, {"role": "user", "content": "And?"}]
        written = family.tokenizer.apply_chat_template(chat, tokenize=True, return_dict=True)["input_ids"]
        assert written[:len(prompt) + len(answer)] == prompt + answer and answer[-1] == family.tokenizer.eos_token_id


def test_voxtral_without_mistral_common_is_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "mistral_common", None)  # as where it is not installed
    code, _, stderr = run_cli(monkeypatch, capsys, "dataset=synthetic", "model=voxtral_tiny_random",
                              f"model.name_or_path={tmp_path / 'voxtral'}", f"output_dir={tmp_path / 'run'}")
    assert (code, stderr.count("\n")) == (2, 1)
    assert "model=voxtral_tiny_random needs mistral-common" in stderr and "pip install" in stderr


@pytest.mark.parametrize("model_type", ["qwen2_5_omni", pytest.param("voxtral", marks=NEEDS_MISTRAL_COMMON)])
def test_greedy_answer_is_transformers_generate(tiny_alm_dirs, model_type):
    """Decoding on the prompt's cache (each new token at its position) writes what model.generate writes."""
    family = load_omni(tiny_alm_dirs, model_type, scoring="generate")
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
    assert metrics["long_audio"]["window_s"] == WINDOWS[model] and metrics["long_audio"]["n_clips_longer"] == 0
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
