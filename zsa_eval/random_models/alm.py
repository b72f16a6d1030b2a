"""Random-weight tiny audio language models (Qwen2-Audio and Audio Flamingo 3 layouts), with their real processor and
feature extractor classes and a chat template."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from tokenizers import ByteLevelBPETokenizer
from transformers import (
    AudioFlamingo3Config,
    AudioFlamingo3ForConditionalGeneration,
    AudioFlamingo3Processor,
    Qwen2AudioConfig,
    Qwen2AudioForConditionalGeneration,
    Qwen2AudioProcessor,
    Qwen2Tokenizer,
    WhisperFeatureExtractor,
)

from zsa_eval.random_models.common import TOKENIZER_CORPUS, write_model


ALM_SPECIAL_TOKENS = {
    "qwen2_audio": ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|AUDIO|>", "<|audio_bos|>", "<|audio_eos|>"],
    "audioflamingo3": ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<sound>"],
}
ALM_CORPUS = TOKENIZER_CORPUS + [
    "You are a helpful assistant. Audio 1: system user assistant",
    "What is the main sound in this recording? Answer with one of: yes, no.",
    "Which word does the speaker say? Which emotion does the speaker express? Which music genre is this recording?",
]
ALM_TEXT_CONFIG = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                       num_key_value_heads=1)
ALM_AUDIO_CONFIG = dict(d_model=16, encoder_layers=1, encoder_attention_heads=2, encoder_ffn_dim=32, num_mel_bins=128,
                        max_source_positions=1500)
# The processor chat template transformers' convert_audioflamingo3_to_hf.py writes into nvidia/audio-flamingo-3-hf
# (AudioFlamingo3Processor has no default): one <sound> before the user's text.
AUDIOFLAMINGO3_CHAT_TEMPLATE = (
    "{% if messages[0]['role'] != 'system' %}<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}"
    "{% for m in messages if m['content'] is not none %}<|im_start|>{{ m['role'] }}\n"
    "{% if m['content'] is string %}{{ m['content'] }}{% else %}"
    "{% set audio = namespace(found=False) %}{% set text_buf = namespace(v='') %}"
    "{% for c in m['content'] %}{% if c.get('type') == 'audio' or 'audio' in c %}{% set audio.found = True %}"
    "{% elif c.get('type') == 'text' or 'text' in c %}{% set text_buf.v = text_buf.v + c['text'] %}{% endif %}"
    "{% endfor %}{% if audio.found %}{{ '<sound>' }}{% endif %}{{ text_buf.v }}{% endif %}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def train_chat_tokenizer(special_tokens: list[str], vocab_size: int = 400,
                         named_tokens: dict[str, str] | None = None) -> Qwen2Tokenizer:
    """A byte-level BPE tokenizer in Qwen2's form (its pre-tokenizer, no BOS), trained on a small local corpus, with
    the chat and audio special tokens; `named_tokens`: those a processor reads off the tokenizer by name
    (audio_token: "<|AUDIO|>", ...)."""
    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(ALM_CORPUS * 4, vocab_size=vocab_size, min_frequency=1, special_tokens=special_tokens,
                            show_progress=False)
    trained = json.loads(bpe._tokenizer.to_str())["model"]
    tokenizer = Qwen2Tokenizer(vocab=trained["vocab"], merges=[tuple(merge) for merge in trained["merges"]],
                               extra_special_tokens=named_tokens or {})
    tokenizer.add_special_tokens({"additional_special_tokens": special_tokens[1:]})
    return tokenizer


def random_alm(model_type: str, tokenizer: Qwen2Tokenizer, seed: int) -> torch.nn.Module:
    """A tiny audio language model of `model_type` with PyTorch's default random weights (the models' own
    initializer's are so small that every answer gets about the same log-likelihood)."""
    text_config = {**ALM_TEXT_CONFIG, "vocab_size": len(tokenizer), "eos_token_id": tokenizer.eos_token_id,
                   "pad_token_id": tokenizer.pad_token_id}
    torch.manual_seed(seed)
    if model_type == "qwen2_audio":
        config = Qwen2AudioConfig(audio_config=ALM_AUDIO_CONFIG, text_config=text_config,
                                  audio_token_index=tokenizer.convert_tokens_to_ids("<|AUDIO|>"))
        model = Qwen2AudioForConditionalGeneration(config)
    else:
        config = AudioFlamingo3Config(audio_config=ALM_AUDIO_CONFIG, text_config=text_config,
                                      audio_token_id=tokenizer.convert_tokens_to_ids("<sound>"))
        model = AudioFlamingo3ForConditionalGeneration(config)
    return reset_weights(model)


def reset_weights(model: torch.nn.Module) -> torch.nn.Module:
    """PyTorch's default random weights in every linear, convolution and embedding layer, in eval mode."""
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, (torch.nn.Linear, torch.nn.Conv1d, torch.nn.Embedding)):
                module.reset_parameters()
    return model.eval()


def build_random_alm(model_type: str, out_dir: Path, seed: int = 0) -> Path:
    """Write a tiny random-weight audio language model of `model_type` (qwen2_audio, audioflamingo3) with its
    processor (the real processor and WhisperFeatureExtractor classes; Qwen2AudioProcessor's default chat template,
    Audio Flamingo 3's from its conversion script) to `out_dir` (atomically) and return it."""
    tokenizer = train_chat_tokenizer(ALM_SPECIAL_TOKENS[model_type])
    model = random_alm(model_type, tokenizer, seed)
    features = WhisperFeatureExtractor(feature_size=128, return_attention_mask=True)
    processor = (Qwen2AudioProcessor(feature_extractor=features, tokenizer=tokenizer) if model_type == "qwen2_audio"
                 else AudioFlamingo3Processor(feature_extractor=features, tokenizer=tokenizer,
                                              chat_template=AUDIOFLAMINGO3_CHAT_TEMPLATE))

    def write(staging: Path) -> None:
        model.save_pretrained(staging)
        processor.save_pretrained(staging)
    return write_model(out_dir, write)



# MS-CLAP twins (zsa_eval/families/msclap_networks.py): msclap's networks at its own sizes (`full`: CNN14 and
# bert-base for 2022, HTSAT-tiny and gpt2 for 2023, about 200 and 160 M parameters) or at small widths (`tiny`),
# written as msclap writes them (a .pth holding {"model": state dict} in its names) beside a config.json and a
# tokenizer made locally (for BERT a WordPiece vocabulary of the corpus's words and characters; for GPT-2 a byte-level
# BPE trained on it, '!' id 0 as in gpt2's vocabulary).
