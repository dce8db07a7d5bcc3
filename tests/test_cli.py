"""The real `packyard` command (init, db) in subprocesses, against a fresh data directory."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from packyard.config import Settings
from packyard.http.factory import create_app
from packyard.storage import migrate
from packyard.storage.db import Database

CREDENTIAL_KEYS = {"organization_id", "project_id", "client_id", "client_secret"}


def clean_env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PACKYARD_")}
    env["XDG_DATA_HOME"] = str(tmp_path / "xdg")  # a stray default data dir would land here, not in $HOME
    return env


def packyard(tmp_path: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [sys.executable, "-m", "packyard", *args],
        cwd=tmp_path,
        env=clean_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if check:
        assert result.returncode == 0, f"packyard {' '.join(args)}: {result.returncode}\n{result.stdout}{result.stderr}"
    return result


def init_json(tmp_path: Path, data_dir: Path) -> dict[str, str]:
    result = packyard(tmp_path, "init", "--data-dir", str(data_dir), "--json")
    lines = result.stdout.splitlines()
    assert len(lines) == 1, f"expected exactly one line of JSON on stdout, got {result.stdout!r}"
    values = json.loads(lines[0])
    assert isinstance(values, dict)
    assert set(values) == CREDENTIAL_KEYS
    assert all(isinstance(v, str) and v for v in values.values())
    assert str(uuid.UUID(values["organization_id"])) == values["organization_id"]
    assert str(uuid.UUID(values["project_id"])) == values["project_id"]
    return {k: str(v) for k, v in values.items()}


def head_revision(data_dir: Path) -> str:
    db = Database(Settings(data_dir=data_dir).effective_database_url)
    try:
        head = migrate.head_revision(db)
    finally:
        db.dispose()
    assert head
    return head


def exchange(data_dir: Path, creds: dict[str, str], *, basic: bool) -> list[httpx.Response]:
    """Token request, then GET registry with the token, against the app on this data dir, in-process."""
    settings = Settings(data_dir=data_dir)
    db = Database(settings.effective_database_url)
    app = create_app(settings, db=db)
    prefix = f"/packer/2021-04-30/organizations/{creds['organization_id']}/projects/{creds['project_id']}"
    form = "grant_type=client_credentials&audience=https%3A%2F%2Fapi.hashicorp.cloud"
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    if basic:
        raw = f"{creds['client_id']}:{creds['client_secret']}".encode()
        headers["Authorization"] = "Basic " + base64.b64encode(raw).decode()
    else:
        form += f"&client_id={creds['client_id']}&client_secret={creds['client_secret']}"

    async def run() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://packyard.test") as http:
            token = await http.post("/oauth2/token", content=form.encode(), headers=headers)
            responses = [token]
            if token.status_code == 200:
                bearer = {"Authorization": f"Bearer {token.json()['access_token']}"}
                responses.append(await http.get(prefix + "/registry", headers=bearer))
            return responses

    try:
        return asyncio.run(run())
    finally:
        db.dispose()


def test_init_json_prints_exactly_the_credentials(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    creds = init_json(tmp_path, data_dir)
    assert (data_dir / "packyard.db").is_file()
    assert not (tmp_path / "xdg").exists(), "--data-dir must be the only place written to"
    # The secret is printed, never stored.
    for stored in data_dir.glob("packyard.db*"):
        assert creds["client_secret"].encode() not in stored.read_bytes(), stored


def test_second_init_keeps_the_tenant_and_adds_a_principal(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    first = init_json(tmp_path, data_dir)
    second = init_json(tmp_path, data_dir)
    assert second["organization_id"] == first["organization_id"]
    assert second["project_id"] == first["project_id"]
    assert second["client_id"] != first["client_id"]
    assert second["client_secret"] != first["client_secret"]
    # Both principals exist and work.
    for creds in (first, second):
        token, registry = exchange(data_dir, creds, basic=True)
        assert token.status_code == 200, token.text
        assert registry.status_code == 200, registry.text


def test_init_without_json_prints_the_credentials_and_a_warning(tmp_path: Path) -> None:
    result = packyard(tmp_path, "init", "--data-dir", str(tmp_path / "data"))
    shown = dict(line.split(": ", 1) for line in result.stdout.splitlines() if ": " in line)
    assert set(shown) >= CREDENTIAL_KEYS
    assert "shown only now" in result.stdout
    token, registry = exchange(tmp_path / "data", {k: shown[k] for k in CREDENTIAL_KEYS}, basic=False)
    assert token.status_code == 200, token.text
    assert registry.status_code == 200, registry.text


@pytest.mark.parametrize("basic", [True, False], ids=["basic", "form"])
def test_init_credentials_work_at_the_token_endpoint(tmp_path: Path, basic: bool) -> None:
    data_dir = tmp_path / "data"
    creds = init_json(tmp_path, data_dir)
    token, registry = exchange(data_dir, creds, basic=basic)
    assert token.status_code == 200, token.text
    body: dict[str, Any] = token.json()
    assert body["token_type"] == "Bearer"
    assert isinstance(body["expires_in"], int)
    assert body["access_token"]
    assert registry.status_code == 200, registry.text
    assert registry.json()["registry"]["id"]
    wrong = exchange(data_dir, {**creds, "client_secret": creds["client_secret"][:-1]}, basic=basic)
    assert [r.status_code for r in wrong] == [401]
    assert wrong[0].json()["error"] == "invalid_client"


def test_db_check_and_current_after_init(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    init_json(tmp_path, data_dir)
    head = head_revision(data_dir)
    for args in (("db", "check", "--data-dir", str(data_dir)), ("db", "--data-dir", str(data_dir), "check")):
        result = packyard(tmp_path, *args)
        assert "agree" in result.stdout
    for args in (("db", "current", "--data-dir", str(data_dir)), ("db", "--data-dir", str(data_dir), "current")):
        assert packyard(tmp_path, *args).stdout.strip() == head


def test_db_check_fails_before_migrations_and_passes_after_upgrade(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    init_json(tmp_path, data_dir)
    packyard(tmp_path, "db", "downgrade", "base", "--data-dir", str(data_dir))
    before = packyard(tmp_path, "db", "check", "--data-dir", str(data_dir), check=False)
    assert before.returncode == 1, before.stdout + before.stderr
    assert "db upgrade" in before.stderr
    assert packyard(tmp_path, "db", "current", "--data-dir", str(data_dir)).stdout.strip() == "(empty)"
    packyard(tmp_path, "db", "upgrade", "--data-dir", str(data_dir))
    assert "agree" in packyard(tmp_path, "db", "check", "--data-dir", str(data_dir)).stdout
    assert packyard(tmp_path, "db", "current", "--data-dir", str(data_dir)).stdout.strip() == head_revision(data_dir)
