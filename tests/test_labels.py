from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from core.fsutil import PathOutsideRootError
from tools import labels
from tools.labels import LabelDocument, LabelError, load_list, main, parse_list

SR = 32000


def tone(seconds: float, sr: int = SR, f: float = 220.0) -> np.ndarray:
    t = np.arange(int(round(seconds * sr))) / sr
    return (0.3 * np.sin(2 * np.pi * f * t)).astype(np.float32)


def make_dataset(root: Path, lengths=(1.0, 0.5, 0.75), sr: int = SR) -> Path:
    """Wavs a.wav, b.wav, c.wav and a clean .list using relative paths."""
    root.mkdir(parents=True, exist_ok=True)
    lines = []
    for name, seconds, lang, text in zip(
        "abc", lengths, ("en", "zh", "en"), ("hello there", "你好", "good bye"), strict=False
    ):
        sf.write(root / f"{name}.wav", tone(seconds, sr), sr, subtype="PCM_16")
        lines.append(f"{name}.wav|spk|{lang}|{text}")
    path = root / "data.list"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_round_trip_clean_file_is_byte_identical(tmp_path):
    path = make_dataset(tmp_path)
    before = path.read_bytes()
    doc = load_list(path)
    assert [e.text for e in doc.entries] == ["hello there", "你好", "good bye"]
    assert doc.issues() == []
    doc.save()
    assert path.read_bytes() == before
    assert list((tmp_path / ".history").glob("data.list.*.bak"))  # previous version kept


def test_legacy_and_upper_case_languages_are_normalised():
    forms = ["ZH", "JP", "jp", "JA", "EN", "En", "KO", "Ko", "YUE", "Yue", "zh"]
    text = "".join(f"x{i}.wav|s|{lang}|t\n" for i, lang in enumerate(forms))
    doc = parse_list(text, root="/tmp")
    assert [e.language for e in doc.entries] == [
        "zh",
        "ja",
        "ja",
        "ja",
        "en",
        "en",
        "ko",
        "ko",
        "yue",
        "yue",
        "zh",
    ]
    assert doc.to_text().splitlines()[1] == "x1.wav|s|ja|t"


def test_each_malformed_line_kind_is_reported_with_its_line(tmp_path):
    (tmp_path / "ok.wav").write_bytes(b"")  # exists; content does not matter for validation
    text = (
        "ok.wav|s|en|fine\n"  # 1
        "ok.wav|s|en\n"  # 2: 3 fields
        "ok.wav|s|en|a|b\n"  # 3: '|' in text
        "|s|en|no path\n"  # 4: empty path
        "ok.wav|s|en|\n"  # 5: empty text
        "ok.wav|s|fr|bonjour\n"  # 6: unknown language
        "../out.wav|s|en|escape\n"  # 7: outside root
        "gone.wav|s|en|missing\n"  # 8: missing audio (warning)
    )
    doc = parse_list(text, root=tmp_path)
    found = {(i.line, i.severity): i.message for i in doc.issues()}
    assert "expected 4 fields" in found[(2, "error")] and "found 3" in found[(2, "error")]
    assert "must not contain '|'" in found[(3, "error")] and "5 fields" in found[(3, "error")]
    assert found[(4, "error")] == "empty audio path"
    assert found[(5, "error")] == "empty text"
    assert "unknown language 'fr'" in found[(6, "error")]
    assert "outside the dataset root" in found[(7, "error")]
    assert "not found" in found[(8, "warning")]
    assert 1 not in {line for line, _ in found}
    assert len(doc.issues()) == 7


def test_malformed_lines_are_kept_verbatim_on_save(tmp_path):
    path = tmp_path / "x.list"
    path.write_text("a.wav|s|en|one\nbroken line\nb.wav|s|en|x|y\nc.wav|s|en|three\n", encoding="utf-8")
    doc = load_list(path)
    doc.set_text(doc.entries[0].uid, "uno")
    doc.save()
    assert (
        path.read_text(encoding="utf-8") == "a.wav|s|en|uno\nbroken line\nb.wav|s|en|x|y\nc.wav|s|en|three\n"
    )


def test_path_outside_root_is_refused(tmp_path):
    doc = parse_list("../../etc/passwd|s|en|x\n", root=tmp_path)
    with pytest.raises(PathOutsideRootError):
        doc.resolve_audio(doc.entries[0])
    with pytest.raises(PathOutsideRootError):
        doc.delete([doc.entries[0].uid], trash_audio=True)
    assert len(doc.entries) == 1  # refused edits change nothing


def test_text_and_language_edits_validate_and_undo(tmp_path):
    doc = load_list(make_dataset(tmp_path))
    uid = doc.entries[0].uid
    assert doc.set_text(uid, "  new text\n") is True
    assert doc.entry(uid).text == "new text"
    assert doc.set_text(uid, "new text") is False  # no change, no undo step
    with pytest.raises(LabelError, match=r"\|"):
        doc.set_text(uid, "a|b")
    doc.set_language(uid, "JP")
    assert doc.entry(uid).language == "ja"
    with pytest.raises(LabelError, match="unknown language"):
        doc.set_language(uid, "xx")
    doc.undo()
    assert doc.entry(uid).language == "en"
    doc.undo()
    assert doc.entry(uid).text == "hello there"
    with pytest.raises(LabelError, match="nothing to undo"):
        doc.undo()


def test_delete_moves_audio_to_trash_and_undo_restores_it(tmp_path):
    path = make_dataset(tmp_path / "ds")
    trash = tmp_path / "trash"
    doc = load_list(path, trash_dir=trash)
    b = doc.entries[1]
    doc.delete([b.uid], trash_audio=True)
    assert [e.path for e in doc.entries] == ["a.wav", "c.wav"]
    assert not (tmp_path / "ds" / "b.wav").exists()
    assert (trash / "b.wav").is_file()  # moved, not deleted
    doc.save()
    assert "b.wav" not in path.read_text(encoding="utf-8")
    doc.undo()
    assert [e.path for e in doc.entries] == ["a.wav", "b.wav", "c.wav"]
    assert (tmp_path / "ds" / "b.wav").is_file() and not (trash / "b.wav").exists()


def test_delete_without_trash_keeps_audio(tmp_path):
    doc = load_list(make_dataset(tmp_path))
    doc.delete([doc.entries[0].uid])
    assert (tmp_path / "a.wav").is_file() and len(doc.entries) == 2


def test_merge_writes_new_wav_with_silence_and_joins_text(tmp_path):
    doc = load_list(make_dataset(tmp_path, lengths=(1.0, 0.5, 0.75)), trash_dir=tmp_path / "trash")
    a, _, c = doc.entries
    merged = doc.merge([c.uid, a.uid], silence=0.25, trash_originals=True)
    assert merged.path == "a_merged.wav"
    assert merged.text == "hello there good bye"  # en: joined with a space, file order
    data, sr = sf.read(tmp_path / "a_merged.wav", dtype="int16")
    assert sr == 32000 and data.dtype == np.int16
    assert len(data) == int(1.0 * SR) + int(0.25 * SR) + int(0.75 * SR)
    assert [e.path for e in doc.entries] == ["a_merged.wav", "b.wav"]
    assert (tmp_path / "trash" / "a.wav").is_file() and not (tmp_path / "a.wav").exists()
    doc.undo()
    assert [e.path for e in doc.entries] == ["a.wav", "b.wav", "c.wav"]
    assert (tmp_path / "a.wav").is_file() and (tmp_path / "c.wav").is_file()
    assert not (tmp_path / "a_merged.wav").exists() and (tmp_path / "trash" / "a_merged.wav").is_file()


def test_merge_joins_chinese_without_space_and_resamples(tmp_path):
    sf.write(tmp_path / "x.wav", tone(0.5, 16000), 16000)
    sf.write(tmp_path / "y.wav", tone(0.5, 32000), 32000)
    doc = parse_list("x.wav|s|zh|你好\ny.wav|s|zh|世界\n", root=tmp_path)
    merged = doc.merge([e.uid for e in doc.entries], silence=0.0)
    assert merged.text == "你好世界"
    assert sf.info(tmp_path / "x_merged.wav").frames == 32000
    with pytest.raises(LabelError, match="at least two"):
        doc.merge([merged.uid])


def test_split_makes_two_clips_and_flags_the_second(tmp_path):
    doc = load_list(make_dataset(tmp_path, lengths=(1.0, 0.5, 0.75)))
    a = doc.entries[0]
    first, second = doc.split(a.uid, 0.4)
    assert sf.info(tmp_path / "a_a.wav").frames == int(0.4 * SR)
    assert sf.info(tmp_path / "a_b.wav").frames == int(0.6 * SR)
    assert (first.text, second.text) == ("hello there", "")
    assert second.review and second.uid in doc.flagged_uids()
    assert (tmp_path / "a.wav").is_file()  # original kept
    assert [e.path for e in doc.entries][:2] == ["a_a.wav", "a_b.wav"]
    with pytest.raises(LabelError, match="inside the clip"):
        doc.split(first.uid, 5.0)


def test_crash_mid_save_keeps_previous_file_and_backup(tmp_path, monkeypatch):
    path = make_dataset(tmp_path)
    before = path.read_bytes()
    doc = load_list(path)
    doc.set_text(doc.entries[0].uid, "changed")

    def boom(src, dst):
        raise OSError("power cut")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError, match="power cut"):
        doc.save()
    assert path.read_bytes() == before
    backups = list((tmp_path / ".history").glob("data.list.*.bak"))
    assert len(backups) == 1 and backups[0].read_bytes() == before
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_search_filter_and_sort(tmp_path):
    path = make_dataset(tmp_path, lengths=(1.0, 0.5, 0.75))
    sidecar = [
        {"path": "a.wav", "avg_logprob": -0.1, "no_speech_prob": 0.0},
        {"path": "b.wav", "avg_logprob": -0.9, "no_speech_prob": 0.1},
        {"path": "c.wav", "avg_logprob": -0.5, "no_speech_prob": 0.6},
    ]
    labels.sidecar_path(path).write_text("".join(json.dumps(s) + "\n" for s in sidecar), encoding="utf-8")
    doc = load_list(path)
    assert [e.path for e in doc.filter("BYE")] == ["c.wav"]
    assert [e.path for e in doc.filter("b.wav")] == ["b.wav"]
    assert [e.path for e in doc.filter(language="zh")] == ["b.wav"]
    doc.set_text(doc.entries[0].uid, "")
    assert [e.path for e in doc.filter(flagged_only=True)] == ["a.wav"]
    assert [e.path for e in doc.sort(doc.entries, "duration")] == ["b.wav", "c.wav", "a.wav"]
    assert [e.path for e in doc.sort(doc.entries, "confidence")] == ["b.wav", "c.wav", "a.wav"]
    assert [e.path for e in doc.sort(doc.entries, "path")] == ["a.wav", "b.wav", "c.wav"]
    assert doc.score(doc.entries[1]).avg_logprob == -0.9


def test_missing_sidecar_means_no_scores(tmp_path):
    doc = load_list(make_dataset(tmp_path))
    assert doc.scores == {} and doc.score(doc.entries[0]) is None


def test_new_document_needs_a_path_to_save():
    with pytest.raises(LabelError, match="no file name"):
        LabelDocument([]).save()


def test_cli_validate_and_stats(tmp_path, capsys):
    good = make_dataset(tmp_path)
    assert main(["validate", str(good)]) == 0
    assert "3 clips, 0 errors" in capsys.readouterr().out
    bad = tmp_path / "bad.list"
    bad.write_text("a.wav|s|en|ok\na.wav|s|en\na.wav|s|xx|t\n", encoding="utf-8")
    assert main(["validate", str(bad)]) == 1
    out = capsys.readouterr().out
    assert "line 2: error: wrong field count" in out and "line 3: error: unknown language 'xx'" in out
    assert main(["stats", str(good)]) == 0
    out = capsys.readouterr().out
    assert "clips: 3" in out and "audio: 2.2 s" in out and "en (2)" in out
    assert main(["validate", str(tmp_path / "nope.list")]) == 2
    assert "not found" in capsys.readouterr().err


def test_boundary_wider_than_root(tmp_path):
    """The web UI reads relative paths against the list's folder but only fences them to the workspace."""
    ds = tmp_path / "datasets" / "t"
    make_dataset(ds)
    sf.write(tmp_path / "datasets" / "shared.wav", tone(0.5), SR)
    (ds / "data.list").write_text(
        "a.wav|s|en|x\n../shared.wav|s|en|y\n../../../z.wav|s|en|z\n", encoding="utf-8"
    )
    doc = load_list(ds / "data.list", boundary=tmp_path)
    assert doc.resolve_audio(doc.entries[0]) == (ds / "a.wav").resolve()
    assert doc.resolve_audio(doc.entries[1]) == (tmp_path / "datasets" / "shared.wav").resolve()
    assert [i.line for i in doc.issues()] == [3]  # only the path leaving the boundary
    strict = load_list(ds / "data.list")
    assert [i.line for i in strict.issues()] == [2, 3]
    merged = doc.merge([doc.entries[0].uid, doc.entries[1].uid], silence=0.0)
    assert merged.path == "a_merged.wav"


def test_undo_stack_is_bounded(tmp_path, monkeypatch):
    monkeypatch.setattr(labels, "UNDO_LIMIT", 3)
    doc = load_list(make_dataset(tmp_path))
    uid = doc.entries[0].uid
    for n in range(5):
        doc.set_text(uid, f"v{n}")
    for _ in range(3):
        doc.undo()
    assert doc.entry(uid).text == "v1" and not doc.can_undo


def test_cli_accepts_absolute_paths_elsewhere_unless_within(tmp_path, capsys):
    """ASR lists live in asr/ and point into sliced/: fine, unless --within asks for a boundary."""

    sliced = tmp_path / "sliced"
    sliced.mkdir()
    clip = sliced / "c.wav"
    sf.write(clip, np.zeros(16000, dtype=np.float32), 32000)
    lst = tmp_path / "asr" / "a.list"
    lst.parent.mkdir()
    lst.write_text(f"{clip}|sliced|en|hello\n", encoding="utf-8")
    assert main(["validate", str(lst)]) == 0
    assert main(["validate", str(lst), "--within", str(lst.parent)]) == 1
    assert "outside the dataset root" in capsys.readouterr().out


# ---------- concurrent saves, history, undo memory ----------


def test_concurrent_edits_of_different_clips_are_merged(tmp_path):
    path = make_dataset(tmp_path)
    mine, theirs = load_list(path), load_list(path)
    theirs.set_text(theirs.entries[2].uid, "their edit")
    theirs.save()
    mine.set_text(mine.entries[0].uid, "my edit")
    mine.save()
    assert (
        path.read_text(encoding="utf-8")
        == "a.wav|spk|en|my edit\nb.wav|spk|zh|你好\nc.wav|spk|en|their edit\n"
    )
    assert mine.merged_in == 1 and mine.entries[2].text == "their edit"
    theirs.set_text(theirs.entries[1].uid, "third")  # and back: theirs now merges my edit in
    theirs.save()
    assert [e.text for e in load_list(path).entries] == ["my edit", "third", "their edit"]


def test_concurrent_structural_edits_and_an_editor_are_merged(tmp_path):
    path = make_dataset(tmp_path)
    doc = load_list(path)
    doc.delete([doc.entries[1].uid])  # b.wav
    # Meanwhile a text editor appends a clip and fixes c's text.
    path.write_text("a.wav|spk|en|hello there\nb.wav|spk|zh|你好\nc.wav|spk|en|fixed\nd.wav|spk|en|new\n")
    doc.save()
    assert path.read_text() == "a.wav|spk|en|hello there\nc.wav|spk|en|fixed\nd.wav|spk|en|new\n"
    doc.undo()
    doc.save()
    assert [e.path for e in load_list(path).entries] == ["a.wav", "b.wav", "c.wav", "d.wav"]


def test_conflicting_edits_are_refused_with_both_versions_then_chosen(tmp_path):
    path = make_dataset(tmp_path)
    mine, theirs = load_list(path), load_list(path)
    theirs.set_text(theirs.entries[0].uid, "theirs")
    theirs.set_text(theirs.entries[2].uid, "also theirs")
    theirs.save()
    on_disk = path.read_bytes()
    mine.set_text(mine.entries[0].uid, "mine")
    with pytest.raises(labels.LabelConflictError) as info:
        mine.save()
    assert path.read_bytes() == on_disk  # nothing written
    (conflict,) = info.value.conflicts
    assert (conflict.key, conflict.mine, conflict.theirs) == (
        "a.wav",
        "a.wav|spk|en|mine",
        "a.wav|spk|en|theirs",
    )
    assert "'a.wav|spk|en|mine'" in str(info.value) and "'a.wav|spk|en|theirs'" in str(info.value)
    assert mine.conflicts == [conflict]
    mine.save(prefer="mine")
    assert [e.text for e in load_list(path).entries] == ["mine", "你好", "also theirs"]
    assert mine.conflicts == []


def test_conflict_take_theirs_and_deleted_clip(tmp_path):
    path = make_dataset(tmp_path)
    mine, theirs = load_list(path), load_list(path)
    theirs.delete([theirs.entries[0].uid])
    theirs.save()
    mine.set_text(mine.entries[0].uid, "edited a clip deleted elsewhere")
    with pytest.raises(labels.LabelConflictError) as info:
        mine.save()
    assert info.value.conflicts[0].theirs is None  # deleted there
    mine.save(prefer="theirs")
    assert [e.path for e in mine.entries] == ["b.wav", "c.wav"]
    assert path.read_text(encoding="utf-8") == "b.wav|spk|zh|你好\nc.wav|spk|en|good bye\n"


def test_history_keeps_the_sessions_original_after_many_saves(tmp_path):
    path = make_dataset(tmp_path)
    original = path.read_bytes()
    doc = load_list(path)
    for n in range(25):
        doc.set_text(doc.entries[0].uid, f"edit {n}")
        doc.save()
    history = tmp_path / ".history"
    kept = [p.read_bytes() for p in history.glob("data.list.*.bak")]
    assert original in kept
    assert len(kept) == 25  # the original + the 24 versions the later saves replaced (all young and small)
    assert len(list(history.glob("data.list.*.original.bak"))) == 1


def test_history_is_pruned_by_age_and_size_not_count(tmp_path, monkeypatch):
    history = tmp_path / ".history"
    history.mkdir()
    now = 1_000_000_000.0
    for n in range(30):  # version n is n days old, 100 bytes
        p = history / f"x.list.20010101-0000{n:02d}.bak"
        p.write_bytes(b"v" * 100)
        os.utime(p, (now - n * 86400, now - n * 86400))
    for n, days in enumerate((200, 100)):  # two old session originals
        p = history / f"x.list.20000101-00000{n}.original.bak"
        p.write_bytes(b"o")
        os.utime(p, (now - days * 86400, now - days * 86400))
    (history / "y.list.20010101-000000.bak").write_bytes(b"other list")
    labels.prune_history(history, "x.list", now=now)
    left = sorted(p.name for p in history.iterdir())
    ages = sorted(int(n[-6:-4]) for n in left if n.startswith("x.list.20010101"))
    assert ages == list(range(15))  # younger than 14 days
    assert "x.list.20000101-000001.original.bak" in left  # the newest original, however old
    assert "x.list.20000101-000000.original.bak" not in left
    assert "y.list.20010101-000000.bak" in left
    monkeypatch.setattr(labels, "HISTORY_MAX_BYTES", 700)
    labels.prune_history(history, "x.list", now=now)
    ages = sorted(int(n[-6:-4]) for n in os.listdir(history) if n.startswith("x.list.20010101"))
    assert ages == list(range(7))  # 700 bytes of 100-byte versions, newest first


def test_undo_memory_does_not_grow_with_the_list(tmp_path):
    import tracemalloc

    text = "".join(f"clip{i:05d}.wav|spk|en|text number {i}\n" for i in range(50_000))
    doc = parse_list(text, root=tmp_path)
    uids = [e.uid for e in doc.entries[:199]]  # + one delete: 200 steps, the undo limit
    tracemalloc.start()
    try:
        base, _ = tracemalloc.get_traced_memory()
        for n, uid in enumerate(uids):
            if n % 2:
                doc.set_text(uid, f"edited {n}")
            else:
                doc.set_language(uid, "zh")
        doc.delete(uids[:3])
        current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # A deep copy per edit took ~15 MB each here; inverse edits take a few hundred bytes.
    assert current - base < 1_000_000 and peak - base < 5_000_000
    for _ in range(200):
        doc.undo()
    assert doc.to_text() == text and not doc.can_undo


def test_merging_clips_of_two_languages_is_refused_naming_both(tmp_path):
    doc = load_list(make_dataset(tmp_path), trash_dir=tmp_path / "trash")
    a, b, _ = doc.entries  # en, zh
    with pytest.raises(labels.MixedLanguagesError, match="cannot merge clips in en and zh") as info:
        doc.merge([a.uid, b.uid])
    assert info.value.languages == ["en", "zh"]
    assert [e.path for e in doc.entries] == ["a.wav", "b.wav", "c.wav"]  # nothing changed
    assert not (tmp_path / "a_merged.wav").exists()


def test_label_editor_merge_of_two_languages_shows_in_the_status_line(tmp_path):
    import gradio as gr

    from ui.context import AppContext
    from ui.errors import in_status
    from ui.labels_tab import PageView, merge_selected

    ctx = AppContext.create(tmp_path / "ws", "en_US")
    doc = load_list(make_dataset(tmp_path / "ws" / "set"), trash_dir=ctx.folder("trash"))
    a, b, _ = doc.entries
    view = {
        k: getattr(PageView(), k)
        for k in ("query", "language", "sort_key", "flagged_only", "page", "page_size")
    }
    status = gr.Markdown()
    with pytest.warns(UserWarning, match="en \\+ zh"):
        out = in_status(merge_selected, status)(ctx, doc, view, [a.uid, b.uid], [True, True], 0.3)
    assert list(out) == [status] and "Not merged" in out[status] and "en + zh" in out[status]
    assert len(doc.entries) == 3
