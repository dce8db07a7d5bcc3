"""The real `packyard org|project|principal` commands in subprocesses, against a fresh data directory, and
the credentials they make used against the app in-process."""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from packyard.config import Settings
from packyard.http.factory import create_app
from packyard.storage import migrate
from packyard.storage.db import Database

RM = "/resource-manager/2019-12-10"


def run(data_dir: Path, *args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PACKYARD_")}
    env["XDG_DATA_HOME"] = str(data_dir.parent / "xdg")  # a stray default data dir would land here
    result = subprocess.run(
        [sys.executable, "-m", "packyard", *args, "--data-dir", str(data_dir)],
        cwd=data_dir.parent,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if ok:
        assert result.returncode == 0, f"packyard {' '.join(args)}: {result.returncode}\n{result.stdout}{result.stderr}"
        assert "Traceback" not in result.stderr
    return result


def one_json(result: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    lines = result.stdout.splitlines()
    assert len(lines) == 1, f"expected exactly one line of JSON on stdout, got {result.stdout!r}"
    value = json.loads(lines[0])
    assert isinstance(value, dict)
    return value


def assert_uuid(value: Any) -> str:
    assert isinstance(value, str)
    assert str(uuid.UUID(value)) == value
    return value


def failed(result: subprocess.CompletedProcess[str], *fragments: str) -> str:
    """A clean refusal: non-zero exit, a message naming the problem, no traceback."""
    assert result.returncode != 0, result.stdout
    assert "Traceback" not in result.stderr
    assert "Traceback" not in result.stdout
    message = result.stderr.strip()
    assert message, "no message on stderr"
    for fragment in fragments:
        assert fragment in message, (fragment, message)
    return message


class InProcess:
    """The app on the CLI's data directory, driven over httpx's ASGI transport."""

    def __init__(self, data_dir: Path) -> None:
        self.settings = Settings(data_dir=data_dir)
        self.db = Database(self.settings.effective_database_url)
        self.app = create_app(self.settings, db=self.db)
        self.loop = asyncio.new_event_loop()
        self.http = httpx.AsyncClient(transport=httpx.ASGITransport(app=self.app), base_url="http://packyard.test")

    def request(self, method: str, path: str, token: str | None = None, **kwargs: Any) -> httpx.Response:
        headers = dict(kwargs.pop("headers", {}))
        if token:
            headers["Authorization"] = f"Bearer {token}"
        return self.loop.run_until_complete(self.http.request(method, path, headers=headers, **kwargs))

    def token(self, client_id: str, client_secret: str) -> httpx.Response:
        form = f"grant_type=client_credentials&client_id={client_id}&client_secret={client_secret}"
        return self.request(
            "POST",
            "/oauth2/token",
            content=form.encode(),
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )

    def close(self) -> None:
        self.loop.run_until_complete(self.http.aclose())
        self.loop.close()
        self.db.dispose()


@dataclass
class Tenant:
    data_dir: Path
    org_id: str
    project_id: str


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    """A data directory holding a migrated database with no organization yet (the admin commands refuse a
    data directory without a database: tests/test_cli_errors.py)."""
    path = tmp_path / "data"
    path.mkdir(mode=0o700)
    db = Database(Settings(data_dir=path).effective_database_url)
    try:
        migrate.upgrade(db)
    finally:
        db.dispose()
    return path


@pytest.fixture
def tenant(data_dir: Path) -> Tenant:
    org = one_json(run(data_dir, "org", "create", "--name", "acme", "--json"))
    project = one_json(run(data_dir, "project", "create", "--org", org["id"], "--name", "web", "--json"))
    return Tenant(data_dir, org["id"], project["id"])


@pytest.fixture
def app(data_dir: Path, tenant: Tenant) -> Iterator[InProcess]:
    in_process = InProcess(data_dir)
    yield in_process
    in_process.close()


def test_org_and_project_create_and_list(data_dir: Path) -> None:
    org = one_json(run(data_dir, "org", "create", "--name", "acme", "--json"))
    assert_uuid(org["id"])
    assert org["name"] == "acme"
    other = one_json(run(data_dir, "org", "create", "--name", "beta", "--json"))
    assert other["id"] != org["id"]

    listed = run(data_dir, "org", "list").stdout.splitlines()
    assert sorted(listed) == sorted([f"{org['id']}  acme", f"{other['id']}  beta"])

    project = one_json(run(data_dir, "project", "create", "--org", org["id"], "--name", "web", "--json"))
    assert_uuid(project["id"])
    assert project["organization_id"] == org["id"]
    assert project["name"] == "web"
    second = one_json(run(data_dir, "project", "create", "--org", org["id"], "--name", "api", "--json"))

    projects = run(data_dir, "project", "list", "--org", org["id"]).stdout.splitlines()
    assert sorted(projects) == sorted([f"{project['id']}  web", f"{second['id']}  api"])
    assert run(data_dir, "project", "list", "--org", other["id"]).stdout.strip() == ""

    # Without --json the same facts, readable.
    plain = run(data_dir, "org", "create", "--name", "gamma").stdout
    assert "gamma" in plain
    gamma_id = next(line.split()[0] for line in run(data_dir, "org", "list").stdout.splitlines() if "gamma" in line)
    assert gamma_id in plain


def test_principal_create_list_and_delete(tenant: Tenant, app: InProcess) -> None:
    d = tenant.data_dir
    contributor = one_json(
        run(
            d,
            "principal",
            "create",
            "--org",
            tenant.org_id,
            "--project",
            tenant.project_id,
            "--role",
            "contributor",
            "--json",
        )
    )
    assert {"client_id", "client_secret", "organization_id", "project_id"} <= set(contributor)
    assert contributor["organization_id"] == tenant.org_id
    assert contributor["project_id"] == tenant.project_id
    assert contributor["client_id"]
    assert len(contributor["client_secret"]) >= 32
    viewer = one_json(run(d, "principal", "create", "--org", tenant.org_id, "--role", "viewer", "--json"))
    assert viewer["organization_id"] == tenant.org_id
    assert viewer["project_id"] is None
    assert viewer["client_id"] != contributor["client_id"]

    listing = run(d, "principal", "list").stdout
    assert contributor["client_id"] in listing
    assert viewer["client_id"] in listing
    assert contributor["client_secret"] not in listing
    assert viewer["client_secret"] not in listing
    with sqlite3.connect(d / "packyard.db") as conn:
        hashes = [row[0] for row in conn.execute("SELECT secret_hash FROM principal")]
    assert len(hashes) == 2
    assert all(h and h not in listing for h in hashes)

    # The contributor reads and writes its project; the viewer only reads.
    prefix = f"/packer/2021-04-30/organizations/{tenant.org_id}/projects/{tenant.project_id}"
    granted = app.token(contributor["client_id"], contributor["client_secret"])
    assert granted.status_code == 200, granted.text
    token = granted.json()["access_token"]
    registry = app.request("GET", prefix + "/registry", token)
    assert registry.status_code == 200, registry.text
    assert registry.json()["registry"]["location"]["project_id"] == tenant.project_id
    assert registry.json()["registry"]["config"]["activated"] is True
    created = app.request("PUT", prefix + "/images", token, json={"bucket_slug": "web-images"})
    assert created.status_code == 200, created.text
    projects = app.request("GET", f"{RM}/projects", token, params={"scope.id": tenant.org_id}).json()["projects"]
    assert [p["id"] for p in projects] == [tenant.project_id]

    viewer_token = app.token(viewer["client_id"], viewer["client_secret"]).json()["access_token"]
    assert app.request("GET", prefix + "/images/web-images", viewer_token).status_code == 200
    refused = app.request("PUT", prefix + "/images", viewer_token, json={"bucket_slug": "more"})
    assert (refused.status_code, refused.json()["code"]) == (403, 7)
    orgs = app.request("GET", f"{RM}/organizations", viewer_token).json()["organizations"]
    assert [o["id"] for o in orgs] == [tenant.org_id]

    deleted = run(d, "principal", "delete", contributor["client_id"])
    assert contributor["client_id"] in deleted.stdout
    # Its token stops at once and its credentials get no new one; the other principal is unaffected.
    stopped = app.request("GET", prefix + "/registry", token)
    assert (stopped.status_code, stopped.json()["code"]) == (401, 16)
    assert app.token(contributor["client_id"], contributor["client_secret"]).status_code == 401
    assert app.request("GET", prefix + "/registry", viewer_token).status_code == 200
    listing = run(d, "principal", "list").stdout
    assert contributor["client_id"] not in listing
    assert viewer["client_id"] in listing

    again = run(d, "principal", "delete", contributor["client_id"], ok=False)
    failed(again, contributor["client_id"], "no principal")


def test_bad_input_fails_cleanly_and_creates_nothing(tenant: Tenant) -> None:
    d = tenant.data_dir
    unknown_org = str(uuid.uuid4())
    unknown_project = str(uuid.uuid4())

    bad_role = run(d, "principal", "create", "--org", tenant.org_id, "--role", "superuser", ok=False)
    failed(bad_role, "superuser")
    assert "contributor" in bad_role.stderr  # the choices are listed

    failed(run(d, "principal", "create", "--org", unknown_org, "--role", "viewer", ok=False), unknown_org, "not exist")
    failed(run(d, "principal", "create", "--org", "not-an-id", "--role", "viewer", ok=False), "not exist")
    no_project = run(
        d, "principal", "create", "--org", tenant.org_id, "--project", unknown_project, "--role", "viewer", ok=False
    )
    failed(no_project, unknown_project, "not exist")
    # A project of another organization is not a project of this one.
    beta = one_json(run(d, "org", "create", "--name", "beta", "--json"))
    crossed = run(
        d, "principal", "create", "--org", beta["id"], "--project", tenant.project_id, "--role", "admin", ok=False
    )
    failed(crossed, tenant.project_id, "not exist")
    failed(run(d, "project", "create", "--org", unknown_org, "--name", "web", ok=False), unknown_org, "not exist")
    failed(run(d, "org", "create", "--name", "   ", ok=False), "name")
    failed(run(d, "principal", "delete", "no-such-client", ok=False), "no-such-client")

    assert run(d, "principal", "list").stdout.strip() == ""
    assert len(run(d, "org", "list").stdout.splitlines()) == 2
    assert run(d, "project", "list", "--org", beta["id"]).stdout.strip() == ""
    assert len(run(d, "project", "list", "--org", tenant.org_id).stdout.splitlines()) == 1
