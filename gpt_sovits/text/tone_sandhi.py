"""Mandarin tone sandhi on pypinyin finals (the reference's ``ToneSandhi``, after PaddleSpeech).

Finals carry their tone as a trailing digit ("ao3", "e5"). Two stages:
``pre_merge`` regroups jieba's (word, pos) segmentation so that 不/一, reduplications, third-tone runs
and 儿 sit inside one word; ``modified_tone`` then rewrites the finals of each word: 不 sandhi,
一 sandhi, neutral tone, third-tone sandhi, in that order.
"""

from __future__ import annotations

import contextlib
import json
from functools import cache
from pathlib import Path

_DATA = Path(__file__).parent / "data"
_PUNC = "：，；。？！“”‘’':,;.?!"
_NEUTRAL_ENDINGS = "吧呢哈啊呐噻嘛吖嗨呐哦哒额滴哩哟喽啰耶喔诶"

Seg = list[list[str]]  # [[word, pos], ...]


@cache
def _word_lists() -> tuple[frozenset[str], frozenset[str]]:
    with open(_DATA / "zh_neutral_tone_words.json", encoding="utf-8") as f:
        d = json.load(f)
    return frozenset(d["must_neutral_tone_words"]), frozenset(d["must_not_neutral_tone_words"])


def _tone(final: str, tone: str) -> str:
    return final[:-1] + tone


def _all_third(finals: list[str]) -> bool:
    return all(f[-1] == "3" for f in finals)


def _finals(word: str) -> list[str]:
    from pypinyin import Style, lazy_pinyin

    return lazy_pinyin(word, neutral_tone_with_five=True, style=Style.FINALS_TONE3)


def _is_reduplication(word: str) -> bool:
    return len(word) == 2 and word[0] == word[1]


class ToneSandhi:
    """Tone sandhi rules; the word lists load on first use."""

    def __init__(self) -> None:
        self.must_neutral, self.must_not_neutral = _word_lists()

    # ------------------------------------------------------------ per-word rules

    def _split_word(self, word: str) -> list[str]:
        # The shortest search-mode sub-word splits the word in two (prefix + rest, or rest + suffix).
        import jieba_fast as jieba

        subwords = sorted(jieba.cut_for_search(word), key=len)
        first = subwords[0]
        if word.find(first) == 0:
            return [first, word[len(first) :]]
        return [word[: -len(first)], first]

    def _neutral_sandhi(self, word: str, pos: str, finals: list[str]) -> list[str]:
        for j, ch in enumerate(word):
            # Reduplicated nouns/verbs/adjectives: 奶奶, 试试.
            if j >= 1 and ch == word[j - 1] and pos[0] in "nva" and word not in self.must_not_neutral:
                finals[j] = _tone(finals[j], "5")
        ge = word.find("个")
        if word and word[-1] in _NEUTRAL_ENDINGS:
            finals[-1] = _tone(finals[-1], "5")
        elif word and word[-1] in "的地得":
            finals[-1] = _tone(finals[-1], "5")
        elif len(word) == 1 and word in "了着过" and pos in {"ul", "uz", "ug"}:
            finals[-1] = _tone(finals[-1], "5")
        elif len(word) > 1 and word[-1] in "们子" and pos in {"r", "n"} and word not in self.must_not_neutral:
            finals[-1] = _tone(finals[-1], "5")
        elif len(word) > 1 and word[-1] in "上下里" and pos in {"s", "l", "f"}:
            finals[-1] = _tone(finals[-1], "5")
        elif len(word) > 1 and word[-1] in "来去" and word[-2] in "上下进出回过起开":
            finals[-1] = _tone(finals[-1], "5")
        elif (
            ge >= 1 and (word[ge - 1].isnumeric() or word[ge - 1] in "几有两半多各整每做是")
        ) or word == "个":
            finals[ge] = _tone(finals[ge], "5")
        elif word in self.must_neutral or word[-2:] in self.must_neutral:
            finals[-1] = _tone(finals[-1], "5")

        parts = self._split_word(word)
        groups = [finals[: len(parts[0])], finals[len(parts[0]) :]]
        for i, part in enumerate(parts):
            if part in self.must_neutral or part[-2:] in self.must_neutral:
                groups[i][-1] = _tone(groups[i][-1], "5")
        return groups[0] + groups[1]

    def _bu_sandhi(self, word: str, finals: list[str]) -> list[str]:
        if len(word) == 3 and word[1] == "不":  # 看不懂
            finals[1] = _tone(finals[1], "5")
        else:
            for i, ch in enumerate(word):
                if ch == "不" and i + 1 < len(word) and finals[i + 1][-1] == "4":  # 不怕 -> bu2
                    finals[i] = _tone(finals[i], "2")
        return finals

    def _yi_sandhi(self, word: str, finals: list[str]) -> list[str]:
        if "一" in word and all(ch.isnumeric() for ch in word if ch != "一"):
            return finals  # a digit sequence: 一零零
        if len(word) == 3 and word[1] == "一" and word[0] == word[-1]:
            finals[1] = _tone(finals[1], "5")  # 看一看
        elif word.startswith("第一"):
            finals[1] = _tone(finals[1], "1")
        else:
            for i, ch in enumerate(word):
                if ch == "一" and i + 1 < len(word):
                    if finals[i + 1][-1] == "4":
                        finals[i] = _tone(finals[i], "2")  # 一段
                    elif word[i + 1] not in _PUNC:
                        finals[i] = _tone(finals[i], "4")  # 一天
        return finals

    def _three_sandhi(self, word: str, finals: list[str]) -> list[str]:
        if len(word) == 2 and _all_third(finals):
            finals[0] = _tone(finals[0], "2")
        elif len(word) == 3:
            parts = self._split_word(word)
            if _all_third(finals):
                if len(parts[0]) == 2:  # 蒙古/包
                    finals[0] = _tone(finals[0], "2")
                    finals[1] = _tone(finals[1], "2")
                elif len(parts[0]) == 1:  # 纸/老虎
                    finals[1] = _tone(finals[1], "2")
            else:
                groups = [finals[: len(parts[0])], finals[len(parts[0]) :]]
                for i, sub in enumerate(groups):
                    if _all_third(sub) and len(sub) == 2:  # 所有/人
                        groups[i][0] = _tone(groups[i][0], "2")
                    elif (
                        i == 1
                        and not _all_third(sub)
                        and groups[i][0][-1] == "3"
                        and groups[0][-1][-1] == "3"
                    ):
                        groups[0][-1] = _tone(groups[0][-1], "2")  # 好/喜欢
                finals = groups[0] + groups[1]
        elif len(word) == 4:  # idioms: two words of two
            out: list[str] = []
            for sub in (finals[:2], finals[2:]):
                if _all_third(sub):
                    sub[0] = _tone(sub[0], "2")
                out += sub
            finals = out
        return finals

    def modified_tone(self, word: str, pos: str, finals: list[str]) -> list[str]:
        """Apply the per-word sandhi rules to ``finals`` (one per character of ``word``)."""
        finals = self._bu_sandhi(word, finals)
        finals = self._yi_sandhi(word, finals)
        finals = self._neutral_sandhi(word, pos, finals)
        return self._three_sandhi(word, finals)

    # ------------------------------------------------------------ regrouping

    @staticmethod
    def _merge_bu(seg: list[tuple[str, str]]) -> Seg:
        out: Seg = []
        last = ""
        for word, pos in seg:
            if last == "不":
                word = last + word
            if word != "不":
                out.append([word, pos])
            last = word
        if last == "不":
            out.append([last, "d"])
        return out

    @staticmethod
    def _merge_yi(seg: Seg) -> Seg:
        out: Seg = []
        i = 0
        while i < len(seg):  # 听 一 听 -> 听一听
            word, pos = seg[i]
            if i >= 1 and word == "一" and i + 1 < len(seg):
                last = out[-1] if out else seg[i - 1]
                if last[0] == seg[i + 1][0] and last[1] == "v" and seg[i + 1][1] == "v":
                    out[-1] = [last[0] + "一" + seg[i + 1][0], last[1]]
                    i += 2
                    continue
            out.append([word, pos])
            i += 1
        merged: Seg = []
        for word, pos in out:  # a lone 一 joins the next word
            if merged and merged[-1][0] == "一":
                merged[-1][0] += word
            else:
                merged.append([word, pos])
        return merged

    @staticmethod
    def _merge_reduplication(seg: Seg) -> Seg:
        out: Seg = []
        for word, pos in seg:
            if out and word == out[-1][0]:
                out[-1][0] += word
            else:
                out.append([word, pos])
        return out

    @staticmethod
    def _merge_third_tones(seg: Seg, whole_words: bool) -> Seg:
        # whole_words: both words entirely third tone; else the boundary syllables are third tone.
        finals = [_finals(w) for w, _ in seg]
        out: Seg = []
        merged_last = [False] * len(seg)
        for i, (word, pos) in enumerate(seg):
            if i >= 1 and not merged_last[i - 1]:
                if whole_words:
                    hit = _all_third(finals[i - 1]) and _all_third(finals[i])
                else:
                    hit = finals[i - 1][-1][-1] == "3" and finals[i][0][-1] == "3"
                if hit and not _is_reduplication(seg[i - 1][0]) and len(seg[i - 1][0]) + len(word) <= 3:
                    out[-1][0] += word
                    merged_last[i] = True
                    continue
            out.append([word, pos])
        return out

    @staticmethod
    def _merge_er(seg: Seg) -> Seg:
        out: Seg = []
        for i, (word, pos) in enumerate(seg):
            if i >= 1 and word == "儿" and seg[i - 1][0] != "#":
                out[-1][0] += word
            else:
                out.append([word, pos])
        return out

    def pre_merge(self, seg: list[tuple[str, str]]) -> Seg:
        """Regroup a jieba (word, pos) segmentation before the per-word rules."""
        merged = self._merge_bu(seg)
        # The reference wraps these steps in try/except and keeps the previous grouping on failure
        # (an empty word makes the index lookups fail); the same here.
        with contextlib.suppress(IndexError):
            merged = self._merge_yi(merged)
        merged = self._merge_reduplication(merged)
        for whole in (True, False):
            with contextlib.suppress(IndexError):
                merged = self._merge_third_tones(merged, whole)
        return self._merge_er(merged)
