"""torch.distributed for the trainers: join a torchrun process group, wrap in DDP, reduce metrics."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch

from gpt_sovits.device import pick_device


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    local_rank: int = 0
    world_size: int = 1
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def is_main_process() -> bool:
    """Rank 0, or not started by torchrun (read from ``RANK`` before the process group is joined)."""
    return int(os.environ.get("RANK", "0") or 0) == 0


def init_distributed(device_pref: str = "auto") -> DistInfo:
    """Join torch.distributed when started by torchrun (WORLD_SIZE > 1), else a single-process DistInfo.

    Under torchrun each process uses ``cuda:LOCAL_RANK`` (NCCL), or the CPU with gloo."""
    world = int(os.environ.get("WORLD_SIZE", "1") or 1)
    if world <= 1:
        return DistInfo(device=pick_device(device_pref))
    import torch.distributed as tdist

    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    base = pick_device(device_pref)
    if base.type == "cuda":
        device = torch.device("cuda", local)
        torch.cuda.set_device(device)
        backend = "nccl"
    else:
        device = base
        backend = "gloo"
    if not tdist.is_initialized():
        tdist.init_process_group(backend=backend)
    return DistInfo(rank=rank, local_rank=local, world_size=world, device=device)


def wrap_ddp(model: torch.nn.Module, dist: DistInfo, **kwargs: Any) -> torch.nn.Module:
    """DistributedDataParallel around ``model`` when distributed; the model itself otherwise."""
    if not dist.distributed:
        return model
    from torch.nn.parallel import DistributedDataParallel

    ids = [dist.device.index] if dist.device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=ids, **kwargs)


def all_reduce_mean(value: torch.Tensor, dist: DistInfo) -> torch.Tensor:
    """Average a metric tensor over ranks (for logging); identity when not distributed."""
    if not dist.distributed:
        return value
    import torch.distributed as tdist

    value = value.detach().clone()
    tdist.all_reduce(value)
    return value / dist.world_size


def barrier(dist: DistInfo) -> None:
    if dist.distributed:
        import torch.distributed as tdist

        tdist.barrier()


def shutdown_distributed(dist: DistInfo) -> None:
    if dist.distributed:
        import torch.distributed as tdist

        if tdist.is_initialized():
            tdist.destroy_process_group()
