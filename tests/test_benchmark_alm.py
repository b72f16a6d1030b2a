"""scripts/benchmark.py --label-cost (scripts/benchmark_alm.py): likelihood scoring's cost per extra label on an audio
language model's tiny twin, for a 5 s and a 30 s clip, with the forward calls that show the prompt read once."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


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
    for clip in figures["clips"]:
        assert set(clip["seconds_by_labels"]) == {"2", "70"} and all(clip["seconds_by_labels"].values())
        # 70 answers at 64 a pass: the prompt pass, then two continuation passes of the answers' tokens alone
        assert (clip["forward_calls"], clip["prompt_passes"]) == (3, 1)
        assert clip["longest_continuation_tokens"] == clip["longest_answer_tokens"] - 1  # no prompt token again
    assert figures["long_vs_short_per_label"] == pytest.approx(long["ms_per_label"] / short["ms_per_label"],
                                                               abs=1e-3)
    assert "30 s vs 5 s clip, per label" in done.stdout
