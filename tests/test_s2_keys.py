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


@pytest.mark.parametrize("version", ["v2Pro", "v2ProPlus", "v3", "v4"])
def test_other_versions_are_refused(version):
    with pytest.raises(UnsupportedS2Version, match="v1 and v2"):
        _build(version)
    # The v2Pro table has the extra speaker-verification modules this model does not build.
    assert {"sv_emb.weight", "ge_to512.weight", "prelu.weight"} <= set(_table("s2_v2pro_keys.tsv"))
