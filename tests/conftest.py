"""Shared fixtures: synthetic audio files and the web UI served on a free localhost port."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from tests.support.reference_data import MODULES_NEEDING_REFERENCE, REFERENCE_DIR
from tests.support.synth import voiced_segments

REPO_ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"
# How long a page action or wait may take by default: CI's 2 cores, shared by the server, the browser and
# the pytest process, can be slow to answer.
PAGE_TIMEOUT_MS = 60_000

# The reference fixtures live outside the repository (tests/support/reference_data.py). Without them the
# parity modules cannot run: leave them out and say so, except in CI, which must always run them.
collect_ignore: list[str] = []
if not REFERENCE_DIR.is_dir():
    if os.environ.get("CI"):
        raise pytest.UsageError(f"CI needs the reference fixtures at {REFERENCE_DIR}")
    collect_ignore = list(MODULES_NEEDING_REFERENCE)


def pytest_report_header(config) -> str:
    if collect_ignore:
        return (
            f"reference fixtures not found at {REFERENCE_DIR}: {len(collect_ignore)} parity modules left out"
        )
    return f"reference fixtures: {REFERENCE_DIR}"


@pytest.fixture
def speechlike_wav(tmp_path: Path) -> Path:
    """8 s of voiced tones with silences, 32 kHz mono int16."""
    audio = voiced_segments(
        [
            ("silence", 0.5),
            ("voice", 2.0),
            ("silence", 0.6),
            ("voice", 2.5),
            ("silence", 0.7),
            ("voice", 1.5),
            ("silence", 0.2),
        ]
    )
    path = tmp_path / "speech.wav"
    sf.write(path, audio, 32000, subtype="PCM_16")
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, timeout: float = 180.0, process: subprocess.Popen | None = None) -> None:
    """Wait until `url` answers 200 (a server importing torch and gradio on 2 busy cores needs a minute
    or more); give up at once when `process` (the server) has exited."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"the server exited with code {process.returncode} before answering {url}")
        try:
            with urllib.request.urlopen(url, timeout=10) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.3)
    raise TimeoutError(f"{url} did not answer within {timeout} s")


class ServedApp:
    def __init__(self, url: str, workspace: Path, process: subprocess.Popen, log: Path) -> None:
        self.url, self.workspace, self.process, self.log = url, workspace, process, log


@contextlib.contextmanager
def serve_webui(workspace: Path, model_dir: Path, log: Path) -> Iterator[ServedApp]:
    """`python webui.py` on a free port with `workspace` and `model_dir`, stopped on exit; output to `log`."""
    port = free_port()
    argv = [sys.executable, "webui.py", "--port", str(port), "--workspace", str(workspace)]
    argv += ["--lang", "en_US", "--model-dir", str(model_dir)]
    with open(log, "wb") as out:
        process = subprocess.Popen(argv, cwd=REPO_ROOT, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    try:
        wait_http(url, process=process)
        yield ServedApp(url, workspace, process, log)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()


@pytest.fixture(scope="session")
def served_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServedApp]:
    """The web UI with a fresh workspace and an empty model folder, for the whole session."""
    workspace = tmp_path_factory.mktemp("workspace")
    with serve_webui(workspace, workspace / "models", workspace.parent / "webui.log") as app:
        yield app


@pytest.fixture(scope="session")
def browser():
    """Debian's chromium, headless, driven by Playwright (no browser download)."""
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: install Debian's chromium (scripts/test.sh does it as root)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
            ],
        )
        yield b
        b.close()


@pytest.fixture
def page(browser, served_app):
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    p = context.new_page()
    p.set_default_timeout(PAGE_TIMEOUT_MS)
    p.goto(served_app.url)
    p.wait_for_selector("button[role=tab]")
    yield p
    context.close()


def write_wav(path: Path, audio: np.ndarray, sr: int, subtype: str = "PCM_16") -> Path:
    sf.write(path, audio.T if audio.ndim == 2 else audio, sr, subtype=subtype)
    return path


@pytest.fixture(scope="session")
def tiny_pretrained(tmp_path_factory: pytest.TempPathFactory):
    """Tiny random v2 pretrained models (HuBERT, BERT, S1, S2 G/D) in the official folder layout."""
    from tests.support.tiny_models import build_tiny_pretrained

    return build_tiny_pretrained(tmp_path_factory.mktemp("pretrained_models"))
