"""Device selection and autocast dtype choice (CUDA and MPS are simulated where absent)."""

from __future__ import annotations

import pytest
import torch

from gpt_sovits import device as devmod
from gpt_sovits.device import DeviceError, autocast_dtype, autocast_for, pick_device


def test_cpu_and_auto_without_accelerators(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(devmod, "_mps_available", lambda: False)
    assert pick_device("cpu") == torch.device("cpu")
    assert pick_device("auto") == torch.device("cpu")
    with pytest.raises(DeviceError, match="CUDA is not available"):
        pick_device("cuda:0")
    with pytest.raises(DeviceError, match="MPS is not available"):
        pick_device("mps")
    with pytest.raises(DeviceError, match="unknown device"):
        pick_device("tpu")


def test_auto_prefers_cuda_then_mps(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(devmod, "_mps_available", lambda: True)
    assert pick_device("auto") == torch.device("mps")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    assert pick_device("auto") == torch.device("cuda")
    assert pick_device("CUDA:0") == torch.device("cuda:0")
    with pytest.raises(DeviceError, match="only 1 GPU"):
        pick_device("cuda:3")


@pytest.mark.parametrize(
    ("capability", "dtype"), [((9, 0), torch.bfloat16), ((7, 5), torch.float16), ((6, 1), None)]
)
def test_autocast_dtype_by_capability(monkeypatch: pytest.MonkeyPatch, capability, dtype) -> None:
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability)
    assert autocast_dtype("cuda:0") is dtype
    assert autocast_dtype("cpu") is None
    assert autocast_dtype("mps") is None


def test_autocast_for_cpu_keeps_fp32() -> None:
    a = torch.randn(4, 4)
    with autocast_for("cpu"):
        assert (a @ a).dtype == torch.float32
