"""Phone symbol tables of GPT-SoVITS v1 (322 symbols) and v2 (732 symbols).

Phone id = index in the table; S1's phoneme embedding and S2's ``enc_p.text_embedding`` rows follow this
order, so the lists in ``data/symbols_v*.json`` are the reference tables verbatim, never re-sorted.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

from gpt_sovits.text.errors import UnknownVersionError

_DATA = Path(__file__).parent / "data"

# Punctuation phones shared by the Chinese and English frontends (reference order).
PUNCTUATION: tuple[str, ...] = ("!", "?", "…", ",", ".", "-")
UNK = "UNK"
VERSIONS = ("v1", "v2")


def _check_version(version: str) -> str:
    # v2Pro/v2ProPlus models use the v2 table.
    if version in ("v2Pro", "v2ProPlus"):
        return "v2"
    if version not in VERSIONS:
        raise UnknownVersionError(
            f"Unknown symbol-table version {version!r}: expected one of {', '.join(VERSIONS)} (or v2Pro/v2ProPlus)."
        )
    return version


@cache
def get_symbols(version: str = "v2") -> tuple[str, ...]:
    """The ordered symbol table of a model version ("v1" or "v2")."""
    version = _check_version(version)
    with open(_DATA / f"symbols_{version}.json", encoding="utf-8") as f:
        return tuple(json.load(f))


@cache
def symbol_to_id(version: str = "v2") -> dict[str, int]:
    """Mapping phone -> id for a model version."""
    return {s: i for i, s in enumerate(get_symbols(version))}


def cleaned_text_to_sequence(phones: list[str], version: str = "v2") -> list[int]:
    """Phone ids for a list of phones; a phone missing from the table maps to ``UNK``.

    (The reference's ``clean_text`` turns unknown phones into ``UNK`` before this step, so for its outputs the
    two behave the same; here the mapping is total so that no input can raise a KeyError.)
    """
    table = symbol_to_id(version)
    unk = table[UNK]
    return [table.get(p, unk) for p in phones]
