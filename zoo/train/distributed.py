"""Process-group setup for `torchrun` and the few collectives the engine needs.

`torchrun` (``python -m torch.distributed.run``) sets RANK, LOCAL_RANK and WORLD_SIZE for every process; when
WORLD_SIZE > 1 the engine joins the default process group (gloo on CPU, NCCL on CUDA). A plain ``python``
process is a world of one and needs no process group.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any

import torch
import torch.distributed as dist

__all__ = [
    "World",
    "all_gather_objects",
    "all_reduce_sum",
    "broadcast_module_state",
    "init_world",
    "shutdown_world",
    "world_from_environment",
]


@dataclasses.dataclass(frozen=True)
class World:
    """This process's place among the training processes."""

    rank: int
    local_rank: int
    size: int

    @property
    def is_main(self) -> bool:
        """True for rank 0, the only process that writes logs and checkpoints and shows progress bars."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.size > 1


def world_from_environment() -> World:
    """The world described by torchrun's environment variables (a world of one without them)."""
    size = int(os.environ.get("WORLD_SIZE", "1"))
    return World(rank=int(os.environ.get("RANK", "0")), local_rank=int(os.environ.get("LOCAL_RANK", "0")), size=size)


def init_world(world: World, device: torch.device) -> None:
    """Join the process group if torchrun started several processes; `device` picks gloo (CPU) or NCCL (CUDA)."""
    if world.distributed and not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        if device.type == "cuda":
            dist.init_process_group(backend, device_id=device)
        else:
            dist.init_process_group(backend)


def shutdown_world(world: World) -> None:
    """Leave the process group joined by `init_world`."""
    if world.distributed and dist.is_initialized():
        dist.destroy_process_group()


def all_reduce_sum(tensor: torch.Tensor, world: World) -> torch.Tensor:
    """Sum of `tensor` over all processes (the tensor itself in a world of one)."""
    if world.distributed:
        tensor = tensor.clone()
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def all_gather_objects(value: Any, world: World) -> list[Any]:
    """`value` from every process, indexed by rank."""
    if not world.distributed:
        return [value]
    gathered: list[Any] = [None] * world.size
    dist.all_gather_object(gathered, value)
    return gathered


def broadcast_module_state(module: torch.nn.Module, world: World) -> None:
    """Copy rank 0's parameters and buffers of `module` into every other process's `module`, in place."""
    if world.distributed:
        for tensor in module.state_dict().values():
            dist.broadcast(tensor, src=0)
