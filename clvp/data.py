"""CLVP training data: (phone ids, semantic tokens) pairs from formatted experiment folders, a held-out split
and batches with hard negatives.

An experiment folder in the reference layout has ``2-name2text.txt`` (phones) and ``6-name2semantic.tsv``
(tokens); both are read with ``gpt_sovits.data.experiment``. Several folders can be pooled (a general model on
many speakers), and the held-out split is a hash of the clip name, so it is the same on every run and does
not move when other folders are added.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from clvp.model import N_CODES, N_PHONES, pad_sequences
from clvp.negatives import DEFAULT_SPAN, KINDS, SpanSpec, make_negatives
from core.errors import UserError


class ClvpDataError(UserError, ValueError):
    """A dataset that cannot train CLVP (missing files, no usable items); the message says what to do."""


@dataclass(frozen=True)
class ClvpItem:
    """One utterance: phone ids (v2 table) and its semantic tokens (0..1023)."""

    name: str
    phone_ids: list[int]
    tokens: list[int]
    source: str = ""


def is_held_out(name: str, fraction: float) -> bool:
    """Deterministic split by a hash of the clip name (stable across runs, machines and Python versions)."""
    h = int.from_bytes(hashlib.sha1(name.encode("utf-8")).digest()[:8], "big")
    return h / 2**64 < fraction


def load_items(exp_dirs: Sequence[str | Path], max_tokens: int = 1500) -> tuple[list[ClvpItem], list[str]]:
    """Items of all folders and a list of notes on what was skipped (no tokens, too long, bad ids).

    ``max_tokens`` drops clips longer than that many semantic tokens (60 s at 25 Hz by default); the model's
    position table would not cover them and they would dominate the batch memory.
    """
    from gpt_sovits.data.experiment import ExperimentPaths, read_name2semantic, read_name2text
    from gpt_sovits.text import cleaned_text_to_sequence

    items: list[ClvpItem] = []
    notes: list[str] = []
    for d in exp_dirs:
        paths = ExperimentPaths.of(d)
        for p in (paths.name2text, paths.name2semantic):
            if not p.is_file():
                raise ClvpDataError(
                    f"{p} is missing: format the experiment first (Dataset formatting: text and semantic tokens)"
                )
        texts = read_name2text(paths.name2text)
        sem = read_name2semantic(paths.name2semantic)
        missing = [n for n in texts if n not in sem]
        if missing:
            notes.append(f"{d}: {len(missing)} clip(s) without semantic tokens skipped, e.g. {missing[0]}")
        long = 0
        for name, entry in texts.items():
            tokens = sem.get(name)
            if tokens is None:
                continue
            if len(tokens) > max_tokens:
                long += 1
                continue
            ids = cleaned_text_to_sequence(entry.phones, "v2")
            if (
                not ids
                or any(not 0 <= t < N_CODES for t in tokens)
                or any(not 0 <= i < N_PHONES for i in ids)
            ):
                notes.append(f"{d}: {name} has ids outside the v2 tables; skipped")
                continue
            items.append(ClvpItem(name=name, phone_ids=ids, tokens=list(tokens), source=str(d)))
        if long:
            notes.append(f"{d}: {long} clip(s) longer than {max_tokens} tokens skipped")
    if not items:
        raise ClvpDataError(
            "no usable clips: the experiment folders have no clip with both phones and semantic tokens"
        )
    return items, notes


def split_items(items: Sequence[ClvpItem], held_out: float = 0.1) -> tuple[list[ClvpItem], list[ClvpItem]]:
    """(train, held-out) by name hash. With fewer than 10 items everything trains (nothing can be spared)."""
    if len(items) < 10 or held_out <= 0:
        return list(items), []
    # by clip name only: the split does not move with the folder's location or when folders are added
    train = [it for it in items if not is_held_out(it.name, held_out)]
    val = [it for it in items if is_held_out(it.name, held_out)]
    if not train:
        return list(items), []
    return train, val


@dataclass
class ClvpBatch:
    """Tensors for ClvpModel.forward: text (B, Tt), speech (B, Ts), negatives (N, Tn), and their lengths."""

    text: torch.Tensor
    text_lens: torch.Tensor
    speech: torch.Tensor
    speech_lens: torch.Tensor
    neg: torch.Tensor
    neg_lens: torch.Tensor

    def to(self, device: torch.device | str) -> ClvpBatch:
        return ClvpBatch(*(getattr(self, f).to(device) for f in self.__dataclass_fields__))


def collate(
    items: Sequence[ClvpItem],
    negatives_per_item: int,
    rng: random.Random,
    text_pad: int,
    speech_pad: int,
    pool: Sequence[ClvpItem] = (),
    kinds: Sequence[str] = KINDS,
    spec: SpanSpec = DEFAULT_SPAN,
) -> ClvpBatch:
    """A batch of true pairs plus ``negatives_per_item`` corruptions of each item's tokens (other items of the
    batch, or of ``pool``, supply the foreign tokens)."""
    others = [it.tokens for it in (pool or items)]
    negs: list[list[int]] = []
    for it in items:
        cand = [o for o in others if o is not it.tokens] or others
        negs += [t for _, t in make_negatives(it.tokens, negatives_per_item, rng, cand, kinds, spec)]
    text, text_lens = pad_sequences([it.phone_ids for it in items], text_pad)
    speech, speech_lens = pad_sequences([it.tokens for it in items], speech_pad)
    if negs:
        neg, neg_lens = pad_sequences(negs, speech_pad)
    else:
        neg, neg_lens = torch.zeros(0, 1, dtype=torch.long), torch.zeros(0, dtype=torch.long)
    return ClvpBatch(text, text_lens, speech, speech_lens, neg, neg_lens)


def batches(
    items: Sequence[ClvpItem], batch_size: int, rng: random.Random, drop_last: bool = False
) -> Iterator[list[ClvpItem]]:
    """Shuffled batches of similar length (sort within windows of 50 batches), so padding stays small."""
    order = list(items)
    rng.shuffle(order)
    window = batch_size * 50
    groups: list[list[ClvpItem]] = []
    for i in range(0, len(order), window):
        chunk = sorted(order[i : i + window], key=lambda it: len(it.tokens))
        groups += [chunk[j : j + batch_size] for j in range(0, len(chunk), batch_size)]
    rng.shuffle(groups)
    for g in groups:
        if len(g) < 2 and len(items) >= 2:
            continue  # a contrastive batch needs two items
        if drop_last and len(g) < batch_size:
            continue
        yield g


def steps_per_epoch(n_items: int, batch_size: int) -> int:
    return max(1, -(-n_items // batch_size))
