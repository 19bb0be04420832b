"""An experiment folder in the reference's layout (its ``logs/<exp>``), and its two tables.

    <exp>/2-name2text.txt        name \\t phones (space-joined) \\t word2ph \\t norm_text, one line per clip
    <exp>/3-bert/<name>.pt       BERT features (1024, n_phones), Chinese clips only
    <exp>/4-cnhubert/<name>.pt   HuBERT features (1, 768, T) at 50 Hz
    <exp>/5-wav32k/<name>        the clip at 32 kHz, int16 wav (the name keeps its extension)
    <exp>/6-name2semantic.tsv    header ``item_name\\tsemantic_audio``, then name \\t tokens (space-joined)
    <exp>/7-sv_cn/<name>.pt      speaker-verification embedding (1, 20480), v2Pro/v2ProPlus experiments only

``name`` is the basename of the clip's audio path, as the reference uses it. The reference writes
word2ph as Python's ``str(list)`` (``[2, 2, 1]``) for Chinese and ``None`` for other languages, and
does not store the language at all (its trainers tell Chinese clips by the presence of a
``3-bert`` file). We write the same; the language of each clip is kept in our own sidecar
(``prepare_manifest.json``, see ``gpt_sovits.data.prepare``) so files stay interchangeable with the reference.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from core.errors import UserError
from core.fsutil import atomic_write_text

NAME2TEXT = "2-name2text.txt"
BERT_DIR = "3-bert"
HUBERT_DIR = "4-cnhubert"
WAV_DIR = "5-wav32k"
NAME2SEMANTIC = "6-name2semantic.tsv"
SV_DIR = "7-sv_cn"
MANIFEST = "prepare_manifest.json"
SEMANTIC_HEADER = "item_name\tsemantic_audio"


class ExperimentFormatError(UserError, ValueError):
    """A line of an experiment table that cannot be read (the message names the file and line)."""


@dataclass(frozen=True)
class ExperimentPaths:
    """Where each part of a formatted experiment lives."""

    root: Path
    name2text: Path = field(init=False)
    bert_dir: Path = field(init=False)
    hubert_dir: Path = field(init=False)
    wav_dir: Path = field(init=False)
    name2semantic: Path = field(init=False)
    sv_dir: Path = field(init=False)
    manifest: Path = field(init=False)

    def __post_init__(self) -> None:
        root = Path(self.root)
        object.__setattr__(self, "root", root)
        object.__setattr__(self, "name2text", root / NAME2TEXT)
        object.__setattr__(self, "bert_dir", root / BERT_DIR)
        object.__setattr__(self, "hubert_dir", root / HUBERT_DIR)
        object.__setattr__(self, "wav_dir", root / WAV_DIR)
        object.__setattr__(self, "name2semantic", root / NAME2SEMANTIC)
        object.__setattr__(self, "sv_dir", root / SV_DIR)
        object.__setattr__(self, "manifest", root / MANIFEST)

    @classmethod
    def of(cls, root: str | Path) -> ExperimentPaths:
        return cls(Path(root))

    def bert(self, name: str) -> Path:
        """``3-bert/<name>.pt`` (the name keeps its audio extension: ``a.wav`` -> ``a.wav.pt``)."""
        return self.bert_dir / f"{name}.pt"

    def hubert(self, name: str) -> Path:
        return self.hubert_dir / f"{name}.pt"

    def wav(self, name: str) -> Path:
        return self.wav_dir / name

    def sv(self, name: str) -> Path:
        """``7-sv_cn/<name>.pt``: the clip's SV embedding (1, 20480) fp32 (v2Pro/v2ProPlus)."""
        return self.sv_dir / f"{name}.pt"


@dataclass(frozen=True)
class PhoneEntry:
    """One row of ``2-name2text.txt``.

    ``word2ph`` (phones per character of ``norm_text``) exists for Chinese only. ``language`` is not part
    of the reference file; it is None when read back unless a language map is passed to the reader.
    """

    name: str
    phones: list[str]
    word2ph: list[int] | None
    norm_text: str
    language: str | None = None


# --------------------------------------------------------------------------------------------- name2text


def _check_field(value: str, what: str, name: str) -> None:
    if "\t" in value or "\n" in value or "\r" in value:
        raise ExperimentFormatError(f"{what} of {name!r} contains a tab or line break: {value!r}")


def format_name2text_line(entry: PhoneEntry) -> str:
    """The reference's line: ``name\\tphones\\t[w2p list] or None\\tnorm_text`` (no line break)."""
    _check_field(entry.name, "the name", entry.name)
    _check_field(entry.norm_text, "the normalised text", entry.name)
    if not entry.name:
        raise ExperimentFormatError("an entry has an empty name")
    for p in entry.phones:
        if not p or any(c.isspace() for c in p):
            raise ExperimentFormatError(f"phone {p!r} of {entry.name!r} is empty or contains whitespace")
    word2ph = "None" if entry.word2ph is None else str([int(n) for n in entry.word2ph])
    return f"{entry.name}\t{' '.join(entry.phones)}\t{word2ph}\t{entry.norm_text}"


def _parse_word2ph(text: str, where: str) -> list[int] | None:
    text = text.strip()
    if text in ("", "None"):
        return None
    try:
        if text.startswith("["):
            value = ast.literal_eval(text)  # literals only: never evaluates code
        else:  # tolerate a space-joined form
            value = [int(t) for t in text.split()]
    except (ValueError, SyntaxError) as e:
        raise ExperimentFormatError(f"{where}: word2ph {text!r} is not a list of integers") from e
    if not isinstance(value, list) or not all(isinstance(n, int) and not isinstance(n, bool) for n in value):
        raise ExperimentFormatError(f"{where}: word2ph {text!r} is not a list of integers")
    return value


def parse_name2text(
    text: str, source: str = "2-name2text.txt", languages: Mapping[str, str] | None = None
) -> dict[str, PhoneEntry]:
    """Parse the content of a ``2-name2text.txt``; blank lines are ignored, later duplicates win."""
    entries: dict[str, PhoneEntry] = {}
    for lineno, line in enumerate(text.split("\n"), start=1):
        line = line.rstrip("\r")
        if not line.strip():
            continue
        where = f"{source}, line {lineno}"
        parts = line.split("\t")
        if len(parts) != 4:
            raise ExperimentFormatError(
                f"{where}: expected 4 tab-separated fields (name, phones, word2ph, norm_text), got {len(parts)}"
            )
        name, phones, word2ph, norm_text = parts
        if not name:
            raise ExperimentFormatError(f"{where}: the name is empty")
        phone_list = phones.split()
        if not phone_list:
            raise ExperimentFormatError(f"{where}: no phones for {name!r}")
        w2p = _parse_word2ph(word2ph, where)
        if w2p is not None and sum(w2p) != len(phone_list):
            raise ExperimentFormatError(
                f"{where}: word2ph of {name!r} adds up to {sum(w2p)} but there are {len(phone_list)} phones"
            )
        lang = languages.get(name) if languages is not None else None
        entries[name] = PhoneEntry(name, phone_list, w2p, norm_text, lang)
    return entries


def read_name2text(path: str | Path, languages: Mapping[str, str] | None = None) -> dict[str, PhoneEntry]:
    """Read ``2-name2text.txt`` -> {name: PhoneEntry}; raises ExperimentFormatError naming the bad line.

    ``languages`` (name -> language, e.g. from ``read_languages``) fills ``PhoneEntry.language``.
    """
    path = Path(path)
    return parse_name2text(path.read_text(encoding="utf-8"), str(path), languages)


def write_name2text(path: str | Path, entries: Iterable[PhoneEntry]) -> None:
    """Write ``2-name2text.txt`` atomically, one line per entry, ending with a line break as the reference."""
    lines = [format_name2text_line(e) for e in entries]
    atomic_write_text(path, "\n".join(lines) + "\n" if lines else "")


def read_languages(paths: ExperimentPaths) -> dict[str, str]:
    """name -> language of each formatted clip, from our manifest (empty if the folder came from the reference)."""
    import json

    if not paths.manifest.is_file():
        return {}
    try:
        data = json.loads(paths.manifest.read_text(encoding="utf-8"))
        items = data.get("items", {})
        return {
            str(k): str(v["language"]) for k, v in items.items() if isinstance(v, dict) and v.get("language")
        }
    except (ValueError, AttributeError, TypeError):
        return {}


# ----------------------------------------------------------------------------------------- name2semantic


def parse_name2semantic(text: str, source: str = "6-name2semantic.tsv") -> dict[str, list[int]]:
    """Parse a ``6-name2semantic.tsv``: the header line, then ``name\\ttok tok ...`` per clip."""
    out: dict[str, list[int]] = {}
    lines = text.split("\n")
    for lineno, line in enumerate(lines, start=1):
        line = line.rstrip("\r")
        if not line.strip():
            continue
        if lineno == 1 and line == SEMANTIC_HEADER:
            continue
        where = f"{source}, line {lineno}"
        parts = line.split("\t")
        if len(parts) != 2:
            raise ExperimentFormatError(
                f"{where}: expected 2 tab-separated fields (name, tokens), got {len(parts)}"
            )
        name, tokens = parts
        if not name:
            raise ExperimentFormatError(f"{where}: the name is empty")
        try:
            ids = [int(t) for t in tokens.split()]
        except ValueError as e:
            raise ExperimentFormatError(f"{where}: semantic tokens of {name!r} are not integers") from e
        if not ids:
            raise ExperimentFormatError(f"{where}: no semantic tokens for {name!r}")
        out[name] = ids
    return out


def read_name2semantic(path: str | Path) -> dict[str, list[int]]:
    """Read ``6-name2semantic.tsv`` -> {name: tokens}; raises ExperimentFormatError naming the bad line."""
    path = Path(path)
    return parse_name2semantic(path.read_text(encoding="utf-8"), str(path))


def write_name2semantic(
    path: str | Path, rows: Mapping[str, list[int]] | Iterable[tuple[str, list[int]]]
) -> None:
    """Write ``6-name2semantic.tsv`` atomically: header, then one ``name\\ttokens`` line per clip."""
    items = rows.items() if isinstance(rows, Mapping) else rows
    lines = [SEMANTIC_HEADER]
    for name, tokens in items:
        _check_field(name, "the name", name)
        if not name:
            raise ExperimentFormatError("a semantic row has an empty name")
        lines.append(f"{name}\t{' '.join(str(int(t)) for t in tokens)}")
    atomic_write_text(path, "\n".join(lines) + "\n")
