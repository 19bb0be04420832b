"""Find and load demucs models without running code from model files and without the network.

Resolution order for a model name (e.g. `htdemucs`):
1. the local model folder (default `pretrained_models/demucs`): a bag `<name>.yaml`
   (`models: [sig, ...]`, optional `weights`, `segment`) whose members are `<sig>.safetensors`
   (demucs 4.1 Hugging Face format) or legacy `<sig>.th` / `<sig>-<sha256 prefix>.th`;
2. the Hugging Face cache (`local_files_only`: never the network);
3. a download from the Hugging Face hub, only when `download=True`.

Model files are data, never code: a `.safetensors` file must name one of the demucs model classes
in its metadata, and a `.th` file is unpickled with `torch.load(weights_only=True)` allowing only
those classes and `fractions.Fraction`; anything else is refused with `UnsafeModelError`.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.errors import UserError
from core.fsutil import file_problem, load_error_reason
from core.model_route import download_route, hub_url

DEFAULT_MODEL = "htdemucs"
BUILTIN_MODELS = ("htdemucs", "htdemucs_ft", "mdx_extra")
DEFAULT_MODEL_DIR = Path(__file__).resolve().parent.parent / "pretrained_models" / "demucs"
HF_NAMESPACE = "adefossez"
LEGACY_ROOT_URL = "https://dl.fbaipublicfiles.com/demucs/"
# The only classes a model file may ask us to build (as "module.Class" in safetensors metadata).
ALLOWED_CLASSES = ("demucs.demucs.Demucs", "demucs.hdemucs.HDemucs", "demucs.htdemucs.HTDemucs")


class ModelNotFoundError(UserError, RuntimeError):
    """The model is neither in the local folder nor in the Hugging Face cache (and no download)."""


class UnsafeModelError(UserError, RuntimeError):
    """A model file asks to run or build something other than a demucs model: refused."""


class ModelLoadError(UserError, RuntimeError):
    """A model file exists but is unreadable: truncated, corrupt, wrong checksum, bad yaml."""


@dataclass(frozen=True)
class BagSpec:
    """What a bag yaml says: member signatures, optional per-source weights and segment."""

    signatures: list[str]
    weights: list[list[float]] | None = None
    segment: float | None = None

    @classmethod
    def from_yaml(cls, path: Path) -> BagSpec:
        import yaml

        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
            sigs = [str(s) for s in data["models"]]
        except Exception as e:
            raise ModelLoadError(f"{path}: not a demucs bag description ({e})") from e
        if not sigs:
            raise ModelLoadError(f"{path}: the 'models' list is empty")
        return cls(sigs, data.get("weights"), data.get("segment"))


def hf_repo_id(name: str) -> str:
    """`htdemucs` -> `adefossez/HTDemucs`, `htdemucs_ft` -> `adefossez/HTDemucs-ft`.

    The same mapping as `demucs.hf.hf_repo_name`, restated here because importing demucs pulls in
    torch and its models, and the Separation tab asks for this while the UI starts.
    """
    if name == "htdemucs":
        return f"{HF_NAMESPACE}/HTDemucs"
    if name.startswith("htdemucs_"):
        return f"{HF_NAMESPACE}/HTDemucs-{name[len('htdemucs_') :]}"
    return f"{HF_NAMESPACE}/Demucs-{name}"


def _demucs_remote_root() -> Path:
    """demucs' bundled `remote/` folder (bag yamls, files.txt), found without importing demucs."""
    spec = importlib.util.find_spec("demucs")
    if spec is None or not spec.submodule_search_locations:
        raise ModelLoadError("the demucs package is not installed: run `bash scripts/setup_env.sh`")
    return Path(list(spec.submodule_search_locations)[0]) / "remote"


def builtin_bag(name: str) -> BagSpec | None:
    """The bag demucs ships for a known name (from demucs/remote/<name>.yaml), else None."""
    path = _demucs_remote_root() / f"{name}.yaml"
    return BagSpec.from_yaml(path) if path.is_file() else None


def legacy_files(signatures: list[str]) -> dict[str, str]:
    """sig -> legacy file path under the demucs download root (from demucs/remote/files.txt)."""
    root, found = "", {}
    for line in (_demucs_remote_root() / "files.txt").read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("root:"):
            root = line.split(":", 1)[1].strip()
        elif line.split("-", 1)[0] in signatures:
            found[line.split("-", 1)[0]] = root + line
    return found


def list_local_models(model_dir: str | Path) -> list[str]:
    """Names of the bags (`*.yaml`) in the local model folder, sorted."""
    folder = Path(model_dir)
    return sorted(p.stem for p in folder.glob("*.yaml")) if folder.is_dir() else []


def _member_file(folder: Path, sig: str) -> Path | None:
    st = folder / f"{sig}.safetensors"
    if st.is_file():
        return st
    legacy = sorted(folder.glob(f"{sig}.th")) + sorted(folder.glob(f"{sig}-*.th"))
    return legacy[0] if legacy else None


def local_status(name: str, model_dir: str | Path) -> tuple[bool, list[str]]:
    """(found locally, missing file names) for `name` in the local folder."""
    folder = Path(model_dir)
    yaml_path = folder / f"{name}.yaml"
    if not yaml_path.is_file():
        bag = builtin_bag(name)
        missing = [f"{name}.yaml"] + [f"{s}.safetensors" for s in (bag.signatures if bag else [])]
        return False, missing
    try:
        bag = BagSpec.from_yaml(yaml_path)
    except ModelLoadError:
        return False, [f"{name}.yaml (unreadable)"]
    missing = [f"{s}.safetensors" for s in bag.signatures if _member_file(folder, s) is None]
    return not missing, missing


def _hf_cached(name: str, download: bool) -> tuple[BagSpec, list[Path]] | None:
    """The bag yaml and member files from the Hugging Face cache (or hub when `download`)."""
    try:
        from huggingface_hub import hf_hub_download
    except ImportError:
        return None
    repo = hf_repo_id(name)
    try:
        yaml_path = Path(hf_hub_download(repo, f"{name}.yaml", local_files_only=not download))
        bag = BagSpec.from_yaml(yaml_path)
        files = [
            Path(hf_hub_download(repo, f"{s}.safetensors", local_files_only=not download))
            for s in bag.signatures
        ]
    except ModelLoadError:
        raise
    except Exception as e:  # not cached / offline / no such repo: all mean "not here"
        if download:
            raise ModelNotFoundError(f"could not download demucs model {name!r} from {repo}: {e}") from e
        return None
    return bag, files


def missing_model_message(name: str, model_dir: str | Path) -> str:
    """What is missing where, and the routes to get it (the Models tab, the command, by hand)."""
    folder = Path(model_dir)
    bag = builtin_bag(name)
    if bag is None:
        return (
            f"Demucs model {name!r} was not found: put {name}.yaml and the model files it lists "
            f"(<signature>.safetensors or <signature>.th) in {folder}."
        )
    files = [f"{name}.yaml"] + [f"{s}.safetensors" for s in bag.signatures]
    # The registry row is demucs-<name>; the models folder is the one above demucs/.
    route = download_route(f"demucs-{name}", files, folder, hub_url(hf_repo_id(name)), folder.parent)
    return f"Demucs model {name!r} was not found in {folder}. {route}"


def _check_checksum(path: Path) -> None:
    stem = path.stem
    if "-" not in stem:
        return
    expected = stem.rsplit("-", 1)[1]
    sha = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            sha.update(block)
    if not sha.hexdigest().startswith(expected):
        raise ModelLoadError(
            f"{path.name}: checksum mismatch (the file is corrupt or incomplete); fetch it again"
        )


def _build(package: dict[str, Any], path: Path):
    from demucs.states import load_model

    klass = package.get("klass")
    if f"{getattr(klass, '__module__', '')}.{getattr(klass, '__name__', '')}" not in ALLOWED_CLASSES:
        raise UnsafeModelError(f"{path.name}: model class {klass!r} is not a demucs model; refused")
    try:
        return load_model(package)
    except Exception as e:
        raise ModelLoadError(f"{path.name}: the weights do not match the model description ({e})") from e


def load_th(path: str | Path):
    """Load a legacy demucs `.th` package without executing pickled code."""
    import pickle
    from fractions import Fraction

    import torch
    from demucs.demucs import Demucs
    from demucs.hdemucs import HDemucs
    from demucs.htdemucs import HTDemucs

    path = Path(path)
    _check_checksum(path)
    try:
        with torch.serialization.safe_globals([Demucs, HDemucs, HTDemucs, Fraction]):
            package = torch.load(str(path), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        detail = next((ln.strip() for ln in str(e).splitlines() if "GLOBAL" in ln), load_error_reason(e))
        raise UnsafeModelError(
            f"{path.name}: refused to load: the file references code other than a demucs model ({detail})"
        ) from e
    except Exception as e:
        reason = file_problem(path, "demucs model file") or load_error_reason(e)
        raise ModelLoadError(f"{path.name}: not a readable demucs model file ({reason})") from e
    if not isinstance(package, dict) or not {"klass", "args", "kwargs", "state"} <= set(package):
        raise ModelLoadError(f"{path.name}: not a demucs model package (expected klass/args/kwargs/state)")
    return _build(package, path)


def load_safetensors(path: str | Path):
    """Load a demucs 4.1 `.safetensors` model after checking the class its metadata names."""
    from demucs.hf import load_safetensors_model
    from safetensors import safe_open

    path = Path(path)
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
    except Exception as e:
        raise ModelLoadError(f"{path.name}: not a readable safetensors file ({e})") from e
    if meta.get("klass") not in ALLOWED_CLASSES:
        raise UnsafeModelError(
            f"{path.name}: model class {meta.get('klass')!r} is not a demucs model; refused"
        )
    if "_class" in meta.get("structure", ""):
        raise UnsafeModelError(f"{path.name}: quantized (diffq) models are not supported")
    try:
        for key in ("args", "kwargs"):
            json.loads(meta[key])  # a clear error for broken metadata before demucs sees it
        return load_safetensors_model(path)
    except Exception as e:
        raise ModelLoadError(f"{path.name}: could not build the model ({e})") from e


def load_member(path: Path):
    return load_safetensors(path) if path.suffix == ".safetensors" else load_th(path)


def load_model(name: str = DEFAULT_MODEL, model_dir: str | Path | None = None, download: bool = False):
    """A demucs `BagOfModels` for `name`, in eval mode (see the module docstring for the order)."""
    from demucs.apply import BagOfModels

    folder = Path(model_dir) if model_dir else DEFAULT_MODEL_DIR
    if not name or "/" in name or "\\" in name or name.startswith("."):
        raise ModelNotFoundError(f"invalid model name {name!r}")
    yaml_path = folder / f"{name}.yaml"
    if yaml_path.is_file():
        bag = BagSpec.from_yaml(yaml_path)
        files = []
        for sig in bag.signatures:
            f = _member_file(folder, sig)
            if f is None:
                raise ModelNotFoundError(
                    f"{yaml_path.name} lists {sig}, but neither {sig}.safetensors "
                    f"nor {sig}.th is in {folder}. " + missing_model_message(name, folder)
                )
            files.append(f)
    else:
        cached = _hf_cached(name, download=False) or (_hf_cached(name, download=True) if download else None)
        if cached is None:
            raise ModelNotFoundError(missing_model_message(name, folder))
        bag, files = cached
    models = [load_member(f) for f in files]
    try:
        model = BagOfModels(models, bag.weights, bag.segment)
    except AssertionError as e:
        raise ModelLoadError(f"{name}: the bag's models do not agree (sources, rate or weights) {e}") from e
    return model.eval()
