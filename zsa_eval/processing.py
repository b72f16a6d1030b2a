"""Processing a run's items, for any task: open (or reopen) its directory, share the unfinished items among the
processes of a data-parallel run, log each batch the task streams (its records, its skips, and the audio embeddings
it keeps) as it finishes, and stop cleanly on Ctrl-C or, with on_error=raise, at the first bad item. What a killed
run logged is kept: the same command with resume=true continues it."""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import torch
from omegaconf import DictConfig

from zsa_eval.distributed import Ranks, agree, main_rank_value, process_group, shard
from zsa_eval.errors import RunInterrupted, UserError
from zsa_eval.families.contract import FamilyFailed
from zsa_eval.interrupts import stop_if_interrupted
from zsa_eval.store import ProgressLog, check_own_files, check_resumable, open_run_dir, run_lock
from zsa_eval.store.embeddings import store_embedding_part, stored_positions
from zsa_eval.tasks import RunContext, Task


def check_and_compact(log: ProgressLog, item_ids: list[str]) -> None:
    """Check what an earlier, interrupted run finished against the dataset as it is now; merge its log parts."""
    records = log.read()
    for index, record in records.items():
        if index >= len(item_ids) or item_ids[index] != record["item_id"]:
            raise UserError(f"the dataset changed since the interrupted run (item {index} was {record['item_id']!r}); "
                            "use overwrite=true to start again")
    log.compact(records)


def open_run(output_dir: Path, identity: dict, cfg: DictConfig, item_ids: list[str], ranks: Ranks,
             held: ExitStack, keeps_embeddings: bool = False) -> set[int]:
    """Rank 0 locks (for as long as `held` lasts: the whole run), creates or reopens the run directory; every rank
    learns which items are already done: logged, and, for a run that keeps its audio embeddings
    (`keeps_embeddings`), with its embedding still stored (a finished run removed them) or skipped."""
    failure = None
    if ranks.is_main:
        try:
            check_resumable(output_dir, cfg.resume, cfg.overwrite)  # before the lock makes the directory ...
            check_own_files(output_dir)  # ... or puts its file in a folder that is refused
            held.enter_context(run_lock(output_dir))
            open_run_dir(output_dir, identity, cfg.resume, cfg.overwrite)
            check_and_compact(ProgressLog(output_dir), item_ids)
        except UserError as error:
            failure = str(error)
    agree(ranks, failure)
    records = ProgressLog(output_dir).read()
    if not keeps_embeddings:
        return set(records)
    stored = stored_positions(output_dir)
    return {index for index, record in records.items() if index in stored or "reason" in record}


@dataclass(frozen=True)
class ProcessedItems:
    """Where a run's outcomes are logged, which items an earlier, interrupted run had finished (`done`), which
    were processed now (`remaining`), and how long that took."""

    output_dir: Path
    done: set[int]
    remaining: list[int]
    seconds: float

    def outcomes(self, finished_key: str) -> tuple[dict[int, dict], int, int]:
        """Every logged outcome by item position; of the items processed now and finished (their record holds
        `finished_key`), how many came from the embedding cache and how many went through the encoder."""
        records = ProgressLog(self.output_dir).read()
        finished = [records[index] for index in self.remaining if finished_key in records.get(index, {})]
        cache_hits = sum(bool(record.get("cached")) for record in finished)
        return records, cache_hits, len(finished) - cache_hits


def process_items(cfg: DictConfig, ranks: Ranks, device: torch.device, identity: dict, item_ids: list[str],
                  output_dir: Path, work: Callable[[ProgressLog, list[int]], None],
                  keeps_embeddings: bool, held: ExitStack) -> ProcessedItems | None:
    """Open (or reopen) the run directory, locked by rank 0 for as long as `held` lasts, then let every process
    `work` on its share of the unfinished items, logging outcomes to its progress log (and storing their audio
    embeddings, when `keeps_embeddings`); a UserError on any process stops them all. Returns None on the processes
    other than rank 0 (which writes the results)."""
    with process_group(ranks, device.type):
        output_dir = Path(main_rank_value(ranks, str(output_dir)))
        done = open_run(output_dir, identity, cfg, item_ids, ranks, held, keeps_embeddings)
        remaining = [index for index in range(len(item_ids)) if index not in done]
        start, failure = time.perf_counter(), None
        try:
            work(ProgressLog(output_dir, ranks.progress_part), shard(remaining, ranks))
        except UserError as error:
            failure = str(error)
        agree(ranks, failure)
        seconds = time.perf_counter() - start
    return ProcessedItems(output_dir, done, remaining, seconds) if ranks.is_main else None


def log_batches(task: Task, context: RunContext, log: ProgressLog, todo: list[int]) -> None:
    """Let the task stream the items at positions `todo`; append each batch's outcomes to the log as it finishes
    (its kept audio embeddings stored before that)."""
    if not todo:
        return
    item_ids = context.dataset.items["item_id"].tolist()
    batches = task.batches(context, todo)
    try:
        for batch in batches:
            positions = [todo[row] for row in batch.rows]
            if batch.kept_embeddings is not None and positions:
                store_embedding_part(log.directory, positions, batch.kept_embeddings)
            cached = set(batch.cached_rows)
            skipped = [(todo[row], reason, detail) for row, reason, detail in batch.skipped]
            log.append([{"index": position, "item_id": item_ids[position], **record,
                         **({"cached": True} if row in cached else {})}
                        for row, (position, record) in enumerate(zip(positions, batch.records))]
                       + [{"index": position, "item_id": item_ids[position], "reason": reason, "detail": detail}
                          for position, reason, detail in skipped])
            raise_on_skip(context.cfg.on_error, skipped, item_ids)
            stop_if_interrupted()
    except KeyboardInterrupt:
        batches.close()  # the DataLoader's workers shut down now, not while the interruption is reported
        raise interruption(log, len(item_ids)) from None
    except FamilyFailed as error:
        batches.close()
        raise FamilyFailed(f"{error}; {kept_so_far(log, len(item_ids))}; once the model is fixed, resume with the "
                           f"same arguments plus output_dir={log.directory} resume=true") from error


def raise_on_skip(on_error: str, skipped: list[tuple[int, str, str]], item_ids: list[str]) -> None:
    """on_error=raise: stop at a batch's first bad item (position, reason, detail), naming it."""
    if skipped and on_error == "raise":
        position, reason, detail = skipped[0]
        raise UserError(f"item {item_ids[position]!r}: {reason}: {detail}; fix or remove it, "
                        "or set on_error=skip to record bad items and go on")


def kept_so_far(log: ProgressLog, n_items: int) -> str:
    """How many items a stopped run finished, and where they are kept."""
    finished = len(log.read())
    return (f"{finished} of {n_items} items finished and are kept in {log.directory}" if finished
            else f"none of the {n_items} items finished (the run is set up in {log.directory})")


def interruption(log: ProgressLog, n_items: int) -> RunInterrupted:
    """Ctrl-C: what was kept and how to go on."""
    finished = len(log.read())
    kept = (f"interrupted after {finished} of {n_items} items; their results are kept in {log.directory}" if finished
            else f"interrupted before any of the {n_items} items finished (the run is set up in {log.directory})")
    return RunInterrupted(kept, str(log.directory))
