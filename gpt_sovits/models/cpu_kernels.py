"""S1's decode-step kernels for the CPU, from ``kernels/*.c``, compiled on first use.

A decode step at one to a few rows streams S1's 77.6 M weights and each layer's cached keys and values,
and runs some 30 small operators per layer. Two kernels replace torch's where it falls short on the 2-core
AVX-512 development CPU (bench/README.md, issue 18, "Seventh pass"):
- ``int8_linear.c``: the int8 weight-only Linear (bias, bf16 rounding and ReLU fused). torch's
  ``_weight_int8pack_mm`` reads the weights at about 10 GB/s there, this loop at 40-50 GB/s; no library we
  could find ships a faster weight-only int8 GEMV for torch on the CPU (fbgemm's dynamic linear, oneDNN's
  W8A8 and ``torch._int_mm`` were as slow or slower, fourth pass).
- ``attention.c``: one query per row over its bf16 cache, where torch's flash kernel spends most of its
  time in set-up and waiting on the cache.

The library is built with the machine's C compiler (``$CC``, else ``cc``/``gcc``) for this CPU
(``-march=native``) into ``<repo>/pretrained_models/.cache/kernels``, keyed by the sources, the compiler and
the CPU, in about a second. It loads through ctypes, after torch, so its OpenMP loops run on torch's own
libgomp and thread pool. Before first use both kernels must agree with fp32 arithmetic on a small case;
without AVX-512, a compiler, a writable cache folder or that agreement, ``load`` returns None and the fast
path keeps torch's kernels.
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
from collections.abc import Callable
from pathlib import Path

import torch

log = logging.getLogger(__name__)

SOURCES = tuple(Path(__file__).with_name("kernels") / name for name in ("int8_linear.c", "attention.c"))
BUILD_DIR = Path(__file__).resolve().parents[2] / "pretrained_models" / ".cache" / "kernels"
# Output channels per cache-line group of the packed layout (int8_linear.c), and the granularity it takes.
GROUP = 64
CHANNEL_MULTIPLE = 16


# What follows the bf16 product p in the kernel (int8_linear.c's Epilogue).
PRODUCT, PLUS_BIAS, PLUS_BIAS_ROUNDED = 0, 1, 2


class CpuKernels:
    """The compiled kernels: ``linear`` (int8 weights packed by ``pack``) and ``attend``."""

    def __init__(self, lib: ctypes.CDLL) -> None:
        self._fn = lib.int8_linear
        self._fn.argtypes = [ctypes.c_void_p, ctypes.c_int] + [ctypes.c_void_p] * 4 + [ctypes.c_int] * 6
        self._fn.restype = ctypes.c_int
        self._attend = lib.attend_one
        self._attend.argtypes = [ctypes.c_void_p, ctypes.c_long, ctypes.c_void_p, ctypes.c_void_p]
        self._attend.argtypes += [ctypes.c_long] * 2 + [ctypes.c_int] * 4 + [ctypes.c_void_p, ctypes.c_int]
        self._attend.restype = ctypes.c_int
        self._max_threads = lib.kernels_max_threads
        self._max_threads.restype = ctypes.c_int

    def __reduce__(self) -> tuple[Callable[[], CpuKernels | None], tuple[()]]:
        # One library per process (ctypes pointers cannot be copied): a copied or unpickled model takes
        # this process's, or torch's kernels where it has none.
        return load, ()

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

    def attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor | None:
        """Softmax attention of one query per row over every cached position, in fp32: q (B, H, 1, D), k and
        v (B, H, L, D), all bf16 -> (B, H * D) fp32. None where the kernel does not take the layout (the
        positions of a head not contiguous rows of D, or a head width it does not take)."""
        b, h, _, d = q.shape
        if not (
            q.dtype == k.dtype == v.dtype == torch.bfloat16
            and k.stride() == v.stride()
            and k.stride(3) == q.stride(3) == 1
            and k.stride(2) == d
            and q.stride(1) == d
        ):
            return None
        out = torch.empty(b, h * d)
        rc = self._attend(
            q.data_ptr(),
            q.stride(0),
            k.data_ptr(),
            v.data_ptr(),
            k.stride(0),
            k.stride(1),
            b,
            h,
            k.size(2),
            d,
            out.data_ptr(),
            torch.get_num_threads(),
        )
        return out if rc == 0 else None


def avx512() -> bool:
    """Whether this is an x86 CPU with AVX-512, which the kernels are written for."""
    return platform.machine() in ("x86_64", "AMD64") and torch.backends.cpu.get_cpu_capability() == "AVX512"


def c_compiler() -> str | None:
    """The C compiler the kernels are built with: ``$CC``, else ``cc`` or ``gcc`` on the PATH."""
    return os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")


@functools.cache
def load() -> CpuKernels | None:
    """The compiled kernel, built on first call; None where this machine cannot build or run it (logged)."""
    if not avx512():
        return None
    compiler = c_compiler()
    if compiler is None:
        log.info("no C compiler found: S1 keeps torch's kernels (slower decode steps)")
        return None
    try:
        kernel = CpuKernels(ctypes.CDLL(str(_build(compiler))))
    except (OSError, subprocess.SubprocessError) as e:
        log.warning("S1's CPU kernels could not be built (%s): torch's are used instead", e)
        return None
    if not _agrees_with_fp32(kernel):
        log.warning(
            "S1's CPU kernels disagreed with fp32 arithmetic on a test case: torch's are used instead"
        )
        return None
    return kernel


def _build(compiler: str) -> Path:
    """Compile SOURCES for this CPU (once per sources, compiler and CPU); returns the library's path."""
    version = subprocess.run([compiler, "--version"], capture_output=True, text=True, timeout=30).stdout
    sources = b"".join(src.read_bytes() for src in SOURCES)
    key = hashlib.sha256(sources + version.encode() + _cpu_flags().encode()).hexdigest()[:16]
    target = BUILD_DIR / f"decode_kernels-{key}.so"
    if target.exists():
        return target
    BUILD_DIR.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=BUILD_DIR, suffix=".so.part")
    os.close(fd)
    try:
        cmd = [
            compiler,
            "-O3",
            "-march=native",
            "-fopenmp",
            "-shared",
            "-fPIC",
            "-o",
            tmp,
            *map(str, SOURCES),
        ]
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
    """The CPU's feature flags (Linux), else its processor name: what ``-march=native`` compiled for."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        lines = []
    return next((line for line in lines if line.startswith("flags")), platform.processor())


def _agrees_with_fp32(kernel: CpuKernels) -> bool:
    """Both kernels against fp32 arithmetic on a small case (a tail group, row blocks; two rows of cache)."""
    g = torch.Generator().manual_seed(0)
    n, k = 2 * GROUP + 48, 96
    q = torch.randint(-127, 128, (n, k), generator=g, dtype=torch.int8)
    scale = (torch.rand(n, generator=g) / 100).to(torch.bfloat16)
    x = torch.randn(6, k, generator=g).to(torch.bfloat16)
    ours = kernel.linear(x, kernel.pack(q), scale.float(), n).float()
    exact = x.float() @ (q.float() * scale.float().unsqueeze(1)).t()
    linear_ok = torch.allclose(ours, exact, rtol=2**-7, atol=1e-3)
    cache = torch.randn(2, 2, 3, 40, 32, generator=g).to(torch.bfloat16)  # (k/v, B, H, capacity, D)
    qa, ka, va = (
        torch.randn(2, 3, 1, 32, generator=g).to(torch.bfloat16),
        cache[0, :, :, :29],
        cache[1, :, :, :29],
    )
    got = kernel.attend(qa, ka, va)
    want = torch.softmax(qa.float() @ ka.float().transpose(-1, -2) / 32**0.5, -1) @ va.float()
    attend_ok = got is not None and torch.allclose(got, want.reshape(2, 96), atol=1e-5)
    return bool(linear_ok and attend_ok)
