"""LAION's original CLAP checkpoints (laion_clap `.pt` files) as transformers' ClapModel, converted on load.

The file is read without running its code (a pickle of tensors, plus the optimizer state and numpy scalars of a
training run: anything else in it becomes an inert placeholder); its tensors are renamed from laion_clap's module
names to transformers' (the renaming transformers' conversion script applies, written out here) and checked
tensor by tensor; the architecture (HTSAT tiny or base, with or without the fusion branch; the RoBERTa text tower's
size) is read from the tensors' shapes. The processor is what laion_clap's own preprocessing amounts to: its audio
settings (48 kHz, 10 s, 64 mel bins from 50 Hz to 14 kHz, repeat-padding; fusion or `rand_trunc` crops as the
checkpoint has the fusion branch or not) and roberta-base's tokenizer, truncating at laion_clap's 77 tokens.
"""

from __future__ import annotations

import math
import pickle
import re
import types
from collections.abc import Mapping
from pathlib import Path

import torch

from zsa_eval.errors import UserError

LAION_HUB_REPO = "lukewys/laion_clap"
LAION_FILES = ("630k-best.pt", "630k-audioset-best.pt", "630k-fusion-best.pt", "630k-audioset-fusion-best.pt",
               "music_audioset_epoch_15_esc_90.14.pt", "music_speech_epoch_15_esc_89.25.pt",
               "music_speech_audioset_epoch_15_esc_89.98.pt")
SUFFIX = ".pt"
TEXT_MAX_TOKENS = 77  # laion_clap's tokenizer call: padding to, and truncation at, 77 tokens
ROBERTA_HEAD_SIZE = 64  # roberta-base: 768 wide, 12 heads
ROBERTA_LAYER_NORM_EPS = 1e-5  # roberta-base's config, from which laion_clap builds its text tower
# laion_clap's audio_cfg (model_configs/HTSAT-tiny.json and HTSAT-base.json hold the same one)
AUDIO_SETTINGS = dict(sampling_rate=48000, hop_length=480, max_length_s=10, fft_window_size=1024, frequency_min=50,
                      frequency_max=14000, padding="repeatpad")

# laion_clap module names -> transformers' ClapModel names, applied in order to each key
RENAMES = (
    (r"^audio_branch\.", "audio_model.audio_encoder."),
    (r"^text_branch\.", "text_model."),
    (r"\.bn0\.", ".batch_norm."),
    (r"\.norm1\.", ".layernorm_before."),
    (r"\.norm2\.", ".layernorm_after."),
    (r"\.attn\.proj\.", ".attention.output.dense."),
    (r"\.attn\.", ".attention.self."),
    (r"\.mlp\.fc1\.", ".intermediate.dense."),
    (r"\.mlp\.fc2\.", ".output.dense."),
    (r"^(text|audio)_projection\.0\.", r"\1_projection.linear1."),  # nn.Sequential(Linear, ReLU, Linear)
    (r"^(text|audio)_projection\.2\.", r"\1_projection.linear2."),
)
# Tensors transformers computes itself: the feature extractor's STFT and mel filters, the shifted-window masks and
# relative position indices, RoBERTa's position ids.
DERIVED = re.compile(r"^audio_branch\.(spectrogram_extractor|logmel_extractor)\.|\.attn_mask$"
                     r"|\.relative_position_index$|^text_branch\.embeddings\.position_ids$")
# Tensors no embedding uses: HTSAT's AudioSet head, the MLPs laion_clap trains for its linear-probe loss.
UNUSED = re.compile(r"^audio_branch\.(tscam_conv|head)\.|^(text|audio)_transform\.")
COMPUTED_BY_TRANSFORMERS = re.compile(r"\.relative_position_index$|^text_model\.embeddings\.(position_ids|token_type_ids)$")


def is_laion_checkpoint(name_or_path: str | None) -> bool:
    """A laion_clap checkpoint is named by its file: a local `.pt` path, or OWNER/REPO/FILE.pt on the Hub."""
    return bool(name_or_path) and str(name_or_path).endswith(SUFFIX)


def hub_file(name_or_path: str) -> tuple[str, str] | None:
    """(repository, file name) of a Hub file name written OWNER/REPO/FILE.pt; None for anything else."""
    parts = name_or_path.split("/")
    if len(parts) != 3 or name_or_path.startswith((".", "~")) or not all(parts):
        return None
    return f"{parts[0]}/{parts[1]}", parts[2]


def checkpoint_file(name_or_path: str, revision: str | None, online: bool) -> Path:
    """The local file of a laion_clap checkpoint: the path itself, or the Hub file downloaded (or cached)."""
    path = Path(name_or_path).expanduser()
    if path.is_file():
        return path
    files = ", ".join(LAION_FILES)
    if path.exists():
        raise UserError(f"model.name_or_path={name_or_path} is not a file: name a laion_clap .pt file, or one of "
                        f"LAION's on the Hub as {LAION_HUB_REPO}/FILE ({files})")
    found = hub_file(name_or_path)
    if found is None:
        raise UserError(f"model file {name_or_path!r} does not exist: set model.name_or_path to a laion_clap .pt "
                        f"file, or to one of LAION's on the Hub as {LAION_HUB_REPO}/FILE ({files})")
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError, HfHubHTTPError, LocalEntryNotFoundError

    repository, filename = found
    try:
        return Path(hf_hub_download(repository, filename, revision=revision, local_files_only=not online))
    except LocalEntryNotFoundError as error:
        raise UserError(f"cannot load {name_or_path}: neither a local file nor in the Hub cache, and the Hub is "
                        f"unreachable (or offline mode is set); download it where the Hub is reachable (hf download "
                        f"{repository} {filename}) or set model.name_or_path=/path/to/{filename}") from error
    except EntryNotFoundError as error:
        raise UserError(f"cannot load {name_or_path}: {repository} has no file {filename!r} (nor is it a local "
                        f"file); LAION's checkpoints are {LAION_HUB_REPO}/FILE ({files})") from error
    except (HfHubHTTPError, OSError, ValueError) as error:
        raise UserError(f"cannot load {name_or_path}: neither a local file nor a Hub file this machine can fetch "
                        f"({type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}); set "
                        "model.name_or_path to a laion_clap .pt file") from error


class Opaque:
    """What an object of any class the reader does not allow becomes: inert, whatever it is built from."""

    def __new__(cls, *args, **kwargs):
        return object.__new__(cls)

    def __init__(self, *args, **kwargs):
        pass

    def __setstate__(self, state):
        pass


ALLOWED = {  # the classes and functions a checkpoint's pickle may call: tensors, containers, numpy scalars
    ("collections", "OrderedDict"), ("torch._utils", "_rebuild_tensor_v2"), ("torch._utils", "_rebuild_parameter"),
    ("torch._utils", "_rebuild_parameter_with_state"), ("torch", "Size"), ("builtins", "set"),
    ("builtins", "frozenset"), ("_codecs", "encode"), ("numpy", "dtype"), ("numpy", "ndarray"), ("numpy.core.multiarray", "scalar"),
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "scalar"),
    ("numpy._core.multiarray", "_reconstruct"),
}


class CheckpointUnpickler(pickle.Unpickler):
    """pickle's reader, calling only what ALLOWED names (numpy's and torch's dtype classes too): any other global
    is an inert placeholder, so reading a file runs none of its code."""

    def find_class(self, module: str, name: str):
        if module.startswith("numpy.core"):  # pickled by numpy 1, read by numpy 2
            module = module.replace("numpy.core", "numpy._core", 1)
        if (module, name) in ALLOWED or module == "numpy.dtypes" or (module == "torch" and name.endswith("Storage")):
            return super().find_class(module, name)
        return Opaque


RESTRICTED_PICKLE = types.ModuleType("zsa_eval_checkpoint_pickle")
RESTRICTED_PICKLE.Unpickler = CheckpointUnpickler
RESTRICTED_PICKLE.load = lambda file, **options: CheckpointUnpickler(file, **options).load()


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """The tensors of a laion_clap checkpoint (its `state_dict`, without the `module.` prefix of a distributed
    run), read without running the file's code; anything else is one line."""
    try:
        try:
            loaded = torch.load(path, map_location="cpu", weights_only=False, pickle_module=RESTRICTED_PICKLE,
                                mmap=True)
        except RuntimeError as error:
            if "mmap" not in str(error):
                raise
            loaded = torch.load(path, map_location="cpu", weights_only=False, pickle_module=RESTRICTED_PICKLE)
    except (pickle.UnpicklingError, RuntimeError, EOFError, OSError, ValueError, AttributeError, TypeError) as error:
        raise UserError(f"cannot read {path} as a PyTorch checkpoint ({type(error).__name__}: "
                        f"{str(error).splitlines()[0] if str(error) else 'no detail'}); name a laion_clap .pt file "
                        "(model.name_or_path)") from error
    state = loaded.get("state_dict", loaded) if isinstance(loaded, Mapping) else None
    if not isinstance(state, Mapping) or not state:
        raise not_clap(path, "it holds no state dict")
    tensors = {str(key): value for key, value in state.items() if isinstance(value, torch.Tensor)}
    if tensors and all(key.startswith("module.") for key in tensors):
        tensors = {key[len("module."):]: value for key, value in tensors.items()}
    return tensors


def not_clap(path: Path | str, why: str) -> UserError:
    return UserError(f"{path} is not a laion_clap CLAP checkpoint this loader reads ({why}): name one of LAION's "
                     f"HTSAT + RoBERTa checkpoints ({LAION_HUB_REPO}/FILE: {', '.join(LAION_FILES)}), or set "
                     "model.name_or_path to a directory written by save_pretrained")


def numbered(state: Mapping[str, torch.Tensor], pattern: str) -> list[int]:
    """The indices N that keys matching `pattern` (one capture group) take, in order."""
    return sorted({int(match.group(1)) for key in state for match in [re.match(pattern, key)] if match})


def audio_config(state: Mapping[str, torch.Tensor]) -> dict:
    """ClapAudioConfig settings of the HTSAT in `state`: widths, depths, heads, window and fusion from its shapes."""
    patch = state["audio_branch.patch_embed.proj.weight"]  # (width, channels, patch, patch)
    layers = numbered(state, r"audio_branch\.layers\.(\d+)\.")
    depths = [len(numbered(state, rf"audio_branch\.layers\.{layer}\.blocks\.(\d+)\.")) for layer in layers]
    tables = [state[f"audio_branch.layers.{layer}.blocks.0.attn.relative_position_bias_table"] for layer in layers]
    mlp = state["audio_branch.layers.0.blocks.0.mlp.fc1.weight"]
    fused = "audio_branch.patch_embed.mel_conv2d.weight" in state
    settings = dict(
        patch_embeds_hidden_size=patch.shape[0], patch_embed_input_channels=patch.shape[1], patch_size=patch.shape[2],
        depths=depths, num_attention_heads=[table.shape[1] for table in tables],
        window_size=(math.isqrt(tables[0].shape[0]) + 1) // 2, mlp_ratio=mlp.shape[0] / mlp.shape[1],
        hidden_size=state["audio_branch.norm.weight"].shape[0], num_mel_bins=state["audio_branch.bn0.weight"].shape[0],
        qkv_bias="audio_branch.layers.0.blocks.0.attn.qkv.bias" in state,
        enable_patch_layer_norm="audio_branch.patch_embed.norm.weight" in state,
        projection_dim=state["audio_projection.2.weight"].shape[0], enable_fusion=fused,
        fusion_type="aff_2d" if fused else None)
    if fused:
        settings["aff_block_r"] = patch.shape[0] // state["audio_branch.patch_embed.fusion_model.local_att.0.weight"].shape[0]
    return settings


def text_config(state: Mapping[str, torch.Tensor]) -> dict:
    """ClapTextConfig settings of the RoBERTa in `state`: its sizes from the shapes, the rest roberta-base's."""
    vocabulary, width = state["text_branch.embeddings.word_embeddings.weight"].shape
    return dict(
        vocab_size=vocabulary, hidden_size=width, num_attention_heads=width // ROBERTA_HEAD_SIZE,
        num_hidden_layers=len(numbered(state, r"text_branch\.encoder\.layer\.(\d+)\.")),
        intermediate_size=state["text_branch.encoder.layer.0.intermediate.dense.weight"].shape[0],
        max_position_embeddings=state["text_branch.embeddings.position_embeddings.weight"].shape[0],
        type_vocab_size=state["text_branch.embeddings.token_type_embeddings.weight"].shape[0],
        layer_norm_eps=ROBERTA_LAYER_NORM_EPS, hidden_act="gelu", pad_token_id=1, bos_token_id=0, eos_token_id=2,
        projection_dim=state["text_projection.2.weight"].shape[0])


def renamed(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """`state` under transformers' names: qkv projections split into query, key and value; derived and unused
    tensors left out."""
    converted = {}
    for key, value in state.items():
        if DERIVED.search(key) or UNUSED.search(key):
            continue
        name = key
        for pattern, replacement in RENAMES:
            name = re.sub(pattern, replacement, name)
        if ".attention.self.qkv." in name:
            for part, chunk in zip(("query", "key", "value"), value.chunk(3, dim=0)):
                converted[name.replace(".qkv.", f".{part}.")] = chunk
        else:
            converted[name] = value
    return converted


REQUIRED = ("audio_branch.patch_embed.proj.weight", "audio_branch.norm.weight", "audio_branch.bn0.weight",
            "audio_branch.layers.0.blocks.0.attn.relative_position_bias_table",
            "audio_branch.layers.0.blocks.0.mlp.fc1.weight", "audio_projection.2.weight",
            "text_branch.embeddings.word_embeddings.weight", "text_branch.embeddings.position_embeddings.weight",
            "text_branch.embeddings.token_type_embeddings.weight",
            "text_branch.encoder.layer.0.intermediate.dense.weight", "text_projection.2.weight")


def convert(state: Mapping[str, torch.Tensor], path: Path | str):
    """A ClapModel holding the laion_clap tensors of `state`: every one of its weights from the file, every tensor
    of the file used or known to be derived or unused, or one line saying which did not fit."""
    from transformers import ClapConfig, ClapModel

    absent = [key for key in REQUIRED if key not in state]
    if absent:
        raise not_clap(path, f"no {absent[0]}")
    config = ClapConfig(text_config=text_config(state), audio_config=audio_config(state),
                        projection_dim=state["audio_projection.2.weight"].shape[0])
    model = ClapModel(config)
    converted = renamed(state)
    expected = {key for key in model.state_dict() if not COMPUTED_BY_TRANSFORMERS.search(key)}
    missing, unexpected = sorted(expected - set(converted)), sorted(set(converted) - set(model.state_dict()))
    if missing or unexpected:
        what = (f"{len(missing)} weights missing, e.g. {missing[0]}" if missing else "") + \
            ("; " if missing and unexpected else "") + \
            (f"{len(unexpected)} tensors of no ClapModel weight, e.g. {unexpected[0]}" if unexpected else "")
        raise not_clap(path, what)
    try:
        model.load_state_dict(converted, strict=False)
    except RuntimeError as error:
        raise not_clap(path, next((line.strip() for line in str(error).splitlines() if "size mismatch" in line),
                                  str(error).splitlines()[0])) from error
    return model


def load_laion_checkpoint(name_or_path: str, revision: str | None, online: bool, tokenizer: str):
    """(ClapModel, ClapProcessor) of a laion_clap checkpoint named by file or Hub file name; `tokenizer`: the text
    tower's tokenizer (roberta-base, or a saved RoBERTa tokenizer's directory)."""
    from transformers import AutoTokenizer, ClapFeatureExtractor, ClapProcessor

    path = checkpoint_file(name_or_path, revision, online)
    model = convert(read_state_dict(path), name_or_path)
    feature_extractor = ClapFeatureExtractor(
        feature_size=model.config.audio_config.num_mel_bins, **AUDIO_SETTINGS,
        truncation="fusion" if model.config.audio_config.enable_fusion else "rand_trunc")
    try:
        text_tokenizer = AutoTokenizer.from_pretrained(tokenizer, local_files_only=not online,
                                                       model_max_length=TEXT_MAX_TOKENS)
    except (OSError, ValueError) as error:
        raise UserError(f"cannot load tokenizer {tokenizer!r}, which laion_clap checkpoints use for text "
                        f"({type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}); download it "
                        "where the Hub is reachable (hf download roberta-base), or set model.tokenizer to a saved "
                        "RoBERTa tokenizer's directory") from error
    return model, ClapProcessor(feature_extractor=feature_extractor, tokenizer=text_tokenizer)
