"""S1 training data: the reference's item filters, repetition of small sets, and batch collation.

Reads a formatted experiment (``2-name2text.txt``, ``6-name2semantic.tsv``, optional ``3-bert/<name>.pt``)
as the reference's ``AR/data/dataset.py Text2SemanticDataset`` does:

- items in ``6-name2semantic.tsv`` without a ``2-name2text.txt`` line are skipped;
- semantic length > ``max_sec * 25`` tokens (54 s) is dropped;
- more than ``max_sec * 25 / 2.5`` phones (540) is dropped;
- phones per second (phones / (tokens / 25)) outside [3, 25] is dropped;
- a set of fewer than 100 items is repeated ``max(2, int(100 / n))`` times (so 6 clips give 96 items);
- BERT features: ``3-bert/<name>.pt`` (1024, n_phones) when present, zeros otherwise (non-Chinese clips).

One deliberate difference: phones and BERT features are LEFT-padded in a batch. The reference's
``Text2SemanticDecoder.forward`` builds its text padding mask as left padding (``make_pad_mask_left``)
while its collate pads on the right, so in a batch of unequal phone lengths it masks real phones and
attends to padding; our ``Text2Semantic.forward`` documents left padding, which keeps every row's last
text position at Tx-1 as at inference. Semantic tokens are right-padded with ``pad_val`` (1024 = EOS).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch

from core.errors import UserError
from gpt_sovits.data.experiment import (
    ExperimentFormatError,
    ExperimentPaths,
    read_name2semantic,
    read_name2text,
)
from gpt_sovits.models.s1 import BERT_DIM
from gpt_sovits.text.symbols import UNK, symbol_to_id

logger = logging.getLogger(__name__)

HZ = 25  # semantic tokens per second (the v1/v2 "25hz" frame rate)
MIN_ITEMS = 100  # the reference repeats smaller sets up to about this many items


class S1DataError(UserError, ValueError):
    """The experiment cannot give S1 training data (missing files, nothing left after the filters, ...)."""


@dataclass(frozen=True)
class S1Item:
    name: str
    phone_ids: tuple[int, ...]
    semantic: tuple[int, ...]
    bert_path: Path | None  # None: zeros (non-Chinese clip)

    @property
    def seconds(self) -> float:
        return len(self.semantic) / HZ


@dataclass
class FilterReport:
    """How many items each of the reference's filters removed, and how the rest was repeated."""

    semantic_rows: int = 0
    no_text: int = 0
    too_long: int = 0
    too_many_phones: int = 0
    bad_rate: int = 0
    kept: int = 0
    repeats: int = 1
    examples: dict[str, list[str]] = field(default_factory=dict)  # filter -> a few item names

    @property
    def items(self) -> int:
        return self.kept * self.repeats

    def note(self, what: str, name: str) -> None:
        setattr(self, what, getattr(self, what) + 1)
        names = self.examples.setdefault(what, [])
        if len(names) < 3:
            names.append(name)

    def describe(self, max_sec: float, min_rate: float, max_rate: float) -> str:
        parts = []
        labels = {
            "no_text": "not in 2-name2text.txt",
            "too_long": f"longer than {max_sec:g} s",
            "too_many_phones": f"more than {max_sec * HZ / 2.5:g} phones",
            "bad_rate": f"phones per second outside {min_rate:g}..{max_rate:g} (text and audio do not match)",
        }
        for key, label in labels.items():
            n = getattr(self, key)
            if n:
                ex = ", ".join(self.examples.get(key, []))
                parts.append(f"{n} {label} (e.g. {ex})")
        return "; ".join(parts) if parts else "none removed"

    def to_dict(self) -> dict[str, object]:
        return {
            "semantic_rows": self.semantic_rows,
            "no_text": self.no_text,
            "too_long": self.too_long,
            "too_many_phones": self.too_many_phones,
            "bad_rate": self.bad_rate,
            "kept": self.kept,
            "repeats": self.repeats,
            "items": self.items,
        }


def phone_ids_for(phones: Sequence[str], version: str, name: str) -> list[int]:
    """Phone ids in ``version``'s table; a phone the table lacks is an error naming the version mismatch.

    (``cleaned_text_to_sequence`` maps unknown phones to UNK silently; for training that would hide an
    experiment formatted for v2 being trained on a v1 model.)"""
    table = symbol_to_id(version)
    missing = sorted({p for p in phones if p not in table and p != UNK})
    if missing:
        raise S1DataError(
            f"clip {name!r} has phones {', '.join(missing[:5])} that the {version} symbol table lacks: the "
            f"experiment was formatted for another version than the pretrained GPT ({version}). Format the "
            "experiment again with the same version as the pretrained model, or pick the matching pretrained GPT."
        )
    return [table[p] for p in phones]


def _bert_width(path: Path) -> int:
    """n_phones of a ``3-bert`` tensor without reading all of it (mmap for zip files)."""
    try:
        t = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except RuntimeError:  # legacy (non-zip) file: mmap unsupported
        t = torch.load(path, map_location="cpu", weights_only=True)
    if not torch.is_tensor(t) or t.dim() != 2 or t.shape[0] != BERT_DIM:
        shape = tuple(t.shape) if torch.is_tensor(t) else type(t).__name__
        raise S1DataError(f"{path} is not a ({BERT_DIM}, n_phones) BERT feature tensor (got {shape})")
    return int(t.shape[1])


def load_s1_items(
    exp_dir: str | Path,
    version: str = "v2",
    max_sec: float = 54,
    min_rate: float = 3,
    max_rate: float = 25,
    min_items: int = MIN_ITEMS,
    check_bert: bool = True,
) -> tuple[list[S1Item], FilterReport]:
    """Read, filter and repeat an experiment's items for S1 (see the module docstring).

    Raises S1DataError with a message a person can act on: missing tables, an empty experiment, or no
    item left after the filters (saying which filter removed how many)."""
    paths = ExperimentPaths.of(exp_dir)
    for p, what in ((paths.name2text, "phones"), (paths.name2semantic, "semantic tokens")):
        if not p.is_file():
            raise S1DataError(
                f"{p} is missing: the experiment has no {what}. Run the formatting step "
                "(python -m gpt_sovits.data.prepare) for this experiment first."
            )
    try:
        texts = read_name2text(paths.name2text)
        semantic = read_name2semantic(paths.name2semantic)
    except ExperimentFormatError as e:
        raise S1DataError(f"the experiment's tables cannot be read: {e}") from None
    if not semantic:
        raise S1DataError(
            f"the experiment {paths.root} is empty: {paths.name2semantic.name} lists no clips. "
            "Format a labelled dataset into it first."
        )
    report = FilterReport(semantic_rows=len(semantic))
    items: list[S1Item] = []
    for name, tokens in semantic.items():
        entry = texts.get(name)
        if entry is None:
            report.note("no_text", name)
            continue
        if len(tokens) > max_sec * HZ:
            report.note("too_long", name)
            continue
        ids = phone_ids_for(entry.phones, version, name)
        if len(ids) > max_sec * HZ / 2.5:
            report.note("too_many_phones", name)
            continue
        rate = len(ids) / (len(tokens) / HZ)
        if not min_rate <= rate <= max_rate:
            report.note("bad_rate", name)
            continue
        bert = paths.bert(name)
        if bert.is_file():
            if check_bert and (w := _bert_width(bert)) != len(ids):
                raise S1DataError(
                    f"{bert} has features for {w} phones but {name!r} has {len(ids)} phones in "
                    f"{paths.name2text.name}: the experiment is inconsistent; format it again."
                )
        else:
            bert = None
        items.append(S1Item(name, tuple(ids), tuple(int(t) for t in tokens), bert))
    report.kept = len(items)
    if not items:
        raise S1DataError(
            f"no usable clip for GPT training in {paths.root}: all {report.semantic_rows} were removed by the "
            f"reference's filters: {report.describe(max_sec, min_rate, max_rate)}"
        )
    if len(items) < min_items:  # the reference: for _ in range(max(2, int(min_num / leng)))
        report.repeats = max(2, int(min_items / len(items)))
        items = items * report.repeats
    if report.kept < report.semantic_rows:
        logger.info("S1 data filters: %s", report.describe(max_sec, min_rate, max_rate))
    return items, report


def effective_batch_size(requested: int, n_items: int, dpo: bool) -> int:
    """The reference's batch size: halved for DPO (two sequences per item), at most n_items // 4, at least 1."""
    bs = requested // 2 if dpo else requested
    return max(min(bs, n_items // 4), 1)


@dataclass
class S1Batch:
    """x (B, Tx) phone ids LEFT-padded with 0, x_lens (B,), y (B, Ty) semantic ids right-padded with
    ``pad_val``, y_lens (B,), bert (B, 1024, Tx) left-padded with zeros, names (B,)."""

    x: torch.Tensor
    x_lens: torch.Tensor
    y: torch.Tensor
    y_lens: torch.Tensor
    bert: torch.Tensor
    names: list[str]

    def to(self, device: torch.device) -> S1Batch:
        return S1Batch(
            self.x.to(device),
            self.x_lens.to(device),
            self.y.to(device),
            self.y_lens.to(device),
            self.bert.to(device),
            self.names,
        )

    @property
    def tokens(self) -> int:
        """Target positions that count in the loss (semantic tokens + one EOS per row)."""
        return int(self.y_lens.sum()) + len(self.names)


def load_bert(item: S1Item) -> torch.Tensor | None:
    if item.bert_path is None:
        return None
    try:
        t = torch.load(item.bert_path, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError) as e:
        raise S1DataError(f"cannot read BERT features {item.bert_path}: {e}") from None
    return t.float()


def collate(items: Sequence[S1Item], pad_val: int = 1024) -> S1Batch:
    """Stack items into an ``S1Batch`` (BERT features read from disk here, as the reference does per item)."""
    b = len(items)
    tx = max(len(it.phone_ids) for it in items)
    ty = max(len(it.semantic) for it in items)
    x = torch.zeros(b, tx, dtype=torch.long)
    y = torch.full((b, ty), pad_val, dtype=torch.long)
    bert = torch.zeros(b, BERT_DIM, tx)
    for i, it in enumerate(items):
        n = len(it.phone_ids)
        x[i, tx - n :] = torch.tensor(it.phone_ids)
        y[i, : len(it.semantic)] = torch.tensor(it.semantic)
        feats = load_bert(it)
        if feats is not None:
            bert[i, :, tx - n :] = feats
    x_lens = torch.tensor([len(it.phone_ids) for it in items])
    y_lens = torch.tensor([len(it.semantic) for it in items])
    return S1Batch(x, x_lens, y, y_lens, bert, [it.name for it in items])
