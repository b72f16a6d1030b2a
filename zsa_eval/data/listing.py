"""Every file below a local dataset folder, accounted for: an audio file to evaluate, or ignored with a reason.

Audio is recognised by extension (anything FFmpeg decodes is welcome; `dataset.extensions` narrows or widens the
set). Hidden files and folders, non-audio files, symlink loops and symlinks that leave the folder (unless
`dataset.follow_symlinks`) are ignored and listed, never dropped silently. No split is inferred from file names;
top-level folders that all look like splits (train/, test/, ...) above class folders are recognised, so that they
are not read as classes (`dataset.split_folder` picks the one to evaluate).
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

AUDIO_EXTENSIONS = frozenset({
    ".wav", ".wave", ".flac", ".ogg", ".oga", ".opus", ".spx", ".mp3", ".mp2", ".m4a", ".m4b", ".aac", ".mp4",
    ".3gp", ".webm", ".weba", ".mka", ".mkv", ".mov", ".avi", ".wma", ".asf", ".aif", ".aiff", ".aifc", ".caf",
    ".au", ".snd", ".amr", ".ac3", ".eac3", ".dts", ".w64", ".rf64", ".wv", ".ape", ".tta", ".voc", ".ircam",
})
IGNORED_COLUMNS = ["path", "reason"]
SPLIT_NAMES = frozenset({"train", "test", "validation", "valid", "val", "dev", "eval", "evaluation"})  # any case


@dataclass
class FolderListing:
    """The audio files found (paths below `root`, links kept as links) and the ignored files with their reasons."""

    root: Path
    audio: list[Path] = field(default_factory=list)
    ignored: list[tuple[str, str]] = field(default_factory=list)

    def relative(self, path: Path) -> str:
        return path.relative_to(self.root).as_posix()

    def ignore(self, path: Path, reason: str) -> None:
        self.ignored.append((self.relative(path), reason))

    def ignored_table(self) -> pd.DataFrame:
        return pd.DataFrame(self.ignored, columns=IGNORED_COLUMNS)

    def ignored_summary(self) -> str:
        """E.g. "ignored 4 files: .txt (3), hidden (1)", for error messages."""
        if not self.ignored:
            return "no other files"
        kinds = Counter(Path(path).suffix.lower() or "no extension" for path, _ in self.ignored)
        return f"ignored {len(self.ignored)} file{'s' if len(self.ignored) > 1 else ''}: " + ", ".join(f"{kind} ({count})" for kind, count in
                                                                   kinds.most_common(8))

    def parts(self, path: Path) -> tuple[str, ...]:
        """A listed path's parts below `root`: ("dog", "2024", "howl.wav")."""
        return Path(self.relative(path)).parts

    def top_folders(self) -> list[str]:
        """The top-level folders that hold audio (at any depth), sorted."""
        return sorted({parts[0] for parts in map(self.parts, self.audio) if len(parts) > 1})

    def split_folders(self) -> list[str]:
        """The top-level folders, when every one is named like a split (SPLIT_NAMES) and holds its audio in
        sub-folders (split/<class>/...); otherwise none."""
        tops = self.top_folders()
        nested = {parts[0] for parts in map(self.parts, self.audio) if len(parts) > 2}
        return tops if tops and all(top.casefold() in SPLIT_NAMES and top in nested for top in tops) else []


def audio_extensions(extensions: Iterable[str] | str | None) -> frozenset[str]:
    """The extensions that count as audio: the user's list (`wav` or `.wav`, any case; one may be given alone) or
    the default set."""
    if extensions is None:
        return AUDIO_EXTENSIONS
    if isinstance(extensions, str):
        extensions = [extensions]
    return frozenset(f".{extension.lower().lstrip('.')}" for extension in extensions)


def list_folder(root: Path, follow_symlinks: bool = False, extensions: Iterable[str] | None = None) -> FolderListing:
    """Walk `root` and sort every file into audio or ignored (both in path order, so listings are reproducible)."""
    listing = FolderListing(root)
    audio_suffixes = audio_extensions(extensions)
    real_root = os.path.realpath(root)
    visited = {real_root}
    folders: list[tuple[Path, str | None]] = [(root, None)]
    while folders:
        folder, hidden_in = folders.pop()
        try:
            entries = list(os.scandir(folder))
        except OSError as error:
            listing.ignore(folder, f"unreadable folder ({error.strerror or error})")
            continue
        for entry in entries:
            path = Path(entry.path)
            hidden = hidden_in or (listing.relative(path) if entry.name.startswith(".") else None)
            target = os.path.realpath(path) if entry.is_symlink() else None
            if target is not None and not within(target, real_root) and not follow_symlinks:
                listing.ignore(path, f"symlink to {target}, outside dataset.path (dataset.follow_symlinks=true "
                                     "follows it)")
            elif entry.is_dir():
                real = target or os.path.realpath(path)
                if target is not None and within(target, real_root):
                    listing.ignore(path, f"symlink to folder {target}, whose files are listed where they are")
                elif real in visited:
                    listing.ignore(path, f"symlink loop: {target} is already being listed")
                else:
                    visited.add(real)
                    folders.append((path, hidden))
            elif entry.is_file() or (target is not None and not os.path.exists(target)):
                sort_file(listing, path, hidden, audio_suffixes)
            else:
                listing.ignore(path, "not a regular file")
    listing.audio.sort(key=listing.relative)
    listing.ignored.sort()
    return listing


def sort_file(listing: FolderListing, path: Path, hidden_in: str | None, audio_suffixes: frozenset[str]) -> None:
    if hidden_in == listing.relative(path):
        listing.ignore(path, "hidden file")
    elif hidden_in:
        listing.ignore(path, f"inside hidden folder {hidden_in}")
    elif path.suffix.lower() in audio_suffixes:
        listing.audio.append(path)
    else:
        listing.ignore(path, f"not audio ({path.suffix.lower() or 'no extension'}; audio extensions are set by "
                             "dataset.extensions)")


def within(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


def unlisted_files(listing: FolderListing, listed_paths: Sequence[str], metadata: Path) -> pd.DataFrame:
    """The folder's ignored files, plus audio files the metadata does not list; the metadata file is not audio."""
    listed = {os.path.normpath(file) for file in listed_paths}
    unlisted = [(listing.relative(file), f"audio not listed in {listing.relative(metadata)}")
                for file in listing.audio if os.path.normpath(file) not in listed]
    notes = [(file, "dataset metadata" if file == listing.relative(metadata) else reason)
             for file, reason in listing.ignored]
    return pd.DataFrame(sorted(notes + unlisted), columns=IGNORED_COLUMNS)
