"""Random-weight models built offline, each with a locally trained tokenizer: CLAP (a tiny one for tests and smoke
runs, and one of the full laion/clap-htsat-fused architecture, ~153.5 M parameters, for speed work), PE-Audio
(tiny ones in the `pe_audio_video` and frame-level `pe_audio` layouts, and one of pe-av-small's audio branch) and
tiny audio language models (Qwen2-Audio and Audio Flamingo 3 layouts, with their real processor and feature
extractor classes and a chat template)."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import save_file
from tokenizers import ByteLevelBPETokenizer
from tokenizers.processors import RobertaProcessing
from transformers import (
    AudioFlamingo3Config,
    AudioFlamingo3ForConditionalGeneration,
    AudioFlamingo3Processor,
    ClapConfig,
    ClapFeatureExtractor,
    ClapModel,
    ClapProcessor,
    PeAudioConfig,
    PeAudioFeatureExtractor,
    PeAudioFrameLevelModel,
    PeAudioModel,
    PeAudioVideoConfig,
    Qwen2AudioConfig,
    Qwen2AudioForConditionalGeneration,
    Qwen2AudioProcessor,
    Qwen2Tokenizer,
    RobertaTokenizerFast,
    WhisperFeatureExtractor,
)

from zsa_eval.errors import UserError
from zsa_eval.staging import write_folder

SPECIAL_TOKENS = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
TOKENIZER_CORPUS = [
    "This is a sound of {}.", "A sound of {}.", "The sound of {}.", "A recording of {}.", "An audio clip of {}.",
    "dog rooster pig cow frog cat hen insects sheep crow rain sea waves crackling fire crickets chirping birds",
    "water drops wind pouring water toilet flush thunderstorm crying baby sneezing clapping breathing coughing",
    "footsteps laughing brushing teeth snoring drinking sipping door wood knock mouse click keyboard typing",
    "door wood creaks can opening washing machine vacuum cleaner clock alarm clock tick glass breaking",
    "helicopter chainsaw siren car horn engine train church bells airplane fireworks hand saw",
    "low hum high beep white noise rising chirp clicks music speech silence tone",
]

SIZES = {
    "tiny": dict(
        text_config=dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                         max_position_embeddings=80),
        audio_config=dict(hidden_size=128, patch_embeds_hidden_size=16, depths=[1, 1, 1, 1],
                          num_attention_heads=[1, 1, 2, 2], enable_fusion=True, fusion_type="aff_2d"),
        projection_dim=16,
    ),
    "full": dict(
        text_config=dict(vocab_size=50265, max_position_embeddings=514, type_vocab_size=1),
        audio_config=dict(enable_fusion=True, fusion_type="aff_2d"),
        projection_dim=512,
    ),
}


def train_tokenizer(vocab_size: int = 400) -> RobertaTokenizerFast:
    """A byte-level BPE tokenizer with RoBERTa's <s> ... </s> framing, trained on a small local corpus."""
    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(TOKENIZER_CORPUS * 4, vocab_size=vocab_size, min_frequency=1,
                            special_tokens=SPECIAL_TOKENS, show_progress=False)
    bpe._tokenizer.post_processor = RobertaProcessing(("</s>", bpe.token_to_id("</s>")),
                                                      ("<s>", bpe.token_to_id("<s>")))
    return RobertaTokenizerFast(tokenizer_object=bpe._tokenizer, bos_token="<s>", eos_token="</s>",
                                unk_token="<unk>", pad_token="<pad>", mask_token="<mask>", model_max_length=64)


def build_random_clap(size: str, out_dir: Path, seed: int = 0) -> Path:
    """Write a random-weight ClapModel and its processor to `out_dir` (atomically) and return it."""
    if size not in SIZES:
        raise ValueError(f"unknown random model size {size!r}; choose one of {sorted(SIZES)}")
    tokenizer = train_tokenizer()
    spec = SIZES[size]
    text_config = {"vocab_size": len(tokenizer), **spec["text_config"], "pad_token_id": tokenizer.pad_token_id,
                   "bos_token_id": tokenizer.bos_token_id, "eos_token_id": tokenizer.eos_token_id}
    config = ClapConfig(text_config=text_config, audio_config=spec["audio_config"],
                        projection_dim=spec["projection_dim"])
    torch.manual_seed(seed)
    model = ClapModel(config).eval()
    processor = ClapProcessor(feature_extractor=ClapFeatureExtractor(), tokenizer=tokenizer)

    def write(staging: Path) -> None:
        model.save_pretrained(staging)
        processor.save_pretrained(staging)
    return write_model(out_dir, write)


def write_model(out_dir: Path, write) -> Path:
    """Write a model folder at `out_dir` through `write(staging)`; a folder of other files there is refused."""
    return write_folder(out_dir, write, "config.json",
                        f"{out_dir} holds files but no model (config.json): zsa-eval writes a random-weight model "
                        "only into a new or empty folder, or over one it wrote; point model.name_or_path (or the "
                        "output folder) at a new folder")


# PE-Audio shapes. `small`: the audio branch of facebook/pe-av-small as far as it can be known offline: the text
# model as transformers' PeAudioConfig default (ModernBERT, 22 layers of 1024, the 50368-token vocabulary), the DAC
# codec and audio transformer as perception_models' defaults (64 channels, strides 2-8-10-12; 16 layers of 1024).
PE_SIZES = {
    "tiny": dict(
        text_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2),
        audio_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                          head_dim=16, dac_config=dict(encoder_hidden_size=4, codebook_dim=8)),
    ),
    "small": dict(
        text_config=dict(vocab_size=50368, hidden_size=1024, intermediate_size=2624, num_hidden_layers=22,
                         num_attention_heads=16),
        audio_config=dict(hidden_size=1024, intermediate_size=2752, num_hidden_layers=16, num_attention_heads=8,
                          head_dim=128, dac_config=dict(encoder_hidden_size=64, codebook_dim=128)),
    ),
}
PE_LAYOUTS = ("pe_audio_video", "pe_audio", "pe_audio_frame")


def pe_audio_config(size: str, tokenizer: RobertaTokenizerFast) -> PeAudioConfig:
    spec = PE_SIZES[size]
    ids = {"pad_token_id": tokenizer.pad_token_id, "bos_token_id": tokenizer.bos_token_id,
           "eos_token_id": tokenizer.eos_token_id, "cls_token_id": tokenizer.bos_token_id,
           "sep_token_id": tokenizer.eos_token_id}
    text_config = {"model_type": "modernbert", "vocab_size": len(tokenizer), **spec["text_config"], **ids}
    audio_config = {**spec["audio_config"], "dac_config": {"downsampling_ratios": [2, 8, 10, 12],
                                                           **spec["audio_config"]["dac_config"]}}
    return PeAudioConfig(text_config=text_config, audio_config=audio_config)


def random_pe_audio(config: PeAudioConfig, frame_level: bool, seed: int) -> PeAudioModel:
    """A PE-Audio model with PyTorch's default random weights (its own initializer's are so small that every clip
    gets the same embedding, and it zeroes the biases, which hides padding leaks that trained weights show), and a
    logit scale and bias that put the tiny model's logits around 0, so the scores spread."""
    torch.manual_seed(seed)
    model = (PeAudioFrameLevelModel if frame_level else PeAudioModel)(config).eval()
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, (torch.nn.Linear, torch.nn.Conv1d, torch.nn.Embedding)):
                module.reset_parameters()
        model.text_audio_logit_scale.fill_(5.0)
        model.text_audio_logit_bias.fill_(10.0)
    return model


def pe_audio_video_checkpoint(model: PeAudioModel, tokenizer: RobertaTokenizerFast) -> tuple[PeAudioVideoConfig, dict]:
    """The config and weights of a `pe_audio_video` checkpoint (facebook/pe-av-* layout) whose audio branch is
    `model`: the text model at `text_model.*`, the rest at `audio_model.*`, no video tower (PeAudioVideoModel needs
    timm to be built; zsa-eval loads only the audio branch)."""
    config = PeAudioVideoConfig(text_config=model.config.text_config.to_dict(),
                                audio_video_config={"audio_config": model.config.audio_config.to_dict()})
    config.architectures = ["PeAudioVideoModel"]
    weights = {name if name.startswith("text_model.") else f"audio_model.{name}": tensor.contiguous().clone()
               for name, tensor in model.state_dict().items()}
    return config, weights


def build_random_pe(size: str, layout: str, out_dir: Path, seed: int = 0) -> Path:
    """Write a random-weight PE-Audio checkpoint of `layout` (pe_audio_video, pe_audio, pe_audio_frame), with its
    feature extractor and tokenizer, to `out_dir` (atomically) and return it."""
    if size not in PE_SIZES or layout not in PE_LAYOUTS:
        raise ValueError(f"unknown PE-Audio size {size!r} or layout {layout!r}; choose from {sorted(PE_SIZES)} "
                         f"and {PE_LAYOUTS}")
    tokenizer = train_tokenizer()
    model = random_pe_audio(pe_audio_config(size, tokenizer), layout == "pe_audio_frame", seed)

    def write(staging: Path) -> None:
        if layout == "pe_audio_video":
            config, weights = pe_audio_video_checkpoint(model, tokenizer)
            config.save_pretrained(staging)
            save_file(weights, staging / "model.safetensors", metadata={"format": "pt"})
        else:
            model.save_pretrained(staging)
        PeAudioFeatureExtractor().save_pretrained(staging)
        tokenizer.save_pretrained(staging)
    return write_model(out_dir, write)


# Tiny audio language models. The audio encoder keeps the real models' 1500 positions (the encoders take exactly 30 s
# of features, 3000 frames) and 128 mel bins (the WhisperFeatureExtractor of both checkpoints); everything else is
# small. The chat turns, audio placeholders and end of turn are the real checkpoints' special tokens.
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


def train_chat_tokenizer(special_tokens: list[str], vocab_size: int = 400) -> Qwen2Tokenizer:
    """A byte-level BPE tokenizer in Qwen2's form (its pre-tokenizer, no BOS), trained on a small local corpus, with
    the chat and audio special tokens."""
    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(ALM_CORPUS * 4, vocab_size=vocab_size, min_frequency=1, special_tokens=special_tokens,
                            show_progress=False)
    trained = json.loads(bpe._tokenizer.to_str())["model"]
    tokenizer = Qwen2Tokenizer(vocab=trained["vocab"], merges=[tuple(merge) for merge in trained["merges"]])
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


RANDOM_MODELS = {
    "tiny": lambda out_dir, seed: build_random_clap("tiny", out_dir, seed),
    "full": lambda out_dir, seed: build_random_clap("full", out_dir, seed),
    "pe_tiny": lambda out_dir, seed: build_random_pe("tiny", "pe_audio_video", out_dir, seed),
    "pe_frame_tiny": lambda out_dir, seed: build_random_pe("tiny", "pe_audio_frame", out_dir, seed),
    "pe_av_small": lambda out_dir, seed: build_random_pe("small", "pe_audio_video", out_dir, seed),
    "qwen2_audio_tiny": lambda out_dir, seed: build_random_alm("qwen2_audio", out_dir, seed),
    "audioflamingo3_tiny": lambda out_dir, seed: build_random_alm("audioflamingo3", out_dir, seed),
}


def build_random_model(random_init: str, out_dir: Path, seed: int = 0) -> Path:
    """The random-weight model named by `model.random_init` (a key of RANDOM_MODELS), written to `out_dir`."""
    if random_init not in RANDOM_MODELS:
        raise UserError(f"model.random_init={random_init} is unknown: use one of {', '.join(RANDOM_MODELS)}")
    return RANDOM_MODELS[random_init](out_dir, seed)
