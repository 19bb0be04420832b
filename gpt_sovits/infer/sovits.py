"""SoVITS weights of every version through one door: v1/v2/v2Pro/v2ProPlus (VITS) and v3/v4 (CFM + vocoder).

The version is told from the file as the reference does (`models.weights.detect_sovits_version`: pretrained
MD5, header, tensors). v3/v4 files load with `models.weights_v3.load_sovits_v3`; a v3/v4 LoRA export
(header ``03``/``04``) loads over the pretrained generator of its version (``s2Gv3.pth`` /
``gsv-v4-pretrained/s2Gv4.pth`` of the model folder) and is merged there. Their vocoder is a separate file
(BigVGAN folder for v3, ``gsv-v4-pretrained/vocoder.pth`` for v4), also found in the model folder.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

V3V4_VERSIONS = ("v3", "v4")
LORA_HEADS = {b"03": "v3", b"04": "v4"}  # process_ckpt's version codes of v3/v4 LoRA exports


def sovits_version(path: str | Path) -> str:
    """v1, v2, v2Pro, v2ProPlus, v3 or v4 of a SoVITS file (cheap: no tensor data); CheckpointError if not one."""
    from gpt_sovits.models.weights import detect_sovits_version

    version = detect_sovits_version(path)
    if version == "v3":  # headerless files say "v3" by their tensors; a v4 one says so in its config
        return _stated_v3v4(Path(path)) or version
    return version


def _stated_v3v4(path: Path) -> str | None:
    """The config's model.version of a plain-zip v3/v4 file (not an official pretrained one), if it says."""
    import pickle
    import zipfile

    from core.errors import UserError
    from gpt_sovits.models.weights import _pretrained_md5_version, _structure, _to_plain

    if _pretrained_md5_version(path) is not None:
        return None
    try:
        with open(path, "rb") as f:
            if f.read(2) != b"PK":
                return None
        content = _to_plain(_structure(path))
    except (UserError, OSError, zipfile.BadZipFile, EOFError, pickle.UnpicklingError, ValueError):
        # unreadable here: the loader says why
        return None
    config = content.get("config") if isinstance(content, dict) else None
    model = config.get("model") if isinstance(config, dict) else None
    stated = model.get("version") if isinstance(model, dict) else None
    return stated if stated in V3V4_VERSIONS else None


def lora_version(path: str | Path) -> str | None:
    """ "v3"/"v4" when the file is a v3/v4 LoRA export (its header), else None."""
    try:
        with open(path, "rb") as f:
            return LORA_HEADS.get(f.read(2))
    except OSError:
        return None


def lora_base(path: str | Path, model_dir: str | Path) -> Path | None:
    """The pretrained generator a v3/v4 LoRA file loads over (under `model_dir`), None for other files."""
    from gpt_sovits.pretrained import V3V4_FILES

    version = lora_version(path)
    return None if version is None else Path(model_dir) / V3V4_FILES[version][0]


def vocoder_path(model_dir: str | Path, version: str) -> Path:
    """Where the vocoder of v3 (BigVGAN folder) or v4 (vocoder.pth) lives under `model_dir`."""
    from gpt_sovits.pretrained import V3V4_FILES

    return Path(model_dir) / V3V4_FILES[version][1]


def vocoder_file(model_dir: str | Path, version: str) -> Path:
    """The vocoder's weight file (v3: the folder's bigvgan_generator.pt): what presence and caching look at."""
    from gpt_sovits.models.model_folders import BIGVGAN_WEIGHTS

    path = vocoder_path(model_dir, version)
    return path / BIGVGAN_WEIGHTS if version == "v3" else path


def load_sovits(
    path: str | Path,
    device: Any = "cpu",
    dtype: Any = None,
    precision: str = "auto",
    *,
    base: str | Path | None = None,
    model_dir: str | Path | None = None,
) -> tuple[Any, Any]:
    """Load any SoVITS weight file strictly, in eval mode: (model, config).

    v1/v2/v2Pro/v2ProPlus -> (SynthesizerTrn, S2Config) as `models.weights.load_sovits`; v3/v4 ->
    (SynthesizerTrnV3, S2V3Config). Both configs carry ``version``. A v3/v4 LoRA export needs its
    pretrained generator: `base`, else the official file under `model_dir` (default: pretrained_models/).
    `dtype` (optional) casts the loaded model's floating-point weights.
    """
    from gpt_sovits.models import weights

    version = sovits_version(path)
    if version not in V3V4_VERSIONS:
        return weights.load_sovits(path, device, dtype=dtype, precision=precision)
    from gpt_sovits.models.weights_v3 import load_sovits_v3

    if base is None and lora_version(path) is not None:
        from gpt_sovits.pretrained import DEFAULT_MODEL_DIR

        base = lora_base(path, model_dir if model_dir is not None else DEFAULT_MODEL_DIR)
    model, cfg = load_sovits_v3(path, base=base, device=device, precision=precision)
    if dtype is not None:
        model = model.to(dtype)
    return model, cfg


def weight_problem(path: str | Path, expected: str) -> str | None:
    """Why a weight file would not load as `expected` ("gpt" or "sovits"), or None; cheap and cached.

    `models.weights.quick_check`, which knows v1-v2ProPlus, with v3/v4 SoVITS files accepted when their
    structure is sound (`weights_v3.quick_check_v3`): the check behind the default weights ("the newest
    file that loads") of the Voice cloning tab and the API."""
    from gpt_sovits.models.weights import CheckpointError, quick_check

    problem = quick_check(path, expected)
    if problem is None or expected != "sovits":
        return problem
    try:
        version = sovits_version(path)
    except CheckpointError:
        return problem
    if version not in V3V4_VERSIONS:
        return problem
    from gpt_sovits.models.weights_v3 import quick_check_v3

    return quick_check_v3(path)
