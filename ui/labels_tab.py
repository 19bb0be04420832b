"""Label editor tab: page through a `.list`, listen, fix texts and languages, delete/merge/split, undo.

A fixed set of row widgets (MAX_ROWS) is built once and refilled on paging (the SubFix pattern).
Every text or language edit is saved to disk at once (atomic, previous version in `.history/`), so
paging or closing the browser never loses an edit. The loaded document lives in `gr.State`.
Audio paths are resolved against the workspace, the only folder the server serves.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from i18n import I18n
from tools.labels import LANGUAGES, LabelDocument, LabelEntry, load_list
from ui.context import AppContext

MAX_ROWS = 20
PAGE_SIZES = (5, 10, 20)
_SKIP_DIRS = {".history", ".trash", "trash", ".gradio", "jobs"}
_FIELDS_PER_ROW = 8  # row, uid, index, audio, text, language, selected, confidence


def find_lists(workspace: Path) -> list[str]:
    """`.list` files under the workspace (history and trash excluded), as paths relative to it."""
    found = []
    for p in sorted(workspace.rglob("*.list")):
        rel = p.relative_to(workspace)
        if not _SKIP_DIRS.intersection(rel.parts[:-1]):
            found.append(rel.as_posix())
    return found


def page_view(
    doc: LabelDocument,
    query: str,
    language: str,
    sort_key: str,
    flagged_only: bool,
    page: int,
    page_size: int,
) -> tuple[list[LabelEntry], int, int]:
    """Entries of `page` (clamped) after filter and sort; returns (entries, page, page count)."""
    entries = doc.sort(doc.filter(query or "", language or None, bool(flagged_only)), sort_key or "file")
    pages = max(1, -(-len(entries) // page_size))
    page = min(max(0, int(page)), pages - 1)
    return entries[page * page_size : (page + 1) * page_size], page, pages


def confidence_text(doc: LabelDocument, entry: LabelEntry, _: I18n) -> str:
    """ASR confidence of a clip for its row: average log-prob and no-speech probability."""
    s = doc.score(entry)
    if s is None:
        return ""
    parts = []
    if s.avg_logprob is not None:
        parts.append(_("log-prob {value}", value=f"{s.avg_logprob:.2f}"))
    if s.no_speech_prob is not None:
        parts.append(_("no speech {value}", value=f"{s.no_speech_prob:.2f}"))
    return " · ".join(parts)


def build(ctx: AppContext) -> None:
    import gradio as gr

    _ = ctx.i18n
    doc_state = gr.State(None)
    page_state = gr.State(0)

    with gr.Row():
        list_choice = gr.Dropdown(
            choices=find_lists(ctx.workspace),
            label=_("Label file (.list) in the workspace"),
            allow_custom_value=True,
            elem_id="labels_list_choice",
            scale=3,
        )
        refresh_btn = gr.Button(_("Refresh"), elem_id="labels_refresh", scale=0)
    with gr.Row():
        path_box = gr.Textbox(
            label=_("Or a path (relative to the workspace)"),
            elem_id="labels_path",
            scale=3,
        )
        load_btn = gr.Button(_("Load"), variant="primary", elem_id="labels_load", scale=0)
    with gr.Row():
        query = gr.Textbox(label=_("Search text or path"), elem_id="labels_query")
        lang_filter = gr.Dropdown(
            choices=[(_("All languages"), "")] + [(code, code) for code in LANGUAGES],
            value="",
            label=_("Language filter"),
            elem_id="labels_lang_filter",
        )
        sort_key = gr.Dropdown(
            choices=[
                (_("File order"), "file"),
                (_("Path"), "path"),
                (_("Duration"), "duration"),
                (_("ASR confidence (doubtful first)"), "confidence"),
            ],
            value="file",
            label=_("Sort by"),
            elem_id="labels_sort",
        )
        flagged_only = gr.Checkbox(label=_("Only flagged clips"), elem_id="labels_flagged")
        page_size = gr.Dropdown(
            choices=list(PAGE_SIZES), value=10, label=_("Page size"), elem_id="labels_page_size"
        )
    status = gr.Markdown(elem_id="labels_status")

    rows: list[list[Any]] = []
    for i in range(MAX_ROWS):
        with gr.Row(visible=False, elem_id=f"labels_row_{i}") as row:
            uid = gr.Number(visible=False, precision=0, elem_id=f"labels_uid_{i}")
            index = gr.Markdown(elem_id=f"labels_index_{i}")
            audio = gr.Audio(
                type="filepath", interactive=False, show_label=False, elem_id=f"labels_audio_{i}", scale=3
            )
            text = gr.Textbox(show_label=False, elem_id=f"labels_text_{i}", scale=5)
            lang = gr.Dropdown(
                choices=list(LANGUAGES),
                allow_custom_value=True,
                show_label=False,
                elem_id=f"labels_lang_{i}",
                scale=1,
                min_width=80,
            )
            selected = gr.Checkbox(label=_("Select"), elem_id=f"labels_select_{i}", scale=0, min_width=80)
            conf = gr.Markdown(elem_id=f"labels_conf_{i}")
        rows.append([row, uid, index, audio, text, lang, selected, conf])

    with gr.Row():
        prev_btn = gr.Button(_("Previous page"), elem_id="labels_prev")
        page_info = gr.Markdown(elem_id="labels_page_info")
        next_btn = gr.Button(_("Next page"), elem_id="labels_next")
    with gr.Row():
        undo_btn = gr.Button(_("Undo"), elem_id="labels_undo")
        trash_audio = gr.Checkbox(
            label=_("Move audio of deleted clips to the trash"), elem_id="labels_trash_audio"
        )
        delete_btn = gr.Button(_("Delete selected"), variant="stop", elem_id="labels_delete")
    with gr.Row():
        silence = gr.Number(
            value=0.3, minimum=0, label=_("Silence between merged clips (s)"), elem_id="labels_silence"
        )
        merge_btn = gr.Button(_("Merge selected"), elem_id="labels_merge")
        split_at = gr.Number(value=1.0, minimum=0, label=_("Split time (s)"), elem_id="labels_split_at")
        split_btn = gr.Button(_("Split selected"), elem_id="labels_split")

    view_inputs = [doc_state, query, lang_filter, sort_key, flagged_only, page_state, page_size]
    row_outputs = [c for r in rows for c in r]
    render_outputs = [page_state, page_info, *row_outputs]
    uids = [r[1] for r in rows]
    checks = [r[6] for r in rows]
    # One edit at a time per app: a blur-save and the page change that caused it run in order.
    queue = {"concurrency_id": "labels_editor", "concurrency_limit": 1}

    def render(doc, q, lf, sk, fo, page, size) -> list[Any]:
        if doc is None:
            return [0, "", *[gr.update(visible=False)] * (MAX_ROWS * _FIELDS_PER_ROW)]
        size = int(size or 10)
        entries, page, pages = page_view(doc, q, lf, sk, fo, page, size)
        out: list[Any] = [page, _("Page {page} of {pages}", page=page + 1, pages=pages)]
        flagged = doc.flagged_uids()
        for i in range(MAX_ROWS):
            if i >= min(size, len(entries)):
                out += [gr.update(visible=False), None] + [gr.update()] * (_FIELDS_PER_ROW - 2)
                continue
            e = entries[i]
            try:
                audio_path = doc.resolve_audio(e)
                audio_value = str(audio_path) if audio_path.is_file() else None
            except ValueError:
                audio_value = None
            mark = " ⚠" if e.uid in flagged else ""
            out += [
                gr.update(visible=True),
                e.uid,
                f"**{doc.entries.index(e) + 1}**{mark}",
                audio_value,
                e.text,
                e.language,
                False,
                confidence_text(doc, e, _),
            ]
        return out

    def describe(doc: LabelDocument) -> str:
        issues = doc.issues()
        return _(
            "{path}: {n} clips, {bad} malformed lines (kept as they are), {issues} issues",
            path=doc.path.name if doc.path else "",
            n=len(doc.entries),
            bad=len(doc.malformed),
            issues=len(issues),
        )

    def load(choice, typed, q, lf, sk, fo, size):
        target = (typed or "").strip() or (choice or "").strip()
        if not target:
            raise gr.Error(_("Choose a .list file first"))
        try:
            doc = load_list(ctx.inside(target), trash_dir=ctx.folder("trash"), boundary=ctx.workspace)
        except ValueError as e:
            raise gr.Error(str(e)) from e
        return [doc, describe(doc), *render(doc, q, lf, sk, fo, 0, size)]

    def refresh():
        return gr.update(choices=find_lists(ctx.workspace))

    def go(delta: int):
        def handler(doc, q, lf, sk, fo, page, size):
            return render(doc, q, lf, sk, fo, int(page) + delta, size)

        return handler

    def first_page(doc, q, lf, sk, fo, page, size):
        return render(doc, q, lf, sk, fo, 0, size)

    def save_edit(doc: LabelDocument | None, uid, value, kind: str) -> Any:
        if doc is None or uid is None:
            return gr.update()
        try:
            changed = (doc.set_text if kind == "text" else doc.set_language)(int(uid), value or "")
            if changed:
                doc.save()
        except (ValueError, OSError) as e:
            raise gr.Error(str(e)) from e
        return _("Saved {name}", name=doc.path.name) if changed else gr.update()

    def selected_uids(values: list[Any]) -> list[int]:
        ids, ticks = values[:MAX_ROWS], values[MAX_ROWS:]
        return [int(u) for u, t in zip(ids, ticks, strict=True) if t and u is not None]

    def edit_op(op: str):
        def handler(doc, q, lf, sk, fo, page, size, trash, gap, at, *rowvals):
            if doc is None:
                raise gr.Error(_("Load a .list file first"))
            chosen = selected_uids(list(rowvals))
            try:
                if op == "undo":
                    doc.undo()
                    msg = _("Undone")
                elif op == "delete":
                    msg = _("Deleted {n} clips", n=doc.delete(chosen, trash_audio=bool(trash)))
                elif op == "merge":
                    merged = doc.merge(chosen, silence=float(gap or 0))
                    msg = _("Merged into {path}", path=merged.path)
                else:
                    if len(chosen) != 1:
                        raise gr.Error(_("Select exactly one clip to split"))
                    a, b = doc.split(chosen[0], float(at or 0))
                    msg = _("Split into {a} and {b}; type the text of the second part", a=a.path, b=b.path)
                doc.save()
            except (ValueError, OSError) as e:
                raise gr.Error(str(e)) from e
            return [doc, f"{msg}. {describe(doc)}", *render(doc, q, lf, sk, fo, page, size)]

        return handler

    op_inputs = [*view_inputs, trash_audio, silence, split_at, *uids, *checks]
    op_outputs = [doc_state, status, *render_outputs]
    load_inputs = [list_choice, path_box, query, lang_filter, sort_key, flagged_only, page_size]

    load_btn.click(load, load_inputs, [doc_state, status, *render_outputs], **queue)
    path_box.submit(load, load_inputs, [doc_state, status, *render_outputs], **queue)
    refresh_btn.click(refresh, None, list_choice)
    prev_btn.click(go(-1), view_inputs, render_outputs, **queue)
    next_btn.click(go(+1), view_inputs, render_outputs, **queue)
    for widget in (query, lang_filter, sort_key, flagged_only, page_size):
        widget.change(first_page, view_inputs, render_outputs, **queue)
    for op, btn in (("undo", undo_btn), ("delete", delete_btn), ("merge", merge_btn), ("split", split_btn)):
        btn.click(edit_op(op), op_inputs, op_outputs, **queue)
    for _row, uid, _index, _audio, text, lang, _sel, _conf in rows:
        # The row's uid travels with the event, so a save always hits the clip the user edited.
        for event in (text.blur, text.submit):
            event(lambda d, u, v: save_edit(d, u, v, "text"), [doc_state, uid, text], status, **queue)
        lang.input(lambda d, u, v: save_edit(d, u, v, "language"), [doc_state, uid, lang], status, **queue)
