"""A tiny randomly initialised HTDemucs saved as a local demucs model folder, for tests.

`build_tiny_model_dir(folder, name)` writes `<name>.yaml` + `<sig>.safetensors` (demucs 4.1 Hugging
Face format: class and init arguments as json metadata) and, with `legacy=True`, also a
`<name>_th.yaml` bag whose member is a legacy `<sig_th>.th` package (klass/args/kwargs/state).
"""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

SOURCES = ["drums", "bass", "other", "vocals"]
TINY_KWARGS = dict(
    sources=SOURCES,
    channels=4,
    depth=2,
    nfft=512,
    t_layers=1,
    t_heads=1,
    t_hidden_scale=1.0,
    dconv_comp=2,
    segment=Fraction(1, 1),
)


def tiny_model(seed: int = 0):
    import torch
    from demucs.htdemucs import HTDemucs

    torch.manual_seed(seed)
    return HTDemucs(**TINY_KWARGS).eval()


def _encode(value):
    if isinstance(value, Fraction):
        return {"_type": "fraction", "numerator": value.numerator, "denominator": value.denominator}
    if isinstance(value, dict):
        return {k: _encode(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_encode(v) for v in value]
    return value


def save_safetensors(model, path: Path, klass: str = "demucs.htdemucs.HTDemucs") -> Path:
    from safetensors.torch import save_file

    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    meta = {"klass": klass, "args": json.dumps([]), "kwargs": json.dumps(_encode(TINY_KWARGS))}
    save_file(state, str(path), metadata=meta)
    return path


def save_th(model, path: Path) -> Path:
    import torch

    package = {"klass": type(model), "args": [], "kwargs": dict(TINY_KWARGS), "state": model.state_dict()}
    torch.save(package, str(path))
    return path


def build_tiny_model_dir(folder: str | Path, name: str = "tiny", legacy: bool = False, seed: int = 0) -> Path:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    model = tiny_model(seed)
    save_safetensors(model, folder / "0tiny000.safetensors")
    (folder / f"{name}.yaml").write_text("models: ['0tiny000']\n", encoding="utf-8")
    if legacy:
        save_th(model, folder / "0tinyth0.th")
        (folder / f"{name}_th.yaml").write_text("models: ['0tinyth0']\n", encoding="utf-8")
    return folder
