"""The registry of every model the project uses: where each lives, how to check it, how to fetch it.

All models live under one pretrained-models folder (``model_dir``, the UI's ``ctx.model_dir``) in the
layout of the official GPT-SoVITS release, so a folder filled by hand from the official downloads
works as is:

    model_dir/
      gsv-v2final-pretrained/s1bert25hz-5kh-longer-epoch=12-step=369668.ckpt   GPT (S1) v2
      gsv-v2final-pretrained/s2G2333k.pth, s2D2333k.pth                        SoVITS (S2) v2 G / D
      s1bert25hz-2kh-longer-epoch=68e-step=50232.ckpt, s2G488k.pth, s2D488k.pth v1 equivalents
      s1v3.ckpt                                 GPT (S1) of v2Pro and v2ProPlus (also v3/v4's)
      v2Pro/s2Gv2Pro.pth, s2Dv2Pro.pth          SoVITS (S2) v2Pro G / D
      v2Pro/s2Gv2ProPlus.pth, s2Dv2ProPlus.pth  SoVITS (S2) v2ProPlus G / D
      sv/pretrained_eres2netv2w24s4ep4.ckpt     speaker-verification model (ERes2NetV2) of v2Pro/ProPlus
      s2Gv3.pth                                 SoVITS (S2) v3 G (v3/v4 have no D)
      models--nvidia--bigvgan_v2_24khz_100band_256x/   v3 vocoder (BigVGAN: config.json + bigvgan_generator.pt)
      gsv-v4-pretrained/s2Gv4.pth, vocoder.pth  SoVITS (S2) v4 G, v4 vocoder (48 kHz)
      chinese-hubert-base/                      HuBERT content features (config.json + weights)
      chinese-roberta-wwm-ext-large/            BERT for Chinese phone features (+ tokenizer)
      G2PWModel/g2pW.onnx                       Chinese polyphone model (optional)
      faster-whisper-<size>/                    ASR (tools.asr owns the size table)
      demucs/<name>.yaml + <sig>.safetensors    separation (tools.demucs_models owns the names)

``python -m gpt_sovits.pretrained list`` prints the table with each model's status;
``.venv/bin/python -m gpt_sovits.pretrained download NAME [--model-dir P]`` fetches one (or a group:
``v1``, ``v2``, ``v2Pro``, ``v2ProPlus``, ``v3``, ``v4``) from the Hugging Face hub with progress and resume;
the web UI's Models tab does the same with a button per row and per group (``Downloads``: background
threads, one download per file). Every missing-model message names these routes in one sentence
(``route``, built by ``core.model_route.download_route``, which the loaders below this layer use too).
``preferred_demucs_model`` / ``preferred_whisper_model`` pick the stage models present locally.
``version_models(version)`` is the one table of which files a version needs (formatting, training and
synthesis ask it): v2Pro and v2ProPlus take the GPT ``s1v3.ckpt`` and the SV model besides their own
SoVITS pair. v3/v4 (flow-matching S2, no discriminator, a vocoder) have their own table, ``v3v4_models``
(``download v3``), and are not in VERSIONS, whose rows are (S1, S2 generator, S2 discriminator).
Nothing here touches the network unless asked to download, and then an unreachable hub is one clear
message within seconds, never a hang.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import threading
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from core.errors import UserError
from core.model_route import (
    DOWNLOAD_COMMAND,
    G2PW_REPO,
    GSV_REPO,
    download_route,
    hub_endpoint,
    hub_url,
    manual_route,
)
from gpt_sovits.models.model_folders import (
    BERT_FOLDER,
    BIGVGAN_CONFIG,
    BIGVGAN_WEIGHTS,
    HUBERT_FOLDER,
    FeatureModelNotFoundError,
    check_model_folder,
)
from tools import asr as asr_models
from tools import demucs_models

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_MODEL_DIR = REPO_ROOT / "pretrained_models"
G2PW_FOLDER = "G2PWModel"
HUB_CHECK_TIMEOUT_S = 3.0  # an unreachable hub is said within seconds

V2_FOLDER = "gsv-v2final-pretrained"
V2PRO_FOLDER = "v2Pro"
S1V3_FILE = "s1v3.ckpt"  # the reference's GPT for v2Pro/v2ProPlus (config.py pretrained_gpt_name)
SV_FILE = "sv/pretrained_eres2netv2w24s4ep4.ckpt"  # ERes2NetV2, read by gpt_sovits.models.sv.load_sv
SV_NAME = "sv-eres2netv2"
# version -> (S1 .ckpt, S2 generator, S2 discriminator), relative to model_dir (official names).
PRETRAINED_FILES: dict[str, tuple[str, str, str]] = {
    "v2": (
        f"{V2_FOLDER}/s1bert25hz-5kh-longer-epoch=12-step=369668.ckpt",
        f"{V2_FOLDER}/s2G2333k.pth",
        f"{V2_FOLDER}/s2D2333k.pth",
    ),
    "v1": ("s1bert25hz-2kh-longer-epoch=68e-step=50232.ckpt", "s2G488k.pth", "s2D488k.pth"),
    "v2Pro": (S1V3_FILE, f"{V2PRO_FOLDER}/s2Gv2Pro.pth", f"{V2PRO_FOLDER}/s2Dv2Pro.pth"),
    "v2ProPlus": (S1V3_FILE, f"{V2PRO_FOLDER}/s2Gv2ProPlus.pth", f"{V2PRO_FOLDER}/s2Dv2ProPlus.pth"),
}
# The versions this project formats, trains and synthesises, in the reference training UI's order
# (its v4 is not offered here: v3/v4 are built separately).
VERSIONS: tuple[str, ...] = ("v1", "v2", "v2Pro", "v2ProPlus")
SV_VERSIONS: frozenset[str] = frozenset({"v2Pro", "v2ProPlus"})  # S2 also takes the SV embedding
V4_FOLDER = "gsv-v4-pretrained"
BIGVGAN_FOLDER = "models--nvidia--bigvgan_v2_24khz_100band_256x"  # v3's vocoder: config + generator
# v3/v4 (flow-matching S2, no discriminator; GPT s1v3.ckpt): version -> (S2 generator, vocoder),
# relative to model_dir (official names). Formatted, LoRA-trained and synthesised like the others.
V3V4_FILES: dict[str, tuple[str, str]] = {
    "v3": ("s2Gv3.pth", BIGVGAN_FOLDER),
    "v4": (f"{V4_FOLDER}/s2Gv4.pth", f"{V4_FOLDER}/vocoder.pth"),
}

# Rough download sizes, shown so a person knows what a download costs.
_WHISPER_SIZES = {  # first match wins: turbo/distil before large
    "turbo": "1.6 GB",
    "distil": "1.5 GB",
    "tiny": "75 MB",
    "base": "145 MB",
    "small": "480 MB",
    "medium": "1.5 GB",
    "large": "3.1 GB",
}
_DEMUCS_SIZES = {"htdemucs": "80 MB", "htdemucs_ft": "320 MB", "mdx_extra": "650 MB"}


class ModelDownloadError(UserError, RuntimeError):
    """A download that could not happen (hub unreachable, offline mode, unknown name); the message says
    which folder to fill by hand and where the files come from."""


@dataclass(frozen=True)
class PretrainedPaths:
    """Official pretrained files of one version (paths may not exist; see model_status)."""

    s1: Path
    s2g: Path
    s2d: Path
    hubert: Path
    bert: Path
    sv: Path | None = None  # the SV model, for the versions that use it (v2Pro, v2ProPlus)


@dataclass(frozen=True)
class ModelSpec:
    """One registry row.

    name: what `download NAME` takes; path: file or folder relative to model_dir; repo_id + files: where
    it comes from on the Hugging Face hub (files are repo paths, a trailing ``/*`` means a folder).
    """

    name: str
    kind: str  # "gpt", "sovits", "sovits-d", "sv", "vocoder", "bigvgan", "hubert", "bert", "g2pw", "asr", "demucs"
    path: str
    repo_id: str
    files: tuple[str, ...]
    size_hint: str
    description: str


@dataclass(frozen=True)
class ModelStatus:
    name: str
    path: Path
    present: bool
    how_to_get: str
    kind: str = ""
    size_hint: str = ""
    description: str = ""


def _check_version(version: str) -> None:
    if version not in PRETRAINED_FILES:
        raise ValueError(f"unknown GPT-SoVITS version {version!r}: use one of {', '.join(VERSIONS)}")


def uses_sv(version: str) -> bool:
    """Whether S2 of `version` takes the speaker-verification embedding (v2Pro, v2ProPlus)."""
    return version in SV_VERSIONS


def symbol_version(version: str) -> str:
    """The text frontend's symbol table of a model version: v1's, else v2's (v2Pro/ProPlus use v2's)."""
    return "v1" if version == "v1" else "v2"


def pretrained_paths(model_dir: str | Path, version: str = "v2") -> PretrainedPaths:
    """The official pretrained files of `version` (one of VERSIONS) under `model_dir`."""
    _check_version(version)
    root = Path(model_dir)
    s1, s2g, s2d = PRETRAINED_FILES[version]
    sv = root / SV_FILE if uses_sv(version) else None
    return PretrainedPaths(root / s1, root / s2g, root / s2d, root / HUBERT_FOLDER, root / BERT_FOLDER, sv)


def gpt_name(version: str) -> str:
    """Registry name of the pretrained GPT of `version` (v2Pro and v2ProPlus share s1v3.ckpt)."""
    _check_version(version)
    return "gpt-s1v3" if PRETRAINED_FILES[version][0] == S1V3_FILE else f"gpt-{version}"


def version_models(version: str) -> dict[str, str]:
    """Which pretrained files `version` needs: role (s1, s2g, s2d, hubert, bert, sv) -> registry name.

    Formatting reads hubert, bert, s2g (its quantizer makes the tokens, as the reference's 1c step with
    the version's own generator) and sv; S2 training s2g and s2d; S1 training s1; synthesis s1, s2g,
    hubert, bert and sv. The roles are PretrainedPaths' fields.
    """
    _check_version(version)
    roles = {
        "s1": gpt_name(version),
        "s2g": f"sovits-{version}",
        "s2d": f"sovits-d-{version}",
        "hubert": HUBERT_FOLDER,
        "bert": BERT_FOLDER,
    }
    if uses_sv(version):
        roles["sv"] = SV_NAME
    return roles


def v3v4_models(version: str) -> dict[str, str]:
    """Which pretrained files v3/v4 need: role (s1, s2g, vocoder, hubert, bert) -> registry name."""
    if version not in V3V4_FILES:
        raise ValueError(f"not a v3/v4 version: {version!r}: use one of {', '.join(V3V4_FILES)}")
    return {
        "s1": "gpt-s1v3",
        "s2g": f"sovits-{version}",
        "vocoder": f"vocoder-{version}",
        "hubert": HUBERT_FOLDER,
        "bert": BERT_FOLDER,
    }


def pretrained_name(model_dir: str | Path, path: str | Path) -> str | None:
    """Registry name of the pretrained file at `path` under `model_dir` (None: not a registry file)."""
    root, target = Path(model_dir), Path(path)
    for spec in registry():
        if root / spec.path == target:
            return spec.name
    return None


def _whisper_size(size: str) -> str:
    for key, hint in _WHISPER_SIZES.items():
        if key in size:
            return hint
    return ""


def registry() -> list[ModelSpec]:
    """Every model the project knows, GPT-SoVITS first (built on call: nothing happens at import)."""
    rows: list[ModelSpec] = []
    # Rough sizes; v2Pro/ProPlus G hold the SV projection (20480 x 1024) on top of v2's generator.
    sizes = {
        "v2": ("155 MB", "105 MB", "95 MB"),
        "v1": ("155 MB", "105 MB", "95 MB"),
        "v2Pro": ("155 MB", "160 MB", "125 MB"),
        "v2ProPlus": ("155 MB", "200 MB", "125 MB"),
    }
    gpts: set[str] = set()
    for version, (s1, s2g, s2d) in PRETRAINED_FILES.items():
        s1_size, g_size, d_size = sizes[version]
        if s1 not in gpts:  # s1v3.ckpt serves both Pro versions: one row
            gpts.add(s1)
            users = "/".join(v for v in VERSIONS if PRETRAINED_FILES[v][0] == s1)
            users += "/v3/v4" if s1 == S1V3_FILE else ""
            rows.append(
                ModelSpec(
                    gpt_name(version), "gpt", s1, GSV_REPO, (s1,), s1_size, f"GPT (S1) pretrained {users}"
                )
            )
        rows += [
            ModelSpec(
                f"sovits-{version}",
                "sovits",
                s2g,
                GSV_REPO,
                (s2g,),
                g_size,
                f"SoVITS (S2) generator {version}",
            ),
            ModelSpec(
                f"sovits-d-{version}",
                "sovits-d",
                s2d,
                GSV_REPO,
                (s2d,),
                d_size,
                f"SoVITS discriminator {version} (fine-tuning only)",
            ),
        ]
    # v3/v4 generators hold the DiT (1024 x 22 layers); the GPT row above (s1v3.ckpt) serves them too.
    rows += [
        ModelSpec(
            "sovits-v3",
            "sovits",
            V3V4_FILES["v3"][0],
            GSV_REPO,
            (V3V4_FILES["v3"][0],),
            "770 MB",
            "SoVITS (S2) generator v3",
        ),
        ModelSpec(
            "vocoder-v3",
            "bigvgan",
            BIGVGAN_FOLDER,
            GSV_REPO,
            (f"{BIGVGAN_FOLDER}/{BIGVGAN_CONFIG}", f"{BIGVGAN_FOLDER}/{BIGVGAN_WEIGHTS}"),
            "450 MB",
            "BigVGAN vocoder v3 (24 kHz)",
        ),
        ModelSpec(
            "sovits-v4",
            "sovits",
            V3V4_FILES["v4"][0],
            GSV_REPO,
            (V3V4_FILES["v4"][0],),
            "770 MB",
            "SoVITS (S2) generator v4",
        ),
        ModelSpec(
            "vocoder-v4",
            "vocoder",
            V3V4_FILES["v4"][1],
            GSV_REPO,
            (V3V4_FILES["v4"][1],),
            "60 MB",
            "vocoder v4 (48 kHz)",
        ),
    ]
    rows += [
        ModelSpec(
            SV_NAME,
            "sv",
            SV_FILE,
            GSV_REPO,
            (SV_FILE,),
            "110 MB",
            "speaker verification (ERes2NetV2) for v2Pro/v2ProPlus",
        ),
        ModelSpec(
            HUBERT_FOLDER,
            "hubert",
            HUBERT_FOLDER,
            GSV_REPO,
            (f"{HUBERT_FOLDER}/*",),
            "190 MB",
            "HuBERT content",
        ),
        ModelSpec(
            BERT_FOLDER,
            "bert",
            BERT_FOLDER,
            GSV_REPO,
            (f"{BERT_FOLDER}/*",),
            "650 MB",
            "BERT for Chinese text",
        ),
        ModelSpec(
            "g2pw",
            "g2pw",
            f"{G2PW_FOLDER}/g2pW.onnx",
            G2PW_REPO,
            ("G2PWModel.zip",),
            "600 MB",
            "Chinese polyphone model (optional)",
        ),
    ]
    for size, repo in asr_models.MODEL_REPOS.items():
        rows.append(
            ModelSpec(
                f"faster-whisper-{size}",
                "asr",
                f"faster-whisper-{size}",
                repo,
                ("*",),
                _whisper_size(size),
                f"ASR (faster-whisper {size})",
            )
        )
    for name in demucs_models.BUILTIN_MODELS:
        rows.append(
            ModelSpec(
                f"demucs-{name}",
                "demucs",
                f"demucs/{name}.yaml",
                demucs_models.hf_repo_id(name),
                ("*",),
                _DEMUCS_SIZES.get(name, ""),
                f"separation (demucs {name})",
            )
        )
    return rows


# `download v2Pro` etc.: every file of a version (version_models' table; v3v4_models' for v3/v4).
GROUPS: dict[str, tuple[str, ...]] = {
    **{v: tuple(version_models(v).values()) for v in VERSIONS},
    **{v: tuple(v3v4_models(v).values()) for v in V3V4_FILES},
}


def find_spec(name: str) -> ModelSpec:
    for spec in registry():
        if spec.name == name:
            return spec
    names = ", ".join([*GROUPS, *(s.name for s in registry())])
    raise ModelDownloadError(f"unknown model {name!r}. Known names: {names}")


def _hand_files(spec: ModelSpec, model_dir: Path) -> tuple[tuple[str, ...], Path, str]:
    """What a person puts where by hand for `spec`, and the hub page it comes from."""
    if spec.kind in ("gpt", "sovits", "sovits-d", "sv", "vocoder"):
        target = model_dir / spec.path
        return (target.name,), target.parent, hub_url(spec.repo_id, spec.files[0])
    if spec.kind == "bigvgan":
        names = tuple(Path(f).name for f in spec.files)
        return names, model_dir / spec.path, hub_url(spec.repo_id, spec.path, folder=True)
    if spec.kind == "g2pw":
        zip_url = f"{hub_url(spec.repo_id)}/resolve/main/{spec.files[0]}"  # the zip itself, as text.g2pw says
        return ("the unzipped G2PWModel.zip",), model_dir / G2PW_FOLDER, zip_url
    if spec.kind in ("hubert", "bert"):
        return ("its files",), model_dir / spec.path, hub_url(spec.repo_id, spec.path, folder=True)
    return ("its files",), model_dir / Path(spec.path).parts[0], hub_url(spec.repo_id)


def route(spec: ModelSpec, model_dir: str | Path, translate: Callable[[str], str] | None = None) -> str:
    """The one download-route sentence (Models tab, command, by hand) for `spec` under `model_dir`."""
    files, folder, source = _hand_files(spec, Path(model_dir))
    return download_route(spec.name, files, folder, source, model_dir, translate)


def manual_hint(spec: ModelSpec, model_dir: str | Path, translate: Callable[[str], str] | None = None) -> str:
    """The folder to fill and the page the files come from, for when the download cannot run here."""
    files, folder, source = _hand_files(spec, Path(model_dir))
    return manual_route(files, folder, source, translate)


def _nonempty(path: Path) -> bool:
    return path.is_file() and path.stat().st_size > 0


def _status(spec: ModelSpec, model_dir: Path) -> ModelStatus:
    """Presence by the same checks the loaders make, with their messages."""
    path = model_dir / spec.path
    present, how = False, ""
    if spec.kind in ("hubert", "bert"):
        try:
            check_model_folder(path, "HuBERT" if spec.kind == "hubert" else "BERT", spec.kind == "bert")
            present = True
        except FeatureModelNotFoundError as e:
            how = str(e)
    elif spec.kind == "asr":
        # As the ASR stage loads it: the local folder, else the Hugging Face cache.
        found = asr_models.model_status(spec.name[len("faster-whisper-") :], model_dir)
        present, how = found.found, "" if found.found else found.message
    elif spec.kind == "demucs":
        name = spec.name[len("demucs-") :]
        present = _demucs_present(name, model_dir)  # as the separation stage loads it: folder, else HF cache
        how = "" if present else demucs_models.missing_model_message(name, model_dir / "demucs")
    elif spec.kind == "bigvgan":  # config + generator, the two files models.weights_v3 reads
        missing = [model_dir / f for f in spec.files if not _nonempty(model_dir / f)]
        present = not missing
        if missing:
            how = f"{spec.description} incomplete: {', '.join(map(str, missing))} missing. "
            how += route(spec, model_dir)
    else:
        present = _nonempty(path)
        how = "" if present else f"{spec.description} missing: {path}. " + route(spec, model_dir)
    return ModelStatus(spec.name, path, present, how, spec.kind, spec.size_hint, spec.description)


def model_status(model_dir: str | Path) -> list[ModelStatus]:
    """Every registry model's presence under `model_dir` (no network, no loading)."""
    root = Path(model_dir)
    return [_status(spec, root) for spec in registry()]


def missing_message(name: str, model_dir: str | Path) -> str:
    """One line for a missing model: what, where, and how to get it."""
    return _status(find_spec(name), Path(model_dir)).how_to_get


# ------------------------------------------------------------------------------------------- download


def _hub_endpoint_host() -> tuple[str, int]:
    """Host and port of the hub (HF_ENDPOINT read now, so a mirror set after import counts)."""
    from urllib.parse import urlparse

    url = urlparse(hub_endpoint())
    return url.hostname or "huggingface.co", url.port or (443 if url.scheme == "https" else 80)


def offline_mode() -> bool:
    """HF_HUB_OFFLINE is on (huggingface_hub's own switch: no request at all)."""
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def hub_reachable(timeout: float = HUB_CHECK_TIMEOUT_S) -> bool:
    """True when a TCP connection to the hub opens within `timeout` s (name lookup included).

    The lookup runs in a daemon thread because getaddrinfo ignores socket timeouts and can block for
    a long time on a machine without DNS.
    """
    import socket

    if offline_mode():
        return False
    result: list[bool] = []

    def probe() -> None:
        try:
            with socket.create_connection(_hub_endpoint_host(), timeout=timeout):
                result.append(True)
        except OSError:
            result.append(False)

    thread = threading.Thread(target=probe, daemon=True)
    thread.start()
    thread.join(timeout)
    return bool(result and result[0])


# i18n keys (the Models tab passes its translator; the CLI and the loaders keep English).
OFFLINE_MODE = "offline mode is on (HF_HUB_OFFLINE)"
HUB_UNREACHABLE = "the Hugging Face hub ({host}) cannot be reached"
CANNOT_DOWNLOAD = "Cannot download {name} ({path}): {why}."


def offline_reason(translate: Callable[[str], str] = str) -> str | None:
    """Why no download can run now (offline mode, hub unreachable), or None when the hub answers."""
    if offline_mode():
        return translate(OFFLINE_MODE)
    if not hub_reachable():
        return translate(HUB_UNREACHABLE).format(host=_hub_endpoint_host()[0])
    return None


def _offline_message(
    spec: ModelSpec, model_dir: Path, why: str, translate: Callable[[str], str] = str
) -> str:
    head = translate(CANNOT_DOWNLOAD).format(name=spec.name, path=model_dir / spec.path, why=why)
    return f"{head} {manual_hint(spec, model_dir, translate)}"


def _extract_g2pw(zip_path: Path, model_dir: Path) -> None:
    """Unpack G2PWModel.zip into model_dir/G2PWModel, refusing members that would land outside it."""
    target = (model_dir / G2PW_FOLDER).resolve()
    with zipfile.ZipFile(zip_path) as zf:
        for member in zf.infolist():
            parts = Path(member.filename).parts
            if not parts or member.is_dir():
                continue
            # The archive's top folder may be G2PWModel/ or G2PWModel_1.1/: keep what is below it.
            rel = Path(*parts[1:]) if len(parts) > 1 and parts[0].startswith(G2PW_FOLDER) else Path(*parts)
            dest = (target / rel).resolve()
            if target not in dest.parents:
                raise ModelDownloadError(
                    f"{zip_path.name}: refused a member outside the model folder: {member}"
                )
            dest.parent.mkdir(parents=True, exist_ok=True)
            with zf.open(member) as src, open(dest, "wb") as out:
                shutil.copyfileobj(src, out)


def download(
    name: str,
    model_dir: str | Path = DEFAULT_MODEL_DIR,
    log: Callable[[str], None] = print,
    check_hub: bool = True,
) -> list[Path]:
    """Fetch `name` (a registry name or a group: v1, v2, v2Pro, v2ProPlus, v3, v4) into `model_dir` in the official layout.

    huggingface_hub shows tqdm progress and resumes interrupted files (partial downloads are kept in
    model_dir/.cache/huggingface). Models already present are skipped. Returns the fetched paths.
    Raises ModelDownloadError with the folder to fill when the hub cannot be reached.
    """
    model_dir = Path(model_dir)
    names = GROUPS.get(name, (name,))
    specs = [find_spec(n) for n in names]
    todo = [s for s in specs if not _status(s, model_dir).present]
    for spec in specs:
        if spec not in todo:
            log(f"{spec.name}: already present at {model_dir / spec.path}")
    if not todo:
        return []
    why = offline_reason() if check_hub else None
    if why is not None:
        raise ModelDownloadError(" ".join(_offline_message(s, model_dir, why) for s in todo))
    model_dir.mkdir(parents=True, exist_ok=True)
    fetched = []
    for spec in todo:
        log(
            f"{spec.name}: downloading from {spec.repo_id} ({spec.size_hint or 'size unknown'}) into {model_dir}"
        )
        try:
            fetched.append(_download_one(spec, model_dir))
        except ModelDownloadError:
            raise
        except Exception as e:  # network errors, missing files on the hub, disk full: one message
            raise ModelDownloadError(_offline_message(spec, model_dir, f"{type(e).__name__}: {e}")) from e
        status = _status(spec, model_dir)
        if not status.present:
            raise ModelDownloadError(f"{spec.name}: downloaded, but still incomplete: {status.how_to_get}")
        log(f"{spec.name}: ready at {status.path}")
    return fetched


_FILE_KINDS = ("gpt", "sovits", "sovits-d", "sv", "vocoder")


def _local_dir(spec: ModelSpec, model_dir: Path) -> Path:
    """The local_dir huggingface_hub downloads `spec` into (its partial files sit in <it>/.cache/huggingface)."""
    if spec.kind in (*_FILE_KINDS, "bigvgan", "hubert", "bert"):
        return model_dir  # the hub repo mirrors the official layout
    if spec.kind == "g2pw":
        return model_dir / ".cache" / "g2pw"  # the zip, unpacked into G2PWModel/ afterwards
    return model_dir / Path(spec.path).parts[0]  # faster-whisper-<size>/ or demucs/


def _download_one(spec: ModelSpec, model_dir: Path) -> Path:
    from huggingface_hub import hf_hub_download, snapshot_download

    local_dir, endpoint = _local_dir(spec, model_dir), hub_endpoint()
    if spec.kind in _FILE_KINDS:
        return Path(hf_hub_download(spec.repo_id, spec.files[0], local_dir=local_dir, endpoint=endpoint))
    if spec.kind == "bigvgan":  # its two files by their hub paths, nothing else of the folder
        for file in spec.files:
            hf_hub_download(spec.repo_id, file, local_dir=local_dir, endpoint=endpoint)
        return model_dir / spec.path
    if spec.kind in ("hubert", "bert"):
        snapshot_download(
            spec.repo_id, allow_patterns=list(spec.files), local_dir=local_dir, endpoint=endpoint
        )
        return model_dir / spec.path
    if spec.kind == "g2pw":
        zip_path = Path(hf_hub_download(spec.repo_id, spec.files[0], local_dir=local_dir, endpoint=endpoint))
        _extract_g2pw(zip_path, model_dir)
        return model_dir / spec.path
    allow = [f"{spec.name[len('demucs-') :]}.yaml", "*.safetensors"] if spec.kind == "demucs" else None
    snapshot_download(spec.repo_id, local_dir=local_dir, allow_patterns=allow, endpoint=endpoint)
    return model_dir / spec.path


# ------------------------------------------------------------------------------- sizes and groups


def groups_of(name: str) -> list[str]:
    """The download groups (versions) a registry row belongs to, in GROUPS' order."""
    return [g for g, names in GROUPS.items() if name in names]


def size_hint_bytes(hint: str) -> int | None:
    """ "155 MB" -> 155_000_000 (decimal, as the hints are written); None when there is no hint."""
    units = {"KB": 10**3, "MB": 10**6, "GB": 10**9}
    number, _sep, unit = hint.strip().partition(" ")
    try:
        return int(float(number) * units[unit.upper()])
    except (KeyError, ValueError):
        return None


def _tree_files(folder: Path) -> list[Path]:
    """Files under `folder`, huggingface_hub's .cache/ (partial downloads, metadata) left out."""
    if not folder.is_dir():
        return []
    return [p for p in folder.rglob("*") if p.is_file() and ".cache" not in p.relative_to(folder).parts]


def _spec_files(spec: ModelSpec, model_dir: Path) -> list[Path]:
    """The files `spec` occupies under model_dir (those that exist)."""
    if spec.kind in _FILE_KINDS:
        path = model_dir / spec.path
        return [path] if path.is_file() else []
    if spec.kind == "bigvgan":
        return [p for p in (model_dir / f for f in spec.files) if p.is_file()]
    if spec.kind == "g2pw":
        return _tree_files(model_dir / G2PW_FOLDER)
    if spec.kind == "demucs":  # the bag yaml and its members (.safetensors or legacy .th)
        name, folder = spec.name[len("demucs-") :], model_dir / "demucs"
        bag = demucs_models.builtin_bag(name)
        sigs = bag.signatures if bag is not None else []
        found = [p for p in [folder / f"{name}.yaml"] if p.is_file()]
        return found + [p for s in sigs for p in sorted(folder.glob(f"{s}*")) if p.is_file()]
    return _tree_files(model_dir / Path(spec.path).parts[0])  # hubert, bert, faster-whisper-<size>


def disk_bytes(spec: ModelSpec, model_dir: str | Path) -> int:
    """Bytes `spec` takes under model_dir now (0 when nothing is there; a model in the HF cache counts 0)."""
    return sum(p.stat().st_size for p in _spec_files(spec, Path(model_dir)))


def partial_bytes(spec: ModelSpec, model_dir: str | Path) -> int:
    """Bytes of huggingface_hub's unfinished files for `spec` (what a resumed download starts from)."""
    root = _local_dir(spec, Path(model_dir)) / ".cache" / "huggingface" / "download"
    if not root.is_dir():
        return 0
    prefix = {"g2pw": spec.files[0], "asr": "", "demucs": ""}.get(spec.kind, spec.path)
    return sum(
        p.stat().st_size
        for p in root.rglob("*.incomplete")
        if p.is_file() and p.relative_to(root).as_posix().startswith(prefix)
    )


def human_bytes(n: float) -> str:
    """1234567 -> "1.2 MB" (decimal units, as the size hints)."""
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} GB"


# ------------------------------------------------------------------------------ preferred choices


def preferred_present(default: str, choices: Sequence[str], is_present: Callable[[str], bool]) -> str:
    """`default` when it is present or nothing is; else the first present choice (in `choices`' order).

    So a stage's model dropdown starts on a model that can run here without a download.
    """
    if is_present(default):
        return default
    return next((c for c in choices if c != default and is_present(c)), default)


def _demucs_present(name: str, model_dir: Path) -> bool:
    """Whether demucs model `name` loads without a download: model_dir/demucs, else the HF cache."""
    if demucs_models.local_status(name, model_dir / "demucs")[0]:
        return True
    try:
        return demucs_models._hf_cached(name, download=False) is not None
    except demucs_models.ModelLoadError:  # an unreadable cached copy is not a usable one
        return False


def preferred_demucs_model(model_dir: str | Path) -> str:
    """The separation model to select: demucs' default, else a built-in one present (folder or HF cache)."""
    return preferred_present(
        demucs_models.DEFAULT_MODEL,
        list(demucs_models.BUILTIN_MODELS),
        lambda name: _demucs_present(name, Path(model_dir)),
    )


def preferred_whisper_model(model_dir: str | Path, local: Sequence[str] = ()) -> str:
    """The faster-whisper model to select: the ASR default, else one present: `local` (names of
    model_dir/faster-whisper-<name>/ folders, any name) first, then the known sizes (folder or HF cache)."""
    choices = list(dict.fromkeys([*local, *asr_models.MODEL_REPOS]))
    return preferred_present(
        asr_models.DEFAULT_MODEL, choices, lambda name: asr_models.model_status(name, model_dir).found
    )


# ------------------------------------------------------------------------------ background downloads


@dataclass
class DownloadJob:
    """One background download: `request` (a row or a group) fetching `names` into `model_dir`."""

    request: str
    names: tuple[str, ...]
    model_dir: Path
    lines: list[str]
    current: str = ""
    state: str = "running"  # running, done, failed
    error: str = ""


class Downloads:
    """The app's background downloads: each runs in a thread of the server, so it outlives the page.

    A row is fetched by one job at a time: a job asked for rows another is fetching leaves those to it.
    huggingface_hub keeps partial files, so a download cut off (server stopped, network lost) resumes.
    """

    def __init__(self, check_hub: bool = True) -> None:
        self._lock = threading.Lock()
        self._jobs: list[DownloadJob] = []
        self._threads: list[threading.Thread] = []
        self.check_hub = check_hub

    def busy(self) -> dict[str, DownloadJob]:
        """Row name -> the running job that fetches it."""
        with self._lock:
            return {n: j for j in self._jobs if j.state == "running" for n in j.names}

    def jobs(self) -> list[DownloadJob]:
        with self._lock:
            return list(self._jobs)

    def running(self) -> bool:
        return any(j.state == "running" for j in self.jobs())

    def start(
        self, request: str, model_dir: str | Path, translate: Callable[[str], str] = str
    ) -> DownloadJob | None:
        """Start fetching `request`'s missing rows; None when all are present or already being fetched.

        Raises ModelDownloadError at once (within HUB_CHECK_TIMEOUT_S) when the hub cannot be reached,
        naming each missing row's folder and the page its files come from.
        """
        model_dir = Path(model_dir)
        specs = [find_spec(n) for n in GROUPS.get(request, (request,))]
        missing = [s for s in specs if not _status(s, model_dir).present]
        why = offline_reason(translate) if (missing and self.check_hub) else None
        if why is not None:
            raise ModelDownloadError(
                " ".join(_offline_message(s, model_dir, why, translate) for s in missing)
            )
        with self._lock:
            taken = {n for j in self._jobs if j.state == "running" for n in j.names}
            names = tuple(s.name for s in missing if s.name not in taken)
            if not names:
                return None
            job = DownloadJob(request, names, model_dir, [])
            self._jobs.append(job)
        thread = threading.Thread(target=self._run, args=(job,), name=f"download-{request}", daemon=True)
        self._threads.append(thread)
        thread.start()
        return job

    def _run(self, job: DownloadJob) -> None:
        try:
            for name in job.names:
                job.current = name
                download(name, job.model_dir, log=job.lines.append, check_hub=False)
            job.state = "done"
        except ModelDownloadError as e:
            job.error, job.state = str(e), "failed"
        except Exception as e:  # noqa: BLE001 - a thread has nobody to raise to: the job says it
            job.error, job.state = f"{type(e).__name__}: {e}", "failed"
        finally:
            job.current = ""

    def wait(self, timeout: float | None = None) -> None:
        """Join every download thread (tests; a server never waits)."""
        for thread in list(self._threads):
            thread.join(timeout)


# ------------------------------------------------------------------------------------------------ CLI


def _format_table(rows: list[ModelStatus], model_dir: Path) -> str:
    width = max(len(r.name) for r in rows)
    lines = [f"models in {model_dir}", f"{'name':<{width}}  status   size     location"]
    for r in rows:
        mark = "present" if r.present else "missing"
        try:
            where = r.path.relative_to(model_dir)
        except ValueError:
            where = r.path
        lines.append(f"{r.name:<{width}}  {mark:<7}  {r.size_hint:<7}  {where}")
    missing = [r for r in rows if not r.present and r.kind in ("gpt", "sovits", "hubert", "bert")]
    if missing:
        lines.append("")
        lines.append(f"To synthesise and fine-tune (v2): {DOWNLOAD_COMMAND} v2 (or the web UI's Models tab)")
        lines.append(
            "The same for v2Pro / v2ProPlus (s1v3, their G/D, the SV model): download v2Pro / v2ProPlus"
        )
        lines.append(
            "v3 / v4 models (s1v3, their G, the vocoder; not yet used to synthesise): download v3 / v4"
        )
    return "\n".join(lines)


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m gpt_sovits.pretrained", description=__doc__.split("\n")[0]
    )
    sub = parser.add_subparsers(dest="command", required=True)
    p_list = sub.add_parser("list", help="the models and whether each is present")
    p_list.add_argument("--model-dir", default=str(DEFAULT_MODEL_DIR))
    groups = " / ".join(GROUPS)
    p_dl = sub.add_parser("download", help=f"fetch a model (or a group: {groups}) from the Hugging Face hub")
    p_dl.add_argument("name", help=f"a name from `list`, or {groups} for all files of that version")
    p_dl.add_argument("--model-dir", default=str(DEFAULT_MODEL_DIR))
    return parser


def main(argv: list[str] | None = None) -> int:
    args = make_parser().parse_args(argv)
    model_dir = Path(args.model_dir)
    if args.command == "list":
        print(_format_table(model_status(model_dir), model_dir))
        return 0
    try:
        download(args.name, model_dir)
    except ModelDownloadError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
