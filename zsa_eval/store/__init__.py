"""The run directory's store, below the tasks and the views: atomic writes, the record of the files a run wrote (what
overwrite may remove), the lock of the one process writing a run, the progress log a run resumes from, and the run's
result files (metrics.json last). The tasks and the processing write through it (its embeddings and skips modules
too); the views (zsa_eval.report) read what it wrote."""

from __future__ import annotations

import fcntl
import io
import json
import os
import re
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd

from zsa_eval.errors import UserError
from zsa_eval.text import counted


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


def json_text(payload: dict) -> str:
    return json.dumps(payload, indent=2, default=str) + "\n"


def write_json(payload: dict, path: Path) -> None:
    atomic_write(path, json_text(payload))


def npy_bytes(array: np.ndarray) -> bytes:
    """An array as a .npy file's bytes (never pickled)."""
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


RUN_FILE = "run.json"
METRICS_FILE = "metrics.json"
PROGRESS_FILE = "progress.jsonl"
PROGRESS_PARTS = "progress*.jsonl"


class ProgressLog:
    """Per-item outcomes (class probabilities, or the reason for a skip) appended as JSON lines after every
    batch and flushed to disk, so a killed run keeps each batch it finished; a torn last line is ignored.

    Each process of a data-parallel run appends to its own part (`progress<part>.jsonl`); reading merges
    every part in the directory."""

    def __init__(self, directory: Path, part: str = ""):
        self.directory = directory
        self.path = directory / f"progress{part}.jsonl"
        self.recorded = False

    def append(self, records: list[dict]) -> None:
        if not records:
            return
        if not self.recorded:
            record_files(self.directory, [self.path.name])
            self.recorded = True
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
            write_run_file(self.directory, PROGRESS_FILE, merged)
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


MANIFEST_FILE = ".zsa-eval-files"  # every file a run wrote in its directory, one relative path per line
LOCK_FILE = ".zsa-eval.lock"  # held (flock) by the process writing the run; holds its process id
# atomic_write's temporary files and ensure_writable's probes, left behind by a kill
TEMPORARY = re.compile(r"^(\..+\.[0-9a-f]{12}\.tmp|\.write-test-[0-9a-f]{8})$")
OWN_FILES = (MANIFEST_FILE, LOCK_FILE)


def record_files(output_dir: Path, names: Sequence[str]) -> None:
    """Add `names` (paths relative to the run directory) to the run's record of the files it wrote: what
    overwrite=true may remove. Appended in one write (processes of one run record side by side)."""
    if names:
        with open(output_dir / MANIFEST_FILE, "a", encoding="utf-8") as file:
            file.write("".join(f"{name}\n" for name in names))


def recorded_files(output_dir: Path) -> set[str]:
    """The files the runs in `output_dir` recorded that they wrote (relative paths)."""
    try:
        return set((output_dir / MANIFEST_FILE).read_text(encoding="utf-8").splitlines())
    except FileNotFoundError:
        return set()


def write_run_file(output_dir: Path, name: str, payload: str | bytes) -> None:
    """Write the run's file `name` (relative to `output_dir`, folders made as needed) atomically, and record it."""
    (output_dir / name).parent.mkdir(parents=True, exist_ok=True)
    record_files(output_dir, [name])
    atomic_write(output_dir / name, payload)


def foreign_files(output_dir: Path) -> list[str]:
    """The files in `output_dir` (at any depth) that no run recorded writing, but zsa-eval's own bookkeeping."""
    recorded = recorded_files(output_dir)
    return sorted(name for path in output_dir.rglob("*") if path.is_file()
                  and (name := path.relative_to(output_dir).as_posix()) not in recorded
                  and name not in OWN_FILES and not TEMPORARY.match(path.name))


def remove_recorded(output_dir: Path, chosen: Callable[[str], bool] = lambda name: True) -> None:
    """Remove the files the run recorded writing (those `chosen` names), then the folders they leave empty."""
    recorded = recorded_files(output_dir)
    removed = [name for name in recorded if chosen(name)]
    for name in removed:
        (output_dir / name).unlink(missing_ok=True)
    for path in sorted(output_dir.rglob("*"), key=lambda path: len(path.parts), reverse=True):
        if path.is_file() and TEMPORARY.match(path.name):
            path.unlink(missing_ok=True)
        elif path.is_dir() and not any(path.iterdir()):
            path.rmdir()
    kept = sorted(recorded - set(removed))
    atomic_write(output_dir / MANIFEST_FILE, "".join(f"{name}\n" for name in kept))


def ensure_writable(output_dir: Path) -> None:
    """Create `output_dir` if needed, and check that files can be written there."""
    try:
        output_dir.mkdir(parents=True, exist_ok=True)
        probe = output_dir / f".write-test-{uuid.uuid4().hex[:8]}"
        probe.touch()
        probe.unlink()
    except OSError as error:
        raise UserError(f"cannot write to output_dir {str(output_dir)!r} ({error.strerror or error}); "
                        "choose a writable output_dir=...") from error


@contextmanager
def run_lock(output_dir: Path) -> Iterator[None]:
    """Hold the run directory for this process while the block runs: a second writer is refused in one line naming
    the holder. The lock is the kernel's (flock), so a killed holder leaves none behind."""
    ensure_writable(output_dir)
    descriptor = os.open(output_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(descriptor, 32).decode(errors="replace").strip() or "unknown"
            raise UserError(f"output_dir {str(output_dir)!r} is being written by another zsa-eval run (process "
                            f"{holder}): wait for it to finish (then resume=true, if it was interrupted), or choose "
                            "another output_dir") from None
        os.ftruncate(descriptor, 0)
        os.write(descriptor, str(os.getpid()).encode())
        yield
    finally:
        os.close(descriptor)  # releases the lock


def check_own_files(output_dir: Path) -> None:
    """Refuse a directory (if there is one) holding files that no zsa-eval run recorded writing."""
    foreign = foreign_files(output_dir) if output_dir.is_dir() else []
    if foreign and not (output_dir / RUN_FILE).is_file() and next(output_dir.rglob(RUN_FILE), None):
        raise UserError(f"output_dir {str(output_dir)!r} holds zsa-eval runs in its folders (a results directory): a "
                        f"run needs a folder of its own, e.g. output_dir={output_dir / 'my_run'}")
    if foreign:
        what = "holds no zsa-eval run" if not (output_dir / RUN_FILE).is_file() else "holds files zsa-eval did not write"
        raise UserError(f"output_dir {str(output_dir)!r} {what} ({counted(len(foreign), 'such file')}, e.g. "
                        f"{foreign[0]!r}): "
                        "choose an empty output_dir (zsa-eval never removes files it did not write)")


def check_outside_runs(output_dir: Path) -> None:
    """A run directory inside another run's would be files that run never wrote (it could no longer be resumed or
    overwritten): refused."""
    for parent in Path(output_dir).expanduser().resolve().parents:
        if (parent / RUN_FILE).is_file():
            raise UserError(f"output_dir {str(output_dir)!r} lies inside the run directory {str(parent)!r}, which holds "
                            "that run's files only: choose an output_dir outside it")


def check_resumable(output_dir: Path, resume: bool, overwrite: bool) -> None:
    """resume=true needs a run in output_dir to continue; resume and overwrite exclude each other; no run directory
    lies inside another (checked before anything is loaded or written)."""
    check_outside_runs(output_dir)
    if resume and overwrite:
        raise UserError("resume=true continues the run in output_dir and overwrite=true replaces it: choose one")
    if resume and not (output_dir / RUN_FILE).is_file():
        raise UserError(f"resume=true, but output_dir {str(output_dir)!r} holds no run to resume: check "
                        "output_dir=..., or drop resume=true to start a new run there")


def open_run_dir(output_dir: Path, identity: dict, resume: bool, overwrite: bool) -> None:
    """Create or reopen `output_dir` for the run `identity` (the settings that determine its results).

    A directory holding files zsa-eval did not write is refused; one holding another run needs `overwrite` (which
    removes exactly the files the earlier run recorded writing); one holding this run needs `resume` to continue or
    `overwrite` to start again. `resume` needs a run to continue; `resume` and `overwrite` exclude each other."""
    check_resumable(output_dir, resume, overwrite)
    ensure_writable(output_dir)
    run_file = output_dir / RUN_FILE
    if any(path.name not in OWN_FILES for path in output_dir.iterdir()):
        check_own_files(output_dir)
        previous = json.loads(run_file.read_text()) if run_file.is_file() else None
        if overwrite:
            remove_recorded(output_dir)
        elif previous is not None and previous != identity:
            differences = ", ".join(changed_keys(previous, identity)) or "unknown"
            raise UserError(f"output_dir {str(output_dir)!r} holds a run of another config (differs in: "
                            f"{differences}); use another output_dir, or overwrite=true to replace it")
        elif not resume:
            raise UserError(f"output_dir {str(output_dir)!r} already holds this run: resume=true to continue it "
                            "(or re-finish it), overwrite=true to start again")
    write_run_file(output_dir, RUN_FILE, json.dumps(identity, indent=2, default=str) + "\n")


def write_results(output_dir: Path, results, config_yaml: str) -> None:
    """Write a run's result files into `output_dir`, all but metrics.json (written last of all, once the report is
    too: a run without it is unfinished): a task's TaskResults (tables as `<name>.csv`, figures as PNG, arrays as .npy
    and tables as parquet under their relative paths) and config.yaml."""
    files = {**{f"{name}.csv": table.to_csv(index=False) for name, table in results.tables.items()},
             **results.figures,
             **{name: npy_bytes(array) for name, array in results.arrays.items()},
             **{name: table.to_parquet(index=False) for name, table in results.parquet.items()},
             "config.yaml": config_yaml}
    for name, payload in files.items():
        write_run_file(output_dir, name, payload)
