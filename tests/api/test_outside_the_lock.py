"""A write's body is decoded before its transaction and its answer made after the commit, and a refusal
that reads decide (a bucket that exists) is made by a read, so that none of them runs under SQLite's
writer lock (an Operation's decode, answer and precheck, placed by pipeline/runner.py); what is refused,
and when, is as before: after authentication and authorization, with nothing changed."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from packyard.domain import buckets as bucket_service
from packyard.domain import builds as build_service
from packyard.domain.models import Role
from packyard.http.hcp_2021 import builds as build_handlers
from packyard.http.hcp_2021 import wire
from packyard.storage.writer_lock import WriterLock
from tests.api.test_roles import token_for_role
from tests.conftest import Env
from tests.support.client import ApiClient, error, ok
from tests.support.packer import publish, upsert_bucket


def _another_process(env: Env) -> WriterLock:
    """The database's writer lock on an open file of its own, which flock treats like another process's."""
    lock = WriterLock.for_url(env.db.url)
    assert lock is not None
    return WriterLock(lock.path)


def _lock_is_free(env: Env) -> Callable[[], bool]:
    """Whether another process could take the writer lock now."""
    other = _another_process(env)

    def free() -> bool:
        if other.try_hold():
            other.release()
            return True
        return False

    return free


def _iteration_with_a_build(c: ApiClient) -> tuple[dict[str, Any], dict[str, Any]]:
    upsert_bucket(c, "app")
    iteration = ok(c.post(c.p("/images/app/iterations"), json={"fingerprint": "f1"}))["iteration"]
    build = ok(
        c.post(c.p(f"/images/app/iterations/{iteration['id']}"), json={"build": {"component_type": "amazon-ebs.x"}})
    )["build"]
    return iteration, build


def test_a_builds_body_is_decoded_and_its_answer_projected_outside_the_writer_lock(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    if not env.db.is_sqlite:
        pytest.skip("the writer lock is SQLite's")
    free = _lock_is_free(env)
    seen: dict[str, list[bool]] = {"decode": [], "domain": [], "project": []}

    def spy(name: str, real: Callable[..., Any]) -> Callable[..., Any]:
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            seen[name].append(free())
            return real(*args, **kwargs)

        return wrapped

    monkeypatch.setattr(build_handlers, "changes", spy("decode", build_handlers.changes))
    monkeypatch.setattr(build_service, "update", spy("domain", build_service.update))
    monkeypatch.setattr(wire, "build", spy("project", wire.build))
    c = env.client
    _, build = _iteration_with_a_build(c)
    running = ok(c.patch(c.p(f"/builds/{build['id']}"), json={"updates": {"status": "RUNNING"}}))["build"]
    assert running["status"] == "RUNNING"  # the answer projected after the commit is the written build
    assert seen["decode"] == [True, True], "CreateBuild's and UpdateBuild's bodies decoded with the lock free"
    assert seen["domain"] == [False], "the domain's work runs under the lock: the probe can tell"
    assert seen["project"] == [True, True], "both answers projected after the commit, with the lock free"


@pytest.mark.parametrize(
    ("who", "status", "code"),
    [("nobody", 401, 16), ("viewer", 403, 7), ("contributor", 400, 3)],
)
def test_a_bad_body_is_refused_after_authentication_and_changes_nothing(
    env: Env, who: str, status: int, code: int
) -> None:
    """The body is decoded before the transaction, but its refusal is still reported only to a caller
    who may write: an unauthenticated one gets 401 and a viewer 403, as before the split."""
    c = env.client
    iteration, build = _iteration_with_a_build(c)
    token = {
        "nobody": "",
        "viewer": token_for_role(env, Role.VIEWER, "project"),
        "contributor": token_for_role(env, Role.CONTRIBUTOR, "project"),
    }[who]
    attempts = [
        ("PATCH", f"/builds/{build['id']}", {"updates": {"status": "NOT_A_STATUS"}}),
        ("POST", f"/images/app/iterations/{iteration['id']}", {"build": {"images": "not a list"}}),
        ("POST", "/images/app/iterations", {"fingerprint": 5}),
        ("PATCH", "/images/app", {"labels": ["not", "a", "map"]}),
        ("PUT", "/images", {"bucket_slug": {"nested": True}}),
        ("POST", "/images/app/channels", {"slug": ["x"]}),
    ]
    before = ok(c.get(c.p(f"/images/app/iterations/{iteration['id']}/builds")))
    for method, path, body in attempts:
        refused = c.request(method, c.p(path), json=body, token=token)
        assert refused.status_code == status, (method, path, refused.text)
        error(refused, code, status)
    assert ok(c.get(c.p(f"/images/app/iterations/{iteration['id']}/builds"))) == before
    assert [b["slug"] for b in ok(c.get(c.p("/images")))["buckets"]] == ["app"]
    assert [ch["slug"] for ch in ok(c.get(c.p("/images/app/channels")))["channels"]] == ["latest"]


def test_creating_a_bucket_that_exists_is_refused_without_the_writer_lock(env: Env) -> None:
    """Packer's bucket upsert starts with a PUT that is refused on every publish after the bucket's
    first: a read decides it, answered even while another process holds the writer lock."""
    c = env.client
    upsert_bucket(c, "app")
    if env.db.is_sqlite:
        other = _another_process(env)
        assert other.try_hold()
        requests = env.db.writes.requests
        put = c.arequest("PUT", c.p("/images"), json={"bucket_slug": "app", "description": "again"})
        try:  # bounded: were the PUT to wait for the lock, it would wait until the release below
            refused = c.loop.run_until_complete(asyncio.wait_for(put, timeout=30))
        finally:
            other.release()
        assert env.db.writes.requests == requests, "the refused PUT never joined a write group"
    else:
        refused = c.put(c.p("/images"), json={"bucket_slug": "app", "description": "again"})
    assert error(refused, 6, 409) == "bucket 'app' already exists"
    assert ok(c.get(c.p("/images/app")))["bucket"]["description"] == "app images"


@pytest.mark.parametrize(("who", "status", "code"), [("nobody", 401, 16), ("viewer", 403, 7)])
def test_an_existing_bucket_is_not_reported_before_authentication(env: Env, who: str, status: int, code: int) -> None:
    c = env.client
    upsert_bucket(c, "app")
    token = "" if who == "nobody" else token_for_role(env, Role.VIEWER, "project")
    error(c.put(c.p("/images"), json={"bucket_slug": "app"}, token=token), code, status)


def test_update_bucket_reads_its_answer_after_the_commit_and_shows_the_latest_iteration(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    """UpdateBucket's answer needs the bucket's latest iteration with its builds and images: on SQLite's
    write queue that is read after the commit, with the writer lock free; the answer is the same."""
    c = env.client
    publish(c, "app", "f1", ["amazon-ebs.a", "amazon-ebs.b"])
    lock_free = _lock_is_free(env) if env.db.is_sqlite else None
    seen: list[bool] = []
    real_view = bucket_service.view

    def view(ctx: Any, bucket: Any) -> Any:
        seen.append(lock_free() if lock_free is not None else True)
        return real_view(ctx, bucket)

    monkeypatch.setattr(bucket_service, "view", view)
    updated = ok(c.patch(c.p("/images/app"), json={"description": "new words", "platforms": ["aws"]}))["bucket"]
    assert seen == [True]
    assert updated["description"] == "new words"
    assert updated["platforms"] == ["aws"]
    latest = ok(c.get(c.p("/images/app")))["bucket"]["latest_iteration"]
    assert updated["latest_iteration"] == latest
    assert len(latest["builds"]) == 2
    assert all(b["images"] for b in latest["builds"]), "each build with its images"
