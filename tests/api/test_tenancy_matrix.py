"""Tenancy as a table: every operation of every tree, by every kind of principal, at every combination of
organization and project in the path.

The principals all belong to the default organization (A): its admin, a contributor, a viewer, and an
admin scoped to A's default project. The path names an organization (A, another organization B, or one
that does not exist) and a project (A's default project, a second project of A, B's project, or one that
does not exist). Only A's own projects may be reached, and only its own project by the project-scoped
principal. Every other combination must get the same 403 code 7, byte for byte, whether or not the
organization, the project or the objects exist, must name nothing of the target, and must change
nothing, on SQLite and PostgreSQL alike.

The operations are enumerated from the app's router, so an operation added later (the 2023-01-01 tree)
is walked by the same table: its path parameters are filled from PARAMETERS, and a parameter this test
does not know fails the test until it is added there.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from packyard.domain.models import ROLE_PERMISSIONS, Role
from packyard.http.routing import Access, Route
from tests.api.test_roles import dump, new_principal
from tests.api.test_tenancy import OPERATIONS, Target, Tenancy, fill
from tests.api.test_tenancy import tenancy as tenancy  # noqa: PLC0414 - the fixture, re-exported for pytest
from tests.conftest import Env

# A route's path parameter -> the key of Target.values that names a real object of that kind.
PARAMETERS = {
    "bucket_slug": "bucket",
    "iteration_id": "iteration",
    "build_id": "build",
    "slug": "channel",
    "task_type": "task",
    # 2023-01-01
    "bucket_name": "bucket",
    "fingerprint": "fingerprint",
    "channel_name": "channel",
    "sbom_name": "sbom",
}

PRINCIPALS = ["org-admin", "org-contributor", "org-viewer", "project-admin"]
ORGS = ["own", "other", "unknown", "malformed"]
PROJECTS = ["own", "sibling", "foreign", "unknown", "malformed"]
MALFORMED = "not-a-uuid%00"  # a NUL, percent-encoded in the path (PostgreSQL's text can't hold one)

TENANCY_REFUSAL = "the principal has no access to this organization or project"


@dataclass
class Call:
    route: Route
    method: str
    path: str  # the whole path, with {org}, {project} and Target.values placeholders
    body: Any
    query: dict[str, str]


def calls(env: Env) -> list[Call]:
    """One call per project-scoped route of the app: the known operations' bodies, or an empty body."""
    found: list[Call] = []
    for route in env.app.router.routes:
        if route.access is not Access.PROJECT:
            continue
        head, sep, rest = route.template.partition("/projects/{project}")
        assert sep, f"{route.operation_id}: a project route outside .../projects/{{project}}"
        assert "{org}" in head, f"{route.operation_id}: a project route outside .../organizations/{{org}}"
        if route.api == "packer/2021-04-30" and route.operation_id in OPERATIONS:
            method, suffix, body, query = OPERATIONS[route.operation_id]
        else:
            method, body, query = route.method, ({} if route.method != "GET" else None), {}
            suffix = rest
            for name in re.findall(r"{(\w+)}", rest):
                assert name in PARAMETERS, f"{route.operation_id}: add path parameter {name!r} to PARAMETERS"
                suffix = suffix.replace(f"{{{name}}}", f"{{{PARAMETERS[name]}}}")
        assert method == route.method
        found.append(Call(route, method, f"{head}/projects/{{project}}{suffix}", body, query))
    return found


def token_of(env: Env, tenancy: Tenancy, kind: str) -> tuple[str, Role, bool]:
    """(token, role, whether the principal is organization-wide) for one kind of principal of A."""
    if kind == "org-admin":
        return env.client.token or "", Role.ADMIN, True
    if kind == "project-admin":
        return env.token_for(*new_principal(env, Role.ADMIN, project_id=env.init.project_id)), Role.ADMIN, False
    role = Role.CONTRIBUTOR if kind == "org-contributor" else Role.VIEWER
    return env.token_for(*new_principal(env, role, name=kind)), role, True


def send(env: Env, call: Call, org_id: str, project_id: str, values: dict[str, str], token: str) -> httpx.Response:
    return env.client.request(
        call.method,
        fill(call.path, {**values, "org": org_id, "project": project_id}),
        json=fill(call.body, values),
        params=fill(call.query, values),
        token=token,
    )


@pytest.mark.parametrize("kind", PRINCIPALS)
def test_every_operation_at_every_tenant_combination(env: Env, tenancy: Tenancy, kind: str) -> None:
    token, role, org_wide = token_of(env, tenancy, kind)
    home, away = tenancy.home, tenancy.away
    orgs = {"own": home.org_id, "other": away.org_id, "unknown": str(uuid.uuid4()), "malformed": MALFORMED}
    projects = {
        "own": home.project_id,
        "sibling": tenancy.second_project.id,
        "foreign": away.project_id,
        "unknown": str(uuid.uuid4()),
        "malformed": MALFORMED,
    }

    def values_for(project: str) -> dict[str, str]:
        # Real names of the project the path names (the attack names the victim's real objects).
        return {"own": home.values, "foreign": away.values}.get(project, home.missing_values())

    def allowed(org: str, project: str) -> bool:
        return org == "own" and (project == "own" or (project == "sibling" and org_wide))

    every = calls(env)
    assert {c.route.operation_id for c in every} >= set(OPERATIONS)
    before = {"home": dump(home.client), "away": dump(away.client)}

    # Every refused combination first, while everything the requests name still exists.
    refused = 0
    for call in every:
        answers: list[tuple[str, str, httpx.Response]] = []
        for org in ORGS:
            for project in PROJECTS:
                if allowed(org, project):
                    continue
                response = send(env, call, orgs[org], projects[project], values_for(project), token)
                answers.append((org, project, response))
        first = answers[0][2]
        for org, project, response in answers:
            where = (call.route.operation_id, kind, org, project)
            assert response.status_code == 403, (where, response.status_code, response.text)
            body = response.json()
            assert (body["code"], body["message"]) == (7, TENANCY_REFUSAL), (where, body)
            assert response.content == first.content, where
            refused += 1
        for name in away.names:
            assert all(name not in r.text for _, _, r in answers), (call.route.operation_id, name)
    assert refused == len(every) * (len(ORGS) * len(PROJECTS) - (2 if org_wide else 1))
    assert dump(home.client) == before["home"]
    assert dump(away.client) == before["away"]

    # The allowed combinations are reached: reads answer, and a refusal there is the role's, never tenancy's.
    reads = [c for c in every if c.method == "GET"]
    writes = [c for c in every if c.method != "GET"]
    for call in [*reads, *writes]:
        for project in ("own", "sibling"):
            if not allowed("own", project):
                continue
            response = send(env, call, orgs["own"], projects[project], values_for(project), token)
            where = (call.route.operation_id, kind, "own", project)
            assert response.status_code < 500, (where, response.text)
            if call.route.permission not in ROLE_PERMISSIONS[role]:
                assert response.status_code == 403, where
                assert response.json()["message"].startswith("the principal's role"), where
                continue
            if response.status_code == 403:
                assert response.json()["message"] != TENANCY_REFUSAL, where
            if call in reads and project == "own":
                assert response.status_code == 200, (where, response.text)
    # B's project was never touched by what A's principals did in their own projects.
    assert dump(away.client) == before["away"]


def _target_reads(target: Target) -> list[tuple[str, dict[str, str]]]:
    v = target.values
    return [
        (f"/builds/{v['build']}", {}),
        ("/images/" + v["bucket"], {}),
        (f"/images/{v['bucket']}/iteration", {"iteration_id": v["iteration"]}),
        (f"/images/{v['bucket']}/channels/{v['channel']}", {}),
    ]


def test_another_tenants_object_ids_find_nothing_in_our_project(env: Env, tenancy: Tenancy) -> None:
    """Our own organization and project in the path, the ids and names of B's objects after it: found
    nowhere (404), named nowhere, changed nowhere."""
    home, away = tenancy.home, tenancy.away
    c = env.client
    before = dump(away.client)
    for path, query in _target_reads(away):
        response = c.get(c.p(path), params=query)
        assert response.status_code == 404, (path, response.text)
    v = away.values
    writes = [
        ("PATCH", f"/builds/{v['build']}", {"updates": {"status": "FAILED"}}, {}),
        ("DELETE", f"/builds/{v['build']}", None, {}),
        ("PATCH", f"/iterations/{v['iteration']}", {"bucket_slug": "base", "revoke_in": "0s"}, {}),
        ("DELETE", f"/iterations/{v['iteration']}", None, {"bucket_slug": "base"}),
        ("POST", "/images/base/channels", {"slug": "stolen", "iteration_id": v["iteration"]}, {}),
    ]
    for method, path, body, query in writes:
        response = c.request(method, c.p(path), json=body, params=query)
        assert response.status_code in (400, 404), (method, path, response.status_code, response.text)
    sent = {v["build"], v["iteration"]}
    for name in away.names:
        if name in sent:
            continue
        for path, query in _target_reads(home):
            assert name not in c.get(c.p(path), params=query).text
    assert dump(away.client) == before


@pytest.mark.parametrize("kind", PRINCIPALS)
def test_resource_manager_reads_at_every_combination(env: Env, tenancy: Tenancy, kind: str) -> None:
    token, _, org_wide = token_of(env, tenancy, kind)
    home, away = tenancy.home, tenancy.away
    rm = "/resource-manager/2019-12-10"
    orgs = {"own": home.org_id, "other": away.org_id, "unknown": str(uuid.uuid4()), "malformed": MALFORMED}
    projects = {
        "own": home.project_id,
        "sibling": tenancy.second_project.id,
        "foreign": away.project_id,
        "unknown": str(uuid.uuid4()),
        "malformed": MALFORMED,
    }
    refusals: set[bytes] = set()
    for name, org_id in orgs.items():
        response = env.client.get(f"{rm}/organizations/{org_id}", token=token)
        if name == "own":
            assert response.json()["organization"]["id"] == org_id
        else:
            assert response.status_code == 403, (name, response.text)
            refusals.add(response.content)
        listed = env.client.get(
            f"{rm}/projects", params={"scope.type": "ORGANIZATION", "scope.id": org_id}, token=token
        )
        if name == "own":
            ids = {p["id"] for p in listed.json()["projects"]}
            assert ids == ({home.project_id, tenancy.second_project.id} if org_wide else {home.project_id})
        elif name == "malformed":  # a query value, named in a 400 of its own
            assert (listed.status_code, listed.json()["code"]) == (400, 3), listed.text
        else:
            assert listed.status_code == 403, (name, listed.text)
            refusals.add(listed.content)
    for name, project_id in projects.items():
        response = env.client.get(f"{rm}/projects/{project_id}", token=token)
        if name == "own" or (name == "sibling" and org_wide):
            assert response.json()["project"]["id"] == project_id
        else:
            assert response.status_code == 403, (name, response.text)
            refusals.add(response.content)
    assert len(refusals) == 1, refusals
