"""Tiny random models in the official layouts, and a tiny labelled dataset, for tests of the whole pipeline.

`build_tiny_pretrained(root)` fills a pretrained-models folder exactly as a user's would look after
downloading the v2 files (same folder and file names), but with tiny random weights:

    root/chinese-hubert-base/                 HubertModel.save_pretrained (hidden 768: S2's ssl_proj reads 768)
    root/chinese-roberta-wwm-ext-large/       BertForMaskedLM + vocab (hidden 1024: S1's bert_proj reads 1024)
    root/gsv-v2final-pretrained/s1bert25hz-5kh-longer-epoch=12-step=369668.ckpt   tiny GPT, official .ckpt
    root/gsv-v2final-pretrained/s2G2333k.pth  tiny generator with enc_q and a plain-dict config
    root/gsv-v2final-pretrained/s2D2333k.pth  multi-period discriminator {"weight": ...}

`write_tiny_dataset(folder)` writes a few short synthetic clips (32 kHz int16) and a `.list` naming them.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from gpt_sovits.models.s1 import S1Config, Text2Semantic
from gpt_sovits.models.s2 import MultiPeriodDiscriminator, S2Config, SynthesizerTrn
from gpt_sovits.models.weights import save_gpt_weights
from tests.support.synth import voiced_segments

S1_NAME = "s1bert25hz-5kh-longer-epoch=12-step=369668.ckpt"
V2_FOLDER = "gsv-v2final-pretrained"

# Characters the tiny BERT vocabulary knows; others become [UNK], still one token per character.
_BERT_CHARS = "你好世界今天天气很不错我们去公园一二三四五六七八九十是的了在有人这中大为上个国我以要他时来用们生到作地于出就分对成会可主发年动同工也能下过子说产种面而方后多定行学法所民得经"


@dataclass(frozen=True)
class TinyPretrained:
    root: Path
    hubert: Path
    bert: Path
    s1: Path
    s2g: Path
    s2d: Path
    s1_config: S1Config
    s2_config: S2Config


def tiny_s1_config() -> S1Config:
    return S1Config(embedding_dim=64, hidden_dim=64, head=4, n_layer=2, linear_units=256)


def tiny_s2_config() -> S2Config:
    """The reference's tiny S2 (shared/reference/gpt_sovits_v2/s2_tiny_config.json model section)."""
    return S2Config(
        version="v2",
        inter_channels=32,
        hidden_channels=192,
        filter_channels=64,
        n_heads=2,
        n_layers=2,
        upsample_initial_channel=32,
    )


def _save_hubert(folder: Path) -> None:
    from transformers import HubertConfig, HubertModel

    cfg = HubertConfig(
        hidden_size=768,
        num_hidden_layers=1,
        num_attention_heads=4,
        intermediate_size=64,
        conv_dim=(32,) * 7,
        conv_stride=(5, 2, 2, 2, 2, 2, 2),
        conv_kernel=(10, 3, 3, 3, 3, 2, 2),
        num_conv_pos_embeddings=16,
        num_conv_pos_embedding_groups=16,
    )
    HubertModel(cfg).eval().save_pretrained(folder)


def _save_bert(folder: Path) -> None:
    from transformers import BertConfig, BertForMaskedLM, BertTokenizer

    folder.mkdir(parents=True, exist_ok=True)
    punct = list("，。！？、；：")
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *punct, *dict.fromkeys(_BERT_CHARS)]
    (folder / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    BertTokenizer(str(folder / "vocab.txt")).save_pretrained(folder)
    cfg = BertConfig(
        vocab_size=len(vocab),
        hidden_size=1024,
        num_hidden_layers=3,
        num_attention_heads=4,
        intermediate_size=64,
        max_position_embeddings=512,
    )
    BertForMaskedLM(cfg).eval().save_pretrained(folder)


def _half(model: torch.nn.Module) -> OrderedDict[str, torch.Tensor]:
    """Pretrained files store fp16 weights."""
    return OrderedDict((k, v.half()) for k, v in model.state_dict().items())


def build_tiny_pretrained(root: Path, seed: int = 0) -> TinyPretrained:
    """Write tiny random v2 pretrained models under `root` in the official names and formats."""
    torch.manual_seed(seed)
    root = Path(root)
    v2 = root / V2_FOLDER
    v2.mkdir(parents=True, exist_ok=True)
    hubert, bert = root / "chinese-hubert-base", root / "chinese-roberta-wwm-ext-large"
    _save_hubert(hubert)
    _save_bert(bert)

    s1_cfg = tiny_s1_config()
    s1_path = save_gpt_weights(Text2Semantic(s1_cfg), s1_cfg, v2 / S1_NAME, info="tiny random pretrained")

    s2_cfg = tiny_s2_config()
    generator = SynthesizerTrn(s2_cfg, with_posterior=True)
    # Pretrained generators keep enc_q; our loader reads the plain-dict config when one is present.
    s2g = v2 / "s2G2333k.pth"
    torch.save(
        OrderedDict(weight=_half(generator), config=s2_cfg.to_hparams(), info="tiny random pretrained"),
        s2g,
    )
    s2d = v2 / "s2D2333k.pth"
    torch.save({"weight": _half(MultiPeriodDiscriminator())}, s2d)
    return TinyPretrained(root, hubert, bert, s1_path, s2g, s2d, s1_cfg, s2_cfg)


# Short texts in the languages the formatter supports; the English ones use words CMUdict knows.
TINY_TEXTS: tuple[tuple[str, str], ...] = (
    ("zh", "你好世界。"),
    ("zh", "今天天气很不错。"),
    ("en", "Hello world, this is a test."),
    ("zh", "我们去公园。"),
    ("en", "The weather is nice today."),
    ("zh", "一二三四五六七八九十。"),
)


def write_tiny_dataset(
    folder: Path, n: int = 6, seconds: float = 1.6, speaker: str = "tiny", seed: int = 0
) -> Path:
    """Write `n` synthetic clips (32 kHz mono int16) to folder/wavs and a `.list` naming them; return the list."""
    wavs = Path(folder) / "wavs"
    wavs.mkdir(parents=True, exist_ok=True)
    lines = []
    for i in range(n):
        lang, text = TINY_TEXTS[i % len(TINY_TEXTS)]
        audio = voiced_segments([("silence", 0.1), ("voice", seconds - 0.2), ("silence", 0.1)], seed=seed + i)
        audio = audio * np.float32(0.6 + 0.05 * (i % 4))
        path = wavs / f"clip_{i:03d}.wav"
        sf.write(path, audio, 32000, subtype="PCM_16")
        lines.append(f"{path}|{speaker}|{lang}|{text}")
    list_path = Path(folder) / f"{speaker}.list"
    list_path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return list_path
