"""The audio embeddings a run keeps while it runs (a task that needs them all at the end, or save_embeddings=true),
as .npz parts (never pickled): stored per batch (`embeddings/parts/<first position>.npz`) before the batch is
logged, so an interrupted run keeps them and a resumed run completes them; removed once the run's files are
written."""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from zsa_eval.store import remove_recorded, write_run_file

EMBEDDINGS_DIR = "embeddings"  # a run directory's embeddings: the tasks' saved ones (save_embeddings) and the resume parts


PARTS = "parts"


def parts_dir(output_dir: Path) -> Path:
    return output_dir / EMBEDDINGS_DIR / PARTS


def store_embedding_part(output_dir: Path, positions: list[int], embeddings: Sequence[np.ndarray]) -> None:
    """One batch's audio embeddings, with the dataset positions of its rows (one array per clip, so that
    frame-level embeddings of unequal length fit too)."""
    buffer = io.BytesIO()
    np.savez(buffer, positions=np.asarray(positions, dtype=np.int64),
             **{f"clip{row}": np.asarray(embedding, dtype=np.float32) for row, embedding in enumerate(embeddings)})
    write_run_file(output_dir, f"{EMBEDDINGS_DIR}/{PARTS}/{positions[0]:09d}.npz", buffer.getvalue())


def read_embedding_parts(output_dir: Path) -> dict[int, np.ndarray]:
    """Every stored audio embedding by dataset position (a position stored twice, by a batch redone after an
    interruption, holds the same embedding)."""
    stored: dict[int, np.ndarray] = {}
    for part in sorted(parts_dir(output_dir).glob("*.npz")):
        with np.load(part, allow_pickle=False) as arrays:
            stored.update((position, arrays[f"clip{row}"]) for row, position in enumerate(arrays["positions"].tolist()))
    return stored


def stored_positions(output_dir: Path) -> set[int]:
    """The dataset positions whose audio embeddings are stored (read without loading the embeddings)."""
    positions: set[int] = set()
    for part in parts_dir(output_dir).glob("*.npz"):
        with np.load(part, allow_pickle=False) as arrays:
            positions.update(arrays["positions"].tolist())
    return positions


def remove_embedding_parts(output_dir: Path) -> None:
    """Once a run's final files are written its per-batch parts are no longer needed (a later resume=true re-embeds
    what it needs, from the cache when it can); the folders they leave empty go with them."""
    remove_recorded(output_dir, lambda name: name.startswith(f"{EMBEDDINGS_DIR}/{PARTS}/"))
