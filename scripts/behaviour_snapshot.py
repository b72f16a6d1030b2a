"""Snapshot what runs of every task write, to check that a restructuring keeps behaviour: the same metrics.json
values and the same predictions, ranks and scores.

    python scripts/behaviour_snapshot.py run OUT          # with the checkout on PYTHONPATH: runs into OUT/<case>/
    python scripts/behaviour_snapshot.py compare OLD NEW  # every value both snapshots hold, file by file

`run` builds small local datasets (synthetic ESC-50-layout sounds, a multi-label folder, a captions folder, all
seeded) and evaluates them with the tiny random CLAP and PE-Audio models through the command line, as a user would:
classification (embed and pipeline engines, a prompt ensemble, save_embeddings), tagging and retrieval. `compare`
prints every difference: metrics.json keys whose values differ (timings, paths and provenance aside), keys only one
side has, and result files whose bytes differ. It exits 1 when a value or a file differs.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import soundfile as sf

CASES = {
    "classification": ["dataset=esc50_folder", "dataset.path={data}/esc50", "model=tiny_random",
                       "max_skip_fraction=0.5"],
    "classification_pipeline": ["dataset=esc50_folder", "dataset.path={data}/esc50", "model=tiny_random",
                                "engine=pipeline", "template=sound_of"],
    "classification_ensemble": ["dataset=esc50_folder", "dataset.path={data}/esc50", "model=tiny_random",
                                "template=ensemble", "save_embeddings=true", "dataset.folds=[1,2]"],
    "classification_pe": ["dataset=esc50_folder", "dataset.path={data}/esc50", "model=pe_tiny_random"],
    "tagging": ["dataset=audiofolder", "dataset.path={data}/tags", "dataset.label_column=tags",
                "dataset.task=multilabel", 'dataset.label_delimiter=";"', "model=tiny_random"],
    "retrieval": ["dataset=captions_folder", "dataset.path={data}/captions", "model=tiny_random",
                  "save_embeddings=true", "max_skip_fraction=0.5"],
    "retrieval_pe": ["dataset=captions_folder", "dataset.path={data}/captions", "model=pe_tiny_random",
                     "max_skip_fraction=0.5"],
}
RUN_SPECIFIC = {"started_at", "finished_at", "scoring_s", "elapsed_s", "encoded_clips_per_s", "output_dir",
                "provenance", "config", "leaderboard"}
RESULT_FILES = ("predictions.csv", "per_class.csv", "per_fold.csv", "confusion_matrix.csv", "errors.csv",
                "excluded.csv", "ignored_files.csv", "ranks.csv", "scores.parquet", "embeddings/audio.npy",
                "embeddings/text.npy", "embeddings/audio_items.csv", "embeddings/text_labels.csv",
                "embeddings/text_captions.csv")
RATE = 16000


def sound(seed: int, seconds: float = 0.6) -> np.ndarray:
    """A seeded mixture of a tone and noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(RATE * seconds)) / RATE
    return (0.3 * np.sin(2 * np.pi * (200 + 150 * (seed % 7)) * t) + 0.1 * rng.standard_normal(len(t))).astype(np.float32)


def write_datasets(data: Path) -> None:
    """The three local datasets: an ESC-50 folder (4 classes x 5 clips, folds 1-5, one broken file), a multi-label
    metadata folder and a captions folder (one clip without audio)."""
    esc50 = data / "esc50"
    (esc50 / "audio").mkdir(parents=True)
    (esc50 / "meta").mkdir()
    rows = ["filename,fold,category,esc10,src_file"]
    for index in range(20):
        category = ("dog", "rain", "siren", "chirping_birds")[index % 4]
        name = f"{index % 5 + 1}-{index:03d}-A-{index % 4}.wav"
        sf.write(esc50 / "audio" / name, sound(index), RATE)
        rows.append(f"{name},{index % 5 + 1},{category},{index % 2 == 0},{index}")
    (esc50 / "audio" / "5-019-A-3.wav").write_bytes(b"not audio")  # the last clip is broken: a skip
    (esc50 / "meta" / "esc50.csv").write_text("\n".join(rows) + "\n")
    tags = data / "tags"
    tags.mkdir()
    tag_sets = ["bell;chime", "alarm;beep", "speech", "bell", "speech;music", "music", "alarm", "chime;music"]
    for index, _ in enumerate(tag_sets):
        sf.write(tags / f"{index}.wav", sound(100 + index), RATE)
    (tags / "metadata.csv").write_text("file_name,tags\n" + "".join(f"{index}.wav,{labels}\n"
                                                                   for index, labels in enumerate(tag_sets)))
    captions = data / "captions"
    captions.mkdir()
    texts = ["a dog barks", "rain on a roof", "a siren wails", "birds chirp", "a bell rings"]
    lines = ["file_name,caption"]
    for index, text in enumerate(texts):
        sf.write(captions / f"{index}.wav", sound(200 + index), RATE)
        lines += [f"{index}.wav,{text}", f"{index}.wav,{text} loudly"]
    lines.append("missing.wav,nothing at all")
    (captions / "metadata.csv").write_text("\n".join(lines) + "\n")


def run_cases(out: Path) -> None:
    data = out / "data"
    write_datasets(data)
    environment = {**os.environ, "ZSA_EVAL_CACHE": str(out / "cache"), "ZSA_EVAL_RESULTS": str(out / "results")}
    for case, arguments in CASES.items():
        command = [sys.executable, "-m", "zsa_eval", *(argument.format(data=data) for argument in arguments),
                   "progress=false", "cache=false", f"output_dir={out / case}"]
        finished = subprocess.run(command, env=environment, capture_output=True, text=True)
        print(f"{case}: exit {finished.returncode}: {(finished.stdout or finished.stderr).strip().splitlines()[0]}")


def identity_hash(identity: dict) -> str:
    """The identity hash as metrics.json defines it: 12 hex digits of the SHA-256 of the canonical JSON."""
    text = json.dumps(identity, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def compared(metrics_file: Path, root: Path) -> dict:
    """metrics.json less what differs between any two runs, its snapshot's root path written `<root>`; the identity
    hash (of paths under another root) replaced by whether it is the hash of the run's own identity."""
    metrics = json.loads(metrics_file.read_text())
    metrics["identity_hash"] = metrics["identity_hash"] == identity_hash(metrics["identity"])
    metrics = json.loads(json.dumps(metrics).replace(str(root), "<root>"))
    return {key: value for key, value in metrics.items() if key not in RUN_SPECIFIC}


def compare_snapshots(old: Path, new: Path) -> int:
    """Print every difference between the two snapshots' runs (each one's root path read as `<root>`); 1 when a
    value or a result file differs."""
    differences = 0
    for case in CASES:
        before = compared(old / case / "metrics.json", old)
        after = compared(new / case / "metrics.json", new)
        for key in sorted(before.keys() & after.keys()):
            if before[key] != after[key]:
                differences += 1
                print(f"{case}: metrics.json {key}: {before[key]!r} -> {after[key]!r}")
        for key in sorted(before.keys() - after.keys()):
            print(f"{case}: metrics.json {key} only before")
        for key in sorted(after.keys() - before.keys()):
            print(f"{case}: metrics.json {key} only after")
        for name in RESULT_FILES:
            old_file, new_file = old / case / name, new / case / name
            if old_file.exists() != new_file.exists():
                differences += 1
                print(f"{case}: {name} {'only before' if old_file.exists() else 'only after'}")
            elif old_file.exists() and (old_file.read_bytes().replace(bytes(old), b"<root>")
                                        != new_file.read_bytes().replace(bytes(new), b"<root>")):
                differences += 1
                print(f"{case}: {name} differs")
        print(f"{case}: {len(before.keys() & after.keys())} metrics.json values compared")
    print(f"{differences} difference(s) in values or result files")
    return 1 if differences else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("run").add_argument("out", type=Path)
    comparison = commands.add_parser("compare")
    comparison.add_argument("old", type=Path)
    comparison.add_argument("new", type=Path)
    arguments = parser.parse_args()
    if arguments.command == "run":
        run_cases(arguments.out)
        return 0
    return compare_snapshots(arguments.old, arguments.new)


if __name__ == "__main__":
    sys.exit(main())
