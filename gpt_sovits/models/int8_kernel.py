"""S1's int8 weight-only product for decode steps, from ``kernels/int8_gemv.c``, compiled on first use.

A decode step at one to a few rows only streams S1's 77.6 M weights; torch's ``_weight_int8pack_mm`` reads
them at about 10 GB/s on the 2-core AVX-512 development CPU, this loop at 40-50 GB/s (bench/README.md, issue
18, "Seventh pass"). No library we could find ships a faster weight-only int8 GEMV for torch on the CPU
(fbgemm's dynamic linear, oneDNN's W8A8 and ``torch._int_mm`` were all as slow or slower, fourth pass), so
the project carries these 130 lines of C.

The library is built with the machine's C compiler (``$CC``, else ``cc``/``gcc``) for this CPU
(``-march=native``) into ``<repo>/pretrained_models/.cache/kernels``, keyed by the source, the compiler and
the CPU, in about a second. It loads through ctypes, after torch, so its OpenMP loop runs on torch's own
libgomp and thread pool. Before first use it must agree with an fp32 product on a small case; without
AVX-512, a compiler, a writable cache folder or that agreement, ``load`` returns None and Int8Linear keeps
torch's kernel (the same values up to the order of the fp32 sums).
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import logging
import os
import platform
import shutil
import subprocess
import tempfile
from pathlib import Path

import torch

log = logging.getLogger(__name__)

SOURCE = Path(__file__).with_name("kernels") / "int8_gemv.c"
BUILD_DIR = Path(__file__).resolve().parents[2] / "pretrained_models" / ".cache" / "kernels"
# Output channels per cache-line group of the packed layout (int8_gemv.c), and the granularity it takes.
GROUP = 64
CHANNEL_MULTIPLE = 16


# What follows the bf16 product p in the kernel (int8_gemv.c's Epilogue).
PRODUCT, PLUS_BIAS, PLUS_BIAS_ROUNDED = 0, 1, 2


class Int8Gemv:
    """The compiled Linear: ``linear(x, packed, scale, n, bias, ...)`` with int8 weights packed by ``pack``."""

    def __init__(self, lib: ctypes.CDLL) -> None:
        self._fn = lib.int8_linear
        self._fn.argtypes = [ctypes.c_void_p, ctypes.c_int] + [ctypes.c_void_p] * 4 + [ctypes.c_int] * 6
        self._fn.restype = ctypes.c_int
        self._max_threads = lib.int8_gemv_max_threads
        self._max_threads.restype = ctypes.c_int

    def max_threads(self) -> int:
        """The thread count of the library's OpenMP runtime: torch's, when the two share one runtime."""
        return int(self._max_threads())

    @staticmethod
    def fits(weight: torch.Tensor) -> bool:
        """Whether the kernel takes a weight (out, in): out a multiple of 16."""
        return weight.size(0) % CHANNEL_MULTIPLE == 0

    @staticmethod
    def pack(q: torch.Tensor) -> torch.Tensor:
        """Q (N, K) int8 -> the kernel's layout, flat: (N64 / 64, K, 64) then (K, N % 64), N64 = N - N % 64."""
        n, k = q.shape
        n64 = n - n % GROUP
        main = q[:n64].reshape(n64 // GROUP, GROUP, k).transpose(1, 2).reshape(-1)
        return torch.cat([main, q[n64:].t().reshape(-1)])

    def linear(
        self,
        x: torch.Tensor,
        packed: torch.Tensor,
        scale: torch.Tensor,
        n: int,
        bias: torch.Tensor | None = None,
        mode: int = PRODUCT,
        relu: bool = False,
    ) -> torch.Tensor:
        """x (M, K) fp32 or bf16 (rounded to bf16), packed (N * K,) int8, scale and bias (N,) fp32 -> (M, N).

        With p = bf16(x (s * Q)^T): PRODUCT gives p (bf16); PLUS_BIAS bias + p (fp32); PLUS_BIAS_ROUNDED
        bf16(bias + p), then ReLU if ``relu`` (bf16). The roundings are torch's (``.to(bfloat16)``, a bf16
        product, ``bias + p`` and ``p.add_(bias)``), so the fused call gives what the operators give.
        """
        if x.dtype not in (torch.float32, torch.bfloat16) or (
            bias is not None and bias.dtype != torch.float32
        ):
            raise TypeError(f"the int8 kernel takes fp32 or bf16 rows and an fp32 bias, got {x.dtype}")
        x = x.contiguous()
        m, k = x.shape
        y = torch.empty(m, n, dtype=torch.float32 if mode == PLUS_BIAS else torch.bfloat16)
        rc = self._fn(
            x.data_ptr(),
            x.dtype == torch.float32,
            packed.data_ptr(),
            scale.data_ptr(),
            None if bias is None else bias.data_ptr(),
            y.data_ptr(),
            mode,
            relu,
            m,
            k,
            n,
            torch.get_num_threads(),
        )
        if rc != 0:
            raise ValueError(
                f"the int8 kernel takes a multiple of {CHANNEL_MULTIPLE} output channels, got {n}"
            )
        return y


@functools.cache
def load() -> Int8Gemv | None:
    """The compiled kernel, built on first call; None where this machine cannot build or run it (logged)."""
    if platform.machine() not in ("x86_64", "AMD64") or torch.backends.cpu.get_cpu_capability() != "AVX512":
        return None
    compiler = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        log.info("no C compiler found: S1 keeps torch's int8 kernel (slower decode steps)")
        return None
    try:
        kernel = Int8Gemv(ctypes.CDLL(str(_build(compiler))))
    except (OSError, subprocess.SubprocessError) as e:
        log.warning("S1's int8 kernel could not be built (%s): torch's kernel is used instead", e)
        return None
    if not _agrees_with_torch(kernel):
        log.warning(
            "S1's int8 kernel disagreed with torch's on a test product: torch's kernel is used instead"
        )
        return None
    return kernel


def _build(compiler: str) -> Path:
    """Compile SOURCE for this CPU (once per source, compiler and CPU); returns the library's path."""
    version = subprocess.run([compiler, "--version"], capture_output=True, text=True, timeout=30).stdout
    key = hashlib.sha256(SOURCE.read_bytes() + version.encode() + _cpu_flags().encode()).hexdigest()[:16]
    target = BUILD_DIR / f"int8_gemv-{key}.so"
    if target.exists():
        return target
    BUILD_DIR.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=BUILD_DIR, suffix=".so.part")
    os.close(fd)
    try:
        cmd = [compiler, "-O3", "-march=native", "-fopenmp", "-shared", "-fPIC", "-o", tmp, str(SOURCE)]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        if done.returncode != 0:
            raise subprocess.SubprocessError(
                done.stderr.strip()[-500:] or f"{compiler} exited {done.returncode}"
            )
        os.replace(tmp, target)  # atomic: a concurrent build replaces it with the same bytes
    finally:
        Path(tmp).unlink(missing_ok=True)
    return target


def _cpu_flags() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return line
    except OSError:
        pass
    return platform.processor()


def _agrees_with_torch(kernel: Int8Gemv) -> bool:
    """The kernel against torch's on a product with a tail group and row blocks (values within bf16 rounding)."""
    g = torch.Generator().manual_seed(0)
    n, k = 2 * GROUP + 48, 96
    q = torch.randint(-127, 128, (n, k), generator=g, dtype=torch.int8)
    scale = (torch.rand(n, generator=g) / 100).to(torch.bfloat16)
    x = torch.randn(6, k, generator=g).to(torch.bfloat16)
    ours = kernel.linear(x, kernel.pack(q), scale.float(), n).float()
    exact = x.float() @ (q.float() * scale.float().unsqueeze(1)).t()
    return bool(torch.allclose(ours, exact, rtol=2**-7, atol=1e-3))
