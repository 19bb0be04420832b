"""The Models tab in a real browser: rows refreshed on page load, an offline Download answered within
seconds with the folder to fill, no error badge left behind."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import PAGE_TIMEOUT_MS, REPO_ROOT, ServedApp, free_port, wait_http

pytestmark = pytest.mark.browser

GPT_V2 = "gsv-v2final-pretrained/s1bert25hz-5kh-longer-epoch=12-step=369668.ckpt"


@pytest.fixture(scope="module")
def offline_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServedApp]:
    """A server whose hub is a local port nobody serves (HF_ENDPOINT), so no test ever downloads."""
    workspace = tmp_path_factory.mktemp("models-ws")
    port = free_port()
    argv = [sys.executable, "webui.py", "--port", str(port), "--workspace", str(workspace)]
    argv += ["--lang", "en_US", "--model-dir", str(workspace / "models")]
    env = {**os.environ, "HF_ENDPOINT": f"http://127.0.0.1:{free_port()}"}
    env.pop("HF_HUB_OFFLINE", None)
    log = workspace.parent / "models-webui.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(argv, cwd=REPO_ROOT, stdout=out, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}/"
    try:
        wait_http(url, timeout=300.0, process=process)
        yield ServedApp(url, workspace, process, log)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()


def test_rows_refresh_on_load_and_offline_download_names_the_folder(browser, offline_app) -> None:
    models: Path = offline_app.workspace / "models"
    (models / "gsv-v2final-pretrained").mkdir(parents=True)
    (models / "gsv-v2final-pretrained" / "s2G2333k.pth").write_bytes(b"g" * 2_000_000)  # after start-up
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(PAGE_TIMEOUT_MS)
    try:
        page.goto(offline_app.url)
        page.wait_for_selector("button[role=tab]", timeout=120_000)
        page.get_by_role("tab", name="Models", exact=True).click()
        page.wait_for_function(
            "() => document.querySelector('#models-status-sovits-v2')?.innerText.includes('present')"
        )
        assert "2.0 MB on disk" in page.locator("#models-status-sovits-v2").inner_text()
        assert "missing" in page.locator("#models-status-gpt-v2").inner_text()
        assert GPT_V2 in page.locator("#models-info-gpt-v2").inner_text()
        assert page.locator("#models-download-sovits-v2").is_disabled()

        start = time.monotonic()
        page.locator("#models-download-gpt-v2").click()
        message = page.locator("#models-message")
        page.wait_for_function(
            "() => document.querySelector('#models-message')?.innerText.includes('cannot be reached')",
            timeout=10_000,
        )
        assert time.monotonic() - start < 6  # the probe gives up after 3 s; the rest is the page
        text = message.inner_text()
        assert str(models / "gsv-v2final-pretrained") in text and "/lj1995/GPT-SoVITS/blob/main/" in text
        # No output marked as failed (Gradio's "Error" badge): the refusal is the message line's.
        assert (
            page.locator(".wrap.error, .error:visible").count()
            + page.get_by_text("Error", exact=True).count()
            == 0
        )
        assert not (models / GPT_V2).exists()
    finally:
        context.close()
