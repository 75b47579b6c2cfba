"""Training past one machine: data parallelism over the processes `torchrun` starts.

    torchrun --standalone --nproc_per_node 2 -m lynx_export smoke --out DIR     # 2 CPU processes (gloo)
    torchrun --nproc_per_node 8 -m lynx_export build --all                     # 8 GPUs of a node (NCCL)

Every process holds the whole model and draws the same global batch (the batch of a step is a
function of the seed and the step, or of identically seeded samplers); each takes its share
(`shard`), and after each backward pass the gradients are averaged over the processes with one
`all_reduce` per tensor -- what `DistributedDataParallel` does, without its bucketing, and without
wrapping the models (their losses are methods, not `forward`). So every process takes the same
optimiser step and ends with the same weights. Work that is not training -- generating data,
training the tokenizer, computing feature stores, writing caches and checkpoints, probes, export --
runs on rank 0 while the others wait at a barrier, then read its files.

Without torchrun (no WORLD_SIZE in the environment) every function here is a no-op, and a run is
exactly a single-process run.
"""

from __future__ import annotations

import contextlib
import datetime
import os
import typing
from dataclasses import dataclass

import numpy as np
import torch
import torch.distributed as dist


@dataclass(frozen=True)
class World:
    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def parallel(self) -> bool:
        return self.size > 1


_WORLD: World | None = None
_ALONE = False  # inside `alone()`: rank 0 works by itself, so nothing waits for the others


def world() -> World:
    """This process's place among torchrun's processes (joining the process group on first call)."""
    global _WORLD
    if _WORLD is None:
        size = int(os.environ.get("WORLD_SIZE", "1"))
        if size > 1:
            rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
            cuda = torch.cuda.is_available()
            if cuda:
                torch.cuda.set_device(local)
            dist.init_process_group("nccl" if cuda else "gloo", timeout=datetime.timedelta(hours=2))
            _WORLD = World(rank, size, local)
        else:
            _WORLD = World()
    return _WORLD


Batch = typing.TypeVar("Batch", list, np.ndarray)  # a global batch: examples, or indices drawn by numpy


def shard(items: Batch) -> Batch:
    """This process's share of a global batch: items rank, rank + size, ... (all of it alone)."""
    w = world()
    if not w.parallel:
        return items
    if len(items) < w.size:
        raise ValueError(f"a batch of {len(items)} cannot be shared by {w.size} processes")
    return items[w.rank::w.size]


def barrier() -> None:
    if world().parallel and not _ALONE:
        dist.barrier()


@contextlib.contextmanager
def alone():
    """A section rank 0 runs by itself (probes, export): barriers and `main_first` inside it
    wait for no one. The others wait at a `barrier()` after it."""
    global _ALONE
    if not world().is_main:
        raise RuntimeError("alone() is for rank 0")
    _ALONE, before = True, _ALONE
    try:
        yield
    finally:
        _ALONE = before


def average_gradients(params) -> None:
    """Averages the gradients of `params` over the processes (a missing gradient counts as zero,
    so every process reduces the same tensors in the same order)."""
    w = world()
    if not w.parallel:
        return
    for p in params:
        if p.grad is None:
            p.grad = torch.zeros_like(p)
        dist.all_reduce(p.grad, op=dist.ReduceOp.SUM)
        p.grad.div_(w.size)


def broadcast(params) -> None:
    """Rank 0's values of `params` to every process (the start of training, as DDP does)."""
    if world().parallel:
        for p in params:
            dist.broadcast(p.data, src=0)


def mean(value: float) -> float:
    """The mean of a number over the processes (the logged loss of a step)."""
    w = world()
    if not w.parallel:
        return value
    t = torch.tensor([value], dtype=torch.float64)
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return float(t) / w.size


def main_first(make):
    """Runs `make()` on rank 0, then (after a barrier) on the others: rank 0 writes a file the
    others then find (data, tokenizer, feature stores). Returns each process's result."""
    w = world()
    if not w.parallel or _ALONE:
        return make()
    if w.is_main:
        out = make()
        dist.barrier()
        return out
    dist.barrier()
    return make()
