"""The token endpoint under attack (issue 15): what the throttle keys on, where it keeps its counts, how
much it keeps, what an unknown client id costs, and GET on the token paths.

The in-process tests drive the real ASGI app with the injected clock; each source address is an httpx
ASGITransport with its own `client`. The tests marked slow run real `packyard serve` processes on
127.0.0.1, with a second client socket bound to 127.0.0.2.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote_plus

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy import event

from packyard.auth import credentials as creds
from packyard.auth.service import source_key
from packyard.domain.models import Role
from packyard.http.app import App
from packyard.http.factory import create_app
from packyard.storage import schema as t
from packyard.storage.db import Database
from packyard.storage.raw import Raw
from tests.api.test_roles import new_principal
from tests.conftest import Backend, Env
from tests.support.server import serving

FORM = {"Content-Type": "application/x-www-form-urlencoded"}
LIMIT = 10  # per (client id, address)
SOURCE_LIMIT = 50  # per address, over all client ids
WINDOW_SECONDS = 300
LOCKOUT_SECONDS = 60
ATTACKER = "127.0.0.1"  # the env client's own address (httpx.ASGITransport's default)
OWNER = "127.0.0.2"


def form(client_id: str, secret: str) -> bytes:
    return (
        f"grant_type=client_credentials&client_id={quote_plus(client_id)}&client_secret={quote_plus(secret)}".encode()
    )


class From:
    """Token requests to the env's app (or another app on its database) from one source address."""

    def __init__(self, env: Env, address: str, app: App | None = None) -> None:
        self.loop = env.client.loop
        transport = httpx.ASGITransport(app=app or env.app, client=(address, 40000))
        self.http = httpx.AsyncClient(transport=transport, base_url="http://packyard.test")

    def post(self, body: bytes, path: str = "/oauth2/token", headers: dict[str, str] | None = None) -> httpx.Response:
        return self.loop.run_until_complete(self.http.post(path, content=body, headers={**FORM, **(headers or {})}))

    def attempt(self, client_id: str, secret: str) -> httpx.Response:
        return self.post(form(client_id, secret))

    def close(self) -> None:
        self.loop.run_until_complete(self.http.aclose())


@pytest.fixture
def sources(env: Env) -> Iterator[dict[str, From]]:
    made: dict[str, From] = {}

    class Sources(dict[str, From]):
        def __missing__(self, address: str) -> From:
            made[address] = self[address] = From(env, address)
            return made[address]

    yield Sources()
    for source in made.values():
        source.close()


def refused(response: httpx.Response) -> None:
    assert response.status_code == 401, response.text
    assert response.json() == {"error": "invalid_client", "error_description": "client authentication failed"}
    assert "retry-after" not in response.headers


def granted(response: httpx.Response) -> None:
    assert response.status_code == 200, response.text
    assert response.json()["access_token"]


def throttled(response: httpx.Response) -> int:
    assert response.status_code == 429, response.text
    assert response.json()["error"] == "invalid_client"
    assert "access_token" not in response.json()
    return int(response.headers["retry-after"])


def failure_rows(env: Env) -> list[Any]:
    def work(conn: sa.Connection) -> list[Any]:
        return list(
            conn.execute(sa.select(t.token_failure).order_by(t.token_failure.c.address, t.token_failure.c.client_id))
        )

    return env.db.run(work, write=False)


@pytest.fixture
def statements(env: Env, monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Every statement the app runs, as SQL text (parameters left out): the repositories' (SQL text on
    the driver, storage/raw.py) and any the engine runs."""
    seen: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        seen.append(statement)

    def traced(method: Callable[..., Any]) -> Callable[..., Any]:
        def run(self: Raw, sql: str, *args: Any) -> Any:
            seen.append(sql)
            return method(self, sql, *args)

        return run

    for name in ("rows", "execute", "executemany"):
        monkeypatch.setattr(Raw, name, traced(getattr(Raw, name)))
    event.listen(env.db.engine, "before_cursor_execute", record)
    yield seen
    event.remove(env.db.engine, "before_cursor_execute", record)


# --------------------------------------------------------------------------- 1. bounded ids, before anything


@pytest.mark.parametrize("length", [creds.CLIENT_ID_LENGTH + 1, 100_000])
@pytest.mark.parametrize("how", ["form", "basic"])
def test_longer_ids_than_issued_are_refused_before_any_lookup_or_state(
    env: Env, sources: dict[str, From], statements: list[str], length: int, how: str
) -> None:
    client_id = env.init.client_id + "x" * (length - len(env.init.client_id))
    assert len(client_id) == length
    # The right secret after a known id: only the length refuses it.
    if how == "form":
        response = sources[ATTACKER].attempt(client_id, env.init.client_secret)
    else:
        basic = base64.b64encode(f"{client_id}:{env.init.client_secret}".encode()).decode()
        response = sources[ATTACKER].post(b"grant_type=client_credentials", headers={"Authorization": f"Basic {basic}"})
    refused(response)
    assert statements == []  # no principal lookup, no throttle read, no failure written
    assert failure_rows(env) == []


def test_longer_secrets_than_issued_are_refused_alike(
    env: Env, sources: dict[str, From], statements: list[str]
) -> None:
    refused(sources[ATTACKER].attempt(env.init.client_id, "x" * (creds.CLIENT_SECRET_LENGTH + 1)))
    assert statements == []
    # The issued lengths themselves go through.
    assert len(env.init.client_id) == creds.CLIENT_ID_LENGTH
    assert len(env.init.client_secret) == creds.CLIENT_SECRET_LENGTH
    granted(sources[ATTACKER].attempt(env.init.client_id, env.init.client_secret))


# --------------------------------------------------------------------------- 3. per (id, address) and per address


def test_a_burst_of_wrong_secrets_does_not_lock_the_owner_out_from_elsewhere(
    env: Env, sources: dict[str, From]
) -> None:
    client_id, secret = env.init.client_id, env.init.client_secret
    attacker, owner = sources[ATTACKER], sources[OWNER]
    for _ in range(LIMIT):
        refused(attacker.attempt(client_id, "wrong-secret"))
    # The attacker's address is locked out for this id, the right secret included (a 200 would confirm a guess).
    assert throttled(attacker.attempt(client_id, "wrong-secret")) == LOCKOUT_SECONDS
    assert throttled(attacker.attempt(client_id, secret)) == LOCKOUT_SECONDS
    # The owner, from an address that has not failed, is let through, again and again.
    for _ in range(3):
        granted(owner.attempt(client_id, secret))
    # A third address is not affected either, and other ids from the attacker's address still work.
    granted(sources["10.1.2.3"].attempt(client_id, secret))
    other_id, other_secret = new_principal(env, Role.VIEWER, name="bystander")
    granted(attacker.attempt(other_id, other_secret))
    # The owner's success cleared nothing of the attacker's: still locked, counting down with the clock.
    env.clock.advance(seconds=20)
    assert throttled(attacker.attempt(client_id, secret)) == LOCKOUT_SECONDS - 20
    env.clock.advance(seconds=LOCKOUT_SECONDS - 20)
    granted(attacker.attempt(client_id, secret))


def test_an_address_failing_across_many_ids_is_locked_out_whatever_it_sends(env: Env, sources: dict[str, From]) -> None:
    attacker, owner = sources[ATTACKER], sources[OWNER]
    other_id, other_secret = new_principal(env, Role.VIEWER, name="other")
    # Fewer than LIMIT per id, so only the count over all ids can stop it.
    for n in range(SOURCE_LIMIT):
        refused(attacker.attempt(f"guess-{n}", "wrong-secret"))
    for client_id, secret in [
        ("guess-next", "x"),
        (env.init.client_id, env.init.client_secret),
        (other_id, other_secret),
    ]:
        assert throttled(attacker.attempt(client_id, secret)) == LOCKOUT_SECONDS
    # Locked attempts are not counted and write nothing.
    before = failure_rows(env)
    assert throttled(attacker.attempt("guess-more", "x")) == LOCKOUT_SECONDS
    assert failure_rows(env) == before
    # Nobody else is affected.
    granted(owner.attempt(env.init.client_id, env.init.client_secret))
    granted(owner.attempt(other_id, other_secret))
    refused(owner.attempt("guess-next", "x"))
    # The lockout ends as announced; inside the window one more failure locks the address again.
    env.clock.advance(seconds=LOCKOUT_SECONDS)
    granted(attacker.attempt(other_id, other_secret))
    refused(attacker.attempt("guess-again", "x"))
    assert throttled(attacker.attempt(other_id, other_secret)) == LOCKOUT_SECONDS
    # Past the window the address starts afresh.
    env.clock.advance(seconds=WINDOW_SECONDS)
    refused(attacker.attempt("guess-later", "x"))
    granted(attacker.attempt(other_id, other_secret))


def test_a_success_clears_its_own_count_but_not_its_address_count(env: Env, sources: dict[str, From]) -> None:
    attacker = sources[ATTACKER]
    own_id, own_secret = new_principal(env, Role.VIEWER, name="attacker's own")
    # An attacker holding a valid client can't reset its address's count by using it between guesses.
    for n in range(SOURCE_LIMIT):
        refused(attacker.attempt(f"guess-{n}", "wrong"))
        if n < SOURCE_LIMIT - 1:
            granted(attacker.attempt(own_id, own_secret))
    assert throttled(attacker.attempt(own_id, own_secret)) == LOCKOUT_SECONDS


def test_ipv6_addresses_count_per_64_and_mapped_ipv4_as_ipv4() -> None:
    assert source_key("2001:db8:1:2:aaaa::1") == source_key("2001:db8:1:2:ffff::9") == "2001:db8:1:2::/64"
    assert source_key("2001:db8:1:3::1") != source_key("2001:db8:1:2::1")
    assert source_key("::ffff:192.0.2.7") == source_key("192.0.2.7") == "192.0.2.7"
    assert source_key("") == "local"
    assert len(source_key("not-an-address" * 20)) == 64


def test_one_ipv6_host_cannot_escape_the_count_by_changing_its_interface_id(env: Env, sources: dict[str, From]) -> None:
    for n in range(LIMIT):
        refused(sources[f"2001:db8::{n + 1:x}"].attempt(env.init.client_id, "wrong"))
    throttled(sources["2001:db8::ffff"].attempt(env.init.client_id, env.init.client_secret))
    granted(sources["2001:db8:0:1::1"].attempt(env.init.client_id, env.init.client_secret))


# --------------------------------------------------------------------------- 2 and 4. bounded rows, shared by replicas


def test_rows_per_address_are_bounded_and_dead_rows_are_swept(env: Env, sources: dict[str, From]) -> None:
    attacker = sources[ATTACKER]
    for n in range(4 * SOURCE_LIMIT):  # a new id every time
        response = attacker.attempt(f"id-{n}", "wrong")
        assert response.status_code in (401, 429), response.text
    rows = failure_rows(env)
    # SOURCE_LIMIT pair rows and the address's own row; the locked attempts wrote nothing.
    assert len(rows) == SOURCE_LIMIT + 1
    assert {r.address for r in rows} == {ATTACKER}
    # Once the window and the lockout have passed, the next failure (from anywhere) deletes them all.
    env.clock.advance(seconds=WINDOW_SECONDS)
    refused(sources[OWNER].attempt("someone", "wrong"))
    assert [(r.address, r.client_id, r.failures) for r in failure_rows(env)] == [(OWNER, "", 1), (OWNER, "someone", 1)]


def test_a_success_writes_nothing_unless_it_has_failures_to_clear(
    env: Env, sources: dict[str, From], statements: list[str]
) -> None:
    def writes() -> list[str]:
        return [s for s in statements if s.lstrip().split()[0].upper() in ("INSERT", "UPDATE", "DELETE")]

    owner = sources[OWNER]
    granted(owner.attempt(env.init.client_id, env.init.client_secret))
    assert writes() == []
    refused(owner.attempt(env.init.client_id, "wrong"))
    assert len(writes()) == 3  # sweep, the pair's count, the address's count
    statements.clear()
    granted(owner.attempt(env.init.client_id, env.init.client_secret))
    assert len(writes()) == 1
    assert writes()[0].lstrip().upper().startswith("DELETE")
    # The pair's count is gone, the address's stays.
    assert [(r.client_id, r.failures) for r in failure_rows(env)] == [("", 1)]
    statements.clear()
    granted(owner.attempt(env.init.client_id, env.init.client_secret))
    assert writes() == []


def test_two_apps_on_one_database_share_the_count(env: Env) -> None:
    # A second App instance on the same database: another replica (or worker), with its own memory.
    other_db = Database(env.settings.effective_database_url)
    other = create_app(env.settings, db=other_db, clock=env.clock)
    first, second = From(env, ATTACKER), From(env, ATTACKER, app=other)
    try:
        for n in range(LIMIT):
            refused((first if n % 2 else second).attempt(env.init.client_id, "wrong"))
        assert throttled(first.attempt(env.init.client_id, env.init.client_secret)) == LOCKOUT_SECONDS
        assert throttled(second.attempt(env.init.client_id, env.init.client_secret)) == LOCKOUT_SECONDS
        # A success on one clears the pair's count for both.
        env.clock.advance(seconds=LOCKOUT_SECONDS)
        granted(second.attempt(env.init.client_id, env.init.client_secret))
        for _ in range(LIMIT - 1):
            refused(first.attempt(env.init.client_id, "wrong"))
        granted(second.attempt(env.init.client_id, env.init.client_secret))
    finally:
        first.close()
        second.close()
        env.client.loop.run_until_complete(other.aclose())
        other_db.dispose()


# --------------------------------------------------------------------------- 5. unknown and known ids cost alike


def test_unknown_and_known_client_ids_do_the_same_work(
    env: Env, sources: dict[str, From], statements: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    hashed: list[int] = []
    real_sha256 = hashlib.sha256

    def sha256(data: bytes = b"") -> Any:
        hashed.append(len(data))
        return real_sha256(data)

    monkeypatch.setattr(hashlib, "sha256", sha256)  # credentials.py hashes through it
    unknown_id = "u" * len(env.init.client_id)  # the same length: nothing but existence differs

    def work(client_id: str) -> tuple[list[str], list[int], httpx.Response]:
        statements.clear()
        hashed.clear()
        response = sources[OWNER].attempt(client_id, "w" * len(env.init.client_secret))
        return list(statements), list(hashed), response

    known_sql, known_hashes, known = work(env.init.client_id)
    unknown_sql, unknown_hashes, unknown = work(unknown_id)
    refused(known)
    refused(unknown)
    assert known.content == unknown.content
    # One hash of the same length, and statement for statement the same SQL: the throttle read, the
    # principal lookup, then the failure's write (sweep and two upserts).
    assert known_hashes == unknown_hashes
    assert len(known_hashes) == 1
    assert known_sql == unknown_sql
    assert sum("token_failure" in s for s in known_sql) == 4
    assert sum("FROM principal" in s for s in known_sql) == 1


# --------------------------------------------------------------------------- 6. GET on the token paths


@pytest.mark.parametrize("path", ["/oauth2/token", "/oauth/token"])
def test_get_on_the_token_paths_is_405_with_allow_post(env: Env, path: str) -> None:
    response = env.client.get(path, token="")
    assert response.status_code == 405, response.text
    assert response.headers["allow"] == "POST"
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert body["error"] == "invalid_request"
    assert "POST" in body["error_description"]
    # POST on the same path still issues tokens.
    granted(env.client.post(path, content=form(env.init.client_id, env.init.client_secret), headers=FORM, token=""))


# --------------------------------------------------------------------------- real servers


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


@pytest.mark.slow
def test_two_thousand_one_megabyte_client_ids_leave_the_servers_memory_where_it_was(
    tmp_path: Path, backend: Backend
) -> None:
    url = backend.new_url(tmp_path)
    size = 1_000_000  # under the 1 MiB body limit with the rest of the form, so every id reaches the token code
    base = b"a" * size
    try:
        with serving(tmp_path, url) as (server,), httpx.Client(base_url=server.url, timeout=30.0) as http:
            pid = server.process.pid

            def burst(start: int, count: int) -> None:
                for n in range(start, start + count):
                    body = b"grant_type=client_credentials&client_secret=wrong&client_id=%08d" % n + base
                    response = http.post("/oauth2/token", content=body, headers=FORM)
                    refused(response)

            deadline = time.monotonic() + 120
            burst(0, 200)  # warm up: the allocator's high-water mark for one request's buffers
            before = rss_kib(pid)
            burst(200, 2_000)
            after = rss_kib(pid)
            assert time.monotonic() < deadline
            # Kept per id, 2,000 ids would be 2 GB; a few MB is allocator noise.
            assert after - before < 8 * 1024, (before, after)
            # The server still answers, and the failures were never counted.
            granted(
                http.post(
                    "/oauth2/token", content=form(backend.init.client_id, backend.init.client_secret), headers=FORM
                )
            )
            db = Database(url)
            try:
                with db.engine.connect() as conn:
                    assert conn.execute(sa.select(sa.func.count()).select_from(t.token_failure)).scalar() == 0
            finally:
                db.dispose()
    finally:
        backend.release(url)


@pytest.mark.slow
def test_real_servers_the_owner_from_another_address_and_replicas_sharing_the_count(
    tmp_path: Path, backend: Backend
) -> None:
    url = backend.new_url(tmp_path)
    init = backend.init

    async def scenario(urls: list[str]) -> None:
        owner_transport = httpx.AsyncHTTPTransport(local_address=OWNER)
        async with (
            httpx.AsyncClient(base_url=urls[0], timeout=30.0) as first,
            httpx.AsyncClient(base_url=urls[1], timeout=30.0) as second,
            httpx.AsyncClient(base_url=urls[0], timeout=30.0, transport=owner_transport) as owner,
        ):
            # Ten wrong secrets from 127.0.0.1, split across the two replicas.
            for n in range(LIMIT):
                refused(
                    await (first if n % 2 else second).post(
                        "/oauth2/token", content=form(init.client_id, "no"), headers=FORM
                    )
                )
            for replica in (first, second):
                answer = await replica.post(
                    "/oauth2/token", content=form(init.client_id, init.client_secret), headers=FORM
                )
                assert 0 < throttled(answer) <= LOCKOUT_SECONDS
            # The owner, connecting from 127.0.0.2, gets its token.
            granted(await owner.post("/oauth2/token", content=form(init.client_id, init.client_secret), headers=FORM))

    try:
        with serving(tmp_path, url, count=2) as servers:
            asyncio.run(asyncio.wait_for(scenario([s.url for s in servers]), timeout=60))
            logs = "".join(s.output() for s in servers)
            assert "Traceback" not in logs, logs[-3000:]
    finally:
        backend.release(url)
