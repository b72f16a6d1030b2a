"""The results directory: each run's metrics.json, CSV tables, PNGs and config.yaml, written atomically; the
progress log a run resumes from; leaderboards, comparisons and gates across runs (`python -m zsa_eval.report`).
The report layer reads what each run declares in its metrics.json and knows no task."""

from __future__ import annotations

import io
import json
import os
import shutil
import uuid
from pathlib import Path

import numpy as np
import pandas as pd

from zsa_eval.errors import UserError
from zsa_eval.provenance import short_hash

__all__ = ["short_hash"]


def atomic_write(path: Path, data: str | bytes) -> None:
    """Write to a temporary file beside `path`, flush it to disk, then rename it over `path`."""
    payload = data.encode() if isinstance(data, str) else data
    temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex[:12]}.tmp")
    try:
        with open(temporary, "xb") as file:
            file.write(payload)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def write_csv(frame: pd.DataFrame, path: Path, index: bool = False) -> None:
    atomic_write(path, frame.to_csv(index=index))


def write_json(payload: dict, path: Path) -> None:
    atomic_write(path, json.dumps(payload, indent=2, default=str) + "\n")


def npy_bytes(array: np.ndarray) -> bytes:
    """An array as a .npy file's bytes (never pickled)."""
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


RUN_FILE = "run.json"
PROGRESS_FILE = "progress.jsonl"
PROGRESS_PARTS = "progress*.jsonl"
RESULT_FILES = ("metrics.json", "per_class.csv", "per_fold.csv", "predictions.csv", "confusion_matrix.csv",
                "confusion_matrix.png", "config.yaml", "errors.csv", "excluded.csv", "ignored_files.csv",
                "scores.parquet", "ranks.csv", "recall_at_k.png", "per_class_ap.png", "per_repeat.csv", "report.html",
                RUN_FILE)
RESULT_FOLDERS = ("embeddings", "report_assets")


class ProgressLog:
    """Per-item outcomes (class probabilities, or the reason for a skip) appended as JSON lines after every
    batch and flushed to disk, so a killed run keeps each batch it finished; a torn last line is ignored.

    Each process of a data-parallel run appends to its own part (`progress<part>.jsonl`); reading merges
    every part in the directory."""

    def __init__(self, directory: Path, part: str = ""):
        self.directory = directory
        self.path = directory / f"progress{part}.jsonl"

    def append(self, records: list[dict]) -> None:
        if not records:
            return
        with open(self.path, "a", encoding="utf-8") as file:
            file.write("".join(json.dumps(record, ensure_ascii=False) + "\n" for record in records))
            file.flush()
            os.fsync(file.fileno())

    def read(self) -> dict[int, dict]:
        """Records of every part by item position; only whole lines count (a kill may have cut the last)."""
        records = {}
        for part in sorted(self.directory.glob(PROGRESS_PARTS)):
            for line in part.read_text(encoding="utf-8").splitlines(keepends=True):
                if not line.endswith("\n"):
                    break
                record = json.loads(line)
                records[record["index"]] = record
        return records

    def compact(self, records: dict[int, dict]) -> None:
        """Rewrite all parts as one log of whole records (drops torn tails before anyone appends again)."""
        merged = "".join(json.dumps(records[index], ensure_ascii=False) + "\n" for index in sorted(records))
        if merged:
            atomic_write(self.directory / PROGRESS_FILE, merged)
        for part in self.directory.glob(PROGRESS_PARTS):
            if part.name != PROGRESS_FILE or not merged:
                part.unlink()


def changed_keys(old: dict, new: dict, prefix: str = "") -> list[str]:
    """Dotted keys whose values differ between two nested configs."""
    keys = []
    for key in sorted(set(old) | set(new)):
        before, after = old.get(key), new.get(key)
        if isinstance(before, dict) and isinstance(after, dict):
            keys += changed_keys(before, after, f"{prefix}{key}.")
        elif before != after:
            keys.append(f"{prefix}{key}")
    return keys


def open_run_dir(output_dir: Path, identity: dict, resume: bool, overwrite: bool) -> None:
    """Create or reopen `output_dir` for the run `identity` (the settings that determine its results).

    A directory holding another run, or files of its own, is refused unless `overwrite` (which removes only
    zsa-eval's files); one holding this run needs `resume` to continue or `overwrite` to start again."""
    try:
        output_dir.mkdir(parents=True, exist_ok=True)
        probe = output_dir / f".write-test-{uuid.uuid4().hex[:8]}"
        probe.touch()
        probe.unlink()
    except OSError as error:
        raise UserError(f"cannot write to output_dir {str(output_dir)!r} ({error.strerror or error}); "
                        "choose a writable output_dir=...") from error
    if overwrite:
        for path in [*(output_dir / name for name in RESULT_FILES), *output_dir.glob(PROGRESS_PARTS)]:
            path.unlink(missing_ok=True)
        for folder in RESULT_FOLDERS:
            shutil.rmtree(output_dir / folder, ignore_errors=True)
    elif any(output_dir.iterdir()):
        run_file = output_dir / RUN_FILE
        if not run_file.is_file():
            raise UserError(f"output_dir {str(output_dir)!r} is not empty and holds no zsa-eval run: choose an empty "
                            "output_dir, or overwrite=true to write there anyway")
        previous = json.loads(run_file.read_text())
        if previous != identity:
            differences = ", ".join(changed_keys(previous, identity)) or "unknown"
            raise UserError(f"output_dir {str(output_dir)!r} holds a run of another config (differs in: "
                            f"{differences}); use another output_dir, or overwrite=true to replace it")
        if not resume:
            raise UserError(f"output_dir {str(output_dir)!r} already holds this run: resume=true to continue it "
                            "(or re-finish it), overwrite=true to start again")
    write_json(identity, output_dir / RUN_FILE)


def write_run(output_dir: Path, metrics: dict, results, config_yaml: str) -> None:
    """Write every result file of one run into `output_dir`, metrics.json last: a task's TaskResults (tables as
    `<name>.csv`, figures as PNG, arrays as .npy and tables as parquet under their relative paths) and config.yaml."""
    files = {**{f"{name}.csv": table.to_csv(index=False) for name, table in results.tables.items()},
             **results.figures,
             **{name: npy_bytes(array) for name, array in results.arrays.items()},
             **{name: table.to_parquet(index=False) for name, table in results.parquet.items()},
             "config.yaml": config_yaml}
    for name, payload in files.items():
        (output_dir / name).parent.mkdir(parents=True, exist_ok=True)
        atomic_write(output_dir / name, payload)
    write_json(metrics, output_dir / "metrics.json")
