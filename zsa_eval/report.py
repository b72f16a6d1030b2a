"""The run directory: metrics.json, CSV tables, the confusion-matrix PNG and config.yaml, each written atomically."""

from __future__ import annotations

import io
import json
import os
import uuid
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from zsa_eval.errors import UserError


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


def confusion_png(confusion: pd.DataFrame) -> bytes:
    """Row-normalized confusion matrix as PNG; the figure grows with the class count so 50 labels stay legible."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    counts = confusion.to_numpy(dtype=float)
    rates = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    n_classes = len(confusion)
    side = max(5.0, 0.28 * n_classes + 3)
    figure, axes = plt.subplots(figsize=(side + 1.5, side))
    image = axes.imshow(rates, cmap="Blues", vmin=0, vmax=1)
    ticks = np.arange(n_classes)
    font = 10 if n_classes <= 20 else 7
    axes.set_xticks(ticks, confusion.columns, rotation=90, fontsize=font)
    axes.set_yticks(ticks, confusion.index, fontsize=font)
    axes.set_xlabel("predicted label")
    axes.set_ylabel("true label")
    axes.set_title("Confusion matrix (rows normalized to recall)")
    if n_classes <= 20:
        for row, column in zip(*np.nonzero(counts)):
            axes.text(column, row, f"{rates[row, column]:.2f}", ha="center", va="center", fontsize=8,
                      color="white" if rates[row, column] > 0.5 else "black")
    figure.colorbar(image, ax=axes, fraction=0.046, pad=0.04)
    buffer = io.BytesIO()
    with warnings.catch_warnings():  # glyphs missing from the font, very long labels: drawn as well as can be
        warnings.simplefilter("ignore", UserWarning)
        figure.tight_layout()
        figure.savefig(buffer, format="png", dpi=110)
    plt.close(figure)
    return buffer.getvalue()


RUN_FILE = "run.json"
PROGRESS_FILE = "progress.jsonl"
RESULT_FILES = ("metrics.json", "per_class.csv", "per_fold.csv", "predictions.csv", "confusion_matrix.csv",
                "confusion_matrix.png", "config.yaml", "errors.csv", RUN_FILE, PROGRESS_FILE)


class ProgressLog:
    """Per-item outcomes (class probabilities, or the reason for a skip) appended as JSON lines after every
    batch and flushed to disk, so a killed run keeps each batch it finished; a torn last line is ignored."""

    def __init__(self, path: Path):
        self.path = path

    def append(self, records: list[dict]) -> None:
        if not records:
            return
        with open(self.path, "a", encoding="utf-8") as file:
            file.write("".join(json.dumps(record, ensure_ascii=False) + "\n" for record in records))
            file.flush()
            os.fsync(file.fileno())

    def read(self) -> dict[int, dict]:
        """Records by item position; only whole lines count (the last one may have been cut by a kill)."""
        if not self.path.is_file():
            return {}
        records = {}
        for line in self.path.read_text(encoding="utf-8").splitlines(keepends=True):
            if not line.endswith("\n"):
                break
            record = json.loads(line)
            records[record["index"]] = record
        return records

    def compact(self, records: dict[int, dict]) -> None:
        """Rewrite the log with whole records only (drops a torn tail before appending after it)."""
        atomic_write(self.path, "".join(json.dumps(records[index], ensure_ascii=False) + "\n"
                                        for index in sorted(records)))


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


def open_run_dir(output_dir: Path, identity: dict, resume: bool, overwrite: bool) -> ProgressLog:
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
        for name in RESULT_FILES:
            (output_dir / name).unlink(missing_ok=True)
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
    return ProgressLog(output_dir / PROGRESS_FILE)


def write_run(
    output_dir: Path, metrics: dict, tables: dict[str, pd.DataFrame], confusion: pd.DataFrame, config_yaml: str
) -> None:
    """Write every result file of one run into `output_dir`."""
    for name, table in tables.items():
        write_csv(table, output_dir / f"{name}.csv")
    write_csv(confusion, output_dir / "confusion_matrix.csv", index=True)
    atomic_write(output_dir / "confusion_matrix.png", confusion_png(confusion))
    atomic_write(output_dir / "config.yaml", config_yaml)
    write_json(metrics, output_dir / "metrics.json")
