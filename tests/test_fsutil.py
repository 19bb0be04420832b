from __future__ import annotations

import os

import pytest

from core.fsutil import (
    PathOutsideRootError,
    atomic_write_text,
    backup_copy,
    move_to_trash,
    resolve_inside,
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
