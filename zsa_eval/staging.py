"""Folders zsa-eval writes whole (a synthesized dataset, a random-weight model): filled beside their destination,
then moved into place in one rename, replacing only a folder zsa-eval wrote itself."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from zsa_eval.errors import UserError


def write_folder(out_dir: Path, write: Callable[[Path], None], own_file: str, refusal: str) -> Path:
    """Let `write(staging)` fill a fresh folder beside `out_dir`, then move it into place. An `out_dir` that holds
    anything but lacks `own_file` (what zsa-eval writes there) is not replaced: UserError(`refusal`)."""
    if out_dir.exists() and not (out_dir / own_file).is_file() and (not out_dir.is_dir() or any(out_dir.iterdir())):
        raise UserError(refusal)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}-", dir=out_dir.parent))
    try:
        write(staging)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    if out_dir.exists():
        shutil.rmtree(out_dir)
    os.replace(staging, out_dir)
    return out_dir
