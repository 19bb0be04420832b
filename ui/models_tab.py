"""Models tab: every model of the registry, present or missing, and a Download button for each and per version.

The rows come from ``gpt_sovits.pretrained`` (role, versions, path in the official layout under the models
folder, size on disk and the expected size). A download runs in a thread of the server (``pretrained.Downloads``,
one per app), so it goes on when the page closes and a reopened page shows it; a row is fetched by one
download at a time, and huggingface_hub resumes a cut-off file. A timer polls the progress (bytes on disk
of the row being fetched) while something downloads. When the hub cannot be reached (HF_HUB_OFFLINE, no
network: a TCP probe of at most 3 s), the message names the folder to fill and the page to fetch from.
`layout()` builds the components, `wire()` connects them to the named handlers below.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import partial
from typing import Any

import gradio as gr

from gpt_sovits import pretrained
from gpt_sovits.pretrained import DownloadJob, Downloads
from ui.context import AppContext
from ui.errors import shown_in_toast
from ui.wiring import connect

POLL_S = 1.0  # how often the page asks for progress while something downloads
SHOWN_JOBS = 4  # the latest downloads listed under the buttons
_SECTIONS = (  # (title key, kinds), in the order a person needs them
    ("GPT-SoVITS", ("gpt", "sovits", "sovits-d", "sv", "vocoder", "bigvgan", "hubert", "bert", "g2pw")),
    ("ASR (faster-whisper)", ("asr",)),
    ("Separation (demucs)", ("demucs",)),
)


def role_labels(ctx: AppContext) -> dict[str, str]:
    """Display names of the registry's kinds."""
    _ = ctx.i18n
    return {
        "gpt": _("GPT (S1)"),
        "sovits": _("SoVITS (S2) generator"),
        "sovits-d": _("SoVITS (S2) discriminator (fine-tuning)"),
        "sv": _("Speaker verification"),
        "vocoder": _("Vocoder"),
        "bigvgan": _("Vocoder"),
        "hubert": _("HuBERT content features"),
        "bert": _("BERT for Chinese text"),
        "g2pw": _("Chinese polyphones (optional)"),
        "asr": _("ASR (faster-whisper)"),
        "demucs": _("Separation (demucs)"),
    }


def element_id(name: str) -> str:
    """A registry name as part of an HTML id (names hold dots: `tiny.en`)."""
    return re.sub(r"[^A-Za-z0-9_-]", "-", name)


@dataclass(frozen=True)
class RowView:
    """What the tab shows of one registry row now."""

    name: str
    role: str
    groups: tuple[str, ...]
    path: str  # relative to the models folder (the official layout)
    present: bool
    disk_bytes: int
    partial_bytes: int  # huggingface_hub's unfinished files (a resumed download starts there)
    expected: str  # the registry's size hint ("" when unknown)
    downloading: bool


def row_views(ctx: AppContext, downloads: Downloads) -> list[RowView]:
    """Every registry row with its presence and sizes under ctx.model_dir (no network)."""
    roles, busy = role_labels(ctx), downloads.busy()
    status = {s.name: s for s in pretrained.model_status(ctx.model_dir)}
    return [
        RowView(
            name=spec.name,
            role=roles.get(spec.kind, spec.kind),
            groups=tuple(pretrained.groups_of(spec.name)),
            path=spec.path,
            present=status[spec.name].present,
            disk_bytes=pretrained.disk_bytes(spec, ctx.model_dir),
            partial_bytes=pretrained.partial_bytes(spec, ctx.model_dir),
            expected=spec.size_hint,
            downloading=spec.name in busy,
        )
        for spec in pretrained.registry()
    ]


def _size(n: int) -> str:
    return pretrained.human_bytes(n)


def status_text(ctx: AppContext, row: RowView) -> str:
    """One line: present (size on disk) / downloading (bytes so far) / missing (what it costs)."""
    _ = ctx.i18n
    expected = f"~{row.expected}" if row.expected else _("size unknown")
    if row.downloading:
        done = _size(row.disk_bytes + row.partial_bytes)
        return "⏳ " + _("downloading: {done} of {expected}", done=done, expected=expected)
    if row.present:
        if row.disk_bytes == 0:  # found by its loader elsewhere: the Hugging Face cache
            return "✅ " + _("present (Hugging Face cache)")
        return "✅ " + _(
            "present: {size} on disk (expected {expected})", size=_size(row.disk_bytes), expected=expected
        )
    if row.partial_bytes:
        return "⬜ " + _(
            "missing: {done} of {expected} downloaded so far (Download resumes)",
            done=_size(row.partial_bytes),
            expected=expected,
        )
    return "⬜ " + _("missing ({expected} to download)", expected=expected)


def info_text(ctx: AppContext, row: RowView) -> str:
    """**name** · role · versions · `path in the official layout`."""
    versions = ", ".join(row.groups) if row.groups else "—"
    return f"**{row.name}** · {row.role} · {ctx.i18n('versions')}: {versions} · `{row.path}`"


def job_text(ctx: AppContext, job: DownloadJob) -> str:
    """One line per download: what it fetches, how far it is, how it ended."""
    _ = ctx.i18n
    if job.state == "running":
        line = "⏳ " + _("Downloading {request}", request=job.request)
        if job.current:
            spec = pretrained.find_spec(job.current)
            done = pretrained.disk_bytes(spec, job.model_dir) + pretrained.partial_bytes(spec, job.model_dir)
            expected = f"~{spec.size_hint}" if spec.size_hint else _("size unknown")
            step = job.names.index(job.current) + 1
            line += f" ({step}/{len(job.names)}): {job.current}, {_size(done)} / {expected}"
        return line
    if job.state == "done":
        return "✅ " + _("{request}: downloaded ({names})", request=job.request, names=", ".join(job.names))
    return "❌ " + _("{request}: failed. {error}", request=job.request, error=job.error)


def progress_text(ctx: AppContext, downloads: Downloads) -> str:
    jobs = downloads.jobs()[-SHOWN_JOBS:]
    if not jobs:
        return ""
    return "\n\n".join(job_text(ctx, j) for j in reversed(jobs))


# ---------- layout ----------


@dataclass
class ModelRow:
    info: gr.Markdown
    status: gr.Markdown
    download: gr.Button


@dataclass
class ModelsLayout:
    refresh: gr.Button
    groups: dict[str, gr.Button]  # group (version) -> its "Download everything" button
    message: gr.Markdown  # what the last click did, or why it could not (offline)
    progress: gr.Markdown
    rows: dict[str, ModelRow]  # registry name -> its row
    timer: gr.Timer
    seen: gr.State  # per page: how many downloads had ended at the last refresh


def layout(ctx: AppContext, downloads: Downloads) -> ModelsLayout:
    _ = ctx.i18n
    gr.Markdown(
        _(
            "Every model the workshop uses, in the official GPT-SoVITS layout under `{folder}`. "
            "Download fetches from the Hugging Face hub ({hub}); an interrupted download resumes, "
            "and a download goes on when this page is closed.",
            folder=str(ctx.model_dir),
            hub=pretrained.hub_endpoint(),
        )
    )
    with gr.Row():
        groups = {
            g: gr.Button(
                _("Download everything {group}", group=g), size="sm", elem_id=f"models-group-{element_id(g)}"
            )
            for g in pretrained.GROUPS
        }
        refresh = gr.Button(_("Refresh"), size="sm", elem_id="models-refresh")
    message = gr.Markdown(elem_id="models-message")
    progress = gr.Markdown(progress_text(ctx, downloads), elem_id="models-progress")
    views = {v.name: v for v in row_views(ctx, downloads)}
    kinds = {s.name: s.kind for s in pretrained.registry()}
    rows: dict[str, ModelRow] = {}
    for title, section in _SECTIONS:
        gr.Markdown(f"### {_(title)}")
        for name, view in views.items():
            if kinds[name] not in section:
                continue
            with gr.Row(equal_height=True):
                info = gr.Markdown(info_text(ctx, view), elem_id=f"models-info-{element_id(name)}")
                status = gr.Markdown(status_text(ctx, view), elem_id=f"models-status-{element_id(name)}")
                button = gr.Button(
                    _("Download"),
                    size="sm",
                    scale=0,
                    min_width=110,
                    interactive=not (view.present or view.downloading),
                    elem_id=f"models-download-{element_id(name)}",
                )
            rows[name] = ModelRow(info, status, button)
    return ModelsLayout(
        refresh=refresh,
        groups=groups,
        message=message,
        progress=progress,
        rows=rows,
        timer=gr.Timer(POLL_S, active=downloads.running()),
        seen=gr.State(0),
    )


# ---------- handlers ----------


def _ended(downloads: Downloads) -> int:
    return sum(j.state != "running" for j in downloads.jobs())


def row_updates(ctx: AppContext, downloads: Downloads, names: list[str]) -> list[Any]:
    """Each row's status text, then each row's button (clickable while missing and not being fetched)."""
    views = {v.name: v for v in row_views(ctx, downloads)}
    statuses = [status_text(ctx, views[n]) for n in names]
    buttons = [gr.update(interactive=not (views[n].present or views[n].downloading)) for n in names]
    return [*statuses, *buttons]


def refresh_models(ctx: AppContext, downloads: Downloads, names: list[str]) -> tuple[Any, ...]:
    """Page load and Refresh: every row again, the downloads' progress, and the timer on while one runs."""
    return (
        progress_text(ctx, downloads),
        gr.Timer(active=downloads.running()),
        _ended(downloads),
        *row_updates(ctx, downloads, names),
    )


def start_download(ctx: AppContext, downloads: Downloads, names: list[str], request: str) -> tuple[Any, ...]:
    """Start fetching `request` (a row or a version group) in the background; say what started.

    An unreachable hub is refused within seconds with the folder to fill and the page to fetch from
    (shown in the message line by the wiring's status handling).
    """
    _ = ctx.i18n
    with shown_in_toast(_, "Models download"):
        job = downloads.start(request, ctx.model_dir, _)
    if job is None:
        busy = downloads.busy()
        wanted = pretrained.GROUPS.get(request, (request,))
        if any(n in busy for n in wanted):
            message = _("{request} is already being downloaded.", request=request)
        else:
            message = _("{request}: everything is already present.", request=request)
    else:
        message = _(
            "Downloading {request}: {names}. The download goes on if you close this page.",
            request=request,
            names=", ".join(job.names),
        )
    return (
        message,
        progress_text(ctx, downloads),
        gr.Timer(active=downloads.running()),
        _ended(downloads),
        *row_updates(ctx, downloads, names),
    )


def poll_downloads(ctx: AppContext, downloads: Downloads, names: list[str], seen: int) -> tuple[Any, ...]:
    """Timer tick: the progress; every row again when a download ended since the last tick; the timer
    stops when nothing runs."""
    ended = _ended(downloads)
    if ended != seen:
        rows = row_updates(ctx, downloads, names)
    else:  # only the rows being fetched change: their bytes so far
        views = {v.name: v for v in row_views(ctx, downloads)}
        rows = [status_text(ctx, views[n]) if views[n].downloading else gr.skip() for n in names]
        rows += [gr.skip()] * len(names)
    return (progress_text(ctx, downloads), gr.Timer(active=downloads.running()), ended, *rows)


# ---------- wiring ----------


def _bound(handler: Any, **fixed: Any) -> Any:
    """`handler` with the app's download manager (and a button's request) fixed, named as the handler."""
    fn = partial(handler, **fixed)
    fn.__name__ = handler.__name__  # type: ignore[attr-defined]  # Gradio names the event after it
    fn.__doc__ = handler.__doc__
    return fn


def wire(ctx: AppContext, ui: ModelsLayout, downloads: Downloads) -> None:
    names = list(ui.rows)
    row_outputs = [r.status for r in ui.rows.values()] + [r.download for r in ui.rows.values()]
    common = [ui.progress, ui.timer, ui.seen, *row_outputs]
    refresh = _bound(refresh_models, downloads=downloads, names=names)
    connect(ui.refresh.click, ctx, refresh, {}, common)
    root = gr.context.Context.root_block
    if root is not None:  # the page's load: rows as they are now, a running download followed again
        connect(root.load, ctx, refresh, {}, common)
    poll = _bound(poll_downloads, downloads=downloads, names=names)
    connect(ui.timer.tick, ctx, poll, {"seen": ui.seen}, common, show_progress="hidden")
    buttons = {**ui.groups, **{n: r.download for n, r in ui.rows.items()}}
    for request, button in buttons.items():
        start = _bound(start_download, downloads=downloads, names=names, request=request)
        connect(button.click, ctx, start, {}, [ui.message, *common], status=ui.message)


def build(ctx: AppContext) -> ModelsLayout:
    downloads = Downloads()  # this app's downloads: they outlive every page that started them
    ui = layout(ctx, downloads)
    wire(ctx, ui, downloads)
    return ui
