"""A write's body is decoded before its transaction and its answer projected after the commit, so that
neither runs under SQLite's writer lock (Route.prepare, routing.Deferred); what a bad body is refused
with, and when, is as before: after authentication and authorization, with nothing changed."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import pytest
import sqlalchemy as sa

from packyard.domain import builds as build_service
from packyard.domain.models import Role
from packyard.http.hcp_2021 import builds as build_handlers
from packyard.http.hcp_2021 import wire
from packyard.storage.db import WriterLock
from tests.api.test_roles import token_for_role
from tests.conftest import Env
from tests.support.client import error, ok
from tests.support.packer import upsert_bucket


def _lock_is_free(env: Env) -> Callable[[], bool]:
    """Whether another process could take the writer lock now (another open file, which flock treats
    alike)."""
    path = sa.make_url(env.db.url).database
    assert path is not None
    other = WriterLock(os.path.abspath(path) + "-writer")

    def free() -> bool:
        if other.try_hold():
            other.release()
            return True
        return False

    return free


def test_a_builds_body_is_decoded_and_its_answer_projected_outside_the_writer_lock(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    if env.app.writes is None:
        pytest.skip("the writer lock is SQLite's")
    free = _lock_is_free(env)
    seen: dict[str, list[bool]] = {"decode": [], "domain": [], "project": []}

    def spy(name: str, real: Callable[..., Any]) -> Callable[..., Any]:
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            seen[name].append(free())
            return real(*args, **kwargs)

        return wrapped

    monkeypatch.setattr(build_handlers, "_changes", spy("decode", build_handlers._changes))
    monkeypatch.setattr(build_service, "update", spy("domain", build_service.update))
    monkeypatch.setattr(wire, "build", spy("project", wire.build))
    c = env.client
    upsert_bucket(c, "app")
    iteration = ok(c.post(c.p("/images/app/iterations"), json={"fingerprint": "f1"}))["iteration"]
    build = ok(
        c.post(c.p(f"/images/app/iterations/{iteration['id']}"), json={"build": {"component_type": "amazon-ebs.x"}})
    )["build"]
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
    upsert_bucket(c, "app")
    iteration = ok(c.post(c.p("/images/app/iterations"), json={"fingerprint": "f1"}))["iteration"]
    build = ok(
        c.post(c.p(f"/images/app/iterations/{iteration['id']}"), json={"build": {"component_type": "amazon-ebs.x"}})
    )["build"]
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
