"""A random-weight tiny Phi-4-multimodal (phi4_multimodal layout) with its real processor and feature extractor
classes. Gemma 3n has no twin: transformers builds its MobileNet-V5 vision tower with timm (which needs torchvision)
even to hear audio, and neither is installed with zsa-eval (tests/test_alm_gemma_phi.py builds a tiny Gemma 3n
in-process, its vision tower left out)."""

from __future__ import annotations

from pathlib import Path

import torch
from transformers import (
    Phi4MultimodalConfig,
    Phi4MultimodalFeatureExtractor,
    Phi4MultimodalForCausalLM,
    Phi4MultimodalProcessor,
    SiglipImageProcessorPil,
)

from zsa_eval.random_models.alm import ALM_TEXT_CONFIG, train_chat_tokenizer
from zsa_eval.random_models.common import write_model

PHI4_SPECIAL_TOKENS = ["<|endoftext|>", "<|system|>", "<|user|>", "<|assistant|>", "<|end|>", "<|audio|>",
                       "<|image|>"]
PHI4_AUDIO_CONFIG = dict(hidden_size=16, intermediate_size=32, num_blocks=1, num_attention_heads=2,
                         nemo_conv_channels=16, depthwise_separable_out_channel=16, ext_pw_out_channel=16)
PHI4_VISION_CONFIG = dict(hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2)
# The chat template of microsoft/Phi-4-multimodal-instruct's tokenizer_config.json, which transformers'
# convert_phi4_multimodal_weights_to_hf.py copies to the processor: string contents, no newlines, no default system.
PHI4_CHAT_TEMPLATE = (
    "{% for message in messages %}{% if message['role'] == 'system' and 'tools' in message and message['tools'] is "
    "not none %}{{ '<|' + message['role'] + '|>' + message['content'] + '<|tool|>' + message['tools'] + '<|/tool|>' "
    "+ '<|end|>' }}{% else %}{{ '<|' + message['role'] + '|>' + message['content'] + '<|end|>' }}{% endif %}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|assistant|>' }}{% else %}{{ eos_token }}{% endif %}"
)


def random_phi4_multimodal(tokenizer, seed: int) -> Phi4MultimodalForCausalLM:
    """A tiny Phi-4-multimodal with PyTorch's default random weights (plain rotary embeddings: the checkpoint's
    longrope factors are sized for its own head width)."""
    end_id = tokenizer.convert_tokens_to_ids("<|end|>")
    config = Phi4MultimodalConfig(
        **ALM_TEXT_CONFIG, vocab_size=len(tokenizer), bos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.eos_token_id, eos_token_id=[tokenizer.eos_token_id, end_id],
        rope_parameters={"rope_type": "default", "rope_theta": 10000.0, "partial_rotary_factor": 0.75},
        audio_config={**PHI4_AUDIO_CONFIG, "audio_token_id": tokenizer.audio_token_id},
        vision_config={**PHI4_VISION_CONFIG, "image_token_id": tokenizer.image_token_id})
    torch.manual_seed(seed)
    model = Phi4MultimodalForCausalLM(config)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, (torch.nn.Linear, torch.nn.Conv1d, torch.nn.Conv2d, torch.nn.Embedding)):
                module.reset_parameters()
    return model.eval()


def build_random_phi4_multimodal(out_dir: Path, seed: int = 0) -> Path:
    """Write a tiny random-weight Phi-4-multimodal with Phi4MultimodalProcessor and Phi4MultimodalFeatureExtractor to
    `out_dir` (atomically) and return it. Its image processor is SiglipImageProcessorPil, standing in for
    Phi4MultimodalImageProcessor (torchvision only), which a clip never reaches."""
    tokenizer = train_chat_tokenizer(PHI4_SPECIAL_TOKENS,
                                     named_tokens={"audio_token": "<|audio|>", "image_token": "<|image|>"})
    model = random_phi4_multimodal(tokenizer, seed)
    processor = Phi4MultimodalProcessor(image_processor=SiglipImageProcessorPil(),
                                        audio_processor=Phi4MultimodalFeatureExtractor(), tokenizer=tokenizer,
                                        chat_template=PHI4_CHAT_TEMPLATE)

    def write(staging: Path) -> None:
        model.save_pretrained(staging)
        processor.save_pretrained(staging)
    return write_model(out_dir, write)
