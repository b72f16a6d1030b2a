"""A model family of one's own (zsa_eval.api): found by entry point or dotted path, run like the built-in ones, and
refused in one line, exit 2, when it breaks the contract (tests/plugin_families.py breaks it one way each)."""

from __future__ import annotations

import json
from importlib import metadata

import numpy as np
import pandas as pd
import pytest
import torch

import plugin_families
from conftest import run_cli
from toy_family import ToyClapFamily, ToyEncoderFamily, random_toy_clap
from zsa_eval.api import check_batch_invariance
from zsa_eval.entry_points import GROUP
from zsa_eval.families import registry
from zsa_eval.families.alm import AudioFlamingo3Family, Qwen2AudioFamily
from zsa_eval.families.alm_gemma_phi import Gemma3nFamily, Phi4MultimodalFamily
from zsa_eval.families.alm_omni import Qwen2_5OmniFamily
from zsa_eval.families.clap import ClapFamily
from zsa_eval.families.msclap import MsClapFamily
from zsa_eval.families.mteb_model import MtebAudioFamily
from zsa_eval.families.pe_audio import PeAudioFamily

import zsa_eval

CPU = torch.device("cpu")
TOY = ("dataset=synthetic", "model=plugin", "batch_size=8")
LABEL = "(plugin_families:"


def toy_run(monkeypatch, capsys, tmp_path, family: str, *arguments: str, name: str = "run", entry: bool = False):
    """The CLI in this process on the synthetic dataset with `family` (a class of plugin_families, a dotted path,
    or, `entry`, an entry point's name); (exit code, stdout, stderr, run directory)."""
    out = tmp_path / name
    path = family if ":" in family or entry else f"plugin_families:{family}"
    code, stdout, stderr = run_cli(monkeypatch, capsys, *TOY, f"model.family={path}", f"model.name={name}",
                                   f"output_dir={out}", *arguments)
    return code, stdout, stderr, out


def one_line(code: int, stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1 and "Traceback" not in stderr, stderr
    return lines[0]


def scores(run_dir) -> np.ndarray:
    table = pd.read_parquet(run_dir / "scores.parquet")
    return table[[column for column in table if column.startswith("prob:")]].to_numpy()


def test_the_builtin_families_come_through_the_same_entry_points():
    found = registry.family_entry_points()
    assert {name: entry.value for name, entry in found.items() if entry.value.startswith("zsa_eval.")} == {
        "clap": "zsa_eval.families.clap:ClapFamily", "pe_audio": "zsa_eval.families.pe_audio:PeAudioFamily",
        "msclap": "zsa_eval.families.msclap:MsClapFamily", "qwen2_audio": "zsa_eval.families.alm:Qwen2AudioFamily",
        "audioflamingo3": "zsa_eval.families.alm:AudioFlamingo3Family",
        "qwen2_5_omni": "zsa_eval.families.alm_omni:Qwen2_5OmniFamily",
        "voxtral": "zsa_eval.families.alm_omni:VoxtralFamily",
        "gemma3n": "zsa_eval.families.alm_gemma_phi:Gemma3nFamily",
        "phi4_multimodal": "zsa_eval.families.alm_gemma_phi:Phi4MultimodalFamily",
        "mteb": "zsa_eval.families.mteb_model:MtebAudioFamily"}
    assert registry.registered_families()[:9] == [AudioFlamingo3Family, ClapFamily, Gemma3nFamily, MsClapFamily,
                                                  MtebAudioFamily, PeAudioFamily, Phi4MultimodalFamily,
                                                  Qwen2_5OmniFamily, Qwen2AudioFamily]
    assert registry.family_class("clap") is ClapFamily
    assert registry.family_class("toy_family:ToyClapFamily") is ToyClapFamily
    assert registry.family_class("toy_family.ToyEncoderFamily") is ToyEncoderFamily


def test_a_family_by_dotted_path_runs_and_is_recorded(monkeypatch, capsys, tmp_path):
    code, stdout, _, out = toy_run(monkeypatch, capsys, tmp_path, "toy_family:ToyClapFamily")
    assert code == 0, stdout
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["family"] == "toy_clap" and metrics["n_evaluated"] == 40
    assert metrics["identity"]["weight_fingerprint"] == ToyClapFamily(random_toy_clap(0), CPU, torch.float32) \
        .weight_fingerprint
    assert metrics["config"]["model"]["family"] == "toy_family:ToyClapFamily"
    assert np.allclose(scores(out).sum(axis=1), 1.0, atol=1e-5)


@pytest.mark.slow
def test_family_options_reach_the_family_and_shape_its_cache_key(monkeypatch, capsys, tmp_path):
    runs = {}
    for seed in (0, 1):
        code, _, _, out = toy_run(monkeypatch, capsys, tmp_path, "toy_family:ToyClapFamily",
                                  f"+model.options.seed={seed}", name=f"seed{seed}")
        assert code == 0
        runs[seed] = json.loads((out / "metrics.json").read_text())
    assert runs[0]["identity"]["weight_fingerprint"] != runs[1]["identity"]["weight_fingerprint"]
    assert runs[1]["cache_hits"] == 0  # other weights: none of seed 0's embeddings reused
    code, _, stderr, out = toy_run(monkeypatch, capsys, tmp_path, "toy_family:ToyClapFamily", "+model.options.sed=1",
                                   name="typo")
    assert one_line(code, stderr) == ("zsa-eval: error: model.options.sed is not an option of toy_clap: it takes "
                                      "seed, dim, window_seconds")
    assert not out.exists()


@pytest.mark.slow
def test_an_audio_encoder_serves_the_probes_and_refuses_what_needs_text(monkeypatch, capsys, tmp_path):
    code, stdout, _, out = toy_run(monkeypatch, capsys, tmp_path, "toy_family:ToyEncoderFamily",
                                   "protocol=linear_probe")
    assert code == 0 and "linear_probe" in stdout
    assert json.loads((out / "metrics.json").read_text())["accuracy"] > 0.5  # random features separate the sounds
    refusal = ("protocol=zeroshot compares audio with text embeddings, and toy_encoder models are audio encoders "
               "with no text tower: use protocol=linear_probe, or protocol=few_shot without text_init, with this model")
    for arguments, needs in (((), refusal),
                             (("protocol=few_shot", "protocol.text_init=true"),
                              "protocol.text_init=true compares audio with text")):
        code, _, stderr, out = toy_run(monkeypatch, capsys, tmp_path, "toy_family:ToyEncoderFamily", *arguments,
                                       name="refused")
        assert needs in one_line(code, stderr) and not out.exists()


@pytest.mark.slow  # a sweep of two runs
def test_under_protocol_mteb_an_audio_encoder_is_refused_text_tasks_and_a_sweep_skips_them(monkeypatch, capsys,
                                                                                           tmp_path):
    """As mteb leaves out the tasks of modalities a model lacks: a run is one line, a sweep (suite=maeb) skips it."""
    code, _, stderr, out = toy_run(monkeypatch, capsys, tmp_path, "toy_family:ToyEncoderFamily", "protocol=mteb",
                                   "protocol.kind=zeroshot")
    assert "protocol=mteb (zeroshot, mteb's zeroshot evaluation) compares audio with text" in one_line(code, stderr)
    assert not out.exists()
    code, stdout, stderr = run_cli(monkeypatch, capsys, "-m", *TOY, "model.family=toy_family:ToyEncoderFamily",
                                   "model.name=encoder", "protocol=mteb", "protocol.kind=zeroshot,classification",
                                   f"results_dir={tmp_path / 'results'}", f"hydra.sweep.dir={tmp_path / 'sweep'}")
    skipped = [line for line in stderr.splitlines() if " skipped: " in line]
    assert code == 0 and len(skipped) == 1 and skipped[0].startswith("zsa-eval: job 0 skipped: protocol=mteb (zero")
    assert len(list((tmp_path / "results").rglob("metrics.json"))) == 1 and "mteb" in stdout


@pytest.mark.parametrize("family, message", [
    ("NoTexts", "model family 'no_texts' (plugin_families:NoTexts) (model.family=plugin_families:NoTexts) does not "
                "implement collate, combine_prompts, embed_audio, embed_texts, load, logits, preparer, scores: add "
                "them (see zsa_eval.api)"),
    ("NotAFamily", "model.family=plugin_families:NotAFamily is <class 'plugin_families.NotAFamily'>, not a model "
                   "family: it must be a subclass of zsa_eval.api.EmbeddingFamily, AudioEncoderFamily or "
                   "ScoringFamily"),
    ("Missing", "model.family=plugin_families:Missing: module 'plugin_families' has no 'Missing'"),
    ("no_such_module:Family", "model.family=no_such_module:Family: module 'no_such_module' does not import "
                              "(ModuleNotFoundError: No module named 'no_such_module'); install the package that "
                              "holds it, or check the path"),
    ("LoadsNothing", "model family 'loads_nothing' (plugin_families:LoadsNothing): load returned a NoneType; return "
                     "an instance of LoadsNothing"),
    ("SkipsInit", "model family 'skips_init' (plugin_families:SkipsInit): __init__ did not call ModelFamily.__init__; "
                  "call super().__init__(device, dtype, model) in the family's constructor"),
    ("RaisesOnImportOfWeights", "model family 'raises_on_load' (plugin_families:RaisesOnImportOfWeights) failed in "
                                "load: KeyError: 'weights'"),
])
def test_a_family_that_cannot_load_is_one_line_and_writes_nothing(monkeypatch, capsys, tmp_path, family, message):
    code, _, stderr, out = toy_run(monkeypatch, capsys, tmp_path, family)
    assert one_line(code, stderr) == f"zsa-eval: error: {message}"
    assert not out.exists()


@pytest.mark.parametrize("family, message", [
    ("WrongRank", "embed_audio returned an audio embedding of rank 2 (shape (1, 32)) where rank 1 is expected; return "
                  "one vector per clip or text"),
    ("Float64", "embed_audio returned an audio embedding of dtype torch.float64; return float32 tensors (.float())"),
    ("NotFinite", "embed_audio returned NaN or infinite values in an audio embedding; check the model's weights and "
                  "inputs (a float16 overflow, say)"),
    ("OtherTextDimension", "embed_audio returned embeddings of dimension 32, where embed_texts returned dimension 16; "
                           "audio and text embeddings must share one dimension"),
    ("EmptyBatch", "embed_audio returned no embeddings for 8 clips; return one embedding per clip"),
    ("TooFewTexts", "embed_texts returned 4 embeddings for 5 texts; return one embedding per text"),
    ("ListOfArrays", "embed_audio returned a ndarray for an audio embedding; return torch tensors"),
])
def test_a_family_that_breaks_the_contract_stops_in_one_line(monkeypatch, capsys, tmp_path, family, message):
    code, _, stderr, out = toy_run(monkeypatch, capsys, tmp_path, family)
    line = one_line(code, stderr)
    assert line.startswith("zsa-eval: error: model family ") and f"{LABEL}{family}): {message}; " in line
    assert line.endswith(f"once the model is fixed, resume with the same arguments plus output_dir={out} "
                         "resume=true")
    assert "none of the 40 items finished" in line and (out / "run.json").is_file()


def test_a_clip_the_family_cannot_prepare_is_a_recorded_skip(monkeypatch, capsys, tmp_path):
    code, stdout, _, out = toy_run(monkeypatch, capsys, tmp_path, "RefusesSomeClips", "max_skip_fraction=1")
    assert code == 0, stdout
    metrics = json.loads((out / "metrics.json").read_text())
    errors = pd.read_csv(out / "errors.csv")
    assert set(errors["reason"]) == {"model could not prepare"} and len(errors) == metrics["n_skipped"] > 0
    assert errors["detail"].str.startswith(f"model family 'refuses_some_clips' {LABEL}RefusesSomeClips): "
                                           "ValueError: cannot take seed ").all()
    assert metrics["n_evaluated"] + metrics["n_skipped"] == 40 and len(pd.read_csv(out / "predictions.csv")) == \
        metrics["n_evaluated"]


@pytest.mark.slow
def test_a_family_failing_mid_run_stops_keeps_what_finished_and_resumes(monkeypatch, capsys, tmp_path):
    monkeypatch.setenv("ZSA_EVAL_TEST_FAIL", "1")
    plugin_families.FailsAfterABatch.calls = 0
    code, _, stderr, out = toy_run(monkeypatch, capsys, tmp_path, "FailsAfterABatch", "cache=false")
    line = one_line(code, stderr)
    assert line == (f"zsa-eval: error: model family 'toy_clap' {LABEL}FailsAfterABatch) failed in embed_audio: "
                    f"RuntimeError: the accelerator went away; 8 of 40 items finished and are kept in {out}; once the "
                    f"model is fixed, resume with the same arguments plus output_dir={out} resume=true")
    assert len((out / "progress.jsonl").read_text().splitlines()) == 8
    monkeypatch.delenv("ZSA_EVAL_TEST_FAIL")
    code, _, _, out = toy_run(monkeypatch, capsys, tmp_path, "FailsAfterABatch", "resume=true", "cache=false")
    assert code == 0
    assert json.loads((out / "metrics.json").read_text())["resumed_items"] == 8
    code, _, _, whole = toy_run(monkeypatch, capsys, tmp_path, "toy_family:ToyClapFamily", "cache=false",
                                name="whole")
    assert code == 0
    assert np.abs(scores(out) - scores(whole)).max() <= 1e-6


def test_a_registered_family_that_does_not_import_is_one_line(monkeypatch, capsys, tmp_path):
    broken = metadata.EntryPoint("broken", "no_such_plugin:Family", GROUP)
    monkeypatch.setattr(registry, "family_entry_points", lambda: {**metadata_entries(), "broken": broken})
    code, _, stderr, _ = toy_run(monkeypatch, capsys, tmp_path, "broken", entry=True)
    assert one_line(code, stderr) == (
        "zsa-eval: error: model.family=broken: the entry point broken = 'no_such_plugin:Family' (an installed "
        "package) does not import (ModuleNotFoundError: No module named 'no_such_plugin'); fix or reinstall that "
        "package")
    code, _, stderr, _ = toy_run(monkeypatch, capsys, tmp_path, "toy_claps", entry=True)
    assert one_line(code, stderr).startswith("zsa-eval: error: model.family=toy_claps is not a registered family: "
                                             "choose one of audioflamingo3, broken, clap, ")


def metadata_entries() -> dict:
    return {entry.name: entry for entry in metadata.entry_points(group=GROUP)}


@pytest.mark.slow
def test_evaluate_takes_a_loaded_family_and_equals_the_cli(monkeypatch, capsys, tmp_path):
    code, _, _, cli = toy_run(monkeypatch, capsys, tmp_path, "toy_family:ToyClapFamily", "+model.options.seed=3",
                              "cache=false")
    assert code == 0
    family = ToyClapFamily(random_toy_clap(3), CPU, torch.float32)
    result = zsa_eval.evaluate("synthetic", family, [f"output_dir={tmp_path / 'api'}", "progress=false",
                                                     "batch_size=5"])
    assert result.run_dir == tmp_path / "api" and result.failure is None
    assert result.metrics["family"] == "toy_clap" and result.identity["weight_fingerprint"] == \
        json.loads((cli / "metrics.json").read_text())["identity"]["weight_fingerprint"]
    assert np.abs(scores(result.run_dir) - scores(cli)).max() <= 1e-6
    assert result.predictions["item_id"].tolist() == pd.read_csv(cli / "predictions.csv")["item_id"].tolist()
    assert result.summary.startswith("synthetic | toy_clap | auto: accuracy ")


@pytest.mark.slow
def test_a_family_trained_between_two_evaluations_is_not_served_stale_embeddings(tmp_path):
    family = ToyClapFamily(random_toy_clap(4), CPU, torch.float32)
    first = zsa_eval.evaluate("synthetic", family, [f"output_dir={tmp_path / 'a'}", "progress=false"])
    with torch.no_grad():
        family.model.audio.projection.weight.mul_(-1)  # "training" in place
    second = zsa_eval.evaluate("synthetic", family, [f"output_dir={tmp_path / 'b'}", "progress=false"])
    assert second.metrics["cache_hits"] == 0
    assert second.identity["weight_fingerprint"] != first.identity["weight_fingerprint"]
    assert np.abs(scores(second.run_dir) - scores(first.run_dir)).max() > 1e-3


@pytest.mark.slow
def test_a_family_without_weights_to_hash_runs_uncached_unless_given_a_fingerprint(monkeypatch, capsys, tmp_path):
    code, _, stderr, out = toy_run(monkeypatch, capsys, tmp_path, "Remote")
    assert code == 0
    assert ("zsa-eval: note: no embedding cache for model run: its family (remote) gives no weights fingerprint to "
            "key it on; set model.fingerprint=NAME_OF_THE_WEIGHTS to cache it") in stderr
    assert json.loads((out / "metrics.json").read_text())["identity"]["weight_fingerprint"] is None
    for name in ("first", "again"):
        code, _, stderr, out = toy_run(monkeypatch, capsys, tmp_path, "Remote", "+model.fingerprint=toy-v1",
                                       name=name)
        assert code == 0 and "note" not in stderr
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["identity"]["weight_fingerprint"] == "toy-v1" and metrics["cache_hits"] == 40


@pytest.mark.slow
def test_evaluate_raises_user_errors_and_returns_failed_checks(tmp_path):
    with pytest.raises(zsa_eval.UserError, match=r"^unknown dataset 'nope': choose one of "):
        zsa_eval.evaluate("nope", "tiny_random")
    with pytest.raises(zsa_eval.UserError, match="neither a model config's name"):
        zsa_eval.evaluate("synthetic", 3)
    family = ToyClapFamily(random_toy_clap(0), CPU, torch.float32)
    result = zsa_eval.evaluate("synthetic", family, [f"output_dir={tmp_path / 'gated'}", "progress=false",
                                                     "gate.min_accuracy=0.99"])
    assert result.failure.startswith("gate failed: accuracy") and (result.run_dir / "metrics.json").is_file()


def test_batch_invariance_is_checked_for_a_family():
    family = ToyClapFamily(random_toy_clap(0), CPU, torch.float32)
    assert check_batch_invariance(family) <= 1e-6
    broken = plugin_families.BatchDependent(random_toy_clap(0), CPU, torch.float32)
    with pytest.raises(zsa_eval.UserError, match=r"^model family 'batch_dependent' \(plugin_families:BatchDependent\): "
                       r"embed_audio is not batch-invariant: a clip's embedding moves by 0\.\d+ with the batch it is "
                       r"in \(allowed 1e-05\)"):
        check_batch_invariance(broken)


def test_the_builtin_clap_passes_the_same_batch_invariance_check(tiny_model):
    assert check_batch_invariance(tiny_model.family) <= 1e-5


def test_naming_a_builtin_family_for_the_wrong_checkpoint_or_none_is_one_line(monkeypatch, capsys, tmp_path,
                                                                              tiny_model_dir):
    code, _, stderr = run_cli(monkeypatch, capsys, "dataset=synthetic", "model=tiny_random", "+model.family=pe_audio",
                              f"output_dir={tmp_path / 'pe'}")
    assert one_line(code, stderr) == (
        f"zsa-eval: error: model.family=pe_audio loads pe_audio, pe_audio_video checkpoints, and "
        f"'{tiny_model_dir}' is a clap checkpoint (its config.json model_type): drop model.family (model=auto picks "
        "the family by the checkpoint)")
    code, _, stderr = run_cli(monkeypatch, capsys, "dataset=synthetic", "model=plugin", "model.family=clap",
                              f"output_dir={tmp_path / 'none'}")
    assert one_line(code, stderr) == ("zsa-eval: error: model.family=clap loads a checkpoint: set "
                                      "model.name_or_path=HUB_ID_OR_PATH")
    code, _, stderr = run_cli(monkeypatch, capsys, "dataset=synthetic", "model=plugin", "model.family=toy_claps",
                              "model.options.seed=1")
    assert one_line(code, stderr) == ("zsa-eval: error: model.options.seed is a new key of the family's options: add "
                                      "it with +model.options.seed=VALUE")
    assert not (tmp_path / "pe").exists() and not (tmp_path / "none").exists()
