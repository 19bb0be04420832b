"""The app shell: flags, safe defaults, and a start-up that loads no model."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

import pytest

from webui import (
    DEFAULT_PORT,
    LoginThrottle,
    make_parser,
    open_host_warning,
    parse_auth,
    parse_size,
    remove_workspace_leftovers,
)


def test_defaults_bind_localhost_without_share():
    args = make_parser().parse_args([])
    assert args.host == "127.0.0.1"
    assert args.port == DEFAULT_PORT == 9874
    assert args.share is False and args.auth is None


def test_flags_parse():
    args = make_parser().parse_args(
        [
            "--host",
            "0.0.0.0",
            "--port",
            "7000",
            "--share",
            "--auth",
            "ann:s3:cret",
            "--lang",
            "zh_CN",
            "--workspace",
            "/tmp/w",
        ]
    )
    assert (args.host, args.port, args.share, args.lang, args.workspace) == (
        "0.0.0.0",
        7000,
        True,
        "zh_CN",
        "/tmp/w",
    )
    assert args.auth == ("ann", "s3:cret")


@pytest.mark.parametrize("bad", ["nopassword", ":x", "user:"])
def test_bad_auth_is_refused(bad):
    with pytest.raises(argparse.ArgumentTypeError):
        parse_auth(bad)


def test_building_the_app_loads_no_model(tmp_path):
    """Import + build_app must not import the heavy model libraries (the UI is up in seconds)."""
    code = (
        "import sys, json\n"
        "from ui.context import AppContext\n"
        "from webui import build_app\n"
        f"build_app(AppContext.create({str(tmp_path)!r}, 'zh_CN'))\n"
        "heavy = ['demucs', 'faster_whisper', 'ctranslate2', 'transformers']\n"
        "print(json.dumps([m for m in heavy if m in sys.modules]))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []
    assert (tmp_path / "uploads").is_dir() and (tmp_path / "sliced").is_dir()


# --- uploads, open hosts, logins, leftovers ---------------------------------------------------------------


def test_upload_cap_defaults_to_4gb_and_reaches_launch(tmp_path):
    from ui.context import AppContext
    from webui import launch_kwargs

    args = make_parser().parse_args([])
    assert args.max_upload == "4gb"
    ctx = AppContext.create(str(tmp_path), "en_US")
    kwargs = launch_kwargs(make_parser().parse_args(["--max-upload", "500MB"]), ctx)
    assert kwargs["max_file_size"] == 500_000_000
    assert kwargs["allowed_paths"] == [str(ctx.workspace)] and kwargs["server_name"] == "127.0.0.1"
    for bad in ("0gb", "lots", "4 parsecs"):
        with pytest.raises(argparse.ArgumentTypeError):
            parse_size(bad)


def test_app_names_the_limit_and_cleans_gradio_cache(tmp_path):
    from ui.context import AppContext
    from webui import DELETE_CACHE, build_app

    app = build_app(AppContext.create(str(tmp_path), "en_US"), "4gb")
    assert app.delete_cache == DELETE_CACHE  # (every hour, files older than a day)
    header = next(b for b in app.blocks.values() if type(b).__name__ == "Markdown")
    assert "Uploads up to 4GB per file" in header.value


@pytest.mark.parametrize(("host", "auth", "warns"), [
    ("127.0.0.1", None, False), ("localhost", None, False), ("::1", None, False), ("[::1]", None, False),
    ("0.0.0.0", None, True), ("192.168.1.5", None, True), ("0.0.0.0", ("a", "b"), False),
])  # fmt: skip
def test_open_host_without_auth_warns(host, auth, warns):
    warning = open_host_warning(host, auth)
    assert (warning is not None) == warns
    if warns:
        assert "anyone on the network" in warning and "--auth" in warning


def test_failed_logins_are_slowed_down_with_a_bound():
    waits: list[float] = []
    check = LoginThrottle("ann", "s3:cret", base_s=0.5, max_s=4.0, sleep=waits.append)
    assert [check("ann", "wrong") for _ in range(6)] == [False] * 6
    assert waits == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
    assert check("ann", "s3:cret") is True and len(waits) == 6  # a success waits not, and resets
    assert check("bob", "s3:cret") is False and waits[-1] == 0.5
    auth = launch_kwargs_auth(["--auth", "ann:pw"])
    assert isinstance(auth, LoginThrottle) and auth.user == "ann"


def launch_kwargs_auth(argv: list[str]):
    from webui import launch_kwargs

    class Ctx:
        workspace = "/tmp/ws"

    return launch_kwargs(make_parser().parse_args(argv), Ctx())["auth"]


def test_app_start_removes_only_old_leftovers(tmp_path):
    from core.fsutil import STALE_TEMP_AGE_S, make_temp_path

    run = tmp_path / "exp" / "s2_train"
    run.mkdir(parents=True)
    old, fresh = make_temp_path(run / "checkpoint.pt", ".pt"), make_temp_path(run / "a.list")
    past = time.time() - 2 * STALE_TEMP_AGE_S
    os.utime(old, (past, past))
    assert remove_workspace_leftovers(tmp_path) == [old]
    assert not old.exists() and fresh.exists()  # may belong to a job writing now


def test_an_upload_over_the_cap_is_refused_with_the_limit_named(tmp_path, monkeypatch):
    import gradio as gr
    import httpx

    from webui import launch_kwargs

    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path / ".gradio"))

    class Ctx:
        workspace = tmp_path

    kwargs = launch_kwargs(make_parser().parse_args(["--max-upload", "1kb", "--port", "0"]), Ctx())
    kwargs.pop("server_port")  # any free port
    with gr.Blocks() as app:
        gr.File()
    app.launch(prevent_thread_lock=True, quiet=True, **kwargs)
    try:
        url = app.local_url.rstrip("/") + "/gradio_api/upload"
        big = httpx.post(url, files={"files": ("big.wav", b"x" * 5000)}, timeout=30)
        assert big.status_code == 413 and "maximum allowed size of 1000 bytes" in big.text
        small = httpx.post(url, files={"files": ("small.wav", b"x" * 500)}, timeout=30)
        assert small.status_code == 200
    finally:
        app.close()


def test_max_text_defaults_to_2000_and_reaches_the_voice_cloning_tab(tmp_path):
    from webui import app_context, build_app

    assert make_parser().parse_args([]).max_text == 2000
    for bad in ("0", "-3", "lots"):
        with pytest.raises(SystemExit):
            make_parser().parse_args(["--max-text", bad])
    args = make_parser().parse_args(["--max-text", "300", "--workspace", str(tmp_path), "--lang", "en_US"])
    ctx = app_context(args)
    assert ctx.max_text == 300 and ctx.workspace == tmp_path.resolve()
    app = build_app(ctx)
    text = next(b for b in app.blocks.values() if getattr(b, "elem_id", None) == "inf-text")
    assert text.info == "At most 300 characters per synthesis."
    assert "--max-text N" in make_parser().format_help()


def test_precision_flag_reaches_the_synthesis_service_and_the_form_can_ask_for_exact_fp32(
    tmp_path, monkeypatch
):
    from ui import inference_helpers as H
    from webui import app_context

    assert make_parser().parse_args([]).precision == "auto"
    with pytest.raises(SystemExit):
        make_parser().parse_args(["--precision", "int4"])
    args = make_parser().parse_args(["--precision", "fp32", "--workspace", str(tmp_path), "--lang", "en_US"])
    assert app_context(args).precision == "fp32"

    # What the form asks decides the loaders' precision: the server's unless "Exact fp32" is ticked.
    seen = []

    class Stop(Exception):
        """Raised by the fake synthesiser factory once it has seen the precision: nothing loads."""

    def fake_make_synthesizer(gpt, sovits, model_dir, cache, job=None, max_text=None, precision="auto"):
        seen.append(precision)
        raise Stop

    monkeypatch.setattr(H, "make_synthesizer", fake_make_synthesizer)
    monkeypatch.setattr(H, "resolve_weight", lambda value, choices, roots, what: tmp_path / f"{what}.bin")
    ref = tmp_path / "ref.wav"
    ref.write_bytes(b"")
    for ticked, expected in ((False, "auto"), (True, "fp32")):
        form = H.form_from_values({"text": "Hello.", "ref_audio": str(ref), "exact_fp32": ticked})
        assert form.exact_fp32 is ticked
        with pytest.raises(Stop):
            H.synthesize(form, tmp_path, tmp_path, H.LazyCache(), precision="auto")
        assert seen[-1] == expected
