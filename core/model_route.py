"""The one way every missing-model message says how to get the model.

Every loader that can miss a model (HuBERT/BERT folders, the SV model, BigVGAN, G2PW, faster-whisper,
demucs, the pretrained GPT/SoVITS files) ends its message with `download_route(...)`, so a person reads
the same three routes everywhere: the web UI's Models tab, the download command, or the files put in
place by hand (with the page they come from).

It lives in core because those loaders sit below ``gpt_sovits.pretrained`` (the registry that owns the
download itself); ``gpt_sovits.pretrained`` re-exports it and builds its own messages with it. Torch-free
and network-free.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path

PYTHON = ".venv/bin/python"  # the project's interpreter, relative to the repository root
DOWNLOAD_COMMAND = f"{PYTHON} -m gpt_sovits.pretrained download"
DEFAULT_ENDPOINT = "https://huggingface.co"
GSV_REPO = "lj1995/GPT-SoVITS"  # the official pretrained models, in the layout model_dir keeps
# The hub repository of G2PWModel.zip: the account is really named XXXXRT (the reference README links it).
G2PW_REPO = "XXXXRT/GPT-SoVITS-Pretrained"
# i18n keys (the Models tab passes its translator; loaders keep English).
ROUTE = "Open the Models tab, or run `{command}`, or put {files} in {folder} (from {source})."
MANUAL_ROUTE = "Put {files} in {folder} (from {source})."


def hub_endpoint() -> str:
    """The hub's base URL: HF_ENDPOINT when set (a mirror), else huggingface.co."""
    return (os.environ.get("HF_ENDPOINT") or DEFAULT_ENDPOINT).rstrip("/")


def hub_url(repo_id: str, path: str = "", folder: bool = False) -> str:
    """The page of `repo_id` on the hub, of one file in it, or of one of its folders."""
    base = f"{hub_endpoint()}/{repo_id}"
    if not path:
        return base
    return f"{base}/{'tree' if folder else 'blob'}/main/{path}"


def download_command(name: str, model_dir: str | Path | None = None) -> str:
    """`.venv/bin/python -m gpt_sovits.pretrained download NAME [--model-dir DIR]`."""
    command = f"{DOWNLOAD_COMMAND} {name}"
    return f"{command} --model-dir {model_dir}" if model_dir is not None else command


def _files_text(files: Sequence[str]) -> str:
    """ "a", "b or c" -> "a and (b or c)"."""
    parts = [f"({f})" if " or " in f and len(files) > 1 else f for f in files]
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


def download_route(
    name: str,
    files: Sequence[str],
    folder: str | Path,
    source: str,
    model_dir: str | Path | None = None,
    translate: Callable[[str], str] | None = None,
) -> str:
    """The three routes to a missing model, one sentence.

    name: the registry name (or group) the download command takes; files: what goes in `folder` by hand;
    source: the page they come from (`hub_url`); model_dir: the models folder when the command needs it.
    """
    template = translate(ROUTE) if translate else ROUTE
    return template.format(
        command=download_command(name, model_dir), files=_files_text(files), folder=folder, source=source
    )


def manual_route(
    files: Sequence[str], folder: str | Path, source: str, translate: Callable[[str], str] | None = None
) -> str:
    """The by-hand route alone, for when the download itself cannot run (offline)."""
    template = translate(MANUAL_ROUTE) if translate else MANUAL_ROUTE
    return template.format(files=_files_text(files), folder=folder, source=source)
