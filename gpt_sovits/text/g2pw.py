"""G2PW: the optional Chinese polyphone model the reference v2 frontend reads pinyin with, when installed.

The model (g2pW, an ONNX export of a BERT-based classifier) picks the reading of each polyphonic
character from its sentence. It is used exactly as the reference ``GPT_SoVITS/text/g2pw/onnx_api.py``
(after g2pW / PaddleSpeech) uses it:

1. each sentence is converted to traditional characters with OpenCC ``s2tw`` (the model and its tables
   are traditional);
2. characters of ``POLYPHONIC_CHARS.txt`` (minus a few the reference always leaves to pypinyin) go to the
   model; characters of ``MONOPHONIC_CHARS.txt`` take their one reading; all others take pypinyin's
   reading of the sentence (``pinyin(..., Style.TONE3)``, read on the simplified text);
3. the model sees the sentence cropped to 16 characters around its first and last polyphonic characters,
   lower-cased, tokenised with the BERT tokenizer (``chinese-roberta-wwm-ext-large``) one word at a time
   (a run of ASCII letters/digits or one character), as ``[CLS] tokens [SEP]`` (at most 512 tokens: a
   longer text is cut to a 510-token window around each query);
4. per polyphonic character, inputs ``input_ids``/``token_type_ids``/``attention_mask`` [B, T] (one row
   shared by all queries of a sentence: B = 1), ``phoneme_mask`` [N, L] (1 on the character's candidate
   readings), ``char_ids`` [N] (index in the sorted polyphonic characters), ``position_ids`` [N] (its
   token index, +1 for [CLS]); output ``probs`` [N, L] over all L labels (sorted bopomofo readings with a
   tone digit); the argmax label, converted from bopomofo to pinyin, is the reading.

The word corrections applied after the model (``correct_pronunciation``) use the reference's tables
(``data/zh_polyphonic.tsv``). ``load_g2pw(model_dir)`` finds the files in a pretrained-models folder and
returns None (pypinyin is then used) with a message naming what is missing.
"""

from __future__ import annotations

import ast
import json
import logging
import re
import threading
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np

from core.model_route import G2PW_REPO, download_route
from gpt_sovits.text.errors import TextFrontendError

log = logging.getLogger(__name__)
_DATA = Path(__file__).parent / "data"

G2PW_FOLDER = "G2PWModel"
BERT_FOLDER = "chinese-roberta-wwm-ext-large"
G2PW_URL = f"https://huggingface.co/{G2PW_REPO}/resolve/main/G2PWModel.zip"
BERT_URL = "https://huggingface.co/lj1995/GPT-SoVITS/tree/main/chinese-roberta-wwm-ext-large"
ONNX_NAMES = ("g2pW.onnx", "g2pw.onnx")
TABLE_FILES = (
    "POLYPHONIC_CHARS.txt",
    "MONOPHONIC_CHARS.txt",
    "bopomofo_to_pinyin_wo_tune_dict.json",
    "char_bopomofo_dict.json",
)
INPUT_NAMES = ("input_ids", "token_type_ids", "attention_mask", "phoneme_mask", "char_ids", "position_ids")
# The reference leaves these (traditional) polyphonic characters to pypinyin, and does not trust the
# monophonic table for the second set.
NON_POLYPHONIC = frozenset("一不和咋嗲剖差攢倒難奔勁拗肖瘙誒泊听噢")
NON_MONOPHONIC = frozenset("似攢")
CONTEXT_CHARS = 16  # characters of context kept left of the first / right of the last polyphone
MAX_TOKENS = 512  # BERT positions, [CLS] and [SEP] included
# config.py values the algorithm reads, with g2pW's defaults (the file is Python: read, never executed).
_CONFIG_DEFAULTS = {"use_mask": True, "use_char_phoneme": False}
_WORD_RE = re.compile(r" +|[a-zA-Z0-9]+|.", re.DOTALL)


class G2PWUnavailableError(TextFrontendError):
    """The G2PW model cannot be used (a file or package is missing or unreadable); pypinyin is used instead."""


def _files_hint(model_dir: Path) -> str:
    return download_route(
        "g2pw", ("the unzipped G2PWModel.zip",), model_dir / G2PW_FOLDER, G2PW_URL, model_dir
    )


@dataclass(frozen=True)
class G2PWFiles:
    """The files G2PW needs, found in a pretrained-models folder."""

    onnx: Path
    folder: Path  # G2PWModel/: the tables and config.py
    bert: Path  # the BERT folder whose tokenizer the model was used with


def find_g2pw_files(model_dir: str | Path) -> G2PWFiles | None:
    """The G2PW files under ``model_dir``; None when there is no ``G2PWModel`` folder (not installed).

    Raises G2PWUnavailableError naming the missing files when the folder is there but incomplete.
    """
    model_dir = Path(model_dir)
    folder = model_dir / G2PW_FOLDER
    if not folder.is_dir():
        return None
    onnx = next((folder / n for n in ONNX_NAMES if (folder / n).is_file()), None)
    missing = [] if onnx is not None else [ONNX_NAMES[0]]
    missing += [n for n in TABLE_FILES if not (folder / n).is_file()]
    if missing:
        raise G2PWUnavailableError(
            f"The G2PW model folder {folder} lacks {', '.join(missing)}. " + _files_hint(model_dir)
        )
    bert = model_dir / BERT_FOLDER
    if not any((bert / n).is_file() for n in ("tokenizer.json", "vocab.txt")):
        raise G2PWUnavailableError(
            f"G2PW needs the BERT tokenizer in {bert} (vocab.txt or tokenizer.json), which is missing. "
            + download_route(BERT_FOLDER, ("vocab.txt or tokenizer.json",), bert, BERT_URL, model_dir)
        )
    return G2PWFiles(onnx=onnx, folder=folder, bert=bert)


def read_config(path: Path) -> dict[str, object]:
    """The literal top-level assignments of g2pW's ``config.py`` that the algorithm uses, else defaults.

    The file is Python source; it is parsed, never executed (a model folder is not trusted code).
    """
    values = dict(_CONFIG_DEFAULTS)
    if not path.is_file():
        return values
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    except (SyntaxError, ValueError, UnicodeDecodeError) as e:
        raise G2PWUnavailableError(
            f"{path} is not readable ({e}); re-download G2PWModel.zip from {G2PW_URL}."
        ) from e
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            name = node.targets[0].id
            if name in values:
                try:
                    values[name] = bool(ast.literal_eval(node.value))
                except ValueError:
                    log.warning("%s: %s is not a literal; using %r", path, name, values[name])
    return values


@dataclass(frozen=True)
class G2PWTables:
    """The model's label space and character tables (``G2PWModel/*.txt|json``)."""

    labels: tuple[str, ...]  # the model's output classes, sorted: bopomofo + tone digit (or "char bopomofo")
    char2id: dict[str, int]  # polyphonic character -> its index in the sorted characters (char_ids)
    phoneme_masks: dict[str, np.ndarray]  # polyphonic character -> [L] float32, 1 on its candidate labels
    queried: frozenset[str]  # characters sent to the model
    monophonic: dict[str, str]  # character -> its only bopomofo reading
    bopomofo_to_pinyin: dict[str, str]  # bopomofo without tone -> pinyin without tone
    use_char_phoneme: bool  # labels are "char bopomofo" pairs


def _read_pairs(path: Path) -> list[tuple[str, str]]:
    pairs = []
    for n, line in enumerate(path.read_text(encoding="utf-8").strip().split("\n"), 1):
        fields = line.rstrip("\r").split("\t")
        if len(fields) != 2 or not fields[0] or not fields[1]:
            raise G2PWUnavailableError(
                f"{path} line {n} is not 'character<TAB>bopomofo'; re-download G2PWModel.zip from {G2PW_URL}."
            )
        pairs.append((fields[0], fields[1]))
    return pairs


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as e:
        raise G2PWUnavailableError(
            f"{path} is not valid JSON ({e}); re-download G2PWModel.zip from {G2PW_URL}."
        ) from e
    if not isinstance(data, dict):
        raise G2PWUnavailableError(f"{path} is not a JSON object; re-download G2PWModel.zip from {G2PW_URL}.")
    return data


def read_tables(folder: Path) -> G2PWTables:
    """Build the label space exactly as the model was trained with (sorted labels, sorted characters)."""
    config = read_config(folder / "config.py")
    use_char_phoneme = bool(config["use_char_phoneme"])
    polyphonic = _read_pairs(folder / "POLYPHONIC_CHARS.txt")
    labels = sorted({f"{c} {p}" if use_char_phoneme else p for c, p in polyphonic})
    index = {label: i for i, label in enumerate(labels)}
    candidates: dict[str, list[int]] = {}
    for c, p in polyphonic:
        candidates.setdefault(c, []).append(index[f"{c} {p}" if use_char_phoneme else p])
    chars = sorted(candidates)
    masks = {}
    for c, ids in candidates.items():
        # Without use_mask the model was trained to choose among all labels.
        masks[c] = (
            np.zeros(len(labels), np.float32) if config["use_mask"] else np.ones(len(labels), np.float32)
        )
        masks[c][ids] = 1.0
    monophonic = {c: p for c, p in _read_pairs(folder / "MONOPHONIC_CHARS.txt") if c not in NON_MONOPHONIC}
    # char_bopomofo_dict.json is read (a missing or broken one means a broken install) but, as in the
    # reference, characters it lists take pypinyin's reading like any other unlisted character.
    _read_json(folder / "char_bopomofo_dict.json")
    return G2PWTables(
        labels=tuple(labels),
        char2id={c: i for i, c in enumerate(chars)},
        phoneme_masks=masks,
        queried=frozenset(chars) - NON_POLYPHONIC,
        monophonic=monophonic,
        bopomofo_to_pinyin={
            str(k): str(v) for k, v in _read_json(folder / "bopomofo_to_pinyin_wo_tune_dict.json").items()
        },
        use_char_phoneme=use_char_phoneme,
    )


@cache
def polyphonic_dict() -> dict[str, tuple[str, ...]]:
    """Word -> pinyin corrections applied after the model (the reference's polyphonic*.rep tables)."""
    table = {}
    with open(_DATA / "zh_polyphonic.tsv", encoding="utf-8") as f:
        for line in f:
            if line.startswith("#") or not line.strip():
                continue
            word, pinyins = line.rstrip("\n").split("\t")
            table[word] = tuple(pinyins.split(" "))
    return table


def correct_pronunciation(word: str, pinyins: list[str]) -> list[str]:
    """The reference's post-rule: a listed word takes the table's syllables, else listed characters do."""
    table = polyphonic_dict()
    fixed = table.get(word)
    if fixed is not None and len(fixed) == len(word):
        return list(fixed)
    out = list(pinyins)
    for i, ch in enumerate(word[: len(out)]):
        entry = table.get(ch)
        if entry is not None:
            out[i] = entry[0]
    return out


def _sentence_pypinyin(sentence: str) -> list[str]:
    """pypinyin's TONE3 reading of each character of a sentence (read as a whole, for its phrase context)."""
    from pypinyin import Style, pinyin

    from gpt_sovits.text.zh_normalization import traditional_to_simplified

    readings = [
        p[0]
        for p in pinyin(traditional_to_simplified(sentence), neutral_tone_with_five=True, style=Style.TONE3)
    ]
    if len(readings) != len(sentence):  # a run of non-Chinese characters came back as one item
        readings = [pinyin(ch, neutral_tone_with_five=True, style=Style.TONE3)[0][0] for ch in sentence]
    return readings


@dataclass(frozen=True)
class _Query:
    """One polyphonic character to classify: sentence index, character index, and its model inputs."""

    sentence: int
    index: int
    char: str
    token_ids: tuple[int, ...]  # [CLS] ... [SEP] of its (cropped, maybe windowed) text
    position: int  # index of the character's token in token_ids


class G2PW:
    """G2PW readings of Chinese sentences. Tables and tokenizer load here; the ONNX session on first use.

    Thread-safe: the session is created once under a lock; ``onnxruntime`` runs concurrently. A model
    that fails to load or run marks the object unusable (``error``) and every later call raises
    G2PWUnavailableError at once, so the caller falls back to pypinyin without retrying.
    """

    def __init__(self, files: G2PWFiles, threads: int = 2, context_chars: int = CONTEXT_CHARS) -> None:
        self.files = files
        self.threads = threads
        self.context_chars = context_chars
        self.tables = read_tables(files.folder)
        self._tokenizer = _load_tokenizer(files.bert)
        self._converter = _load_opencc()
        self._token_cache: dict[str, tuple[str, ...]] = {}
        self._lock = threading.Lock()
        self._session = None
        self.error: str | None = None

    @property
    def usable(self) -> bool:
        return self.error is None

    # -- public -------------------------------------------------------------------------------------
    def pinyins(self, sentences: list[str]) -> list[list[str]]:
        """Per sentence, the TONE3 pinyin (e.g. "zhang3", neutral tone 5) of each character.

        Characters without a reading (punctuation) come back unchanged, as pypinyin returns them.
        """
        results: list[list[str]] = []
        queries: list[_Query] = []
        for s, sentence in enumerate(sentences):
            trad = self._to_traditional(sentence)
            readings = _sentence_pypinyin(trad)
            poly = []
            for i, ch in enumerate(trad):
                if ch in self.tables.queried:
                    poly.append(i)
                elif ch in self.tables.monophonic:
                    readings[i] = self._bopomofo_to_pinyin(self.tables.monophonic[ch]) or readings[i]
            results.append(readings)
            if poly:
                queries += self._queries(s, trad, poly)
        for q, label in zip(queries, self._predict(queries), strict=True):
            if self.tables.use_char_phoneme:
                label = label.split(" ")[1]
            reading = self._bopomofo_to_pinyin(label)
            if reading is not None:  # else keep pypinyin's (the reference would crash on it)
                results[q.sentence][q.index] = reading
        return results

    # -- steps --------------------------------------------------------------------------------------
    def _to_traditional(self, sentence: str) -> str:
        converted = self._converter.convert(sentence)
        return converted if len(converted) == len(sentence) else sentence

    def _bopomofo_to_pinyin(self, bopomofo: str) -> str | None:
        tone = bopomofo[-1:]
        base = self.tables.bopomofo_to_pinyin.get(bopomofo[:-1])
        if tone not in ("1", "2", "3", "4", "5") or not base:
            log.warning("G2PW: no pinyin for bopomofo %r; using pypinyin's reading", bopomofo)
            return None
        return base + tone

    def _tokens(self, text: str) -> tuple[list[str], list[int | None]]:
        """Word pieces of ``text`` and, per character, the index of the token that covers it (None: space)."""
        tokens: list[str] = []
        char2token: list[int | None] = []
        for m in _WORD_RE.finditer(text):
            word = m.group()
            if word[0] == " ":
                char2token += [None] * len(word)
                continue
            pieces = self._token_cache.get(word)
            if pieces is None:
                pieces = tuple(self._tokenizer.tokenize(word)) or ("[UNK]",)
                self._token_cache[word] = pieces
            if pieces == ("[UNK]",):
                char2token += [len(tokens)] * len(word)
                tokens.append("[UNK]")
                continue
            # Each piece covers as many characters as it spells (its "##" prefix aside).
            start = len(char2token)
            covered = [len(tokens)] * len(word)
            pos = 0
            for piece in pieces:
                n = len(piece[2:] if piece.startswith("##") else piece)
                for k in range(pos, min(pos + n, len(word))):
                    covered[k] = len(tokens)
                pos += n
                tokens.append(piece)
            char2token[start:] = covered
        return tokens, char2token

    def _queries(self, s: int, sentence: str, poly: list[int]) -> list[_Query]:
        if self.context_chars > 0:
            left = max(0, poly[0] - self.context_chars)
            right = min(len(sentence), poly[-1] + self.context_chars + 1)
        else:
            left, right = 0, len(sentence)
        text = sentence[left:right].lower()
        tokens, char2token = self._tokens(text)
        ids = self._tokenizer.convert_tokens_to_ids(tokens)
        cls_id, sep_id = self._tokenizer.convert_tokens_to_ids(["[CLS]", "[SEP]"])
        window = MAX_TOKENS - 2
        out = []
        for i in poly:
            tok = char2token[i - left]
            if tok is None:  # pragma: no cover - a polyphonic character is never a space
                continue
            start = 0
            if len(tokens) > window:  # centre a window of 510 tokens on the character, inside the text
                start = min(max(tok - window // 2, 0), len(tokens) - window)
            row = (cls_id, *ids[start : start + window], sep_id)
            out.append(_Query(s, i, sentence[i], row, tok - start + 1))
        return out

    def _predict(self, queries: list[_Query]) -> list[str]:
        """The argmax label of each query; queries sharing a token row run together with B = 1."""
        labels: list[str] = [""] * len(queries)
        groups: dict[tuple[int, ...], list[int]] = {}
        for n, q in enumerate(queries):
            groups.setdefault(q.token_ids, []).append(n)
        for row, members in groups.items():
            ids = np.asarray([row], dtype=np.int64)  # [1, T]
            feed = {
                "input_ids": ids,
                "token_type_ids": np.zeros_like(ids),
                "attention_mask": np.ones_like(ids),
                "phoneme_mask": np.stack(
                    [self.tables.phoneme_masks[queries[n].char] for n in members]
                ),  # [N, L]
                "char_ids": np.asarray(
                    [self.tables.char2id[queries[n].char] for n in members], np.int64
                ),  # [N]
                "position_ids": np.asarray([queries[n].position for n in members], np.int64),  # [N]
            }
            probs = self._run(feed)  # [N, L]
            for n, k in zip(members, np.argmax(probs, axis=1).tolist(), strict=True):
                labels[n] = self.tables.labels[k]
        return labels

    def _run(self, feed: dict[str, np.ndarray]) -> np.ndarray:
        session = self.session()
        try:
            probs = session.run(None, feed)[0]
        except Exception as e:  # onnxruntime's errors derive from Exception only
            self.error = f"the G2PW model in {self.files.onnx} failed to run ({e})"
            raise G2PWUnavailableError(self.error) from e
        if probs.shape != (len(feed["char_ids"]), len(self.tables.labels)):
            self.error = (
                f"the G2PW model in {self.files.onnx} returned shape {probs.shape}, expected "
                f"({len(feed['char_ids'])}, {len(self.tables.labels)}): model and tables do not match"
            )
            raise G2PWUnavailableError(self.error + f"; re-download G2PWModel.zip from {G2PW_URL}.")
        return probs

    def session(self):
        """The ONNX Runtime session (CPU), created on first use."""
        if self.error is not None:
            raise G2PWUnavailableError(self.error)
        with self._lock:
            if self._session is None:
                self._session = self._create_session()
        return self._session

    def _create_session(self):
        try:
            import onnxruntime as ort
        except ImportError as e:
            self.error = "the onnxruntime package is not installed (pip install onnxruntime)"
            raise G2PWUnavailableError(self.error) from e
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = self.threads
        opts.inter_op_num_threads = 1
        opts.log_severity_level = 3  # errors only: the export's warnings mean nothing to a user
        try:
            session = ort.InferenceSession(
                str(self.files.onnx), sess_options=opts, providers=["CPUExecutionProvider"]
            )
        except Exception as e:  # onnxruntime's errors derive from Exception only
            self.error = f"{self.files.onnx} is not a readable ONNX model ({e}); re-download G2PWModel.zip from {G2PW_URL}"
            raise G2PWUnavailableError(self.error) from e
        names = {i.name for i in session.get_inputs()}
        if not set(INPUT_NAMES) <= names:
            self.error = f"{self.files.onnx} is not a G2PW model: its inputs are {sorted(names)}, expected {list(INPUT_NAMES)}"
            raise G2PWUnavailableError(self.error)
        return session


def _load_tokenizer(folder: Path):
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
    except (OSError, ValueError) as e:
        raise G2PWUnavailableError(
            f"G2PW cannot read the BERT tokenizer in {folder} ({e}). Download the folder from {BERT_URL}."
        ) from e


def _load_opencc():
    try:
        import opencc
    except ImportError as e:
        raise G2PWUnavailableError(
            "G2PW needs the opencc package (simplified -> traditional conversion): pip install opencc"
        ) from e
    return opencc.OpenCC("s2tw")


def load_g2pw(model_dir: str | Path, threads: int = 2) -> G2PW | None:
    """G2PW from a pretrained-models folder, or None (pypinyin) when it is not installed or not usable.

    Logs which pinyin source the Chinese frontend will use; a folder that is there but broken (missing
    file, unreadable table, missing package) is a warning naming the problem and where to get the files.
    The ONNX session itself is created on first use (see ``G2PW``).
    """
    try:
        files = find_g2pw_files(model_dir)
        if files is None:
            log.info("Chinese pinyin: pypinyin (no G2PW model in %s)", Path(model_dir) / G2PW_FOLDER)
            return None
        g2pw = G2PW(files, threads=threads)
    except G2PWUnavailableError as e:
        log.warning("G2PW polyphone model not used, pypinyin instead: %s", e)
        return None
    log.info("Chinese pinyin: G2PW polyphone model (%s)", files.onnx)
    return g2pw
