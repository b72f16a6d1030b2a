"""model=mteb: mteb's audio models through zsa-eval, on tiny random checkpoints of three architectures mteb wraps
(HuBERT, AST, CLAP) saved to temporary folders and loaded by mteb's own wrapper classes. zsa-eval's embeddings of a
clip equal what mteb's own `encode` gives for it; a model that is not batch-invariant is run clip by clip."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from conftest import run_cli
from zsa_eval.engine import embed_clips, native_unless
from zsa_eval.errors import UserError
from zsa_eval.models import load_model
from zsa_eval.random_models import build_random_clap

mteb = pytest.importorskip("mteb")
needs_torchaudio = pytest.mark.skipif(importlib.util.find_spec("torchaudio") is None,
                                      reason="mteb's audio wrappers need torchaudio (mteb's audio extra)")

HUBERT, AST, CLAP = "facebook/hubert-base-ls960", "MIT/ast-finetuned-audioset-10-10-0.4593", "laion/clap-htsat-unfused"
CLIP_SECONDS = (0.5, 1.3, 0.8, 2.1)  # unequal lengths: a batch pads them


def save_tiny_hubert(folder: Path, norm: str) -> Path:
    from transformers import HubertConfig, HubertModel, Wav2Vec2FeatureExtractor

    torch.manual_seed(0)
    config = HubertConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=37,
                          conv_dim=(16, 16), conv_stride=(5, 4), conv_kernel=(10, 4), num_conv_pos_embeddings=8,
                          num_conv_pos_embedding_groups=2, feat_extract_norm=norm, do_stable_layer_norm=norm == "layer")
    HubertModel(config).save_pretrained(folder)
    Wav2Vec2FeatureExtractor(return_attention_mask=norm == "layer").save_pretrained(folder)
    return folder


def save_tiny_ast(folder: Path) -> Path:
    from transformers import ASTConfig, ASTFeatureExtractor, ASTModel

    torch.manual_seed(0)
    ASTModel(ASTConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=37,
                       num_mel_bins=32, max_length=64)).save_pretrained(folder)
    ASTFeatureExtractor(num_mel_bins=32, max_length=64).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory) -> dict[str, Path]:
    """Tiny random checkpoints by the mteb model whose wrapper loads them."""
    root = tmp_path_factory.mktemp("mteb_checkpoints")
    return {HUBERT: save_tiny_hubert(root / "hubert", "layer"), AST: save_tiny_ast(root / "ast"),
            CLAP: build_random_clap("tiny", root / "clap")}


def loaded(name: str, folder: Path):
    return load_model(name, str(folder), torch.device("cpu"), "fp32", family="mteb")


def write_clips(folder: Path, rate: int) -> list[str]:
    """Seeded noise clips of CLIP_SECONDS at `rate` (16-bit WAV: zsa-eval and mteb decode the same samples)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    paths = []
    for number, seconds in enumerate(CLIP_SECONDS):
        path = folder / f"clip{number}.wav"
        sf.write(path, (0.3 * rng.standard_normal(int(seconds * rate))).astype(np.float32), rate, subtype="PCM_16")
        paths.append(str(path))
    return paths


def zsa_eval_embeddings(model, paths: list[str]) -> np.ndarray:
    """The clips through zsa-eval's engine (decoded, prepared alone, batched by the engine)."""
    batches = embed_clips(model, paths, paths, batch_size=3, num_workers=0, seed=0, progress=False,
                          long_audio=native_unless(None, model))
    return np.concatenate([torch.stack(batch.audio).numpy() for batch in batches])


def mteb_embeddings(family, paths: list[str], batch_size: int) -> np.ndarray:
    """mteb's own encode of the same files, as its evaluators give a dataset's audio column."""
    from datasets import Audio, Dataset
    from mteb._create_dataloaders import create_dataloader

    dataset = Dataset.from_dict({"audio": paths}).cast_column("audio", Audio())
    loader = create_dataloader(dataset, task_metadata=family.metadata, input_column="audio", batch_size=batch_size)
    return np.asarray(family.wrapper.encode(loader, task_metadata=family.metadata, hf_split="test",
                                            hf_subset="default", show_progress_bar=False))


@needs_torchaudio
@pytest.mark.parametrize("name", [AST, pytest.param(HUBERT, marks=pytest.mark.slow),
                                  pytest.param(CLAP, marks=pytest.mark.slow)])
def test_zsa_evals_embeddings_of_clips_are_mtebs_own(name, checkpoints, tmp_path):
    model = loaded(name, checkpoints[name])
    paths = write_clips(tmp_path, model.sampling_rate)
    ours = zsa_eval_embeddings(model, paths)
    assert not model.family.clip_by_clip
    assert np.abs(ours - mteb_embeddings(model.family, paths, batch_size=2)).max() <= 1e-6
    assert ours.shape[0] == len(paths) and np.abs(ours[0] - ours[1]).max() > 1e-3  # the clips are told apart


@needs_torchaudio
@pytest.mark.slow
def test_an_audio_text_model_scores_by_mtebs_similarity(checkpoints):
    family = loaded(CLAP, checkpoints[CLAP]).family
    assert family.kind == "embedding" and loaded(AST, checkpoints[AST]).family.kind == "audio_encoder"
    labels = ["dog", "rain on a roof", "a bell"]
    audio = [torch.from_numpy(row) for row in mteb_embeddings(family, write_clips(Path(checkpoints[CLAP]) / "clips",
                                                                                   family.sampling_rate), 4)]
    classifier = family.classifier(labels, ["{}"])
    texts = family.embed_texts(labels)
    cosine = torch.nn.functional.normalize(torch.stack(audio), dim=-1) @ torch.nn.functional.normalize(texts, dim=-1).T
    assert torch.allclose(family.logits(audio, classifier), cosine, atol=1e-6)  # CLAP's ModelMeta: cosine
    from zsa_eval.integrations.mteb import ZsaEvalModel

    back_in_mteb = ZsaEvalModel.from_config(family, ["cache=false"]).mteb_model_meta
    assert back_in_mteb.similarity_fn_name.value == "cosine" and back_in_mteb.modalities == ["audio", "text"]


@needs_torchaudio
@pytest.mark.slow
def test_a_model_that_batching_changes_is_run_clip_by_clip_and_says_so(checkpoints, tmp_path, monkeypatch, capsys):
    """A group-norm HuBERT normalises over the padding; mteb encodes it clip by clip, and with that turned off,
    zsa-eval finds out on its probe clips and encodes each clip alone."""
    from mteb.models.model_implementations import hubert_models

    monkeypatch.setattr(hubert_models, "single_clip_dataloader", lambda inputs, reason: inputs)
    model = loaded(HUBERT, save_tiny_hubert(tmp_path / "group_norm", "group"))
    family = model.family
    assert family.clip_by_clip and family.settings()["clip_by_clip"] is True
    assert family.settings()["batch_deviation"] > 1e-5
    assert "is not batch-invariant" in capsys.readouterr().err
    paths = write_clips(tmp_path / "clips", model.sampling_rate)
    ours = zsa_eval_embeddings(model, paths)
    assert np.abs(ours - mteb_embeddings(family, paths, batch_size=1)).max() <= 1e-6
    assert np.abs(ours - mteb_embeddings(family, paths, batch_size=4)).max() > 1e-4  # what batching would give


@needs_torchaudio
def test_the_cache_key_holds_mtebs_model_revision_and_version(checkpoints):
    family = loaded(AST, checkpoints[AST]).family
    settings = family.cache_identity()["settings"]
    assert settings["mteb_model"] == AST and settings["mteb_version"] == mteb.__version__
    assert settings["wrapper"] == "mteb.models.model_implementations.ast_model:ASTWrapper"
    assert settings["mteb_revision"] is None  # a local folder: no Hub revision was loaded
    assert family.cache_identity()["weights"] != loaded(HUBERT, checkpoints[HUBERT]).family.cache_identity()["weights"]


@pytest.mark.parametrize(("name", "expected"), [
    ("hubert-base", "model.name=hubert-base is not one of mteb 2.26.24's models; close matches: "
                    "facebook/hubert-base-ls960"),
    ("sentence-transformers/all-MiniLM-L6-v2", "mteb's model sentence-transformers/all-MiniLM-L6-v2 takes text "
                                               "input, not audio: model=mteb evaluates mteb's audio models"),
])
def test_a_wrong_model_name_is_one_line(name, expected, monkeypatch, capsys):
    code, _, stderr = run_cli(monkeypatch, capsys, "dataset=synthetic", "model=mteb", f"model.name={name}")
    assert code == 2 and len(stderr.strip().splitlines()) == 1
    assert expected in stderr


@needs_torchaudio
@pytest.mark.slow
def test_a_probe_runs_end_to_end_and_zero_shot_is_refused(checkpoints, tmp_path, monkeypatch, capsys):
    common = ["dataset=synthetic", "dataset.clips_per_class=4", "model=mteb", f"model.name={HUBERT}",
              f"model.name_or_path={checkpoints[HUBERT]}", f"cache_dir={tmp_path / 'cache'}"]
    code, _, stderr = run_cli(monkeypatch, capsys, *common, f"output_dir={tmp_path / 'zeroshot'}")
    assert code == 2 and "no text tower: use protocol=linear_probe" in stderr
    code, stdout, stderr = run_cli(monkeypatch, capsys, *common, "protocol=linear_probe",
                                   f"output_dir={tmp_path / 'probe'}")
    assert code == 0, stderr
    metrics = json.loads((tmp_path / "probe" / "metrics.json").read_text())
    assert metrics["family"] == "mteb" and metrics["n_evaluated"] == 20
    assert metrics["identity"]["family_settings"]["mteb_model"] == HUBERT
    assert metrics["identity"]["family_settings"]["clip_by_clip"] is False


@needs_torchaudio
@pytest.mark.slow
def test_an_audio_text_model_runs_zero_shot_end_to_end(checkpoints, tmp_path, monkeypatch, capsys):
    common = ["dataset=synthetic", "dataset.clips_per_class=4", "model=mteb", f"model.name={CLAP}",
              f"model.name_or_path={checkpoints[CLAP]}", f"cache_dir={tmp_path / 'cache'}", "save_embeddings=true"]
    code, _, stderr = run_cli(monkeypatch, capsys, *common, f"output_dir={tmp_path / 'first'}")
    assert code == 0, stderr
    code, _, stderr = run_cli(monkeypatch, capsys, *common, f"output_dir={tmp_path / 'again'}")
    assert code == 0, stderr
    first, again = (json.loads((tmp_path / name / "metrics.json").read_text()) for name in ("first", "again"))
    assert first["task"] == "classification" and first["n_evaluated"] == 20
    assert again["accuracy"] == first["accuracy"] and again["cache_hits"] == 20
    embeddings = np.load(tmp_path / "first" / "embeddings" / "audio.npy")
    assert np.allclose(np.linalg.norm(embeddings, axis=1), 1.0, atol=1e-5)  # mteb's CLAP wrapper normalises


def test_without_torchaudio_loading_is_one_line(checkpoints, monkeypatch):
    monkeypatch.setattr("mteb.models.model_meta.ModelMeta._missing_dependencies",
                        lambda self, groups: ['torchaudio; extra == "audio"'])
    with pytest.raises(UserError, match=rf"^model=mteb model.name={AST}: Model {AST} is missing required "
                                        r"dependencies: torchaudio.*pip install mteb\[audio\]"):
        loaded(AST, checkpoints[AST])
