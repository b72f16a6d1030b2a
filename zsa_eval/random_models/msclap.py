"""Random-weight MS-CLAP 2022 and 2023 (tiny, and at msclap's own sizes), as msclap's own weight files."""

from __future__ import annotations

import json
import math
import zlib
from pathlib import Path

import torch
from tokenizers import ByteLevelBPETokenizer

from zsa_eval.random_models.common import TOKENIZER_CORPUS, write_model


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
    from zsa_eval.families.msclap_config import VERSIONS, MsClapConfig

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
    from zsa_eval.families.msclap_audio import FRONT_END
    from zsa_eval.families.msclap_networks import MsClapModel

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
    from zsa_eval.families.msclap_audio import FRONT_END

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
