"""The data-preparation tabs' handlers called as plain functions, and the wiring that names their inputs."""

from __future__ import annotations

import inspect
from pathlib import Path

import gradio as gr
import numpy as np
import pytest
import soundfile as sf

from tools.labels import load_list
from ui import asr_tab, dataset_tab, labels_tab, separate_tab, slice_tab
from ui.context import AppContext, InputNotFoundError
from ui.wiring import bind, flatten_inputs

SR = 32000


@pytest.fixture
def ctx(tmp_path: Path) -> AppContext:
    return AppContext.create(tmp_path / "ws", "en_US", tmp_path / "models")


def write_list(ctx: AppContext, n: int = 3) -> Path:
    root = ctx.workspace / "data"
    root.mkdir()
    tone = (0.3 * np.sin(2 * np.pi * 200 * np.arange(int(1.5 * SR)) / SR)).astype(np.float32)
    for i in range(n):
        sf.write(root / f"c{i}.wav", tone, SR, subtype="PCM_16")
    path = root / "d.list"
    path.write_text("".join(f"c{i}.wav|spk|en|text {i}\n" for i in range(n)), encoding="utf-8")
    return path


VIEW = {"query": "", "language": "", "sort_key": "file", "flagged_only": False, "page": 0, "page_size": 10}


def toast(call) -> str:
    with pytest.raises(gr.Error) as info:
        call()
    return info.value.message


# ---------- wiring ----------


def handler(ctx, *, one, many, named):
    return ctx, one, many, named


def test_wiring_passes_values_by_name_and_groups():
    components, named = flatten_inputs({"one": "a", "many": ["b", "c"], "named": {"x": "d", "y": "e"}})
    assert components == ["a", "b", "c", "d", "e"]
    assert named([1, 2, 3, 4, 5]) == {"one": 1, "many": [2, 3], "named": {"x": 4, "y": 5}}
    fn, comps = bind("CTX", handler, {"named": {"x": "d"}, "one": "a", "many": ["b"]})
    assert comps == ["d", "a", "b"] and fn(10, 20, 30) == ("CTX", 20, [30], {"x": 10})
    assert fn.__name__ == "handler"


def test_wiring_refuses_names_the_handler_does_not_take():
    with pytest.raises(TypeError):
        bind("CTX", handler, {"one": "a", "many": ["b"], "nmaed": {}})
    with pytest.raises(TypeError):
        bind("CTX", handler, {"one": "a"})


def test_wiring_keeps_a_generator_handler_a_generator(ctx):
    names = list(inspect.signature(separate_tab.start_separation).parameters)[1:]  # all but ctx
    fn, _ = bind(ctx, separate_tab.start_separation, dict.fromkeys(names))
    assert inspect.isgeneratorfunction(fn)


# ---------- Label editor ----------


def test_label_editor_loads_edits_and_undoes(ctx):
    path = write_list(ctx)
    out = labels_tab.load_document(ctx, None, "data/d.list", VIEW)
    doc = out[0]
    assert "3 clips" in out[1] and out[2:4] == [0, "Page 1 of 1"]
    assert out[4 + 4] == "text 0"  # row 0 after [doc, status, page, caption]: row, uid, index, audio, text
    uid = doc.entries[1].uid
    assert labels_tab.save_text(ctx, doc, uid, "edited") == "Saved d.list"
    assert "c1.wav|spk|en|edited" in path.read_text(encoding="utf-8")
    result = labels_tab.undo_edit(ctx, doc, VIEW)
    assert result[1].startswith("Undone. d.list: 3 clips")
    assert "c1.wav|spk|en|text 1" in path.read_text(encoding="utf-8")


def test_label_editor_two_sessions_lose_nothing(ctx):
    """Two browser sessions (two documents in two gr.State) edit one list: both edits reach the file."""
    path = write_list(ctx)
    a = labels_tab.load_document(ctx, None, "data/d.list", VIEW)[0]
    b = labels_tab.load_document(ctx, None, "data/d.list", VIEW)[0]
    assert labels_tab.save_text(ctx, a, a.entries[0].uid, "from A") == "Saved d.list"
    status = labels_tab.save_text(ctx, b, b.entries[2].uid, "from B")
    assert status == "Saved d.list, with 1 clips changed elsewhere meanwhile merged in"
    after = labels_tab.after_row_save(ctx, b, VIEW)
    assert after[0]["visible"] is False and after[1:3] == [0, "Page 1 of 1"]  # the page shows A's edit
    assert after[3 + 4] == "from A"
    assert labels_tab.after_row_save(ctx, b, VIEW)[1] == gr.update()  # once only
    assert [e.text for e in load_list(path).entries] == ["from A", "text 1", "from B"]


def test_label_editor_conflict_shows_both_versions_and_lets_the_person_choose(ctx):
    path = write_list(ctx)
    a = labels_tab.load_document(ctx, None, "data/d.list", VIEW)[0]
    b = labels_tab.load_document(ctx, None, "data/d.list", VIEW)[0]
    labels_tab.save_text(ctx, a, a.entries[1].uid, "A's words")
    status = labels_tab.save_text(ctx, b, b.entries[1].uid, "B's words")
    assert "was changed elsewhere" in status and "Nothing was saved" in status
    assert "c1.wav: mine `c1.wav|spk|en|B's words` · theirs `c1.wav|spk|en|A's words`" in status
    assert "A's words" in path.read_text(encoding="utf-8")
    assert labels_tab.after_row_save(ctx, b, VIEW)[0]["visible"] is True
    assert labels_tab.conflict_controls(ctx, b)["visible"] is True
    out = labels_tab.keep_mine(ctx, b, VIEW)
    assert out[1].startswith("Kept your versions. d.list: 3 clips")
    assert labels_tab.conflict_controls(ctx, b)["visible"] is False
    assert "c1.wav|spk|en|B's words" in path.read_text(encoding="utf-8")
    # A, still on its old copy, deletes the clip B changed: refused too; A loads again and deletes it.
    out = labels_tab.delete_selected(ctx, a, VIEW, [a.entries[1].uid], [True], False)
    assert "was changed elsewhere" in out[1] and "theirs `c1.wav|spk|en|B's words`" in out[1]
    a = labels_tab.load_document(ctx, None, "data/d.list", VIEW)[0]
    labels_tab.delete_selected(ctx, a, VIEW, [a.entries[1].uid], [True], False)
    # B edits the clip A deleted: B takes theirs and the clip is gone on B's page too.
    assert "was changed elsewhere" in labels_tab.save_text(ctx, b, b.entries[1].uid, "again")
    out = labels_tab.take_theirs(ctx, b, VIEW)
    assert out[1].startswith("Took the versions saved elsewhere. d.list: 2 clips")
    assert [e.text for e in load_list(path).entries] == ["text 0", "text 2"]


def test_label_editor_one_handler_per_operation(ctx):
    path = write_list(ctx, 4)
    doc = labels_tab.load_document(ctx, "data/d.list", "", VIEW)[0]
    uids = [e.uid for e in doc.entries] + [None] * (labels_tab.MAX_ROWS - 4)
    ticks = [False] * labels_tab.MAX_ROWS
    ticks[0] = True
    out = labels_tab.split_selected(ctx, doc, VIEW, uids, ticks, 0.5)
    assert out[1].startswith("Split into") and len(doc.entries) == 5
    uids = [e.uid for e in doc.entries] + [None] * (labels_tab.MAX_ROWS - 5)
    ticks = [False, False, True, True] + [False] * (labels_tab.MAX_ROWS - 4)
    assert labels_tab.merge_selected(ctx, doc, VIEW, uids, ticks, 0.1)[1].startswith("Merged into")
    assert labels_tab.delete_selected(ctx, doc, VIEW, uids, [True] + [False] * 19, False)[1].startswith(
        "Deleted 1 clips"
    )
    assert path.read_text(encoding="utf-8").count("\n") == 3


def test_label_editor_errors_are_shown_as_messages(ctx, monkeypatch):
    write_list(ctx)
    assert toast(lambda: labels_tab.load_document(ctx, None, " ", VIEW)) == "Choose a .list file first"
    assert "outside" in toast(lambda: labels_tab.load_document(ctx, None, "../x.list", VIEW))
    assert "not found" in toast(lambda: labels_tab.load_document(ctx, None, "nope.list", VIEW))
    no_ticks = [None] * labels_tab.MAX_ROWS
    assert toast(lambda: labels_tab.split_selected(ctx, None, VIEW, no_ticks, no_ticks, 1)) == (
        "Load a .list file first"
    )
    doc = labels_tab.load_document(ctx, None, "data/d.list", VIEW)[0]
    assert toast(lambda: labels_tab.split_selected(ctx, doc, VIEW, no_ticks, no_ticks, 1)) == (
        "Select exactly one clip to split"
    )
    assert "nothing to undo" in toast(lambda: labels_tab.undo_edit(ctx, doc, VIEW))
    assert "'|'" in toast(lambda: labels_tab.save_text(ctx, doc, doc.entries[0].uid, "a|b"))

    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied", str(doc.path))

    monkeypatch.setattr(doc, "save", refuse)  # the person's file is read-only: their message, not a defect
    assert "Permission denied" in toast(lambda: labels_tab.save_text(ctx, doc, doc.entries[0].uid, "new"))


def test_label_editor_defect_is_an_internal_error(ctx, monkeypatch):
    write_list(ctx)
    doc = labels_tab.load_document(ctx, None, "data/d.list", VIEW)[0]

    def bug(*args, **kwargs):
        raise KeyError("a bug")

    monkeypatch.setattr(doc, "set_language", bug)
    assert "Internal error (KeyError)" in toast(lambda: labels_tab.save_language(ctx, doc, 1, "zh"))


def test_label_editor_pages(ctx):
    write_list(ctx, 7)
    doc = labels_tab.load_document(ctx, None, "data/d.list", {**VIEW, "page_size": 5})[0]
    view = {**VIEW, "page_size": 5, "page": 0}
    assert labels_tab.next_page(ctx, doc, view)[:2] == [1, "Page 2 of 2"]
    assert labels_tab.next_page(ctx, doc, {**view, "page": 1})[0] == 1  # clamped
    assert labels_tab.previous_page(ctx, doc, {**view, "page": 1})[0] == 0
    assert labels_tab.first_page(ctx, doc, {**view, "page": 1, "query": "text 6"})[:2] == [0, "Page 1 of 1"]


# ---------- the job tabs and Dataset check ----------


def test_job_tabs_show_input_mistakes(ctx):
    sep = dict(files=None, model="htdemucs", segment=0, overlap=0.25, shifts=0, device="cpu", state={})
    start = separate_tab.start_separation
    assert toast(lambda: next(start(ctx, typed="", **sep))) == "Upload files or type a path first."
    assert toast(lambda: next(start(ctx, typed="missing.wav", **sep))).startswith("Not found:")
    with pytest.raises(InputNotFoundError):
        ctx.existing("missing.wav")
    params = dict(
        threshold=-40, min_length=5000, min_interval=300, hop=10, max_sil_kept=500, max_peak=0.9, alpha=0.25
    )
    assert "outside" in toast(
        lambda: slice_tab.preview_cuts(ctx, None, "../x.wav", {**params, "max_length": 0})
    )
    asr = dict(
        model="tiny", language="auto", device="cpu", compute_type="int8", beam_size=5, batch_size=0, vad=True
    )
    assert "outside" in toast(lambda: next(asr_tab.start_transcription(ctx, folder="../x", state={}, **asr)))
    assert toast(lambda: next(asr_tab.start_transcription(ctx, folder=" ", state={}, **asr))) == (
        "Choose an input folder."
    )
    assert toast(lambda: dataset_tab.check_list(ctx, None, "")) == "Choose a .list file first"


def test_dataset_check_summary(ctx):
    write_list(ctx)
    summary, fig, rows = dataset_tab.check_list(ctx, "data/d.list", None)
    assert "Clips: 3" in summary and "Total duration: 4.5 s" in summary and fig is not None and rows == []


def test_label_editor_row_outside_the_workspace_has_no_player(ctx):
    path = write_list(ctx, 1)
    path.write_text(path.read_text(encoding="utf-8") + "/etc/passwd|spk|en|far away\n", encoding="utf-8")
    out = labels_tab.load_document(ctx, None, "data/d.list", VIEW)
    first, second = out[4:12], out[12:20]  # two rows of 8 widgets each
    assert first[3] is not None and first[3].endswith("c0.wav")
    assert second[3] is None and second[4] == "far away"


# ---------- the experiment bar: folders, hand-offs, saved settings


def test_experiment_bar_prefills_each_stage_from_the_experiment(tmp_path):
    import json

    import gradio as gr
    import soundfile as sf

    from ui import experiment_bar as eb
    from ui.context import AppContext

    ctx = AppContext.create(tmp_path / "ws", "en_US", tmp_path / "models")
    exp = eb.save_experiment(ctx, eb.Experiment("alice", "Alice", "en"))
    assert eb.read_experiment(ctx, "alice") == exp and eb.list_experiments(ctx) == ["alice"]
    assert ctx.stage_folder("separated", "alice") == ctx.workspace / "separated" / "alice"
    for name in ("song_vocals.wav", "song_accompaniment.wav"):
        sf.write(ctx.workspace / "separated" / "alice" / name, [0.0] * 320, 32000)
    assert eb.slicing_inputs(ctx, "alice") == ["separated/alice/song_vocals.wav"]  # the vocals only
    (ctx.workspace / "asr" / "alice.list").write_text("a.wav|Alice|en|hi\n", encoding="utf-8")
    assert eb.experiment_list(ctx, "alice") == "asr/alice.list"
    s1 = ctx.workspace / "experiments" / "alice" / "s1_train"
    s1.mkdir()
    (s1 / "ui_request.json").write_text(
        json.dumps({"epochs": 7, "batch_size": 2, "save_every": 3, "dpo": True})
    )
    assert eb.training_settings(ctx, "alice") == {
        "train-s1-epochs": 7,
        "train-s1-batch": 2,
        "train-s1-save": 3,
        "train-dpo": True,
    }
    with gr.Blocks():
        pick, folder, lst = gr.Dropdown(multiselect=True), gr.Dropdown(), gr.Dropdown()
    targets = eb.FlowTargets(None, {"slice_pick": pick, "asr_folder": folder, "labels_list": lst})
    updates = eb.list_targets(ctx, targets, "alice", select=True)
    assert updates[pick]["value"] == ["separated/alice/song_vocals.wav"]
    assert updates[folder]["value"] == "sliced/alice" and updates[lst]["value"] == "asr/alice.list"
    kept = eb.list_targets(ctx, targets, "alice", select=False)  # a refresh keeps the person's choices
    assert all("value" not in u for u in kept.values()) and "asr/alice.list" in kept[lst]["choices"]
    eb.remember(ctx, "alice")
    assert eb.remembered(ctx) == "alice"


def test_experiment_weights_come_first_and_bad_names_are_refused(tmp_path):
    from types import SimpleNamespace

    from ui import experiment_bar as eb
    from ui.context import AppContext, InputError

    choices = [SimpleNamespace(path=p) for p in ("w/bob_e2_s10.pth", "w/alice_e1_s5.pth", "p/s2G2333k.pth")]
    assert [c.path for c in eb.experiment_first("alice", choices)] == [
        "w/alice_e1_s5.pth",
        "w/bob_e2_s10.pth",
        "p/s2G2333k.pth",
    ]
    assert eb.is_experiment_weight("alice", "alice-e3.ckpt") and not eb.is_experiment_weight(
        "ali", "alice-e3.ckpt"
    )
    ctx = AppContext.create(tmp_path / "ws", "en_US")
    with pytest.raises(eb.ExperimentError, match="not a safe folder name"):
        eb.validate_name(ctx, "../up")
    with pytest.raises(InputError):
        ctx.stage_folder("uploads", "../up")
