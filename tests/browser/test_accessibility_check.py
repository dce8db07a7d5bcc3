"""The accessibility check itself: it fails on serious and critical axe-core violations, and says which."""

from __future__ import annotations

import pytest

from tests.browser.conftest import NewContext
from tests.browser.support import check_accessibility

BROKEN = """<!doctype html><html lang="en"><head><title>broken</title></head><body><main>
<h1>Broken</h1><img src="data:image/gif;base64,R0lGODlhAQABAAAAACw="><form><input name="q"></form>
</main></body></html>"""

CLEAN = """<!doctype html><html lang="en"><head><title>clean</title></head><body><main>
<h1>Clean</h1><form><label for="q">Search</label><input id="q" name="q"></form></main></body></html>"""


def test_the_check_fails_on_serious_violations_and_names_them(new_context: NewContext) -> None:
    page = new_context().new_page()
    page.set_content(BROKEN, timeout=5_000)
    with pytest.raises(pytest.fail.Exception) as failed:
        check_accessibility(page, "a page made to fail")
    message = str(failed.value)
    assert "image-alt (critical)" in message
    assert "label (critical)" in message
    assert 'input name="q"' in message
    page.set_content(CLEAN, timeout=5_000)
    assert check_accessibility(page, "a page made to pass") == []
