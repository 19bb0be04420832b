"""Read and write GPT-SoVITS weight files (official formats) without unpickling arbitrary objects.

Formats (the README's "Formats" section; the reference's ``process_ckpt.py`` writes them):

- GPT (S1) weights `.ckpt`: ``{"weight": {"model.<name>": fp16}, "config": dict, "info": str}``.
- SoVITS (S2) weights `.pth`: ``{"weight": {<name>: fp16} without enc_q.*, "config": hparams, "info": str}``.
  Official files pickle the config as a `utils.HParams` object; newer ones (v2Pro, v2ProPlus, v3/v4
  LoRA) replace the zip's leading ``PK`` by a two-byte version code (`HEADER_VERSIONS`), which
  `save_sovits_weights` writes too for v2Pro/v2ProPlus so the reference's ``load_sovits_new`` reads them.
- Pretrained generator / discriminator ``s2G*.pth`` / ``s2D*.pth``: ``{"weight": full state dict, ...}``.

Version (`detect_sovits_version`), as the reference's ``get_sovits_version_from_path_fast`` decides it:
the MD5 of the first 8192 bytes for the official pretrained generators, else the version header, else
(plain zip files) the tensors: ``sv_emb`` means v2Pro/v2ProPlus (ProPlus has the wider first upsampling
layer, kernel 20), ``cfm`` v3/v4, else the phone-embedding rows (322 v1, 732 v2); the file size when the
tensors cannot be read.

Security: official files are pickles. They are read with a restricted unpickler that only resolves
tensor-rebuild functions, storages, dtypes, ``collections.OrderedDict`` and the one config class
``utils.HParams`` (mapped to a plain dict). Any other global (``os.system``, ``builtins.eval``, ...)
stops loading with `UnsafeCheckpointError` before anything it names can run. Files written here
contain only tensors, containers and primitives and load with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import functools
import hashlib
import io
import pickle
import types
import zipfile
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from core.errors import UserError
from core.fsutil import atomic_write_with, file_problem, load_error_reason
from gpt_sovits.models.fastpath import apply_precision, fast_path_active
from gpt_sovits.models.s2 import (
    DISCRIMINATOR_PERIODS,
    N_SYMBOLS,
    SV_VERSIONS,
    MultiPeriodDiscriminator,
    S2Config,
    SynthesizerTrn,
)

if TYPE_CHECKING:
    from gpt_sovits.models.s1 import S1Config, Text2Semantic


class CheckpointError(UserError):
    """A weight file cannot be used; the message says what the file is and what was expected."""


class UnsafeCheckpointError(CheckpointError):
    """The file's pickle references code other than tensors and plain containers; nothing was run."""


class WrongModelTypeError(CheckpointError):
    """The file holds another kind of model than the one asked for (e.g. GPT given as SoVITS)."""


class UnsupportedVersionError(CheckpointError):
    """The file is a GPT-SoVITS model version this loader does not build (v3, v4 have their own)."""


# Version codes that replace the zip's "PK" in newer SoVITS files (process_ckpt.head2version).
HEADER_VERSIONS: dict[bytes, str] = {
    b"00": "v1",
    b"01": "v2",
    b"02": "v3",
    b"03": "v3-lora",
    b"04": "v4-lora",
    b"05": "v2Pro",
    b"06": "v2ProPlus",
}
SUPPORTED_S2_VERSIONS = ("v1", "v2", "v2Pro", "v2ProPlus")
_VERSION_HEADER = {v: k for k, v in HEADER_VERSIONS.items() if v in SV_VERSIONS}  # what we write
_UNSUPPORTED_HINT = "only v1, v2, v2Pro and v2ProPlus SoVITS models load here (v3/v4 are separate models)"
# MD5 of the first 8192 bytes of the official pretrained generators (process_ckpt.hash_pretrained_dict).
PRETRAINED_SOVITS_MD5: dict[str, str] = {
    "dc3c97e17592963677a4a1681f30c653": "v1",  # s2G488k.pth
    "6642b37f3dbb1f76882b69937c95a5f3": "v2",  # gsv-v2final-pretrained/s2G2333k.pth
    "43797be674a37c1c83ee81081941ed0f": "v3",  # s2Gv3.pth
    "4f26b9476d0c5033e04162c486074374": "v4",  # gsv-v4-pretrained/s2Gv4.pth
    "c7e9fce2223f3db685cdfa1e6368728a": "v2Pro",  # v2Pro/s2Gv2Pro.pth
    "66b313e39455b57ab1b0bc0b239c9d0a": "v2ProPlus",  # v2Pro/s2Gv2ProPlus.pth
}
# Header codes -> model version as detect_sovits_version names it (LoRA files are their base version).
_HEADER_MODEL_VERSION = {"v3-lora": "v3", "v4-lora": "v4"}
# The reference's size fallback for plain zip files it cannot tell otherwise (bytes).
_V1_MAX_BYTES = 82978 * 1024
_V2_MAX_BYTES = 700 * 1024 * 1024


# --- restricted unpickling -----------------------------------------------------------------------


class HParamsDict(dict):
    """Stand-in for the official `utils.HParams`: rebuilt as a dict from the pickled `__dict__`."""

    def __setstate__(self, state: Any) -> None:
        if isinstance(state, tuple) and len(state) == 2:  # (dict_state, slots_state)
            state = state[0]
        if not isinstance(state, dict):
            raise UnsafeCheckpointError("utils.HParams carries a state that is not a dict; refusing")
        self.update(state)


def _allowed_globals() -> dict[tuple[str, str], Any]:
    allowed: dict[tuple[str, str], Any] = {
        ("collections", "OrderedDict"): OrderedDict,
        ("torch._utils", "_rebuild_tensor_v2"): torch._utils._rebuild_tensor_v2,
        ("torch._utils", "_rebuild_tensor"): torch._utils._rebuild_tensor,
        ("torch._utils", "_rebuild_parameter"): torch._utils._rebuild_parameter,
        ("torch", "Size"): torch.Size,
        ("utils", "HParams"): HParamsDict,
    }
    for name in dir(torch):
        obj = getattr(torch, name, None)
        if isinstance(obj, torch.dtype):
            allowed[("torch", name)] = obj
        elif name.endswith("Storage") and isinstance(obj, type):
            allowed[("torch", name)] = obj
    return allowed


class _RestrictedUnpickler(pickle.Unpickler):
    """Resolves only allowlisted globals; anything else raises before it could be called."""

    _allowed: dict[tuple[str, str], Any] | None = None

    def find_class(self, module: str, name: str) -> Any:
        if _RestrictedUnpickler._allowed is None:
            _RestrictedUnpickler._allowed = _allowed_globals()
        try:
            return _RestrictedUnpickler._allowed[(module, name)]
        except KeyError:
            raise UnsafeCheckpointError(
                f"the file's pickle references {module}.{name}, which a weight file never needs; refusing to "
                "load it (nothing from it was run). Only tensors, plain containers and the official "
                "utils.HParams config are accepted."
            ) from None


def _restricted_load(file: Any, **kwargs: Any) -> Any:
    return _RestrictedUnpickler(file, **kwargs).load()


# torch.load wants a module-like object with Unpickler and load.
_restricted_pickle = types.ModuleType("gpt_sovits_restricted_pickle")
_restricted_pickle.Unpickler = _RestrictedUnpickler  # type: ignore[attr-defined]
_restricted_pickle.load = _restricted_load  # type: ignore[attr-defined]


def _to_plain(obj: Any) -> Any:
    """HParamsDict (and nested ones) -> plain dicts, keeping everything else as is."""
    if isinstance(obj, HParamsDict):
        return {k: _to_plain(v) for k, v in obj.items()}
    if isinstance(obj, OrderedDict):
        return OrderedDict((k, _to_plain(v)) for k, v in obj.items())
    if isinstance(obj, dict):
        return {k: _to_plain(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_to_plain(v) for v in obj]
    return obj


@dataclass
class RawCheckpoint:
    """A weight file read safely: its top-level object and the version code of its header, if any."""

    path: Path
    content: Any
    header_version: str | None


def read_checkpoint(path: str | Path, allow_versions: tuple[str, ...] = ()) -> RawCheckpoint:
    """Read a torch weight file with the restricted unpickler (zip format, with or without version header).

    Files whose header names a version outside v1/v2 are refused unless it is in `allow_versions`
    (the v3/v4 loaders pass "v3-lora", "v4-lora")."""
    path = Path(path)
    problem = file_problem(path)
    if problem == "not found":
        raise CheckpointError(f"weight file not found: {path}")
    if path.is_dir():
        raise CheckpointError(f"{path} is {problem}")
    data = path.read_bytes()
    if len(data) < 4:
        raise CheckpointError(
            f"{path} is empty or truncated ({len(data)} bytes); expected a PyTorch weight file"
        )
    head = data[:2]
    header_version = None
    if head != b"PK":
        if head in HEADER_VERSIONS:
            header_version = HEADER_VERSIONS[head]
            data = b"PK" + data[2:]
        elif data[:1] != b"\x80":  # not a legacy (pre-zip) torch pickle either
            raise CheckpointError(
                f"{path} is not a PyTorch weight file (starts with {data[:8]!r}); expected a GPT .ckpt or SoVITS .pth"
            )
    if header_version is not None and header_version not in (*SUPPORTED_S2_VERSIONS, *allow_versions):
        raise UnsupportedVersionError(
            f"{path} is a SoVITS {header_version} file (version header {head!r}); {_UNSUPPORTED_HINT}"
        )
    if data[:2] == b"PK" and not zipfile.is_zipfile(io.BytesIO(data)):
        raise CheckpointError(
            f"{path} is truncated or damaged (its zip directory is missing); download it again"
        )
    try:
        content = torch.load(
            io.BytesIO(data), map_location="cpu", pickle_module=_restricted_pickle, weights_only=False
        )
    except UnsafeCheckpointError as e:
        raise UnsafeCheckpointError(f"{path}: {e}") from None
    except Exception as e:  # zip/pickle/storage errors from a damaged file
        raise CheckpointError(
            f"{path} could not be read as a PyTorch weight file (truncated or damaged?): {load_error_reason(e)}"
        ) from None
    return RawCheckpoint(path, _to_plain(content), header_version)


# --- a cheap check: does a file load? ------------------------------------------------------------


class _HeadPatched(io.RawIOBase):
    """A weight file read as a zip: the two-byte version code of newer SoVITS files is read as ``PK``."""

    def __init__(self, f: io.BufferedReader) -> None:
        self.f = f

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = 0) -> int:
        return self.f.seek(offset, whence)

    def tell(self) -> int:
        return self.f.tell()

    def readinto(self, buffer: Any) -> int:
        start = self.f.tell()
        n = self.f.readinto(buffer)
        if start < 2 and n:
            patch = b"PK"[start : min(2, start + n)]
            buffer[: len(patch)] = patch
        return n


class _KeysUnpickler(_RestrictedUnpickler):
    """The restricted unpickler without tensor data: every tensor becomes an empty one, storages are
    only named (their records must exist in the zip). Reads the structure and the keys, not the weights."""

    def __init__(self, file: Any, records: set[str]) -> None:
        super().__init__(file)
        self.records = records
        self.missing: list[str] = []

    def find_class(self, module: str, name: str) -> Any:
        cls = super().find_class(module, name)
        if module == "torch._utils" and name == "_rebuild_parameter":
            return lambda data, *_a, **_k: data
        if module == "torch._utils" and name.startswith("_rebuild_tensor"):
            # (storage, offset, size, stride, ...): a meta tensor of the right shape, no data read
            return lambda _storage, _offset, size, *_a, **_k: torch.empty(tuple(size), device="meta")
        return cls

    def persistent_load(self, pid: Any) -> Any:
        key = str(pid[2]) if isinstance(pid, tuple) and len(pid) > 2 else str(pid)
        if key not in self.records:
            self.missing.append(key)
        return None


def _structure(path: Path) -> Any:
    """The file's pickled object with empty tensors; raises CheckpointError when a record is missing."""
    with open(path, "rb") as raw, zipfile.ZipFile(_HeadPatched(raw)) as z:
        names = z.namelist()
        pickle_name = next((n for n in names if n.endswith("/data.pkl") or n == "data.pkl"), None)
        if pickle_name is None:
            raise CheckpointError("no data.pkl inside: not a PyTorch weight file")
        prefix = pickle_name[: -len("data.pkl")]
        records = {n[len(prefix) + len("data/") :] for n in names if n.startswith(prefix + "data/")}
        unpickler = _KeysUnpickler(io.BytesIO(z.read(pickle_name)), records)
        content = unpickler.load()
    if unpickler.missing:
        raise CheckpointError(f"truncated: {len(unpickler.missing)} tensor records are missing")
    return content


def _readable_structure(path: Path) -> tuple[Any, str | None]:
    """The file's plain structure (`_structure`, then `_to_plain`) and None, or None and why it cannot be
    read, in the words of the weights lists (refused, truncated, damaged)."""
    try:
        return _to_plain(_structure(path)), None
    except UnsafeCheckpointError:
        return None, "refused: it references code a weight file never needs"
    except CheckpointError as e:
        return None, str(e)
    except zipfile.BadZipFile:
        return None, "truncated or damaged (its zip directory is missing)"
    except (OSError, EOFError, pickle.UnpicklingError, ValueError) as e:
        return None, f"truncated or damaged ({load_error_reason(e)})"


def quick_check(path: str | Path, expected: str) -> str | None:
    """Why the weight file at ``path`` would not load as ``expected`` ("gpt" or "sovits"), or None.

    Cheap (the zip directory and the pickled keys, no tensor data) and cached by path, mtime and size,
    so a weights list can be checked on every refresh."""
    path = Path(path)
    problem = file_problem(path)
    if problem:
        return problem
    st = path.stat()
    return _quick_check_cached(str(path.resolve()), st.st_mtime_ns, st.st_size, expected)


@functools.lru_cache(maxsize=512)
def _quick_check_cached(path: str, _mtime_ns: int, _size: int, expected: str) -> str | None:
    with open(path, "rb") as f:
        head = f.read(2)
    if head != b"PK" and head not in HEADER_VERSIONS:
        return (
            None if head[:1] == b"\x80" else "not a PyTorch weight file"
        )  # legacy pickles: the full load tells
    version = HEADER_VERSIONS.get(head)
    if version is not None and version not in SUPPORTED_S2_VERSIONS:
        return f"SoVITS {version}, not supported ({_UNSUPPORTED_HINT})"
    content, problem = _readable_structure(Path(path))
    if problem is not None:
        return problem
    kind = classify(content)
    if kind == "sovits-v2pro":
        kind = "sovits"  # a generator like any other for the lists
    if kind != expected:
        return f"{_KIND_NAMES[kind]}, not {_KIND_NAMES[expected]}"
    return None


# --- what a file holds -----------------------------------------------------------------------------


def _state_dict_of(content: Any) -> dict[str, torch.Tensor] | None:
    if isinstance(content, Mapping):
        for key in ("weight", "state_dict", "model"):
            sd = content.get(key)
            if isinstance(sd, Mapping) and sd and all(isinstance(v, torch.Tensor) for v in sd.values()):
                return dict(sd)
        if content and all(isinstance(v, torch.Tensor) for v in content.values()):
            return dict(content)
    return None


def classify(content: Any) -> str:
    """Kind of model a checkpoint holds: gpt, sovits, sovits-v2pro, sovits-v3, sovits-discriminator, unknown."""
    sd = _state_dict_of(content)
    if sd is None:
        return "unknown"
    keys = list(sd)
    if any("ar_predict_layer" in k or "ar_text_embedding" in k for k in keys):
        return "gpt"
    if any(k.startswith("discriminators.") for k in keys):
        return "sovits-discriminator"
    if any(k.startswith("cfm.") or k.startswith("bridge.") for k in keys):
        return "sovits-v3"
    if "sv_emb.weight" in sd:
        return "sovits-v2pro"
    if "enc_p.text_embedding.weight" in sd:
        return "sovits"
    return "unknown"


_KIND_NAMES = {
    "gpt": "a GPT (S1) checkpoint",
    "sovits": "a SoVITS (S2) generator",
    "sovits-v2pro": "a SoVITS v2Pro/v2ProPlus generator",
    "sovits-v3": "a SoVITS v3/v4 model",
    "sovits-discriminator": "a SoVITS discriminator (s2D)",
    "unknown": "not a GPT-SoVITS weight file",
}


def _legacy_weight_norm_names(sd: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Map `parametrizations.weight.original0/1` (newer torch weight norm) to `weight_g/weight_v`."""
    out = {}
    for k, v in sd.items():
        k = k.replace(".parametrizations.weight.original0", ".weight_g")
        k = k.replace(".parametrizations.weight.original1", ".weight_v")
        out[k] = v
    return out


def _load_strict(
    model: nn.Module, sd: Mapping[str, torch.Tensor], path: Path, what: str, assign: bool = False
) -> None:
    try:
        model.load_state_dict(sd, strict=True, assign=assign)
    except RuntimeError as e:
        raise CheckpointError(f"{path} does not match the {what} built from its config: {e}") from None


# --- SoVITS ----------------------------------------------------------------------------------------


def _refuse_kind(path: Path, kind: str, expected: str) -> None:
    if kind == "sovits-v3" and expected == "a SoVITS (S2) generator":
        raise UnsupportedVersionError(f"{path} is {_KIND_NAMES[kind]}; {_UNSUPPORTED_HINT}")
    raise WrongModelTypeError(f"{path} is {_KIND_NAMES[kind]}; expected {expected}")


def _pretrained_md5_version(path: Path) -> str | None:
    """The version of an official pretrained generator, by the MD5 of its first 8192 bytes."""
    try:
        with open(path, "rb") as f:
            head = f.read(8192)
    except OSError:
        return None
    return PRETRAINED_SOVITS_MD5.get(hashlib.md5(head).hexdigest())


def _version_from_tensors(sd: Mapping[str, torch.Tensor], kind: str) -> str | None:
    """v1/v2/v2Pro/v2ProPlus/v3 from the state dict's names and shapes (meta tensors are enough)."""
    if kind == "sovits-v3":
        return "v3"
    if "sv_emb.weight" in sd:
        # ProPlus' generator starts wider with a longer first upsampling kernel (768 ch, k 20; Pro 512, k 16).
        ups0 = sd.get("dec.ups.0.weight_v", sd.get("dec.ups.0.parametrizations.weight.original1"))
        return "v2ProPlus" if ups0 is not None and ups0.dim() == 3 and ups0.shape[2] == 20 else "v2Pro"
    emb = sd.get("enc_p.text_embedding.weight")
    if emb is None:
        return None
    by_rows = {n: v for v, n in N_SYMBOLS.items()}
    return by_rows.get(int(emb.shape[0]))


def detect_sovits_version(path: str | Path) -> str:
    """The version of a SoVITS generator file: "v1", "v2", "v2Pro", "v2ProPlus", "v3" or "v4".

    Cheap (no tensor data is read): pretrained MD5, version header, then names and shapes, then size.
    Raises CheckpointError when the file is missing or not a SoVITS generator."""
    path = Path(path)
    problem = file_problem(path)
    if problem:
        raise CheckpointError(f"{path}: {problem}")
    by_md5 = _pretrained_md5_version(path)
    if by_md5 is not None:
        return by_md5
    with open(path, "rb") as f:
        head = f.read(2)
    if head in HEADER_VERSIONS:
        version = HEADER_VERSIONS[head]
        return _HEADER_MODEL_VERSION.get(version, version)
    if head != b"PK":
        raise CheckpointError(f"{path} is not a PyTorch weight file (starts with {head!r})")
    try:
        content = _to_plain(_structure(path))
    except (CheckpointError, zipfile.BadZipFile, OSError, EOFError, pickle.UnpicklingError, ValueError):
        content = None  # unreadable structure: the reference's size rule below
    if content is not None:
        kind = classify(content)
        if kind not in ("sovits", "sovits-v2pro", "sovits-v3"):
            raise WrongModelTypeError(f"{path} is {_KIND_NAMES[kind]}; expected a SoVITS (S2) generator")
        version = _version_from_tensors(_state_dict_of(content) or {}, kind)
        if version is not None:
            return version
    size = path.stat().st_size
    return "v1" if size < _V1_MAX_BYTES else "v2" if size < _V2_MAX_BYTES else "v3"


def _sovits_version(raw: RawCheckpoint, sd: Mapping[str, torch.Tensor], kind: str) -> str:
    """The version load_sovits builds: the header's or the pretrained MD5's for v2Pro/ProPlus (checked
    against the tensors), else the tensors' (phone rows for v1/v2, shapes for Pro vs ProPlus)."""
    from_tensors = _version_from_tensors(sd, kind)
    if from_tensors is None:
        rows = sd["enc_p.text_embedding.weight"].shape[0]
        raise CheckpointError(f"{raw.path}: phone embedding has {rows} rows; expected 322 (v1) or 732 (v2)")
    declared = raw.header_version if raw.header_version in SV_VERSIONS else None
    declared = declared or (v if (v := _pretrained_md5_version(raw.path)) in SV_VERSIONS else None)
    if declared is None:
        return from_tensors
    if from_tensors not in SV_VERSIONS:
        raise CheckpointError(
            f"{raw.path} says it is SoVITS {declared} but has no speaker-verification layer (sv_emb); "
            "the file is damaged or mislabelled"
        )
    return declared


def load_sovits(
    path: str | Path,
    device: str | torch.device = "cpu",
    dtype: torch.dtype | None = None,
    precision: str = "auto",
) -> tuple[SynthesizerTrn, S2Config]:
    """Load an official (or our) SoVITS v1/v2/v2Pro/v2ProPlus weight file or pretrained s2G file, strictly,
    in eval mode.

    `precision`: "auto" (the inference fast path where it keeps fidelity) or "fp32" (exact; trainers and
    parity checks), see `gpt_sovits.models.fastpath`.

    The model includes `enc_q` only when the file has it (pretrained generators); exported weights
    drop it and decode without it. Version: v2Pro/v2ProPlus from the header (or the pretrained MD5,
    or the tensors for headerless files), v1/v2 from the phone-embedding rows, as official inference
    decides; `cfg.uses_sv` tells whether decode needs `sv_emb`.
    """
    raw = read_checkpoint(path)
    kind = classify(raw.content)
    if kind not in ("sovits", "sovits-v2pro"):
        _refuse_kind(raw.path, kind, "a SoVITS (S2) generator")
    sd = _legacy_weight_norm_names(_state_dict_of(raw.content) or {})
    version = _sovits_version(raw, sd, kind)
    config = raw.content.get("config") if isinstance(raw.content, Mapping) else None
    if isinstance(config, Mapping) and "model" in config:
        cfg = S2Config.from_hparams(config, version=version)
    else:
        cfg = S2Config.for_version(version)  # pretrained files without a config: configs/s2*.json
    cfg.semantic_frame_rate = "25hz"  # as official inference forces
    try:
        # Built on the meta device: no time spent on random initialisation that the weights replace.
        with torch.device("meta"):
            model = SynthesizerTrn(cfg, with_posterior=any(k.startswith("enc_q.") for k in sd))
    except ValueError as e:
        raise CheckpointError(f"{raw.path}: its config cannot build a SoVITS model: {e}") from None
    sd = {k: v.to(dtype or torch.float32) for k, v in sd.items()}
    _load_strict(model, sd, raw.path, f"SoVITS {version} model", assign=True)
    model.to(device=device)
    return apply_precision(model.eval(), precision, device), cfg


def load_sovits_discriminator(
    path: str | Path, device: str | torch.device = "cpu", version: str | None = None
) -> MultiPeriodDiscriminator:
    """Load a pretrained `s2D*.pth` multi-period discriminator: 6 sub-discriminators (v1/v2, periods
    2, 3, 5, 7, 11) or 8 (v2Pro/v2ProPlus, also 17, 23). `version` given: the file must be that version's."""
    raw = read_checkpoint(path)
    kind = classify(raw.content)
    if kind != "sovits-discriminator":
        _refuse_kind(raw.path, kind, "a SoVITS discriminator (s2D)")
    sd = _legacy_weight_norm_names(_state_dict_of(raw.content) or {})
    n_disc = len({k.split(".")[1] for k in sd if k.startswith("discriminators.")})
    by_count = {1 + len(p): p for p in DISCRIMINATOR_PERIODS.values()}
    if n_disc not in by_count:
        raise UnsupportedVersionError(
            f"{raw.path} has {n_disc} sub-discriminators; v1/v2 have 6 and v2Pro/v2ProPlus 8"
        )
    periods = by_count[n_disc]
    if version is not None and DISCRIMINATOR_PERIODS[version] != periods:
        raise UnsupportedVersionError(
            f"{raw.path} has {n_disc} sub-discriminators, a {'v2Pro' if n_disc == 8 else 'v1/v2'} "
            f"discriminator; a {version} one has {1 + len(DISCRIMINATOR_PERIODS[version])}"
        )
    with torch.device("meta"):  # no random initialisation that the weights replace
        model = MultiPeriodDiscriminator(periods)
    sd = {k: v.to(torch.float32).contiguous() for k, v in sd.items()}  # trainable fp32 parameters
    _load_strict(model, sd, raw.path, "multi-period discriminator", assign=True)
    return model.to(device)


def _check_plain(obj: Any, where: str = "config") -> None:
    """Only containers and primitives, so the file loads with weights_only=True everywhere."""
    if isinstance(obj, Mapping):
        for k, v in obj.items():
            if not isinstance(k, str):
                raise TypeError(f"{where}: keys must be str, got {type(k).__name__}")
            _check_plain(v, f"{where}.{k}")
    elif isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            _check_plain(v, f"{where}[{i}]")
    elif obj is not None and not isinstance(obj, (str, int, float, bool)):
        raise TypeError(
            f"{where} holds a {type(obj).__name__}; only plain containers and primitives are saved"
        )


def _half_state(model_or_sd: nn.Module | Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    sd = model_or_sd.state_dict() if isinstance(model_or_sd, nn.Module) else model_or_sd
    return {k: v.detach().to("cpu", torch.float16).contiguous() for k, v in sd.items()}


def save_sovits_weights(
    model_or_state_dict: nn.Module | Mapping[str, torch.Tensor],
    cfg: S2Config,
    path: str | Path,
    info: str = "",
) -> Path:
    """Write SoVITS weights in the official export layout (fp16, no enc_q, plain-dict config, info).

    v2Pro/v2ProPlus files get the reference's version header (b"05"/b"06" in place of the zip's "PK")."""
    sd = _half_state(model_or_state_dict)
    weight = OrderedDict((k, v) for k, v in sd.items() if not k.startswith("enc_q."))
    config = cfg.to_hparams()
    _check_plain(config)
    payload = OrderedDict(weight=weight, config=config, info=str(info))
    path = Path(path)
    header = _VERSION_HEADER.get(cfg.version)
    if header is None:
        atomic_write_with(path, lambda tmp: torch.save(payload, tmp))
        return path
    buf = io.BytesIO()
    torch.save(payload, buf)
    data = header + buf.getbuffer()[2:].tobytes()  # as the reference's my_save2
    atomic_write_with(path, lambda tmp: Path(tmp).write_bytes(data))
    return path


# --- GPT ---------------------------------------------------------------------------------------------


def load_gpt(
    path: str | Path,
    device: str | torch.device = "cpu",
    dtype: torch.dtype | None = None,
    precision: str = "auto",
) -> tuple[Text2Semantic, S1Config]:
    """Load an official (or our) GPT weight `.ckpt` strictly, in eval mode (`precision` as in load_sovits)."""
    from gpt_sovits.models.s1 import S1Config, S1ConfigError, Text2Semantic

    raw = read_checkpoint(path)
    kind = classify(raw.content)
    if kind != "gpt":
        raise WrongModelTypeError(
            f"{raw.path} is {_KIND_NAMES[kind]}; expected a GPT (S1) checkpoint (.ckpt)"
        )
    config = raw.content.get("config") if isinstance(raw.content, Mapping) else None
    if not isinstance(config, Mapping):
        raise CheckpointError(f"{raw.path} is a GPT checkpoint without a config; cannot tell its size")
    try:
        cfg = S1Config.from_official(dict(config))
    except S1ConfigError as e:
        raise CheckpointError(f"{raw.path}: {e}") from None
    sd = _state_dict_of(raw.content) or {}
    sd = {k.removeprefix("model."): v for k, v in sd.items()}
    model = Text2Semantic(cfg)
    _load_strict(model, sd, raw.path, "GPT model")
    model.to(device=device, dtype=dtype)
    return apply_precision(model.eval(), precision, device), cfg


DEFAULT_GPT_CONFIG: dict[str, Any] = {
    "train": {"seed": 1234, "epochs": 20, "batch_size": 8, "save_every_n_epoch": 1, "precision": "16-mixed"},
    "optimizer": {"lr": 0.01, "lr_init": 1e-05, "lr_end": 0.0001, "warmup_steps": 2000, "decay_steps": 40000},
    "data": {"max_eval_sample": 8, "max_sec": 54, "num_workers": 4, "pad_val": 1024},
    "inference": {"top_k": 15},
}


def save_gpt_weights(
    model_or_state_dict: nn.Module | Mapping[str, torch.Tensor],
    cfg: S1Config,
    path: str | Path,
    info: str = "",
    config: Mapping[str, Any] | None = None,
) -> Path:
    """Write GPT weights in the official layout: fp16 "model."-prefixed state dict, config dict, info.

    `config` is the full official config (train/data/...); its `model` section is replaced by `cfg`.
    Official inference reads `config["data"]["max_sec"]`, so a default config is written when none is given.
    A model loaded with the CPU fast path (precision="auto") is refused: its state dict is not the official
    one; load it with precision="fp32" to train or export.
    """
    import copy

    if isinstance(model_or_state_dict, nn.Module) and fast_path_active(model_or_state_dict):
        raise ValueError(
            "this GPT model was loaded with the CPU fast path (precision='auto'), whose weights are not the "
            "official layout; load it with precision='fp32' to save it"
        )
    full = copy.deepcopy(dict(config) if config is not None else DEFAULT_GPT_CONFIG)
    full["model"] = cfg.to_official()
    _check_plain(full)
    weight = OrderedDict(("model." + k, v) for k, v in _half_state(model_or_state_dict).items())
    payload = OrderedDict(weight=weight, config=full, info=str(info))
    path = Path(path)
    atomic_write_with(path, lambda tmp: torch.save(payload, tmp))
    return path
