"""Tenancy: a principal acts only in its own organization (and project, when project-scoped).

Two populated tenants: the default organization's default project, and a second organization with its
own project, populated by that organization's admin. A second project in the default organization gives
a project-scoped admin that shares the organization but not the project. Each of the 28 operations is
walked with ids and slugs that really exist in the target; the refusal is the same 403 code 7 with the
same bytes for existing and missing targets, names nothing of the target, and changes nothing.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import zstandard
from sqlalchemy.engine import Connection

from packyard.domain import tenants
from packyard.domain.models import Organization, Project, Role, Sbom, SbomFormat
from packyard.http.routing import Access
from packyard.ids import new_ulid
from packyard.storage.unit_of_work import SqlUnitOfWork
from tests.api.test_roles import dump, new_principal, populate
from tests.conftest import Env
from tests.contract.validator import SwaggerContract
from tests.support.client import ApiClient, error, ok
from tests.support.packer import publish

RM = "/resource-manager/2019-12-10"
MISSING_ULID = "01HZZZZZZZZZZZZZZZZZZZZZZZ"

# operation id -> (method, path under the project, body, query); {name} is filled from the target.
OPERATIONS: dict[str, tuple[str, str, Any, dict[str, str]]] = {
    "PackerService_CreateRegistry": ("PUT", "/registry", {"feature_tier": "PLUS"}, {}),
    "PackerService_GetRegistry": ("GET", "/registry", None, {}),
    "PackerService_UpdateRegistry": ("PATCH", "/registry", {"feature_tier": "STANDARD", "activate": True}, {}),
    "PackerService_DeleteRegistry": ("DELETE", "/registry", None, {"hard_delete": "true"}),
    "PackerService_CreateBucket": ("PUT", "/images", {"bucket_slug": "{bucket}", "description": "x"}, {}),
    "PackerService_ListBuckets": ("GET", "/images", None, {}),
    "PackerService_GetBucket": ("GET", "/images/{bucket}", None, {}),
    "PackerService_UpdateBucket": ("PATCH", "/images/{bucket}", {"description": "overwritten"}, {}),
    "PackerService_DeleteBucket": ("DELETE", "/images/{bucket}", None, {}),
    "PackerService_ListBucketAncestry": ("GET", "/images/{bucket}/ancestry", None, {"channel": "{channel}"}),
    "PackerService_CreateIteration": ("POST", "/images/{bucket}/iterations", {"fingerprint": "{fingerprint}"}, {}),
    "PackerService_ListIterations": ("GET", "/images/{bucket}/iterations", None, {}),
    "PackerService_GetIteration": ("GET", "/images/{bucket}/iteration", None, {"iteration_id": "{iteration}"}),
    "PackerService_UpdateIteration": (
        "PATCH",
        "/iterations/{iteration}",
        {"bucket_slug": "{bucket}", "revoke_in": "0s", "revocation_message": "revoked from outside"},
        {},
    ),
    "PackerService_DeleteIteration": ("DELETE", "/iterations/{iteration}", None, {"bucket_slug": "{bucket}"}),
    "PackerService_CreateBuild": (
        "POST",
        "/images/{bucket}/iterations/{open_iteration}",
        {"fingerprint": "{open_fingerprint}", "build": {"component_type": "outside.x"}},
        {},
    ),
    "PackerService_ListBuilds": ("GET", "/images/{bucket}/iterations/{iteration}/builds", None, {}),
    "PackerService_GetBuild": ("GET", "/builds/{build}", None, {}),
    "PackerService_UpdateBuild": ("PATCH", "/builds/{build}", {"updates": {"status": "FAILED"}}, {}),
    "PackerService_DeleteBuild": ("DELETE", "/builds/{build}", None, {}),
    "PackerService_CreateChannel": (
        "POST",
        "/images/{bucket}/channels",
        {"slug": "{channel}", "iteration_id": "{iteration}"},
        {},
    ),
    "PackerService_ListChannels": ("GET", "/images/{bucket}/channels", None, {}),
    "PackerService_GetChannel": ("GET", "/images/{bucket}/channels/{channel}", None, {}),
    "PackerService_UpdateChannel": (
        "PATCH",
        "/images/{bucket}/channels/{channel}",
        {"mask": "restriction", "restriction": "RESTRICTED"},
        {},
    ),
    "PackerService_DeleteChannel": ("DELETE", "/images/{bucket}/channels/{channel}", None, {}),
    "PackerService_ListChannelHistory": ("GET", "/images/{bucket}/channels/{channel}/history", None, {}),
    "PackerService_GetRegistryTFCRunTaskAPI": ("GET", "/runtasks/{task}", None, {}),
    "PackerService_RegenerateTFCRunTaskHmacKey": ("PATCH", "/runtasks/hmac", {}, {}),
}


@dataclass
class Target:
    """A populated project and the values that name real things in it."""

    org_id: str
    project_id: str
    client: ApiClient  # as the target's own admin
    values: dict[str, str]
    names: list[str] = field(default_factory=list)  # everything that must never show to an outsider

    def missing_values(self) -> dict[str, str]:
        return {
            "bucket": "no-such-bucket",
            "iteration": MISSING_ULID,
            "open_iteration": MISSING_ULID,
            "build": MISSING_ULID,
            "channel": "no-such-channel",
            "fingerprint": "no-such-fingerprint",
            "open_fingerprint": "no-such-fingerprint",
            "task": "no-such-task",
            "sbom": "no-such-sbom",
        }


@dataclass
class Tenancy:
    home: Target  # default organization, default project
    away: Target  # second organization, its project
    second_project: Project  # second project of the default organization
    away_org: Organization
    away_admin: tuple[str, str]  # org-scoped admin of the second organization
    second_project_admin: tuple[str, str]  # admin scoped to the second project of the default organization


def fill(value: Any, values: dict[str, str]) -> Any:
    if isinstance(value, str):
        return value.format(**values)
    if isinstance(value, dict):
        return {k: fill(v, values) for k, v in value.items()}
    return value


def target_names(c: ApiClient, org_name: str, project_name: str) -> list[str]:
    """Every id, slug and fingerprint the target holds (from its admin's dump), plus its names."""
    names = {c.org_id, c.project_id, org_name, project_name}
    everything = dump(c)
    names.add(everything["registry"]["registry"]["id"])
    for bucket in everything["buckets"]:
        names |= {bucket["id"], bucket["slug"]}
        for it in everything[f"{bucket['slug']}:iterations"]:
            names |= {it["id"], it["fingerprint"]}
            for build in everything[f"{bucket['slug']}:builds:{it['id']}"]:
                names.add(build["id"])
                names |= {image["id"] for image in build["images"]}
                names |= {image["image_id"] for image in build["images"]}
        for ch in everything[f"{bucket['slug']}:channels"]:
            names |= {ch["id"], ch["slug"]}
    names.discard("latest")  # every bucket's managed channel: not a name of this target
    return sorted(n for n in names if n)


def add_project(env: Env, org_id: str, name: str) -> Project:
    def work(conn: Connection) -> Project:
        return tenants.create_project(SqlUnitOfWork(conn), org_id, name, env.clock.now())

    return env.db.run(work, write=True)


def add_sbom(env: Env, project_id: str, build_id: str, name: str) -> None:
    """An SBOM on a build that is already DONE (uploads take only running builds), straight into storage."""
    raw = b'{"bomFormat":"CycloneDX","specVersion":"1.5","components":[{"type":"library","name":"openssl"}]}'
    document = zstandard.ZstdCompressor().compress(raw)
    sbom = Sbom(new_ulid(), build_id, project_id, name, SbomFormat.CYCLONEDX, len(raw), env.clock.now(), document)
    env.db.run_write(lambda conn: SqlUnitOfWork(conn).sboms.add(sbom), project_id)


def add_organization(env: Env, name: str) -> Organization:
    def work(conn: Connection) -> Organization:
        return tenants.create_organization(SqlUnitOfWork(conn), name, env.clock.now())

    return env.db.run(work, write=True)


@pytest.fixture
def tenancy(env: Env, contracts: list[SwaggerContract]) -> Iterator[Tenancy]:
    home_world = populate(env.client)
    home_open = home_world.spare
    second = add_project(env, env.init.organization_id, "second-project")
    away_org = add_organization(env, "away-organization")
    away_project = add_project(env, away_org.id, "away-project")
    away_admin = new_principal(env, Role.ADMIN, organization_id=away_org.id, name="away-admin")
    second_admin = new_principal(env, Role.ADMIN, project_id=second.id, name="second-admin")

    away_client = ApiClient(env.app, contracts, env.client.loop, away_org.id, away_project.id)
    away_client.token = env.token_for(*away_admin)
    try:
        v1 = publish(away_client, "away-base", "away-b1", ["amazon-ebs.away"])
        ch = ok(
            away_client.post(
                away_client.p("/images/away-base/channels"), json={"slug": "away-prod", "iteration_id": v1["id"]}
            )
        )["channel"]
        publish(
            away_client,
            "away-child",
            "away-c1",
            ["amazon-ebs.away"],
            source={"source_iteration_id": v1["id"], "source_channel_id": ch["id"]},
        )
        away_open = ok(
            away_client.post(away_client.p("/images/away-base/iterations"), json={"fingerprint": "away-open"})
        )["iteration"]
        add_sbom(env, env.init.project_id, home_world.v1["builds"][0]["id"], "home-sbom")
        add_sbom(env, away_project.id, v1["builds"][0]["id"], "away-sbom")
        home = Target(
            env.init.organization_id,
            env.init.project_id,
            env.client,
            {
                "bucket": "base",
                "iteration": home_world.v1["id"],
                "open_iteration": home_open["id"],
                "build": home_world.v1["builds"][0]["id"],
                "channel": "prod",
                "fingerprint": "b1",
                "open_fingerprint": "spare",
                "task": "validation",
                "sbom": "home-sbom",
            },
        )
        away = Target(
            away_org.id,
            away_project.id,
            away_client,
            {
                "bucket": "away-base",
                "iteration": v1["id"],
                "open_iteration": away_open["id"],
                "build": v1["builds"][0]["id"],
                "channel": "away-prod",
                "fingerprint": "away-b1",
                "open_fingerprint": "away-open",
                "task": "validation",
                "sbom": "away-sbom",
            },
        )
        home.names = target_names(env.client, "default", "default")
        away.names = target_names(away_client, away_org.name, away_project.name)
        yield Tenancy(home, away, second, away_org, away_admin, second_admin)
    finally:
        away_client.close()


def request(c: ApiClient, org_id: str, project_id: str, op: str, values: dict[str, str], token: str) -> httpx.Response:
    method, path, body, query = OPERATIONS[op]
    prefix = f"/packer/2021-04-30/organizations/{org_id}/projects/{project_id}"
    return c.request(
        method, prefix + fill(path, values), json=fill(body, values), params=fill(query, values), token=token
    )


def walk_as_outsider(env: Env, target: Target, token: str) -> None:
    """All 28 operations against the target, with real and with missing names; each refused identically."""
    c = env.client
    real = target.values
    missing = target.missing_values()
    other_org, other_project = str(uuid.uuid4()), str(uuid.uuid4())
    variants = [
        (target.org_id, target.project_id, real),  # everything exists
        (target.org_id, target.project_id, missing),  # the project exists, the objects don't
        (target.org_id, other_project, real),  # the organization exists, the project doesn't
        (other_org, target.project_id, real),  # the project exists, but not in this organization
        (other_org, other_project, missing),  # nothing exists
    ]
    for op in OPERATIONS:
        answers = [request(c, org, project, op, values, token) for org, project, values in variants]
        first = answers[0]
        message = error(first, 7, 403)
        for name in target.names:
            assert name not in first.text, (op, name, first.text)
        for other in answers[1:]:
            assert (other.status_code, other.content) == (first.status_code, first.content), (op, other.url)
        assert "organization or project" in message


def test_walk_covers_all_28_operations(env: Env, contracts: list[SwaggerContract]) -> None:
    project_ops = {
        r.operation_id for r in env.app.router.routes if r.access is Access.PROJECT and r.api == "packer/2021-04-30"
    }
    assert set(OPERATIONS) == set(contracts[0].operations) == project_ops
    assert len(OPERATIONS) == 28


@pytest.mark.parametrize("walker", ["other-organization-admin", "other-project-admin"])
def test_outsiders_are_refused_everywhere_in_the_default_project(env: Env, tenancy: Tenancy, walker: str) -> None:
    credentials = tenancy.away_admin if walker == "other-organization-admin" else tenancy.second_project_admin
    token = env.token_for(*credentials)
    home = tenancy.home
    before = dump(home.client)
    walk_as_outsider(env, home, token)
    assert dump(home.client) == before
    # The refusals were about the target, not a broken token: the walker works in its own project.
    own_org, own_project = (
        (tenancy.away.org_id, tenancy.away.project_id)
        if walker == "other-organization-admin"
        else (env.init.organization_id, tenancy.second_project.id)
    )
    own = f"/packer/2021-04-30/organizations/{own_org}/projects/{own_project}/registry"
    assert ok(env.client.get(own, token=token))["registry"]["location"]["project_id"] == own_project


@pytest.mark.parametrize("walker", ["default-organization-admin", "default-project-admin", "other-project-admin"])
def test_outsiders_are_refused_everywhere_in_the_other_organization(env: Env, tenancy: Tenancy, walker: str) -> None:
    if walker == "default-organization-admin":
        token = env.client.token
    elif walker == "default-project-admin":
        token = env.token_for(*new_principal(env, Role.ADMIN, project_id=env.init.project_id))
    else:
        token = env.token_for(*tenancy.second_project_admin)
    away = tenancy.away
    before = dump(away.client)
    walk_as_outsider(env, away, token)
    assert dump(away.client) == before


def test_the_two_organizations_data_stay_apart(env: Env, tenancy: Tenancy) -> None:
    home, away = tenancy.home, tenancy.away
    home_slugs = {b["slug"] for b in ok(home.client.get(home.client.p("/images")))["buckets"]}
    away_slugs = {b["slug"] for b in ok(away.client.get(away.client.p("/images")))["buckets"]}
    assert home_slugs == {"base", "child", "sibling", "doomed"}
    assert away_slugs == {"away-base", "away-child"}
    # The second project of the default organization has its own, empty registry.
    second = tenancy.second_project
    second_admin = env.token_for(*tenancy.second_project_admin)
    prefix = f"/packer/2021-04-30/organizations/{env.init.organization_id}/projects/{second.id}"
    assert ok(env.client.get(prefix + "/images", token=second_admin))["buckets"] == []
    assert ok(env.client.get(prefix + "/images"))["buckets"] == []
    assert ok(env.client.get(prefix + "/registry"))["registry"]["location"]["project_id"] == second.id
    # The away organization's ancestry names its own channel only.
    relations = ok(away.client.get(away.client.p("/images/away-child/ancestry")))["relations"]
    assert [r["parent"]["channel"] for r in relations] == ["away-prod"]


# --------------------------------------------------------------------------- resource manager


@dataclass
class Viewpoint:
    name: str
    token: str
    org_id: str
    projects: set[str]  # the projects it must see
    foreign_orgs: list[str]
    foreign_projects: list[str]


def viewpoints(env: Env, tenancy: Tenancy) -> list[Viewpoint]:
    home_org, away_org = env.init.organization_id, tenancy.away.org_id
    p1, p2, q1 = env.init.project_id, tenancy.second_project.id, tenancy.away.project_id
    viewer = new_principal(env, Role.VIEWER, project_id=p1)
    return [
        Viewpoint("default-organization-admin", env.client.token, home_org, {p1, p2}, [away_org], [q1]),
        Viewpoint(
            "second-project-admin", env.token_for(*tenancy.second_project_admin), home_org, {p2}, [away_org], [p1, q1]
        ),
        Viewpoint("default-project-viewer", env.token_for(*viewer), home_org, {p1}, [away_org], [p2, q1]),
        Viewpoint("other-organization-admin", env.token_for(*tenancy.away_admin), away_org, {q1}, [home_org], [p1, p2]),
    ]


def assert_project(project: dict[str, Any], org_id: str) -> None:
    assert project["parent"] == {"type": "ORGANIZATION", "id": org_id}
    assert project["state"] == "ACTIVE"
    assert project["created_at"].endswith("Z")
    uuid.UUID(project["id"])


def test_resource_manager_shows_each_principal_only_its_own_tenant(env: Env, tenancy: Tenancy) -> None:
    c = env.client
    for view in viewpoints(env, tenancy):
        orgs = ok(c.get(f"{RM}/organizations", token=view.token))
        assert [o["id"] for o in orgs["organizations"]] == [view.org_id], view.name
        assert orgs["organizations"][0]["state"] == "ACTIVE"
        assert "pagination" in orgs
        assert ok(c.get(f"{RM}/organizations/{view.org_id}", token=view.token))["organization"]["id"] == view.org_id

        listed = ok(
            c.get(f"{RM}/projects", params={"scope.type": "ORGANIZATION", "scope.id": view.org_id}, token=view.token)
        )
        assert "pagination" in listed, view.name
        assert not listed["pagination"].get("next_page_token")
        assert {p["id"] for p in listed["projects"]} == view.projects, view.name
        for project in listed["projects"]:
            assert_project(project, view.org_id)
            got = ok(c.get(f"{RM}/projects/{project['id']}", token=view.token))["project"]
            assert got == project

        refusals: list[httpx.Response] = []
        for org_id in [*view.foreign_orgs, str(uuid.uuid4())]:
            refusals.append(c.get(f"{RM}/organizations/{org_id}", token=view.token))
            refusals.append(
                c.get(f"{RM}/projects", params={"scope.type": "ORGANIZATION", "scope.id": org_id}, token=view.token)
            )
        for project_id in [*view.foreign_projects, str(uuid.uuid4())]:
            refusals.append(c.get(f"{RM}/projects/{project_id}", token=view.token))
        for response in refusals:
            error(response, 7, 403)
            assert (response.status_code, response.content) == (refusals[0].status_code, refusals[0].content)
            for name in [*view.foreign_orgs, *view.foreign_projects, "away-organization", "away-project"]:
                assert name not in response.text, (view.name, name)

        bad_scope = c.get(f"{RM}/projects", params={"scope.type": "PROJECT", "scope.id": view.org_id}, token=view.token)
        error(bad_scope, 3, 400)


def test_deleted_principal_token_stops_at_once(env: Env, tenancy: Tenancy) -> None:
    c = env.client
    away = tenancy.away
    client_id, secret = new_principal(env, Role.CONTRIBUTOR, organization_id=away.org_id, name="short-lived")
    token = env.token_for(client_id, secret)
    registry = f"/packer/2021-04-30/organizations/{away.org_id}/projects/{away.project_id}/registry"
    images = f"/packer/2021-04-30/organizations/{away.org_id}/projects/{away.project_id}/images"
    paths = [
        registry,
        images,
        f"{RM}/organizations",
        f"{RM}/organizations/{away.org_id}",
        f"{RM}/projects?scope.type=ORGANIZATION&scope.id={away.org_id}",
        f"{RM}/projects/{away.project_id}",
    ]
    for path in paths:
        ok(c.get(path, token=token))

    def delete(conn: Connection) -> None:
        uow = SqlUnitOfWork(conn)
        principal = uow.principals.get_by_client_id(client_id)
        assert principal is not None
        uow.principals.delete(principal.id)

    env.db.run(delete, write=True)
    for path in paths:
        error(c.get(path, token=token), 16, 401)
    refused = c.post(
        "/oauth2/token",
        content=f"grant_type=client_credentials&client_id={client_id}&client_secret={secret}".encode(),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        token="",
    )
    assert refused.status_code == 401
    assert refused.json()["error"] == "invalid_client"
    # Others in the same organization are unaffected.
    ok(away.client.get(registry))


def test_a_foreign_build_naming_our_iteration_as_its_source_shows_nowhere(
    env: Env, tenancy: Tenancy, contracts: list[SwaggerContract]
) -> None:
    """Ids are not secrets: another tenant may name our iteration and channel as its build's source. That
    must not put its bucket into our ancestry, nor ours into its, nor carry our revocations to it."""
    home, away = tenancy.home, tenancy.away
    v1, prod = home.values["iteration"], home.values["channel"]
    prod_id = ok(home.client.get(home.client.p(f"/images/base/channels/{prod}")))["channel"]["id"]
    leaf = ok(home.client.get(home.client.p("/images/child/iteration"), params={"fingerprint": "c1"}))["iteration"]
    assert "has_descendants" not in leaf
    before = dump(home.client)
    intruder = publish(
        away.client,
        "intruder",
        "i1",
        ["amazon-ebs.i"],
        source={"source_iteration_id": v1, "source_channel_id": prod_id},
    )
    publish(away.client, "intruder-leaf", "l1", ["amazon-ebs.l"], source={"source_iteration_id": leaf["id"]})
    # The same happens from another project of our own organization.
    second = ApiClient(env.app, contracts, env.client.loop, env.init.organization_id, tenancy.second_project.id)
    second.token = env.token_for(*tenancy.second_project_admin)
    try:
        neighbour = publish(
            second,
            "neighbour",
            "n1",
            ["amazon-ebs.n"],
            source={"source_iteration_id": v1, "source_channel_id": prod_id},
        )
        assert ok(second.get(second.p("/images/neighbour/ancestry")))["relations"] == []
    finally:
        second.close()

    # Our childless iteration still has no descendants of ours.
    again = ok(home.client.get(home.client.p("/images/child/iteration"), params={"fingerprint": "c1"}))["iteration"]
    assert "has_descendants" not in again
    assert dump(home.client) == before
    children = ok(home.client.get(home.client.p("/images/base/ancestry"), params={"type": "children"}))["relations"]
    assert {r["child"]["bucket_slug"] for r in children} == {"child", "sibling"}
    for foreign in (intruder, neighbour):
        assert foreign["id"] not in str(children)
    assert ok(away.client.get(away.client.p("/images/intruder/ancestry")))["relations"] == []

    # Revoking our iteration (with its descendants) reaches our children only.
    ok(home.client.patch(home.client.p(f"/iterations/{v1}"), json={"revoke_in": "0s", "revocation_message": "bad"}))
    ours = ok(home.client.get(home.client.p("/images/child/iteration"), params={"fingerprint": "c1"}))["iteration"]
    assert ours["revoke_at"]
    theirs = ok(away.client.get(away.client.p("/images/intruder/iteration"), params={"fingerprint": "i1"}))
    assert "revoke_at" not in theirs["iteration"]
