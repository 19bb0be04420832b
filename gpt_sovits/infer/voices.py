"""Saved voices: a named bundle of what a synthesis in one voice needs, reusable from the tab, CLI and API.

A voice is a folder ``<workspace>/voices/<name>/``::

    voice.json      {"format_version": 1, "name", "ref_audio", "aux_refs", "ref_text", "ref_lang",
                     "gpt", "sovits", "settings": {schema knob: value}, "created"}
    ref.<ext>       the reference clip, copied in (the upload it came from may be cleaned away)
    aux-<n>.<ext>   the extra timbre references, copied in

Clip names in voice.json are relative to the voice folder; weight paths are kept as given (absolute, or
relative to the workspace). ``settings`` holds the synthesis knobs of the one schema
(``gpt_sovits.infer.request.SYNTHESIS_PARAMS``) by name; unknown names are dropped on load, so a voice
saved by an older version still loads.

A voice is written into a temp folder beside its final place and renamed into place, so a crash leaves
the old voice or the new one. Saving over an existing voice needs ``overwrite=True`` and moves the old
folder into ``<workspace>/trash/voices/`` first (recoverable); deleting moves it there too.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from core.errors import UserError
from core.fsutil import TEMP_MARKER, atomic_write_text, unique_path
from gpt_sovits.infer.request import SYNTHESIS_PARAMS, knob_values

VOICES_FOLDER = "voices"
VOICE_FILE = "voice.json"
FORMAT_VERSION = 1
NAME_MAX = 64
# Letters of any script, digits, space, _ - . ; not starting with a dot or a space (hidden, temp files).
_NAME = re.compile(r"[^\W_][\w .\-]*", re.UNICODE)
# The knobs a voice keeps: everything the schema has except what is about one text, not the voice.
_NOT_SETTINGS = frozenset({"text_lang", "ref_text", "ref_lang", "seed", "force_tokens"})


class VoiceError(UserError, ValueError):
    """A saved voice cannot be saved, found or used (bad name, missing clip or weights, damaged file)."""


@dataclass(frozen=True)
class Voice:
    """A saved voice as loaded: clip paths resolved inside its folder, weights as stored ("" = default)."""

    name: str
    folder: Path
    ref_audio: Path
    ref_text: str = ""
    ref_lang: str = "zh"
    aux_refs: tuple[Path, ...] = ()
    gpt: str = ""
    sovits: str = ""
    settings: dict[str, Any] = field(default_factory=dict)
    created: float = 0.0

    def values(self) -> dict[str, Any]:
        """The voice as named form values (``ui.inference_helpers.form_from_values`` reads these names)."""
        return {
            **self.settings,
            "ref_audio": str(self.ref_audio),
            "aux_refs": [str(p) for p in self.aux_refs],
            "ref_text": self.ref_text,
            "ref_lang": self.ref_lang,
            "gpt": self.gpt,
            "sovits": self.sovits,
        }


def voices_dir(workspace: str | Path) -> Path:
    return Path(workspace) / VOICES_FOLDER


def check_name(name: str | None) -> str:
    """The voice name, stripped; raises VoiceError saying what a name may hold."""
    cleaned = (name or "").strip()
    if not cleaned:
        raise VoiceError("Give the voice a name.")
    if len(cleaned) > NAME_MAX or not _NAME.fullmatch(cleaned) or cleaned in (".", ".."):
        raise VoiceError(
            f"{cleaned[:80]!r} is not a usable voice name: use at most {NAME_MAX} letters, digits, spaces, "
            "'_', '-' or '.', starting with a letter or digit."
        )
    return cleaned


def settings_of(values: Mapping[str, Any]) -> dict[str, Any]:
    """The synthesis knobs a voice keeps, from named values (a form, flags), coerced to their types."""
    knobs = [p for p in SYNTHESIS_PARAMS if p.name not in _NOT_SETTINGS]
    return {k: v for k, v in knob_values(values, knobs).items() if v is not None}


def _copy_clip(src: Path, folder: Path, stem: str) -> str:
    if not src.is_file():
        raise VoiceError(f"The reference clip {src.name} is not there any more: upload it again.")
    name = stem + (src.suffix.lower() or ".wav")
    shutil.copyfile(src, folder / name)
    return name


def save_voice(
    workspace: str | Path,
    name: str,
    ref_audio: str | Path | None,
    ref_text: str = "",
    ref_lang: str = "zh",
    aux_refs: Iterable[str | Path] = (),
    gpt: str | Path | None = "",
    sovits: str | Path | None = "",
    settings: Mapping[str, Any] | None = None,
    overwrite: bool = False,
) -> Voice:
    """Save (copy the clips into) ``<workspace>/voices/<name>/`` and return the voice as loaded.

    Raises VoiceError for a bad name, a missing clip, or an existing voice when not ``overwrite``; with
    ``overwrite`` the old voice goes to ``<workspace>/trash/voices/`` first.
    """
    name = check_name(name)
    if not ref_audio:
        raise VoiceError("A voice needs a reference clip: upload or record one first.")
    root = voices_dir(workspace)
    final = root / name
    if final.exists() and not overwrite:
        raise VoiceError(f"A voice called {name!r} exists already: choose another name, or overwrite it.")
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{name}.{TEMP_MARKER}", dir=root))
    try:
        record = {
            "format_version": FORMAT_VERSION,
            "name": name,
            "ref_audio": _copy_clip(Path(ref_audio), tmp, "ref"),
            "aux_refs": [_copy_clip(Path(p), tmp, f"aux-{n + 1}") for n, p in enumerate(aux_refs)],
            "ref_text": (ref_text or "").strip(),
            "ref_lang": ref_lang or "zh",
            "gpt": str(gpt or ""),
            "sovits": str(sovits or ""),
            "settings": settings_of(settings or {}),
            "created": time.time(),
        }
        atomic_write_text(tmp / VOICE_FILE, json.dumps(record, ensure_ascii=False, indent=2) + "\n")
        if final.exists():  # overwrite: the old voice stays recoverable in the trash
            _to_trash(final, Path(workspace))
        os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return _read(final, name)


def list_voices(workspace: str | Path) -> list[str]:
    """Names of the saved voices (folders with a voice.json), sorted case-insensitively."""
    root = voices_dir(workspace)
    if not root.is_dir():
        return []
    names = [p.name for p in root.iterdir() if not p.name.startswith(".") and (p / VOICE_FILE).is_file()]
    return sorted(names, key=lambda n: (n.casefold(), n))


def _read(folder: Path, name: str) -> Voice:
    try:
        record = json.loads((folder / VOICE_FILE).read_text(encoding="utf-8"))
        if not isinstance(record, dict) or not record.get("ref_audio"):
            raise ValueError("no reference clip named")
        settings = record.get("settings") or {}
        known = {p.name for p in SYNTHESIS_PARAMS}
        return Voice(
            name=name,
            folder=folder,
            ref_audio=folder / str(record["ref_audio"]),
            ref_text=str(record.get("ref_text") or ""),
            ref_lang=str(record.get("ref_lang") or "zh"),
            aux_refs=tuple(folder / str(p) for p in record.get("aux_refs") or ()),
            gpt=str(record.get("gpt") or ""),
            sovits=str(record.get("sovits") or ""),
            settings=settings_of({k: v for k, v in settings.items() if k in known}),
            created=float(record.get("created") or 0.0),
        )
    except (OSError, ValueError, TypeError, UserError) as e:
        raise VoiceError(
            f"The voice {name!r} cannot be read ({folder / VOICE_FILE}: {e}); save it again."
        ) from e


def load_voice(workspace: str | Path, name: str, check_weights: bool = True) -> Voice:
    """The saved voice ``name``; raises VoiceError when it does not exist or its clip or weights are gone.

    Relative weight paths are resolved against the workspace; "" (the default weights) is kept as it is.
    """
    name = check_name(name)
    folder = voices_dir(workspace) / name
    if not (folder / VOICE_FILE).is_file():
        known = list_voices(workspace)
        hint = f" Saved voices: {', '.join(known)}." if known else " No voice is saved yet."
        raise VoiceError(f"There is no saved voice called {name!r}.{hint}")
    voice = _read(folder, name)
    for clip in (voice.ref_audio, *voice.aux_refs):
        if not clip.is_file():
            raise VoiceError(f"The voice {name!r} lost its clip {clip.name}: save the voice again.")
    if not check_weights:
        return voice
    weights = {}
    for kind, value in (("GPT", voice.gpt), ("SoVITS", voice.sovits)):
        path = Path(value) if not value or Path(value).is_absolute() else Path(workspace) / value
        if value and not path.is_file():
            raise VoiceError(
                f"The voice {name!r} uses {kind} weights {path.name} that are not there any more ({path}): "
                "put the file back, or save the voice again with other weights."
            )
        weights[kind] = str(path) if value else ""
    return replace(voice, gpt=weights["GPT"], sovits=weights["SoVITS"])


def delete_voice(workspace: str | Path, name: str) -> Path:
    """Move the voice into ``<workspace>/trash/voices/`` and return where it went."""
    name = check_name(name)
    folder = voices_dir(workspace) / name
    if not folder.is_dir():
        raise VoiceError(f"There is no saved voice called {name!r}.")
    return _to_trash(folder, Path(workspace))


def _to_trash(folder: Path, workspace: Path) -> Path:
    trash = workspace / "trash" / VOICES_FOLDER
    trash.mkdir(parents=True, exist_ok=True)
    target = unique_path(trash / f"{folder.name}-{time.strftime('%Y%m%d-%H%M%S')}")
    shutil.move(str(folder), str(target))
    return target
