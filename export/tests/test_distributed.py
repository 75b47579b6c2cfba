"""Data parallelism (distributed.py): two gloo processes, each on half of every batch, take the
same optimiser steps as one process on the whole batch. (scripts/test also runs the smoke build
under torchrun and holds the zoo to its goldens.)"""

import os
import socket

import numpy as np
import torch
import torch.multiprocessing as mp

from lynx_export import distributed
from lynx_export.train import optimize, step_rng

STEPS, BATCH = 6, 8


def _train() -> dict:
    torch.manual_seed(1 + distributed.world().rank)  # different starts: rank 0's weights must win
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1))
    data = torch.Generator().manual_seed(0)
    x, y = torch.randn(64, 4, generator=data), torch.randn(64, 1, generator=data)

    def loss_fn(step):
        idx = distributed.shard(step_rng(0, step).integers(len(x), size=BATCH))
        return torch.nn.functional.mse_loss(model(x[idx]), y[idx])

    stats = optimize([{"params": list(model.parameters()), "lr": 1e-2}], STEPS, loss_fn, lambda m: None)
    return {"state": {k: v.clone() for k, v in model.state_dict().items()}, "loss": stats["final_loss"]}


def _worker(rank: int, port: int, out):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), WORLD_SIZE="2", RANK=str(rank),
                      LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    out[rank] = _train()
    torch.distributed.destroy_process_group()


def test_two_processes_on_half_batches_step_like_one_on_the_whole_batch():
    distributed._WORLD = None
    alone = _train()  # no WORLD_SIZE: a plain single-process run
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out = mp.Manager().dict()
    mp.spawn(_worker, args=(port, out), nprocs=2, join=True)
    for rank in (0, 1):
        for name, value in alone["state"].items():
            np.testing.assert_allclose(out[rank]["state"][name].numpy(), value.numpy(), atol=1e-6, err_msg=name)
    assert abs(out[0]["loss"] - alone["loss"]) < 1e-6 and out[0]["loss"] == out[1]["loss"]
