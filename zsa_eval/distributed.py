"""Data-parallel evaluation on the engines teams already use: `torchrun` or `accelerate launch` start one process
per device and set RANK / WORLD_SIZE / LOCAL_RANK; each process scores every WORLD_SIZE-th remaining item (no
padding: nothing duplicated, nothing dropped), logs its own progress part, and rank 0 writes the results."""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import torch.distributed as dist

from zsa_eval.errors import UserError


@dataclass(frozen=True)
class Ranks:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def progress_part(self) -> str:
        """Each rank appends to its own progress file: no two processes ever write one file."""
        return f"-rank{self.rank}" if self.distributed else ""


def ranks_from_env() -> Ranks:
    return Ranks(int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)),
                 int(os.environ.get("LOCAL_RANK", 0)))


@contextmanager
def process_group(ranks: Ranks, device_type: str) -> Iterator[None]:
    """Join the launcher's process group (NCCL on CUDA, gloo on CPU) for the length of a run."""
    if not ranks.distributed:
        yield
        return
    dist.init_process_group("nccl" if device_type == "cuda" else "gloo")
    try:
        yield
    finally:
        dist.destroy_process_group()


def shard(positions: Sequence[int], ranks: Ranks) -> list[int]:
    """This rank's share: every world_size-th position, starting at its rank."""
    return list(positions[ranks.rank::ranks.world_size])


def agree(ranks: Ranks, failure: str | None) -> None:
    """Meet the other ranks; if any of them failed the step before, raise its message on every rank, so that
    no process waits forever for one that has stopped."""
    failures = [failure]
    if ranks.distributed:
        failures = [None] * ranks.world_size
        dist.all_gather_object(failures, failure)
    first = next((message for message in failures if message), None)
    if first:
        raise UserError(first)


def main_rank_value(ranks: Ranks, value: str) -> str:
    """Rank 0's `value` on every rank (e.g. the output_dir, whose timestamp each process reads from its own clock)."""
    if not ranks.distributed:
        return value
    values = [value]
    dist.broadcast_object_list(values, src=0)
    return values[0]
