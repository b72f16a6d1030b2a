"""The run directory: metrics.json, CSV tables, the confusion-matrix PNG and config.yaml, each written atomically."""

from __future__ import annotations

import io
import json
import os
import uuid
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
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110)
    plt.close(figure)
    return buffer.getvalue()


def prepare_output_dir(output_dir: Path) -> Path:
    try:
        output_dir.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise UserError(f"cannot create output_dir {str(output_dir)!r} ({error.strerror}); "
                        "choose a writable output_dir=...") from error
    return output_dir


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
