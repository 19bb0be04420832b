"""The `.list` label file: parse, validate, edit (with undo) and save atomically.

A `.list` holds one clip per line: `audio_path|speaker|language|text` (UTF-8, exactly 4 fields, so
the text cannot contain '|'). Languages are the v2 codes zh, ja, en, ko, yue; legacy and upper-case
forms (ZH, JP, jp, JA, EN, KO, YUE, …) are read and normalised (JP/jp -> ja). Audio paths are
absolute or relative to the dataset root (the folder of the .list unless given) and must stay
inside a boundary folder: the dataset root by default (library), the workspace in the web UI, and
in the CLI only the folder given with `--within` (ASR writes absolute paths into another folder).

Nothing is ever lost:
- Malformed lines (wrong field count, '|' in the text) are kept verbatim as `RawLine`s, reported by
  `issues()`, and written back unchanged, in place, on save. Blank lines carry nothing and are dropped.
- Saves are atomic and never overwrite a change made elsewhere: a save first checks that the file
  is still the one this document loaded (SHA-256 of its bytes). When another session or an editor
  saved it meanwhile, the two sets of edits are merged clip by clip (a clip is known by its audio
  path; a malformed line by its text); when both changed the same clip the save is refused with a
  `LabelConflictError` that lists both versions, and `save(prefer="mine" | "theirs")` decides.
- `<list folder>/.history/` keeps earlier versions (`<name>.<stamp>.bak`): the original of each
  session (the version it loaded, `<name>.<stamp>.original.bak`, written at its first save) for
  HISTORY_ORIGINAL_AGE_S (90 days; the newest original always), and the versions each save replaced:
  the newest HISTORY_MIN_VERSIONS (5) always, older ones while younger than HISTORY_MAX_AGE_S (14
  days) and within HISTORY_MAX_BYTES (256 MB) in total, counted newest first. No count limit: however
  many saves a session makes, the text it started from (e.g. the ASR output) stays recoverable.
- Undo keeps the inverse of each edit (old field values, removed lines and their places), never a
  copy of the document, so its memory does not grow with the length of the list.
- Deleting, merging or splitting never deletes audio: originals are kept, or moved to a trash folder
  when asked, and `undo()` brings back the entries and moves trashed audio back.

Split policy: the first part keeps the whole text and the second part gets an empty text flagged
for review (`LabelEntry.review`), because the split point in the text is unknown.

    python -m tools.labels validate FILE.list [--root DIR] [--within DIR]
    python -m tools.labels stats FILE.list [--root DIR] [--within DIR]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from core.audio import DATASET_RATE
from core.errors import UserError
from core.fsutil import (
    PathOutsideRootError,
    atomic_write_text,
    backup_copy,
    move_to_trash,
    resolve_inside,
    unique_path,
)

LANGUAGES: tuple[str, ...] = ("zh", "ja", "en", "ko", "yue")
# Lower-cased legacy spellings -> v2 code; every v2 code maps to itself.
_LANGUAGE_ALIASES = {"zh": "zh", "ja": "ja", "jp": "ja", "en": "en", "ko": "ko", "yue": "yue"}
# Languages whose words are separated by spaces, so merged texts are joined with one.
_SPACED_LANGUAGES = ("en", "ko")
MERGE_SAMPLE_RATE = DATASET_RATE
HISTORY_DIR = ".history"
SORT_KEYS = ("file", "path", "duration", "confidence")
UNDO_LIMIT = 200
HISTORY_MIN_VERSIONS = 5  # replaced versions kept whatever their age and size
HISTORY_MAX_AGE_S = 14 * 86400.0  # older replaced versions are dropped (beyond the minimum)...
HISTORY_MAX_BYTES = 256 * 2**20  # ...and so are those past this total size, counted newest first
HISTORY_ORIGINAL_AGE_S = 90 * 86400.0  # a session's original is kept this long (the newest one always)
PREFER_CHOICES = ("mine", "theirs")


class LabelError(UserError, ValueError):
    """An edit or a file that cannot be accepted (bad language, unknown clip, nothing to merge…)."""


@dataclass(frozen=True)
class ClipConflict:
    """One clip changed both here and elsewhere since the load: its three lines (None: not in that version)."""

    key: str  # the clip's audio path, or the malformed line itself
    base: str | None  # as this document loaded it
    mine: str | None  # in this document
    theirs: str | None  # in the file on disk now


class MixedLanguagesError(LabelError):
    """Clips of different languages were asked to be merged into one line."""

    def __init__(self, languages: list[str]) -> None:
        self.languages = languages
        names = ", ".join(languages[:-1]) + " and " + languages[-1]
        super().__init__(
            f"cannot merge clips in {names}: a merged clip has one language. Set the same language on "
            "the selected clips first, or merge only clips of one language."
        )


class LabelConflictError(LabelError):
    """The file changed elsewhere and both sides changed the same clips; nothing was written."""

    def __init__(self, path: Path, conflicts: list[ClipConflict]) -> None:
        self.path = path
        self.conflicts = conflicts
        shown = "; ".join(f"{c.key}: mine {c.mine!r}, theirs {c.theirs!r}" for c in conflicts[:5])
        more = f" (and {len(conflicts) - 5} more)" if len(conflicts) > 5 else ""
        super().__init__(
            f"{path.name} was changed elsewhere since it was loaded, and {len(conflicts)} clip(s) were "
            f"changed both there and here: {shown}{more}; keep mine, take theirs, or load it again"
        )


def normalize_language(value: str) -> str | None:
    """The v2 code for `value` (any case, legacy JP/jp -> ja), or None when unknown."""
    return _LANGUAGE_ALIASES.get(value.strip().lower())


@dataclass
class LabelEntry:
    """One well-formed line. `language` is the v2 code, or the raw text when it is unknown."""

    path: str
    speaker: str
    language: str
    text: str
    line: int = 0  # 1-based line in the file as last loaded or saved; 0 for a new, unsaved entry
    uid: int = 0  # stable id within the document (survives sorting, filtering and edits)
    review: bool = False  # a person should check it (e.g. the empty second half of a split)

    def to_line(self) -> str:
        return f"{self.path}|{self.speaker}|{self.language}|{self.text}"


@dataclass
class RawLine:
    """A malformed line, kept verbatim so saving never drops it."""

    text: str
    line: int = 0
    uid: int = 0


@dataclass(frozen=True)
class LabelIssue:
    line: int
    severity: str  # "error" | "warning"
    message: str
    uid: int | None = None

    def __str__(self) -> str:
        where = f"line {self.line}" if self.line else "new entry"
        return f"{where}: {self.severity}: {self.message}"


@dataclass(frozen=True)
class AsrScore:
    """Per-clip ASR confidence from the `X.asr.jsonl` sidecar."""

    avg_logprob: float | None = None
    no_speech_prob: float | None = None
    compression_ratio: float | None = None
    language: str | None = None
    language_probability: float | None = None
    duration: float | None = None

    def doubt(self) -> tuple[float, float]:
        """Sort key: most doubtful first (lowest avg_logprob, then highest no_speech_prob)."""
        lp = self.avg_logprob if self.avg_logprob is not None else 0.0
        ns = self.no_speech_prob if self.no_speech_prob is not None else 0.0
        return (lp, -ns)


@dataclass
class _UndoStep:
    """The inverse of one edit: old field values, the items it removed (with their places), the ones it added.

    Its size depends on the edit, never on the length of the list.
    """

    label: str = ""
    fields: list[tuple[int, str, Any]] = field(default_factory=list)  # (uid, attribute, old value)
    removed: list[tuple[int, LabelEntry | RawLine]] = field(default_factory=list)  # (index, item), in order
    added: list[int] = field(default_factory=list)  # uids of the items the edit inserted
    trashed: list[tuple[Path, Path]] = field(default_factory=list)  # (original place, place in trash)
    created: list[Path] = field(default_factory=list)  # audio files this edit wrote
    label: str = ""


def sidecar_path(list_path: str | Path) -> Path:
    """`X.list` -> `X.asr.jsonl` (written by the ASR stage next to the list)."""
    p = Path(list_path)
    return p.with_name(p.stem + ".asr.jsonl")


def load_sidecar(list_path: str | Path) -> dict[str, AsrScore]:
    """ASR scores keyed by the path string used in the list; {} when there is no sidecar."""
    path = sidecar_path(list_path)
    if not path.is_file():
        return {}
    scores: dict[str, AsrScore] = {}
    for raw in path.read_text(encoding="utf-8").splitlines():
        if not raw.strip():
            continue
        try:
            obj = json.loads(raw)
        except json.JSONDecodeError:
            continue  # a damaged sidecar line only costs that clip its confidence column
        if not isinstance(obj, dict) or "path" not in obj:
            continue
        fields = {k: obj.get(k) for k in AsrScore.__dataclass_fields__}
        scores[str(obj["path"])] = AsrScore(**fields)
    return scores


class LabelDocument:
    """A loaded `.list`: its lines (entries and kept malformed lines), the ASR sidecar and undo."""

    def __init__(
        self,
        items: list[LabelEntry | RawLine],
        path: str | Path | None = None,
        root: str | Path | None = None,
        trash_dir: str | Path | None = None,
        scores: dict[str, AsrScore] | None = None,
        boundary: str | Path | None = None,
        loaded_text: str | None = None,
    ) -> None:
        self.path = Path(path).resolve() if path else None
        if root is None:
            root = self.path.parent if self.path else Path.cwd()
        self.root = Path(root).resolve()  # base of relative audio paths
        # Audio must stay inside this folder (the web UI passes the workspace, which it serves).
        self.boundary = Path(boundary).resolve() if boundary else self.root
        self.trash_dir = Path(trash_dir) if trash_dir else self.root / ".trash"
        self.items = items
        self.scores = scores or {}
        self._undo: list[_UndoStep] = []
        self._next_uid = 1
        self._durations: dict[str, float | None] = {}
        for item in self.items:
            item.uid = self._new_uid()
        # The file's text as this document last loaded or saved it: the base of a merge on save.
        self._base_text = loaded_text
        self._base_digest = _digest(loaded_text) if loaded_text is not None else None
        self._original_kept = False  # the session's original is written into .history/ at its first save
        self.conflicts: list[ClipConflict] = []  # of the last refused save; empty once a save succeeds
        self.merged_in = 0  # clips changed elsewhere that the last save took in

    # ---------- reading ----------

    def _new_uid(self) -> int:
        uid = self._next_uid
        self._next_uid += 1
        return uid

    @property
    def entries(self) -> list[LabelEntry]:
        return [i for i in self.items if isinstance(i, LabelEntry)]

    @property
    def malformed(self) -> list[RawLine]:
        return [i for i in self.items if isinstance(i, RawLine)]

    def entry(self, uid: int) -> LabelEntry:
        for item in self.items:
            if isinstance(item, LabelEntry) and item.uid == uid:
                return item
        raise LabelError(f"no clip with id {uid} in this list (it may have been deleted or merged)")

    def resolve_audio(self, entry: LabelEntry) -> Path:
        """The audio file of `entry`; raises PathOutsideRootError when it leaves the dataset root."""
        if not entry.path.strip():
            raise LabelError(f"line {entry.line}: the audio path is empty")
        return self._resolve(entry.path)

    def _resolve(self, path: str) -> Path:
        candidate = Path(path)
        return resolve_inside(self.boundary, candidate if candidate.is_absolute() else self.root / candidate)

    def score(self, entry: LabelEntry) -> AsrScore | None:
        return self.scores.get(entry.path)

    def duration(self, entry: LabelEntry) -> float | None:
        """Clip length in seconds (cached), or None when the audio is missing or unreadable."""
        if entry.path not in self._durations:
            from core.audio import audio_info

            try:
                self._durations[entry.path] = audio_info(self.resolve_audio(entry)).duration
            except Exception:  # missing/outside/unreadable: reported by issues(), not here
                self._durations[entry.path] = None
        return self._durations[entry.path]

    def issues(self, check_files: bool = True) -> list[LabelIssue]:
        """Every problem, one per finding, in file order."""
        found: list[LabelIssue] = []
        for item in self.items:
            if isinstance(item, RawLine):
                found.append(LabelIssue(item.line, "error", field_count_message(item.text), item.uid))
                continue
            found.extend(self._entry_issues(item, check_files))
        return found

    def _entry_issues(self, e: LabelEntry, check_files: bool) -> list[LabelIssue]:
        out: list[LabelIssue] = []

        def add(severity: str, message: str) -> None:
            out.append(LabelIssue(e.line, severity, message, e.uid))

        if not e.path.strip():
            add("error", "empty audio path")
        else:
            try:
                audio = self._resolve(e.path)
            except PathOutsideRootError:
                add("error", f"audio path {e.path} is outside the dataset root {self.boundary}")
            else:
                if check_files and not audio.is_file():
                    add("warning", f"audio file not found: {audio}")
        if not e.text.strip():
            add("error", "empty text" + (" (needs review after a split)" if e.review else ""))
        if e.language not in LANGUAGES:
            add("error", f"unknown language {e.language!r}; expected one of {', '.join(LANGUAGES)}")
        return out

    def flagged_uids(self) -> set[int]:
        flagged = {i.uid for i in self.issues() if i.uid is not None}
        return flagged | {e.uid for e in self.entries if e.review}

    # ---------- search and sort ----------

    def filter(
        self, query: str = "", language: str | None = None, flagged_only: bool = False
    ) -> list[LabelEntry]:
        """Entries whose text or path contains `query` (case-insensitive), of `language`, flagged."""
        q = query.strip().lower()
        flagged = self.flagged_uids() if flagged_only else set()
        out = []
        for e in self.entries:
            if q and q not in e.text.lower() and q not in e.path.lower():
                continue
            if language and e.language != language:
                continue
            if flagged_only and e.uid not in flagged:
                continue
            out.append(e)
        return out

    def sort(self, entries: list[LabelEntry], key: str = "file") -> list[LabelEntry]:
        """Sort by `file` order, `path`, `duration` (short first) or ASR `confidence` (doubtful first)."""
        if key == "file":
            return list(entries)
        if key == "path":
            return sorted(entries, key=lambda e: e.path)
        if key == "duration":
            # Unreadable clips (no duration) first: they need attention.
            return sorted(entries, key=lambda e: _or(self.duration(e), -1.0))
        if key == "confidence":
            # Clips without a score go last; stable, so file order breaks ties.
            return sorted(entries, key=self._confidence_key)
        raise LabelError(f"unknown sort key {key!r}; expected one of {', '.join(SORT_KEYS)}")

    def _confidence_key(self, e: LabelEntry) -> tuple[int, float, float]:
        s = self.score(e)
        return (1, 0.0, 0.0) if s is None else (0, *s.doubt())

    # ---------- writing ----------

    def to_text(self) -> str:
        lines = [i.to_line() if isinstance(i, LabelEntry) else i.text for i in self.items]
        return "".join(line + "\n" for line in lines)

    def save(self, path: str | Path | None = None, prefer: str | None = None) -> Path:
        """Write atomically, after keeping the previous version (and the session's original) in `.history/`.

        When the file changed on disk since this document loaded it, the changes made there are merged
        in first (see `merge_concurrent`); `prefer` ("mine" | "theirs") settles clips changed on both
        sides, which otherwise raise `LabelConflictError` (nothing is written then).
        """
        target = Path(path) if path else self.path
        if target is None:
            raise LabelError("this list has no file name yet; give a path to save it")
        same_file = self.path is not None and Path(target).resolve() == self.path
        on_disk = read_list_text(target) if Path(target).is_file() else None
        changed_elsewhere = same_file and on_disk is not None and self._differs_from_base(on_disk)
        merged_in = self.merge_concurrent(on_disk, prefer) if changed_elsewhere else 0
        self._keep_history(Path(target), on_disk, same_file)
        text = self.to_text()
        atomic_write_text(target, text)
        for n, item in enumerate(self.items, start=1):
            item.line = n
        self.path = Path(target).resolve()
        self._base_text, self._base_digest = text, _digest(text)
        self.conflicts, self.merged_in = [], merged_in
        return self.path

    def _differs_from_base(self, on_disk: str) -> bool:
        return self._base_digest is not None and _digest(on_disk) != self._base_digest

    def merge_concurrent(self, theirs_text: str, prefer: str | None = None) -> int:
        """Take in the clips changed in `theirs_text` (the file now) since the load; returns how many.

        Three versions are compared clip by clip: the base (as loaded), mine (this document) and
        theirs. A clip changed only there is taken from there, one changed only here stays; one changed
        differently on both sides is a conflict: `prefer` settles it, else `LabelConflictError`.
        """
        if prefer not in (None, *PREFER_CHOICES):
            raise LabelError(f"prefer must be one of {', '.join(PREFER_CHOICES)}, not {prefer!r}")
        base = {k: _line(i) for k, i in _keyed(parse_items(self._base_text or "")).items()}
        theirs = _keyed(parse_items(theirs_text))
        mine = _keyed(self.items)
        take: list[tuple[str, int]] = []
        conflicts: list[ClipConflict] = []
        for key in dict.fromkeys([*base, *mine, *theirs]):
            b, m, t = base.get(key), _line(mine.get(key)), _line(theirs.get(key))
            if m == t or t == b:
                continue  # no change there, or the same change on both sides
            if m == b or prefer == "theirs":
                take.append(key)
            elif prefer is None:
                conflicts.append(ClipConflict(key[0].removeprefix("\0"), b, m, t))
        if conflicts:
            self.conflicts = conflicts
            raise LabelConflictError(self.path or Path("list"), conflicts)
        self._take_theirs(set(take), mine, theirs)
        return len(take)

    def _take_theirs(self, take: set[tuple[str, int]], mine: dict, theirs: dict) -> None:
        """Replace, drop or insert the clips in `take` as they are in `theirs` (uids kept for replaced ones)."""
        replaced = {mine[k].uid: theirs.get(k) for k in take if k in mine}
        after: dict[int | None, list[LabelEntry | RawLine]] = {}  # new items, after the uid of their anchor
        anchor: int | None = None
        for key, item in theirs.items():  # in their file order
            if key in take and key not in mine:
                item.uid = self._new_uid()
                after.setdefault(anchor, []).append(item)
            elif key in mine:
                anchor = mine[key].uid
        out = list(after.get(None, []))
        for item in self.items:
            if item.uid in replaced:
                new = replaced[item.uid]
                if new is None:
                    continue  # deleted there
                new.uid = item.uid
                item = new
            out.append(item)
            out.extend(after.get(item.uid, []))
        self.items = out

    def _keep_history(self, target: Path, on_disk: str | None, same_file: bool) -> None:
        """The session's original (first save only) and the version being replaced go into `.history/`."""
        history = target.parent / HISTORY_DIR
        replaced_is_original = False
        if same_file and not self._original_kept and self._base_text is not None:
            history.mkdir(parents=True, exist_ok=True)
            stamp = time.strftime("%Y%m%d-%H%M%S")
            original = unique_path(history / f"{target.name}.{stamp}.original.bak")
            with open(original, "xb") as f:  # the bytes loaded, even when the file changed since
                f.write(self._base_text.encode("utf-8"))
            self._original_kept = True
            replaced_is_original = on_disk == self._base_text
        if on_disk is not None and not replaced_is_original:
            backup_copy(target, history, keep=sys.maxsize)  # pruned below by age and size instead
        if history.is_dir():
            prune_history(history, target.name)

    # ---------- edits ----------

    def _push(self, label: str) -> _UndoStep:
        step = _UndoStep(label=label)
        self._undo.append(step)
        # Steps hold inverse edits (small), but a long session still should not grow without end.
        del self._undo[:-UNDO_LIMIT]
        return step

    def _removed(self, uids: set[int]) -> list[tuple[int, LabelEntry | RawLine]]:
        """(index, item) of the items in `uids`, in file order: what undo puts back."""
        return [(n, item) for n, item in enumerate(self.items) if item.uid in uids]

    @property
    def can_undo(self) -> bool:
        return bool(self._undo)

    def set_text(self, uid: int, text: str) -> bool:
        """Replace a clip's text; returns False when nothing changed (no undo step then)."""
        text = text.replace("\r", " ").replace("\n", " ").strip()
        if "|" in text:
            raise LabelError("the text cannot contain '|' (it separates the fields of a .list line)")
        e = self.entry(uid)
        if e.text == text:
            return False
        step = self._push("edit text")
        step.fields += [(uid, "text", e.text), (uid, "review", e.review)]
        e.text = text
        e.review = False
        return True

    def set_language(self, uid: int, language: str) -> bool:
        code = normalize_language(language)
        if code is None:
            raise LabelError(f"unknown language {language!r}; expected one of {', '.join(LANGUAGES)}")
        e = self.entry(uid)
        if e.language == code:
            return False
        step = self._push("edit language")
        step.fields.append((uid, "language", e.language))
        e.language = code
        return True

    def _trash(self, step: _UndoStep, audio: Path) -> None:
        if audio.is_file():
            step.trashed.append((audio, move_to_trash(audio, self.trash_dir)))

    def delete(self, uids: list[int], trash_audio: bool = False) -> int:
        """Remove clips from the list; their audio moves to the trash only when `trash_audio`."""
        targets = [self.entry(u) for u in dict.fromkeys(uids)]
        if not targets:
            raise LabelError("select at least one clip to delete")
        audios = [self.resolve_audio(e) for e in targets] if trash_audio else []
        step = self._push("delete")
        gone = {e.uid for e in targets}
        step.removed = self._removed(gone)
        self.items = [i for i in self.items if i.uid not in gone]
        for audio in audios:
            self._trash(step, audio)
        return len(targets)

    def _store_path(self, like: LabelEntry, audio: Path) -> str:
        """Write a new clip's path in the style of `like`: absolute, or relative to the root."""
        if Path(like.path).is_absolute():
            return str(audio)
        return Path(os.path.relpath(audio, self.root)).as_posix()

    def merge(
        self,
        uids: list[int],
        silence: float = 0.3,
        trash_originals: bool = False,
        sample_rate: int = MERGE_SAMPLE_RATE,
    ) -> LabelEntry:
        """Join clips (in file order) into one new wav with `silence` seconds between them.

        The new file is `<first stem>_merged.wav` beside the first clip (int16, `sample_rate`);
        texts are joined with a space for en/ko and with nothing for zh/ja/yue. Clips of different
        languages are refused (`MixedLanguagesError`, naming them): one label line has one language, and
        keeping the first would send the other language's text through the wrong text frontend
        (the formatter then turns it into noise). Set the same language on them first.
        """
        from core.audio import load_audio, save_wav

        chosen = set(uids)
        targets = [i for i in self.items if isinstance(i, LabelEntry) and i.uid in chosen]
        if len(targets) < 2:
            raise LabelError("select at least two clips to merge")
        if silence < 0:
            raise LabelError("the silence between merged clips cannot be negative")
        languages = list(dict.fromkeys(e.language for e in targets))
        if len(languages) > 1:
            raise MixedLanguagesError(languages)
        audios = [self.resolve_audio(e) for e in targets]
        gap = np.zeros(int(round(silence * sample_rate)), dtype=np.float32)
        parts: list[np.ndarray] = []
        for n, audio in enumerate(audios):
            if n:
                parts.append(gap)
            parts.append(load_audio(audio, sample_rate)[0])  # (samples,)
        first = targets[0]
        out = unique_path(audios[0].with_name(f"{audios[0].stem}_merged.wav"))
        save_wav(out, np.concatenate(parts), sample_rate)
        step = self._push("merge")
        step.created.append(out)
        step.removed = self._removed({e.uid for e in targets})
        joiner = " " if first.language in _SPACED_LANGUAGES else ""
        merged = LabelEntry(
            path=self._store_path(first, out),
            speaker=first.speaker,
            language=first.language,
            text=joiner.join(e.text.strip() for e in targets if e.text.strip()),
            uid=self._new_uid(),
        )
        step.added.append(merged.uid)
        drop = {e.uid for e in targets[1:]}
        self.items = [merged if i.uid == first.uid else i for i in self.items if i.uid not in drop]
        if trash_originals:
            for audio in audios:
                self._trash(step, audio)
        return merged

    def split(self, uid: int, at: float, trash_original: bool = False) -> tuple[LabelEntry, LabelEntry]:
        """Cut a clip at `at` seconds into `<stem>_a.wav` and `<stem>_b.wav` (same rate, int16).

        The first part keeps the text; the second gets an empty text flagged for review.
        """
        from core.audio import load_audio, save_wav

        e = self.entry(uid)
        audio_path = self.resolve_audio(e)
        audio, sr = load_audio(audio_path)  # (samples,)
        cut = int(round(at * sr))
        if cut <= 0 or cut >= audio.shape[0]:
            raise LabelError(
                f"the split time {at:g} s must be inside the clip (0 – {audio.shape[0] / sr:.2f} s)"
            )
        out_a = unique_path(audio_path.with_name(f"{audio_path.stem}_a.wav"))
        save_wav(out_a, audio[:cut], sr)
        out_b = unique_path(audio_path.with_name(f"{audio_path.stem}_b.wav"))
        save_wav(out_b, audio[cut:], sr)
        step = self._push("split")
        step.created.extend([out_a, out_b])
        a = LabelEntry(self._store_path(e, out_a), e.speaker, e.language, e.text, uid=self._new_uid())
        b = LabelEntry(
            self._store_path(e, out_b), e.speaker, e.language, "", uid=self._new_uid(), review=True
        )
        pos = self.items.index(e)
        step.removed, step.added = [(pos, e)], [a.uid, b.uid]
        self.items[pos : pos + 1] = [a, b]
        if trash_original:
            self._trash(step, audio_path)
        return a, b

    def undo(self) -> str:
        """Undo the last edit: restore the entries, move trashed audio back, trash audio it wrote."""
        if not self._undo:
            raise LabelError("nothing to undo")
        step = self._undo.pop()
        if step.added:
            added = set(step.added)
            self.items = [i for i in self.items if i.uid not in added]
        for index, item in step.removed:  # ascending: each goes back to its place
            self.items.insert(min(index, len(self.items)), item)
        for uid, attribute, old in reversed(step.fields):
            setattr(self.entry(uid), attribute, old)
        for original, trashed in reversed(step.trashed):
            if trashed.is_file() and not original.exists():
                shutil.move(str(trashed), str(original))
        for created in step.created:
            if created.is_file():
                move_to_trash(created, self.trash_dir)
        return step.label


def _or(value: float | None, default: float) -> float:
    return default if value is None else value


def field_count_message(raw: str) -> str:
    n = raw.count("|") + 1
    if n > 4:
        return f"found {n} fields instead of 4: the text must not contain '|'"
    return f"wrong field count: expected 4 fields (path|speaker|language|text), found {n}"


def parse_list(
    text: str,
    path: str | Path | None = None,
    root: str | Path | None = None,
    trash_dir: str | Path | None = None,
    boundary: str | Path | None = None,
) -> LabelDocument:
    """Parse `.list` text; malformed lines become `RawLine`s (see `LabelDocument.issues`)."""
    scores = load_sidecar(path) if path else {}
    return LabelDocument(
        parse_items(text),
        path=path,
        root=root,
        trash_dir=trash_dir,
        scores=scores,
        boundary=boundary,
        loaded_text=text,
    )


def parse_items(text: str) -> list[LabelEntry | RawLine]:
    """The lines of `.list` text: entries, and malformed lines kept as `RawLine`s (blank lines dropped)."""
    if text.startswith("\ufeff"):
        text = text[1:]  # a BOM from Windows editors is not part of the first path
    items: list[LabelEntry | RawLine] = []
    for n, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip():
            continue
        fields = raw.split("|")
        if len(fields) != 4:
            items.append(RawLine(raw, line=n))
            continue
        audio, speaker, language, content = fields
        code = normalize_language(language)
        items.append(
            LabelEntry(audio.strip(), speaker.strip(), code or language.strip(), content.strip(), line=n)
        )
    return items


def _line(item: LabelEntry | RawLine | None) -> str | None:
    if item is None:
        return None
    return item.to_line() if isinstance(item, LabelEntry) else item.text


def _keyed(items: list[LabelEntry | RawLine]) -> dict[tuple[str, int], LabelEntry | RawLine]:
    """Items by (clip key, occurrence): the audio path for an entry, the line itself for a malformed one."""
    seen: Counter[str] = Counter()
    out: dict[tuple[str, int], LabelEntry | RawLine] = {}
    for item in items:
        key = item.path if isinstance(item, LabelEntry) else "\0" + item.text
        out[(key, seen[key])] = item
        seen[key] += 1
    return out


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def read_list_text(path: str | Path) -> str:
    """A `.list` file's text, byte for byte (no newline translation); LabelError when it is not UTF-8."""
    path = Path(path)
    try:
        return path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as e:
        raise LabelError(f"{path.name} is not UTF-8 text ({e}); re-save it as UTF-8") from e


# `<name>.<stamp>[ (n)][.original[ (n)]].bak`, as `backup_copy` and `_keep_history` name them.
_HISTORY_NAME = r"\.\d{8}-\d{6}(?: \(\d+\))?(?P<original>\.original(?: \(\d+\))?)?\.bak"


def prune_history(history_dir: str | Path, name: str, now: float | None = None) -> list[Path]:
    """Drop the versions of `name` in `history_dir` that the policy (module docstring) lets go; returns them."""
    now = time.time() if now is None else now
    pattern = re.compile(re.escape(name) + _HISTORY_NAME)
    versions = []
    for p in Path(history_dir).iterdir():
        m = pattern.fullmatch(p.name)
        if m and p.is_file():
            st = p.stat()
            versions.append((st.st_mtime, st.st_size, m["original"] is not None, p))
    versions.sort(key=lambda v: v[0], reverse=True)  # newest first
    originals = [v for v in versions if v[2]]
    replaced = [v for v in versions if not v[2]]
    drop = [p for mtime, _, _, p in originals[1:] if now - mtime > HISTORY_ORIGINAL_AGE_S]
    total = 0
    for n, (mtime, size, _, p) in enumerate(replaced):
        total += size
        if n >= HISTORY_MIN_VERSIONS and (now - mtime > HISTORY_MAX_AGE_S or total > HISTORY_MAX_BYTES):
            drop.append(p)
    for p in drop:
        p.unlink(missing_ok=True)
    return drop


def load_list(
    path: str | Path,
    root: str | Path | None = None,
    trash_dir: str | Path | None = None,
    boundary: str | Path | None = None,
) -> LabelDocument:
    """Read a `.list` file (UTF-8) with its ASR sidecar when present.

    Relative audio paths are read against `root` (default: the list's folder); every audio path
    must stay inside `boundary` (default: `root`).
    """
    path = Path(path)
    if not path.is_file():
        raise LabelError(f"label file not found: {path}")
    text = read_list_text(path)
    return parse_list(text, path=path, root=root, trash_dir=trash_dir, boundary=boundary)


@dataclass(frozen=True)
class LabelStats:
    entries: int
    malformed: int
    speakers: dict[str, int]
    languages: dict[str, int]
    total_chars: int
    total_duration: float  # seconds, over the readable clips
    unreadable: int

    def lines(self) -> list[str]:
        return [
            f"clips: {self.entries} (malformed lines: {self.malformed})",
            f"speakers: {', '.join(f'{k} ({v})' for k, v in self.speakers.items()) or '-'}",
            f"languages: {', '.join(f'{k} ({v})' for k, v in self.languages.items()) or '-'}",
            f"text: {self.total_chars} characters",
            f"audio: {self.total_duration:.1f} s ({self.unreadable} missing or unreadable)",
        ]


def stats(doc: LabelDocument) -> LabelStats:
    durations = [doc.duration(e) for e in doc.entries]
    return LabelStats(
        entries=len(doc.entries),
        malformed=len(doc.malformed),
        speakers=dict(Counter(e.speaker for e in doc.entries).most_common()),
        languages=dict(Counter(e.language for e in doc.entries).most_common()),
        total_chars=sum(len(e.text) for e in doc.entries),
        total_duration=float(sum(d for d in durations if d is not None)),
        unreadable=sum(d is None for d in durations),
    )


def add_within_argument(parser: argparse.ArgumentParser) -> None:
    """`--within DIR` for the CLIs that read a .list: a boundary only when asked for one."""
    parser.add_argument(
        "--within",
        default=Path("/"),
        type=Path,
        metavar="DIR",
        help="refuse audio paths outside DIR (default: none; lists made by ASR hold absolute paths)",
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tools.labels", description="Validate or summarise a .list label file."
    )
    parser.add_argument("command", choices=("validate", "stats"))
    parser.add_argument("list_file", metavar="FILE.list")
    parser.add_argument(
        "--root", default=None, help="dataset root for relative audio paths (default: the list's folder)"
    )
    add_within_argument(parser)
    parser.add_argument("--events", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    try:
        doc = load_list(args.list_file, root=args.root, boundary=args.within)
    except LabelError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if args.command == "stats":
        print("\n".join(stats(doc).lines()))
        return 0
    found = doc.issues()
    for issue in found:
        print(f"{args.list_file}:{issue}")
    errors = sum(i.severity == "error" for i in found)
    print(f"{len(doc.entries)} clips, {errors} errors, {len(found) - errors} warnings")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
