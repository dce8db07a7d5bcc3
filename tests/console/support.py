"""A browser-like client for the console's tests: httpx over the ASGI app with a cookie jar, on the
test environment's event loop, and helpers that make users and sign them in."""

from __future__ import annotations

import re
from typing import Any

import httpx

from packyard.auth import accounts
from packyard.domain.models import Role
from packyard.storage.unit_of_work import SqlUnitOfWork
from tests.conftest import Env

PASSWORD = "correct horse battery staple"
_HIDDEN = re.compile(r'name="(csrf_token|form_token)" value="([^"]*)"')


class Browser:
    def __init__(self, env: Env, base_url: str = "http://packyard.test", client_host: str = "127.0.0.1") -> None:
        self.env = env
        transport = httpx.ASGITransport(app=env.app, client=(client_host, 50000))
        self.http = httpx.AsyncClient(transport=transport, base_url=base_url, follow_redirects=False)

    def get(self, path: str, **kw: Any) -> httpx.Response:
        return self.env.client.loop.run_until_complete(self.http.get(path, **kw))

    def post(self, path: str, data: dict[str, str] | None = None, **kw: Any) -> httpx.Response:
        return self.env.client.loop.run_until_complete(self.http.post(path, data=data or {}, **kw))

    def close(self) -> None:
        self.env.client.loop.run_until_complete(self.http.aclose())

    @staticmethod
    def tokens(page: httpx.Response) -> dict[str, str]:
        """The hidden form tokens of a page (csrf_token, form_token)."""
        return dict(_HIDDEN.findall(page.text))

    def submit(self, page_path: str, action: str, fields: dict[str, str]) -> httpx.Response:
        """Load page_path, then post its form to action with its hidden tokens and these fields."""
        page = self.get(page_path)
        assert page.status_code == 200, page.text
        return self.post(action, {**self.tokens(page), **fields})

    def sign_in(self, email: str, password: str = PASSWORD) -> httpx.Response:
        return self.submit("/sign-in", "/sign-in", {"email": email, "password": password})


def make_user(
    env: Env, email: str, role: Role = Role.ADMIN, project_id: str | None = None, password: str | None = PASSWORD
) -> str:
    """A user in the test registry's organization, with the password set through its one-time link
    (as a person would); returns the link's secret when password is None (left unset)."""
    now = env.clock.now()

    def create(conn: Any) -> accounts.NewUser:
        return accounts.create_user(
            SqlUnitOfWork(conn),
            email=email,
            role=role,
            organization_id=env.init.organization_id,
            project_id=project_id,
            now=now,
        )

    new = env.db.run(create, write=True)
    if password is None:
        return new.link_secret
    browser = Browser(env)
    try:
        done = browser.submit(
            f"/set-password/{new.link_secret}",
            f"/set-password/{new.link_secret}",
            {"password": password, "confirm": password},
        )
        assert done.status_code == 303, done.text
    finally:
        browser.close()
    return new.link_secret
