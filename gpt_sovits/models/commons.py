"""Pure tensor helpers shared by the S2 (SoVITS) modules.

Plain functions only, in the spirit of VITS' ``commons.py``: masks, padding arithmetic, gated
activations and random segment slicing. Nothing here owns parameters.
"""

from __future__ import annotations

import torch


def get_padding(kernel_size: int, dilation: int = 1) -> int:
    """'Same' padding of a stride-1 convolution with this kernel size and dilation."""
    return (kernel_size * dilation - dilation) // 2


def sequence_mask(lengths: torch.Tensor, max_length: int | None = None) -> torch.Tensor:
    """Boolean mask (B, T): True where the position is inside the sequence."""
    if max_length is None:
        max_length = int(lengths.max())
    positions = torch.arange(max_length, dtype=lengths.dtype, device=lengths.device)
    return positions.unsqueeze(0) < lengths.unsqueeze(1)


def fused_add_tanh_sigmoid_multiply(a: torch.Tensor, b: torch.Tensor, n_channels: int) -> torch.Tensor:
    """WaveNet gate: tanh(first half of a+b) * sigmoid(second half). (B, 2C, T) -> (B, C, T)."""
    x = a + b
    return torch.tanh(x[:, :n_channels]) * torch.sigmoid(x[:, n_channels:])


def slice_segments(x: torch.Tensor, starts: torch.Tensor, segment_size: int) -> torch.Tensor:
    """Take one window of `segment_size` frames per batch item: (B, C, T) -> (B, C, segment_size)."""
    out = torch.zeros_like(x[:, :, :segment_size])
    for i in range(x.size(0)):
        start = int(starts[i])
        out[i] = x[i, :, start : start + segment_size]
    return out


def rand_slice_segments(
    x: torch.Tensor,
    lengths: torch.Tensor | None = None,
    segment_size: int = 4,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Random training windows inside each item's valid length; returns (segments, start frames)."""
    b, _, t = x.size()
    if lengths is None:
        lengths = torch.full((b,), t, dtype=torch.long, device=x.device)
    max_start = (lengths - segment_size + 1).clamp(min=1)
    rand = torch.rand(b, generator=generator).to(x.device)
    starts = (rand * max_start).to(torch.long)
    return slice_segments(x, starts, segment_size), starts
