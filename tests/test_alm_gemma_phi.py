"""Gemma 3n and Phi-4-multimodal (zsa_eval/families/alm_gemma_phi.py): Phi-4's twin's chat format and what it hears,
greedy answers against transformers' generate, zero-shot runs from the command line in both modes, resume, and the
settings refused (likelihood scores against a plain forward pass: test_alm.py, for every twin). Gemma 3n has no twin
(transformers builds its vision tower with timm, not installed): refused in one line, and checked in-process on a tiny
Gemma 3n whose vision tower is left out, which a clip never reaches."""

import importlib.util
import json

import numpy as np
import pandas as pd
import pytest
import torch

from conftest import run_cli
from test_alm import LABELS, plain_log_likelihood
from zsa_eval.answers import filled_instruction
from zsa_eval.families.alm import AudioLanguageFamily
from zsa_eval.families.alm_gemma_phi import Gemma3nFamily
from zsa_eval.models import load_model
from zsa_eval.random_models.alm import ALM_TEXT_CONFIG, train_chat_tokenizer

PHI4 = "phi4_multimodal_tiny_random"


def clip(seed: int, seconds: float = 2.0) -> np.ndarray:
    return (0.3 * np.random.default_rng(seed).standard_normal(int(16000 * seconds))).astype(np.float32)


def load_phi4(tiny_alm_dirs, scoring: str = "likelihood") -> AudioLanguageFamily:
    return load_model("phi4_multimodal", str(tiny_alm_dirs["phi4_multimodal"]), torch.device("cpu"), "fp32",
                      scoring=scoring, max_new_tokens=8, label_batch_size=2).family


def test_phi4_prompt_holds_the_clip_before_the_instruction(tiny_alm_dirs):
    """The tokenizer's chat template on "<|audio|>" + the instruction; <|audio|> once per 80 ms of audio (2 s: 25),
    80 log-mel bins every 10 ms, nothing cut."""
    family = load_phi4(tiny_alm_dirs)
    assert family.prompt_text("Which one?") == "<|user|><|audio|>Which one?<|end|><|assistant|>"
    inputs = family.preparer("Which one?")(clip(0), 0)
    assert int((inputs["input_ids"] == family.processor.audio_token_id).sum()) == 25
    assert inputs["audio_input_features"].shape == (1, 198, 80)  # (32000 - 400) // 160 + 1 frames
    assert family.window_seconds is None


def test_phi4_greedy_answer_is_transformers_generate(tiny_alm_dirs):
    family = load_phi4(tiny_alm_dirs, scoring="generate")
    inputs = family.preparer("Which one?")(clip(1), 0)
    with torch.inference_mode():
        output = family.model.generate(**inputs, max_new_tokens=8, do_sample=False,
                                       eos_token_id=sorted(family.stop_ids))
    written = [token for token in output[0, inputs["input_ids"].shape[1]:].tolist() if token not in family.stop_ids]
    assert written and family.generate_answer(inputs) == family.tokenizer.decode(written,
                                                                                 skip_special_tokens=True).strip()


@pytest.mark.slow
def test_phi4_runs_from_the_command_line_in_both_modes(tiny_alm_dirs, tmp_path, monkeypatch, capsys):
    for scoring in ("likelihood", "generate"):
        out = tmp_path / scoring
        code, stdout, _ = run_cli(monkeypatch, capsys, "dataset=synthetic", f"model={PHI4}", "limit=4",
                                  f"model.scoring={scoring}", f"output_dir={out}")
        assert code == 0 and "accuracy" in stdout
        metrics = json.loads((out / "metrics.json").read_text())
        assert metrics["family"] == "phi4_multimodal" and metrics["identity"]["family_settings"]["scoring"] == scoring
        assert metrics["long_audio"]["window_s"] is None and metrics["long_audio"]["n_clips_longer"] == 0
    probabilities = pd.read_parquet(tmp_path / "likelihood" / "scores.parquet").filter(like="prob:").to_numpy()
    assert probabilities.shape[0] == 4 and np.allclose(probabilities.sum(axis=1), 1)
    generated = json.loads((tmp_path / "generate" / "metrics.json").read_text())
    assert generated["score_kind"] == "answer" and sum(generated["answer_matches"].values()) == 4


@pytest.mark.parametrize("overrides, message", [
    (["protocol=linear_probe"], "protocol=linear_probe trains on audio embeddings, and phi4_multimodal models give "
     "none"),
    (["long_audio=windows"], "long_audio=windows: phi4_multimodal models hear each clip whole"),
    (["engine=pipeline"], "engine=pipeline cannot run"),
])
def test_phi4_bad_combinations_are_one_line_and_exit_2(tiny_alm_dirs, tmp_path, monkeypatch, capsys, overrides,
                                                      message):
    code, _, stderr = run_cli(monkeypatch, capsys, "dataset=synthetic", f"model={PHI4}",
                              f"output_dir={tmp_path / 'run'}", *overrides)
    assert (code, stderr.count("\n")) == (2, 1) and message in stderr, stderr
    assert not (tmp_path / "run").exists()


@pytest.mark.skipif(importlib.util.find_spec("peft") is not None, reason="peft is installed")
def test_phi4_speech_lora_without_peft_is_one_line(tiny_alm_dirs, tmp_path, monkeypatch, capsys):
    code, _, stderr = run_cli(monkeypatch, capsys, "dataset=synthetic", f"model={PHI4}",
                              "model.options.speech_lora=speech-lora", f"output_dir={tmp_path / 'run'}")
    assert (code, stderr.count("\n")) == (2, 1) and "model.options.speech_lora=speech-lora needs peft" in stderr


@pytest.mark.skipif(importlib.util.find_spec("timm") is not None, reason="timm is installed")
def test_gemma3n_is_recognized_and_refused_without_timm_in_one_line(hub_unreachable, tmp_path, monkeypatch, capsys):
    """model=auto picks the family by config.json's model_type; without timm it stops before loading anything."""
    checkpoint = tmp_path / "gemma-3n"
    checkpoint.mkdir()
    (checkpoint / "config.json").write_text(json.dumps({"model_type": "gemma3n"}))
    code, _, stderr = run_cli(monkeypatch, capsys, "dataset=synthetic", "model=auto",
                              f"model.name_or_path={checkpoint}", f"output_dir={tmp_path / 'run'}")
    assert (code, stderr.count("\n")) == (2, 1) and "(gemma3n) needs timm, which zsa-eval does not install" in stderr


# A tiny Gemma 3n: its tokenizer's multimodal tokens last, as in Gemma's vocabulary (vision ids from 401, audio ids
# from 403: embedded by embed_vision and embed_audio), four decoder layers of which the last two reuse the first two's
# keys and values (num_kv_shared_layers), a sliding window of 8 tokens (the prompt is ~240: the cache past the window).
GEMMA3N_NAMED_TOKENS = {"boi_token": "<start_of_image>", "boa_token": "<start_of_audio>", "eoi_token": "<end_of_image>",
                        "image_token": "<image_soft_token>", "eoa_token": "<end_of_audio>",
                        "audio_token": "<audio_soft_token>"}
# The checkpoint's chat template (transformers' convert_gemma3n_weights.py) for one user turn: <bos>, the turn, the
# audio item as <audio_soft_token>, the text trimmed.
GEMMA3N_CHAT_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}{{ '<start_of_turn>' + message['role'] + '\\n' }}"
    "{% for item in message['content'] %}{% if item['type'] == 'audio' %}{{ '<audio_soft_token>' }}"
    "{% elif item['type'] == 'text' %}{{ item['text'] | trim }}{% endif %}{% endfor %}{{ '<end_of_turn>\\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<start_of_turn>model\\n' }}{% endif %}")


@pytest.fixture(scope="module")
def gemma3n_family() -> Gemma3nFamily:
    from transformers import (Gemma3nAudioFeatureExtractor, Gemma3nConfig, Gemma3nForConditionalGeneration,
                              Gemma3nProcessor, SiglipImageProcessorPil)
    from transformers.models.gemma3n import modeling_gemma3n

    tokenizer = train_chat_tokenizer(["<pad>", "<bos>", "<eos>", "<start_of_turn>", "<end_of_turn>",
                                      "<start_of_audio>", "<start_of_image>"], named_tokens=GEMMA3N_NAMED_TOKENS)
    tokenizer.bos_token = "<bos>"
    ids = tokenizer.convert_tokens_to_ids
    text = {**ALM_TEXT_CONFIG, "num_hidden_layers": 4, "head_dim": 16, "vocab_size": 405,
            "vocab_size_per_layer_input": 401, "hidden_size_per_layer_input": 8, "laurel_rank": 4, "sliding_window": 8,
            "layer_types": ["sliding_attention", "full_attention"] * 2, "num_kv_shared_layers": 2,
            "activation_sparsity_pattern": [0.95, 0.0, 0.0, 0.0], "pad_token_id": ids("<pad>"),
            "bos_token_id": ids("<bos>"), "eos_token_id": [ids("<eos>"), ids("<end_of_turn>")]}
    audio = {"vocab_offset": 403, "vocab_size": 2, "hidden_size": 16, "conf_num_attention_heads": 2,
             "conf_num_hidden_layers": 1, "sscp_conv_channel_size": [8, 4]}
    config = Gemma3nConfig(text_config=text, audio_config=audio, vision_config={"vocab_offset": 401, "vocab_size": 2},
                           boi_token_id=ids("<start_of_image>"), eoi_token_id=401, image_token_id=402,
                           boa_token_id=ids("<start_of_audio>"), eoa_token_id=403, audio_token_id=404)
    build = modeling_gemma3n.AutoModel.from_config
    with pytest.MonkeyPatch.context() as patch:  # the vision tower (timm's MobileNet-V5) left out
        patch.setattr(modeling_gemma3n.AutoModel, "from_config", lambda config, **kwargs: torch.nn.Module()
                      if config.model_type == "gemma3n_vision" else build(config, **kwargs))
        torch.manual_seed(0)
        model = Gemma3nForConditionalGeneration(config)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, (torch.nn.Linear, torch.nn.Conv2d, torch.nn.Embedding)):
                module.reset_parameters()
    processor = Gemma3nProcessor(feature_extractor=Gemma3nAudioFeatureExtractor(),
                                 image_processor=SiglipImageProcessorPil(), tokenizer=tokenizer,
                                 chat_template=GEMMA3N_CHAT_TEMPLATE)
    return Gemma3nFamily(model.eval(), processor, torch.device("cpu"), torch.float32, "likelihood", 8, 2)


def test_gemma3n_prompt_holds_one_bos_and_188_audio_tokens_of_the_first_30_s(gemma3n_family, monkeypatch):
    assert gemma3n_family.prompt_text("Which one?") == (
        "<bos><start_of_turn>user\n<audio_soft_token>Which one?<end_of_turn>\n<start_of_turn>model\n")
    inputs = gemma3n_family.preparer("Which one?")(clip(0), 0)
    text = gemma3n_family.tokenizer.decode(inputs["input_ids"][0])
    assert text.startswith("<bos><start_of_turn>user\n\n\n<start_of_audio><audio_soft_token>")  # one <bos>
    assert text.count("<audio_soft_token>") == 188 and "<end_of_audio>\n\nWhich one?" in text
    assert gemma3n_family.preparer("Which one?")(clip(1, seconds=35.0), 0)["input_features"].shape == (1, 2997, 128)
    assert gemma3n_family.window_seconds == 30.0


def test_gemma3n_likelihood_on_the_shared_kv_cache_equals_a_plain_forward_pass(gemma3n_family):
    inputs = gemma3n_family.preparer(filled_instruction("Which? {labels}.", LABELS))(clip(0), 0)
    fast = gemma3n_family.answer_log_likelihoods(inputs, gemma3n_family.answer_tokens(LABELS)).numpy()
    plain = np.array([plain_log_likelihood(gemma3n_family, inputs, label) for label in LABELS])
    np.testing.assert_allclose(fast, plain, atol=1e-4, rtol=0)
    assert np.ptp(plain) > 1e-3
