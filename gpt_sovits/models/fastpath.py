"""Inference precision of loaded models: exact fp32, or the CPU fast path ("auto").

``load_gpt`` and ``load_sovits`` call ``apply_precision`` last, so every caller that asks for
``precision="auto"`` (the front-door default) gets the same inference-ready model, and trainers and parity
checks ask for ``"fp32"``.

What "auto" does, chosen by measurement on the 2-core AVX-512 (BF16, VNNI) development CPU (bench/README.md,
issue 18, "Second pass"); only on a CPU with native bf16, everything else stays exact:
- S1: the transformer's Linear layers (the packed q/k/v projection included) keep int8 weights with one
  scale per output channel and multiply bf16 activations with them (fp32 accumulation; decode steps through
  the project's kernel, ``cpu_kernels.py``, else torch's ``_weight_int8pack_mm``). A batch-1 step reads
  every weight once, so a quarter of fp32's bytes is most of the win (the 96 Linear layers of a step,
  2 threads: torch's int8 kernel 6.6 ms, the project's 2.7 ms; bench/README.md, "Seventh pass"). Activations are
  not quantised (``quantize_dynamic``'s 7-bit activations flipped up to 12% of the greedy argmaxes on
  full-size random weights); norms, residuals, the output layer and the BERT projection stay fp32. The KV
  cache is bf16 and attention runs over it in bf16 (its softmax statistics in fp32). Prefix passes (many
  rows) dequantise to bf16 and use the bf16 GEMM instead, which is faster there than the row-by-row int8
  kernel. Decode steps run the layers through ``FastDecodeStep``: the same arithmetic in about half the
  operators, with the project's attention kernel (fp32 softmax) for rows that need no mask.
- S2: the HiFi-GAN decoder (``dec``, about 90% of a decode) runs as 2-D channels-last bf16 convolutions with
  the weight norm folded in once (``FastGenerator``), in tiles of one fixed length so that oneDNN creates
  its convolutions once per process rather than for every sentence's length (bench/README.md, issue 18,
  "Fourth pass"); the module tree and state dict stay the exact ones (the fast copy is not a submodule), so
  saving such a model writes the exact weights.

A fast-path S1 is for inference only: its state dict is not the official one any more.
"""

from __future__ import annotations

import abc
import math

import torch
import torch.nn.functional as F
from torch import nn

from gpt_sovits.models import cpu_kernels
from gpt_sovits.models.cpu_kernels import CpuKernels
from gpt_sovits.models.modules import LRELU_SLOPE, ResBlock1, ResBlock2
from gpt_sovits.models.precisions import PRECISIONS as PRECISIONS  # re-exported: the names live there
from gpt_sovits.models.precisions import PrecisionError as PrecisionError
from gpt_sovits.models.precisions import check_precision
from gpt_sovits.models.s1 import (
    KVCache,
    SharedPrefixCache,
    Text2Semantic,
    layer_norm,
    shared_prefix_attention,
)
from gpt_sovits.models.s2 import Generator, SynthesizerTrn, decoder_reach

# Rows at or below which the int8 kernel (one pass over the weights per row) beats dequantise + bf16 GEMM.
INT8_GEMV_ROWS = 32
# Narrower S2 decoders stay exact: the 32-wide tiny fixture decoder kept only 23-26 dB SNR in bf16 (the
# full-size 512-wide one 45.8 dB), each rounding being a larger share of a few channels' signal.
FAST_MIN_DECODER_WIDTH = 256
# Decoder stages at least this wide run in bf16, narrower ones in fp32 (FastGenerator).
FAST_MIN_CHANNELS = 16
# The int8 kernel reads the reduction dimension in blocks of 16; other widths give wrong results.
INT8_K_MULTIPLE = 32
# Latent frames (50 per second of audio) per decoder tile, context included. oneDNN's AMX convolutions spend
# time creating a primitive for every new input length, growing with the length (a 12 s decode: 5-9 s to
# create, 0.6-0.8 s to run); tiles of one fixed length create theirs once per process (about 3 s at 128
# frames), and run at the same cost per frame as one long call (2.5 ms per frame, 2 threads, 64-384 frames).
FAST_DECODER_TILE = 128
# The tile of spans that fit its core (38 frames): a streamed chunk of up to 19 tokens costs half a full tile.
FAST_SHORT_TILE = 64


def apply_precision(model: nn.Module, precision: str, device: torch.device | str) -> nn.Module:
    """The inference-ready form of ``model`` (in eval mode) for ``precision`` on ``device``.

    "fp32" leaves the weights exact. "auto" applies the CPU fast path where it was measured to keep
    fidelity (S1 and the v2-family S2 on a CPU with native bf16) and leaves everything else exact.
    """
    check_precision(precision)
    model.eval()
    if precision == "fp32" or torch.device(device).type != "cpu" or not bf16_supported():
        return model
    if isinstance(model, Text2Semantic):
        return fast_s1(model)
    if isinstance(model, SynthesizerTrn):
        return fast_s2(model)
    return model


def fast_path_active(model: nn.Module) -> bool:
    """Whether ``model`` carries the CPU fast path (int8/bf16 Linear layers in S1, the bf16 S2 decoder)."""
    if isinstance(model, SynthesizerTrn):
        return model.inference_dec is not None
    return any(isinstance(m, LowPrecisionLinear) for m in model.modules())


def bf16_supported() -> bool:
    """Whether this CPU multiplies bf16 natively (AVX-512 BF16 or AMX); elsewhere bf16 is emulated, slower."""
    return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())


# --------------------------------------------------------------------------------------------------- S1


def plus_bias(y: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """A low-precision product y (N, out) plus the fp32 bias (out,), in fp32 (one op: bf16 + fp32 promotes)."""
    return y.float() if bias is None else torch.add(bias, y)


class LowPrecisionLinear(nn.Module, abc.ABC):
    """A fast-path Linear: ``product`` (the bf16 x W^T of a subclass) and what follows it, with an fp32 bias."""

    bias: torch.Tensor | None

    @abc.abstractmethod
    def product(self, x2: torch.Tensor) -> torch.Tensor:
        """x2 (N, in) -> x2 W^T (N, out), without the bias, in bf16 (the weights' dtype)."""

    def affine(self, x2: torch.Tensor, rounded: bool = False, relu: bool = False) -> torch.Tensor:
        """x2 (N, in) -> x2 W^T + b (N, out): fp32, or with ``rounded`` the sum rounded to bf16 once (then
        ReLU if ``relu``), what the decode step writes to its bf16 cache and feeds to the next product."""
        if not rounded:
            return plus_bias(self.product(x2), self.bias)
        y = _plus_bias_(self.product(x2), self.bias)
        return y.relu_() if relu else y

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.affine(x.reshape(-1, x.size(-1)))
        return y.view(*x.shape[:-1], y.size(-1))


class Bf16Linear(LowPrecisionLinear):
    """y = x W^T + b with W stored in bf16 and b in fp32: the input is rounded to bf16, the product
    accumulated in fp32 by oneDNN and rounded to bf16, the bias added in fp32. (..., in) -> (..., out) fp32.
    Used where Int8Linear's kernel cannot take the layer's width."""

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None) -> None:
        super().__init__()
        self.register_buffer("weight", weight.detach().to(torch.bfloat16).contiguous())
        self.register_buffer("bias", None if bias is None else bias.detach().float())

    def product(self, x2: torch.Tensor) -> torch.Tensor:
        # The weights' dtype, not bf16 itself: a later model.float() makes this a plain fp32 Linear.
        return F.linear(x2.to(self.weight.dtype), self.weight)


class Int8Linear(LowPrecisionLinear):
    """y = x (s * Q)^T + b: Q (out, in) int8, s (out,) one bf16 scale per output channel (max |w| / 127 of
    its row), b fp32. x (..., in) is rounded to bf16; y (..., out) comes back in fp32.

    Up to INT8_GEMV_ROWS rows (decode steps) read the int8 weights once and accumulate in fp32: through
    ``kernel`` (cpu_kernels.py, 2.5x torch's kernel at one row) where it was built and takes the width, else
    torch's ``_weight_int8pack_mm`` (the same values up to the order of the sums). The kernel reads its own
    copy of Q, packed by cache lines (as many bytes again). More rows (a prompt pass) multiply with the
    dequantised bf16 weights, the same values.
    """

    def __init__(
        self, weight: torch.Tensor, bias: torch.Tensor | None, kernel: CpuKernels | None = None
    ) -> None:
        super().__init__()
        w = weight.detach().float()
        # The bf16 scale rounded up, so that no weight's |w / s| exceeds 127 after the scale's rounding.
        scale = (w.abs().amax(1).clamp_min(1e-30) / 127 * (1 + 2**-7)).to(torch.bfloat16)
        q = torch.round(w / scale.float().unsqueeze(1)).clamp_(-127, 127).to(torch.int8)
        self.register_buffer("weight", q.contiguous())
        self.register_buffer("scale", scale)
        self.register_buffer("bias", None if bias is None else bias.detach().float())
        self.kernel = kernel if kernel is not None and kernel.fits(q) else None
        # The kernel's operands; not in the state dict (they derive from weight and scale).
        packed, scale32 = (kernel.pack(q), scale.float()) if self.kernel is not None else (None, None)
        self.register_buffer("packed", packed, persistent=False)
        self.register_buffer("scale32", scale32, persistent=False)

    @staticmethod
    def fits(weight: torch.Tensor) -> bool:
        """Whether the int8 kernel takes a weight of this shape (in_features a multiple of 32)."""
        return weight.size(1) % INT8_K_MULTIPLE == 0

    def product(self, x2: torch.Tensor) -> torch.Tensor:
        """x2 (N, in), rounded to bf16 -> x2 (s * Q)^T (N, out) in bf16, without the bias."""
        if self._through_kernel(x2):
            return self.kernel.linear(x2, self.packed, self.scale32, self.weight.size(0))
        x2 = x2.to(self.scale.dtype)
        if x2.size(0) <= INT8_GEMV_ROWS:
            return torch.ops.aten._weight_int8pack_mm(x2, self.weight, self.scale)
        return F.linear(x2, self.weight.to(self.scale.dtype) * self.scale.unsqueeze(1))

    def affine(self, x2: torch.Tensor, rounded: bool = False, relu: bool = False) -> torch.Tensor:
        """LowPrecisionLinear.affine: the product, bias and ReLU in one kernel call where the kernel takes x2."""
        if not self._through_kernel(x2):
            return super().affine(x2, rounded, relu)
        mode = cpu_kernels.PLUS_BIAS_ROUNDED if rounded else cpu_kernels.PLUS_BIAS
        return self.kernel.linear(x2, self.packed, self.scale32, self.weight.size(0), self.bias, mode, relu)

    def _through_kernel(self, x2: torch.Tensor) -> bool:
        return (
            self.kernel is not None
            and x2.size(0) <= INT8_GEMV_ROWS
            and x2.device.type == "cpu"
            and x2.dtype in (torch.float32, torch.bfloat16)
        )


def _fast_linear(
    weight: torch.Tensor, bias: torch.Tensor | None, kernel: CpuKernels | None
) -> LowPrecisionLinear:
    return Int8Linear(weight, bias, kernel) if Int8Linear.fits(weight) else Bf16Linear(weight, bias)


class FastDecodeStep:
    """S1's transformer layers for one new position per row, on fast-path layers: ``forward_cached``'s
    arithmetic in about half its operators.

    Besides its four GEMMs and its attention, a full-size batch-1 step spent 2-3 ms of its 13-15 ms in
    some 40 small operators per layer (casts, reshapes, cache slicing; bench/README.md, issue 18, "Sixth
    pass"). Here each layer works on (B, C) rows: the packed q/k/v goes to bf16 once, keys and values reach
    the cache in one copy, and the projections take and give 2-D rows with no reshapes between them.

    Without ``kernels`` the values are ``forward_cached``'s bit for bit. With them, rows that attend to every
    cached position (no mask, no shared prefix) use ``CpuKernels.attend``: the same softmax with its
    weights and sum kept in fp32 where torch's flash kernel rounds to bf16 (the output differs by bf16
    roundings; the projections are the same either way).
    """

    def __init__(self, layers: nn.ModuleList, kernels: CpuKernels | None = None) -> None:
        self.layers = layers
        self.kernels = kernels

    def __call__(
        self, x: torch.Tensor, cache: KVCache | SharedPrefixCache, mask: torch.Tensor | None
    ) -> torch.Tensor:
        """x (B, C) fp32, fed at the cache's next position; mask (B, 1, 1, filled + 1) bool or None -> (B, C).
        With a SharedPrefixCache (no mask), the prefix is read once for all rows."""
        b, c = x.shape
        shared = cache if isinstance(cache, SharedPrefixCache) else None
        own = cache if shared is None else shared.suffix
        for i, layer in enumerate(self.layers):
            attn = layer.self_attn
            heads = attn.heads
            # In place, the sum is rounded to bf16 once, as the cache write and the bf16 query would round it.
            qkv = attn.in_proj.affine(x, rounded=True).to(own.kv.dtype)
            qkv = qkv.view(b, 3, heads, 1, c // heads)  # q, k, v: qkv[:, j] (B, H, 1, D)
            k_all, v_all = own.append_packed(i, qkv[:, 1:].transpose(0, 1))
            if shared is not None:
                o = shared_prefix_attention(qkv[:, 0], shared.prefix_kv(i), (k_all, v_all))
            else:
                o = None
                if mask is None and self.kernels is not None:
                    o = self.kernels.attend(qkv[:, 0], k_all, v_all)  # (B, C) fp32, or None: not its layout
                if o is None:
                    o = F.scaled_dot_product_attention(
                        qkv[:, 0], k_all, v_all, attn_mask=mask
                    )  # (B, H, 1, D)
            x = layer_norm(attn.out_proj.affine(o.reshape(b, c)).add_(x), layer.norm1)
            # bf16 before the ReLU instead of after: rounding keeps signs, so the same values reach linear2.
            h = layer.linear1.affine(x, rounded=True, relu=True)
            x = layer_norm(layer.linear2.affine(h).add_(x), layer.norm2)
        return x


def _plus_bias_(y: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """y (N, out) += the fp32 bias, in place: added in fp32, rounded to y's dtype once."""
    return y if bias is None else y.add_(bias)


def fast_s1(model: Text2Semantic) -> Text2Semantic:
    """Swap the transformer's Linear layers of ``model`` (in place) for Int8Linear (Bf16Linear where the
    int8 kernel cannot take the width).

    Each layer's packed projection (``in_proj_weight`` (3C, C) and bias) moves to ``self_attn.in_proj``
    (its fp32 copy is dropped); ``out_proj``, ``linear1`` and ``linear2`` are replaced. Calling it again on
    a fast model changes nothing.
    """
    if fast_path_active(model):
        return model
    kernel = cpu_kernels.load()
    for layer in model.h.layers:
        attn = layer.self_attn
        attn.in_proj = _fast_linear(attn.in_proj_weight, attn.in_proj_bias, kernel)
        attn.in_proj_weight = None
        attn.in_proj_bias = None
        attn.out_proj = _fast_linear(attn.out_proj.weight, attn.out_proj.bias, kernel)
        layer.linear1 = _fast_linear(layer.linear1.weight, layer.linear1.bias, kernel)
        layer.linear2 = _fast_linear(layer.linear2.weight, layer.linear2.bias, kernel)
    # Attention over a bf16 cache: about 2 ms of a 21 ms batch-1 step saved (1 thread, 210-token prompt).
    model.kv_dtype = torch.bfloat16
    model.fast_step = FastDecodeStep(model.h.layers, kernel)
    return model


# --------------------------------------------------------------------------------------------------- S2


def _conv_weight(conv: nn.Module) -> torch.Tensor:
    """A Conv1d's / ConvTranspose1d's weight with any weight norm applied: (out, in, k) or (in, out, k)."""
    eff = getattr(conv, "effective_weight", None)
    return (eff() if eff is not None else conv.weight).detach()


class _Conv:
    """One 1-D convolution run as a 2-D channels-last bf16 one over (B, C, 1, T) activations."""

    def __init__(self, conv: nn.Module, transpose: bool = False, dtype: torch.dtype = torch.bfloat16) -> None:
        w = _conv_weight(conv).unsqueeze(2)  # (out, in, 1, k), transposed: (in, out, 1, k)
        self.weight = w.to(dtype).contiguous(memory_format=torch.channels_last)
        self.bias = None if conv.bias is None else conv.bias.detach().to(dtype)
        self.dtype = dtype
        self.stride = (1, conv.stride[0])
        self.padding = (0, conv.padding[0])
        self.dilation = (1, conv.dilation[0])
        self.transpose = transpose

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        x = x.to(self.dtype)
        if self.transpose:
            return F.conv_transpose2d(
                x, self.weight, self.bias, self.stride, self.padding, dilation=self.dilation
            )
        return F.conv2d(x, self.weight, self.bias, self.stride, self.padding, self.dilation)


def _outside_zeroed(x: torch.Tensor, valid: slice) -> torch.Tensor:
    """x (..., T) with the positions outside ``valid`` set to zero (in place)."""
    x[..., : valid.start].zero_()
    x[..., valid.stop :].zero_()
    return x


class FastGenerator:
    """The S2 HiFi-GAN decoder (``Generator``) for CPU inference: every convolution a channels-last bf16
    conv2d over (B, C, 1, T) activations (oneDNN's fast bf16 path; the NCW conv1d layout is several times
    slower here), weight norm folded in once. Activations stay bf16 between the convolutions; the output
    is fp32 (B, 1, T * prod(upsample_rates)). The latent is decoded in tiles of one fixed length
    (FAST_DECODER_TILE), so that oneDNN creates its convolutions once, not for every sentence's length.

    A plain object holding tensors, not a module: the exact ``dec`` stays the model's submodule (and its
    state dict the official one). Built from a model's weights at load; it does not follow later changes.
    """

    def __init__(
        self, gen: Generator, tile: int | None = FAST_DECODER_TILE, short_tile: int | None = FAST_SHORT_TILE
    ) -> None:
        self.device = gen.conv_pre.weight.device
        self.num_kernels = gen.num_kernels
        self.rates = [u.stride[0] for u in gen.ups]
        # Tiles of `tile` frames: `context` frames each side (at least the decoder's reach) are computed
        # and dropped, the `core` between them kept. None: the whole latent in one call of its own length.
        self.tile = tile
        self.context = decoder_reach(gen)
        self.core = (tile or 0) - 2 * self.context
        if tile is not None and self.core < 1:
            raise ValueError(
                f"a decoder tile of {tile} frames leaves no core around {self.context} frames of context"
            )
        # Spans short enough for a smaller tile's core take it (one more set of primitives, created once).
        fits = tile is not None and short_tile is not None and 2 * self.context < short_tile < tile
        self.short_tile = short_tile if fits else None
        self.conv_pre = _Conv(gen.conv_pre)
        self.cond = _Conv(gen.cond) if hasattr(gen, "cond") else None
        # Stages narrower than FAST_MIN_CHANNELS run in fp32 (still channels-last): with a handful of
        # channels each bf16 rounding is a large share of the signal (a 32-channel tiny decoder fell to 23 dB).
        dtypes = [torch.bfloat16 if u.out_channels >= FAST_MIN_CHANNELS else torch.float32 for u in gen.ups]
        self.ups = [_Conv(u, transpose=True, dtype=d) for u, d in zip(gen.ups, dtypes, strict=True)]
        self.resblocks: list[list[tuple[_Conv, _Conv | None]]] = []
        for i, block in enumerate(gen.resblocks):
            d = dtypes[i // gen.num_kernels]
            if isinstance(block, ResBlock1):
                pairs = [
                    (_Conv(c1, dtype=d), _Conv(c2, dtype=d))
                    for c1, c2 in zip(block.convs1, block.convs2, strict=True)
                ]
            elif isinstance(block, ResBlock2):
                pairs = [(_Conv(c, dtype=d), None) for c in block.convs]
            else:
                raise TypeError(f"unknown resblock type {type(block).__name__}")
            self.resblocks.append(pairs)
        self.conv_post = _Conv(gen.conv_post, dtype=dtypes[-1])

    @staticmethod
    def _block(pairs: list[tuple[_Conv, _Conv | None]], x: torch.Tensor, valid: slice) -> torch.Tensor:
        for c1, c2 in pairs:
            xt = _outside_zeroed(c1(F.leaky_relu(x, LRELU_SLOPE)), valid)
            if c2 is not None:
                xt = _outside_zeroed(c2(F.leaky_relu(xt, LRELU_SLOPE)), valid)
            x = xt + x
        return x

    def _run_tile(self, x: torch.Tensor, g: torch.Tensor | None, valid: slice) -> torch.Tensor:
        """One tile (1, C, 1, tile) bf16 channels-last, real frames at ``valid`` -> (1, 1, 1, samples) fp32.

        Outside ``valid`` every layer's output is set to zero, which is what the exact decoder's zero
        padding sees beyond the ends of the whole sequence: frames within ``valid`` come out as there.
        """

        def at(rate: int) -> slice:
            return slice(valid.start * rate, valid.stop * rate)

        x = self.conv_pre(x)
        if g is not None and self.cond is not None:
            x = x + self.cond(g)
        x = _outside_zeroed(x, valid)
        rate = 1
        for i, up in enumerate(self.ups):
            rate *= self.rates[i]
            x = _outside_zeroed(up(F.leaky_relu(x, LRELU_SLOPE)), at(rate))  # the stage's dtype from here
            blocks = self.resblocks[i * self.num_kernels : (i + 1) * self.num_kernels]
            xs = self._block(blocks[0], x, at(rate))
            for pairs in blocks[1:]:
                xs = xs + self._block(pairs, x, at(rate))
            x = xs / self.num_kernels
        x = self.conv_post(F.leaky_relu(x))  # default slope 0.01 here, as the exact Generator
        return torch.tanh(x.float())

    @torch.inference_mode()
    def __call__(
        self, x: torch.Tensor, g: torch.Tensor | None = None, start: int = 0, stop: int | None = None
    ) -> torch.Tensor:
        """x (B, C, T) latent, g (B, gin, 1) style -> audio of frames [start, stop) (all by default):
        (B, 1, (stop - start) * prod(upsample_rates)) fp32.

        Decoded tile by tile: each tile holds ``core`` frames plus up to ``context`` frames of x each side
        (zeros beyond x's ends), every tile the same shape.
        """
        b, c, t = x.shape
        stop = t if stop is None else stop
        hop = math.prod(self.rates)
        xb = x.to(torch.bfloat16)
        gb = (
            None
            if g is None
            else g.to(torch.bfloat16).unsqueeze(2).contiguous(memory_format=torch.channels_last)
        )
        if self.tile is None:
            lo, hi = max(0, start - self.context), min(t, stop + self.context)
            whole = xb[..., lo:hi].unsqueeze(2).contiguous(memory_format=torch.channels_last)
            y = self._run_tile(whole, gb, slice(0, hi - lo)).squeeze(2)
            return y[..., (start - lo) * hop : (stop - lo) * hop]
        size = self.tile
        if self.short_tile is not None and stop - start <= self.short_tile - 2 * self.context:
            size = self.short_tile
        core = size - 2 * self.context
        out = torch.empty(b, 1, (stop - start) * hop)
        for row in range(b):
            for first in range(start, stop, core):
                lo, hi = max(0, first - self.context), min(t, first + core + self.context)
                offset = lo - (first - self.context)  # where frame lo sits in the tile
                tile = torch.empty(
                    1, c, 1, size, dtype=torch.bfloat16, memory_format=torch.channels_last
                ).zero_()
                tile[0, :, 0, offset : offset + hi - lo] = xb[row, :, lo:hi]
                y = self._run_tile(
                    tile, None if gb is None else gb[row : row + 1], slice(offset, offset + hi - lo)
                )
                n = min(core, stop - first)
                at = (first - start) * hop
                out[row, 0, at : at + n * hop] = y[0, 0, 0, self.context * hop : (self.context + n) * hop]
        return out


def fast_s2(model: SynthesizerTrn) -> SynthesizerTrn:
    """Give ``model`` (in place) the bf16 channels-last decoder for ``decode``; its modules stay exact.

    Only decoders at least FAST_MIN_DECODER_WIDTH wide (every official v2-family model: 512 or 768) get
    it; narrower ones stay exact.
    """
    if model.inference_dec is None and model.cfg.upsample_initial_channel >= FAST_MIN_DECODER_WIDTH:
        model.inference_dec = FastGenerator(model.dec)
    return model
