"""The MS-CLAP family beyond its conformance with msclap (tests/test_msclap_conformance.py): msclap's clip
preparation, batch invariance, text handling, precision, loading by folder, bare .pth file, Hub file and
model=auto, the one-line refusals, and runs through the CLI (zero-shot, long_audio=windows, a probe)."""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from conftest import noise, run_cli, tone
from zsa_eval.engine import score_clips
from zsa_eval.errors import UserError
from zsa_eval.families.msclap import msclap_clip
from zsa_eval.families.msclap_config import VERSIONS
from zsa_eval.models import load_model
from zsa_eval.random_models import build_random_msclap

CPU = torch.device("cpu")
LABELS = ["dog", "chirping birds", "rain"]


@pytest.fixture(scope="module")
def twins(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("msclap_twins")
    return {version: build_random_msclap(version, "tiny", root / version) for version in ("2022", "2023")}


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> list[str]:
    """Clips shorter and longer than both windows (5 s, 7 s), at 44.1 and 48 kHz."""
    folder = tmp_path_factory.mktemp("msclap_clips")
    waves = [(tone(300.0, 44100, 1.0), 44100), (noise(1, 48000, 6.0), 48000), (noise(3, 44100, 8.5), 44100),
             (noise(2, 44100, 2.5), 44100), (tone(150.0, 48000, 5.0), 48000)]
    paths = []
    for index, (wave, rate) in enumerate(waves):
        paths.append(str(folder / f"{index}.wav"))
        sf.write(paths[-1], wave, rate)
    return paths


def load(directory: Path, **settings):
    return load_model("msclap", str(directory), CPU, "fp32", **settings)


def test_clips_are_repeated_or_cropped_as_msclap_prepares_them():
    clip = np.arange(10, dtype=np.float32)
    np.testing.assert_array_equal(msclap_clip(clip, 25, seed=3), np.concatenate([clip, clip, clip[:5]]))
    np.testing.assert_array_equal(msclap_clip(clip, 10, seed=3), clip)  # exactly the window: as it is
    starts = set()
    for seed in range(200):
        cropped = msclap_clip(clip, 4, seed)
        start = int(cropped[0])
        random.seed(seed)  # msclap draws its start from Python's global random
        assert start == random.randrange(10 - 4)
        np.testing.assert_array_equal(cropped, clip[start:start + 4])
        starts.add(start)
    assert starts == set(range(6))  # 0 .. length - window - 1: msclap never draws the last start


@pytest.mark.parametrize("version", ["2022", "2023"])
def test_scores_do_not_depend_on_batch_size_and_crops_are_seeded(twins, clips, version):
    loaded = load(twins[version])
    scores = {}
    for batch_size in (1, 3):
        batches = list(score_clips(loaded, clips, clips, LABELS, ["this is the sound of {}"], "embed", batch_size, 0,
                                   7, False, None))
        scores[batch_size] = np.concatenate([batch.probabilities for batch in batches])
    np.testing.assert_allclose(scores[1], scores[3], atol=1e-5, rtol=0)
    assert np.ptp(scores[1], axis=0).max() > 1e-3  # clips score differently
    other_seed = np.concatenate([batch.probabilities for batch in score_clips(
        loaded, clips, clips, LABELS, ["this is the sound of {}"], "embed", 3, 0, 8, False, None)])
    long_clips = [row for row, path in enumerate(clips) if sf.info(path).duration > VERSIONS[version]["duration"]]
    short_clips = [row for row in range(len(clips)) if row not in long_clips]
    np.testing.assert_allclose(other_seed[short_clips], scores[1][short_clips], atol=1e-5, rtol=0)
    assert np.abs(other_seed[long_clips] - scores[1][long_clips]).max() > 1e-6  # another seed, another crop


@pytest.mark.parametrize("version", ["2022", "2023"])
def test_texts_are_never_cut_below_the_models_positions_and_padding_changes_nothing(twins, version):
    family = load(twins[version]).family
    tokens = family.tokens(["dog", "a dog " * 60])
    ids = tokens["input_ids"]
    assert ids.shape[1] > family.config.text_len  # msclap's text_len pads, never cuts
    last = family.tokenizer.convert_tokens_to_ids("<|endoftext|>" if version == "2023" else "[SEP]")
    short = ids[0][tokens["attention_mask"][0].bool()].tolist()
    assert short[-1] == last and (ids[0][len(short):] == 0).all()  # padded with id 0 ('!', [PAD])
    assert ids[1][-1] == last  # the long text whole
    alone = family.raw_text_embeddings(["dog"])
    padded_to_text_len = family.model.text_embeddings(dict(family.tokenizer.pad(
        family.tokenizer(["dog" + (" <|endoftext|>" if version == "2023" else "")]), padding="max_length",
        max_length=family.config.text_len, return_tensors="pt"))).detach()  # as msclap pads it
    torch.testing.assert_close(alone, padded_to_text_len, atol=1e-5, rtol=0)
    torch.testing.assert_close(family.raw_text_embeddings(["dog", "a dog " * 60])[:1], alone, atol=1e-5, rtol=0)
    over = family.tokens(["a dog " * 400])["input_ids"]  # over the tiny model's 256 positions: cut there
    assert over.shape[1] == family.model.caption_encoder.base.config.max_position_embeddings


def test_an_exclamation_mark_moves_gpt2s_pooled_token_as_in_msclap(twins):
    """msclap takes the hidden state at (tokens that are not id 0) - 1; '!' is id 0 (gpt2's vocabulary and the
    twin's), so a '!' in the text moves it one token back: kept, since msclap's figures were measured so."""
    family = load(twins["2023"]).family
    tokens = family.tokens(["yes! a dog"])
    hidden = family.model.caption_encoder.base(**tokens).last_hidden_state
    real = int(tokens["attention_mask"].sum())
    with torch.inference_mode():
        expected = family.model.caption_encoder.projection(hidden[0, real - 2])
    torch.testing.assert_close(family.raw_text_embeddings(["yes! a dog"])[0], expected)


def test_half_precision_keeps_the_log_mel_front_end_in_float32(twins, clips):
    fp32 = load(twins["2023"]).family
    bf16 = load_model("msclap", str(twins["2023"]), CPU, "bf16").family
    waveform = np.asarray(sf.read(clips[0], dtype="float32")[0])
    inputs = [family.collate([family.preparer(CPU)(waveform, 0)]) for family in (fp32, bf16)]
    spectrogram = bf16.model.audio_encoder.base.htsat.spectrogram_extractor(inputs[1]["waveform"])
    assert spectrogram.dtype == torch.float32 and torch.isfinite(spectrogram).all()
    cosine = torch.nn.functional.cosine_similarity(fp32.embed_audio(inputs[0])[0], bf16.embed_audio(inputs[1])[0],
                                                   dim=0)
    assert cosine > 0.99


def test_front_end_kernels_missing_from_the_file_are_computed(tmp_path, clips):
    stored = build_random_msclap("2022", "tiny", tmp_path / "stored", seed=5)
    absent = build_random_msclap("2022", "tiny", tmp_path / "absent", seed=5, front_end="absent")
    waveform = np.asarray(sf.read(clips[2], dtype="float32")[0])
    embeddings = []
    for directory in (stored, absent):
        family = load(directory).family
        embeddings.append(family.raw_audio_embeddings(family.collate([family.preparer(CPU)(waveform, 1)])))
    torch.testing.assert_close(embeddings[0], embeddings[1], atol=1e-5, rtol=0)


def tiny_version_defaults(monkeypatch, twin: Path) -> None:
    """The 2023 version's settings are the twin's (its widths and local tokenizer), so that a bare tiny .pth loads as
    one of Microsoft's would."""
    config = json.loads((twin / "config.json").read_text())
    monkeypatch.setitem(VERSIONS, "2023", {key: config[key] for key in VERSIONS["2023"]} | {
        key: config[key] for key in ("d_proj", "cnn14_channels", "htsat_embed_dim", "htsat_depths", "htsat_num_heads")}
        | {"tokenizer": str(twin / "tokenizer")})


def test_model_auto_reads_the_version_from_a_bare_weights_file(monkeypatch, twins, clips, tmp_path):
    tiny_version_defaults(monkeypatch, twins["2023"])
    from_file = load(shutil.copy(twins["2023"] / "CLAP_weights_2023.pth", tmp_path / "weights.pth"))
    from_folder = load(twins["2023"])
    assert from_file.family.name == "msclap" and from_file.family.settings()["version"] == "2023"
    waveform = np.asarray(sf.read(clips[3], dtype="float32")[0])
    inputs = from_file.family.collate([from_file.family.preparer(CPU)(waveform, 0)])
    torch.testing.assert_close(from_file.family.embed_audio(inputs)[0], from_folder.family.embed_audio(inputs)[0])


def test_a_weights_file_in_a_folder_zsa_eval_wrote_takes_the_folders_config(twins):
    loaded = load(twins["2022"] / "CLAP_weights_2022.pth")
    assert loaded.family.config.cnn14_channels == [4, 8, 8, 16, 16, 32]  # the twin's widths, not msclap's


def test_a_hub_weights_file_is_fetched_and_its_commit_recorded(monkeypatch, twins, tmp_path):
    tiny_version_defaults(monkeypatch, twins["2023"])
    snapshot = tmp_path / "models--microsoft--msclap" / "snapshots" / "0123abcd"
    snapshot.mkdir(parents=True)
    shutil.copy(twins["2023"] / "CLAP_weights_2023.pth", snapshot)
    asked = []

    def hub_download(repo_id, filename, revision=None, local_files_only=False):
        asked.append((repo_id, filename, revision))
        return str(snapshot / filename)

    monkeypatch.setattr("huggingface_hub.hf_hub_download", hub_download)
    loaded = load_model("msclap_2023", "microsoft/msclap", CPU, "fp32", revision="0123abcd",
                        weights_file="CLAP_weights_2023.pth")
    assert asked == [("microsoft/msclap", "CLAP_weights_2023.pth", "0123abcd")]
    assert loaded.model.config._commit_hash == "0123abcd"


def test_an_unreachable_hub_is_one_line(monkeypatch, capsys, hub_unreachable, tmp_path):
    code, _, stderr = run_cli(monkeypatch, capsys, "dataset=synthetic", "model=msclap_2023",
                              f"output_dir={tmp_path / 'run'}")
    assert code == 2 and len(stderr.strip().splitlines()) == 1, stderr
    assert "cannot load CLAP_weights_2023.pth of 'microsoft/msclap'" in stderr
    assert "hf download microsoft/msclap CLAP_weights_2023.pth" in stderr


def without(state_file: Path, out: Path, name: str) -> Path:
    state = torch.load(state_file, weights_only=True)["model"]
    torch.save({"model": {key: value for key, value in state.items() if key != name}}, out)
    return out


@pytest.mark.parametrize("make, message", [
    (lambda twin, tmp: tmp / "missing.pth", "MS-CLAP weights file '{tmp}/missing.pth' does not exist"),
    (lambda twin, tmp: (tmp / "notes.pth").write_text("not weights") and tmp / "notes.pth",
     "cannot read '{tmp}/notes.pth' as an MS-CLAP weights file"),
    (lambda twin, tmp: torch.save({"state_dict": {}}, tmp / "other.pth") or tmp / "other.pth",
     "'{tmp}/other.pth' is not an MS-CLAP weights file: msclap's files hold their weights under 'model'"),
    (lambda twin, tmp: torch.save({"model": {"encoder.weight": torch.zeros(1)}}, tmp / "foreign.pth")
     or tmp / "foreign.pth", "is not an MS-CLAP checkpoint zsa-eval knows: its weights name neither of msclap's"),
    (lambda twin, tmp: shutil.copy(twin / "CLAP_weights_2023.pth", tmp / "tiny.pth") and tmp / "tiny.pth",
     "weight audio_encoder.base.htsat.patch_embed.proj.weight has shape (16, 1, 4, 4), MS-CLAP 2023 needs "
     "(96, 1, 4, 4)"),
])
def test_bad_weights_files_are_refused_in_one_line(twins, tmp_path, make, message):
    path = make(twins["2023"], tmp_path)
    with pytest.raises(UserError) as raised:
        load(path)
    assert message.format(tmp=tmp_path) in str(raised.value) and "\n" not in str(raised.value)


def test_a_checkpoint_lacking_a_weight_is_refused(monkeypatch, twins, tmp_path):
    tiny_version_defaults(monkeypatch, twins["2023"])
    path = without(twins["2023"] / "CLAP_weights_2023.pth", tmp_path / "CLAP_weights_2023.pth",
                   "caption_encoder.projection.linear1.weight")
    with pytest.raises(UserError, match=r"lacks 1 of MS-CLAP 2023's weights \(e.g. "
                                        r"caption_encoder.projection.linear1.weight\), which msclap would leave"):
        load(path)
    with pytest.raises(UserError, match="holds MS-CLAP 2023 weights, but .*config.json' says 2022"):
        load(twins["2022"], weights_file=str(twins["2023"] / "CLAP_weights_2023.pth"))


def test_cli_run_records_the_family_and_its_settings(monkeypatch, capsys, tmp_path):
    out = tmp_path / "run"
    code, stdout, stderr = run_cli(monkeypatch, capsys, "dataset=synthetic", "dataset.clips_per_class=2",
                                   "model=msclap_2022_tiny_random", f"output_dir={out}")
    assert code == 0, stderr
    assert stdout.startswith("synthetic | msclap_2022_tiny_random | auto: accuracy ")
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["family"] == "msclap" and metrics["score_kind"] == "softmax"
    assert metrics["identity"]["family_settings"] == {"version": "2022", "weights_file": "CLAP_weights_2022.pth",
                                                      "duration_s": 5, "text_len": 100}


@pytest.mark.slow
def test_long_audio_windows_and_a_probe_run_through_the_cli(monkeypatch, capsys, tmp_path):
    code, stdout, stderr = run_cli(monkeypatch, capsys, "dataset=synthetic", "dataset.clips_per_class=2",
                                   "dataset.duration_s=16", "model=msclap_2023_tiny_random", "long_audio=windows",
                                   f"output_dir={tmp_path / 'windows'}")
    assert code == 0, stderr
    metrics = json.loads((tmp_path / "windows" / "metrics.json").read_text())
    assert metrics["long_audio"]["n_windows"] == 3 * metrics["n_evaluated"]  # 16 s: 0-7, 7-14, 14-16 s
    code, _, stderr = run_cli(monkeypatch, capsys, "dataset=synthetic", "dataset.clips_per_class=4",
                              "model=msclap_2023_tiny_random", "protocol=linear_probe",
                              "protocol.split_fraction=0.5", f"output_dir={tmp_path / 'probe'}")
    assert code == 0, stderr


@pytest.mark.parametrize("arguments, message", [
    (["model=tiny_random", "model.weights_file=CLAP_weights_2023.pth"],
     "model.weights_file is a setting of MS-CLAP models, which this model file does not set"),
    (["model=msclap_2022_tiny_random", "engine=pipeline"], "pipeline does not support msclap models"),
])
def test_mistakes_are_one_line(monkeypatch, capsys, tmp_path, arguments, message):
    code, _, stderr = run_cli(monkeypatch, capsys, "dataset=synthetic", *arguments, f"output_dir={tmp_path / 'run'}")
    assert code == 2 and message in stderr and len(stderr.strip().splitlines()) == 1, stderr
