"""Random-weight tiny models of zsa_eval/families/alm_omni.py's families: a Qwen2.5-Omni thinker (the real feature
extractor class, a locally trained tokenizer carrying the processor's named audio tokens, the checkpoint's chat
template) and a Voxtral (a tiny tekken.json for mistral-common's tokenizer, VoxtralProcessor's feature extractor)."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import torch
from transformers import Qwen2_5OmniThinkerConfig, Qwen2_5OmniThinkerForConditionalGeneration, WhisperFeatureExtractor

from zsa_eval.families.alm_omni import require_mistral_common
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


# Voxtral (zsa_eval/families/alm_omni.py): its tokenizer is mistral-common's tekken.json, read by transformers'
# MistralCommonBackend; the special tokens in mistral-common's order, with [AUDIO] at id 24 and [BEGIN_AUDIO] at 25
# (VoxtralProcessor takes id 24 as the audio token), the vocabulary every byte and a few merges, and the audio
# section of mistralai/Voxtral-Mini-3B-2507's tekken.json (16 kHz, 12.5 audio tokens a second, 128 mel bins, audio
# padded to whole 30 s chunks).
TEKKEN_PATTERN = (r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+|[^\r\n\p{L}\p{N}]?"
                  r"[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n/]*|"
                  r"\s*[\r\n]+|\s+(?!\S)|\s+")
TEKKEN_MERGES = [b"th", b"the", b" th", b" the", b"er", b"in", b"an", b"on", b"is", b"it", b"og", b"dog", b" dog"]
TEKKEN_SPECIAL_COUNT = 64
VOXTRAL_AUDIO = {"sampling_rate": 16000, "frame_rate": 12.5, "chunk_length_s": 30.0,
                 "audio_encoding_config": {"num_mel_bins": 128, "hop_length": 160, "window_size": 400}}


def tekken_tokenizer_file() -> dict:
    """A tiny tekken.json (mistral-common's tokenizer file, version v7) with Voxtral's audio section."""
    from mistral_common.tokens.tokenizers.base import SpecialTokens

    names = [token.value for token in SpecialTokens]
    leading = names[:names.index("[TOOL_CONTENT]") + 1]
    audio = ["[AUDIO]", "[BEGIN_AUDIO]"]
    specials = (leading + [f"<SPECIAL_{rank}>" for rank in range(len(leading), 24)] + audio
                + [name for name in names if name not in leading + audio])
    pieces = [bytes([value]) for value in range(256)] + TEKKEN_MERGES
    vocab = [{"rank": rank, "token_bytes": base64.b64encode(piece).decode(), "token_str": None}
             for rank, piece in enumerate(pieces)]
    return {"config": {"pattern": TEKKEN_PATTERN, "num_vocab_tokens": len(vocab),
                       "default_vocab_size": len(vocab) + TEKKEN_SPECIAL_COUNT,
                       "default_num_special_tokens": TEKKEN_SPECIAL_COUNT, "version": "v7"},
            "vocab": vocab, "audio": VOXTRAL_AUDIO,
            "special_tokens": [{"rank": rank, "token_str": name, "is_control": True}
                               for rank, name in enumerate(specials)]}


def random_voxtral(vocab_size: int, seed: int) -> torch.nn.Module:
    """A tiny Voxtral (its encoder's 1500 frames a chunk regrouped 4 at a time: 375 audio tokens per 30 s) with
    PyTorch's default random weights."""
    from transformers import VoxtralConfig, VoxtralForConditionalGeneration

    hidden = ALM_AUDIO_CONFIG["d_model"]
    audio_config = {"hidden_size": hidden, "intermediate_size": 4 * hidden, "num_hidden_layers": 1,
                    "num_attention_heads": 2, "num_mel_bins": 128, "max_source_positions": 1500}
    text_config = {**ALM_TEXT_CONFIG, "vocab_size": vocab_size, "head_dim": 16, "bos_token_id": 1,
                   "eos_token_id": 2, "pad_token_id": 11}
    torch.manual_seed(seed)
    return reset_weights(VoxtralForConditionalGeneration(VoxtralConfig(audio_config=audio_config,
                                                                       text_config=text_config, audio_token_id=24)))


def build_random_voxtral(out_dir: Path, seed: int = 0) -> Path:
    """Write a tiny random-weight Voxtral with a tiny tekken.json and VoxtralProcessor's WhisperFeatureExtractor to
    `out_dir` (atomically). Needs mistral-common, as Voxtral's own tokenizer does."""
    require_mistral_common("model=voxtral_tiny_random")
    tokenizer_file = tekken_tokenizer_file()
    model = random_voxtral(tokenizer_file["config"]["default_vocab_size"], seed)
    features = WhisperFeatureExtractor(feature_size=128, return_attention_mask=False)

    def write(staging: Path) -> None:
        model.save_pretrained(staging)
        features.save_pretrained(staging)
        (staging / "tekken.json").write_text(json.dumps(tokenizer_file))
        (staging / "processor_config.json").write_text(json.dumps({"processor_class": "VoxtralProcessor"}))
    return write_model(out_dir, write)
