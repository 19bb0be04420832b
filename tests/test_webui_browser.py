"""The web UI in a real headless chromium: every tab opens and shows its controls."""

from __future__ import annotations

import pytest

from webui import TABS

pytestmark = pytest.mark.browser


@pytest.mark.parametrize("title", [title for _, title in TABS])
def test_each_tab_opens(page, title):
    tab = page.get_by_role("tab", name=title)
    tab.click()
    assert tab.get_attribute("aria-selected") == "true"
