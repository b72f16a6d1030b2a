"""zsa-eval against LAION's own code and checkpoints. tests/golden/laion_clap/ holds laion_clap 1.1.7's outputs on
random weights (written by scripts/conformance/laion_golden.py, whose docstring says how to refresh them); here the
same weights are rebuilt from their recipe (scripts/conformance/laion_recipe.py), saved as a checkpoint in
laion_clap's format, loaded through zsa-eval's `.pt` loader (zsa_eval/laion_checkpoint.py) and run on the same
clips and prompts."""

from __future__ import annotations

import gzip
import importlib.util
import json
import os
from functools import cache
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import run_cli
from zsa_eval.audio import load_clip
from zsa_eval.engine import embed_clips, score_clips
from zsa_eval.errors import UserError
from zsa_eval.laion_checkpoint import LAION_FILES, LAION_HUB_REPO, TEXT_MAX_TOKENS, read_state_dict
from zsa_eval.models import load_model

REPO = Path(__file__).resolve().parent.parent
GOLDEN = REPO / "tests" / "golden" / "laion_clap"
TOKENIZER = str(GOLDEN / "tokenizer")
CPU = torch.device("cpu")
TOLERANCE = 1e-4  # float noise: laion_clap and transformers compute the same network with other kernels
LONG_CLIPS = ("long_25s_44k.wav", "long_25s_48k")


def import_recipe():
    spec = importlib.util.spec_from_file_location("laion_recipe", REPO / "scripts" / "conformance" / "laion_recipe.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


recipe = import_recipe()


@cache
def golden(case: str) -> dict:
    return json.loads((GOLDEN / f"{case}.json").read_text())


def save_laion_checkpoint(case: str, path: Path) -> Path:
    """The golden case's random weights, rebuilt from the recipe, saved as laion_clap's training runs save a
    checkpoint (`module.` keys, the epoch and optimizer state with a numpy scalar)."""
    layout = json.loads(gzip.decompress((GOLDEN / golden(case)["layout"]).read_bytes()))
    state = recipe.random_state(layout, golden(case)["weights_seed"])
    assert recipe.weights_digest(state) == golden(case)["weights_sha256"], "the recipe no longer makes these weights"
    torch.save({"epoch": 45, "name": case,
                "state_dict": {key: torch.from_numpy(value) for key, value in recipe.checkpoint_state(state).items()},
                "optimizer": {"state": {}, "param_groups": [{"lr": np.float64(1e-4), "betas": (0.9, 0.99)}]}}, path)
    return path


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    """case -> its laion_clap checkpoint file, written on first use."""
    folder = tmp_path_factory.mktemp("laion_checkpoints")
    return cache(lambda case: save_laion_checkpoint(case, folder / f"{case}.pt"))


@pytest.fixture(scope="module")
def clip_files(tmp_path_factory) -> dict[str, Path]:
    """The golden clips: the synthesized ones written here, the system recordings where Debian installed them."""
    paths = recipe.write_synthesized(tmp_path_factory.mktemp("laion_clips"))
    return paths | {name: Path(path) for name, path in recipe.SYSTEM_CLIPS.items() if Path(path).exists()}


def laion_way(checkpoint: Path, **settings):
    """A checkpoint heard as laion_clap's get_audio_embedding_from_filelist hears clips."""
    return load_model("laion", str(checkpoint), CPU, "fp32", tokenizer=TOKENIZER,
                      **({"short_clip_fusion": "laion", "int16_roundtrip": True, "laion_loader_length": True}
                         | settings))


def embedded(loaded, waveform: np.ndarray, seed: int) -> np.ndarray:
    family = loaded.family
    return family.embed_audio(family.collate([family.preparer(CPU)(waveform, seed)]))[0].numpy()


def max_abs(measured: np.ndarray, encoded: str) -> float:
    return float(np.abs(measured - recipe.decode_array(encoded, measured.shape[-1])).max())


def conformance(case: str, checkpoint: Path, clip_files: dict[str, Path]) -> dict[str, float]:
    """Max abs difference from laion_clap per clip (files, then arrays) and for the prompts' embeddings; the fused
    model's long clips against laion_clap with torchvision's Resize not antialiasing (as when LAION measured)."""
    reference, loaded = golden(case), laion_way(checkpoint)
    unaliased = reference["fusion_without_antialias"]
    differences = {}
    for clip in reference["files"]:
        if clip["name"] not in clip_files:
            continue
        assert recipe.decoded_digest(clip_files[clip["name"]]) == clip["decoded_sha256"], clip["name"]
        waveform = load_clip(str(clip_files[clip["name"]]), 48000, librosa_length=True)
        assert len(waveform) == clip["loaded_samples"], clip["name"]
        differences[clip["name"]] = max_abs(embedded(loaded, waveform, clip["crop_seed"]),
                                            unaliased.get(clip["name"], clip["embedding"]))
    for clip in reference["data"]:
        differences[clip["name"]] = max_abs(embedded(loaded, recipe.data_clip(clip["name"]), clip["crop_seed"]),
                                            unaliased.get(clip["name"], clip["embedding"]))
    tokens = loaded.tokenizer(reference["prompts"], truncation=True)["input_ids"]
    assert tokens == reference["token_ids"] and max(map(len, tokens)) == TEXT_MAX_TOKENS
    differences["prompts"] = max_abs(loaded.family.embed_texts(reference["prompts"]).numpy(),
                                     reference["text_embeddings"])
    assert loaded.model.logit_scale_a.exp().item() == pytest.approx(reference["logit_scale_a"], rel=1e-6)
    return differences


@pytest.mark.parametrize("case", ["htsat_tiny_fused", pytest.param("htsat_tiny", marks=pytest.mark.slow),
                                  pytest.param("htsat_base", marks=pytest.mark.slow)])
def test_a_laion_checkpoint_embeds_as_laion_clap_does(case, checkpoints, clip_files):
    """Every clip (8, 22.05, 44.1 and 48 kHz; 2.2 s to 25 s, long ones cropped as seeded) and prompt within float
    noise of laion_clap's own embedding, with the int16 round trip and librosa's length on and fused checkpoints
    hearing short clips laion's way."""
    differences = conformance(case, checkpoints(case), clip_files)
    assert len(differences) >= len(recipe.SYNTHESIZED) + len(recipe.DATA_CLIPS) + 1
    assert max(differences.values()) <= TOLERANCE, differences


def test_the_fused_global_view_differs_where_torchvision_antialiases(checkpoints, clip_files):
    """laion_clap 1.1.7 under torchvision >= 0.17 antialiases the shrunk global view of a long clip; zsa-eval (and
    transformers) shrink it as torchvision did when LAION measured its figures. Short clips are not affected."""
    loaded, reference = laion_way(checkpoints("htsat_tiny_fused")), golden("htsat_tiny_fused")
    clip = next(clip for clip in reference["data"] if clip["name"] == "long_25s_48k")
    measured = embedded(loaded, recipe.data_clip(clip["name"]), clip["crop_seed"])
    assert max_abs(measured, reference["fusion_without_antialias"][clip["name"]]) <= TOLERANCE
    assert max_abs(measured, clip["embedding"]) > 10 * TOLERANCE


def test_librosa_length_pads_a_44k_clip_by_one_zero_and_the_engine_uses_it(checkpoints, clip_files):
    """model.laion_loader_length: 5 s at 44.1 kHz become 240,001 samples (laion_clap's librosa.load: one zero more,
    so repeat-padding plays the clip once, then silence) instead of 240,000 (twice); the embed engine resamples
    each clip so, and the result matches laion_clap's."""
    path = str(clip_files["esc50_like_5s_44k.wav"])
    exact, librosa_like = load_clip(path, 48000), load_clip(path, 48000, librosa_length=True)
    assert len(exact) == 240000 and len(librosa_like) == 240001 and librosa_like[-1] == 0
    np.testing.assert_array_equal(librosa_like[:-1], exact)
    checkpoint = checkpoints("htsat_tiny_fused")
    reference = next(clip for clip in golden("htsat_tiny_fused")["files"] if clip["name"] == "esc50_like_5s_44k.wav")
    for loaded, within in ((laion_way(checkpoint), True), (laion_way(checkpoint, laion_loader_length=False), False)):
        [batch] = list(embed_clips(loaded, [path], ["clip"], 1, 0, 0, progress=False))
        assert (max_abs(batch.audio[0].numpy(), reference["embedding"]) <= TOLERANCE) == within
    assert laion_way(checkpoint).family.settings()["laion_loader_length"] is True


@pytest.mark.slow
def test_a_fused_laion_checkpoint_in_transformers_mode_equals_the_pipeline(checkpoints, clip_files):
    loaded = load_model("laion", str(checkpoints("htsat_tiny_fused")), CPU, "fp32", tokenizer=TOKENIZER,
                        short_clip_fusion="transformers")
    clips = [str(clip_files[name]) for name in ("esc50_like_5s_44k.wav", "exactly_10s_48k.wav", "long_25s_44k.wav")]
    labels, prompts = ["dog", "rain", "siren"], ["This is a sound of {}."]
    results = {engine: np.concatenate([batch.probabilities for batch in score_clips(
        loaded, clips, clips, labels, prompts, engine, 2, 0, 0, False)]) for engine in ("embed", "pipeline")}
    np.testing.assert_allclose(results["embed"], results["pipeline"], atol=1e-5, rtol=0)


def test_loading_the_pt_equals_loading_its_converted_directory(checkpoints, clip_files, tmp_path):
    """The converted model saved with save_pretrained and loaded back as a transformers checkpoint: the same
    weights, processor and embeddings."""
    direct = load_model("laion", str(checkpoints("htsat_tiny_fused")), CPU, "fp32", tokenizer=TOKENIZER)
    direct.model.save_pretrained(tmp_path)
    direct.processor.save_pretrained(tmp_path)
    converted = load_model("converted", str(tmp_path), CPU, "fp32")
    converted_state = converted.model.state_dict()
    assert all(torch.equal(tensor, converted_state[name]) for name, tensor in direct.model.state_dict().items())
    assert converted.feature_extractor.to_dict() == direct.feature_extractor.to_dict()
    waveform = load_clip(str(clip_files["esc50_like_5s_44k.wav"]), 48000)
    for loaded in (direct, converted):
        loaded.embeddings = embedded(loaded, waveform, 0), loaded.family.embed_texts(recipe.PROMPTS).numpy()
    for mine, theirs in zip(direct.embeddings, converted.embeddings):
        np.testing.assert_array_equal(mine, theirs)


def test_the_architecture_is_read_from_the_checkpoint(checkpoints):
    """HTSAT tiny or base, fusion or not, the text tower's depth: from the tensors' shapes; RoBERTa's layer-norm
    epsilon (1e-5, laion_clap's roberta-base) and laion_clap's 77-token limit; the processor laion_clap's
    preprocessing amounts to."""
    fused = load_model("laion", str(checkpoints("htsat_tiny_fused")), CPU, "fp32", tokenizer=TOKENIZER)
    audio, text = fused.model.config.audio_config, fused.model.config.text_config
    assert (audio.enable_fusion, audio.depths, audio.patch_embeds_hidden_size, audio.hidden_size) == \
        (True, [2, 2, 6, 2], 96, 768)
    assert (text.num_hidden_layers, text.layer_norm_eps, fused.tokenizer.model_max_length) == \
        (recipe.TEXT_TOWER["num_hidden_layers"], 1e-5, TEXT_MAX_TOKENS)
    extractor = fused.feature_extractor
    assert (extractor.truncation, extractor.padding, extractor.frequency_min, extractor.frequency_max) == \
        ("fusion", "repeatpad", 50, 14000)
    assert fused.family.short_clip_fusion == "laion"
    layout = json.loads(gzip.decompress((GOLDEN / golden("htsat_base")["layout"]).read_bytes()))
    base = {entry["key"]: entry["shape"] for entry in layout}
    assert base["audio_branch.norm.weight"] == [1024] and \
        len({key.split(".blocks.")[1].split(".")[0] for key in base if key.startswith("audio_branch.layers.2.")
             and ".blocks." in key}) == 12


def test_a_checkpoint_is_read_without_running_its_code(tmp_path, checkpoints):
    """A pickle that would call a function on load (here os.system) loads as the tensors it holds: the call is an
    inert placeholder."""
    marker = tmp_path / "ran"

    class Payload:
        def __reduce__(self):
            return os.system, (f"touch {marker}",)

    path = tmp_path / "payload.pt"
    torch.save({"state_dict": read_state_dict(checkpoints("htsat_tiny_fused")), "payload": Payload()}, path)
    tensors = read_state_dict(path)
    assert not marker.exists() and "audio_branch.patch_embed.proj.weight" in tensors


def test_the_presets_name_laions_seven_checkpoints_on_the_hub():
    import yaml

    presets = {yaml.safe_load(path.read_text())["name_or_path"]: path.stem
               for path in (REPO / "conf" / "model").glob("laion_*.yaml")}
    assert set(presets) == {f"{LAION_HUB_REPO}/{file}" for file in LAION_FILES}


NOT_A_CHECKPOINT = [
    ("missing", "model file '{path}' does not exist: set model.name_or_path to a laion_clap .pt file"),
    ("text", "cannot read {path} as a PyTorch checkpoint (UnpicklingError: "),
    ("other", "{path} is not a laion_clap CLAP checkpoint this loader reads (no audio_branch.patch_embed.proj.weight)"),
    ("truncated", "{path} is not a laion_clap CLAP checkpoint this loader reads (14 weights missing, e.g. "
                  "audio_model.audio_encoder.patch_embed.fusion_model.global_att."),
]


@pytest.mark.parametrize("kind, message", NOT_A_CHECKPOINT)
def test_a_wrong_pt_is_one_line_and_exit_2(monkeypatch, capsys, tmp_path, checkpoints, kind, message):
    path = tmp_path / f"{kind}.pt"
    if kind == "text":
        path.write_text("not a checkpoint\n")
    elif kind == "other":
        torch.save({"state_dict": {"linear.weight": torch.zeros(2, 2)}}, path)
    elif kind == "truncated":
        state = torch.load(checkpoints("htsat_tiny_fused"), weights_only=False)["state_dict"]
        torch.save({key: value for key, value in state.items() if ".fusion_model.global_att." not in key}, path)
    code, stdout, stderr = run_cli(monkeypatch, capsys, "dataset=synthetic", "model=auto", f"model.name_or_path={path}",
                                   "model.name=laion", f"model.tokenizer={TOKENIZER}", f"output_dir={tmp_path / 'run'}")
    assert code == 2 and stderr.count("\n") == 1, stderr
    assert stderr.startswith("zsa-eval: error: " + message.format(path=path)), stderr


def test_a_hub_checkpoint_without_the_hub_names_the_download(hub_unreachable):
    with pytest.raises(UserError, match=r"cannot load lukewys/laion_clap/630k-best.pt: neither a local file nor in "
                                        r"the Hub cache.*hf download lukewys/laion_clap 630k-best.pt"):
        load_model("laion", f"{LAION_HUB_REPO}/630k-best.pt", CPU, "fp32", tokenizer=TOKENIZER)
