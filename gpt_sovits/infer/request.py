"""The synthesis request and its one parameter schema: every synthesis knob is defined here, once.

A ``Param`` gives a knob its name (the ``SynthesisRequest`` field), type, default, accepted range, help
text and, when the Voice cloning tab shows it, a ``Widget`` (i18n label key, slider range, place). From
``SYNTHESIS_PARAMS`` come:

* the fields and defaults of ``SynthesisRequest`` (``request_class``),
* the CLI flags of ``python -m gpt_sovits.infer`` (``add_flags``, ``knob_values``),
* the range checks of the synthesiser (``check_ranges``),
* the ``/synthesize`` API parameters and the tab's inputs (``ui/inference_api.py``, ``ui/inference_layout.py``).

So adding a sampling knob is one ``Param`` here (and using its value in the synthesiser). What is not a
plain value (the text, the reference clips, the CLVP checkpoint, the weights) each surface takes its own
way: a path on the CLI, an uploaded file in the API and the tab.

The longest text one synthesis accepts (``MAX_TEXT_CHARS``, ``check_text_length``) is not a knob of the
request but a limit of whoever runs the synthesiser: ``Synthesizer(max_text=...)``, the CLI's and the web
app's ``--max-text`` (``add_max_text_flag``).

Nothing here imports torch or numpy: the web UI builds its form from this module at start-up.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields, make_dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.errors import UserError

if TYPE_CHECKING:
    import numpy as np

    RefAudio = str | Path | tuple[int, np.ndarray]  # a file, or (sample_rate, samples) as Gradio gives it


class TTSInputError(UserError, ValueError):
    """An input a person can fix (reference length, empty text, unknown language, mismatched models...)."""


class TextTooLongError(TTSInputError):
    """The text is longer than the synthesiser's limit (``limit`` characters; it has ``length``)."""

    def __init__(self, message: str, length: int, limit: int) -> None:
        super().__init__(message)
        self.length, self.limit = length, limit


class ReferenceLengthError(TTSInputError):
    """The reference clip is outside 3-10 s. ``duration`` (seconds) lets a UI offer ``trim_reference``."""

    def __init__(self, message: str, duration: float) -> None:
        super().__init__(message)
        self.duration = duration


# ------------------------------------------------------------------------------------------ the schema


@dataclass(frozen=True)
class Widget:
    """How the Voice cloning tab shows a parameter."""

    label: str  # an i18n key (the English label)
    kind: str = "slider"  # slider, number, text, language (dropdown of modes), cut (dropdown of methods)
    slider: tuple[float, float, float] | None = None  # (minimum, maximum, step) of a slider
    place: str = "sampling"  # "reference" (column), "text" (row under the text) or "sampling" (accordion)
    row: str = "more"  # inside the Sampling accordion, widgets of one row sit side by side
    info: str | None = None  # a help line under the widget (an i18n key)
    elem_id: str = ""  # "" -> inf-<name with dashes>


@dataclass(frozen=True)
class Param:
    """One synthesis knob: a ``SynthesisRequest`` field and how each surface offers it."""

    name: str
    type: type  # int, float or str: what a value from a flag, a slider or JSON is turned into
    default: Any
    help: str  # for --help and the API's docstring
    range: tuple[float, float] | None = None  # accepted values; None: checked where used (SamplingParams)
    unit: str = ""  # appended to the range in messages (" s")
    range_note: str = ""  # appended to a range message after the unit (" (-1: a random seed)")
    # What the web app (tab and API) accepts when it is narrower than `range`, and how a message names it.
    web_range: tuple[float, float] | None = None
    noun: str = ""
    flag: str | None = ""  # the CLI flag; "" -> --<name with dashes>; None: not on the CLI
    api: bool = True  # a /synthesize parameter
    tab: Widget | None = None  # None: the tab does not show it

    @property
    def cli_flag(self) -> str:
        return self.flag or "--" + self.name.replace("_", "-")

    @property
    def elem_id(self) -> str:
        return (self.tab and self.tab.elem_id) or "inf-" + self.name.replace("_", "-")

    def coerce(self, value: Any) -> Any:
        """A value from a widget, a flag or JSON as this parameter's type; None (or "") -> the default."""
        if value is None or (value == "" and self.type is not str):
            return self.default
        try:
            return self.type(value)
        except (TypeError, ValueError):
            kind = {int: "a whole number", float: "a number"}.get(self.type, "text")
            raise TTSInputError(f"{self.name} must be {kind}, got {value!r}") from None

    def out_of_range(self, value: float) -> str | None:
        """The synthesiser's message for a value outside `range`, or None when it is accepted."""
        if self.range is None:
            return None
        lo, hi = self.range
        if _finite(value) and lo <= value <= hi:
            return None
        if math.isinf(hi):
            return f"{self.name} must be {lo:g}{' (off)' if lo == 0 else ''} or more, got {value}"
        return (
            f"{self.name} must be between {_num(lo)} and {_num(hi)}{self.unit}{self.range_note}, got {value}"
        )

    def outside_web_range(self, value: float) -> str | None:
        """The web app's message for a value it does not accept, or None."""
        if self.web_range is None:
            return None
        lo, hi = self.web_range
        if math.isfinite(value) and lo <= value <= hi:
            return None
        return f"The {self.noun or self.name} must be between {lo:g} and {hi:g}."


def _finite(value: float) -> bool:
    try:
        return math.isfinite(value)
    except OverflowError:  # an int beyond float's range (10**400) is finite but out of every range
        return True


def _num(x: float) -> str:
    """A range bound as written: whole numbers in full (4294967295, not 4.29497e+09), others as %g."""
    return str(int(x)) if float(x).is_integer() else f"{x:g}"


SEED_MAX = 2**32 - 1  # numpy's and the reference's seed range; torch would take more, the UI shows these

_BLEND_WEB_RANGE = (0.0, 10.0)  # the sliders' range of the ASR / speaker blend weights

SYNTHESIS_PARAMS: tuple[Param, ...] = (
    Param(
        "text_lang", str, "zh",
        "language of the text: zh, all_zh, en, ja, all_ja, ko, all_ko, yue, all_yue, auto, auto_yue",
        flag="--lang", tab=Widget("Language of the text", "language", place="text"),
    ),
    Param(
        "ref_text", str, "", "what the reference says; empty: reference-free mode (no prompt)",
        tab=Widget("Text of the reference (empty: reference-free mode)", "text", place="reference"),
    ),
    Param(
        "ref_lang", str, "zh", "language of the reference text (the same codes as text_lang)",
        tab=Widget("Language of the reference", "language", place="reference"),
    ),
    Param("top_k", int, 15, "sampling top-k", tab=Widget("top_k", slider=(1, 100, 1), row="decode")),
    Param("top_p", float, 1.0, "sampling nucleus", tab=Widget("top_p", slider=(0.05, 1, 0.05), row="decode")),
    Param(
        "temperature", float, 1.0, "sampling temperature",
        tab=Widget("Temperature", slider=(0.05, 1.5, 0.05), row="decode", elem_id="inf-temp"),
    ),
    Param(
        "repetition_penalty", float, 1.35, "penalty for tokens already generated",
        tab=Widget("Repetition penalty", slider=(1.0, 2.0, 0.05), row="decode", elem_id="inf-rep"),
    ),
    Param(
        "speed", float, 1.0, "speaking rate (1 = as sampled)", range=(0.25, 4),
        tab=Widget("Speed", slider=(0.6, 1.65, 0.05), row="voice"),
    ),
    Param(
        "noise_scale", float, 0.5, "S2 noise scale (v1/v2/v2Pro/v2ProPlus; v3/v4 ignore it)", range=(0, 2),
        tab=Widget("Noise scale", slider=(0.0, 1.0, 0.05), row="voice", elem_id="inf-noise"),
    ),
    Param(
        "pause", float, 0.3, "seconds of silence after each sentence", range=(0, 10), unit=" s",
        tab=Widget("Pause between sentences (s)", slider=(0.0, 1.0, 0.05), row="voice"),
    ),
    Param(
        "stream_tokens", int, 0,
        "with one candidate (v1/v2/v2Pro/v2ProPlus): stream each sentence in parts of this many S1 tokens "
        "(25 per second) while S1 is still running, the first after that many plus 4; 0: each sentence "
        "whole (the reference's streaming_mode uses 16)",
        range=(0, 1500),
        tab=Widget(
            "Streaming chunk in tokens (0: whole sentences)", slider=(0, 100, 1), row="voice",
            info="With one candidate, the live player starts after this many tokens of the first sentence "
            "(25 per second) instead of after the whole sentence; costs some speed overall.",
        ),
    ),
    Param(
        "sample_steps", int, 0,
        "CFM sampling steps of v3/v4 SoVITS models; 0: the version's default (v3 32, v4 8, as the "
        "reference); v3 takes 1-128, v4 1-32; v1/v2/v2Pro/v2ProPlus ignore it",
        range=(0, 128), range_note=" (0: the version's default)",
        tab=Widget(
            "Sampling steps (v3/v4 only; 0: default)", slider=(0, 128, 1), row="v3v4",
            info="Flow-matching steps of v3/v4 SoVITS models: more is slower and smoother (0: v3 32, v4 8).",
        ),
    ),
    Param(
        "cut", str, "cut1", "text splitting: cut0 (none) ... cut5 (every punctuation mark)",
        tab=Widget("How to split the text", "cut", place="text"),
    ),
    Param(
        "candidates", int, 1, "S1 candidates sampled per sentence (the best is chosen)",
        range=(1, 32), web_range=(1, 16), noun="number of candidates",
        tab=Widget("Candidates per sentence", slider=(1, 8, 1), place="text"),
    ),
    Param(
        "seed", int, -1, "random seed; -1: a random one (reported with the result)",
        range=(-1, SEED_MAX), range_note=" (-1: a random seed)",
        tab=Widget("Seed (-1: random)", "number", row="seed"),
    ),
    Param(
        "max_new_tokens", int, 1500, "S1 tokens per sentence at most (25 per second: 1500 = 60 s, as the reference)",
        web_range=(1, 1500), noun="token limit per sentence",
        tab=Widget(
            "Longest sentence in tokens (25 per second)", slider=(10, 1500, 1), row="seed",
            elem_id="inf-max-tokens",
        ),
    ),
    Param(
        "asr_weight", float, 0.0,
        "weight of ASR agreement (1 - CER/WER of faster-whisper on each decoded candidate; needs a "
        "faster-whisper folder in the model folder and 2 or more candidates); 0: off",
        range=(0, math.inf), web_range=_BLEND_WEB_RANGE, noun="ASR agreement weight",
        tab=Widget(
            "ASR agreement weight", slider=(*_BLEND_WEB_RANGE, 0.1), row="blends",
            info="Transcribe each candidate with the Whisper model above and favour the one that says the "
            "text (0: off).",
        ),
    ),
    Param(
        "speaker_weight", float, 0.0,
        "weight of speaker similarity (cosine of S2 style vectors, candidate vs reference; 2 or more "
        "candidates); 0: off",
        range=(0, math.inf), web_range=_BLEND_WEB_RANGE, noun="speaker similarity weight",
        tab=Widget(
            "Speaker similarity weight", slider=(*_BLEND_WEB_RANGE, 0.1), row="blends",
            info="Favour the candidate whose timbre is closest to the reference (0: off).",
        ),
    ),
    Param(
        "asr_model", str, None,
        "faster-whisper size name or CTranslate2 folder for ASR agreement (default: the first "
        "faster-whisper-* folder of the model folder)",
        api=False,  # the tab passes its Whisper dropdown (shared with "Transcribe reference")
    ),
    Param("clvp_weight", float, 1.0, "weight of the CLVP score in the total", api=False),
    Param("logprob_weight", float, 1.0, "weight of the mean log-probability in the total", flag=None, api=False),
    Param("force_tokens", int, 0, "exactly N tokens per piece, EOS banned (benchmarks)", api=False),
)  # fmt: skip


def param(name: str, params: Iterable[Param] | None = None) -> Param:
    """The parameter called ``name`` (of ``params``, by default the schema)."""
    for p in SYNTHESIS_PARAMS if params is None else params:
        if p.name == name:
            return p
    raise KeyError(name)


# ------------------------------------------------------------------------------------------ the text limit

# The longest text one synthesis takes, in characters: about 5 minutes of speech. People read Chinese at
# 4-5 characters a second (2000 characters: 7-8 minutes) and English at about 15 characters a second with
# spaces and punctuation (2000 characters: 2-3 minutes). A longer text is refused with its length and the
# limit named, before any model loads; whoever runs the synthesiser may raise or lower it.
MAX_TEXT_CHARS = 2000

MAX_TEXT_HELP = (
    "longest text one synthesis accepts, in characters (default %(default)s: about 5 minutes of speech); "
    "longer texts are refused with a message"
)


def check_text_length(text: str, limit: int | None = MAX_TEXT_CHARS) -> None:
    """Raise TextTooLongError when ``text`` has more than ``limit`` characters (None: no limit)."""
    length = len(text or "")
    if limit is not None and length > limit:
        raise TextTooLongError(
            f"The text has {length:,} characters; this synthesiser takes at most {limit:,} characters at a "
            f"time (about {_speech_length(limit)} of speech). Split it into parts of at most {limit:,} "
            "characters.",
            length,
            limit,
        )


# A 3-10 s reference says some 50 characters of Chinese or 150 of English; far more is not its text, and
# would make every sentence's S1 prompt (and its BERT features) as long.
REF_TEXT_MAX_CHARS = 500


def check_lengths(request: Any, limit: int | None = MAX_TEXT_CHARS) -> None:
    """The text against ``limit`` (``check_text_length``) and the reference text against
    ``REF_TEXT_MAX_CHARS``; raises TextTooLongError."""
    check_text_length(request.text, limit)
    ref_length = len(request.ref_text or "")
    if ref_length > REF_TEXT_MAX_CHARS:
        raise TextTooLongError(
            f"The reference text has {ref_length:,} characters: a 3–10 s reference says far less. Give "
            f"what the clip says (at most {REF_TEXT_MAX_CHARS} characters), or leave it empty.",
            ref_length,
            REF_TEXT_MAX_CHARS,
        )


def _speech_length(chars: int) -> str:
    """A rough length of speech for ``chars`` characters (2000 -> "5 minutes"), as the limit's note."""
    seconds = chars * 60 / 400  # 400 a minute: between Chinese (~270) and English (~900)
    if seconds < 90:
        n, unit = max(1, round(seconds)), "second"
    else:
        n, unit = round(seconds / 60), "minute"
    return f"{n} {unit}{'s' if n > 1 else ''}"


def text_limit(value: str) -> int:
    """``--max-text``: a whole number of characters, 1 or more."""
    try:
        limit = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"--max-text must be a whole number of characters, got {value!r}"
        ) from None
    if limit < 1:
        raise argparse.ArgumentTypeError(f"--max-text must be 1 or more, got {limit}")
    return limit


def add_precision_flag(parser: argparse.ArgumentParser) -> None:
    """``--precision {auto,fp32}``: the loaders' precision (gpt_sovits.models.fastpath), for the CLI and the app."""
    from gpt_sovits.models.precisions import PRECISION_HELP, PRECISIONS

    parser.add_argument("--precision", choices=PRECISIONS, default=PRECISIONS[0], help=PRECISION_HELP)


def add_max_text_flag(parser: argparse.ArgumentParser, default: int = MAX_TEXT_CHARS) -> None:
    """``--max-text N`` (the limit of ``check_text_length``), as the CLI and the web app offer it."""
    parser.add_argument("--max-text", type=text_limit, default=default, metavar="N", help=MAX_TEXT_HELP)


# ------------------------------------------------------------------------------------------ the request

_REQUEST_DOC = """Everything one synthesis needs besides the model weights. Defaults follow the reference's UI.

Fields: ``text``; ``ref_audio`` (a file or ``(sample_rate, samples)``), ``aux_refs`` (more clips whose timbre
is averaged in), ``clvp_path`` (a CLVP checkpoint to rerank the candidates with; the synthesiser's caller
hands it the loader), then one field per ``SYNTHESIS_PARAMS`` entry (see gpt_sovits.infer.request)."""


def request_class(params: Sequence[Param] | None = None) -> type:
    """The request dataclass: the inputs every surface takes its own way, then one field per parameter
    (of ``params``, by default the schema as it is when called)."""
    inputs: list[tuple[str, Any, Any]] = [
        ("ref_audio", "RefAudio | None", field(default=None)),
        ("aux_refs", "list[RefAudio]", field(default_factory=list)),
        ("clvp_path", "str | None", field(default=None)),
    ]
    knobs = [
        (p.name, p.type, field(default=p.default, metadata={"param": p})) for p in params or SYNTHESIS_PARAMS
    ]
    cls = make_dataclass(
        "SynthesisRequest", [("text", str), *inputs, *knobs], namespace={"__doc__": _REQUEST_DOC}
    )
    cls.__module__ = __name__  # make_dataclass would name the caller's module (3.11 has no module=)
    return cls


SynthesisRequest = request_class()


def request_params(request: Any) -> list[Param]:
    """The schema entries behind a request's fields."""
    return [f.metadata["param"] for f in fields(request) if "param" in f.metadata]


def check_ranges(request: Any) -> None:
    """Raise TTSInputError for a parameter outside its accepted range (the synthesiser's own check)."""
    for p in request_params(request):
        if p.range is not None:
            message = p.out_of_range(p.type(getattr(request, p.name)))
            if message:
                raise TTSInputError(message)


# ------------------------------------------------------------------------------------------ the CLI


def add_flags(parser: argparse.ArgumentParser, params: Sequence[Param] | None = None) -> None:
    """One flag per parameter shown on the CLI (its value lands under the parameter's name)."""
    for p in params or SYNTHESIS_PARAMS:
        if p.flag is not None:
            suffix = "" if p.default in (None, "") else " (default: %(default)s)"
            parser.add_argument(p.cli_flag, dest=p.name, type=p.type, default=p.default, help=p.help + suffix)


def knob_values(
    values: Mapping[str, Any] | argparse.Namespace, params: Sequence[Param] | None = None
) -> dict:
    """The parameters found in ``values`` (flags, a form, an API call), each coerced to its type."""
    found = vars(values) if isinstance(values, argparse.Namespace) else values
    return {p.name: p.coerce(found[p.name]) for p in params or SYNTHESIS_PARAMS if p.name in found}
