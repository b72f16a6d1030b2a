"""The ESC-50 folder loader: the original download's meta/esc50.csv and audio/ read into items."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import pandas as pd

from zsa_eval.data.items import CLASSIFICATION, AudioDataset, build_dataset, require_column, require_path
from zsa_eval.data.listing import list_folder, unlisted_files
from zsa_eval.errors import UserError


def load_esc50_folder(
    name: str,
    path: str | None,
    follow_symlinks: bool = False,
    extensions: Sequence[str] | None = None,
    task: str = CLASSIFICATION,
    **selection,
) -> AudioDataset:
    """The original ESC-50 layout: meta/esc50.csv (filename, fold, category, esc10, ...) and audio/ (the config
    check refuses task retrieval here)."""
    root = require_path(path, name, "the ESC-50 folder (holding meta/esc50.csv and audio/)")
    meta = root / "meta" / "esc50.csv"
    if not meta.is_file():
        raise UserError(f"{meta} not found: dataset.path must hold meta/esc50.csv and audio/ as in ESC-50")
    table = pd.read_csv(meta)
    require_column(table, "filename", "meta/esc50.csv's file column (filename)")
    paths = [str(root / "audio" / filename) for filename in table["filename"]]
    listing = list_folder(root, follow_symlinks, extensions)
    dataset = build_dataset(name, table, table["filename"].tolist(), paths, lambda rows: [paths[row] for row in rows],
                            task=task, **selection)
    return replace(dataset, ignored_files=unlisted_files(listing, paths, meta), source=str(root))
