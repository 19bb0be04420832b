"""Full-size S2 state-dict names and shapes equal the official tables (built on the meta device)."""

from __future__ import annotations

import json

import pytest
import torch

from gpt_sovits.models.s2 import S2Config, SynthesizerTrn, UnsupportedS2Version
from tests.support.reference_data import REFERENCE_DIR

REF = REFERENCE_DIR


def _table(name: str) -> dict[str, list[int]]:
    rows = [line.split("\t") for line in (REF / name).read_text().splitlines()[1:]]
    return {r[0]: json.loads(r[1]) for r in rows}


def _build(version: str, with_posterior: bool = True) -> SynthesizerTrn:
    hps = json.loads((REF / "s2_v2_config.json").read_text())
    with torch.device("meta"):
        return SynthesizerTrn(S2Config.from_hparams(hps, version=version), with_posterior=with_posterior)


def test_full_size_v2_matches_reference_table_exactly():
    expected = _table("s2_v2_keys.tsv")
    sd = _build("v2").state_dict()
    assert list(sd) == list(expected)  # same names, same order
    assert {k: list(v.shape) for k, v in sd.items()} == expected
    assert sum(v.numel() for v in sd.values()) == 52_883_969


def test_full_size_v2_without_enc_q():
    sd = _build("v2", with_posterior=False).state_dict()
    assert not any(k.startswith("enc_q.") for k in sd)
    assert len(sd) == 776 - 103
    assert sum(v.numel() for v in sd.values()) == 42_389_633


def test_full_size_v1_differs_only_in_vocab_and_reference_bins():
    expected = _table("s2_v2_keys.tsv")
    expected["enc_p.text_embedding.weight"] = [322, 192]
    expected["ref_enc.spectral.0.fc.weight"] = [128, 1025]
    sd = _build("v1").state_dict()
    assert {k: list(v.shape) for k, v in sd.items()} == expected


def _build_official(version: str) -> SynthesizerTrn:
    with torch.device("meta"):
        return SynthesizerTrn(S2Config.for_version(version))


def test_full_size_v2pro_matches_reference_table_exactly():
    expected = _table("s2_v2pro_keys.tsv")
    sd = _build_official("v2Pro").state_dict()
    assert list(sd) == list(expected)
    assert {k: list(v.shape) for k, v in sd.items()} == expected
    assert len(sd) == 781
    assert round(sum(v.numel() for v in sd.values()) / 1e6, 1) == 81.0


def test_full_size_v2proplus_has_the_wider_generator():
    pro = {k: list(v.shape) for k, v in _build_official("v2Pro").state_dict().items()}
    plus = {k: list(v.shape) for k, v in _build_official("v2ProPlus").state_dict().items()}
    assert list(plus) == list(pro)
    assert plus["dec.conv_pre.weight"] == [768, 192, 7]
    assert plus["dec.ups.0.weight_v"] == [768, 384, 20]
    assert plus["sv_emb.weight"] == [1024, 20480] and plus["ge_to512.weight"] == [512, 1024]
    assert {k for k in plus if plus[k] != pro[k]} <= {k for k in plus if k.startswith("dec.")}
    assert round(sum(torch.Size(s).numel() for s in plus.values()) / 1e6, 1) == 99.9


@pytest.mark.parametrize("version", ["v3", "v4", "v5"])
def test_other_versions_are_refused(version):
    with pytest.raises(UnsupportedS2Version, match="v3/v4 are different models"):
        _build(version)
