"""Likelihood scoring's cost per extra candidate label, for an audio language model's twin (scripts/benchmark.py
--family <name> [--label-cost] [--cost-width checkpoint]).

For a 5 s and a 30 s clip (the prompt: the system turn, the clip's audio tokens and a fixed instruction that lists no
label, so that its length depends on the clip alone), the prompt is read once, then the answers' continuation passes
on its cache are timed with 64, 128, 256 and 512 candidate labels (--cost-labels: 1 to 8 passes of label_batch_size
64; the least CPU time of --cost-repeats calls after a warm-up, on one thread: on shared cores wall time, and the
other calls, measure the load); the cost per label is the least-squares slope of those times against the label
count. The model's forward calls of one whole scoring are recorded: exactly one reads the prompt, and every other
(one per label_batch_size answers) reads those answers' tokens alone, packed in one row on the prompt's cache.

An extra label costs its tokens through every decoder layer: the layer's weights, which do not depend on the prompt,
and attention over the prompt's keys, which does. At the tiny twin's widths (hidden size 32) attention is most of a
token's cost; --cost-width checkpoint rebuilds the twin's language model at its published checkpoint's widths
(CHECKPOINT_TEXT_WIDTHS) with --cost-layers decoder layers and random weights, where the weights are most of it. The
ratio of a 30 s to a 5 s clip's cost per label is the same for one layer as for the checkpoint's stack of identical
ones; the twin's audio encoder (a per-clip cost) and tokenizer stay (its small vocabulary makes the output layer's
per-token cost, the same for any prompt, negligible, so the ratio is not flattered by it).
"""

from __future__ import annotations

import argparse
import copy
import time
from pathlib import Path

import numpy as np
import torch
import yaml

from zsa_eval.__main__ import CONFIG_DIR
from zsa_eval.families import ScoringFamily
from zsa_eval.models import load_model
from zsa_eval.random_models import build_random_model
from zsa_eval.random_models.alm import reset_weights

COST_CLIP_SECONDS = (5.0, 30.0)  # --cost-clip-seconds: Voxtral hears whole 30 s chunks, so 5 s and 60 s show it
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
# The language model's widths in each family's published checkpoint (config.json's text config): Qwen/Qwen2-Audio-7B's
# (Qwen-7B's), nvidia/audio-flamingo-3-hf's and Qwen/Qwen2.5-Omni-7B's thinker's (Qwen2.5-7B's),
# microsoft/Phi-4-multimodal-instruct's (Phi-4-mini's) and mistralai/Voxtral-Mini-3B-2507's.
CHECKPOINT_TEXT_WIDTHS = {
    "qwen2_audio": dict(hidden_size=4096, intermediate_size=11008, num_attention_heads=32, num_key_value_heads=32,
                        head_dim=128),
    "audioflamingo3": dict(hidden_size=3584, intermediate_size=18944, num_attention_heads=28, num_key_value_heads=4,
                           head_dim=128),
    "qwen2_5_omni": dict(hidden_size=3584, intermediate_size=18944, num_attention_heads=28, num_key_value_heads=4,
                         head_dim=128),
    "phi4_multimodal": dict(hidden_size=3072, intermediate_size=8192, num_attention_heads=24, num_key_value_heads=8,
                            head_dim=128),
    "voxtral": dict(hidden_size=3072, intermediate_size=8192, num_attention_heads=32, num_key_value_heads=8,
                    head_dim=128),
}


def label_counts(text: str) -> list[int]:
    """--cost-labels: at least two different positive label counts (a slope needs two points)."""
    try:
        counts = [int(count) for count in text.split(",")]
    except ValueError:
        counts = []
    if len(set(counts)) < 2 or min(counts) < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: give two or more different positive label counts, such as "
                                         "64,128,256,512 (the cost per label is the slope between them)")
    return counts


def clip_pair(text: str) -> tuple[float, float]:
    """--cost-clip-seconds: a short and a longer clip, in seconds."""
    try:
        short, long = (float(seconds) for seconds in text.split(","))
    except ValueError:
        short = long = 0.0
    if not 0 < short < long:
        raise argparse.ArgumentTypeError(f"{text!r}: give a short and a longer clip in seconds, such as 5,30")
    return short, long


def positive_int(text: str) -> int:
    """A count of at least 1."""
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: give a whole number of at least 1")
    return int(text)


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


def at_checkpoint_widths(family: ScoringFamily, family_name: str, layers: int) -> dict:
    """Rebuild the twin's language model at its checkpoint's widths with `layers` decoder layers and PyTorch's default
    random weights, in place (the audio encoder's output follows the new width); return what was built."""
    config = copy.deepcopy(family.model.config)
    text_config = config.get_text_config()
    widths = {**CHECKPOINT_TEXT_WIDTHS[family_name], "num_hidden_layers": layers}
    for key, value in widths.items():
        setattr(text_config, key, value)
    if getattr(text_config, "layer_types", None):
        text_config.layer_types = text_config.layer_types[:layers]
    rope = getattr(text_config, "rope_parameters", None) or {}
    if "mrope_section" in rope:  # Qwen2.5-Omni's rotary sections: the checkpoint's split of head_dim / 2 = 64
        rope["mrope_section"] = [16, 24, 24]
    audio_config = getattr(config, "audio_config", None)
    if getattr(audio_config, "output_dim", None) is not None:  # Qwen2.5-Omni's encoder projects to the text width
        audio_config.output_dim = widths["hidden_size"]
    torch.manual_seed(0)
    family.model = reset_weights(type(family.model)(config))
    return {"widths": "checkpoint", **widths,
            "decoder_layer_parameters": sum(parameter.numel() for parameter in family.model.get_decoder().layers[0]
                                            .parameters())}


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


def cpu_seconds(call, repeats: int) -> float:
    """The least CPU time of `repeats` calls, after a warm-up call."""
    call()
    timings = []
    for _ in range(repeats):
        start = time.process_time()
        call()
        timings.append(time.process_time() - start)
    return min(timings)


def clip_cost(family: ScoringFamily, seconds: float, counts: list[int], repeats: int) -> dict:
    """One clip's prompt length and prompt pass, its continuation passes' time per label count, and the fitted cost
    per label."""
    rate = family.sampling_rate
    waveform = (0.1 * np.random.default_rng(0).standard_normal(int(rate * seconds))).astype(np.float32)
    inputs = family.preparer(COST_INSTRUCTION)(waveform, 0)
    prompt_tokens = int(inputs["input_ids"].shape[1])
    prompt_pass_s = cpu_seconds(lambda: family.read_prompt(inputs), repeats)
    prompt = family.read_prompt(inputs)
    answers_by_count = {count: family.answer_tokens(candidate_labels(count)) for count in counts}
    timings = {count: cpu_seconds(lambda: family.continuation_log_likelihoods(prompt, answers), repeats)
               for count, answers in answers_by_count.items()}
    answers = answers_by_count[max(counts)]
    lengths = forward_lengths(family, inputs, answers)
    slope = np.polyfit(counts, [timings[count] for count in counts], 1)[0]
    return {"clip_seconds": seconds, "prompt_tokens": prompt_tokens, "prompt_pass_s": round(prompt_pass_s, 5),
            "seconds_by_labels": {str(count): round(timings[count], 5) for count in counts},  # continuations alone
            "ms_per_label": round(1000 * slope, 4),
            "tokens_per_label": round(sum(map(len, answers)) / len(answers), 3),
            "forward_calls": len(lengths), "prompt_passes": lengths.count(prompt_tokens),
            "continuation_pass_tokens": lengths[1:]}


def label_cost(family_name: str, cache_dir: Path, counts: list[int], repeats: int, width: str = "tiny",
               layers: int = 1, clip_seconds: tuple[float, float] = COST_CLIP_SECONDS) -> dict:
    """The per-label cost of likelihood scoring on a short and a long clip (5 s and 30 s), on CPU in fp32 (the twin,
    at its own widths or the checkpoint's), on one thread and in CPU seconds: on shared cores, wall time measures the
    other jobs' load as much as the scoring."""
    torch.set_num_threads(1)
    model_dir = tiny_twin(family_name, cache_dir)
    loaded = load_model(scoring_families()[family_name][1], str(model_dir), torch.device("cpu"), "fp32",
                        scoring="likelihood", max_new_tokens=8, label_batch_size=64)
    language_model = (at_checkpoint_widths(loaded.family, family_name, layers) if width == "checkpoint"
                      else {"widths": "tiny", **{key: getattr(loaded.family.model.config.get_text_config(), key)
                                                 for key in ("hidden_size", "intermediate_size", "num_hidden_layers")}})
    clips = [clip_cost(loaded.family, seconds, counts, repeats) for seconds in clip_seconds]
    short, long = clips
    return {"label_counts": counts, "prompts_differ": short["prompt_tokens"] != long["prompt_tokens"],
            "repeats": repeats, "threads": 1, "timing": "cpu seconds (process_time)",
            "label_batch_size": loaded.family.label_batch_size, "language_model": language_model,
            "instruction": COST_INSTRUCTION, "clips": clips,
            "long_vs_short_per_label": round(long["ms_per_label"] / short["ms_per_label"], 3)}


def print_label_cost(cost: dict) -> None:
    """The per-label cost table: one row per clip length."""
    model = cost["language_model"]
    print(f"likelihood cost per extra label (labels {cost['label_counts']}, least CPU time of {cost['repeats']}, "
          f"one thread, label_batch_size {cost['label_batch_size']}; language model at {model['widths']} widths: "
          f"hidden {model['hidden_size']}, MLP {model['intermediate_size']}, "
          f"decoder layers {model['num_hidden_layers']})")
    print(f"{'clip':>6}{'prompt tokens':>15}{'prompt pass s':>15}{'ms/label':>10}{'tokens/label':>14}"
          f"{'prompt passes':>15}  continuation passes (tokens each)")
    for clip in cost["clips"]:
        passes = ", ".join(map(str, clip["continuation_pass_tokens"]))
        print(f"{clip['clip_seconds']:>5g}s{clip['prompt_tokens']:>15}{clip['prompt_pass_s']:>15.4f}"
              f"{clip['ms_per_label']:>10.3f}{clip['tokens_per_label']:>14.2f}{clip['prompt_passes']:>15}  {passes}")
    short, long = (clip["clip_seconds"] for clip in cost["clips"])
    print(f"{long:g} s vs {short:g} s clip, per label: {cost['long_vs_short_per_label']:.2f}x")
    if not cost["prompts_differ"]:
        print(f"note: both clips' prompts are {cost['clips'][0]['prompt_tokens']} tokens (the model hears whole "
              "chunks), so this ratio says nothing about prompt length: pass a longer clip, --cost-clip-seconds 5,60")
