"""The web UI: one Gradio Blocks app, one tab per stage, each tab thin over the library.

    python webui.py [--host 127.0.0.1] [--port 9874] [--workspace workspace] [--lang zh_CN]

Nothing heavy happens at import or start-up: models load when a tab first needs them. The server
binds to localhost unless `--host` says otherwise, shares publicly only with `--share`, and serves
files from the workspace only.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from typing import TYPE_CHECKING, NamedTuple

from core.jobs import runtime_env
from ui.context import REPO_ROOT, AppContext

if TYPE_CHECKING:
    import gradio as gr

DEFAULT_PORT = 9874


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
]


def build_app(ctx: AppContext) -> gr.Blocks:
    """Build (not launch) the Blocks app for `ctx`: a header, then one tab per stage."""
    import gradio as gr

    _ = ctx.i18n
    with gr.Blocks(title=_("GPT-SoVITS voice workshop"), analytics_enabled=False) as app:
        gr.Markdown(f"## {_('GPT-SoVITS voice workshop')}\n{_('Workspace')}: `{ctx.workspace}`")
        with gr.Tabs():
            for tab in TABS:
                with gr.Tab(_(tab.title), id=tab.module):
                    importlib.import_module(f"ui.{tab.module}").build(ctx)
    return app


def parse_auth(value: str | None) -> tuple[str, str] | None:
    """`user:password` (the password may hold colons) for `--auth`; None when not given."""
    if not value:
        return None
    user, sep, password = value.partition(":")
    if not sep or not user or not password:
        raise argparse.ArgumentTypeError("--auth must look like user:password")
    return user, password


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
    ctx = AppContext.create(args.workspace, args.lang, args.model_dir)
    # Gradio copies uploads into its temp folder and serves from there: keep that inside the workspace.
    os.environ.setdefault("GRADIO_TEMP_DIR", str(ctx.workspace / ".gradio"))
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    os.environ.update(runtime_env())  # before anything loads torch (synthesis runs in this process)
    app = build_app(ctx)
    app.queue(default_concurrency_limit=2).launch(
        server_name=args.host,
        server_port=args.port,
        share=args.share,
        auth=args.auth,
        allowed_paths=[str(ctx.workspace)],
        show_error=True,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
