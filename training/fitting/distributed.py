"""Process-group set-up for DistributedDataParallel under ``torchrun``.

torchrun sets RANK, WORLD_SIZE and LOCAL_RANK; without them training runs in one process. The
backend follows the device: NCCL between GPUs, gloo between CPU processes.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TypeVar

import torch
import torch.distributed as dist

from landslide_engine.errors import InputError

T = TypeVar("T")


@dataclass(frozen=True)
class DistributedContext:
    """Where this process runs and which share of the work it does."""

    rank: int
    world_size: int
    local_rank: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        """Rank 0 validates data, evaluates, writes files and shows progress."""
        return self.rank == 0

    @property
    def is_distributed(self) -> bool:
        return self.world_size > 1


def select_device(requested: str, local_rank: int = 0) -> torch.device:
    """``auto`` -> this process's GPU if there is one, else the CPU; ``cpu``/``cuda``/``cuda:N`` as asked."""
    if requested == "auto":
        requested = "cuda" if torch.cuda.is_available() else "cpu"
    if requested.startswith("cuda"):
        if not torch.cuda.is_available():
            raise InputError(f"--device {requested}: no CUDA GPU is available to this torch build")
        return torch.device(requested if ":" in requested else f"cuda:{local_rank}")
    if requested != "cpu":
        raise InputError(f"--device {requested!r}: expected auto, cpu or cuda[:N]")
    return torch.device("cpu")


def setup_distributed(requested_device: str = "auto") -> DistributedContext:
    """Join the torchrun process group when launched by torchrun, else a single-process context."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = select_device(requested_device, local_rank)
    if world_size > 1 and not dist.is_initialized():
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return DistributedContext(rank, world_size, local_rank, device)


def teardown_distributed(context: DistributedContext) -> None:
    """Leave the process group (a no-op in a single process)."""
    if context.is_distributed and dist.is_initialized():
        dist.destroy_process_group()


def broadcast_from_main(context: DistributedContext, value: T) -> T:
    """Rank 0's ``value`` on every rank (any picklable object)."""
    if not context.is_distributed:
        return value
    payload = [value]
    dist.broadcast_object_list(payload, src=0)
    return payload[0]
