"""Features: spectrogram/mel parity with the reference, HuBERT and BERT through our loaders on tiny models."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from gpt_sovits.models.features import (
    FeatureInputError,
    FeatureModelNotFoundError,
    bert_phone_features,
    hubert_features,
    load_bert,
    load_hubert,
    mel_spectrogram,
    phone_bert_features,
    spectrogram,
)
from tests.support.reference_data import REFERENCE_DIR

REF = REFERENCE_DIR


@pytest.fixture(scope="module")
def s2io() -> dict:
    return torch.load(REF / "s2_tiny_io.pt", weights_only=True)


def test_reference_wav_decodes_to_the_recorded_audio(s2io: dict) -> None:
    pcm, sr = sf.read(REF / "s2_tiny_ref.wav", dtype="int16")
    assert sr == 32000
    assert torch.equal(torch.from_numpy(pcm.astype(np.float32) / 32768.0), s2io["refer_audio"][0])


@pytest.mark.parametrize(("audio", "spec"), [("refer_audio", "refer_spec"), ("refer_audio2", "refer_spec2")])
def test_spectrogram_parity(s2io: dict, audio: str, spec: str) -> None:
    out = spectrogram(s2io[audio], n_fft=2048, hop=640, win=2048, center=False)
    assert out.shape == s2io[spec].shape
    torch.testing.assert_close(out, s2io[spec], atol=1e-4, rtol=1e-4)


def test_mel_parity(s2io: dict) -> None:
    out = mel_spectrogram(
        s2io["refer_audio"], n_fft=2048, n_mels=128, sr=32000, hop=640, win=2048, fmin=0.0, fmax=None
    )
    assert out.shape == (1, 128, 75)
    torch.testing.assert_close(out, s2io["refer_mel"], atol=1e-4, rtol=0)


def test_spectrogram_rejects_too_short_audio() -> None:
    with pytest.raises(FeatureInputError, match="too short"):
        spectrogram(torch.zeros(100))


# ------------------------------------------------------------------------------------------------ tiny models


@pytest.fixture(scope="module")
def hubert_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from transformers import HubertConfig, HubertModel

    torch.manual_seed(0)
    cfg = HubertConfig(
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        conv_dim=(16,) * 7,
        conv_stride=(5, 2, 2, 2, 2, 2, 2),
        conv_kernel=(10, 3, 3, 3, 3, 2, 2),
        num_conv_pos_embeddings=16,
        num_conv_pos_embedding_groups=2,
    )
    folder = tmp_path_factory.mktemp("models") / "chinese-hubert-base"
    HubertModel(cfg).eval().save_pretrained(folder)
    return folder


CHARS = list("你好世界今天天气很不错我们去公园")


@pytest.fixture(scope="module")
def bert_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from transformers import BertConfig, BertForMaskedLM, BertTokenizer

    folder = tmp_path_factory.mktemp("models") / "chinese-roberta-wwm-ext-large"
    folder.mkdir()
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "，", "。", "ab", "##c", *dict.fromkeys(CHARS)]
    (folder / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    BertTokenizer(str(folder / "vocab.txt")).save_pretrained(folder)
    torch.manual_seed(0)
    cfg = BertConfig(
        vocab_size=len(vocab),
        hidden_size=24,
        num_hidden_layers=4,
        num_attention_heads=2,
        intermediate_size=48,
    )
    BertForMaskedLM(cfg).eval().save_pretrained(folder)
    return folder


def test_hubert_last_hidden_state_without_normalisation(hubert_dir: Path) -> None:
    from transformers import HubertModel

    model = load_hubert(hubert_dir)
    assert not model.training
    wav = 0.3 * torch.randn(16000, generator=torch.Generator().manual_seed(1))
    feats = hubert_features(model, wav)
    assert feats.shape == (1, 32, 49)  # 50 Hz frames, channels first
    direct = HubertModel.from_pretrained(hubert_dir).eval()
    with torch.no_grad():
        expected = direct(wav[None]).last_hidden_state.transpose(1, 2)  # raw audio, no feature extractor
    torch.testing.assert_close(feats, expected)
    with pytest.raises(FeatureInputError, match="16 kHz"):
        hubert_features(model, torch.zeros(100))


def test_bert_third_from_last_layer_repeated_by_word2ph(bert_dir: Path) -> None:
    bert = load_bert(bert_dir)
    text = "你好，世界。"
    word2ph = [2, 2, 1, 2, 3, 1]
    feats = bert_phone_features(bert, text, word2ph)
    assert feats.shape == (24, 11)
    with torch.no_grad():
        out = bert.model(**bert.tokenizer(text, return_tensors="pt"), output_hidden_states=True)
    layer = out.hidden_states[-3][0, 1:-1]  # 4 layers + embeddings: hidden_states[2]
    assert torch.equal(out.hidden_states[-3], out.hidden_states[2])
    assert not torch.allclose(layer, out.hidden_states[-1][0, 1:-1])
    expected_cols = [0, 0, 1, 1, 2, 3, 3, 4, 4, 4, 5]
    torch.testing.assert_close(feats, layer[expected_cols].T)


def test_bert_errors_and_zero_features_for_other_languages(bert_dir: Path) -> None:
    bert = load_bert(bert_dir)
    with pytest.raises(FeatureInputError, match="word2ph has 2 entries"):
        bert_phone_features(bert, "你好世", [1, 1])
    with pytest.raises(FeatureInputError, match="one token per character"):
        bert_phone_features(bert, "abc你", [1, 1, 1, 1])  # "abc" is one word-piece token pair, not 3
    zeros = phone_bert_features(None, "en", "hello", None, 7)
    assert zeros.shape == (1024, 7) and not zeros.any()
    zh = phone_bert_features(bert, "zh", "你好", [2, 2], 4)
    assert zh.shape == (24, 4)
    with pytest.raises(FeatureInputError, match="add up"):
        phone_bert_features(bert, "zh", "你好", [2, 2], 5)


def test_missing_or_incomplete_model_folders_name_what_is_needed(tmp_path: Path, hubert_dir: Path) -> None:
    with pytest.raises(FeatureModelNotFoundError) as err:
        load_hubert(tmp_path / "chinese-hubert-base")
    msg = str(err.value)
    assert "chinese-hubert-base" in msg and "config.json" in msg and "model.safetensors" in msg
    assert "lj1995/GPT-SoVITS/tree/main/chinese-hubert-base" in msg
    assert "Open the Models tab" in msg and "pretrained download chinese-hubert-base" in msg
    partial = tmp_path / "chinese-roberta-wwm-ext-large"
    partial.mkdir()
    (partial / "config.json").write_text("{}")
    with pytest.raises(
        FeatureModelNotFoundError,
        match=r"incomplete: missing model.safetensors or pytorch_model.bin, tokenizer.json or vocab.txt\.",
    ):
        load_bert(partial)
