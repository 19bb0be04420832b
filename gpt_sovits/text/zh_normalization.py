"""Chinese text normalisation: numbers, dates, times, ranges, percentages, fractions, units, phone numbers.

Verbalises non-standard words into Chinese characters the way the reference frontend does (its
``zh_normalization`` package, after PaddleSpeech). The rules and their order matter for parity: each step
rewrites the output of the previous one, so e.g. dates are handled before bare numbers and phone numbers
before digit strings.
"""

from __future__ import annotations

import json
import re
import string
import unicodedata
from functools import cache
from pathlib import Path

_DATA = Path(__file__).parent / "data"

DIGITS = {str(i): ch for i, ch in enumerate("零一二三四五六七八九")}
# Power of ten -> unit character, largest unit chosen first when verbalising.
UNITS = {1: "十", 2: "百", 3: "千", 4: "万", 8: "亿"}

# Full-width ASCII letters / digits -> half-width.
_F2H = {ord(c) + 65248: ord(c) for c in string.ascii_letters + string.digits}
_F2H[0x3000] = ord(" ")


@cache
def _t2s_table() -> dict[int, str]:
    with open(_DATA / "zh_t2s.json", encoding="utf-8") as f:
        return {ord(k): v for k, v in json.load(f).items()}


def traditional_to_simplified(text: str) -> str:
    """Map traditional characters to simplified ones (character by character)."""
    return text.translate(_t2s_table())


# ---------------------------------------------------------------- numbers


def _value_symbols(digits: str, use_zero: bool = True) -> list[str]:
    stripped = digits.lstrip("0")
    if not stripped:
        return []
    if len(stripped) == 1:
        if use_zero and len(stripped) < len(digits):
            return [DIGITS["0"], DIGITS[stripped]]
        return [DIGITS[stripped]]
    unit = max(p for p in UNITS if p < len(stripped))
    return _value_symbols(digits[:-unit]) + [UNITS[unit]] + _value_symbols(digits[-unit:])


def verbalize_cardinal(digits: str) -> str:
    """ "1205" -> "一千二百零五"; a leading "一十" is shortened to "十"."""
    if not digits:
        return ""
    digits = digits.lstrip("0")
    if not digits:
        return DIGITS["0"]
    symbols = _value_symbols(digits)
    if len(symbols) >= 2 and symbols[0] == DIGITS["1"] and symbols[1] == UNITS[1]:
        symbols = symbols[1:]
    return "".join(symbols)


def verbalize_digits(digits: str, alt_one: bool = False) -> str:
    """Read digit by digit ("110" -> "一一零", or "幺幺零" with ``alt_one`` as in phone numbers)."""
    out = "".join(DIGITS[d] for d in digits)
    return out.replace("一", "幺") if alt_one else out


def num2str(value: str) -> str:
    """A non-negative decimal number string -> Chinese reading ("3.05" -> "三点零五")."""
    parts = value.split(".")
    if len(parts) > 2:
        raise ValueError(f"number {value!r} has more than one decimal point")
    integer, decimal = (parts[0], "") if len(parts) == 1 else parts
    result = verbalize_cardinal(integer)
    # As the reference: trailing zeros collapse to one zero ("3.200" -> "三点二零").
    decimal = decimal.rstrip("0") + "0" if decimal.endswith("0") else decimal.rstrip("0")
    if decimal:
        result = (result or "零") + "点" + verbalize_digits(decimal)
    return result


_NUM = r"(-?)((\d+)(\.\d+)?)|(\.(\d+))"
RE_NUMBER = re.compile(_NUM)
RE_DECIMAL_NUM = re.compile(r"(-?)((\d+)(\.\d+))|(\.(\d+))")
RE_FRAC = re.compile(r"(-?)(\d+)/(\d+)")
RE_PERCENTAGE = re.compile(r"(-?)(\d+(\.\d+)?)%")
RE_INTEGER = re.compile(r"(-)(\d+)")
RE_DEFAULT_NUM = re.compile(r"\d{3}\d*")
RE_VERSION_NUM = re.compile(r"((\d+)(\.\d+)(\.\d+)?(\.\d+)+)")
_POW = "⁰¹²³⁴⁵⁶⁷⁸⁹ˣʸⁿ"
_OPERAND = rf"((-?)((\d+)(\.\d+)?[{_POW}]*)|(\.\d+[{_POW}]*)|([A-Za-z][{_POW}]*))"
RE_ASMD = re.compile(_OPERAND + r"([\+\-\×÷=])" + _OPERAND)
RE_POWER = re.compile(f"[{_POW}]+")
_POWER_MAP = dict(zip(_POW, "0123456789xyn", strict=True))
_ASMD_MAP = {"+": "加", "-": "减", "×": "乘", "÷": "除", "=": "等于"}

_QUANTIFIERS = (
    "(处|台|架|枚|趟|幅|平|方|堵|间|床|株|批|项|例|列|篇|栋|注|亩|封|艘|把|目|套|段|人|所|朵|匹|张|座|回|场|尾|条|个|"
    "首|阙|阵|网|炮|顶|丘|棵|只|支|袭|辆|挑|担|颗|壳|窠|曲|墙|群|腔|砣|座|客|贯|扎|捆|刀|令|打|手|罗|坡|山|岭|江|溪|"
    "钟|队|单|双|对|出|口|头|脚|板|跳|枝|件|贴|针|线|管|名|位|身|堂|课|本|页|家|户|层|丝|毫|厘|分|钱|两|斤|担|铢|石|钧|"
    "锱|忽|(千|毫|微)克|毫|厘|(公)分|分|寸|尺|丈|里|寻|常|铺|程|(千|分|厘|毫|微)米|米|撮|勺|合|升|斗|石|盘|碗|碟|叠|桶|"
    "笼|盆|盒|杯|钟|斛|锅|簋|篮|盘|桶|罐|瓶|壶|卮|盏|箩|箱|煲|啖|袋|钵|年|月|日|季|刻|时|周|天|秒|分|小时|旬|纪|岁|世|"
    "更|夜|春|夏|秋|冬|代|伏|辈|丸|泡|粒|颗|幢|堆|条|根|支|道|面|片|张|颗|块|元|(亿|千万|百万|万|千|百)|"
    "(亿|千万|百万|万|千|百|美|)元|(亿|千万|百万|万|千|百|十|)吨|(亿|千万|百万|万|千|百|)块|角|毛|分)"
)
RE_POSITIVE_QUANTIFIERS = re.compile(r"(\d+)([多余几\+])?" + _QUANTIFIERS)

RE_RANGE = re.compile(r"(?<![\d\+\-\×÷=])((-?)((\d+)(\.\d+)?))[-~]((-?)((\d+)(\.\d+)?))(?![\d\+\-\×÷=])")
_UNIT_ALT = "(%|°C|℃|度|摄氏度|cm2|cm²|cm3|cm³|cm|db|ds|kg|km|m2|m²|m³|m3|ml|m|mm|s)"
RE_TO_RANGE = re.compile(_NUM.join("()") + _UNIT_ALT + "[~]" + _NUM.join("()") + _UNIT_ALT)


def _sign(s: str, word: str = "负") -> str:
    return word if s else ""


def _replace_frac(m: re.Match) -> str:
    return f"{_sign(m.group(1))}{num2str(m.group(3))}分之{num2str(m.group(2))}"


def _replace_percentage(m: re.Match) -> str:
    return f"{_sign(m.group(1))}百分之{num2str(m.group(2))}"


def _replace_negative(m: re.Match) -> str:
    return f"{_sign(m.group(1))}{num2str(m.group(2))}"


def _replace_default_num(m: re.Match) -> str:
    return verbalize_digits(m.group(0), alt_one=True)


def _replace_asmd(m: re.Match) -> str:
    return m.group(1) + _ASMD_MAP[m.group(8)] + m.group(9)


def _replace_power(m: re.Match) -> str:
    return "的" + "".join(_POWER_MAP[c] for c in m.group(0)) + "次方"


def _replace_quantifier(m: re.Match) -> str:
    number = num2str(m.group(1))
    number = "两" if number == "二" else number
    more = m.group(2) or ""
    more = "多" if more == "+" else more
    return f"{number}{more}{m.group(3)}"


def _replace_number(m: re.Match) -> str:
    if m.group(5):  # ".5" style
        return num2str(m.group(5))
    return f"{_sign(m.group(1))}{num2str(m.group(2))}"


def _replace_range(m: re.Match) -> str:
    first = RE_NUMBER.sub(_replace_number, m.group(1))
    second = RE_NUMBER.sub(_replace_number, m.group(6))
    return f"{first}到{second}"


def _replace_to_range(m: re.Match) -> str:
    return m.group(0).replace("~", "至")


def _replace_version(m: re.Match) -> str:
    return "".join("点" if c == "." else num2str(c) for c in m.group(1))


# ---------------------------------------------------------------- dates and times

_TIME = r"([0-1]?[0-9]|2[0-3]):([0-5][0-9])(:([0-5][0-9]))?"
RE_TIME = re.compile(_TIME)
RE_TIME_RANGE = re.compile(_TIME + r"(~|-)" + _TIME)
RE_DATE = re.compile(r"(\d{4}|\d{2})年((0?[1-9]|1[0-2])月)?(((0?[1-9])|((1|2)[0-9])|30|31)([日号]))?")
RE_DATE2 = re.compile(r"(\d{4})([- /.])(0[1-9]|1[012])\2(0[1-9]|[12][0-9]|3[01])")


def _time_num(num: str) -> str:
    out = num2str(num.lstrip("0"))
    return DIGITS["0"] + out if num.startswith("0") else out


def _replace_time(m: re.Match) -> str:
    is_range = len(m.groups()) > 5
    hour, minute, second = m.group(1), m.group(2), m.group(4)
    out = f"{num2str(hour)}点"
    if minute.lstrip("0"):
        out += "半" if int(minute) == 30 else f"{_time_num(minute)}分"
    if second and second.lstrip("0"):
        out += f"{_time_num(second)}秒"
    if is_range:
        hour2, minute2, second2 = m.group(6), m.group(7), m.group(9)
        out += f"至{num2str(hour2)}点"
        if minute2.lstrip("0"):
            # The reference tests the first minute here; kept for identical output.
            out += "半" if int(minute) == 30 else f"{_time_num(minute2)}分"
        if second2 and second2.lstrip("0"):
            out += f"{_time_num(second2)}秒"
    return out


def _replace_date(m: re.Match) -> str:
    year, month, day = m.group(1), m.group(3), m.group(5)
    out = f"{verbalize_digits(year)}年" if year else ""
    if month:
        out += f"{verbalize_cardinal(month)}月"
    if day:
        out += f"{verbalize_cardinal(day)}{m.group(9)}"
    return out


def _replace_date2(m: re.Match) -> str:
    year, month, day = m.group(1), m.group(3), m.group(4)
    return f"{verbalize_digits(year)}年{verbalize_cardinal(month)}月{verbalize_cardinal(day)}日"


# ---------------------------------------------------------------- phones, temperature, units

RE_MOBILE_PHONE = re.compile(r"(?<!\d)((\+?86 ?)?1([38]\d|5[0-35-9]|7[678]|9[89])\d{8})(?!\d)")
RE_TELEPHONE = re.compile(r"(?<!\d)((0(10|2[1-3]|[3-9]\d{2})-?)?[1-9]\d{6,7})(?!\d)")
RE_NATIONAL_UNIFORM_NUMBER = re.compile(r"(400)(-)?\d{3}(-)?\d{4}")
RE_TEMPERATURE = re.compile(r"(-?)(\d+(\.\d+)?)(°C|℃|度|摄氏度)")
# Order matters: longer symbols first where one is a prefix of another ("cm2" before "cm").
MEASURES = {
    "cm2": "平方厘米",
    "cm²": "平方厘米",
    "cm3": "立方厘米",
    "cm³": "立方厘米",
    "cm": "厘米",
    "db": "分贝",
    "ds": "毫秒",
    "kg": "千克",
    "km": "千米",
    "m2": "平方米",
    "m²": "平方米",
    "m³": "立方米",
    "m3": "立方米",
    "ml": "毫升",
    "m": "米",
    "mm": "毫米",
    "s": "秒",
}


def _replace_mobile(m: re.Match) -> str:
    return "，".join(verbalize_digits(p, alt_one=True) for p in m.group(0).strip("+").split())


def _replace_phone(m: re.Match) -> str:
    return "，".join(verbalize_digits(p, alt_one=True) for p in m.group(0).split("-"))


def _replace_temperature(m: re.Match) -> str:
    unit = "摄氏度" if m.group(4) == "摄氏度" else "度"
    return f"{_sign(m.group(1), '零下')}{num2str(m.group(2))}{unit}"


def _replace_measures(sentence: str) -> str:
    for symbol, word in MEASURES.items():
        sentence = sentence.replace(symbol, word)
    return sentence


# ---------------------------------------------------------------- sentence level

_SENTENCE_SPLIT = re.compile(r"([：、，；。？！,;?!][”’]?)")
_GREEK = {
    "α": "阿尔法",
    "β": "贝塔",
    "γ": "伽玛",
    "Γ": "伽玛",
    "δ": "德尔塔",
    "Δ": "德尔塔",
    "ε": "艾普西龙",
    "ζ": "捷塔",
    "η": "依塔",
    "θ": "西塔",
    "Θ": "西塔",
    "ι": "艾欧塔",
    "κ": "喀帕",
    "λ": "拉姆达",
    "Λ": "拉姆达",
    "μ": "缪",
    "ν": "拗",
    "ξ": "克西",
    "Ξ": "克西",
    "ο": "欧米克伦",
    "π": "派",
    "Π": "派",
    "ρ": "肉",
    "ς": "西格玛",
    "Σ": "西格玛",
    "σ": "西格玛",
    "τ": "套",
    "υ": "宇普西龙",
    "φ": "服艾",
    "Φ": "服艾",
    "χ": "器",
    "ψ": "普赛",
    "Ψ": "普赛",
    "ω": "欧米伽",
    "Ω": "欧米伽",
}
_CIRCLED = dict(zip("①②③④⑤⑥⑦⑧⑨⑩", "一二三四五六七八九十", strict=True))
_OPS = {"+": "加", "-": "减", "×": "乘", "÷": "除", "=": "等"}


def split_sentences(text: str) -> list[str]:
    """Remove spaces and bracket-like symbols, then split after sentence punctuation."""
    text = text.replace(" ", "")
    text = re.sub(r"[——《》【】<>{}()（）#&@“”^_|\\]", "", text)
    text = _SENTENCE_SPLIT.sub(r"\1\n", text).strip()
    return [s.strip() for s in re.split(r"\n+", text)]


def _post_replace(sentence: str) -> str:
    sentence = sentence.replace("/", "每")
    for table in (_CIRCLED, _GREEK, _OPS):
        for k, v in table.items():
            sentence = sentence.replace(k, v)
    return re.sub(r"[-——《》【】<=>{}()（）#&@“”^_|\\]", "", sentence)


def _ascii_digits(text: str) -> str:
    # Other scripts' decimal digits match the regexes' \d but not the digit table (the reference raises a
    # KeyError on them); read them as their ASCII values.
    if text.isascii():
        return text
    return "".join(str(unicodedata.decimal(c)) if c.isdecimal() and not c.isascii() else c for c in text)


def normalize_sentence(sentence: str) -> str:
    """Verbalise one sentence."""
    s = _ascii_digits(traditional_to_simplified(sentence).translate(_F2H))
    s = RE_DATE.sub(_replace_date, s)
    s = RE_DATE2.sub(_replace_date2, s)
    s = RE_TIME_RANGE.sub(_replace_time, s)
    s = RE_TIME.sub(_replace_time, s)
    s = RE_TO_RANGE.sub(_replace_to_range, s)
    s = RE_TEMPERATURE.sub(_replace_temperature, s)
    s = _replace_measures(s)
    while RE_ASMD.search(s):
        s = RE_ASMD.sub(_replace_asmd, s)
    s = RE_POWER.sub(_replace_power, s)
    s = RE_FRAC.sub(_replace_frac, s)
    s = RE_PERCENTAGE.sub(_replace_percentage, s)
    s = RE_MOBILE_PHONE.sub(_replace_mobile, s)
    s = RE_TELEPHONE.sub(_replace_phone, s)
    s = RE_NATIONAL_UNIFORM_NUMBER.sub(_replace_phone, s)
    s = RE_RANGE.sub(_replace_range, s)
    s = RE_INTEGER.sub(_replace_negative, s)
    s = RE_VERSION_NUM.sub(_replace_version, s)
    s = RE_DECIMAL_NUM.sub(_replace_number, s)
    s = RE_POSITIVE_QUANTIFIERS.sub(_replace_quantifier, s)
    s = RE_DEFAULT_NUM.sub(_replace_default_num, s)
    s = RE_NUMBER.sub(_replace_number, s)
    return _post_replace(s)


def normalize(text: str) -> list[str]:
    """Split ``text`` into sentences and verbalise each (the reference ``TextNormalizer().normalize``)."""
    return [normalize_sentence(s) for s in split_sentences(text)]
