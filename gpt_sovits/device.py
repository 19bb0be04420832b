"""Device and precision selection for the models: CPU, CUDA or Apple MPS, and which autocast dtype helps.

Follows the spirit of the reference's ``config.py``: a GPU that is too old or too small for half precision
runs in fp32, newer ones use fp16, and Ampere or newer use bf16 (same speed, no overflow).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch

from core.errors import UserError


class DeviceError(UserError, RuntimeError):
    """A requested device is not available on this machine."""


def _mps_available() -> bool:
    mps = getattr(torch.backends, "mps", None)
    return bool(mps is not None and mps.is_available())


def pick_device(preference: str = "auto") -> torch.device:
    """Resolve ``auto``, ``cpu``, ``cuda``, ``cuda:N`` or ``mps`` to an available torch.device.

    ``auto`` prefers CUDA, then MPS, then CPU. Asking for an unavailable device raises DeviceError
    rather than silently falling back, so a person learns why training is slow.
    """
    pref = preference.strip().lower()
    if pref == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if _mps_available():
            return torch.device("mps")
        return torch.device("cpu")
    if pref == "cpu":
        return torch.device("cpu")
    if pref.startswith("cuda"):
        if not torch.cuda.is_available():
            raise DeviceError(
                f"device {preference!r} was requested but CUDA is not available on this machine"
            )
        dev = torch.device(pref)
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise DeviceError(
                f"device {preference!r} was requested but only {torch.cuda.device_count()} GPU(s) exist"
            )
        return dev
    if pref == "mps":
        if not _mps_available():
            raise DeviceError("device 'mps' was requested but Apple MPS is not available on this machine")
        return torch.device("mps")
    raise DeviceError(f"unknown device {preference!r}; use auto, cpu, cuda, cuda:N or mps")


def autocast_dtype(device: torch.device | str) -> torch.dtype | None:
    """The reduced-precision dtype worth using on ``device``, or None for plain fp32.

    CUDA: bf16 from compute capability 8.0 (Ampere); fp16 from 7.0 (Volta/Turing tensor cores); fp32 on
    older cards (the reference also keeps GTX 10xx, capability 6.1, in fp32). CPU and MPS: fp32, because
    fp16 there is slower or numerically fragile for these models.
    """
    device = torch.device(device)
    if device.type != "cuda":
        return None
    major, _minor = torch.cuda.get_device_capability(device)
    if major >= 8:
        return torch.bfloat16
    if major >= 7:
        return torch.float16
    return None


@contextlib.contextmanager
def autocast_for(device: torch.device | str, enabled: bool = True) -> Iterator[None]:
    """Autocast with ``autocast_dtype(device)`` where it helps; a no-op elsewhere or when disabled."""
    device = torch.device(device)
    dtype = autocast_dtype(device) if enabled else None
    if dtype is None:
        yield
        return
    with torch.autocast(device_type=device.type, dtype=dtype):
        yield


def make_grad_scaler(device: torch.device, enabled: bool = True) -> torch.amp.GradScaler:
    """Loss scaling is needed for fp16 autocast only (bf16 and fp32 do not underflow); disabled elsewhere."""
    use = enabled and device.type == "cuda" and autocast_dtype(device) == torch.float16
    return torch.amp.GradScaler("cuda", enabled=use)
