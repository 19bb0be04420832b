"""Model folders the loaders and the model registry (`gpt_sovits.pretrained`) both name: HuBERT and BERT
(their folder names, the files a loader needs, and the check `gpt_sovits.models.features` makes) and the
files of v3's BigVGAN folder. Torch-free, so that listing or downloading models does not load torch.
"""

from __future__ import annotations

from pathlib import Path

from core.errors import UserError
from core.model_route import GSV_REPO, download_route, hub_url

HUBERT_FOLDER = "chinese-hubert-base"
BERT_FOLDER = "chinese-roberta-wwm-ext-large"
_WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")
# The files of a BigVGAN folder as NVIDIA publishes it (bigvgan_v2_24khz_100band_256x: v3's vocoder).
BIGVGAN_CONFIG = "config.json"
BIGVGAN_WEIGHTS = "bigvgan_generator.pt"
_TOKENIZER_FILES = ("tokenizer.json", "vocab.txt")


class FeatureModelNotFoundError(UserError, FileNotFoundError):
    """A HuBERT or BERT model folder is missing or incomplete."""


def check_model_folder(folder: Path, kind: str, need_tokenizer: bool) -> None:
    """Raise FeatureModelNotFoundError, with where to get it, unless `folder` holds a loadable `kind`
    ("HuBERT" or "BERT") model: config.json, weights and (`need_tokenizer`) a tokenizer."""
    expected = ["config.json", " or ".join(_WEIGHT_FILES)]
    if need_tokenizer:
        expected.append(" or ".join(_TOKENIZER_FILES))
    name = HUBERT_FOLDER if kind == "HuBERT" else BERT_FOLDER  # the registry row (and its hub folder)
    how = download_route(name, expected, folder, hub_url(GSV_REPO, name, folder=True), folder.parent)
    if not folder.is_dir():
        raise FeatureModelNotFoundError(f"{kind} model folder not found: {folder}. {how}")
    missing = []
    if not (folder / "config.json").is_file():
        missing.append("config.json")
    if not any((folder / f).is_file() for f in _WEIGHT_FILES):
        missing.append(" or ".join(_WEIGHT_FILES))
    if need_tokenizer and not any((folder / f).is_file() for f in _TOKENIZER_FILES):
        missing.append(" or ".join(_TOKENIZER_FILES))
    if missing:
        raise FeatureModelNotFoundError(
            f"{kind} model folder {folder} is incomplete: missing {', '.join(missing)}. {how}"
        )
