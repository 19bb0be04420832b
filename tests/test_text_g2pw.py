"""The optional G2PW polyphone model: selection, inputs/outputs of the ONNX session, fallbacks.

A tiny G2PW model folder is built in the official layout (traditional-character tables, bopomofo labels,
``g2pW.onnx`` with the official input names) with a tiny BERT tokenizer. The tiny model's scores are set
by hand so that each expected reading is known from the construction:

    logits[n] = W_CHAR[char_ids[n]] + W_NEXT[token after position_ids[n]]   probs = softmax(logits | mask)

W_CHAR gives each character a "decoy" label that is not one of its readings (wins only if phoneme_mask is
wrong); W_NEXT makes 長 read chang2 when 高 follows (wrong position_ids or token ids lose the context).
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gpt_sovits.text import clean_text
from gpt_sovits.text.chinese import pinyin_backend
from gpt_sovits.text.g2pw import (
    BERT_FOLDER,
    G2PW,
    G2PW_FOLDER,
    G2PW_URL,
    TABLE_FILES,
    find_g2pw_files,
    load_g2pw,
    polyphonic_dict,
    read_config,
)

POLYPHONIC = [
    ("長", "ㄓㄤ3"),
    ("長", "ㄔㄤ2"),
    ("重", "ㄓㄨㄥ4"),
    ("重", "ㄔㄨㄥ2"),
    ("廈", "ㄒㄧㄚ4"),
    ("廈", "ㄕㄚ4"),
    ("一", "ㄧ1"),
    ("一", "ㄧ2"),
]
MONOPHONIC = [("天", "ㄊㄧㄢ1"), ("好", "ㄏㄠ4")]  # 好 hao4 on purpose: pypinyin says hao3
BOPOMOFO = {
    "ㄓㄤ": "zhang",
    "ㄔㄤ": "chang",
    "ㄓㄨㄥ": "zhong",
    "ㄔㄨㄥ": "chong",
    "ㄒㄧㄚ": "xia",
    "ㄕㄚ": "sha",
    "ㄧ": "yi",
    "ㄊㄧㄢ": "tian",
    "ㄏㄠ": "hao",
}
# (character, label) -> score; the decoys are other characters' readings.
W_CHAR = {
    ("長", "ㄔㄨㄥ2"): 10.0,  # decoy
    ("長", "ㄓㄤ3"): 2.0,
    ("重", "ㄓㄤ3"): 10.0,  # decoy
    ("重", "ㄔㄨㄥ2"): 3.0,  # the model says chong2 where pypinyin says zhong4
    ("重", "ㄓㄨㄥ4"): 2.0,
    ("廈", "ㄒㄧㄚ4"): 3.0,  # the word table corrects 大厦 to sha4
    ("一", "ㄧ2"): 5.0,  # never asked: 一 is left to pypinyin
}
W_NEXT = {("高", "ㄔㄤ2"): 5.0}
VOCAB_CHARS = "長长重廈厦一天好高度他很我了大們们去公園园吧今氣气，。"
PUNCT = list("!?…,.-")


def _labels() -> list[str]:
    # The model's label order: sorted readings, as the reference builds it.
    return sorted({p for _, p in POLYPHONIC})


def _vocab() -> list[str]:
    return ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *PUNCT, *dict.fromkeys(VOCAB_CHARS)]


def _write_tiny_onnx(path: Path) -> None:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    labels, vocab = _labels(), _vocab()
    chars = sorted({c for c, _ in POLYPHONIC})
    w_char = np.zeros((len(chars), len(labels)), np.float32)
    for (c, p), v in W_CHAR.items():
        w_char[chars.index(c), labels.index(p)] = v
    w_next = np.zeros((len(vocab), len(labels)), np.float32)
    for (c, p), v in W_NEXT.items():
        w_next[vocab.index(c), labels.index(p)] = v
    ints = {"input_ids", "token_type_ids", "attention_mask"}
    inputs = [helper.make_tensor_value_info(n, TensorProto.INT64, ["B", "T"]) for n in sorted(ints)]
    inputs += [
        helper.make_tensor_value_info("phoneme_mask", TensorProto.FLOAT, ["N", len(labels)]),
        helper.make_tensor_value_info("char_ids", TensorProto.INT64, ["N"]),
        helper.make_tensor_value_info("position_ids", TensorProto.INT64, ["N"]),
    ]
    init = [
        numpy_helper.from_array(w_char, "w_char"),
        numpy_helper.from_array(w_next, "w_next"),
        numpy_helper.from_array(np.array(1, np.int64), "one"),
        numpy_helper.from_array(np.array([1], np.int64), "axis1"),
        numpy_helper.from_array(np.array([0.0, 1.0], np.float32), "onehot_values"),
        numpy_helper.from_array(np.array(1.0, np.float32), "one_f"),
        numpy_helper.from_array(np.array(1e4, np.float32), "big"),
    ]
    n = helper.make_node
    nodes = [
        # token after the query: input_ids[b, position_ids + 1], b = the query's row (or row 0 when B = 1)
        n("Shape", ["input_ids"], ["shape"]),
        n("Gather", ["shape", "one"], ["t_len"], axis=0),
        n("Add", ["position_ids", "one"], ["next_pos"]),
        n("OneHot", ["next_pos", "t_len", "onehot_values"], ["pick"], axis=-1),  # [N, T]
        n("Cast", ["input_ids"], ["ids_f"], to=TensorProto.FLOAT),  # [B, T]
        n("Mul", ["pick", "ids_f"], ["picked"]),  # [N, T]
        n("ReduceSum", ["picked", "axis1"], ["next_f"], keepdims=0),  # [N]
        n("Cast", ["next_f"], ["next_tok"], to=TensorProto.INT64),
        n("Gather", ["w_next", "next_tok"], ["ctx"], axis=0),  # [N, L]
        n("Gather", ["w_char", "char_ids"], ["own"], axis=0),  # [N, L]
        n("Add", ["own", "ctx"], ["logits"]),
        # labels outside the mask get -1e4 before the softmax
        n("Sub", ["phoneme_mask", "one_f"], ["off"]),
        n("Mul", ["off", "big"], ["penalty"]),
        n("Add", ["logits", "penalty"], ["masked"]),
        n("Softmax", ["masked"], ["probs"], axis=-1),
    ]
    out = [helper.make_tensor_value_info("probs", TensorProto.FLOAT, ["N", len(labels)])]
    graph = helper.make_graph(nodes, "tiny_g2pw", inputs, out, init)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    path.write_bytes(model.SerializeToString())


def build_tiny_g2pw_root(root: Path) -> Path:
    """A pretrained-models folder holding G2PWModel/ and the BERT tokenizer folder."""
    from transformers import BertTokenizer

    bert = root / BERT_FOLDER
    bert.mkdir(parents=True)
    (bert / "vocab.txt").write_text("\n".join(_vocab()) + "\n", encoding="utf-8")
    BertTokenizer(str(bert / "vocab.txt")).save_pretrained(bert)
    folder = root / G2PW_FOLDER
    folder.mkdir()
    (folder / "POLYPHONIC_CHARS.txt").write_text(
        "\n".join(f"{c}\t{p}" for c, p in POLYPHONIC) + "\n", "utf-8"
    )
    (folder / "MONOPHONIC_CHARS.txt").write_text(
        "\n".join(f"{c}\t{p}" for c, p in MONOPHONIC) + "\n", "utf-8"
    )
    (folder / "bopomofo_to_pinyin_wo_tune_dict.json").write_text(json.dumps(BOPOMOFO), "utf-8")
    (folder / "char_bopomofo_dict.json").write_text(json.dumps({"天": ["ㄊㄧㄢ1"]}), "utf-8")
    # Python that must never run: only literal assignments are read from config.py.
    (folder / "config.py").write_text(
        "raise SystemExit('config.py was executed')\nuse_mask = True\nuse_char_phoneme = False\n"
        "model_source = 'bert-base-chinese'\n",
        "utf-8",
    )
    _write_tiny_onnx(folder / "g2pW.onnx")
    return root


@pytest.fixture(scope="module")
def tiny_root(tmp_path_factory) -> Path:
    return build_tiny_g2pw_root(tmp_path_factory.mktemp("pretrained"))


@pytest.fixture
def root_copy(tiny_root, tmp_path) -> Path:
    """A copy the test may break."""
    return Path(shutil.copytree(tiny_root, tmp_path / "pretrained"))


@pytest.fixture(scope="module")
def g2pw(tiny_root) -> G2PW:
    g = load_g2pw(tiny_root)
    assert g is not None
    return g


def _pypinyin(text: str, version: str = "v2"):
    return clean_text(text, "zh", version)


def test_selected_when_present_and_reported(tiny_root, caplog):
    with caplog.at_level(logging.INFO, logger="gpt_sovits.text.g2pw"):
        g = load_g2pw(tiny_root)
    assert isinstance(g, G2PW)
    assert pinyin_backend(g) == "g2pw"
    assert pinyin_backend() == "pypinyin"
    assert [r.levelno for r in caplog.records] == [logging.INFO]
    assert "G2PW" in caplog.text and "g2pW.onnx" in caplog.text


def test_config_py_is_read_not_executed(tiny_root):
    cfg = read_config(tiny_root / G2PW_FOLDER / "config.py")
    assert cfg == {"use_mask": True, "use_char_phoneme": False}


def test_argmax_over_the_allowed_readings(g2pw):
    # 長 alone: the decoy chong2 scores highest but is masked out -> zhang3; with 高 next -> chang2.
    assert g2pw.pinyins(["长", "长高", "我长高了", "重"]) == [
        ["zhang3"],
        ["chang2", "gao1"],
        ["wo3", "chang2", "gao1", "le5"],
        ["chong2"],
    ]


def test_monophonic_table_and_pypinyin_for_the_rest(g2pw):
    from pypinyin import Style, pinyin

    # 好: the monophonic table (hao4 here) wins over pypinyin; 一 is never sent to the model (pypinyin yi1).
    assert g2pw.pinyins(["好", "一"]) == [["hao4"], ["yi1"]]
    text = "他去公园吧，"
    want = [p[0] for p in pinyin(text, neutral_tone_with_five=True, style=Style.TONE3)]
    assert g2pw.pinyins([text]) == [want]


def test_session_inputs_one_row_per_sentence_and_context_crop(tiny_root):
    g = load_g2pw(tiny_root)
    feeds = []

    class Recorder:
        def __init__(self, session):
            self.session = session

        def run(self, names, feed):
            feeds.append({k: v.copy() for k, v in feed.items()})
            return self.session.run(names, feed)

    g._session = Recorder(g.session())
    sentence = "长" + "天" * 30 + "重"  # polyphones at 0 and 31: the text is cropped to [0, 32)
    long_tail = "长" + "天" * 40  # one polyphone at 0: 16 characters of context are kept after it
    out = g.pinyins([sentence, long_tail])
    assert out[0][0] == "zhang3" and out[0][-1] == "chong2" and out[1][0] == "zhang3"
    assert len(feeds) == 2
    both, one = feeds
    assert both["input_ids"].shape == (1, 32 + 2)  # one token row shared by the two queries ([CLS] ... [SEP])
    assert both["position_ids"].tolist() == [1, 32]
    assert both["phoneme_mask"].shape == (2, len(_labels()))
    assert one["input_ids"].shape == (1, 1 + 16 + 2)
    labels = _labels()
    allowed = {labels.index("ㄓㄤ3"), labels.index("ㄔㄤ2")}
    assert set(np.flatnonzero(one["phoneme_mask"][0]).tolist()) == allowed
    assert one["char_ids"].dtype == np.int64 and one["phoneme_mask"].dtype == np.float32


def test_over_512_tokens_uses_a_window_around_each_query(g2pw):
    # 602 characters between two polyphones: each query gets its own 510-token window.
    text = "长" + "天" * 600 + "长高"
    out = g2pw.pinyins([text])[0]
    assert out[0] == "zhang3" and out[601] == "chang2"


def test_clean_text_uses_g2pw_and_stays_aligned(g2pw):
    phones, word2ph, norm = clean_text("他很重", "zh", "v2", g2pw=g2pw)
    assert phones[-2:] == ["ch", "ong2"]
    assert _pypinyin("他很重")[0][-2:] == ["zh", "ong4"]
    phones, _, _ = clean_text("我长高了", "zh", "v2", g2pw=g2pw)
    assert phones[2:4] == ["ch", "ang2"]
    text = "2024年3月5日，他很重。我长高了！大厦里有123个人，一起去公园吧？"
    phones, word2ph, norm = clean_text(text, "zh", "v2", g2pw=g2pw)
    assert len(word2ph) == len(norm) and sum(word2ph) == len(phones)
    assert "UNK" not in phones


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(
    st.one_of(
        st.text(max_size=30),
        st.text(alphabet=st.sampled_from(list("长重厦一不天好高度儿了，。！？ 123abc…—%")), max_size=40),
    )
)
def test_any_text_stays_aligned_and_in_the_symbol_table(g2pw, text):
    from gpt_sovits.text.symbols import get_symbols

    phones, word2ph, norm = clean_text(text, "zh", "v2", g2pw=g2pw)
    assert len(word2ph) == len(norm) and sum(word2ph) == len(phones)
    assert set(phones) <= set(get_symbols("v2"))
    assert g2pw.usable


def test_word_table_corrects_the_model(g2pw):
    assert polyphonic_dict()["大厦"] == ("da4", "sha4")
    assert g2pw.pinyins(["大厦"]) == [["da4", "xia4"]]  # the model's reading
    assert clean_text("大厦", "zh", "v2", g2pw=g2pw)[0] == ["d", "a4", "sh", "a4"]


def test_text_without_table_characters_reads_as_pypinyin(g2pw):
    text = "我们一起去公园散步吧！他很开心。"
    assert clean_text(text, "zh", "v2", g2pw=g2pw) == _pypinyin(text)


def test_v1_never_uses_g2pw(g2pw):
    assert clean_text("他很重", "zh", "v1", g2pw=g2pw) == _pypinyin("他很重", "v1")


def test_not_installed_is_pypinyin(tmp_path, caplog):
    with caplog.at_level(logging.INFO, logger="gpt_sovits.text.g2pw"):
        assert load_g2pw(tmp_path) is None
    assert find_g2pw_files(tmp_path) is None
    assert "pypinyin" in caplog.text
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


@pytest.mark.parametrize("missing", ["g2pW.onnx", *TABLE_FILES])
def test_missing_file_falls_back_with_a_message(root_copy, caplog, missing):
    (root_copy / G2PW_FOLDER / missing).unlink()
    with caplog.at_level(logging.WARNING):
        assert load_g2pw(root_copy) is None
    assert missing in caplog.text and G2PW_URL in caplog.text


def test_missing_tokenizer_falls_back_with_a_message(root_copy, caplog):
    shutil.rmtree(root_copy / BERT_FOLDER)
    with caplog.at_level(logging.WARNING):
        assert load_g2pw(root_copy) is None
    assert BERT_FOLDER in caplog.text


def test_broken_table_falls_back_with_a_message(root_copy, caplog):
    (root_copy / G2PW_FOLDER / "POLYPHONIC_CHARS.txt").write_text("長 without a tab\n", "utf-8")
    with caplog.at_level(logging.WARNING):
        assert load_g2pw(root_copy) is None
    assert "POLYPHONIC_CHARS.txt line 1" in caplog.text


@pytest.mark.parametrize("damage", ["garbage", "labels"])
def test_unusable_model_falls_back_once(root_copy, caplog, damage):
    folder = root_copy / G2PW_FOLDER
    if damage == "garbage":
        (folder / "g2pW.onnx").write_bytes(b"not an onnx model")
    else:  # one more label in the tables than the model outputs
        with open(folder / "POLYPHONIC_CHARS.txt", "a", encoding="utf-8") as f:
            f.write("重\tㄊㄨㄥ2\n")
    g = load_g2pw(root_copy)
    assert g is not None and pinyin_backend(g) == "g2pw"  # the session loads on first use
    with caplog.at_level(logging.WARNING):
        first = clean_text("他很重", "zh", "v2", g2pw=g)
        second = clean_text("他很重", "zh", "v2", g2pw=g)
    assert first == second == _pypinyin("他很重")
    assert pinyin_backend(g) == "pypinyin"
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1 and "g2pW.onnx" in warnings[0].getMessage()
