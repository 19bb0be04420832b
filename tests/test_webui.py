"""The app shell: flags, safe defaults, and a start-up that loads no model."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

import pytest

from webui import DEFAULT_PORT, make_parser, parse_auth


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
