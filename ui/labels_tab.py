"""Label editor tab: page through a `.list`, listen, fix texts and languages, delete/merge/split, undo.

A fixed set of row widgets (MAX_ROWS) is built once and refilled on paging (the SubFix pattern).
Every text or language edit is saved to disk at once (atomic, previous version in `.history/`), so
paging or closing the browser never loses an edit. The loaded document lives in `gr.State`, one per
browser session; when another session or an editor saved the same file meanwhile, a save merges
their changes to other clips (and shows the page again), and for clips both changed it saves nothing
and shows both versions with "Keep mine" / "Take theirs" buttons (or load the file again).
Audio paths are resolved against the workspace, the only folder the server serves.
`layout()` builds the components, `wire()` connects them to one named handler per operation.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import gradio as gr

from core.fsutil import PathOutsideRootError
from i18n import I18n
from tools.labels import (
    LANGUAGES,
    ClipConflict,
    LabelConflictError,
    LabelDocument,
    LabelEntry,
    LabelError,
    MixedLanguagesError,
    load_list,
)
from ui.context import AppContext, InputError, person_files
from ui.errors import shown_in_toast
from ui.wiring import connect

MAX_ROWS = 20
PAGE_SIZES = (5, 10, 20)
_SKIP_DIRS = {".history", ".trash", "trash", ".gradio", "jobs"}
_FIELDS_PER_ROW = 8  # row, uid, index, audio, text, language, selected, confidence
CONFLICTS_SHOWN = 10  # clips listed in a conflict message; the count names the rest
# One edit at a time per app: a blur-save and the page change that caused it run in order. The
# progress shows as a small spinner, never as an overlay over the rows (which would block their controls).
EDIT_QUEUE = {"concurrency_id": "labels_editor", "concurrency_limit": 1, "show_progress": "minimal"}


def find_lists(workspace: Path) -> list[str]:
    """`.list` files under the workspace (history and trash excluded), as paths relative to it."""
    found = []
    for p in sorted(workspace.rglob("*.list")):
        rel = p.relative_to(workspace)
        if not _SKIP_DIRS.intersection(rel.parts[:-1]):
            found.append(rel.as_posix())
    return found


@dataclass(frozen=True)
class PageView:
    """What the person asked to see: filter, sort and page (widget values, None-safe)."""

    query: str = ""
    language: str = ""
    sort_key: str = "file"
    flagged_only: bool = False
    page: int = 0
    page_size: int = 10

    @classmethod
    def of(cls, values: dict[str, Any]) -> PageView:
        return cls(
            query=values.get("query") or "",
            language=values.get("language") or "",
            sort_key=values.get("sort_key") or "file",
            flagged_only=bool(values.get("flagged_only")),
            page=int(values.get("page") or 0),
            page_size=int(values.get("page_size") or 10),
        )

    def at(self, page: int) -> PageView:
        return replace(self, page=page)


def page_view(doc: LabelDocument, view: PageView) -> tuple[list[LabelEntry], int, int]:
    """Entries of `view.page` (clamped) after filter and sort; returns (entries, page, page count)."""
    entries = doc.sort(doc.filter(view.query, view.language or None, view.flagged_only), view.sort_key)
    pages = max(1, -(-len(entries) // view.page_size))
    page = min(max(0, view.page), pages - 1)
    return entries[page * view.page_size : (page + 1) * view.page_size], page, pages


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


def describe(ctx: AppContext, doc: LabelDocument) -> str:
    """The status line of a loaded list: clips, malformed lines, issues."""
    return ctx.i18n(
        "{path}: {n} clips, {bad} malformed lines (kept as they are), {issues} issues",
        path=doc.path.name if doc.path else "",
        n=len(doc.entries),
        bad=len(doc.malformed),
        issues=len(doc.issues()),
    )


# ---------- layout ----------


@dataclass
class LabelRow:
    """The widgets of one clip's row; `components()` is their order in a page's outputs."""

    row: gr.Row
    uid: gr.Number
    index: gr.Markdown
    audio: gr.Audio
    text: gr.Textbox
    language: gr.Dropdown
    selected: gr.Checkbox
    confidence: gr.Markdown

    def components(self) -> list[Any]:
        return [
            self.row,
            self.uid,
            self.index,
            self.audio,
            self.text,
            self.language,
            self.selected,
            self.confidence,
        ]


@dataclass
class LabelsLayout:
    doc: gr.State  # the loaded LabelDocument (None before a load)
    page: gr.State
    list_choice: gr.Dropdown
    refresh: gr.Button
    path: gr.Textbox
    load: gr.Button
    query: gr.Textbox
    language_filter: gr.Dropdown
    sort_key: gr.Dropdown
    flagged_only: gr.Checkbox
    page_size: gr.Dropdown
    status: gr.Markdown
    rows: list[LabelRow]
    previous: gr.Button
    page_info: gr.Markdown
    next: gr.Button
    undo: gr.Button
    trash_audio: gr.Checkbox
    delete: gr.Button
    silence: gr.Number
    merge: gr.Button
    split_at: gr.Number
    split: gr.Button
    conflict: gr.Row  # shown while a save is refused because the file changed elsewhere
    keep_mine: gr.Button
    take_theirs: gr.Button
    next_step: gr.Button  # "Next step: Dataset check" (ui.experiment_bar wires it)
    events: dict[str, Any] = field(default_factory=dict)  # "load": the Load event

    def view_inputs(self) -> dict[str, Any]:
        """The components a `PageView` is made of, by field name."""
        return {
            "query": self.query,
            "language": self.language_filter,
            "sort_key": self.sort_key,
            "flagged_only": self.flagged_only,
            "page": self.page,
            "page_size": self.page_size,
        }

    def page_outputs(self) -> list[Any]:
        """What `render_page` fills: the page number, its caption, then every row's widgets."""
        return [self.page, self.page_info, *(c for r in self.rows for c in r.components())]

    def selection_inputs(self) -> dict[str, list[Any]]:
        return {"uids": [r.uid for r in self.rows], "ticks": [r.selected for r in self.rows]}


def file_chooser(ctx: AppContext) -> tuple[gr.Dropdown, gr.Button, gr.Textbox, gr.Button]:
    _ = ctx.i18n
    with gr.Row():
        list_choice = gr.Dropdown(
            choices=find_lists(ctx.workspace),
            label=_("Label file (.list) in the workspace"),
            allow_custom_value=True,
            elem_id="labels_list_choice",
            scale=3,
        )
        refresh = gr.Button(_("Refresh"), elem_id="labels_refresh", scale=0)
    with gr.Row():
        path = gr.Textbox(label=_("Or a path (relative to the workspace)"), elem_id="labels_path", scale=3)
        load = gr.Button(_("Load"), variant="primary", elem_id="labels_load", scale=0)
    return list_choice, refresh, path, load


def view_controls(ctx: AppContext) -> tuple[gr.Textbox, gr.Dropdown, gr.Dropdown, gr.Checkbox, gr.Dropdown]:
    """Search, language filter, sort key, flagged-only and page size, in one row."""
    _ = ctx.i18n
    with gr.Row():
        query = gr.Textbox(label=_("Search text or path"), elem_id="labels_query")
        language = gr.Dropdown(
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
    return query, language, sort_key, flagged_only, page_size


def clip_row(ctx: AppContext, i: int) -> LabelRow:
    """Row `i` of the page, hidden until a page fills it."""
    # At 800 px the row wraps: number, player and text on one line, language / select / confidence
    # on the next, each control its own size (min widths below), none covering another.
    with gr.Row(visible=False, elem_id=f"labels_row_{i}", elem_classes=["labels-row"]) as row:
        uid = gr.Number(visible=False, precision=0, elem_id=f"labels_uid_{i}")
        index = gr.Markdown(elem_id=f"labels_index_{i}", min_height=0, scale=0, min_width=40)
        audio = gr.Audio(
            type="filepath",
            interactive=False,
            show_label=False,
            elem_id=f"labels_audio_{i}",
            scale=3,
            min_width=220,
        )
        text = gr.Textbox(show_label=False, elem_id=f"labels_text_{i}", scale=5, min_width=260)
        language = gr.Dropdown(
            choices=list(LANGUAGES),
            allow_custom_value=True,
            show_label=False,
            elem_id=f"labels_lang_{i}",
            scale=1,
            min_width=80,
        )
        selected = gr.Checkbox(label=ctx.i18n("Select"), elem_id=f"labels_select_{i}", scale=0, min_width=80)
        confidence = gr.Markdown(elem_id=f"labels_conf_{i}", min_height=0, scale=1, min_width=120)
    return LabelRow(row, uid, index, audio, text, language, selected, confidence)


def layout(ctx: AppContext) -> LabelsLayout:
    _ = ctx.i18n
    list_choice, refresh, path, load = file_chooser(ctx)
    query, language, sort_key, flagged_only, page_size = view_controls(ctx)
    status = gr.Markdown(elem_id="labels_status")
    rows = [clip_row(ctx, i) for i in range(MAX_ROWS)]
    with gr.Row():
        previous = gr.Button(_("Previous page"), elem_id="labels_prev")
        page_info = gr.Markdown(elem_id="labels_page_info")
        next_btn = gr.Button(_("Next page"), elem_id="labels_next")
    with gr.Row():
        undo = gr.Button(_("Undo"), elem_id="labels_undo")
        trash_audio = gr.Checkbox(
            label=_("Move audio of deleted clips to the trash"), elem_id="labels_trash_audio"
        )
        delete = gr.Button(_("Delete selected"), variant="stop", elem_id="labels_delete")
    with gr.Row():
        silence = gr.Number(
            value=0.3, minimum=0, label=_("Silence between merged clips (s)"), elem_id="labels_silence"
        )
        merge = gr.Button(_("Merge selected"), elem_id="labels_merge")
        split_at = gr.Number(value=1.0, minimum=0, label=_("Split time (s)"), elem_id="labels_split_at")
        split = gr.Button(_("Split selected"), elem_id="labels_split")
    with gr.Row(visible=False, elem_id="labels_conflict") as conflict:
        keep_mine = gr.Button(_("Keep mine"), variant="primary", elem_id="labels_keep_mine")
        take_theirs = gr.Button(_("Take theirs"), elem_id="labels_take_theirs")
    next_step = gr.Button(_("Next step: {tab}", tab=_("Dataset check")) + " →", elem_id="labels_next_step")
    return LabelsLayout(
        doc=gr.State(None),
        page=gr.State(0),
        list_choice=list_choice,
        refresh=refresh,
        path=path,
        load=load,
        query=query,
        language_filter=language,
        sort_key=sort_key,
        flagged_only=flagged_only,
        page_size=page_size,
        status=status,
        rows=rows,
        previous=previous,
        page_info=page_info,
        next=next_btn,
        undo=undo,
        trash_audio=trash_audio,
        delete=delete,
        silence=silence,
        merge=merge,
        split_at=split_at,
        split=split,
        conflict=conflict,
        keep_mine=keep_mine,
        take_theirs=take_theirs,
        next_step=next_step,
    )


# ---------- rendering a page ----------


def hidden_row() -> list[Any]:
    """A row past the end of the page: hidden, without a uid (so a late blur saves nothing)."""
    return [gr.update(visible=False), None] + [gr.update()] * (_FIELDS_PER_ROW - 2)


def row_values(ctx: AppContext, doc: LabelDocument, entry: LabelEntry, flagged: bool) -> list[Any]:
    """The values of one row, in `LabelRow.components()` order."""
    try:
        audio_path = doc.resolve_audio(entry)
        audio_value = str(audio_path) if audio_path.is_file() else None
    except (LabelError, PathOutsideRootError):  # an empty path or one outside the workspace: no player
        audio_value = None
    return [
        gr.update(visible=True),
        entry.uid,
        f"**{doc.entries.index(entry) + 1}**{' ⚠' if flagged else ''}",
        audio_value,
        entry.text,
        entry.language,
        False,
        confidence_text(doc, entry, ctx.i18n),
    ]


def render_page(ctx: AppContext, doc: LabelDocument | None, view: PageView) -> list[Any]:
    """Values for `LabelsLayout.page_outputs()`: the clamped page, its caption and every row."""
    if doc is None:
        return [0, "", *[gr.update(visible=False)] * (MAX_ROWS * _FIELDS_PER_ROW)]
    entries, page, pages = page_view(doc, view)
    out: list[Any] = [page, ctx.i18n("Page {page} of {pages}", page=page + 1, pages=pages)]
    flagged = doc.flagged_uids()
    for i in range(MAX_ROWS):
        if i < min(view.page_size, len(entries)):
            out += row_values(ctx, doc, entries[i], entries[i].uid in flagged)
        else:
            out += hidden_row()
    return out


# ---------- handlers: loading and paging ----------


def refresh_lists(ctx: AppContext) -> Any:
    return gr.update(choices=find_lists(ctx.workspace))


def load_document(ctx: AppContext, choice: str | None, typed: str | None, view: dict[str, Any]) -> list[Any]:
    """Load the typed path, else the chosen list; show its first page. -> [doc, status, *page]."""
    _ = ctx.i18n
    target = (typed or "").strip() or (choice or "").strip()
    with shown_in_toast(_, "loading a label file"):
        if not target:
            raise InputError(_("Choose a .list file first"))
        doc = load_list(ctx.inside(target), trash_dir=ctx.folder("trash"), boundary=ctx.workspace)
    return [doc, describe(ctx, doc), *render_page(ctx, doc, PageView.of(view).at(0))]


def first_page(ctx: AppContext, doc: LabelDocument | None, view: dict[str, Any]) -> list[Any]:
    """The filter, sort or page size changed: back to the first page."""
    return render_page(ctx, doc, PageView.of(view).at(0))


def previous_page(ctx: AppContext, doc: LabelDocument | None, view: dict[str, Any]) -> list[Any]:
    v = PageView.of(view)
    return render_page(ctx, doc, v.at(v.page - 1))


def next_page(ctx: AppContext, doc: LabelDocument | None, view: dict[str, Any]) -> list[Any]:
    v = PageView.of(view)
    return render_page(ctx, doc, v.at(v.page + 1))


# ---------- saving: concurrent changes merged, conflicts shown ----------


def _code(line: str | None, _: I18n) -> str:
    return _("(deleted)") if line is None else "`" + line.replace("`", "'") + "`"


def conflict_message(ctx: AppContext, doc: LabelDocument, conflicts: list[ClipConflict]) -> str:
    """Both versions of each clip changed here and elsewhere, and what the person can do."""
    _ = ctx.i18n
    lines = [
        _(
            "**{name} was changed elsewhere** (another browser session or an editor) since you loaded it, "
            "and {n} clips were changed both there and here. Nothing was saved: choose **Keep mine** to "
            "save your versions or **Take theirs** to keep the other ones (changes to other clips are "
            "merged either way), or load the file again to drop your unsaved edits.",
            name=doc.path.name if doc.path else "",
            n=len(conflicts),
        )
    ]
    for c in conflicts[:CONFLICTS_SHOWN]:
        lines.append(
            "- "
            + _(
                "{clip}: mine {mine} · theirs {theirs}",
                clip=c.key,
                mine=_code(c.mine, _),
                theirs=_code(c.theirs, _),
            )
        )
    return "\n".join(lines)


def save_document(ctx: AppContext, doc: LabelDocument, prefer: str | None = None) -> str:
    """Save; the status line says what happened (saved, changes merged in, or the conflict to settle)."""
    _ = ctx.i18n
    try:
        doc.save(prefer=prefer)
    except LabelConflictError as e:
        return conflict_message(ctx, doc, e.conflicts)
    name = doc.path.name if doc.path else ""
    if doc.merged_in:
        return _(
            "Saved {name}, with {n} clips changed elsewhere meanwhile merged in", name=name, n=doc.merged_in
        )
    return _("Saved {name}", name=name)


# ---------- handlers: edits of one clip (saved at once) ----------


def save_text(ctx: AppContext, doc: LabelDocument | None, uid: float | None, text: str | None) -> Any:
    """A row's text lost focus or was submitted: save it when it changed."""
    if doc is None or uid is None:
        return gr.update()
    with shown_in_toast(ctx.i18n, "saving a text"), person_files():
        if doc.set_text(int(uid), text or ""):
            return save_document(ctx, doc)
    return gr.update()


def save_language(ctx: AppContext, doc: LabelDocument | None, uid: float | None, language: str | None) -> Any:
    """A row's language was picked: save it when it changed."""
    if doc is None or uid is None:
        return gr.update()
    with shown_in_toast(ctx.i18n, "saving a language"), person_files():
        if doc.set_language(int(uid), language or ""):
            return save_document(ctx, doc)
    return gr.update()


def after_row_save(ctx: AppContext, doc: LabelDocument | None, view: dict[str, Any]) -> list[Any]:
    """After a row's save: the conflict buttons while a save is refused; the page again when changes
    made elsewhere were merged in (only then, so a row being typed in is not refilled). -> [conflict, *page]
    """
    show = gr.update(visible=bool(doc is not None and doc.conflicts))
    if doc is None or not doc.merged_in:
        return [show, *[gr.update()] * (2 + MAX_ROWS * _FIELDS_PER_ROW)]
    doc.merged_in = 0  # shown once
    return [show, *render_page(ctx, doc, PageView.of(view))]


def conflict_controls(ctx: AppContext, doc: LabelDocument | None) -> Any:
    """Show "Keep mine" / "Take theirs" while the last save was refused for a conflict."""
    return gr.update(visible=bool(doc is not None and doc.conflicts))


# ---------- handlers: edits of the list (undo, delete, merge, split) ----------


def loaded(ctx: AppContext, doc: LabelDocument | None) -> LabelDocument:
    if doc is None:
        raise InputError(ctx.i18n("Load a .list file first"))
    return doc


def selected_uids(uids: list[Any], ticks: list[Any]) -> list[int]:
    """The ids of the ticked rows of the page."""
    return [int(u) for u, t in zip(uids, ticks, strict=True) if t and u is not None]


def edited(
    ctx: AppContext, doc: LabelDocument, view: dict[str, Any], message: str, prefer: str | None = None
) -> list[Any]:
    """Save the edited list and show it again. -> [doc, status, *page]."""
    with shown_in_toast(ctx.i18n, "saving a label file"), person_files():
        try:
            doc.save(prefer=prefer)
        except LabelConflictError as e:
            status = conflict_message(ctx, doc, e.conflicts)
        else:
            status = f"{message}. {describe(ctx, doc)}"
    doc.merged_in = 0  # the page below shows the merged list
    return [doc, status, *render_page(ctx, doc, PageView.of(view))]


def keep_mine(ctx: AppContext, doc: LabelDocument | None, view: dict[str, Any]) -> list[Any]:
    """Settle a conflict: save this session's versions of the clips changed on both sides."""
    _ = ctx.i18n
    with shown_in_toast(_, "keep mine"):
        doc = loaded(ctx, doc)
    return edited(ctx, doc, view, _("Kept your versions"), prefer="mine")


def take_theirs(ctx: AppContext, doc: LabelDocument | None, view: dict[str, Any]) -> list[Any]:
    """Settle a conflict: take the versions saved elsewhere of the clips changed on both sides."""
    _ = ctx.i18n
    with shown_in_toast(_, "take theirs"):
        doc = loaded(ctx, doc)
    return edited(ctx, doc, view, _("Took the versions saved elsewhere"), prefer="theirs")


def undo_edit(ctx: AppContext, doc: LabelDocument | None, view: dict[str, Any]) -> list[Any]:
    _ = ctx.i18n
    with shown_in_toast(_, "undo"), person_files():
        doc = loaded(ctx, doc)
        doc.undo()
    return edited(ctx, doc, view, _("Undone"))


def delete_selected(
    ctx: AppContext,
    doc: LabelDocument | None,
    view: dict[str, Any],
    uids: list[Any],
    ticks: list[Any],
    trash_audio: bool,
) -> list[Any]:
    """Drop the ticked clips from the list; their audio goes to the trash when asked."""
    _ = ctx.i18n
    with shown_in_toast(_, "delete"), person_files():
        doc = loaded(ctx, doc)
        n = doc.delete(selected_uids(uids, ticks), trash_audio=bool(trash_audio))
    return edited(ctx, doc, view, _("Deleted {n} clips", n=n))


def merge_selected(
    ctx: AppContext,
    doc: LabelDocument | None,
    view: dict[str, Any],
    uids: list[Any],
    ticks: list[Any],
    silence: float | None,
) -> list[Any]:
    """Join the ticked clips into one new clip, `silence` seconds apart."""
    _ = ctx.i18n
    with shown_in_toast(_, "merge"), person_files():
        doc = loaded(ctx, doc)
        try:
            merged = doc.merge(selected_uids(uids, ticks), silence=float(silence or 0))
        except MixedLanguagesError as e:
            raise InputError(
                _(
                    "Not merged: the selected clips are in {languages}, and a merged clip has one language. "
                    "Set the same language on them first, or select clips of one language.",
                    languages=" + ".join(e.languages),
                )
            ) from e
    return edited(ctx, doc, view, _("Merged into {path}", path=merged.path))


def split_selected(
    ctx: AppContext,
    doc: LabelDocument | None,
    view: dict[str, Any],
    uids: list[Any],
    ticks: list[Any],
    split_at: float | None,
) -> list[Any]:
    """Cut the one ticked clip in two at `split_at` seconds."""
    _ = ctx.i18n
    with shown_in_toast(_, "split"), person_files():
        doc = loaded(ctx, doc)
        chosen = selected_uids(uids, ticks)
        if len(chosen) != 1:
            raise InputError(_("Select exactly one clip to split"))
        a, b = doc.split(chosen[0], float(split_at or 0))
    return edited(
        ctx, doc, view, _("Split into {a} and {b}; type the text of the second part", a=a.path, b=b.path)
    )


# ---------- wiring ----------


def wire_rows(ctx: AppContext, ui: LabelsLayout) -> None:
    """Each row saves its own clip; the row's uid travels with the event, so a save hits the clip edited."""
    after = {"doc": ui.doc, "view": ui.view_inputs()}
    after_outputs = [ui.conflict, *ui.page_outputs()]
    for row in ui.rows:
        text_inputs = {"doc": ui.doc, "uid": row.uid, "text": row.text}
        for event in (row.text.blur, row.text.submit):
            saved = connect(event, ctx, save_text, text_inputs, ui.status, status=ui.status, **EDIT_QUEUE)
            connect(saved.then, ctx, after_row_save, after, after_outputs, **EDIT_QUEUE)
        language_inputs = {"doc": ui.doc, "uid": row.uid, "language": row.language}
        saved = connect(
            row.language.input, ctx, save_language, language_inputs, ui.status, status=ui.status, **EDIT_QUEUE
        )
        connect(saved.then, ctx, after_row_save, after, after_outputs, **EDIT_QUEUE)


def wire_list_edits(ctx: AppContext, ui: LabelsLayout) -> None:
    """Undo, delete, merge, split: each saves the list and shows the page again."""
    view = {"doc": ui.doc, "view": ui.view_inputs()}
    outputs = [ui.doc, ui.status, *ui.page_outputs()]
    for button, handler in ((ui.undo, undo_edit), (ui.keep_mine, keep_mine), (ui.take_theirs, take_theirs)):
        done = connect(button.click, ctx, handler, view, outputs, status=ui.status, **EDIT_QUEUE)
        connect(done.then, ctx, conflict_controls, {"doc": ui.doc}, ui.conflict)
    selection = {**view, **ui.selection_inputs()}
    for button, handler, options in (
        (ui.delete, delete_selected, {"trash_audio": ui.trash_audio}),
        (ui.merge, merge_selected, {"silence": ui.silence}),
        (ui.split, split_selected, {"split_at": ui.split_at}),
    ):
        done = connect(
            button.click, ctx, handler, {**selection, **options}, outputs, status=ui.status, **EDIT_QUEUE
        )
        connect(done.then, ctx, conflict_controls, {"doc": ui.doc}, ui.conflict)


def wire(ctx: AppContext, ui: LabelsLayout) -> None:
    load_inputs = {"choice": ui.list_choice, "typed": ui.path, "view": ui.view_inputs()}
    for event in (ui.load.click, ui.path.submit):
        done = connect(
            event,
            ctx,
            load_document,
            load_inputs,
            [ui.doc, ui.status, *ui.page_outputs()],
            status=ui.status,
            **EDIT_QUEUE,
        )
        ui.events.setdefault("load", done)
        connect(done.then, ctx, conflict_controls, {"doc": ui.doc}, ui.conflict)
    connect(ui.refresh.click, ctx, refresh_lists, None, ui.list_choice)
    view = {"doc": ui.doc, "view": ui.view_inputs()}
    connect(ui.previous.click, ctx, previous_page, view, ui.page_outputs(), **EDIT_QUEUE)
    connect(ui.next.click, ctx, next_page, view, ui.page_outputs(), **EDIT_QUEUE)
    for widget in (ui.query, ui.language_filter, ui.sort_key, ui.flagged_only, ui.page_size):
        connect(widget.change, ctx, first_page, view, ui.page_outputs(), **EDIT_QUEUE)
    wire_list_edits(ctx, ui)
    wire_rows(ctx, ui)


def build(ctx: AppContext) -> LabelsLayout:
    ui = layout(ctx)
    wire(ctx, ui)
    return ui
