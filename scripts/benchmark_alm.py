"""Likelihood scoring's cost per extra candidate label, for an audio language model's tiny twin (scripts/benchmark.py
--family <name> [--label-cost]).

For a 5 s and a 30 s clip (the prompt: the system turn, the clip's audio tokens and a fixed instruction that lists no
label, so that its length depends on the clip alone), `answer_log_likelihoods` is timed on the clip's prepared inputs
with 64, 128, 256 and 512 candidate labels (--cost-labels: 1 to 8 continuation passes of label_batch_size 64; the
least CPU time of --cost-repeats calls after a warm-up, on one thread: on shared cores wall time, and the other
calls, measure the load); the cost per label is the least-squares slope of those times against the label count, the
intercept the prompt pass. The
model's forward calls of one scoring are recorded: exactly one reads the prompt, and every other (one per
label_batch_size answers) reads at most the longest answer's tokens, on a copy of the prompt's key/value cache.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch
import yaml

from zsa_eval.__main__ import CONFIG_DIR
from zsa_eval.families import ScoringFamily
from zsa_eval.models import load_model
from zsa_eval.random_models import build_random_model

COST_CLIP_SECONDS = (5.0, 30.0)
COST_INSTRUCTION = "What is the main sound in this recording?"  # no {labels}: the prompt does not grow with them
ESC50_CATEGORIES = [  # ESC-50's classes in its target order
    "dog", "rooster", "pig", "cow", "frog", "cat", "hen", "insects", "sheep", "crow", "rain", "sea_waves",
    "crackling_fire", "crickets", "chirping_birds", "water_drops", "wind", "pouring_water", "toilet_flush",
    "thunderstorm", "crying_baby", "sneezing", "clapping", "breathing", "coughing", "footsteps", "laughing",
    "brushing_teeth", "snoring", "drinking_sipping", "door_wood_knock", "mouse_click", "keyboard_typing",
    "door_wood_creaks", "can_opening", "washing_machine", "vacuum_cleaner", "clock_alarm", "clock_tick",
    "glass_breaking", "helicopter", "chainsaw", "siren", "car_horn", "engine", "train", "church_bells",
    "airplane", "fireworks", "hand_saw",
]
READABLE_NAMES = [name.replace("_", " ") for name in ESC50_CATEGORIES]


def scoring_families() -> dict[str, tuple[str, str]]:
    """Audio language models with a tiny twin (conf/model/<family>_tiny_random.yaml with a `scoring` key) -> (its
    random model kind, its preset and folder name): a family that lands with such a preset is benchmarked as is."""
    families = {}
    for path in sorted(Path(CONFIG_DIR, "model").glob("*_tiny_random.yaml")):
        preset = yaml.safe_load(path.read_text())
        if "scoring" in preset:
            families[path.stem.removesuffix("_tiny_random")] = (preset["random_init"], path.stem)
    return families


def tiny_twin(family: str, cache_dir: Path) -> Path:
    """The family's tiny twin under cache_dir/models, built on first use."""
    random_kind, folder = scoring_families()[family]
    model_dir = cache_dir / "models" / folder
    if not (model_dir / "config.json").is_file():
        build_random_model(random_kind, model_dir)
    return model_dir


def candidate_labels(count: int) -> list[str]:
    """`count` distinct labels: ESC-50's class names, then the same again with a number."""
    return [READABLE_NAMES[index % 50] + (f" {index // 50 + 1}" if index >= 50 else "") for index in range(count)]


def forward_lengths(family: ScoringFamily, inputs: dict, answers: list[list[int]]) -> list[int]:
    """The token count each forward call of the model reads during one scoring of `answers`."""
    lengths: list[int] = []
    hook = family.model.register_forward_pre_hook(
        lambda module, args, kwargs: lengths.append(int(kwargs["input_ids"].shape[1])), with_kwargs=True)
    try:
        family.answer_log_likelihoods(inputs, answers)
    finally:
        hook.remove()
    return lengths


def seconds_per_scoring(family: ScoringFamily, inputs: dict, answers: list[list[int]], repeats: int) -> float:
    """The least CPU time of `repeats` scorings of `answers` on one clip's inputs, after a warm-up."""
    family.answer_log_likelihoods(inputs, answers)
    timings = []
    for _ in range(repeats):
        start = time.process_time()
        family.answer_log_likelihoods(inputs, answers)
        timings.append(time.process_time() - start)
    return min(timings)


def clip_cost(family: ScoringFamily, seconds: float, counts: list[int], repeats: int) -> dict:
    """One clip's prompt length, scoring time per label count, and the fitted cost per label and prompt pass."""
    rate = family.sampling_rate
    waveform = (0.1 * np.random.default_rng(0).standard_normal(int(rate * seconds))).astype(np.float32)
    inputs = family.preparer(COST_INSTRUCTION)(waveform, 0)
    prompt_tokens = int(inputs["input_ids"].shape[1])
    timings = {count: seconds_per_scoring(family, inputs, family.answer_tokens(candidate_labels(count)), repeats)
               for count in counts}
    answers = family.answer_tokens(candidate_labels(max(counts)))
    lengths = forward_lengths(family, inputs, answers)
    slope, intercept = np.polyfit(counts, [timings[count] for count in counts], 1)
    return {"clip_seconds": seconds, "prompt_tokens": prompt_tokens,
            "seconds_by_labels": {str(count): round(timings[count], 5) for count in counts},
            "ms_per_label": round(1000 * slope, 4), "prompt_pass_s": round(intercept, 5),  # CPU seconds
            "forward_calls": len(lengths), "prompt_passes": lengths.count(prompt_tokens),
            "longest_continuation_tokens": max(lengths[1:], default=0),
            "longest_answer_tokens": max(map(len, answers))}


def label_cost(family_name: str, cache_dir: Path, counts: list[int], repeats: int) -> dict:
    """The per-label cost of likelihood scoring on a 5 s and a 30 s clip, on CPU in fp32 (the tiny twin), on one
    thread and in CPU seconds: on shared cores, wall time measures the other jobs' load as much as the scoring."""
    torch.set_num_threads(1)
    model_dir = tiny_twin(family_name, cache_dir)
    loaded = load_model(scoring_families()[family_name][1], str(model_dir), torch.device("cpu"), "fp32",
                        scoring="likelihood", max_new_tokens=8, label_batch_size=64)
    clips = [clip_cost(loaded.family, seconds, counts, repeats) for seconds in COST_CLIP_SECONDS]
    short, long = clips
    return {"label_counts": counts, "repeats": repeats, "threads": 1, "timing": "cpu seconds (process_time)",
            "label_batch_size": loaded.family.label_batch_size,
            "instruction": COST_INSTRUCTION, "clips": clips,
            "long_vs_short_per_label": round(long["ms_per_label"] / short["ms_per_label"], 3)}


def print_label_cost(cost: dict) -> None:
    """The per-label cost table: one row per clip length."""
    print(f"likelihood cost per extra label (labels {cost['label_counts']}, least CPU time of {cost['repeats']}, "
          f"one thread, label_batch_size {cost['label_batch_size']})")
    print(f"{'clip':>6}{'prompt tokens':>15}{'ms/label':>10}{'prompt pass s':>15}{'prompt passes':>15}"
          f"{'longest continuation':>22}")
    for clip in cost["clips"]:
        print(f"{clip['clip_seconds']:>5g}s{clip['prompt_tokens']:>15}{clip['ms_per_label']:>10.3f}"
              f"{clip['prompt_pass_s']:>15.4f}{clip['prompt_passes']:>15}{clip['longest_continuation_tokens']:>22}")
    print(f"30 s vs 5 s clip, per label: {cost['long_vs_short_per_label']:.2f}x")
