"""English grapheme-to-phoneme conversion, as the reference ``text/english.py`` (v2 symbol table).

``text_normalize`` verbalises numbers, ordinals, years, times, money, units, fractions, decimals and
acronyms (split into letters) the way the reference's ``en_normalization/expend.py`` does. ``g2p`` looks
words up in the reference's own dictionaries (``data/cmudict.rep``, then ``data/cmudict-fast.rep`` for
words the first lacks, then the hot-fix entries of ``data/engdict-hot.rep``, minus six abbreviations it
reads wrongly; first pronunciation), then its name dictionary for capitalised words, spells short unknown
words letter by letter, splits possessives and compounds (``wordsegment``), and predicts the rest with
g2p_en's small GRU model, run here in numpy from the weights file the ``g2p_en`` package ships (never
importing ``g2p_en`` itself: its import tries to download NLTK data).

One difference from the reference, for lack of offline data: homographs are read with a small context
rule standing in for NLTK's POS tagger (whose model is not installable offline); the choice between the
two readings then follows the reference's rule.
"""

from __future__ import annotations

import ast
import importlib.util
import lzma
import re
import unicodedata
from functools import cache
from pathlib import Path

from gpt_sovits.text.errors import LanguageNotInstalledError
from gpt_sovits.text.symbols import PUNCTUATION, get_symbols

# ---------------------------------------------------------------- normalisation

# The reference's punctuation map escapes its character-class keys, so only these three ever apply.
_FULLWIDTH = {"。": ".", "！": "!", "？": "?"}
_MEASUREMENTS = {
    "m": ("meter", "meters"),
    "km": ("kilometer", "kilometers"),
    "km/h": ("kilometer per hour", "kilometers per hour"),
    "ft": ("feet", "feet"),
    "L": ("liter", "liters"),
    "tbsp": ("tablespoon", "tablespoons"),
    "tsp": ("teaspoon", "teaspoons"),
    "h": ("hour", "hours"),
    "min": ("minute", "minutes"),
    "s": ("second", "seconds"),
    "°C": ("degree celsius", "degrees celsius"),
    "°F": ("degree fahrenheit", "degrees fahrenheit"),
}
_ORDINAL_NUMBER_RE = re.compile(r"\b([0-9]+)\. ")
_COMMA_NUMBER_RE = re.compile(r"([0-9][0-9\,]+[0-9])")
_TIME_RE = re.compile(r"\b([01]?[0-9]|2[0-3]):([0-5][0-9])\b")
_MEASUREMENT_RE = re.compile(r"\b([0-9]+(\.[0-9]+)?(m|km|km/h|ft|L|tbsp|tsp|h|min|s|°C|°F))\b")
_POUNDS_START_RE = re.compile(r"£([0-9\.\,]*[0-9]+)")
_POUNDS_END_RE = re.compile(r"([0-9\.\,]*[0-9]+)£")
_DOLLARS_START_RE = re.compile(r"\$([0-9\.\,]*[0-9]+)")
_DOLLARS_END_RE = re.compile(r"([(0-9\.\,]*[0-9]+)\$")
_DECIMAL_RE = re.compile(r"([0-9]+\.\s*[0-9]+)")
_FRACTION_RE = re.compile(r"([0-9]+/[0-9]+)")
_ORDINAL_RE = re.compile(r"[0-9]+(st|nd|rd|th)")
_NUMBER_RE = re.compile(r"[0-9]+")
_POW = "⁰¹²³⁴⁵⁶⁷⁸⁹ˣʸⁿ"
_OPERAND = rf"((-?)((\d+)(\.\d+)?[{_POW}]*)|(\.\d+[{_POW}]*)|([A-Za-z][{_POW}]*))"
_ASMD_RE = re.compile(_OPERAND + r"\s+([\+\-\×÷=])\s+" + _OPERAND)
_ASMD = {"+": " plus ", "-": " minus ", "×": " times ", "÷": " divided by ", "=": " Equals "}
_NEGATIVE_RE = re.compile(r"(?:^|\s+)(-)(\d+)")
_PUNCT_CLASS = "".join(re.escape(p) for p in PUNCTUATION)
_REPEATED_PUNCT_RE = re.compile(rf"([{_PUNCT_CLASS}\s])([{_PUNCT_CLASS}])+")


@cache
def _inflect():
    import inflect

    return inflect.engine()


def _ordinal_number(m: re.Match) -> str:
    return _inflect().ordinal(m.group(1)) + ", "


def _time(m: re.Match) -> str:
    hours, minutes = int(m.group(1)), int(m.group(2))
    period = "a.m." if hours < 12 else "p.m."
    if hours > 12:
        hours -= 12
    hour_word = _inflect().number_to_words(hours)
    if minutes == 0:
        return f"{hour_word} o'clock {period}"
    return f"{hour_word} {_inflect().number_to_words(minutes)} {period}"


def _measurement(m: re.Match) -> str:
    unit = m.group(3)
    num = int(m.group(1).replace(unit, "").replace(".", ""))
    plural = not (m.group(2) is None and num == 1)
    return m.group(1).replace(unit, " " + _MEASUREMENTS[unit][int(plural)])


def _money(m: re.Match, units: tuple[str, str, str, str]) -> str:
    one, many, sub_one, sub_many = units
    text = m.group(1)
    parts = text.split(".")
    if len(parts) > 2:
        return f"{text} {many}"
    # Commas left here ("$,1") would make the reference raise; they are ignored.
    whole = parts[0].replace(",", "")
    frac = parts[1].replace(",", "") if len(parts) > 1 else ""
    main = int(whole) if whole else 0
    sub = int(frac.ljust(2, "0")) if frac else 0
    main_unit = one if main == 1 else many
    sub_unit = sub_one if sub == 1 else sub_many
    if main and sub:
        return f"{main} {main_unit} and {sub} {sub_unit}"
    if main:
        return f"{main} {main_unit}"
    if sub:
        return f"{sub} {sub_unit}"
    return f"zero {many}"


def _pounds(m: re.Match) -> str:
    return _money(m, ("pound", "pounds", "penny", "pence"))


def _dollars(m: re.Match) -> str:
    return _money(m, ("dollar", "dollars", "cent", "cents"))


def _decimal(m: re.Match) -> str:
    whole, frac = m.group(1).split(".")
    return whole + " point " + " ".join(frac)


def _fraction(m: re.Match) -> str:
    numerator, denominator = map(int, m.group(0).split("/"))
    words = _inflect().number_to_words(numerator)
    if denominator == 1:
        return words
    if denominator == 2:
        return f"{words} {'half' if numerator == 1 else 'halves'}"
    denom = _inflect().ordinal(_inflect().number_to_words(denominator))
    return f"{words} {denom}{'s' if numerator > 1 else ''}"


def _ordinal(m: re.Match) -> str:
    return _inflect().number_to_words(m.group(0))


def _number(m: re.Match) -> str:
    num = int(m.group(0))
    eng = _inflect()
    if 1000 < num < 3000:  # read as a year
        if num == 2000:
            return "two thousand"
        if 2000 < num < 2010:
            return "two thousand " + eng.number_to_words(num % 100)
        if num % 100 == 0:
            return eng.number_to_words(num // 100) + " hundred"
        return eng.number_to_words(num, andword="", zero="oh", group=2).replace(", ", " ")
    return eng.number_to_words(num, andword="")


def normalize(text: str) -> str:
    """Verbalise numbers, money, units, ordinals and acronyms (the reference ``expend.normalize``)."""
    text = _ORDINAL_NUMBER_RE.sub(_ordinal_number, text)
    while _ASMD_RE.search(text):
        text = _ASMD_RE.sub(lambda m: m.group(1) + _ASMD[m.group(8)] + m.group(9), text)
    text = _NEGATIVE_RE.sub(lambda m: f"negative {m.group(2)}", text)
    text = _COMMA_NUMBER_RE.sub(lambda m: m.group(1).replace(",", ""), text)
    text = _TIME_RE.sub(_time, text)
    text = _MEASUREMENT_RE.sub(_measurement, text)
    text = _POUNDS_START_RE.sub(_pounds, text)
    text = _POUNDS_END_RE.sub(_pounds, text)
    text = _DOLLARS_START_RE.sub(_dollars, text)
    text = _DOLLARS_END_RE.sub(_dollars, text)
    text = _DECIMAL_RE.sub(_decimal, text)
    text = _FRACTION_RE.sub(_fraction, text)
    text = _ORDINAL_RE.sub(_ordinal, text)
    text = _NUMBER_RE.sub(_number, text)
    # Strip accents, then keep only letters, spaces and a few marks.
    text = "".join(c for c in unicodedata.normalize("NFD", text) if unicodedata.category(c) != "Mn")
    text = text.replace("%", " percent")
    text = re.sub(r"[^ A-Za-z'.,?!\-]", "", text)
    text = re.sub(r"(?i)i\.e\.", "that is", text)
    text = re.sub(r"(?i)e\.g\.", "for example", text)
    # Capitals not after a space are spelled: "DSPGAN" -> "D S P G A N".
    return re.sub(r"(?<!^)(?<![\s])([A-Z])", r" \1", text)


def text_normalize(text: str) -> str:
    """The normalised English text ``g2p`` reads."""
    for k, v in _FULLWIDTH.items():
        text = text.replace(k, v)
    text = normalize(text)
    return _REPEATED_PUNCT_RE.sub(r"\1", text)


# ---------------------------------------------------------------- dictionary and OOV model

_DATA = Path(__file__).parent / "data"
# Abbreviations the reference removes from its dictionary (their entries read them as words).
_REMOVED = ("ae", "ai", "ar", "ios", "hud", "os")
_CMUDICT_FIRST_ENTRY_LINE = 57  # cmudict.rep's licence and notes come before
_VOICELESS = {"P", "T", "K", "F", "TH", "HH"}
_SIBILANT = {"S", "Z", "SH", "ZH", "CH", "JH"}


def _read_xz_lines(name: str) -> list[str]:
    with lzma.open(_DATA / name, "rt", encoding="utf-8") as f:
        return f.read().splitlines()


@cache
def _cmu() -> dict[str, str]:
    """word (lower case) -> its phones joined by spaces, merged as the reference's ``get_dict``.

    (Phones stay one string until a word is read: splitting all 140k entries up front would double the
    load time.)
    """
    table: dict[str, str] = {}
    for line in _read_xz_lines("cmudict.rep.xz")[_CMUDICT_FIRST_ENTRY_LINE - 1 :]:
        word, phones = line.strip().split("  ", 1)  # "WORD  PH PH ..."
        table[word.lower()] = phones
    for line in _read_xz_lines("cmudict-fast.rep.xz"):
        word, _, phones = line.strip().partition(" ")  # "WORD PH PH ...": only words cmudict.rep lacks
        table.setdefault(word.lower(), phones)
    table.update((word, " ".join(phones)) for word, phones in hot_dictionary().items())
    for w in _REMOVED:
        table.pop(w, None)
    return table


def dictionary_phones(word: str) -> list[str] | None:
    """The dictionary's phones of a lower-case word, or None when it has no entry."""
    phones = _cmu().get(word)
    return None if phones is None else phones.split(" ")


def hot_dictionary() -> dict[str, list[str]]:
    """The hot-fix entries of ``data/engdict-hot.rep`` ("WORD PH PH ..." lines; they override the rest)."""
    out = {}
    for line in (_DATA / "engdict-hot.rep").read_text(encoding="utf-8").splitlines():
        word, *phones = line.strip().split(" ")
        if word:
            out[word.lower()] = phones
    return out


@cache
def _names() -> dict[str, list[str]]:
    """The reference's name dictionary (read for capitalised words only): name -> phones."""
    out = {}
    for line in _read_xz_lines("namedict.tsv.xz"):
        name, phones = line.split("\t")
        out[name] = phones.split(" ")
    return out


def _g2p_en_dir() -> Path:
    spec = importlib.util.find_spec("g2p_en")  # locates the package without importing it
    if spec is None or not spec.submodule_search_locations:
        raise LanguageNotInstalledError(
            "en", "g2p_en", "Its bundled model (checkpoint20.npz) reads words missing from CMUdict."
        )
    return Path(next(iter(spec.submodule_search_locations)))


@cache
def _homographs() -> dict[str, tuple[list[str], list[str], str]]:
    out: dict[str, tuple[list[str], list[str], str]] = {}
    try:
        path = _g2p_en_dir() / "homographs.en"
        lines = path.read_text(encoding="utf-8").splitlines()
    except (LanguageNotInstalledError, OSError):
        lines = []
    for line in lines:
        if line.startswith("#") or line.count("|") != 3:
            continue
        word, pron1, pron2, pos = line.strip().split("|")
        out[word.lower()] = (pron1.split(), pron2.split(), pos)
    # The reference's corrections.
    out["read"] = (["R", "IY1", "D"], ["R", "EH1", "D"], "VBP")
    out["complex"] = ("K AH0 M P L EH1 K S".split(), "K AA1 M P L EH0 K S".split(), "JJ")
    return out


class _OOVModel:
    """g2p_en's character-to-phoneme GRU encoder-decoder (greedy decoding), in numpy."""

    def __init__(self, folder: Path) -> None:
        import numpy as np

        self.np = np
        w = np.load(folder / "checkpoint20.npz")
        self.w = {k: w[k] for k in w.files}
        self.graphemes = ["<pad>", "<unk>", "</s>", *"abcdefghijklmnopqrstuvwxyz"]
        self.phonemes = self._phoneme_list(folder / "g2p.py")
        if len(self.phonemes) != self.w["dec_emb"].shape[0]:
            raise LanguageNotInstalledError(
                "en",
                "g2p_en",
                f"Its model has {self.w['dec_emb'].shape[0]} phonemes, expected the 2.1.0 list.",
            )
        self.g2idx = {g: i for i, g in enumerate(self.graphemes)}

    @staticmethod
    def _phoneme_list(source: Path) -> list[str]:
        # The output vocabulary is a literal in g2p_en's source; read it without executing the module.
        for node in ast.walk(ast.parse(source.read_text(encoding="utf-8"))):
            if (
                isinstance(node, ast.Assign)
                and isinstance(node.targets[0], ast.Attribute)
                and node.targets[0].attr == "phonemes"
                and isinstance(node.value, ast.BinOp)
            ):
                return ast.literal_eval(node.value.left) + ast.literal_eval(node.value.right)
        raise LanguageNotInstalledError("en", "g2p_en", f"Could not read the phoneme list from {source}.")

    def _cell(self, x, h, prefix: str):
        np, w = self.np, self.w
        gi = x @ w[f"{prefix}_w_ih"].T + w[f"{prefix}_b_ih"]  # (1, 3H): reset, update, new
        gh = h @ w[f"{prefix}_w_hh"].T + w[f"{prefix}_b_hh"]
        hs = h.shape[-1]
        rz = 1 / (1 + np.exp(-(gi[:, : 2 * hs] + gh[:, : 2 * hs])))
        r, z = rz[:, :hs], rz[:, hs:]
        n = np.tanh(gi[:, 2 * hs :] + r * gh[:, 2 * hs :])
        return (1 - z) * n + z * h

    def predict(self, word: str) -> list[str]:
        np, w = self.np, self.w
        ids = [self.g2idx.get(c, 1) for c in [*word, "</s>"]]
        h = np.zeros((1, w["enc_w_hh"].shape[-1]), np.float32)
        for i in ids:
            h = self._cell(w["enc_emb"][[i]], h, "enc")
        dec = w["dec_emb"][[2]]  # <s>
        out: list[str] = []
        for _ in range(20):
            h = self._cell(dec, h, "dec")
            pred = int((h @ w["fc_w"].T + w["fc_b"]).argmax())
            if pred == 3:  # </s>
                break
            out.append(self.phonemes[pred])
            dec = w["dec_emb"][[pred]]
        return out


@cache
def _oov_model() -> _OOVModel:
    return _OOVModel(_g2p_en_dir())


@cache
def _segmenter():
    import wordsegment

    wordsegment.load()
    return wordsegment.segment


# ---------------------------------------------------------------- tokens and words

_TOKEN_RE = re.compile(r"[A-Za-z](?:[A-Za-z'\-_]*[A-Za-z])?|\.\.+|[^\sA-Za-z]")
# Context cues for the stand-in POS guess: the previous word -> a Penn Treebank tag.
_POS_CUES = {
    "VB": ("to", "will", "would", "can", "could", "shall", "should", "may", "might", "must", "do", "does",
           "did", "not", "don't", "didn't", "won't", "can't", "please", "let's"),
    "VBP": ("i", "you", "we", "they"),
    "VBZ": ("he", "she", "it"),
    "VBN": ("have", "has", "had", "having", "been", "be", "is", "are", "was", "were", "get", "got"),
    "NN": ("the", "a", "an", "this", "that", "these", "those", "my", "your", "his", "her", "its", "our",
           "their", "of", "in", "on", "for", "with"),
}  # fmt: skip
_CUE_TAG = {word: tag for tag, words in _POS_CUES.items() for word in words}
_DROPPED = frozenset({"<pad>", "<s>", "</s>", "UW"})  # the reference drops these model outputs


def _tokenize(text: str) -> list[str]:
    try:
        from nltk.tokenize import TweetTokenizer  # the reference's tokenizer; needs no NLTK data
    except ImportError:
        return _TOKEN_RE.findall(text)
    return TweetTokenizer().tokenize(text)


def _guess_pos(prev: str | None) -> str:
    """Stand-in for NLTK's POS tagger (not installable offline): a tag from the previous word, or ""."""
    return "" if prev is None else _CUE_TAG.get(prev.lower(), "")


def homograph_reading(word: str, pos: str) -> list[str]:
    """The reading of a homograph for a Penn tag, by the reference's rule; an unknown tag ("") reads pron2.

    pron1 when the tag starts with the entry's tag, or is a prefix of it (``VB`` for ``read``'s ``VBP``).
    """
    pron1, pron2, pos1 = _homographs()[word]
    if pos and (pos.startswith(pos1) or (len(pos) < len(pos1) and pos1.startswith(pos))):
        return pron1
    return pron2


def lookup(o_word: str) -> list[str]:
    """Phones of one word: dictionaries, names (capitalised words), spelling, possessive, compound split,
    then the GRU model (the reference's ``qryword``)."""
    word = o_word.lower()
    cmu = _cmu()
    if len(word) > 1 and word in cmu:
        return dictionary_phones(word) or []
    if o_word.istitle() and word in _names():
        return list(_names()[word])
    if len(word) <= 3:
        phones: list[str] = []
        for ch in word:
            if ch == "a":
                phones.append("EY1")
            elif not ch.isalpha() or ch not in cmu:
                phones.append(ch)
            else:
                phones.extend(dictionary_phones(ch) or [])
        return phones
    if re.match(r"^([a-z]+)('s)$", word):
        phones = lookup(word[:-2])
        if phones and phones[-1] in _VOICELESS:
            return [*phones, "S"]
        if phones and phones[-1] in _SIBILANT:
            return [*phones, "AH0", "Z"]
        return [*phones, "Z"]
    parts = _segmenter()(word)
    if len(parts) <= 1:
        return _oov_model().predict(word)
    return [p for part in parts for p in lookup(part)]


def g2p(norm_text: str) -> list[str]:
    """ARPAbet phones (with stress digits) and punctuation of normalised English text."""
    symbols = set(get_symbols("v2"))
    phones: list[str] = []
    prev: str | None = None
    for o_word in _tokenize(norm_text):
        word = o_word.lower()
        if re.search("[a-z]", word) is None:
            pron = [word]
        elif len(word) == 1:
            pron = ["EY1"] if o_word == "A" else (dictionary_phones(word) or [])
        elif word in _homographs():
            pron = homograph_reading(word, _guess_pos(prev))
        else:
            pron = lookup(o_word)
        prev = o_word
        for ph in pron:
            if ph in _DROPPED:
                continue
            ph = "UNK" if ph == "<unk>" else ph
            if ph in symbols:
                phones.append(ph)
            elif ph == "'":
                phones.append("-")
            # anything else (e.g. "...") is dropped, as the reference does
    return phones
