"""Where the reference fixtures live: `../shared/reference/gpt_sovits_v2` beside the checkout.

They are outputs of the reference GPT-SoVITS implementation (see that folder's README), kept outside
the repository (35 MB). conftest.py leaves the modules that need them out of a run on a machine
that has no copy, and fails the run instead when CI=true, so CI always compares against them.
"""

from __future__ import annotations

from pathlib import Path

_CANDIDATES = (
    Path(__file__).resolve().parents[2] / "shared" / "reference" / "gpt_sovits_v2",
    Path("/work/shared/reference/gpt_sovits_v2"),
)
REFERENCE_DIR: Path = next((d for d in _CANDIDATES if d.is_dir()), _CANDIDATES[0])

# Test modules that compare with the reference fixtures.
MODULES_NEEDING_REFERENCE = (
    "test_checkpoints.py",
    "test_fastpath.py",
    "test_features.py",
    "test_s1_model.py",
    "test_s2_keys.py",
    "test_s2_parity.py",
    "test_s2_training.py",
    "test_text_en.py",
    "test_text_ja.py",
    "test_text_ko.py",
    "test_text_symbols_cut.py",
    "test_text_zh.py",
    "test_train_s1_parity.py",
)
