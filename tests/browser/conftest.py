"""Fixtures of the browser lane: one headless Debian chromium for the session, one seeded server per test
module, and a fresh browser context (its own cookies) per use.

Without a chromium binary the lane skips, saying why; under CI (CI set) it fails instead, since
scripts/test installs the package."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, BrowserContext, Playwright, sync_playwright

from tests.browser.support import LAPTOP, SCREENSHOTS, WAIT_MS, Served, chromium_binary, serving
from tests.conftest import Backend
from tests.contract.validator import SwaggerContract

NewContext = Callable[..., BrowserContext]


@pytest.fixture(scope="session")
def chromium() -> str:
    binary = chromium_binary()
    if binary is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is missing although scripts/test installs it (apt-get install chromium)")
        pytest.skip("no chromium binary: apt-get install chromium fonts-dejavu-core (scripts/test does, as root)")
    return binary


# Package scope: Playwright's sync API keeps an event loop running on the test thread while it is started,
# where the rest of the suite runs loops of its own (tests/conftest.py's clients), so it stops when the
# browser lane is over.
@pytest.fixture(scope="package")
def playwright_driver(chromium: str) -> Iterator[Playwright]:
    with sync_playwright() as driver:
        yield driver


@pytest.fixture(scope="package")
def browser(playwright_driver: Playwright, chromium: str) -> Iterator[Browser]:
    # Debian's binary by its path: `playwright install` (a download from Playwright's servers) is never run.
    launched = playwright_driver.chromium.launch(executable_path=chromium, headless=True, timeout=30_000)
    yield launched
    launched.close()


@pytest.fixture(scope="module")
def served(
    tmp_path_factory: pytest.TempPathFactory, backend: Backend, contracts: list[SwaggerContract]
) -> Iterator[Served]:
    with serving(tmp_path_factory.mktemp("browser"), backend, contracts) as running:
        yield running


@pytest.fixture
def new_context(browser: Browser) -> Iterator[NewContext]:
    """new_context(**options): a browser context of its own (cookies, headers), closed after the test;
    laptop-sized, light scheme, UTC, English, and bounded waits unless told otherwise."""
    made: list[BrowserContext] = []

    def make(**options: object) -> BrowserContext:
        settings: dict[str, object] = {
            "viewport": LAPTOP,
            "color_scheme": "light",
            "locale": "en-US",
            "timezone_id": "UTC",
            "reduced_motion": "reduce",
            **options,
        }
        context = browser.new_context(**settings)  # type: ignore[arg-type]
        context.set_default_timeout(WAIT_MS)
        context.set_default_navigation_timeout(WAIT_MS)
        made.append(context)
        return context

    yield make
    for context in made:
        context.close()


@pytest.fixture(scope="session")
def screenshot_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """docs/screenshots when PACKYARD_SCREENSHOTS=1 (to refresh the committed pictures); otherwise the
    screenshots are still taken, and checked, in a temporary directory, so a test run leaves the
    checkout as it was."""
    if os.environ.get("PACKYARD_SCREENSHOTS") == "1":
        return SCREENSHOTS
    return tmp_path_factory.mktemp("screenshots")
