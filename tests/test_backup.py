"""`packyard backup` of a running SQLite server under write load, `packyard restore` into a fresh data
dir, restore's refusals, the copy kept before a migration, and the PostgreSQL guidance (pg_dump).

Everything goes through the real command (`python -m packyard ...` subprocesses) and, for the server,
real `packyard serve` processes over HTTPS with the local CA."""

from __future__ import annotations

import contextlib
import io
import json
import os
import shlex
import sqlite3
import ssl
import stat
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from alembic.script import ScriptDirectory

from packyard import cli
from packyard.storage import migrate
from packyard.storage.copy import shown
from packyard.storage.db import Database
from tests.conftest import Backend
from tests.support.server import ServerProcess, free_port, stop

WRITERS = 4
MAX_WRITES_EACH = 400  # bounds the load in count as well as in time
LOAD_BEFORE_BACKUP = 0.5  # seconds of writes before the backup starts
LOAD_AFTER_BACKUP = 0.5


def packyard(*args: str, env: dict[str, str] | None = None, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "packyard", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env if env is not None else clean_env(),
        check=False,
    )


def in_process(*args: str) -> subprocess.CompletedProcess[str]:
    """The same command run by packyard.cli.main in this process (a subprocess costs a second of imports
    each): SystemExit("message") becomes what Python would print, the message on stderr and status 1."""
    out, err = io.StringIO(), io.StringIO()
    code: int | str | None
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = cli.main(list(args))
        except SystemExit as exc:
            code = exc.code
    if isinstance(code, str):
        print(code, file=err)
        code = 1
    return subprocess.CompletedProcess(["packyard", *args], code or 0, out.getvalue(), err.getvalue())


@pytest.fixture
def quiet_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in [k for k in os.environ if k.startswith("PACKYARD_")]:
        monkeypatch.delenv(key)


def clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("PACKYARD_")}


def one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode != 0, result.stdout
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


def start_server(data_dir: Path, log: Path) -> ServerProcess:
    port = free_port()
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "packyard", "serve", "--port", str(port), "--data-dir", str(data_dir)],
            env={**clean_env(), "PACKYARD_JOB_INTERVAL_SECONDS": "0.2"},
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    server = ServerProcess(process, f"https://127.0.0.1:{port}", log)
    try:
        _wait_tls(server, data_dir)
    except BaseException:
        stop(server)
        raise
    return server


def _wait_tls(server: ServerProcess, data_dir: Path) -> None:
    # wait_healthy speaks through httpx with the default trust; the data dir's CA appears on start.
    deadline = time.monotonic() + 20
    while not (data_dir / "tls" / "ca.pem").exists() and time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise AssertionError(server.output())
        time.sleep(0.05)  # bounded polling of a starting process
    with httpx.Client(verify=trust(data_dir)) as probe:
        while time.monotonic() < deadline:
            if server.process.poll() is not None:
                raise AssertionError(server.output())
            try:
                if probe.get(server.url + "/healthz", timeout=0.5).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)  # bounded polling of a starting process
    raise AssertionError(f"server did not become healthy:\n{server.output()}")


def trust(data_dir: Path) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(data_dir / "tls" / "ca.pem"))


@dataclass(frozen=True)
class Ack:
    """A write the server acknowledged (200), when it did, and what it answered."""

    at: float
    bucket: str
    bucket_id: str
    fingerprint: str
    iteration_id: str


class Load:
    """WRITERS threads, each creating a bucket and an iteration in it, again and again, until stopped."""

    def __init__(self, url: str, context: ssl.SSLContext, prefix: str, token: str) -> None:
        self.url, self.context, self.prefix, self.token = url, context, prefix, token
        self.acks: list[Ack] = []
        self.failures: list[str] = []
        self.stopped = threading.Event()
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self.writer, args=(n,)) for n in range(WRITERS)]

    def writer(self, n: int) -> None:
        headers = {"Authorization": f"Bearer {self.token}"}
        with httpx.Client(base_url=self.url + self.prefix, verify=self.context, headers=headers, timeout=30) as c:
            for i in range(MAX_WRITES_EACH):
                if self.stopped.is_set():
                    return
                slug, fingerprint = f"w{n}-{i}", f"fp-{n}-{i}"
                r = c.put("/images", json={"bucket_slug": slug})
                if r.status_code != 200:
                    self.failures.append(f"{r.status_code} {r.text}")
                    return
                bucket_id = r.json()["bucket"]["id"]
                r = c.post(f"/images/{slug}/iterations", json={"fingerprint": fingerprint})
                if r.status_code != 200:
                    self.failures.append(f"{r.status_code} {r.text}")
                    return
                ack = Ack(time.monotonic(), slug, bucket_id, fingerprint, r.json()["iteration"]["id"])
                with self.lock:
                    self.acks.append(ack)

    def __enter__(self) -> Load:
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopped.set()
        for t in self.threads:
            t.join(60)


def token(client: httpx.Client, client_id: str, secret: str) -> str:
    r = client.post(
        "/oauth2/token",
        content=f"grant_type=client_credentials&client_id={client_id}&client_secret={secret}",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert r.status_code == 200, r.text
    return str(r.json()["access_token"])


def private(path: Path) -> bool:
    return not stat.S_IMODE(path.stat().st_mode) & 0o077


@pytest.mark.slow
def test_backup_of_a_server_under_write_load_restores_every_acknowledged_write(tmp_path: Path, quiet_env: None) -> None:
    data, backup, fresh = tmp_path / "data", tmp_path / "backup", tmp_path / "fresh"
    init = in_process("init", "--data-dir", str(data), "--json")
    assert init.returncode == 0, init.stderr
    creds = json.loads(init.stdout)
    prefix = f"/packer/2021-04-30/organizations/{creds['organization_id']}/projects/{creds['project_id']}"
    server = start_server(data, tmp_path / "server.log")
    try:
        context = trust(data)
        with httpx.Client(base_url=server.url, verify=context) as c:
            old_token = token(c, creds["client_id"], creds["client_secret"])
        with Load(server.url, context, prefix, old_token) as load:
            begun = time.monotonic()
            while not load.failures and time.monotonic() < begun + 15:  # bounded, on a slow machine too
                if time.monotonic() >= begun + LOAD_BEFORE_BACKUP and len(load.acks) >= 2 * WRITERS:
                    break
                time.sleep(0.05)  # letting the writers run
            started = time.monotonic()
            made = packyard("backup", "--data-dir", str(data), str(backup))
            finished = time.monotonic()
            time.sleep(LOAD_AFTER_BACKUP)  # the load goes on after the backup, bounded
        assert not load.failures, load.failures[:3]
        assert made.returncode == 0, made.stderr
        before = [a for a in load.acks if a.at < started]
        during = [a for a in load.acks if started <= a.at <= finished]
        assert len(before) >= WRITERS, "the writers were writing before the backup"
        assert during, "the server was acknowledging writes while the backup ran"

        # What the backup holds, readable by its owner only.
        assert private(backup)
        for item in (
            "packyard.db",
            "secret.key",
            "manifest.json",
            "tls/ca.pem",
            "tls/ca-key.pem",
            "tls/server-key.pem",
        ):
            assert (backup / item).is_file(), item
            assert private(backup / item), item
        assert (backup / "secret.key").read_bytes() == (data / "secret.key").read_bytes()
        manifest = json.loads((backup / "manifest.json").read_text())
        assert manifest["secret"] == "file"
        assert manifest["tables"]["bucket"]["rows"] >= len(before)

        # A running server's database is never restored over, even with --force.
        refused = one_line_error(in_process("restore", "--force", "--data-dir", str(data), str(backup)))
        assert "open in another process" in refused
        assert "stop it first" in refused
        # Nor is one copied over by db copy.
        into_live = (
            "db",
            "copy",
            "--from",
            f"sqlite:///{backup / 'packyard.db'}",
            "--to",
            f"sqlite:///{data}/packyard.db",
        )
        refused = one_line_error(in_process(*into_live, "--force"))
        assert "open in another process" in refused
    finally:
        assert stop(server) == 0, server.output()[-2000:]

    # Stopped, its data dir still holds a registry: refused without --force, and left as it was.
    refused = one_line_error(in_process("restore", "--data-dir", str(data), str(backup)))
    assert "--force" in refused

    restored = in_process("restore", "--data-dir", str(fresh), str(backup))
    assert restored.returncode == 0, restored.stderr
    assert private(fresh / "packyard.db")
    assert private(fresh / "secret.key")
    server = start_server(fresh, tmp_path / "restored.log")
    try:
        # The restored server presents the original CA's certificate, and trusts the original credentials
        # and even a token the original server issued (its signing key comes from the restored secret).
        with httpx.Client(base_url=server.url, verify=context) as c:
            new_token = token(c, creds["client_id"], creds["client_secret"])
        with httpx.Client(base_url=server.url + prefix, verify=context, timeout=30) as c:
            assert c.get("/images", headers={"Authorization": f"Bearer {old_token}"}).status_code == 200
            headers = {"Authorization": f"Bearer {new_token}"}
            for ack in before:
                r = c.get(f"/images/{ack.bucket}", headers=headers)
                assert r.status_code == 200, (ack, r.text)
                assert r.json()["bucket"]["id"] == ack.bucket_id
                r = c.get(f"/images/{ack.bucket}/iteration", params={"fingerprint": ack.fingerprint}, headers=headers)
                assert r.status_code == 200, (ack, r.text)
                assert r.json()["iteration"]["id"] == ack.iteration_id
    finally:
        assert stop(server) == 0, server.output()[-2000:]
    assert "Traceback" not in server.output()


def test_restore_refuses_a_registry_with_data_without_force_and_replaces_it_with_force(
    tmp_path: Path, quiet_env: None
) -> None:
    data, backup = tmp_path / "data", tmp_path / "backup"
    assert in_process("init", "--data-dir", str(data)).returncode == 0
    (data / "secret.key").write_text("this server's secret\n")  # what the first `packyard serve` writes
    made = in_process("backup", "--data-dir", str(data), str(backup))
    assert made.returncode == 0, made.stderr
    assert "backed up" in made.stdout
    # A second backup into the same place is refused: a backup is never overwritten.
    assert "already exists" in one_line_error(in_process("backup", "--data-dir", str(data), str(backup)))

    later = in_process("org", "create", "--name", "made-after-the-backup", "--data-dir", str(data))
    assert later.returncode == 0, later.stderr
    refused = one_line_error(in_process("restore", "--data-dir", str(data), str(backup)))
    assert "already holds a registry" in refused
    assert "--force" in refused
    assert "made-after-the-backup" in in_process("org", "list", "--data-dir", str(data)).stdout, "left as it was"

    forced = in_process("restore", "--force", "--data-dir", str(data), str(backup))
    assert forced.returncode == 0, forced.stderr
    assert forced.stdout.startswith("restored ")
    orgs = in_process("org", "list", "--data-dir", str(data))
    assert orgs.returncode == 0
    assert "made-after-the-backup" not in orgs.stdout
    assert "default" in orgs.stdout

    # A different server secret in the data dir is live data too.
    other = tmp_path / "other"
    other.mkdir(mode=0o700)
    (other / "secret.key").write_text("another server's secret\n")
    assert "different server secret" in one_line_error(in_process("restore", "--data-dir", str(other), str(backup)))

    # A backup whose database doesn't match its manifest is refused before anything is touched.
    with sqlite3.connect(backup / "packyard.db") as conn:
        conn.execute("UPDATE organization SET name = 'tampered'")
    conn.close()
    damaged = one_line_error(in_process("restore", "--force", "--data-dir", str(data), str(backup)))
    assert "does not match its manifest" in damaged

    # A mistyped data dir is said so, and nothing is created there.
    missing = tmp_path / "mistyped"
    assert "no database" in one_line_error(in_process("backup", "--data-dir", str(missing), str(tmp_path / "b2")))
    assert not missing.exists()
    assert "no backup at" in one_line_error(in_process("restore", "--data-dir", str(data), str(tmp_path / "nowhere")))


def _previous_revision(db: Database) -> str:
    script = ScriptDirectory.from_config(migrate.alembic_config(db))
    head = script.get_revision(str(migrate.head_revision(db)))
    assert head is not None
    assert isinstance(head.down_revision, str)
    return head.down_revision


def test_sqlite_upgrade_copies_the_database_first_and_says_where(tmp_path: Path, quiet_env: None) -> None:
    data = tmp_path / "data"
    data.mkdir(mode=0o700)
    db = Database(f"sqlite:///{data / 'packyard.db'}")
    try:
        previous = _previous_revision(db)
        migrate.upgrade(db, previous)
        with db.engine.begin() as conn:
            conn.execute(sa.text("INSERT INTO organization (id, name, created_at) VALUES ('org-1', 'kept', 1)"))
    finally:
        db.dispose()

    result = in_process("org", "list", "--data-dir", str(data))  # any command that opens the registry
    assert result.returncode == 0, result.stderr
    line = result.stderr.strip()
    assert len(line.splitlines()) == 1, result.stderr
    head = Database(f"sqlite:///{data / 'packyard.db'}")
    try:
        assert migrate.current_revision(head) == migrate.head_revision(head)
        assert f"from {previous} to {migrate.head_revision(head)}" in line
    finally:
        head.dispose()
    kept = Path(line.split(" to ", 1)[1].split(" before ")[0])
    assert kept.parent == data / "backups"
    assert kept.is_file()
    assert private(kept)
    with sqlite3.connect(f"{kept.resolve().as_uri()}?mode=ro", uri=True) as copy:
        assert copy.execute("SELECT version_num FROM alembic_version").fetchall() == [(previous,)]
        assert copy.execute("SELECT name FROM organization").fetchall() == [("kept",)]
        assert copy.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    copy.close()

    # Up to date: no copy, nothing said. A new database: nothing to keep.
    again = in_process("org", "list", "--data-dir", str(data))
    assert again.returncode == 0
    assert again.stderr == ""
    assert len(list((data / "backups").iterdir())) == 1
    empty = tmp_path / "empty"
    empty.mkdir(mode=0o700)
    db = Database(f"sqlite:///{empty / 'packyard.db'}")
    try:
        migrate.upgrade(db, previous)  # a schema, no rows
    finally:
        db.dispose()
    assert in_process("db", "upgrade", "--data-dir", str(empty)).stderr == ""
    assert not (empty / "backups").exists()
    new = in_process("init", "--data-dir", str(tmp_path / "new"))
    assert new.returncode == 0
    assert "before migrating" not in new.stderr
    assert not (tmp_path / "new" / "backups").exists()

    # The kept copy is a backup `packyard restore` takes as it is (a bare SQLite file).
    back = in_process("restore", "--force", "--data-dir", str(data), str(kept))
    assert back.returncode == 0, back.stderr
    assert f"(schema {previous})" in back.stdout


def test_postgresql_backup_and_restore_say_what_to_run(tmp_path: Path, backend: Backend) -> None:
    if backend.name != "postgresql":
        pytest.skip("the PostgreSQL guidance needs the PostgreSQL lane (PACKYARD_TEST_POSTGRES_URL)")
    url = backend.new_url(tmp_path)
    restored_url = backend.empty_url(tmp_path)
    try:
        env = {**clean_env(), "PACKYARD_DATABASE_URL": url}
        line = one_line_error(packyard("backup", "--data-dir", str(tmp_path), str(tmp_path / "dump"), env=env))
        assert "pg_dump" in line
        assert "secret.key" in line
        command = line.split("`")[1]
        if not _on_path(command.split()[0]):
            pytest.skip("pg_dump is not installed (scripts/test installs PostgreSQL)")
        # The command it prints is the one to run, as it is.
        dumped = subprocess.run(shlex.split(command), capture_output=True, text=True, timeout=60, check=False)
        assert dumped.returncode == 0, dumped.stderr
        restore_line = one_line_error(packyard("restore", str(tmp_path / "dump"), env=env))
        assert "pg_restore" in restore_line
        restore_cmd = restore_line.split("`")[1].replace(
            shown(url, password=False), shown(restored_url, password=False)
        )
        restore_cmd = restore_cmd.replace("FILE", str(tmp_path / "dump.pgdump"))
        loaded = subprocess.run(shlex.split(restore_cmd), capture_output=True, text=True, timeout=60, check=False)
        assert loaded.returncode == 0, loaded.stderr
        assert _rows(restored_url) == _rows(url)
    finally:
        backend.release(url)
        backend.release(restored_url)


def _on_path(name: str) -> bool:
    return any((Path(d) / name).is_file() for d in os.environ.get("PATH", "").split(os.pathsep) if d)


def _rows(url: str) -> dict[str, Any]:
    db = Database(url)
    try:
        with db.engine.connect() as conn:
            return {
                name: conn.exec_driver_sql(f'SELECT count(*) FROM "{name}"').scalar()  # noqa: S608
                for name in ("organization", "project", "principal", "signing_key", "registry")
            }
    finally:
        db.dispose()
