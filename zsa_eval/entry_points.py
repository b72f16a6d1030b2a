"""The model families that installed packages register (entry points of the group `zsa_eval.families`), read from
their metadata without importing them or torch: what `--help` and `--version` list (zsa_eval.families.registry
loads them)."""

from __future__ import annotations

from importlib import metadata

GROUP = "zsa_eval.families"


def family_entry_points() -> dict[str, metadata.EntryPoint]:
    """The registered families by entry point name."""
    return {entry.name: entry for entry in metadata.entry_points(group=GROUP)}


def provider(entry: metadata.EntryPoint) -> str:
    """The distribution that registers `entry` (`zsa-eval 0.1.0`), as far as the metadata says."""
    dist = getattr(entry, "dist", None)
    return f"{dist.name} {dist.version}" if dist is not None else "an installed package"


def families_line() -> str:
    """`model families: clap (zsa-eval 0.1.0), ...`: each registered family and the package that registers it."""
    found = family_entry_points()
    if not found:
        return "model families: none registered (install zsa-eval as a package: pip install -e .)"
    return "model families: " + ", ".join(f"{name} ({provider(entry)})" for name, entry in sorted(found.items()))
