"""Speed of the embed engine against the common recipe and against the audio encoder alone.

    python scripts/benchmark.py                      # 64 clips, full-size random CLAP, all engines
    python scripts/benchmark.py --clips 512 --engines embed      # memory: compare peak RSS with --clips 64
    python scripts/benchmark.py --rerun              # audio-embedding cache: second template vs first
    python scripts/benchmark.py --engines "" --startup-runs 5    # startup only
    python scripts/benchmark.py --family pe_audio --clips 16     # random PE-Audio of pe-av-small's audio branch
    python scripts/benchmark.py --family msclap --clips 32       # random MS-CLAP 2023 at msclap's sizes (msclap_2022: 2022)
    python scripts/benchmark.py --clip-seconds 30 --clips 16 --engines "" --startup-runs 0 --long-audio native,windows
                                                     # the embed engine on 30 s clips under each long_audio policy
    python scripts/benchmark.py --probe              # the 5-fold linear probe alone, no model (probe.json)
    python scripts/benchmark.py --long-clips         # peak RSS of a 5-min and a 50-min clip, long_audio=windows
    python scripts/benchmark.py --family qwen2_audio --clips 20  # tiny audio language model: both modes, 10/50 labels
    python scripts/benchmark.py --family qwen2_audio --label-cost    # likelihood's cost per extra label, 5 s and 30 s
    python scripts/benchmark.py --family qwen2_audio --label-cost --cost-width checkpoint --cost-labels 8,16,32,64
                                                     # the same at Qwen2-Audio-7B's language-model widths, one layer

Uses a random-weight model (built once under the cache dir, no Hub needed) of the full laion/clap-htsat-fused
architecture (--family clap), of pe-av-small's audio branch and text model (--family pe_audio) or of MS-CLAP at
msclap's own sizes (--family msclap: 2023, HTSAT and GPT-2; msclap_2022: CNN14 and BERT) (these two: embed and
encoder_only only, the pipeline cannot run them), N clips of 5 s (--clip-seconds) at 44.1 kHz in an ESC-50-layout
folder, and 50 candidate labels. `--long-audio` times the embed engine end to end once per long_audio policy (a
30 s clip is one encoder input under native, three 10 s windows under windows). Prints a table and writes results/benchmark/benchmark.json (or --out). `startup_s` is the wall
time of a `limit=1` command-line run of that model (a fresh process: imports, config, model load, writing results)
minus its scoring, median of runs.

`--probe` times only the linear probe (protocol=linear_probe as conf/protocol/linear_probe.yaml sets it: C chosen
from its grid by inner cross-validation on whole folds, then refitted) on ESC-50-sized random embeddings: 2000 x
512, 50 classes of 40, 5 folds; each class's embeddings scattered around a random mean. It prints the seconds of
the whole 5-fold probe and per fold and writes results/benchmark/probe.json (or --out).

Audio language models (--family qwen2_audio or audioflamingo3: their tiny random twins, the real checkpoints'
processors and feature extractors) are timed in both scoring modes (likelihood, generate) on datasets of 10 and of 50
candidate labels, each run in a fresh process so that its peak RSS is its own: clips/s of the scoring and that peak;
then likelihood scoring's cost per extra label on a 5 s and a 30 s clip (scripts/benchmark_alm.py; --label-cost: that
alone, written to results/benchmark/<family>_label_cost.json; with --cost-width checkpoint, the language model rebuilt
at the published checkpoint's widths, to <family>_label_cost_checkpoint_widths.json). Every
conf/model/<family>_tiny_random.yaml with a `scoring` key is a --family.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
import soundfile as sf
import torch
from hydra import compose, initialize_config_dir

from benchmark_alm import (ESC50_CATEGORIES, clip_pair, label_cost, label_counts, positive_int, print_label_cost,
                           scoring_families, tiny_twin)
from zsa_eval.__main__ import CONFIG_DIR
from zsa_eval.audio import decode, resample, to_mono
from zsa_eval.clips import clip_seed
from zsa_eval.errors import UserError
from zsa_eval.models import load_model, resolve_device
from zsa_eval.random_models import build_random_model
from zsa_eval.store import write_json
from zsa_eval.provenance import package_versions
from zsa_eval.run import run
from zsa_eval.tasks.linear_probe import LinearProbeTask
from zsa_eval.tasks.probing import Training
from zsa_eval.tasks.splits import official_folds

ENGINES = ("seed_loop", "pipeline", "embed", "encoder_only")
# family -> (random model kind, its folder under cache_dir/models, the conf/model preset, engines it can run)
FAMILIES = {
    "clap": ("full", "clap_full_random", "clap", ENGINES),
    "pe_audio": ("pe_av_small", "pe_av_small_random", "pe_av_small", ("embed", "encoder_only")),
    "msclap": ("msclap_2023_full", "msclap_2023_full_random", "msclap_2023", ("embed", "encoder_only")),
    "msclap_2022": ("msclap_2022_full", "msclap_2022_full_random", "msclap_2022", ("embed", "encoder_only")),
}
# audio language models -> (random model kind, their tiny twin's preset and folder): timed by scoring mode and label
# count instead
SCORING_FAMILIES = scoring_families()
SCORING_MODES = ("likelihood", "generate")
LABEL_COUNTS = (10, 50)
CLIP_SECONDS = 5.0
SOURCE_RATE = 44100


def peak_rss_mb() -> dict[str, float]:
    """Peak resident memory of this process and of its largest child (DataLoader workers), in MiB."""
    return {"self": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "largest_child": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024}


def write_clips(root: Path, n_clips: int, seconds: float, n_labels: int = len(ESC50_CATEGORIES)) -> Path:
    """N clips of `seconds` at 44.1 kHz (noise bursts and tones) in the ESC-50 folder layout, labelled in turn with
    the first `n_labels` ESC-50 categories, written once."""
    meta = root / "meta" / "esc50.csv"
    if meta.is_file() and len(pd.read_csv(meta)) == n_clips and "src_file" in pd.read_csv(meta, nrows=0).columns:
        return root
    (root / "audio").mkdir(parents=True, exist_ok=True)
    (root / "meta").mkdir(exist_ok=True)
    rng = np.random.default_rng(0)
    t = np.arange(int(SOURCE_RATE * seconds)) / SOURCE_RATE
    rows = []
    for index in range(n_clips):
        target = index % n_labels
        wave = 0.2 * rng.standard_normal(t.size) * (np.sin(2 * np.pi * rng.uniform(0.5, 4) * t) > 0)
        wave += 0.2 * np.sin(2 * np.pi * rng.uniform(100, 4000) * t)
        filename = f"{index % 5 + 1}-{index:05d}-A-{target}.wav"
        sf.write(root / "audio" / filename, wave.astype(np.float32), SOURCE_RATE)
        rows.append({"filename": filename, "fold": index % 5 + 1, "target": target,
                     "category": ESC50_CATEGORIES[target], "esc10": False, "src_file": index})
    pd.DataFrame(rows).to_csv(root / "meta" / "esc50.csv", index=False)
    return root


def run_config(args, dataset_dir: Path, model_dir: Path, output_dir: Path, *overrides: str):
    preset = FAMILIES[args.family][2] if args.family in FAMILIES else SCORING_FAMILIES[args.family][1]
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base=None):
        return compose(config_name="config", overrides=[
            "dataset=esc50_folder", f"dataset.path={dataset_dir}", f"model={preset}",
            f"model.name={model_dir.name}",
            f"model.name_or_path={model_dir}", f"batch_size={args.batch_size}", f"num_workers={args.num_workers}",
            f"device={args.device}", f"precision={args.precision}", f"cache_dir={args.cache_dir}",
            f"output_dir={output_dir}", f"results_dir={output_dir.parent}", "progress=false", *overrides])


def time_startup(args, dataset_dir: Path, model_dir: Path, runs_dir: Path) -> dict[str, float]:
    """Median wall time of `python -m zsa_eval ... limit=1` in a fresh process, and that minus its scoring."""
    walls, startups = [], []
    for attempt in range(args.startup_runs):
        output_dir = runs_dir / f"startup_{attempt}"
        command = [sys.executable, "-m", "zsa_eval", "dataset=esc50_folder", f"dataset.path={dataset_dir}",
                   f"model={FAMILIES[args.family][2]}", f"model.name={model_dir.name}",
                   f"model.name_or_path={model_dir}", "limit=1",
                   "cache=false", f"device={args.device}", f"precision={args.precision}", "progress=false",
                   f"output_dir={output_dir}", f"results_dir={runs_dir}"]
        start = time.perf_counter()
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
        walls.append(time.perf_counter() - start)
        startups.append(walls[-1] - json.loads((output_dir / "metrics.json").read_text())["scoring_s"])
    return {"wall_s": round(statistics.median(walls), 3), "startup_s": round(statistics.median(startups), 3),
            "runs": args.startup_runs}


def time_seed_loop(loaded, paths: list[str], labels: list[str]) -> float:
    """The common recipe: the pipeline per clip, raw array as decoded, all labels re-encoded each time."""
    from transformers import pipeline

    classifier = pipeline("zero-shot-audio-classification", model=loaded.model, tokenizer=loaded.tokenizer,
                          feature_extractor=loaded.feature_extractor, device=loaded.device)
    start = time.perf_counter()
    for path in paths:
        samples, _ = sf.read(path, dtype="float32")
        classifier(samples, candidate_labels=labels)
    return time.perf_counter() - start


def stage_profile(loaded, paths: list[str], batch_size: int) -> tuple[dict[str, float], float]:
    """Seconds per clip of each stage, measured alone in this process; and encoder-only throughput time (the
    family's audio embedding of inputs prepared in advance)."""
    totals = dict.fromkeys(["decode", "resample", "featurize"], 0.0)
    prepared = []
    prepare = loaded.family.preparer(torch.device("cpu"))
    for path in paths:
        start = time.perf_counter()
        samples, rate = decode(path)
        mono = to_mono(samples)
        decoded = time.perf_counter()
        waveform = resample(mono, rate, loaded.sampling_rate)
        resampled = time.perf_counter()
        prepared.append(prepare(waveform, clip_seed(0, path)))
        featurized = time.perf_counter()
        totals["decode"] += decoded - start
        totals["resample"] += resampled - decoded
        totals["featurize"] += featurized - resampled
    batches = [loaded.family.collate(prepared[first:first + batch_size]) for first in range(0, len(paths), batch_size)]
    loaded.family.embed_audio(loaded.family.collate(prepared[:1]))  # warm-up
    start = time.perf_counter()
    for inputs in batches:
        loaded.family.embed_audio(inputs)
    if loaded.device.type == "cuda":
        torch.cuda.synchronize()
    encoder_s = time.perf_counter() - start
    return {stage: seconds / len(paths) for stage, seconds in totals.items()}, encoder_s


PROBE_SHAPE = {"clips": 2000, "dimensions": 512, "classes": 50, "folds": 5}
SEPARATION = 0.22  # class means drawn with this deviation, clips scattered around them with 1: accuracy about 0.9


def time_probe(repeats: int) -> dict:
    """Seconds of the 5-fold linear probe (best of `repeats`) on random class-structured embeddings, its accuracy
    and the C chosen per fold."""
    from omegaconf import OmegaConf

    from zsa_eval.data import AudioDataset

    clips, dimensions, classes, folds = (PROBE_SHAPE[key] for key in ("clips", "dimensions", "classes", "folds"))
    rng = np.random.default_rng(0)
    targets = np.arange(clips) % classes
    features = (SEPARATION * rng.standard_normal((classes, dimensions))[targets]
                + rng.standard_normal((clips, dimensions)))
    items = pd.DataFrame({"item_id": [f"clip{index}" for index in range(clips)], "path": "",
                          "label": [ESC50_CATEGORIES[target] for target in targets],
                          "fold": np.arange(clips) // classes % folds + 1})
    dataset = AudioDataset("random", sorted(ESC50_CATEGORIES), items, [], pd.DataFrame())
    protocol = OmegaConf.load(Path(CONFIG_DIR) / "protocol" / "linear_probe.yaml")
    task, sides = LinearProbeTask(protocol), official_folds(dataset, "linear_probe")
    timings, cpu = [], []
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        scores, rows = task.probe(features, task.targets(items, dataset.class_names), dataset.class_names,
                                  sides.test_fold, sides, items, protocol, Training())
        timings.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    return {**PROBE_SHAPE, "separation": SEPARATION, "c_grid": list(protocol.c_grid),
            "inner_folds": protocol.inner_folds, "seconds": round(min(timings), 3),
            "seconds_per_fold": round(min(timings) / folds, 3), "cpu_seconds": round(min(cpu), 3),
            "repeats": repeats, "accuracy": float(np.mean([row["accuracy"] for row in rows])),
            "chosen_c": [row["c"] for row in rows], "load_average_1min": round(os.getloadavg()[0], 2)}


def measure_scoring(args, dataset_dir: Path, model_dir: Path, output_dir: Path, scoring: str) -> dict:
    """One audio language model run in this (fresh) process: clips/s of its scoring, the process's peak RSS."""
    metrics = run(run_config(args, dataset_dir, model_dir, output_dir, f"model.scoring={scoring}"))
    return {"scoring_s": metrics["scoring_s"], "clips_per_s": round(metrics["n_evaluated"] / metrics["scoring_s"], 3),
            "peak_rss_mb": round(peak_rss_mb()["self"], 1)}


def benchmark_scoring(args) -> None:
    """An audio language model's tiny twin in each scoring mode, on 10 and on 50 candidate labels, then likelihood
    scoring's cost per extra label."""
    folder, model_dir = SCORING_FAMILIES[args.family][1], tiny_twin(args.family, args.cache_dir)
    runs_dir = Path(tempfile.mkdtemp(prefix="zsa-eval-benchmark-"))
    measured = []
    for n_labels in LABEL_COUNTS:
        dataset_dir = write_clips(args.cache_dir / "datasets" / f"benchmark_{args.clips}_{n_labels}_labels",
                                  args.clips, CLIP_SECONDS, n_labels)
        for scoring in SCORING_MODES:
            with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as fresh:
                result = fresh.submit(measure_scoring, args, dataset_dir, model_dir,
                                      runs_dir / f"{scoring}_{n_labels}", scoring).result()
            measured.append({"scoring": scoring, "labels": n_labels, **result})
    shutil.rmtree(runs_dir)
    loaded = load_model(folder, str(model_dir), torch.device("cpu"), args.precision, scoring="likelihood",
                        max_new_tokens=8, label_batch_size=64)
    parameters = sum(parameter.numel() for parameter in loaded.model.parameters())
    result = {"family": args.family, "model": folder, "clips": args.clips, "clip_seconds": CLIP_SECONDS,
              "source_rate": SOURCE_RATE, "batch_size": args.batch_size, "num_workers": args.num_workers,
              "device": args.device, "precision": args.precision, "model_parameters": parameters,
              "torch_threads": torch.get_num_threads(), "runs": measured, "label_cost": cost_of_labels(args),
              "load_average_1min": round(os.getloadavg()[0], 2), "platform": platform.platform(),
              "versions": package_versions()}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_json(result, args.out)
    print(f"\n{args.family} ({folder}, {parameters / 1e6:.2f} M parameters): {args.clips} clips x "
          f"{CLIP_SECONDS:.0f} s, {args.device}, {args.precision}, batch {args.batch_size}, {args.num_workers} workers")
    print(f"{'scoring':<12}{'labels':>8}{'clips/s':>10}{'s/clip':>10}{'peak RSS MiB':>14}")
    for row in measured:
        print(f"{row['scoring']:<12}{row['labels']:>8}{row['clips_per_s']:>10.3f}{1 / row['clips_per_s']:>10.3f}"
              f"{row['peak_rss_mb']:>14.0f}")
    print_label_cost(result["label_cost"])
    print(f"-> {args.out}")


def cost_of_labels(args) -> dict:
    """Likelihood scoring's cost per extra label on the family's tiny twin (scripts/benchmark_alm.py)."""
    return label_cost(args.family, args.cache_dir, args.cost_labels, args.cost_repeats, args.cost_width,
                      args.cost_layers, args.cost_clip_seconds)


def benchmark_label_cost(args) -> None:
    """--label-cost: the cost per extra label alone, printed and written."""
    result = {"family": args.family, "model": SCORING_FAMILIES[args.family][1], "device": "cpu", "precision": "fp32",
              **cost_of_labels(args), "load_average_1min": round(os.getloadavg()[0], 2),
              "platform": platform.platform(), "versions": package_versions()}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_json(result, args.out)
    print(f"\n{args.family} ({result['model']}), cpu, fp32")
    print_label_cost(result)
    print(f"-> {args.out}")


def measure_long_clip(args, dataset_dir: Path, model_dir: Path, output_dir: Path) -> dict:
    """One run of a single long clip under long_audio=windows in this (fresh) process: its windows, the scoring
    time and the process's peak RSS."""
    metrics = run(run_config(args, dataset_dir, model_dir, output_dir, "long_audio=windows", "cache=false",
                             "report=false", "dataset.classes=[dog,rooster]"))  # a second candidate, no clip
    return {"windows": metrics["long_audio"]["n_windows_encoded"], "scoring_s": metrics["scoring_s"],
            "peak_rss_mb": round(peak_rss_mb()["self"], 1)}


def benchmark_long_clips(args) -> None:
    """Peak RSS of one clip of each length in --long-clip-seconds under long_audio=windows (each in a fresh process,
    so that each peak is its own), beside a 5 s clip's: what the windows add to the model and the decoded clip."""
    random_kind, folder, _, _ = FAMILIES[args.family]
    model_dir = args.cache_dir / "models" / folder
    if not (model_dir / "config.json").is_file():
        build_random_model(random_kind, model_dir)
    runs_dir = Path(tempfile.mkdtemp(prefix="zsa-eval-benchmark-"))
    measured = []
    for seconds in (CLIP_SECONDS, *map(float, args.long_clip_seconds.split(","))):
        dataset_dir = write_clips(args.cache_dir / "datasets" / f"benchmark_1x{seconds:g}s", 1, seconds)
        with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as fresh:
            result = fresh.submit(measure_long_clip, args, dataset_dir, model_dir,
                                  runs_dir / f"clip_{seconds:g}s").result()
        decoded_mb = seconds * loaded_rate(model_dir) * 4 / 2 ** 20  # the clip decoded: float32 at the model's rate
        measured.append({"clip_seconds": seconds, "decoded_clip_mb": round(decoded_mb, 1), **result})
    shutil.rmtree(runs_dir)
    result = {"family": args.family, "model": folder, "long_audio": "windows", "batch_size": args.batch_size,
              "device": args.device, "precision": args.precision, "runs": measured,
              "platform": platform.platform(), "versions": package_versions()}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_json(result, args.out)
    print(f"\n{args.family} ({folder}), long_audio=windows, one clip per run, batch {args.batch_size}, {args.device}")
    print(f"{'clip':>10}{'windows':>9}{'scoring s':>11}{'decoded MiB':>13}{'peak RSS MiB':>14}")
    for row in measured:
        print(f"{row['clip_seconds']:>9g}s{row['windows']:>9}{row['scoring_s']:>11.1f}{row['decoded_clip_mb']:>13.0f}"
              f"{row['peak_rss_mb']:>14.0f}")
    print(f"-> {args.out}")


def loaded_rate(model_dir: Path) -> int:
    """The sampling rate of a saved model's feature extractor."""
    from transformers import AutoFeatureExtractor

    return int(AutoFeatureExtractor.from_pretrained(model_dir).sampling_rate)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--family", choices=sorted(FAMILIES | SCORING_FAMILIES), default="clap")
    parser.add_argument("--clips", type=int, default=64)
    parser.add_argument("--clip-seconds", type=float, default=CLIP_SECONDS, help="each clip's length")
    parser.add_argument("--long-audio", default="", help="comma-separated long_audio policies to time the embed "
                        "engine under, one run each (e.g. native,windows)")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--num-workers", default="auto", help="auto (the config default) or a number")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--precision", default="fp32", choices=["fp32", "fp16", "bf16"])
    parser.add_argument("--engines", default=None, help=f"comma-separated subset of {ENGINES} (default: all the "
                        "family can run)")
    parser.add_argument("--startup-runs", type=int, default=3, help="limit=1 runs timed for startup_s (0: none)")
    parser.add_argument("--rerun", action="store_true", help="also time a cached rerun with another template")
    parser.add_argument("--cache-dir", type=Path, default=Path.home() / ".cache" / "zsa-eval")
    parser.add_argument("--probe", action="store_true", help="time only the 5-fold linear probe on random "
                        "ESC-50-sized embeddings (no model)")
    parser.add_argument("--probe-repeats", type=int, default=3, help="--probe: time this many probes, keep the best")
    parser.add_argument("--out", type=Path, default=None, help="default: results/benchmark/benchmark.json "
                        "(--probe: results/benchmark/probe.json; an audio language model: results/benchmark/<family>.json)")
    parser.add_argument("--long-clips", action="store_true", help="peak RSS of one long clip per run under "
                        "long_audio=windows (results/benchmark/long_clips.json)")
    parser.add_argument("--long-clip-seconds", default="300,3000", help="--long-clips: the clip lengths, comma-separated")
    parser.add_argument("--label-cost", action="store_true", help="an audio language model: only likelihood "
                        "scoring's cost per extra label, on a 5 s and a 30 s clip")
    parser.add_argument("--cost-labels", type=label_counts, default="64,128,256,512", help="the label counts the "
                        "cost per label is fitted on, comma-separated")
    parser.add_argument("--cost-repeats", type=positive_int, default=5, help="scorings timed per label count (the "
                        "best kept)")
    parser.add_argument("--cost-width", default="tiny", choices=["tiny", "checkpoint"], help="the language model's "
                        "widths for the cost per label: the tiny twin's, or its published checkpoint's (random weights)")
    parser.add_argument("--cost-layers", type=positive_int, default=1, help="--cost-width checkpoint: decoder layers "
                        "built")
    parser.add_argument("--cost-clip-seconds", type=clip_pair, default="5,30", help="the short and the long clip, "
                        "comma-separated")
    args = parser.parse_args()
    if args.label_cost and args.family not in SCORING_FAMILIES:
        parser.error(f"--label-cost times an audio language model's likelihood scoring; --family {args.family} has "
                     f"none: choose one of {', '.join(sorted(SCORING_FAMILIES))}")
    if args.long_clips:
        args.out = args.out or Path("results/benchmark/long_clips.json")
        benchmark_long_clips(args)
        return
    if args.family in SCORING_FAMILIES and args.label_cost:
        suffix = "_checkpoint_widths" if args.cost_width == "checkpoint" else ""
        args.out = args.out or Path(f"results/benchmark/{args.family}_label_cost{suffix}.json")
        benchmark_label_cost(args)
        return
    if args.family in SCORING_FAMILIES:
        args.out = args.out or Path(f"results/benchmark/{args.family}.json")
        benchmark_scoring(args)
        return
    if args.probe:
        result = time_probe(args.probe_repeats) | {"torch_threads": torch.get_num_threads(),
                                                   "cpu_count": os.cpu_count(), "platform": platform.platform(),
                                                   "versions": package_versions()}
        out = args.out or Path("results/benchmark/probe.json")
        out.parent.mkdir(parents=True, exist_ok=True)
        write_json(result, out)
        print(f"linear probe, {result['folds']} folds of {result['clips']} x {result['dimensions']} embeddings, "
              f"{result['classes']} classes: {result['seconds']:.2f} s ({result['seconds_per_fold']:.2f} s per fold, "
              f"best of {result['repeats']}; {result['cpu_seconds']:.2f} s of CPU; load average "
              f"{result['load_average_1min']}), accuracy "
              f"{result['accuracy']:.4f}, C per fold {result['chosen_c']} -> {out}")
        return
    args.out = args.out or Path("results/benchmark/benchmark.json")
    random_kind, folder, _, family_engines = FAMILIES[args.family]
    engines = [engine for engine in (",".join(family_engines) if args.engines is None else args.engines).split(",")
               if engine]
    if unknown := set(engines) - set(family_engines):
        sys.exit(f"benchmark: engines {sorted(unknown)} cannot run --family {args.family}; choose from "
                 f"{', '.join(family_engines)}")

    model_dir = args.cache_dir / "models" / folder
    if not (model_dir / "config.json").is_file():
        build_random_model(random_kind, model_dir)
    dataset_dir = write_clips(args.cache_dir / "datasets" / f"benchmark_{args.clips}x{args.clip_seconds:g}s",
                              args.clips, args.clip_seconds)
    meta = pd.read_csv(dataset_dir / "meta" / "esc50.csv")
    paths = [str(dataset_dir / "audio" / name) for name in meta["filename"]]
    labels = [name.replace("_", " ") for name in ESC50_CATEGORIES]
    device = resolve_device(args.device)
    runs_dir = Path(tempfile.mkdtemp(prefix="zsa-eval-benchmark-"))  # scratch runs, kept out of results/
    seconds: dict[str, float] = {}
    profile: dict[str, float] = {}

    loaded = load_model(folder, str(model_dir), device, args.precision, max_seconds=30)
    parameters = sum(parameter.numel() for parameter in loaded.model.parameters())
    if "seed_loop" in engines:
        seconds["seed_loop"] = time_seed_loop(loaded, paths, labels)
    if "encoder_only" in engines:
        profile, seconds["encoder_only"] = stage_profile(loaded, paths, args.batch_size)
    del loaded
    for engine in ("pipeline", "embed"):
        if engine in engines:
            metrics = run(run_config(args, dataset_dir, model_dir, runs_dir / engine, f"engine={engine}",
                                     "cache=false"))
            seconds[engine] = metrics["scoring_s"]
    long_audio = {}
    for policy in filter(None, args.long_audio.split(",")):
        metrics = run(run_config(args, dataset_dir, model_dir, runs_dir / f"long_audio_{policy}",
                                 f"long_audio={policy}", "cache=false"))
        long_audio[policy] = {"clips_per_s": round(args.clips / metrics["scoring_s"], 3),
                              "windows_encoded": metrics["long_audio"]["n_windows_encoded"]}
    rerun = {}
    if args.rerun:
        first = run(run_config(args, dataset_dir, model_dir, runs_dir / "rerun_first", "template=sound_of",
                               f"cache_dir={runs_dir / 'embedding_cache'}"))
        second = run(run_config(args, dataset_dir, model_dir, runs_dir / "rerun_second", "template=plain",
                                f"cache_dir={runs_dir / 'embedding_cache'}"))
        rerun = {"first_s": first["scoring_s"], "second_s": second["scoring_s"],
                 "speedup": round(first["scoring_s"] / second["scoring_s"], 2)}

    startup = time_startup(args, dataset_dir, model_dir, runs_dir) if args.startup_runs else {}

    shutil.rmtree(runs_dir)
    clips_per_s = {engine: round(args.clips / value, 3) for engine, value in seconds.items()}
    ratios = {
        f"embed_vs_{other}": round(clips_per_s["embed"] / clips_per_s[other], 3)
        for other in ("seed_loop", "encoder_only") if "embed" in clips_per_s and other in clips_per_s
    }
    if {"native", "windows"} <= long_audio.keys():
        ratios["windows_vs_native"] = round(long_audio["windows"]["clips_per_s"] / long_audio["native"]["clips_per_s"],
                                            3)
    if profile and "embed" in seconds:
        profile["encoder"] = seconds["encoder_only"] / args.clips
        profile["embed_end_to_end"] = seconds["embed"] / args.clips
    result = {
        "family": args.family, "model": folder, "clips": args.clips, "clip_seconds": args.clip_seconds,
        "source_rate": SOURCE_RATE, "labels": len(labels),
        "batch_size": args.batch_size, "num_workers": args.num_workers, "device": str(device),
        "precision": args.precision, "model_parameters": parameters, "torch_threads": torch.get_num_threads(),
        "clips_per_s": clips_per_s, **ratios, "long_audio": long_audio, "seconds_per_clip_by_stage": profile,
        "rerun": rerun,
        "startup": startup, "peak_rss_mb": peak_rss_mb(), "platform": platform.platform(),
        "versions": package_versions(),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_json(result, args.out)
    print(f"\n{args.family} ({folder}): {args.clips} clips x {args.clip_seconds:g} s, {len(labels)} labels, "
          f"{parameters / 1e6:.1f} M parameters, "
          f"{device}, {args.precision}, batch {args.batch_size}, {args.num_workers} workers")
    print(f"{'engine':<14}{'clips/s':>10}{'s/clip':>10}")
    for engine, rate in clips_per_s.items():
        print(f"{engine:<14}{rate:>10.3f}{1 / rate:>10.3f}")
    for name, value in ratios.items():
        print(f"{name}: {value}")
    for policy, timed in long_audio.items():
        print(f"embed, long_audio={policy}: {timed['clips_per_s']:.3f} clips/s ({timed['windows_encoded']} windows "
              "encoded)")
    if profile:
        print("seconds per clip by stage: " + ", ".join(f"{stage} {value:.4f}" for stage, value in profile.items()))
    if rerun:
        print(f"rerun with another template: first {rerun['first_s']:.2f} s, second {rerun['second_s']:.2f} s "
              f"({rerun['speedup']}x faster)")
    if startup:
        print(f"startup_s {startup['startup_s']:.2f} (limit=1 run: {startup['wall_s']:.2f} s wall, median of "
              f"{startup['runs']})")
    rss = result["peak_rss_mb"]
    print(f"peak RSS: {rss['self']:.0f} MiB (largest worker {rss['largest_child']:.0f} MiB) -> {args.out}")


if __name__ == "__main__":
    try:
        main()
    except UserError as error:  # a twin that cannot be built or loaded here (Voxtral without mistral-common, ...)
        print(f"benchmark: {error}", file=sys.stderr)
        sys.exit(2)
