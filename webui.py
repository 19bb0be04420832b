"""The web UI: one Gradio Blocks app, one tab per stage, each tab thin over the library.

    python webui.py [--host 127.0.0.1] [--port 9874] [--workspace workspace] [--lang zh_CN] [--max-text N]

Nothing heavy happens at import or start-up: models load when a tab first needs them. The server
binds to localhost unless `--host` says otherwise (then it warns when there is no `--auth`), shares
publicly only with `--share`, serves files from the workspace only, refuses uploads over
`--max-upload`, and removes what Gradio cached of uploads after a day. Failed logins are slowed down.
A synthesis takes at most `--max-text` characters; concurrent ones take turns sentence by sentence.
"""

from __future__ import annotations

import argparse
import hmac
import importlib
import logging
import os
import re
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from core.fsutil import remove_stale_temporaries
from core.jobs import runtime_env
from gpt_sovits.infer.request import add_max_text_flag, add_precision_flag
from ui.context import REPO_ROOT, AppContext

if TYPE_CHECKING:
    import gradio as gr

logger = logging.getLogger("webui")

DEFAULT_PORT = 9874
DEFAULT_MAX_UPLOAD = "4gb"
# Gradio's cache of uploads and outputs: every hour, files older than a day are deleted (and this
# app's files when it stops).
DELETE_CACHE = (3600, 86400)
LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})
_SIZE_UNITS = {"b": 1, "kb": 1000, "mb": 1000**2, "gb": 1000**3, "tb": 1000**4}


class TabSpec(NamedTuple):
    """A tab of the app: its module under ui/ (with `build(ctx: AppContext)`) and its English title."""

    module: str
    title: str


# In pipeline order. The modules are imported when the app is built, so `--help` stays instant.
TABS: list[TabSpec] = [
    TabSpec("separate_tab", "Separation"),
    TabSpec("slice_tab", "Slicing"),
    TabSpec("asr_tab", "ASR"),
    TabSpec("labels_tab", "Label editor"),
    TabSpec("dataset_tab", "Dataset check"),
    TabSpec("training_tab", "Training"),
    TabSpec("inference_tab", "Voice cloning"),
    TabSpec("models_tab", "Models"),
]


# Label editor rows stay usable on a narrow window (800 px): they wrap instead of squeezing controls.
APP_CSS = ".labels-row { flex-wrap: wrap; row-gap: 4px; }"


def build_app(ctx: AppContext, max_upload: str | None = None) -> gr.Blocks:
    """Build (not launch) the Blocks app for `ctx`: a header (naming the upload limit, when given), then
    one tab per stage."""
    import gradio as gr

    from ui import experiment_bar

    _ = ctx.i18n
    with gr.Blocks(
        title=_("GPT-SoVITS voice workshop"), analytics_enabled=False, delete_cache=DELETE_CACHE
    ) as app:
        limit = (
            " · " + _("Uploads up to {size} per file").format(size=max_upload.upper()) if max_upload else ""
        )
        gr.Markdown(f"## {_('GPT-SoVITS voice workshop')}\n{_('Workspace')}: `{ctx.workspace}`{limit}")
        # One experiment chosen here carries its folders through every tab (ui/experiment_bar.py).
        bar = experiment_bar.layout(ctx)
        ctx = replace(ctx, experiment=bar.choice)
        views: dict[str, Any] = {}
        tab_blocks: dict[str, Any] = {}
        with gr.Tabs() as tabs:
            for tab in TABS:
                with gr.Tab(_(tab.title), id=tab.module) as tab_blocks[tab.module]:
                    built = importlib.import_module(f"ui.{tab.module}").build(ctx)
                    views[tab.module] = built
                    # A tab may offer HTTP routes to serve beside the page (Voice cloning: /v1/audio/speech).
                    app.extra_routes = [*getattr(app, "extra_routes", []), *getattr(built, "routes", [])]
        experiment_bar.wire_flow(ctx, app, bar, tabs, tab_blocks, views)
    return app


def parse_auth(value: str | None) -> tuple[str, str] | None:
    """`user:password` (the password may hold colons) for `--auth`; None when not given."""
    if not value:
        return None
    user, sep, password = value.partition(":")
    if not sep or not user or not password:
        raise argparse.ArgumentTypeError("--auth must look like user:password")
    return user, password


def parse_size(value: str) -> str:
    """`--max-upload`: "<number><unit>" with unit b, kb, mb, gb or tb (decimal, as Gradio reads it)."""
    m = re.fullmatch(r"\s*(\d+)\s*([kmgt]?b)\s*", value.lower())
    if not m or int(m[1]) == 0:
        raise argparse.ArgumentTypeError("--max-upload must look like 500mb or 4gb")
    return f"{int(m[1])}{m[2]}"


def size_bytes(size: str) -> int:
    """Bytes of a `parse_size` value ("4gb" -> 4_000_000_000)."""
    m = re.fullmatch(r"(\d+)([kmgt]?b)", size)
    assert m is not None, size
    return int(m[1]) * _SIZE_UNITS[m[2]]


def open_host_warning(host: str, auth: tuple[str, str] | None) -> str | None:
    """The warning printed when the app listens beyond this machine without a login, else None."""
    if auth is not None or host.strip("[]").lower() in LOCAL_HOSTS:
        return None
    return (
        f"WARNING: listening on {host} without --auth: anyone on the network who can reach this port can "
        "use the app (run jobs, read and change the workspace). Add --auth USER:PASS, or bind 127.0.0.1."
    )


class LoginThrottle:
    """Gradio's `auth` callable: checks the one user, and after each failed login waits before
    answering, longer after each consecutive failure (doubling from `base_s`, never over `max_s`).
    A success resets the delay. State lives in the instance, not in a global."""

    def __init__(
        self,
        user: str,
        password: str,
        base_s: float = 0.5,
        max_s: float = 5.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.user, self.password = user, password
        self.base_s, self.max_s, self.sleep = base_s, max_s, sleep
        self.failures = 0
        self._lock = threading.Lock()

    def delay(self) -> float:
        return min(self.max_s, self.base_s * 2 ** max(0, self.failures - 1))

    def __call__(self, user: str, password: str) -> bool:
        ok = hmac.compare_digest(user.encode(), self.user.encode()) & hmac.compare_digest(
            password.encode(), self.password.encode()
        )
        with self._lock:
            self.failures = 0 if ok else self.failures + 1
            wait = 0.0 if ok else self.delay()
        if wait:
            self.sleep(wait)
        return ok


def remove_workspace_leftovers(workspace: Path) -> list[Path]:
    """Temp files of atomic saves that were cut short (kill -9, power loss), at least an hour old:
    a live writer touches its temp file at every block, so these belong to no running job."""
    removed = remove_stale_temporaries(workspace, recursive=True)
    if removed:
        logger.info("removed %d leftover temp file(s) of interrupted saves under %s", len(removed), workspace)
    return removed


def app_context(args: argparse.Namespace) -> AppContext:
    """The app's context from the flags: workspace, UI language, model folder, longest synthesis text,
    model precision."""
    ctx = AppContext.create(args.workspace, args.lang, args.model_dir)
    return replace(ctx, max_text=args.max_text, precision=args.precision)


def make_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python webui.py", description=__doc__.split("\n")[0])
    p.add_argument(
        "--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)"
    )
    p.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port (default {DEFAULT_PORT})")
    p.add_argument(
        "--share", action="store_true", help="also open a public gradio.live link (off by default)"
    )
    p.add_argument("--auth", type=parse_auth, default=None, metavar="USER:PASS", help="require a login")
    p.add_argument(
        "--max-upload",
        type=parse_size,
        default=DEFAULT_MAX_UPLOAD,
        metavar="SIZE",
        help=f"largest file an upload may be, e.g. 500mb or 10gb (default {DEFAULT_MAX_UPLOAD})",
    )
    add_max_text_flag(p)
    add_precision_flag(p)
    p.add_argument("--lang", default=None, help="UI language, e.g. en_US or zh_CN (default: system locale)")
    p.add_argument(
        "--workspace",
        default=str(REPO_ROOT / "workspace"),
        help="folder for datasets, experiments and outputs; the server only serves files inside it",
    )
    p.add_argument(
        "--model-dir", default=None, help="folder of local pretrained models (default: pretrained_models/)"
    )
    return p


def main(argv: list[str] | None = None) -> int:
    args = make_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    ctx = app_context(args)
    # Gradio copies uploads into its temp folder and serves from there: keep that inside the workspace.
    os.environ.setdefault("GRADIO_TEMP_DIR", str(ctx.workspace / ".gradio"))
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    os.environ.update(runtime_env())  # before anything loads torch (synthesis runs in this process)
    warning = open_host_warning(args.host, args.auth)
    if warning:
        print(warning, file=sys.stderr)
    threading.Thread(target=remove_workspace_leftovers, args=(ctx.workspace,), daemon=True).start()
    logger.info("uploads are limited to %s per file (--max-upload)", args.max_upload.upper())
    app = build_app(ctx, args.max_upload)
    app.queue(default_concurrency_limit=2).launch(**launch_kwargs(args, ctx, app.extra_routes))
    return 0


def launch_kwargs(args: argparse.Namespace, ctx: AppContext, routes: list | None = None) -> dict:
    """What `Blocks.launch` gets from the flags: the bind address, the login, the upload cap; and the
    tabs' `routes`, which Gradio's FastAPI app serves on the same port (ui/openai_api.py checks the same
    login on them)."""
    return {
        "app_kwargs": {"routes": list(routes or [])},
        "css": APP_CSS,  # Gradio 6 takes the page's CSS at launch
        "server_name": args.host,
        "server_port": args.port,
        "share": args.share,
        "auth": LoginThrottle(*args.auth) if args.auth else None,
        "allowed_paths": [str(ctx.workspace)],
        "max_file_size": size_bytes(args.max_upload),
        "show_error": True,
        # Gradio's own start-up probe of the page gives up after one 3 s HEAD request and then refuses to
        # start ("localhost is not accessible"): on a busy 2-core machine the first render takes longer.
        # `_frontend=False` skips only that probe (gradio 6.31, pinned); the server and page are unchanged.
        "_frontend": False,
    }


if __name__ == "__main__":
    sys.exit(main())
