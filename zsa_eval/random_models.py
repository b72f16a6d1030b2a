"""Random-weight models built offline, each with a locally trained tokenizer: CLAP (a tiny one for tests and smoke
runs, and one of the full laion/clap-htsat-fused architecture, ~153.5 M parameters, for speed work), PE-Audio
(tiny ones in the `pe_audio_video` and frame-level `pe_audio` layouts, and one of pe-av-small's audio branch) and
tiny audio language models (Qwen2-Audio and Audio Flamingo 3 layouts, with their real processor and feature
extractor classes and a chat template) and MS-CLAP 2022 and 2023 (tiny, and at msclap's own sizes)."""

from __future__ import annotations

import json
import math
import zlib
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



# MS-CLAP twins (zsa_eval/families/msclap_networks.py): msclap's networks at its own sizes (`full`: CNN14 and
# bert-base for 2022, HTSAT-tiny and gpt2 for 2023, about 200 and 160 M parameters) or at small widths (`tiny`),
# written as msclap writes them (a .pth holding {"model": state dict} in its names) beside a config.json and a
# tokenizer made locally (for BERT a WordPiece vocabulary of the corpus's words and characters; for GPT-2 a byte-level
# BPE trained on it, '!' id 0 as in gpt2's vocabulary).
MSCLAP_SIZES = {
    "tiny": dict(d_proj=16, cnn14_channels=[4, 8, 8, 16, 16, 32], cnn14_out_emb=32, htsat_embed_dim=16,
                 htsat_depths=[2, 2, 2, 2], htsat_num_heads=[2, 2, 4, 4],
                 bert=dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                           max_position_embeddings=256),
                 gpt2=dict(n_embd=32, n_layer=2, n_head=2, n_positions=256)),
    "full": dict(bert=dict(), gpt2=dict()),
}
MSCLAP_CORPUS = TOKENIZER_CORPUS + [
    "this is the sound of a person saying yes no up down left right on off stop go!",
    "wow! what a noise, isn't it? (a dog) - barking; 1 2 3",
]
MSCLAP_FRONT_END = ("stored", "perturbed", "absent")  # its kernels as computed, perturbed, or left out of the file


def train_msclap_tokenizer(text_model: str, vocab_size: int = 400):
    """A BERT tokenizer (uncased WordPiece, [CLS] ... [SEP]: the corpus's words and characters, so that any word
    splits into known pieces; built, not trained, as the WordPiece trainer's vocabulary varies from run to run) or a
    GPT-2 one (byte-level BPE trained on the corpus, <|endoftext|> last, no pad token: msclap adds '!')."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers
    from tokenizers.processors import BertProcessing
    from transformers import BertTokenizerFast, GPT2TokenizerFast

    if text_model == "bert":
        normalizer, pre_tokenizer = normalizers.BertNormalizer(lowercase=True), pre_tokenizers.BertPreTokenizer()
        words = sorted({word for line in MSCLAP_CORPUS
                        for word, _ in pre_tokenizer.pre_tokenize_str(normalizer.normalize_str(line))})
        characters = sorted({character for word in words for character in word})
        pieces = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *characters, *(f"##{c}" for c in characters), *words]
        wordpiece = Tokenizer(models.WordPiece({piece: index for index, piece in enumerate(dict.fromkeys(pieces))},
                                               unk_token="[UNK]"))
        wordpiece.normalizer, wordpiece.pre_tokenizer = normalizer, pre_tokenizer
        wordpiece.post_processor = BertProcessing(("[SEP]", wordpiece.token_to_id("[SEP]")),
                                                  ("[CLS]", wordpiece.token_to_id("[CLS]")))
        wordpiece.decoder = decoders.WordPiece()
        return BertTokenizerFast(tokenizer_object=wordpiece, unk_token="[UNK]", sep_token="[SEP]", pad_token="[PAD]",
                                 cls_token="[CLS]", mask_token="[MASK]", do_lower_case=True, model_max_length=512)
    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(MSCLAP_CORPUS * 4, vocab_size=vocab_size, min_frequency=1, show_progress=False)
    bpe.add_special_tokens(["<|endoftext|>"])
    return GPT2TokenizerFast(tokenizer_object=bpe._tokenizer, bos_token="<|endoftext|>", eos_token="<|endoftext|>",
                             unk_token="<|endoftext|>", model_max_length=1024)


def msclap_config(version: str, size: str, tokenizer):
    """The config of a `size` twin of MS-CLAP `version`, its tokenizer in the model folder's tokenizer/."""
    from zsa_eval.families.msclap_networks import VERSIONS, MsClapConfig

    spec = MSCLAP_SIZES[size]
    text_model = VERSIONS[version]["text_model"]
    text_config = {"model_type": text_model, **spec[text_model]}
    if size == "tiny":
        ids = {"pad_token_id": tokenizer.pad_token_id} if text_model == "bert" else \
            {"bos_token_id": tokenizer.eos_token_id, "eos_token_id": tokenizer.eos_token_id}
        text_config |= {"vocab_size": len(tokenizer), **ids}
    widths = {key: spec[key] for key in ("d_proj", "cnn14_channels", "htsat_embed_dim", "htsat_depths",
                                         "htsat_num_heads") if key in spec}
    if size == "tiny":
        widths["out_emb"] = spec["cnn14_out_emb"] if version == "2022" else \
            spec["htsat_embed_dim"] * 2 ** (len(spec["htsat_depths"]) - 1)
    return MsClapConfig.for_version(version, text_config=text_config, tokenizer="tokenizer", **widths)


def random_msclap(config, seed: int, front_end: str = "stored"):
    """An MS-CLAP model with every weight drawn from `seed` (convolutions He-initialized, other matrices N(0,
    1/fan-in), norm scales near 1, biases near 0; the log-mel kernels as computed, or moved by 1% when `front_end`
    is perturbed), then its batch norms' statistics measured on random clips and perturbed, so that activations
    neither vanish nor explode and a statistic that is not loaded shows. The same seed gives the same bytes on any
    machine: the statistics are measured in float64, whose rounding to float32 thread counts and CPUs do not move."""
    from zsa_eval.families.msclap_networks import FRONT_END, MsClapModel

    torch.manual_seed(seed)
    model = MsClapModel(config).eval()
    with torch.no_grad():
        for name, tensor in model.state_dict().items():
            if not tensor.is_floating_point() or name.endswith(("running_mean", "running_var", "attn_mask")):
                continue
            if name.endswith(FRONT_END):
                if front_end == "perturbed":
                    tensor.mul_(1 + 0.01 * torch.randn(tensor.shape, generator=named_generator(seed, name)))
                continue
            tensor.copy_(random_tensor(name, tensor, named_generator(seed, name)))
        calibrate_batch_norms(model, seed)
    return model


def named_generator(seed: int, name: str) -> torch.Generator:
    """A generator for one weight: its values depend on the seed and its name alone."""
    return torch.Generator().manual_seed(seed << 32 | zlib.crc32(name.encode()))


def random_tensor(name: str, tensor: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """A random value for weight `name` of `tensor`'s shape."""
    noise = torch.randn(tensor.shape, generator=generator)
    if name == "logit_scale":
        return 2.3 + 0.2 * noise
    if tensor.dim() == 4:
        return noise * math.sqrt(2 / tensor[0].numel())
    if tensor.dim() >= 2:
        return noise / math.sqrt(4 if "embeddings" in name or ".wte." in name else tensor[0].numel())
    return 1 + 0.1 * noise if name.endswith("weight") else 0.1 * noise


def calibrate_batch_norms(model, seed: int) -> None:
    """Every batch norm's running statistics from one float64 pass over two random clips (noise and a tone), then
    moved by a tenth of a deviation (means) and by up to about 20% (variances)."""
    import copy

    norms = {name: module for name, module in model.audio_encoder.named_modules()
             if isinstance(module, torch.nn.BatchNorm2d)}
    encoder = copy.deepcopy(model.audio_encoder).double().train()
    for name in norms:
        encoder.get_submodule(name).reset_running_stats()
        encoder.get_submodule(name).momentum = None  # a cumulative average: exactly this pass's statistics
    samples = model.config.clip_samples
    time = torch.arange(samples, dtype=torch.float64) / model.config.sampling_rate
    generator = named_generator(seed, "calibration clips")
    encoder(torch.stack([0.05 * (index + 1) * torch.randn(samples, generator=generator, dtype=torch.float64)
                         + 0.3 * torch.sin(2 * math.pi * 330 * (index + 1) * time) for index in range(2)]))
    for name, own in norms.items():
        measured, generator = encoder.get_submodule(name), named_generator(seed, f"audio_encoder.{name}")
        own.running_mean.copy_(measured.running_mean.float() + 0.1 * measured.running_var.sqrt().float()
                               * torch.randn(own.running_mean.shape, generator=generator))
        own.running_var.copy_(measured.running_var.float()
                              * torch.exp(0.2 * torch.randn(own.running_var.shape, generator=generator)))


def build_random_msclap(version: str, size: str, out_dir: Path, seed: int = 0, front_end: str = "stored") -> Path:
    """Write a random-weight MS-CLAP `version` (2022, 2023) of `size` (tiny, full) to `out_dir` (atomically):
    config.json, the .pth msclap reads and tokenizer/; `front_end`: the log-mel kernels stored as computed, perturbed,
    or absent (the loader then computes them)."""
    if size not in MSCLAP_SIZES or front_end not in MSCLAP_FRONT_END:
        raise ValueError(f"unknown MS-CLAP size {size!r} or front_end {front_end!r}; choose from "
                         f"{sorted(MSCLAP_SIZES)} and {MSCLAP_FRONT_END}")
    from zsa_eval.families.msclap_networks import FRONT_END

    tokenizer = train_msclap_tokenizer("bert" if version == "2022" else "gpt2")
    config = msclap_config(version, size, tokenizer)
    state = random_msclap(config, seed, front_end).state_dict()
    if front_end == "absent":
        state = {name: tensor for name, tensor in state.items() if not name.endswith(FRONT_END)}

    def write(staging: Path) -> None:
        (staging / "config.json").write_text(json.dumps(config.to_dict(), indent=2) + "\n")
        torch.save({"model": state}, staging / config.weights_file)
        tokenizer.save_pretrained(staging / "tokenizer")
    return write_model(out_dir, write)

RANDOM_MODELS = {
    "tiny": lambda out_dir, seed: build_random_clap("tiny", out_dir, seed),
    "full": lambda out_dir, seed: build_random_clap("full", out_dir, seed),
    "pe_tiny": lambda out_dir, seed: build_random_pe("tiny", "pe_audio_video", out_dir, seed),
    "pe_frame_tiny": lambda out_dir, seed: build_random_pe("tiny", "pe_audio_frame", out_dir, seed),
    "pe_av_small": lambda out_dir, seed: build_random_pe("small", "pe_audio_video", out_dir, seed),
    "qwen2_audio_tiny": lambda out_dir, seed: build_random_alm("qwen2_audio", out_dir, seed),
    "audioflamingo3_tiny": lambda out_dir, seed: build_random_alm("audioflamingo3", out_dir, seed),
    "msclap_2022_tiny": lambda out_dir, seed: build_random_msclap("2022", "tiny", out_dir, seed),
    "msclap_2023_tiny": lambda out_dir, seed: build_random_msclap("2023", "tiny", out_dir, seed),
    "msclap_2022_full": lambda out_dir, seed: build_random_msclap("2022", "full", out_dir, seed),
    "msclap_2023_full": lambda out_dir, seed: build_random_msclap("2023", "full", out_dir, seed),
}


def build_random_model(random_init: str, out_dir: Path, seed: int = 0) -> Path:
    """The random-weight model named by `model.random_init` (a key of RANDOM_MODELS), written to `out_dir`."""
    if random_init not in RANDOM_MODELS:
        raise UserError(f"model.random_init={random_init} is unknown: use one of {', '.join(RANDOM_MODELS)}")
    return RANDOM_MODELS[random_init](out_dir, seed)
