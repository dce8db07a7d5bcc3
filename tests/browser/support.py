"""The browser tests' parts: Debian's chromium, a real packyard HTTP server on 127.0.0.1 with an injected
clock, users made as `packyard user create` makes them, sign-in through the form, the accessibility check
(axe-core) and screenshots.

The server is uvicorn.Server on a thread of the test process running create_app with a ManualClock, with
the options `packyard serve` gives uvicorn for proxies (X-Forwarded-For believed from 127.0.0.1 only). A
thread rather than a `packyard serve` subprocess so that the clock is injected: pages show fixed times
(the screenshots stay the same), a scheduled revocation comes due when the test moves the clock instead
of after a sleep, and the server runs on either test database lane (tests/conftest.py's backend)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import threading
import time
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
import uvicorn
from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import Page, expect

from packyard.auth import accounts
from packyard.clock import ManualClock
from packyard.config import Settings
from packyard.domain.models import Role
from packyard.http.factory import create_app
from packyard.storage.db import Database
from packyard.storage.unit_of_work import SqlUnitOfWork
from tests.browser.seed import Seeded, seed
from tests.conftest import START, Backend
from tests.contract.validator import SwaggerContract
from tests.support.client import ApiClient
from tests.support.server import free_port

T = TypeVar("T")

# Every Playwright wait names its bound: a page of this server answers in milliseconds, so a few seconds
# is a failure, not slowness.
WAIT_MS = 5_000
START_TIMEOUT = 15.0
PASSWORD = "correct horse battery staple"
LAPTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
# axe-core's impacts that fail a page; "moderate" and "minor" ones are printed, not failed.
FAILING_IMPACTS = ("serious", "critical")

ADMIN = "admin@example.com"
CONTRIBUTOR = "contributor@example.com"
VIEWER = "viewer@example.com"
NEWCOMER = "newcomer@example.com"  # made with a link left unused: the set-password page


def chromium_binary() -> str | None:
    """Debian's chromium (the package `chromium`; /usr/bin/chromium is its launcher script)."""
    for candidate in (shutil.which("chromium"), "/usr/bin/chromium", "/usr/lib/chromium/chromium"):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    return None


@dataclass
class Served:
    """A running server, its clock, an API client reaching it over HTTP, and what was seeded."""

    url: str
    clock: ManualClock
    api: HttpApiClient
    init_client: tuple[str, str]
    seeded: Seeded
    database_url: str
    links: dict[str, str] = field(default_factory=dict)  # email -> unused set-password link secret

    @property
    def project(self) -> str:
        return f"/orgs/{self.api.org_id}/projects/{self.api.project_id}"

    def bucket(self, slug: str) -> str:
        return f"{self.project}/buckets/{slug}"

    def version(self, slug: str, fingerprint: str) -> str:
        return f"{self.bucket(slug)}/versions/{self.seeded.version_id(slug, fingerprint)}"

    def channel(self, slug: str, name: str) -> str:
        return f"{self.bucket(slug)}/channels/{name}"

    def advance(self, **delta: float) -> None:
        """Move the server's clock, and take a fresh API token as a long-running client would."""
        self.clock.advance(**delta)
        self.api.token = api_token(self.url, *self.init_client)


class HttpApiClient(ApiClient):
    """tests/support/client.py's ApiClient (every answer checked against HashiCorp's document) reaching the
    server over real HTTP, its event loop on a thread of its own: Playwright's sync API keeps a loop
    running on the test's thread, where a second loop can't run."""

    def __init__(self, url: str, contracts: list[SwaggerContract], org_id: str, project_id: str) -> None:
        loop = asyncio.new_event_loop()
        super().__init__(None, contracts, loop, org_id, project_id)
        self.runner = threading.Thread(target=loop.run_forever, name="packyard-browser-api", daemon=True)
        self.runner.start()
        self.call(self.http.aclose())  # the ASGI client the base class made
        self.http = httpx.AsyncClient(base_url=url, timeout=10.0)

    def call(self, work: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(work, self.loop).result(timeout=30)

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        return self.call(self.arequest(method, path, **kwargs))

    def close(self) -> None:
        self.call(self.http.aclose())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.runner.join(timeout=5)
        self.loop.close()


def api_token(url: str, client_id: str, client_secret: str) -> str:
    body = {"grant_type": "client_credentials", "client_id": client_id, "client_secret": client_secret}
    response = httpx.post(f"{url}/oauth2/token", data=body, timeout=5.0)
    assert response.status_code == 200, response.text
    return str(response.json()["access_token"])


def make_users(url: str, clock: ManualClock, org_id: str) -> dict[str, str]:
    """The accounts of the tests, made as `packyard user create` makes them (auth/accounts.py), before
    the server starts; returns each one's one-time link secret."""
    db = Database(url)
    links: dict[str, str] = {}
    try:
        for email, role in ((ADMIN, Role.ADMIN), (CONTRIBUTOR, Role.CONTRIBUTOR), (VIEWER, Role.VIEWER)):

            def create(conn: Any, email: str = email, role: Role = role) -> accounts.NewUser:
                uow = SqlUnitOfWork(conn)
                return accounts.create_user(
                    uow, email=email, role=role, organization_id=org_id, project_id=None, now=clock.now()
                )

            links[email] = db.run(create, write=True).link_secret

        def newcomer(conn: Any) -> accounts.NewUser:
            uow = SqlUnitOfWork(conn)
            return accounts.create_user(
                uow, email=NEWCOMER, role=Role.VIEWER, organization_id=org_id, project_id=None, now=clock.now()
            )

        links[NEWCOMER] = db.run(newcomer, write=True).link_secret
    finally:
        db.dispose()
    return links


_FORM_TOKEN = re.compile(r'name="form_token" value="([^"]*)"')


def set_password(url: str, secret: str, password: str = PASSWORD) -> None:
    """Follow a one-time link over HTTP, as the person it was sent to would."""
    with httpx.Client(base_url=url, timeout=5.0) as http:
        page = http.get(f"/set-password/{secret}")
        assert page.status_code == 200, page.text
        found = _FORM_TOKEN.search(page.text)
        assert found is not None, page.text
        done = http.post(
            f"/set-password/{secret}",
            data={"form_token": found.group(1), "password": password, "confirm": password},
        )
        assert done.status_code == 303, done.text


@contextlib.contextmanager
def serving(tmp: Path, backend: Backend, contracts: list[SwaggerContract]) -> Iterator[Served]:
    """A packyard server on 127.0.0.1 on a fresh database of the lane, seeded, with its users."""
    database_url = backend.new_url(tmp)
    clock = ManualClock(START)
    init = backend.init
    links = make_users(database_url, clock, init.organization_id)
    settings = Settings(data_dir=tmp, database_url=database_url)
    db = Database(settings.effective_database_url)
    app = create_app(settings, db=db, clock=clock)
    port = free_port()
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        lifespan="on",
        log_level="warning",
        access_log=False,
        server_header=False,
        # As `packyard serve` runs uvicorn: X-Forwarded-For is believed from these addresses only.
        proxy_headers=True,
        forwarded_allow_ips="127.0.0.1",
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="packyard-browser-server", daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    api: HttpApiClient | None = None
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while not server.started:
            assert thread.is_alive(), "the server's thread ended before it started listening"
            assert time.monotonic() < deadline, f"the server did not start in {START_TIMEOUT}s"
            time.sleep(0.02)  # bounded polling of a server that is starting
        api = HttpApiClient(url, contracts, init.organization_id, init.project_id)
        api.token = api_token(url, init.client_id, init.client_secret)
        for email in (ADMIN, CONTRIBUTOR, VIEWER):
            set_password(url, links.pop(email))

        def later() -> None:
            clock.advance(hours=11, minutes=17)  # five times: within the 72 h of the newcomer's link
            api.token = api_token(url, init.client_id, init.client_secret)

        seeded = seed(api, later)
        yield Served(url, clock, api, (init.client_id, init.client_secret), seeded, database_url, links)
    finally:
        if api is not None:
            api.close()
        server.should_exit = True
        thread.join(timeout=15)
        assert not thread.is_alive(), "the server did not stop in 15 s"
        db.dispose()
        backend.release(database_url)


# ---- in the browser


def sign_in(page: Page, served: Served, email: str, password: str = PASSWORD) -> None:
    """Sign in through the form, as a person does, and wait for the page it leads to."""
    page.goto(f"{served.url}/sign-in", timeout=WAIT_MS)
    page.get_by_label("Email").fill(email, timeout=WAIT_MS)
    page.get_by_label("Password").fill(password, timeout=WAIT_MS)
    page.get_by_role("button", name="Sign in").click(timeout=WAIT_MS)
    expect(page.get_by_role("button", name="Sign out")).to_be_visible(timeout=WAIT_MS)


_axe = Axe()


def violations(page: Page) -> list[dict[str, Any]]:
    """axe-core's violations on the page as it is now (WCAG 2.x A and AA rules and axe's best practices)."""
    results = _axe.run(page)
    return list(results.response["violations"])


def report(found: list[dict[str, Any]]) -> str:
    lines = []
    for v in found:
        lines.append(f"- {v['id']} ({v['impact']}): {v['help']}  [{v['helpUrl']}]")
        for node in v["nodes"][:5]:
            target = ", ".join(str(t) for t in node["target"])
            lines.append(f"    at {target}: {node['html'][:160]}")
            if node.get("failureSummary"):
                lines.extend(f"      {line}" for line in str(node["failureSummary"]).splitlines())
        if len(v["nodes"]) > 5:
            lines.append(f"    ... and {len(v['nodes']) - 5} more")
    return "\n".join(lines)


def check_accessibility(page: Page, what: str) -> list[dict[str, Any]]:
    """Fail on any serious or critical axe-core violation on the page, printing each one readably;
    returns the milder ones (printed too, for the record)."""
    found = violations(page)
    failing = [v for v in found if v["impact"] in FAILING_IMPACTS]
    milder = [v for v in found if v["impact"] not in FAILING_IMPACTS]
    if milder:
        print(f"axe-core on {what}: {len(milder)} moderate or minor findings\n{report(milder)}")
    if failing:
        pytest.fail(f"axe-core on {what} ({page.url}): serious or critical violations\n{report(failing)}")
    return milder


def screenshot(page: Page, name: str, directory: Path, *, full_page: bool = True) -> Path:
    """The page as a PNG (whole, or the screen's worth when not full_page) in directory: docs/screenshots
    when the run was asked to write them (tests/browser/conftest.py screenshot_dir)."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}.png"
    page.screenshot(path=str(path), full_page=full_page, animations="disabled", caret="hide", timeout=WAIT_MS)
    assert path.read_bytes().startswith(b"\x89PNG"), f"{path} is not a PNG"
    return path
