"""scripts/benchmark.py --label-cost (scripts/benchmark_alm.py): likelihood scoring's cost per extra label on an audio
language model's tiny twin, for a 5 s and a 30 s clip, with the forward calls that show the prompt read once."""

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from zsa_eval.models import load_model

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
import benchmark_alm  # noqa: E402
from benchmark_alm import candidate_labels  # noqa: E402


def answer_tokens(model_dir: Path, count: int) -> list[list[int]]:
    """The token ids the twin in `model_dir` scores for the benchmark's first `count` labels."""
    family = load_model("qwen2_audio", str(model_dir), torch.device("cpu"), "fp32", scoring="likelihood",
                        max_new_tokens=8, label_batch_size=64).family
    return family.answer_tokens(candidate_labels(count))


@pytest.mark.slow
def test_the_label_cost_benchmark_writes_its_figures_and_reads_each_prompt_once(tmp_path):
    out = tmp_path / "cost.json"
    done = subprocess.run([sys.executable, "scripts/benchmark.py", "--family", "qwen2_audio", "--label-cost",
                           "--cost-labels", "2,70", "--cost-repeats", "1", "--cache-dir", str(tmp_path / "cache"),
                           "--out", str(out)], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    figures = json.loads(out.read_text())
    assert (figures["family"], figures["model"], figures["label_counts"], figures["label_batch_size"]) == (
        "qwen2_audio", "qwen2_audio_tiny_random", [2, 70], 64)
    short, long = figures["clips"]
    assert (short["clip_seconds"], long["clip_seconds"]) == (5.0, 30.0)
    assert long["prompt_tokens"] - short["prompt_tokens"] == 625  # 25 audio tokens a second: 750 - 125
    answers = [len(tokens) for tokens in answer_tokens(tmp_path / "cache" / "models" / "qwen2_audio_tiny_random", 70)]
    for clip in figures["clips"]:
        assert set(clip["seconds_by_labels"]) == {"2", "70"} and all(clip["seconds_by_labels"].values())
        assert clip["prompt_pass_s"] > 0 and clip["tokens_per_label"] == pytest.approx(sum(answers) / 70, abs=1e-3)
        # 70 answers at 64 a pass: the prompt pass, then two continuation passes of the answers' tokens alone, each
        # one row of its answers but their last tokens, end to end (no prompt token again)
        assert (clip["forward_calls"], clip["prompt_passes"]) == (3, 1)
        assert clip["continuation_pass_tokens"] == [sum(answers[:64]) - 64, sum(answers[64:]) - 6]
    assert figures["long_vs_short_per_label"] == pytest.approx(long["ms_per_label"] / short["ms_per_label"],
                                                               abs=1e-3)
    assert "30 s vs 5 s clip, per label" in done.stdout


@pytest.mark.slow
@pytest.mark.parametrize("family_name", ["qwen2_audio", "qwen2_5_omni", "phi4_multimodal"])
def test_checkpoint_widths_rebuild_the_language_model_and_it_still_scores_exactly(tmp_path, family_name):
    """--cost-width checkpoint: the twin's language model at its checkpoint's widths (one decoder layer) scores a clip,
    and its packed continuations still equal a plain forward pass per label."""
    from benchmark_alm import CHECKPOINT_TEXT_WIDTHS, at_checkpoint_widths, scoring_families, tiny_twin

    from test_alm import plain_log_likelihood

    model_dir = tiny_twin(family_name, tmp_path)
    family = load_model(scoring_families()[family_name][1], str(model_dir), torch.device("cpu"), "fp32",
                        scoring="likelihood", max_new_tokens=8, label_batch_size=2).family
    built = at_checkpoint_widths(family, family_name, layers=1)
    text_config = family.model.config.get_text_config()
    for key, value in {**CHECKPOINT_TEXT_WIDTHS[family_name], "num_hidden_layers": 1}.items():
        assert getattr(text_config, key) == value == built[key]
    assert built["decoder_layer_parameters"] > 100e6  # a checkpoint-sized layer, not the twin's
    labels = candidate_labels(3)
    inputs = family.preparer("Which one?")(np.zeros(16000, dtype=np.float32) + 0.01, 0)
    fast = family.answer_log_likelihoods(inputs, family.answer_tokens(labels)).numpy()
    plain = np.array([plain_log_likelihood(family, inputs, label) for label in labels])
    np.testing.assert_allclose(fast, plain, atol=1e-4, rtol=0)


@pytest.mark.parametrize(("parse", "text", "parsed"), [
    (benchmark_alm.label_counts, "64,128", [64, 128]), (benchmark_alm.clip_pair, "5,60", (5.0, 60.0)),
    (benchmark_alm.positive_int, "3", 3)])
def test_the_cost_options_read_what_they_are_given(parse, text, parsed):
    assert parse(text) == parsed


@pytest.mark.parametrize(("parse", "text"), [
    (benchmark_alm.label_counts, "70"), (benchmark_alm.label_counts, "70,70"), (benchmark_alm.label_counts, "0,70"),
    (benchmark_alm.label_counts, "a,b"), (benchmark_alm.clip_pair, "5"), (benchmark_alm.clip_pair, "30,5"),
    (benchmark_alm.clip_pair, "0,5"), (benchmark_alm.positive_int, "0"), (benchmark_alm.positive_int, "-1")])
def test_cost_options_that_fit_no_slope_are_refused(parse, text):
    """One label count, or clips that are not a short and a longer one, would give a slope or a ratio of nothing."""
    with pytest.raises(argparse.ArgumentTypeError, match="give "):
        parse(text)
