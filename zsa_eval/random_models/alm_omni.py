"""A random-weight tiny Qwen2.5-Omni thinker (zsa_eval/families/alm_omni.py), with the real feature extractor class, a
locally trained tokenizer carrying the processor's named audio tokens, and the checkpoint's chat template."""

from __future__ import annotations

from pathlib import Path

import torch
from transformers import Qwen2_5OmniThinkerConfig, Qwen2_5OmniThinkerForConditionalGeneration, WhisperFeatureExtractor

from zsa_eval.random_models.alm import ALM_AUDIO_CONFIG, ALM_TEXT_CONFIG, reset_weights, train_chat_tokenizer
from zsa_eval.random_models.common import write_model

# The tokens Qwen2_5OmniProcessor reads off its tokenizer by name (transformers 5.25, processing_qwen2_5_omni.py).
QWEN2_5_OMNI_NAMED_TOKENS = {"audio_token": "<|AUDIO|>", "audio_bos_token": "<|audio_bos|>",
                             "audio_eos_token": "<|audio_eos|>", "image_token": "<|IMAGE|>",
                             "video_token": "<|VIDEO|>", "vision_bos_token": "<|vision_bos|>",
                             "vision_eos_token": "<|vision_eos|>"}
# Qwen/Qwen2.5-Omni-7B's chat_template.json, as transformers' tests/models/qwen2_5_omni/test_processing_qwen2_5_omni.py
# (prepare_processor_dict) gives it: one <|audio_bos|><|AUDIO|><|audio_eos|> where the audio item stands.
QWEN2_5_OMNI_CHAT_TEMPLATE = (
    "{% set audio_count = namespace(value=0) %}{% set image_count = namespace(value=0) %}{% set video_count = "
    "namespace(value=0) %}{% for message in messages %}{% if loop.first and message['role'] != 'system' %}"
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}<|im_end|>\n{% else %}{% for content in "
    "message['content'] %}{% if content['type'] == 'image' or 'image' in content or 'image_url' in content %}"
    "{% set image_count.value = image_count.value + 1 %}{% if add_vision_id %}Picture {{ image_count.value }}: "
    "{% endif %}<|vision_bos|><|IMAGE|><|vision_eos|>{% elif content['type'] == 'audio' or 'audio' in content or "
    "'audio_url' in content %}{% set audio_count.value = audio_count.value + 1 %}{% if add_audio_id %}Audio "
    "{{ audio_count.value }}: {% endif %}<|audio_bos|><|AUDIO|><|audio_eos|>{% elif content['type'] == 'video' or "
    "'video' in content %}{% set video_count.value = video_count.value + 1 %}{% if add_vision_id %}Video "
    "{{ video_count.value }}: {% endif %}<|vision_bos|><|VIDEO|><|vision_eos|>{% elif 'text' in content %}"
    "{{ content['text'] }}{% endif %}{% endfor %}<|im_end|>\n{% endif %}{% endfor %}{% if add_generation_prompt %}"
    "<|im_start|>assistant\n{% endif %}"
)
OMNI_VISION_CONFIG = dict(depth=1, hidden_size=16, intermediate_size=32, num_heads=2, out_hidden_size=32,
                          fullatt_block_indexes=[0])  # never run (audio only), but the thinker builds it


def random_qwen2_5_omni(tokenizer, seed: int) -> torch.nn.Module:
    """A tiny Qwen2.5-Omni thinker (its multimodal rotary sections fitted to the tiny head size) with PyTorch's
    default random weights."""
    ids = {name: tokenizer.convert_tokens_to_ids(token) for name, token in QWEN2_5_OMNI_NAMED_TOKENS.items()}
    text_config = {**ALM_TEXT_CONFIG, "vocab_size": len(tokenizer), "eos_token_id": tokenizer.eos_token_id,
                   "pad_token_id": tokenizer.pad_token_id,
                   "rope_scaling": {"rope_type": "default", "type": "default", "mrope_section": [2, 2, 4]}}
    audio_config = {**ALM_AUDIO_CONFIG, "output_dim": ALM_TEXT_CONFIG["hidden_size"]}
    config = Qwen2_5OmniThinkerConfig(
        audio_config=audio_config, vision_config=OMNI_VISION_CONFIG, text_config=text_config,
        audio_token_index=ids["audio_token"], image_token_index=ids["image_token"],
        video_token_index=ids["video_token"], audio_start_token_id=ids["audio_bos_token"],
        audio_end_token_id=ids["audio_eos_token"], vision_start_token_id=ids["vision_bos_token"],
        vision_end_token_id=ids["vision_eos_token"])
    torch.manual_seed(seed)
    return reset_weights(Qwen2_5OmniThinkerForConditionalGeneration(config))


def build_random_qwen2_5_omni(out_dir: Path, seed: int = 0) -> Path:
    """Write a tiny random-weight Qwen2.5-Omni thinker with its tokenizer, WhisperFeatureExtractor and chat template
    (chat_template.jinja, where Qwen2_5OmniProcessor.save_pretrained writes it) to `out_dir` (atomically)."""
    tokenizer = train_chat_tokenizer(["<|endoftext|>", "<|im_start|>", "<|im_end|>",
                                      *QWEN2_5_OMNI_NAMED_TOKENS.values()], named_tokens=QWEN2_5_OMNI_NAMED_TOKENS)
    model = random_qwen2_5_omni(tokenizer, seed)
    # Qwen/Qwen2.5-Omni-7B's preprocessor_config.json: 128 mel bins, chunk_length 300 (n_samples 4 800 000)
    features = WhisperFeatureExtractor(feature_size=128, chunk_length=300, return_attention_mask=True)

    def write(staging: Path) -> None:
        model.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        features.save_pretrained(staging)
        (staging / "chat_template.jinja").write_text(QWEN2_5_OMNI_CHAT_TEMPLATE)
    return write_model(out_dir, write)
