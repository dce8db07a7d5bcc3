"""The read cache (http/cache.py): repeated hot reads are answered from memory, and never once stale.

Each test reads twice so that the second read is a cache hit, checks that it was one, then changes the
world in one of the ways that must show at once (a write through this app, a write through another app
on the same database as another replica would make, a due job, the clock passing a boundary, another
principal, a deleted principal, an expired token) and checks the very next read.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from packyard.domain.models import Principal, Role
from packyard.http.factory import create_app
from packyard.jobs import run_due_jobs
from packyard.pipeline.cache import CheckBatch
from packyard.storage import schema
from packyard.storage.db import Database
from tests.api.test_roles import new_principal
from tests.conftest import START, Backend, Env, close_env, make_env
from tests.contract.validator import SwaggerContract
from tests.support.client import ApiClient, error, ok
from tests.support.packer import publish


def cache_hits(env: Env) -> int:
    assert env.app.runner.cache is not None
    return env.app.runner.cache.hits


def get_channel(c: ApiClient, bucket: str, slug: str, token: str | None = None) -> Any:
    return c.get(c.p(f"/images/{bucket}/channels/{slug}"), token=token)


def pointed_version(c: ApiClient, bucket: str, slug: str) -> int:
    return int(ok(get_channel(c, bucket, slug))["channel"]["iteration"]["incremental_version"])


def assert_hit(env: Env, read: Any) -> Any:
    """Run read() and check that it was answered from the cache."""
    before = cache_hits(env)
    result = read()
    assert cache_hits(env) == before + 1, "expected a cache hit"
    return result


def production_on_v1(c: ApiClient) -> tuple[dict[str, Any], dict[str, Any]]:
    v1 = publish(c, "web", "fp-1", ["amazon-ebs.a"])
    v2 = publish(c, "web", "fp-2", ["amazon-ebs.a"])
    ok(c.post(c.p("/images/web/channels"), json={"slug": "production", "iteration_id": v1["id"]}))
    return v1, v2


def test_a_repeated_read_is_a_hit_with_the_same_body(env: Env) -> None:
    c = env.client
    production_on_v1(c)
    first = get_channel(c, "web", "production")
    second = assert_hit(env, lambda: get_channel(c, "web", "production"))
    assert second.status_code == 200
    assert second.content == first.content
    assert second.headers["content-type"] == "application/json"


def test_a_write_through_this_app_shows_at_once(env: Env) -> None:
    c = env.client
    _, v2 = production_on_v1(c)
    assert pointed_version(c, "web", "production") == 1
    assert assert_hit(env, lambda: pointed_version(c, "web", "production")) == 1
    ok(c.patch(c.p("/images/web/channels/production"), json={"iteration_id": v2["id"]}))
    assert pointed_version(c, "web", "production") == 2
    # ... and a failed write changes nothing, so what was cached after it still holds.
    error(c.patch(c.p("/images/web/channels/production"), json={"iteration_id": "01HZZZZZZZZZZZZZZZZZZZZZZZ"}), 5)
    assert assert_hit(env, lambda: pointed_version(c, "web", "production")) == 2


@pytest.fixture
def replica(tmp_path: Path, env: Env, contracts: list[SwaggerContract]) -> Iterator[ApiClient]:
    """A second app with its own engine and connections on the same database: another process."""
    db = Database(env.settings.effective_database_url)
    app = create_app(env.settings, db=db, clock=env.clock)
    loop = asyncio.new_event_loop()
    client = ApiClient(app, contracts, loop, env.init.organization_id, env.init.project_id)
    client.token = env.client.token  # a token of one process is accepted by the others
    yield client
    loop.run_until_complete(app.aclose())
    client.close()
    loop.close()
    db.dispose()


def test_a_write_through_another_process_shows_at_once(env: Env, replica: ApiClient) -> None:
    c = env.client
    v1, v2 = production_on_v1(c)
    assert pointed_version(c, "web", "production") == 1
    assert assert_hit(env, lambda: pointed_version(c, "web", "production")) == 1
    ok(replica.patch(replica.p("/images/web/channels/production"), json={"iteration_id": v2["id"]}))
    assert pointed_version(c, "web", "production") == 2
    ok(replica.patch(replica.p(f"/iterations/{v2['id']}"), json={"bucket_slug": "web", "revoke_in": "0s"}))
    revoked = ok(c.get(c.p("/images/web/iteration"), params={"iteration_id": v2["id"]}))["iteration"]
    assert revoked["revocation_type"] == "MANUAL"
    assert ok(c.get(c.p("/images/web")))["bucket"]["latest_version"] == 1  # latest moved back to v1
    assert v1["id"] != v2["id"]


def test_a_due_job_run_by_another_process_shows_at_once(env: Env, replica: ApiClient) -> None:
    c = env.client
    _, v2 = production_on_v1(c)
    latest = ok(get_channel(c, "web", "latest"))["channel"]["iteration"]
    assert latest["id"] == v2["id"]
    when = env.clock.now() + timedelta(hours=1)
    ok(
        c.patch(
            c.p(f"/iterations/{v2['id']}"),
            json={"bucket_slug": "web", "revoke_at": when.isoformat().replace("+00:00", "Z")},
        )
    )
    assert ok(get_channel(c, "web", "latest"))["channel"]["iteration"]["id"] == v2["id"]
    assert_hit(env, lambda: get_channel(c, "web", "latest"))
    env.clock.advance(hours=2)
    env.client.token = replica.token = env.token_for(env.init.client_id, env.init.client_secret)

    def latest_version() -> int:
        return int(ok(c.get(c.p("/images/web")))["bucket"]["latest_version"])

    # The bucket's answer derives nothing from the clock, so only the job's own write can make it stale.
    assert latest_version() == 2
    assert assert_hit(env, latest_version) == 2
    other = Database(env.settings.effective_database_url)
    try:
        assert run_due_jobs(other, env.clock, env.app.services.rules) == 1
    finally:
        other.dispose()
    # The job moved `latest` back to v1 in another connection; this process sees it on the next read.
    assert latest_version() == 1
    assert pointed_version(c, "web", "latest") == 1


def test_a_silent_running_build_turns_failed_by_the_clock_alone(env: Env) -> None:
    c = env.client
    ok(c.put(c.p("/images"), json={"bucket_slug": "web"}))
    it = ok(c.post(c.p("/images/web/iterations"), json={"fingerprint": "fp-run"}))["iteration"]
    build = ok(c.post(c.p(f"/images/web/iterations/{it['id']}"), json={"build": {"component_type": "a.b"}}))["build"]
    ok(c.patch(c.p(f"/builds/{build['id']}"), json={"updates": {"status": "RUNNING"}}))

    def status() -> str:
        return str(ok(c.get(c.p(f"/builds/{build['id']}")))["build"]["status"])

    assert status() == "RUNNING"
    grace = env.settings.heartbeat_grace_seconds
    env.clock.advance(seconds=grace)  # exactly at the deadline: still RUNNING, still the cached answer
    assert assert_hit(env, status) == "RUNNING"
    env.clock.advance(seconds=1)
    assert status() == "FAILED"


def test_a_scheduled_revocation_flips_the_history_status_by_the_clock_alone(env: Env) -> None:
    c = env.client
    _, v2 = production_on_v1(c)
    ok(c.patch(c.p("/images/web/channels/production"), json={"iteration_id": v2["id"]}))
    when = env.clock.now() + timedelta(minutes=10)
    body = {"bucket_slug": "web", "revoke_at": when.isoformat().replace("+00:00", "Z")}
    ok(c.patch(c.p(f"/iterations/{v2['id']}"), json=body))

    def newest_status() -> str:
        page = ok(c.get(c.p("/images/web/channels/production/history")))
        return str(page["history"][0]["iteration"]["status"])

    assert newest_status() == "ITERATION_REVOCATION_SCHEDULED"
    env.clock.advance(minutes=10, seconds=-1)
    assert assert_hit(env, newest_status) == "ITERATION_REVOCATION_SCHEDULED"
    env.clock.advance(seconds=1)
    assert newest_status() == "ITERATION_REVOKED"


def test_a_clock_that_steps_back_recomputes(env: Env) -> None:
    c = env.client
    production_on_v1(c)
    ok(get_channel(c, "web", "production"))
    env.clock.advance(seconds=-5)
    before = cache_hits(env)
    ok(get_channel(c, "web", "production"))
    assert cache_hits(env) == before


def test_restricted_channels_stay_invisible_to_a_viewer_after_a_contributor_read(env: Env) -> None:
    c = env.client
    production_on_v1(c)
    ok(c.patch(c.p("/images/web/channels/production"), json={"restriction": "RESTRICTED", "mask": "restriction"}))
    viewer = env.token_for(*new_principal(env, Role.VIEWER, name="viewer"))
    contributor = env.token_for(*new_principal(env, Role.CONTRIBUTOR, name="contributor"))
    assert ok(get_channel(c, "web", "production", contributor))["channel"]["restricted"] is True
    assert_hit(env, lambda: ok(get_channel(c, "web", "production", contributor)))
    ok(c.get(c.p("/images/web"), token=viewer))  # the viewer's token is known to this process now
    error(get_channel(c, "web", "production", viewer), 5)
    error(get_channel(c, "web", "production", viewer), 5)
    listed = ok(c.get(c.p("/images/web/channels"), token=viewer))["channels"]
    assert [ch["slug"] for ch in listed] == ["latest"]


def test_a_cached_read_still_refuses_a_principal_of_another_project(env: Env) -> None:
    c = env.client
    production_on_v1(c)
    ok(get_channel(c, "web", "production"))
    assert_hit(env, lambda: ok(get_channel(c, "web", "production")))
    project_scoped = env.token_for(*new_principal(env, Role.ADMIN, project_id=env.init.project_id, name="p"))
    other = f"/packer/2021-04-30/organizations/{env.init.organization_id}/projects/{'0' * 8}-0000-4000-8000-{'0' * 12}"
    error(c.get(other + "/images/web/channels/production", token=project_scoped), 7)
    assert ok(get_channel(c, "web", "production", project_scoped))["channel"]["slug"] == "production"


def test_a_deleted_principal_is_refused_although_its_read_is_cached(env: Env) -> None:
    c = env.client
    production_on_v1(c)
    client_id, secret = new_principal(env, Role.VIEWER, name="leaver")
    token = env.token_for(client_id, secret)
    ok(get_channel(c, "web", "production", token))
    assert_hit(env, lambda: ok(get_channel(c, "web", "production", token)))
    with env.db.engine.begin() as conn:
        conn.execute(sa.delete(schema.principal).where(schema.principal.c.client_id == client_id))
    error(get_channel(c, "web", "production", token), 16)


def test_an_expired_token_is_refused_although_its_read_is_cached(env: Env) -> None:
    c = env.client
    production_on_v1(c)
    ok(get_channel(c, "web", "production"))
    assert_hit(env, lambda: ok(get_channel(c, "web", "production")))
    env.clock.advance(seconds=env.settings.token_ttl_seconds + 1)
    error(get_channel(c, "web", "production"), 16)


def test_a_forged_token_is_refused_although_the_read_is_cached(env: Env) -> None:
    c = env.client
    production_on_v1(c)
    ok(get_channel(c, "web", "production"))
    head, payload, signature = c.token.split(".")
    forged = f"{head}.{payload}.{signature[:-2]}{'A' if signature[-2] != 'A' else 'B'}{signature[-1]}"
    error(get_channel(c, "web", "production", forged), 16)


def test_the_cache_is_bounded_in_bytes(tmp_path: Path, backend: Backend, contracts: list[SwaggerContract]) -> None:
    env = make_env(tmp_path, backend, contracts, read_cache_bytes=64 * 1024)
    try:
        c = env.client
        publish(c, "web", "fp-1", ["amazon-ebs.a", "amazon-ebs.b"])
        for n in range(200):
            ok(c.get(c.p("/images/web/iterations"), params={"pagination.page_size": 1 + n % 100}))
        cache = env.app.runner.cache
        assert cache is not None
        assert 0 < cache.size_bytes <= 64 * 1024
    finally:
        close_env(env, backend)


def test_turned_off_it_answers_the_same(tmp_path: Path, backend: Backend, contracts: list[SwaggerContract]) -> None:
    env = make_env(tmp_path, backend, contracts, read_cache_bytes=0)
    try:
        assert env.app.runner.cache is None
        c = env.client
        _, v2 = production_on_v1(c)
        assert pointed_version(c, "web", "production") == 1
        ok(c.patch(c.p("/images/web/channels/production"), json={"iteration_id": v2["id"]}))
        assert pointed_version(c, "web", "production") == 2
    finally:
        close_env(env, backend)


def test_a_check_in_flight_never_answers_a_request_that_arrived_after_it_was_sent() -> None:
    """CheckBatch's promise, with a fetch whose round trips the test holds open and releases."""
    sent: list[set[str]] = []
    release: list[asyncio.Event] = []

    def principal(principal_id: str, org: str = "org") -> Principal:
        return Principal(principal_id, principal_id, principal_id, org, None, Role.ADMIN, "", START)

    async def fetch(principals: set[str], projects: set[str]) -> tuple[dict[str, Any], dict[str, tuple[str, int]]]:
        sent.append(set(principals))
        gate = asyncio.Event()
        release.append(gate)
        number = len(sent)
        await gate.wait()
        # the stamp says which query answered; principal "x" is of another organization than the project
        found = {p: principal(p, "elsewhere" if p == "x" else "org") for p in principals}
        return found, dict.fromkeys(projects, ("org", number))

    async def scenario() -> None:
        batch = CheckBatch(fetch)
        first = asyncio.ensure_future(batch.check("a", "proj"))
        await asyncio.sleep(0)  # the first query is sent ...
        await asyncio.sleep(0)
        late = [asyncio.ensure_future(batch.check(p, "proj")) for p in ("b", "x")]  # ... then these arrive
        await asyncio.sleep(0)
        assert sent == [{"a"}]
        release[0].set()
        assert await first == (principal("a"), 1)
        await asyncio.sleep(0)
        assert sent == [{"a"}, {"b", "x"}], "the late ones wait for a query of their own, sent together"
        release[1].set()
        # the project's stamp is handed only to a principal of the project's organization
        assert [await f for f in late] == [(principal("b"), 2), (principal("x", "elsewhere"), None)]
        assert batch.queries == 2

    asyncio.run(scenario())


def test_concurrent_reads_share_the_check_on_postgresql(env: Env, backend: Backend) -> None:
    if backend.name != "postgresql":
        pytest.skip("SQLite answers the check in line; CheckBatch is for a database a round trip away")
    c = env.client
    production_on_v1(c)
    first = ok(get_channel(c, "web", "production"))
    batch = env.app.runner.batch
    assert batch is not None
    queries = batch.queries

    async def many() -> list[Any]:
        path = c.p("/images/web/channels/production")
        return list(await asyncio.gather(*[c.arequest("GET", path) for _ in range(24)]))

    before = cache_hits(env)
    responses = c.loop.run_until_complete(many())
    assert all(r.status_code == 200 and r.json() == first for r in responses)
    assert cache_hits(env) == before + 24
    assert batch.queries - queries < 24, "some requests shared a round trip"


def test_the_cache_knows_which_questions_it_holds_an_answer_to_whatever_the_role() -> None:
    """holds() lets a read with nothing kept skip the check (one statement) and go the ordinary way."""
    from datetime import UTC, datetime

    from packyard.pipeline.cache import Entry, ReadCache

    now = datetime(2024, 5, 1, tzinfo=UTC)
    cache = ReadCache(max_bytes=800)
    first = ("proj", "packer/2021-04-30", "GetChannel", ("org", "proj", "web", "production"), b"")
    second = ("proj", "packer/2021-04-30", "GetChannel", ("org", "proj", "web", "staging"), b"")
    assert not cache.holds(first)
    cache.put((*first, "viewer"), Entry(1, b"x" * 100, now, None))
    cache.put((*first, "admin"), Entry(1, b"y" * 100, now, None))
    cache.put((*first, "admin"), Entry(2, b"z" * 100, now, None))  # replaced, not added
    assert cache.holds(first)
    assert not cache.holds(second)
    # Filling the cache with the second question evicts both answers to the first, oldest first.
    cache.put((*second, "viewer"), Entry(1, b"w" * 100, now, None))
    assert cache.holds(first)
    for n in range(7):  # 10 answers of 100 bytes in 800: the two oldest go
        cache.put((*second, f"role-{n}"), Entry(1, b"v" * 100, now, None))
    assert not cache.holds(first)
    assert cache.holds(second)
    assert cache.get((*first, "admin"), 2, now) is None


def test_two_projections_of_one_operation_never_answer_for_each_other(
    tmp_path: Path, backend: Backend, contracts: list[SwaggerContract]
) -> None:
    """HashiCorp's operation ids are the same in every API tree (PackerService_GetChannel), so a second
    tree mounted beside 2021-04-30 must not be answered with the 2021 bytes, nor the other way round:
    the cache's key holds the API tree."""
    import msgspec

    from packyard.domain import channels
    from packyard.domain.models import Channel, Permission
    from packyard.http.app import App
    from packyard.http.request import Request
    from packyard.http.routing import Route
    from packyard.pipeline.operations import Operation, Place

    class OtherChannel(msgspec.Struct):
        name: str
        version_id: str

    class OtherAnswer(msgspec.Struct):
        channel: OtherChannel

    def decode(request: Request) -> tuple[str, str]:
        return request.params["bucket_slug"], request.params["slug"]

    def answer(place: Place, channel: Channel) -> OtherAnswer:
        return OtherAnswer(OtherChannel(channel.slug, channel.iteration_id or ""))

    get_channel_op = Operation(decode, lambda ctx, name: channels.get(ctx, *name), answer)
    template = "/packer/other-tree/organizations/{org}/projects/{project}/images/{bucket_slug}/channels/{slug}"
    other = Route(
        "GET",
        template,
        "PackerService_GetChannel",
        get_channel_op,
        permission=Permission.READ,
        pure=True,
        api="packer/other-tree",
    )
    environment = make_env(tmp_path, backend, contracts)
    routes = [*environment.app.router.routes, other]
    app = App(environment.app.services, routes)
    c = ApiClient(
        app, contracts, environment.client.loop, environment.init.organization_id, environment.init.project_id
    )
    c.token = environment.client.token
    try:
        v1, _ = production_on_v1(c)
        other_path = (
            f"/packer/other-tree/organizations/{c.org_id}/projects/{c.project_id}/images/web/channels/production"
        )
        assert app.runner.cache is not None
        answers: dict[str, set[bytes]] = {"2021": set(), "other": set()}
        for _ in range(3):  # alternately: each tree's answer computed once, then served from the cache
            answers["2021"].add(get_channel(c, "web", "production").content)
            answers["other"].add(c.get(other_path).content)
        assert app.runner.cache.hits == 4
        (ours,), (theirs,) = answers["2021"], answers["other"]
        assert msgspec.json.decode(theirs) == {"channel": {"name": "production", "version_id": v1["id"]}}
        assert msgspec.json.decode(ours)["channel"]["iteration"]["id"] == v1["id"]
        # Two cached routes of one tree and operation would be told apart by nothing: refused at start.
        with pytest.raises(ValueError, match="API tree"):
            App(environment.app.services, [*routes, dataclasses.replace(other, template=template + "/x")])
    finally:
        c.close()
        environment.client.loop.run_until_complete(app.aclose())
        close_env(environment, backend)
