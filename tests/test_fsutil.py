from __future__ import annotations

import os
import pickle
import time
from pathlib import Path

import pytest

from core.fsutil import (
    STALE_TEMP_AGE_S,
    PathOutsideRootError,
    atomic_write_text,
    backup_copy,
    file_problem,
    is_atomic_temp,
    is_hidden_or_temp,
    load_error_reason,
    make_temp_path,
    move_to_trash,
    remove_stale_temporaries,
    resolve_inside,
    stale_temporaries,
    temp_target,
    unique_path,
)


def test_atomic_write_keeps_old_file_when_write_fails(tmp_path, monkeypatch):
    target = tmp_path / "a.txt"
    atomic_write_text(target, "old")

    def boom(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError, match="disk full"):
        atomic_write_text(target, "new")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["a.txt"]  # no temp file left behind


def test_resolve_inside_refuses_escapes(tmp_path):
    assert resolve_inside(tmp_path, "x/y.wav") == (tmp_path / "x/y.wav").resolve()
    for bad in ("../etc/passwd", "/etc/passwd", "x/../../y"):
        with pytest.raises(PathOutsideRootError):
            resolve_inside(tmp_path, bad)


def test_unique_path_never_reuses_a_name(tmp_path):
    p = tmp_path / "a.wav"
    assert unique_path(p) == p
    p.write_bytes(b"1")
    assert unique_path(p).name == "a (1).wav"


def test_trash_and_backup_keep_files(tmp_path):
    f = tmp_path / "clip.wav"
    f.write_bytes(b"data")
    moved = move_to_trash(f, tmp_path / "trash")
    assert not f.exists() and moved.read_bytes() == b"data"
    g = tmp_path / "x.list"
    g.write_text("v1")
    bak = backup_copy(g, tmp_path / ".history")
    assert bak is not None and bak.read_text() == "v1"


def test_atomic_writes_get_normal_permissions(tmp_path):
    old = os.umask(0o022)
    try:
        target = tmp_path / "out.txt"
        atomic_write_text(target, "x")
        assert target.stat().st_mode & 0o777 == 0o644
    finally:
        os.umask(old)


# --- leftovers of interrupted atomic writes ------------------------------------------------------------


def _killed_write(target: Path, suffix: str | None = None, age_s: float = 0.0) -> Path:
    """The temp file a writer killed mid-save leaves beside `target` (as make_temp_path names it)."""
    tmp = make_temp_path(target, suffix)
    tmp.write_bytes(b"partial")
    if age_s:
        old = time.time() - age_s
        os.utime(tmp, (old, old))
    return tmp


def test_temp_names_of_every_atomic_writer_are_recognised(tmp_path):
    ckpt = _killed_write(tmp_path / "checkpoint.pt", suffix=".pt")
    listing = _killed_write(tmp_path / "a.list")  # atomic_open: ".a.<random>.list.tmp"
    wav = _killed_write(tmp_path / "v.wav", suffix=".tmp.wav")  # separation's temporaries
    assert [temp_target(p.name) for p in (ckpt, listing, wav)] == ["checkpoint.pt", "a.list", "v.wav"]
    for name in ("checkpoint.pt", ".hidden", ".gitignore", "voice-e12.ckpt", ".x.short.pt"):
        assert not is_atomic_temp(name), name
    assert (
        is_hidden_or_temp(ckpt) and is_hidden_or_temp(tmp_path / ".notes") and not is_hidden_or_temp("a.pt")
    )


def test_only_stale_temporaries_are_removed(tmp_path):
    (tmp_path / "sub").mkdir()
    stale = _killed_write(tmp_path / "sub" / "checkpoint.pt", ".pt", age_s=2 * STALE_TEMP_AGE_S)
    live = _killed_write(tmp_path / "sub" / "other.pt", ".pt")  # a running job's: just written
    keep = tmp_path / "sub" / ".keep.notes.txt"
    keep.write_text("a user's dotfile")
    assert stale_temporaries(tmp_path) == []  # not recursive: nothing at the top
    assert remove_stale_temporaries(tmp_path, recursive=True) == [stale]
    assert not stale.exists() and live.exists() and keep.exists()
    # The folder's owner at its start removes its own, whatever their age, and only those it names.
    assert remove_stale_temporaries(tmp_path / "sub", older_than_s=0, only=lambda t: t == "x.pt") == []
    assert remove_stale_temporaries(tmp_path / "sub", older_than_s=0) == [live]


def test_file_problems_and_torch_reasons(tmp_path):
    (tmp_path / "x.ckpt").mkdir()
    (tmp_path / "empty.pt").write_bytes(b"")
    assert file_problem(tmp_path / "x.ckpt") == "a folder, not a weights file"
    assert file_problem(tmp_path / "empty.pt") == "empty file (0 bytes)"
    assert file_problem(tmp_path / "nope.pt") == "not found"
    advice = pickle.UnpicklingError(
        "Weights only load failed. In PyTorch 2.6, we changed the default value of the `weights_only` "
        "argument in `torch.load` from `False` to `True`. Re-running `torch.load` with `weights_only` set to "
        "`False` will likely succeed, but it can result in arbitrary code execution. Do it only if you got the "
        "file from a trusted source.\n\n\nTrying to load unsupported GLOBAL posix.system whose module posix "
        "is blocked.\n\nCheck the documentation of torch.load to learn more about types accepted by default "
        "with weights_only https://pytorch.org/docs/stable/generated/torch.load.html."
    )
    reason = load_error_reason(advice)
    assert "weights_only" not in reason and "False" not in reason
    assert "posix.system" in reason and "nothing from it ran" in reason
    assert load_error_reason(IsADirectoryError(21, "Is a directory")) == "a folder, not a weights file"
    assert "zip directory is missing" in load_error_reason(RuntimeError("failed finding central directory"))


def test_names_of_earlier_versions_and_dotfiles(tmp_path):
    assert temp_target(".checkpoint.k3x_9q2a.pt") == "checkpoint.pt"  # before the "tmp-" marker
    assert temp_target(".a.k3x_9q2a.list.tmp") == "a.list"
    assert not is_atomic_temp(".config.settings.json")  # 8 letters, but a person's file
    assert make_temp_path(tmp_path / "x.json").name.startswith(".x.tmp-")
