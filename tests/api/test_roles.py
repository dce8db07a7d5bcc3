"""Roles: viewer reads, contributor also writes, admin also manages the registry and the run-task key.

Every role is tried scoped to the organization and scoped to the project. A refused operation answers
403 with code 7 and leaves everything as it was; restricted channels do not exist for viewers, not even
through ancestry.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from packyard.auth.service import create_principal
from packyard.domain.models import Role
from packyard.storage import schema
from packyard.storage.unit_of_work import SqlUnitOfWork
from tests.conftest import Env
from tests.support.client import ApiClient, error, ok
from tests.support.packer import publish, upsert_bucket

SCOPES = ["organization", "project"]
ROLE_SCOPES = [pytest.param(role, scope, id=f"{role.value}-{scope}") for role in Role for scope in SCOPES]


# --------------------------------------------------------------------------- helpers (also used by test_tenancy)


def new_principal(
    env: Env, role: Role, *, organization_id: str | None = None, project_id: str | None = None, name: str = "test"
) -> tuple[str, str]:
    """A principal created through the domain service; returns (client_id, client_secret)."""

    def work(conn: Connection) -> tuple[str, str]:
        new = create_principal(
            SqlUnitOfWork(conn),
            organization_id=organization_id or env.init.organization_id,
            project_id=project_id,
            role=role,
            name=name,
            now=env.clock.now(),
        )
        return new.principal.client_id, new.client_secret

    return env.db.run(work, write=True)


def token_for_role(env: Env, role: Role, scope: str) -> str:
    project_id = env.init.project_id if scope == "project" else None
    client_id, secret = new_principal(env, role, project_id=project_id, name=f"{role.value}-{scope}")
    return env.token_for(client_id, secret)


def pages(c: ApiClient, path: str, key: str, token: str | None = None, **params: Any) -> list[Any]:
    """Every item of a paginated list, following next_page_token."""
    items: list[Any] = []
    query = dict(params)
    while True:
        body = ok(c.get(c.p(path), params=query, token=token))
        items += body[key]
        following = (body.get("pagination") or {}).get("next_page_token")
        if not following:
            return items
        query["pagination.next_page_token"] = following


def dump(c: ApiClient, token: str | None = None, *, run_task: bool = True) -> dict[str, Any]:
    """Everything a project holds, as the API shows it: registry, buckets, iterations, builds, channels,
    channel histories, ancestry and (for admins) the run-task URL and key."""
    out: dict[str, Any] = {"registry": ok(c.get(c.p("/registry"), token=token))}
    if run_task:
        out["runtask"] = ok(c.get(c.p("/runtasks/validation"), token=token))
    buckets = pages(c, "/images", "buckets", token)
    out["buckets"] = buckets
    for bucket in buckets:
        slug = bucket["slug"]
        out[f"{slug}:get"] = ok(c.get(c.p(f"/images/{slug}"), token=token))
        out[f"{slug}:ancestry"] = ok(c.get(c.p(f"/images/{slug}/ancestry"), token=token))
        iterations = pages(c, f"/images/{slug}/iterations", "iterations", token)
        out[f"{slug}:iterations"] = iterations
        for it in iterations:
            got = ok(c.get(c.p(f"/images/{slug}/iteration"), params={"iteration_id": it["id"]}, token=token))
            out[f"{slug}:iteration:{it['id']}"] = got
            builds = pages(c, f"/images/{slug}/iterations/{it['id']}/builds", "builds", token)
            out[f"{slug}:builds:{it['id']}"] = builds
            for build in builds:
                out[f"build:{build['id']}"] = ok(c.get(c.p(f"/builds/{build['id']}"), token=token))
        channels = ok(c.get(c.p(f"/images/{slug}/channels"), token=token))["channels"]
        out[f"{slug}:channels"] = channels
        for ch in channels:
            out[f"{slug}:channel:{ch['slug']}"] = ok(c.get(c.p(f"/images/{slug}/channels/{ch['slug']}"), token=token))
            out[f"{slug}:history:{ch['slug']}"] = pages(
                c, f"/images/{slug}/channels/{ch['slug']}/history", "history", token
            )
    return out


def stored_hmac_key(env: Env, project_id: str | None = None) -> Any:
    def work(conn: Connection) -> Any:
        query = sa.select(schema.registry.c.hmac_key).where(
            schema.registry.c.project_id == (project_id or env.init.project_id)
        )
        return conn.execute(query).scalar_one()

    return env.db.run(work, write=False)


@dataclass
class World:
    v1: dict[str, Any]
    spare: dict[str, Any]
    spare_build: dict[str, Any]
    prod: dict[str, Any]
    secret: dict[str, Any]
    child: dict[str, Any]
    sibling: dict[str, Any]


def populate(c: ApiClient) -> World:
    """base v1 (complete) and spare (incomplete, one build); channels prod and restricted secret on v1;
    child built from base v1 through secret, sibling through prod; an empty bucket doomed."""
    v1 = publish(c, "base", "b1", ["amazon-ebs.a"])
    assert v1["complete"] is True
    spare = ok(c.post(c.p("/images/base/iterations"), json={"fingerprint": "spare", "template_type": "HCL2"}))
    spare = spare["iteration"]
    spare_build = ok(c.post(c.p(f"/images/base/iterations/{spare['id']}"), json={"build": {"component_type": "x.y"}}))
    prod = ok(c.post(c.p("/images/base/channels"), json={"slug": "prod", "iteration_id": v1["id"]}))["channel"]
    secret = ok(
        c.post(
            c.p("/images/base/channels"),
            json={"slug": "secret", "iteration_id": v1["id"], "restriction": "RESTRICTED"},
        )
    )["channel"]
    assert secret["restricted"] is True
    child = publish(
        c, "child", "c1", ["amazon-ebs.a"], source={"source_iteration_id": v1["id"], "source_channel_id": secret["id"]}
    )
    sibling = publish(
        c, "sibling", "s1", ["amazon-ebs.a"], source={"source_iteration_id": v1["id"], "source_channel_id": prod["id"]}
    )
    upsert_bucket(c, "doomed")
    return World(v1, spare, spare_build["build"], prod, secret, child, sibling)


@pytest.fixture
def world(env: Env) -> World:
    return populate(env.client)


# --------------------------------------------------------------------------- reads


@pytest.mark.parametrize(("role", "scope"), ROLE_SCOPES)
def test_reads_are_allowed_for_every_role(env: Env, world: World, role: Role, scope: str) -> None:
    c = env.client
    token = token_for_role(env, role, scope)
    v1 = world.v1
    build_id = v1["builds"][0]["id"]
    reads: list[tuple[str, dict[str, Any]]] = [
        ("/registry", {}),
        ("/images", {}),
        ("/images/sibling", {}),
        ("/images/doomed", {}),
        ("/images/base/iterations", {}),
        ("/images/base/iteration", {"iteration_id": v1["id"]}),
        ("/images/base/iteration", {"fingerprint": "spare"}),
        ("/images/base/iteration", {"incremental_version": 1}),
        (f"/images/base/iterations/{v1['id']}/builds", {}),
        (f"/builds/{build_id}", {}),
        (f"/builds/{world.spare_build['id']}", {}),
        ("/images/sibling/channels", {}),
        ("/images/base/channels/prod", {}),
        ("/images/base/channels/latest", {}),
        ("/images/base/channels/prod/history", {}),
        ("/images/sibling/ancestry", {}),
    ]
    for path, params in reads:
        mine = ok(c.get(c.p(path), params=params, token=token))
        # The same answer the organization's admin gets: nothing in these reads is restricted.
        assert mine == ok(c.get(c.p(path), params=params)), path
    # The bucket with a restricted channel and its children: readable too.
    base = ok(c.get(c.p("/images/base"), token=token))["bucket"]
    assert base["slug"] == "base"
    assert base["latest_iteration"]["id"] == v1["id"]
    listed = ok(c.get(c.p("/images/base/channels"), token=token))["channels"]
    assert {"latest", "prod"} <= {ch["slug"] for ch in listed}
    ancestry = ok(c.get(c.p("/images/child/ancestry"), token=token))["relations"]
    assert [r["parent"]["iteration_id"] for r in ancestry] == [v1["id"]]


# --------------------------------------------------------------------------- writes


def write_attempts(c: ApiClient, world: World, token: str) -> list[tuple[str, Callable[[], httpx.Response]]]:
    """The twelve write operations, each against objects that exist, in an order that succeeds."""
    v1, spare, spare_build = world.v1, world.spare, world.spare_build
    return [
        ("CreateBucket", lambda: c.put(c.p("/images"), json={"bucket_slug": "new-bucket"}, token=token)),
        (
            "UpdateBucket",
            lambda: c.patch(c.p("/images/base"), json={"description": "changed", "labels": {"t": "x"}}, token=token),
        ),
        (
            "CreateIteration",
            lambda: c.post(c.p("/images/base/iterations"), json={"fingerprint": "b2"}, token=token),
        ),
        (
            "CreateBuild",
            lambda: c.post(
                c.p(f"/images/base/iterations/{spare['id']}"),
                json={"build": {"component_type": "new.c"}},
                token=token,
            ),
        ),
        (
            "UpdateBuild",
            lambda: c.patch(c.p(f"/builds/{spare_build['id']}"), json={"updates": {"status": "RUNNING"}}, token=token),
        ),
        (
            "CreateChannel",
            lambda: c.post(
                c.p("/images/base/channels"), json={"slug": "new-ch", "iteration_id": v1["id"]}, token=token
            ),
        ),
        (
            "UpdateChannel",
            lambda: c.patch(
                c.p("/images/base/channels/prod"),
                json={"mask": "restriction", "restriction": "RESTRICTED"},
                token=token,
            ),
        ),
        (
            "UpdateIteration",
            lambda: c.patch(
                c.p(f"/iterations/{v1['id']}"),
                json={"bucket_slug": "base", "revoke_in": "1d", "revocation_message": "bad"},
                token=token,
            ),
        ),
        ("DeleteChannel", lambda: c.delete(c.p("/images/base/channels/prod"), token=token)),
        ("DeleteBuild", lambda: c.delete(c.p(f"/builds/{spare_build['id']}"), token=token)),
        ("DeleteIteration", lambda: c.delete(c.p(f"/iterations/{spare['id']}"), token=token)),
        ("DeleteBucket", lambda: c.delete(c.p("/images/doomed"), token=token)),
    ]


@pytest.mark.parametrize("scope", SCOPES)
def test_viewer_writes_are_refused_and_change_nothing(env: Env, world: World, scope: str) -> None:
    c = env.client
    token = token_for_role(env, Role.VIEWER, scope)
    before = dump(c)
    attempts = write_attempts(c, world, token)
    assert len(attempts) == 12
    for name, attempt in attempts:
        message = error(attempt(), 7, 403)
        assert "viewer" in message, (name, message)
        assert name in message, (name, message)
    assert dump(c) == before
    # A refused write is not a broken token: the same viewer still reads.
    assert ok(c.get(c.p("/images/base/channels/prod"), token=token))["channel"]["iteration"]["id"] == world.v1["id"]


@pytest.mark.parametrize("role", [Role.CONTRIBUTOR, Role.ADMIN])
@pytest.mark.parametrize("scope", SCOPES)
def test_contributor_and_admin_writes_take_effect(env: Env, world: World, role: Role, scope: str) -> None:
    c = env.client
    token = token_for_role(env, role, scope)
    for name, attempt in write_attempts(c, world, token):
        response = attempt()
        assert response.status_code == 200, (name, response.text)
    # Every write is visible to the organization's admin.
    assert ok(c.get(c.p("/images/new-bucket")))["bucket"]["slug"] == "new-bucket"
    base = ok(c.get(c.p("/images/base")))["bucket"]
    assert (base["description"], base["labels"]) == ("changed", {"t": "x"})
    b2 = ok(c.get(c.p("/images/base/iteration"), params={"fingerprint": "b2"}))["iteration"]
    assert b2["fingerprint"] == "b2"
    assert ok(c.get(c.p("/images/base/channels/new-ch")))["channel"]["iteration"]["id"] == world.v1["id"]
    error(c.get(c.p("/images/base/channels/prod")), 5, 404)
    v1 = ok(c.get(c.p("/images/base/iteration"), params={"iteration_id": world.v1["id"]}))["iteration"]
    assert v1["revoke_at"]
    assert v1["revocation_message"] == "bad"
    error(c.get(c.p(f"/builds/{world.spare_build['id']}")), 5, 404)
    error(c.get(c.p("/images/base/iteration"), params={"iteration_id": world.spare["id"]}), 10, 409)
    error(c.get(c.p("/images/doomed")), 5, 404)


# --------------------------------------------------------------------------- registry management and run-task key


@pytest.mark.parametrize("role", [Role.CONTRIBUTOR, Role.VIEWER])
@pytest.mark.parametrize("scope", SCOPES)
def test_registry_management_and_run_task_key_are_admin_only(env: Env, role: Role, scope: str) -> None:
    c = env.client
    token = token_for_role(env, role, scope)
    registry = ok(c.get(c.p("/registry")))

    def refused(response: httpx.Response, operation: str) -> None:
        message = error(response, 7, 403)
        assert role.value in message
        assert operation in message

    # Refused before the key exists: the GET that makes the key on first use must not make it.
    refused(c.get(c.p("/runtasks/validation"), token=token), "GetRegistryTFCRunTaskAPI")
    assert stored_hmac_key(env) is None
    key = ok(c.get(c.p("/runtasks/validation")))
    sealed = stored_hmac_key(env)
    assert sealed

    refused(c.get(c.p("/runtasks/validation"), token=token), "GetRegistryTFCRunTaskAPI")
    refused(c.patch(c.p("/runtasks/hmac"), json={}, token=token), "RegenerateTFCRunTaskHmacKey")
    refused(c.patch(c.p("/registry"), json={"feature_tier": "STANDARD"}, token=token), "UpdateRegistry")
    refused(c.delete(c.p("/registry"), token=token), "DeleteRegistry")
    refused(c.delete(c.p("/registry"), params={"hard_delete": "true"}, token=token), "DeleteRegistry")
    refused(c.put(c.p("/registry"), json={}, token=token), "CreateRegistry")
    assert ok(c.get(c.p("/registry"))) == registry
    assert ok(c.get(c.p("/runtasks/validation"))) == key
    assert stored_hmac_key(env) == sealed

    # A deactivated registry stays deactivated: CreateRegistry would reactivate it.
    ok(c.delete(c.p("/registry")))
    deactivated = ok(c.get(c.p("/registry")))
    assert deactivated["registry"]["config"].get("activated", False) is False
    refused(c.put(c.p("/registry"), json={}, token=token), "CreateRegistry")
    refused(c.patch(c.p("/registry"), json={"activate": True}, token=token), "UpdateRegistry")
    assert ok(c.get(c.p("/registry"))) == deactivated
    # Reading the registry is not management.
    assert ok(c.get(c.p("/registry"), token=token)) == deactivated


@pytest.mark.parametrize("scope", SCOPES)
def test_admins_manage_the_registry_and_run_task_key(env: Env, scope: str) -> None:
    c = env.client
    token = token_for_role(env, Role.ADMIN, scope)
    first = ok(c.get(c.p("/runtasks/validation"), token=token))
    assert first["hmac_key"]
    assert ok(c.get(c.p("/runtasks/validation"))) == first
    regenerated = ok(c.patch(c.p("/runtasks/hmac"), json={}, token=token))["hmac_key"]
    assert regenerated != first["hmac_key"]
    assert ok(c.get(c.p("/runtasks/validation")))["hmac_key"] == regenerated

    updated = ok(c.patch(c.p("/registry"), json={"feature_tier": "STANDARD"}, token=token))["registry"]
    assert updated["config"]["feature_tier"] == "STANDARD"
    ok(c.delete(c.p("/registry"), token=token))
    assert ok(c.get(c.p("/registry")))["registry"]["config"].get("activated", False) is False
    ok(c.put(c.p("/registry"), json={}, token=token))
    assert ok(c.get(c.p("/registry")))["registry"]["config"]["activated"] is True


# --------------------------------------------------------------------------- restricted channels


def viewer_views(c: ApiClient, token: str) -> list[httpx.Response]:
    return [
        c.get(c.p("/images/base/channels/secret"), token=token),
        c.get(c.p("/images/base/channels/secret/history"), token=token),
        c.get(c.p("/images/base/channels"), token=token),
        c.get(c.p("/images/base/ancestry"), token=token),
        c.get(c.p("/images/base/ancestry"), params={"channel": "secret"}, token=token),
        c.get(c.p("/images/child/ancestry"), token=token),
        c.get(c.p("/images/child/ancestry"), params={"type": "parents"}, token=token),
        c.get(c.p("/images/base"), token=token),
        c.get(c.p("/images/child"), token=token),
    ]


@pytest.mark.parametrize("scope", SCOPES)
def test_restricted_channel_does_not_exist_for_viewers(env: Env, world: World, scope: str) -> None:
    c = env.client
    token = token_for_role(env, Role.VIEWER, scope)

    message = error(c.get(c.p("/images/base/channels/secret"), token=token), 5, 404)
    assert message == error(c.get(c.p("/images/base/channels/secret-not-here"), token=token), 5, 404).replace(
        "secret-not-here", "secret"
    )
    error(c.get(c.p("/images/base/channels/secret/history"), token=token), 5, 404)

    listed = ok(c.get(c.p("/images/base/channels"), token=token))["channels"]
    assert {ch["slug"] for ch in listed} == {"latest", "prod"}
    assert world.secret["id"] not in str(listed)

    # The child was built from base v1 through the restricted channel: the relation stays, the channel
    # and where it points do not show.
    relations = ok(c.get(c.p("/images/child/ancestry"), token=token))["relations"]
    assert len(relations) == 1
    parent = relations[0]["parent"]
    assert parent["iteration_id"] == world.v1["id"]
    assert parent.get("channel", "") == ""
    assert "channel_iteration" not in parent
    children = ok(c.get(c.p("/images/base/ancestry"), params={"type": "children"}, token=token))["relations"]
    by_child = {r["child"]["bucket_slug"]: r["parent"] for r in children}
    assert set(by_child) == {"child", "sibling"}
    assert by_child["child"].get("channel", "") == ""
    assert "channel_iteration" not in by_child["child"]
    # The unrestricted channel shows as usual.
    assert by_child["sibling"]["channel"] == "prod"
    assert by_child["sibling"]["channel_iteration"]["id"] == world.v1["id"]

    # Everything a viewer sees is exactly what it sees once the restricted channel really is gone.
    before = viewer_views(c, token)
    ok(c.delete(c.p("/images/base/channels/secret")))
    after = viewer_views(c, token)
    for seen, gone in zip(before, after, strict=True):
        assert (seen.status_code, seen.content) == (gone.status_code, gone.content), seen.url


@pytest.mark.parametrize("role", [Role.CONTRIBUTOR, Role.ADMIN])
@pytest.mark.parametrize("scope", SCOPES)
def test_contributors_and_admins_see_restricted_channels(env: Env, world: World, role: Role, scope: str) -> None:
    c = env.client
    token = token_for_role(env, role, scope)
    got = ok(c.get(c.p("/images/base/channels/secret"), token=token))["channel"]
    assert got["id"] == world.secret["id"]
    assert got["restricted"] is True
    assert got["iteration"]["id"] == world.v1["id"]

    listed = ok(c.get(c.p("/images/base/channels"), token=token))["channels"]
    assert {ch["slug"] for ch in listed} == {"latest", "prod", "secret"}

    history = ok(c.get(c.p("/images/base/channels/secret/history"), token=token))
    assert history["count"] == 1
    assert [e["iteration"]["id"] for e in history["history"]] == [world.v1["id"]]

    relations = ok(c.get(c.p("/images/child/ancestry"), token=token))["relations"]
    assert len(relations) == 1
    assert relations[0]["status"] == "UP_TO_DATE"
    assert relations[0]["parent"]["channel"] == "secret"
    assert relations[0]["parent"]["channel_iteration"]["id"] == world.v1["id"]
    through = ok(c.get(c.p("/images/base/ancestry"), params={"channel": "secret"}, token=token))["relations"]
    assert [r["child"]["bucket_slug"] for r in through] == ["child"]


def test_restricting_latest_hides_it_from_viewers_only(env: Env, world: World) -> None:
    c = env.client
    viewer = token_for_role(env, Role.VIEWER, "project")
    contributor = token_for_role(env, Role.CONTRIBUTOR, "project")
    assert ok(c.get(c.p("/images/sibling/channels/latest"), token=viewer))["channel"]["managed"] is True
    # A contributor may restrict it (restriction is a write), a viewer may not.
    error(
        c.patch(
            c.p("/images/sibling/channels/latest"),
            json={"mask": "restriction", "restriction": "RESTRICTED"},
            token=viewer,
        ),
        7,
        403,
    )
    ok(
        c.patch(
            c.p("/images/sibling/channels/latest"),
            json={"mask": "restriction", "restriction": "RESTRICTED"},
            token=contributor,
        )
    )
    error(c.get(c.p("/images/sibling/channels/latest"), token=viewer), 5, 404)
    assert ok(c.get(c.p("/images/sibling/channels"), token=viewer))["channels"] == []
    assert ok(c.get(c.p("/images/sibling/channels/latest"), token=contributor))["channel"]["restricted"] is True
