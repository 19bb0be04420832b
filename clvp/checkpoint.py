"""CLVP weight files: ``{"format": "clvp", "format_version": 2, "config": dict, "state_dict": ..., "info": dict}``.

Version 2 adds the CTC reader (``config["reader_dim"]`` > 0, its weights and ``score_mix`` in the state dict);
version 1 files (CLVP only) still load and score by the contrastive score alone.

Plain tensors, dicts, strings and numbers only, so ``torch.load(path, weights_only=True)`` reads them; written
atomically (a crash mid-write leaves the previous file intact). The model is always rebuilt from the stored
config, never from guesses about the file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from clvp.model import ClvpConfig, ClvpConfigError, ClvpModel
from core.errors import UserError
from core.fsutil import atomic_write_with, file_problem, load_error_reason

FORMAT = "clvp"
FORMAT_VERSION = 2


class ClvpCheckpointError(UserError, ValueError):
    """A file that is missing or is not a CLVP weight file we can read."""


def save_clvp(path: str | Path, model: ClvpModel, info: dict[str, Any] | None = None) -> Path:
    """Write ``model`` (fp32 state dict on CPU) with its config and ``info`` (epoch, step, metrics...)."""
    path = Path(path)
    state = {k: v.detach().to("cpu", copy=True).contiguous() for k, v in model.state_dict().items()}
    payload = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "config": model.cfg.to_dict(),
        "state_dict": state,
        "info": dict(info or {}),
    }
    atomic_write_with(path, lambda tmp: torch.save(payload, tmp))
    return path


def read_clvp_file(path: str | Path) -> dict[str, Any]:
    """The raw payload, checked for shape; raises ClvpCheckpointError with the reason."""
    path = Path(path)
    problem = file_problem(path, "CLVP weights file")
    if problem == "not found":
        raise ClvpCheckpointError(f"CLVP checkpoint not found: {path}")
    if problem:
        raise ClvpCheckpointError(f"{path} is not a readable CLVP checkpoint: {problem}")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # unpickling refusals, truncated zips, non-torch files
        raise ClvpCheckpointError(
            f"{path} is not a readable CLVP checkpoint: {load_error_reason(e)}"
        ) from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise ClvpCheckpointError(
            f"{path} is not a CLVP checkpoint (no 'format': 'clvp' marker); "
            "pick a file written by python -m clvp.train"
        )
    if int(payload.get("format_version", 0)) > FORMAT_VERSION:
        raise ClvpCheckpointError(
            f"{path} has CLVP format version {payload.get('format_version')}; this code reads up to {FORMAT_VERSION}"
        )
    if not isinstance(payload.get("config"), dict) or not isinstance(payload.get("state_dict"), dict):
        raise ClvpCheckpointError(f"{path} lacks a config or state_dict")
    return payload


def load_clvp_checkpoint(path: str | Path, device: str | torch.device = "cpu") -> ClvpModel:
    """Rebuild the model from the stored config and load its weights strictly; eval mode on ``device``."""
    payload = read_clvp_file(path)
    try:
        cfg = ClvpConfig.from_stored(payload["config"])
    except (ClvpConfigError, TypeError) as e:
        raise ClvpCheckpointError(f"{path}: bad CLVP config: {e}") from e
    model = ClvpModel(cfg)
    try:
        model.load_state_dict(payload["state_dict"], strict=True)
    except RuntimeError as e:
        raise ClvpCheckpointError(f"{path}: weights do not match the stored config: {e}") from e
    return model.to(device).eval()
