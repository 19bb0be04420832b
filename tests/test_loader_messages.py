"""Loaders say which file and why it cannot be used, never torch's advice to re-run with weights_only=False."""

from __future__ import annotations

import pickle

import pytest

from tools import demucs_models


def test_demucs_th_that_is_empty_or_foreign_names_the_reason(tmp_path):
    pytest.importorskip("demucs")
    empty = tmp_path / "empty.th"
    empty.write_bytes(b"")
    with pytest.raises(
        demucs_models.ModelLoadError, match=r"empty\.th: not a readable demucs model file \(empty"
    ):
        demucs_models.load_th(empty)
    foreign = tmp_path / "foreign.th"
    foreign.write_bytes(pickle.dumps({"x": 1}, protocol=4))  # torch's unpickler: "Unsupported operand"
    with pytest.raises((demucs_models.UnsafeModelError, demucs_models.ModelLoadError)) as caught:
        demucs_models.load_th(foreign)
    message = str(caught.value)
    assert "foreign.th" in message
    assert (
        "weights_only" not in message and "trusted source" not in message and "file an issue" not in message
    )
