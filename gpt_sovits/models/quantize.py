"""Residual vector quantizer of S2 (SoundStream-style RVQ with Euclidean codebooks).

GPT-SoVITS uses one codebook of 1024 x 768 that maps 25 Hz projected HuBERT features to semantic
tokens. The codebook is trained by EMA during pretraining and is frozen for fine-tuning, so this
implementation keeps the buffers (`inited`, `cluster_size`, `embed`, `embed_avg`, same names as the
reference) but never updates them; k-means initialisation is not implemented.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class EuclideanCodebook(nn.Module):
    """Nearest-neighbour lookup in a (bins, dim) codebook."""

    def __init__(self, dim: int, codebook_size: int) -> None:
        super().__init__()
        self.codebook_size = codebook_size
        embed = torch.zeros(codebook_size, dim)
        self.register_buffer("inited", torch.zeros(1))
        self.register_buffer("cluster_size", torch.zeros(codebook_size))
        self.register_buffer("embed", embed)
        self.register_buffer("embed_avg", embed.clone())

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """x: (..., D) -> code indices (...)."""
        shape = x.shape
        flat = x.reshape(-1, shape[-1])  # (N, D)
        embed_t = self.embed.t()  # (D, bins)
        # Same expansion and order of terms as the reference, so that near-ties resolve alike.
        dist = -(flat.pow(2).sum(1, keepdim=True) - 2 * flat @ embed_t + embed_t.pow(2).sum(0, keepdim=True))
        return dist.max(dim=-1).indices.view(*shape[:-1])

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """codes (...) -> vectors (..., D)."""
        return F.embedding(codes, self.embed)


class VectorQuantization(nn.Module):
    """One RVQ stage on channels-first tensors (B, D, T)."""

    def __init__(self, dim: int, codebook_size: int) -> None:
        super().__init__()
        self._codebook = EuclideanCodebook(dim, codebook_size)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self._codebook.encode(x.transpose(1, 2))  # (B, T)

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        return self._codebook.decode(codes).transpose(1, 2)  # (B, D, T)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        codes = self.encode(x)
        quantized = self.decode(codes)
        if self.training:
            # Straight-through estimator and commitment loss (codebook itself stays frozen).
            loss = F.mse_loss(quantized.detach(), x).reshape(1)
            quantized = x + (quantized - x).detach()
        else:
            loss = torch.zeros(1, device=x.device)
        return quantized, codes, loss


class ResidualVectorQuantization(nn.Module):
    def __init__(self, dim: int, codebook_size: int, num_quantizers: int) -> None:
        super().__init__()
        self.layers = nn.ModuleList(VectorQuantization(dim, codebook_size) for _ in range(num_quantizers))


class ResidualVectorQuantizer(nn.Module):
    """RVQ with `n_q` stages; codes are (n_q, B, T) as in the reference."""

    def __init__(self, dimension: int = 768, n_q: int = 1, bins: int = 1024) -> None:
        super().__init__()
        self.n_q = n_q
        self.vq = ResidualVectorQuantization(dimension, bins, n_q)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """x: (B, D, T) -> (quantized (B, D, T), codes (n_q, B, T), mean commitment loss)."""
        residual = x
        total = torch.zeros_like(x)
        codes, losses = [], []
        for layer in self.vq.layers:
            quantized, idx, loss = layer(residual)
            residual = residual - quantized
            total = total + quantized
            codes.append(idx)
            losses.append(loss)
        return total, torch.stack(codes), torch.stack(losses).mean()

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, D, T) -> codes (n_q, B, T)."""
        residual = x
        codes = []
        for layer in self.vq.layers:
            idx = layer.encode(residual)
            residual = residual - layer.decode(idx)
            codes.append(idx)
        return torch.stack(codes)

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """codes: (n_q', B, T) with n_q' <= n_q -> (B, D, T)."""
        if codes.size(0) > self.n_q:
            raise ValueError(f"got {codes.size(0)} code layers but the quantizer has {self.n_q}")
        out = None
        for layer, idx in zip(self.vq.layers, codes, strict=False):
            q = layer.decode(idx)
            out = q if out is None else out + q
        assert out is not None
        return out
