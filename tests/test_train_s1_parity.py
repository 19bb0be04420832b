"""S1 training against the reference's own numbers (fixtures from the official code, see tests/reference_data)."""

from __future__ import annotations

import json

import pytest
import torch

from gpt_sovits.data.s1_dataset import S1Batch
from gpt_sovits.models.weights import load_gpt
from gpt_sovits.train.run_dir import RunDir
from gpt_sovits.train.s1 import S1TrainConfig, batch_loss, export_config
from tests.support.reference_data import REFERENCE_DIR


def test_training_loss_and_accuracy_equal_the_reference():
    """The official forward_old's summed CE and top-3 accuracy on the official tiny GPT."""
    model, cfg = load_gpt(REFERENCE_DIR / "s1_tiny.ckpt", precision="fp32")  # exact, as parity needs
    io = torch.load(REFERENCE_DIR / "s1_tiny_io.pt", weights_only=True)
    batch = S1Batch(io["x"], io["x_lens"], io["y"], io["y_lens"], io["bert_feature"], ["a"])
    with torch.no_grad():
        loss, metrics = batch_loss(model.eval(), batch, dpo=False, eos=cfg.EOS)
    assert loss.item() == pytest.approx(io["tf_loss"].item(), rel=1e-5)
    assert metrics["acc/top3"] == pytest.approx(io["tf_acc"].item(), abs=1e-6)
    assert metrics["loss/ce"] == pytest.approx(io["tf_loss"].item() / 13, rel=1e-5)  # 12 tokens + EOS


def test_exported_config_has_the_official_layout(tmp_path):
    """Our exports carry the same config sections and train keys as the webui-launched official trainer's."""
    official = json.loads((REFERENCE_DIR / "s1_tiny_config.json").read_text())
    cfg = S1TrainConfig(exp_dir=tmp_path / "tiny", weights_dir=tmp_path / "GPT_weights_v2", epochs=1)
    ours = export_config(cfg, 8, "v2", tmp_path / "s1.ckpt", RunDir(tmp_path / "run"))
    assert set(ours) == set(official) - {"model"}  # save_gpt_weights adds "model"
    assert set(ours["train"]) == set(official["train"])
    assert ours["data"] == official["data"] and ours["optimizer"] == official["optimizer"]
    assert ours["inference"] == official["inference"]
