"""Data order and batch size: deterministic length-bucketed batches, per-rank shards, a batch size that fits."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Sequence
from pathlib import Path

import torch

from gpt_sovits.train.distributed import DistInfo


def length_bucketed_batches(
    lengths: Sequence[int], batch_size: int, seed: int, epoch: int, bucket_batches: int = 32
) -> list[list[int]]:
    """Deterministic batches of similar lengths for one epoch (a pure function of seed and epoch).

    Items are shuffled, cut into pools of ``bucket_batches * batch_size``, each pool sorted by length
    and split into batches, and the batches shuffled: little padding, different batches each epoch."""
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    g = torch.Generator().manual_seed(int(seed) * 1_000_003 + int(epoch))
    order = torch.randperm(len(lengths), generator=g).tolist()
    pool = max(1, bucket_batches) * batch_size
    batches: list[list[int]] = []
    for start in range(0, len(order), pool):
        chunk = sorted(order[start : start + pool], key=lambda i: lengths[i])
        batches.extend(chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size))
    perm = torch.randperm(len(batches), generator=g).tolist()
    return [batches[i] for i in perm]


def shard_batches(batches: list[list[int]], dist: DistInfo) -> list[list[int]]:
    """This rank's batches: every ``world_size``-th, the list cut so every rank gets the same count
    (a rank with one batch fewer would hang the others in all-reduce)."""
    if dist.world_size <= 1:
        return batches
    usable = len(batches) - len(batches) % dist.world_size
    if usable == 0:  # fewer batches than ranks: repeat, as DistributedSampler pads
        batches = (batches * dist.world_size)[: dist.world_size]
        usable = dist.world_size
    return batches[:usable][dist.rank :: dist.world_size]


# ----------------------------------------------------------------------------------------------- memory / batch size


def available_memory(device: torch.device) -> int:
    """Free bytes for training on ``device``: free CUDA memory, else available RAM (/proc/meminfo)."""
    if device.type == "cuda":
        free, _total = torch.cuda.mem_get_info(device)
        return int(free)
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    with contextlib.suppress(ValueError, OSError, AttributeError):
        return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    return 4 * 1024**3


def default_batch_size(
    device: torch.device,
    *,
    fixed_bytes: int,
    per_item_bytes: int,
    lo: int = 1,
    hi: int = 32,
    usable_fraction: float = 0.7,
    available: int | None = None,
) -> int:
    """A batch size that fits: (usable free memory - model/optimizer bytes) / bytes per item, within [lo, hi].

    ``fixed_bytes``: parameters + gradients + optimizer state (+ activations not scaling with batch);
    ``per_item_bytes``: activation memory of one item at a typical length (the trainer's estimate)."""
    free = available_memory(device) if available is None else available
    budget = free * usable_fraction - fixed_bytes
    n = int(budget // max(1, per_item_bytes))
    return max(lo, min(hi, n))
