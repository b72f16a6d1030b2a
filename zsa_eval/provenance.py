"""Where a result came from: software versions and commit, machine, model revision and weights, data fingerprint."""

from __future__ import annotations

import hashlib
import json
import os
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd
    import torch

VERSIONED_PACKAGES = ("zsa-eval", "torch", "transformers", "tokenizers", "datasets", "torchcodec", "numpy",
                      "scikit-learn", "pandas", "soundfile", "soxr", "hydra-core")


def package_versions() -> dict[str, str]:
    versions = {}
    for package in VERSIONED_PACKAGES:
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = "not installed"
    return versions


def git_commit() -> str | None:
    """The commit of the zsa-eval checkout being run (with "-dirty" for uncommitted changes); None from a wheel."""
    source = Path(__file__).resolve().parent.parent
    if not (source / ".git").exists():
        return None
    try:
        commit = subprocess.run(["git", "-C", str(source), "rev-parse", "HEAD"], capture_output=True, text=True,
                                timeout=5, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(source), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=5, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return f"{commit}-dirty" if dirty else commit


def short_hash(payload: object, length: int) -> str:
    """First `length` hex digits of the SHA-256 of `payload` as canonical JSON (sorted keys, no spaces)."""
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:length]


def identity_hash(identity: dict) -> str:
    """metrics.json "identity_hash": 12 hex digits naming everything that determines a run's results."""
    return short_hash(identity, 12)


def prompts_hash(prompts: list[str]) -> str:
    """metrics.json "prompts_hash": 8 hex digits of the prompt list, shown beside the template name."""
    return short_hash(list(prompts), 8)


def device_name(device: torch.device) -> str:
    import torch

    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return platform.processor() or platform.machine()


def environment(device: torch.device) -> dict:
    return {
        "zsa_eval_commit": git_commit(),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "device_name": device_name(device),
        "versions": package_versions(),
    }


def items_fingerprint(items: pd.DataFrame) -> str:
    """Hash of the evaluated selection: each item's id, label and fold, in order."""
    return short_hash(items[["item_id", "label", "fold"]].astype(str).values.tolist(), 16)


def files_fingerprint(paths: list[str]) -> str | None:
    """Hash of local files' sizes and modification times (cheap: no file is read); None for Hub data."""
    if not all(Path(path).is_absolute() for path in paths):
        return None
    stats = []
    for path in paths:
        try:
            status = os.stat(path)
        except OSError:
            stats.append((path, None))
            continue
        stats.append((path, status.st_size, status.st_mtime_ns))
    return short_hash(stats, 16)
