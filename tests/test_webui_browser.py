"""The web UI in a real headless chromium: every tab opens and shows its controls."""

from __future__ import annotations

from pathlib import Path

import pytest

from webui import TABS

pytestmark = pytest.mark.browser


def test_each_tab_opens_and_shows_its_controls(page):
    """One page walks every tab (a page load costs seconds of CPU here: one for all tabs)."""
    for _, title in TABS:
        tab = page.get_by_role("tab", name=title)
        tab.click()
        assert tab.get_attribute("aria-selected") == "true", title
        panel = page.locator("[role=tabpanel]:visible")
        panel.locator("button, input, textarea").first.wait_for(state="visible")
        assert panel.count() == 1, title  # only the chosen tab's panel shows


def test_server_serves_workspace_files_only(served_app):
    """Files inside the workspace are served; the repository and the rest of the disk are not."""
    import urllib.error
    import urllib.request

    inside = served_app.workspace / "uploads" / "note.txt"
    inside.write_text("hello")

    def status(path) -> int:
        try:
            with urllib.request.urlopen(f"{served_app.url}gradio_api/file={path}", timeout=5) as r:
                return r.status
        except urllib.error.HTTPError as e:
            return e.code

    assert status(inside) == 200
    assert status(Path(__file__).resolve().parent.parent / "README.md") == 403
    assert status("/etc/passwd") == 403
