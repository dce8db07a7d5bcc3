"""Every startup and CLI failure an operator can fix ends with ONE line on stderr that names the cause and
the fix, a non-zero exit and no traceback; `serve` prints nothing (no banner, no credentials) when it
can't start. The real `packyard` command in subprocesses, on the lane's database (SQLite in the data
directory, or a PostgreSQL database of its own), as a new user would meet each failure."""

from __future__ import annotations

import argparse
import ctypes
import os
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
import sqlalchemy as sa

from packyard.cli import build_parser
from packyard.startup import version
from packyard.storage.urls import normalize_url
from packyard.tls import ensure_local_tls
from tests.conftest import Backend
from tests.support.server import free_port

Result = subprocess.CompletedProcess[str]
PR_CAPBSET_DROP = 24


def packyard(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None, as_user: bool = False) -> Result:
    """The real command in a subprocess; as_user: without root's power to write anywhere (see _as_user)."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("PACKYARD_")}
    clean["XDG_DATA_HOME"] = str(Path(tempfile.gettempdir()) / "packyard-cli-errors-xdg-unused")
    clean.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "packyard", *args],
        cwd=cwd or "/",
        env=clean,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        preexec_fn=_as_user if as_user and os.geteuid() == 0 else None,
    )


def _as_user() -> None:
    """In the child, before exec: drop CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH from the bounding set, so
    that root, after exec, is held to permission bits as any user is (the suite runs as root in CI)."""
    libc = ctypes.CDLL(None, use_errno=True)
    for capability in (1, 2):  # CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH
        if libc.prctl(PR_CAPBSET_DROP, capability, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP)")


def refused(result: Result, *fragments: str, status: int = 1) -> str:
    """The one line a known failure prints: exactly one line on stderr, nothing on stdout, no traceback."""
    assert result.returncode == status, (result.returncode, result.stdout, result.stderr)
    assert result.stdout == "", f"nothing is printed for a command that fails: {result.stdout!r}"
    lines = result.stderr.splitlines()
    assert len(lines) == 1, f"expected one line on stderr, got:\n{result.stderr}"
    line = lines[0]
    assert "Traceback" not in line
    for fragment in fragments:
        assert fragment in line, (fragment, line)
    return line


@dataclass
class Lane:
    """The lane's database for one test: SQLite in the data directory, or a PostgreSQL database."""

    data_dir: Path
    database_url: str | None  # None: SQLite in the data directory

    @property
    def env(self) -> dict[str, str]:
        return {"PACKYARD_DATABASE_URL": self.database_url} if self.database_url else {}

    @property
    def url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir / 'packyard.db'}"


@pytest.fixture
def lane(tmp_path: Path, backend: Backend) -> Iterator[Lane]:
    """A registry made as a user makes one (`packyard init`) on SQLite; a migrated database on PostgreSQL."""
    data_dir = tmp_path / "data"
    if backend.name == "sqlite":
        assert packyard("init", "--data-dir", str(data_dir), "--json").returncode == 0
        yield Lane(data_dir, None)
        return
    url = backend.new_url(tmp_path)
    try:
        yield Lane(data_dir, url)
    finally:
        backend.release(url)


# ------------------------------------------------------------------------------------------ version


def test_version_prints_the_installed_version() -> None:
    for args in (["--version"], ["version"]):
        result = packyard(*args)
        assert result.returncode == 0, result.stderr
        assert result.stdout == f"packyard {version()}\n"
        assert result.stderr == ""
    assert version()[0].isdigit()


# ------------------------------------------------------------------------------------------ data dir


def test_a_data_dir_that_is_a_file_is_refused(tmp_path: Path, backend: Backend) -> None:
    a_file = tmp_path / "data"
    a_file.write_text("not a directory")
    env = {"PACKYARD_DATABASE_URL": backend.new_url(tmp_path)} if backend.name == "postgresql" else {}
    try:
        for args in (
            ["init", "--data-dir", str(a_file)],
            ["init", "--data-dir", str(a_file / "below")],
            ["serve", "--data-dir", str(a_file), "--port", str(free_port()), "--no-tls"],
        ):
            refused(packyard(*args, env=env), f"the data directory {a_file}", "is a file", "--data-dir")
    finally:
        if env:
            backend.release(env["PACKYARD_DATABASE_URL"])
    assert a_file.read_text() == "not a directory"


def test_a_data_dir_that_is_not_writable_is_refused(tmp_path: Path) -> None:
    base = tmp_path / "read-only"
    base.mkdir()
    base.chmod(0o555)
    try:
        probe = packyard("version", as_user=True)
        if probe.returncode != 0:
            pytest.skip(f"can't run packyard without root's file access here: {probe.stderr.strip()}")
        line = refused(packyard("init", "--data-dir", str(base / "data"), as_user=True), str(base / "data"))
        assert "Permission denied" in line
        assert "--data-dir" in line
        line = refused(packyard("init", "--data-dir", str(base), as_user=True), str(base), "not writable")
        assert "--data-dir" in line
        serve = ["serve", "--data-dir", str(base), "--port", str(free_port()), "--no-tls"]
        refused(packyard(*serve, as_user=True), "not writable")
        assert list(base.iterdir()) == []
    finally:
        base.chmod(0o755)


# ------------------------------------------------------------------------- a mistyped --data-dir


ADMIN_COMMANDS = (
    ["org", "list"],
    ["org", "create", "--name", "acme"],
    ["project", "list", "--org", "0"],
    ["project", "create", "--org", "0", "--name", "web"],
    ["principal", "list"],
    ["principal", "create", "--org", "0", "--role", "viewer"],
    ["principal", "delete", "nobody"],
    ["db", "current"],
    ["db", "check"],
    ["db", "upgrade"],
    ["db", "downgrade", "base"],
)


def test_admin_commands_refuse_a_data_dir_without_a_registry(tmp_path: Path) -> None:
    typo = tmp_path / "dta"
    empty = tmp_path / "empty"
    empty.mkdir()

    def check(args: list[str]) -> None:
        line = refused(packyard(*args, "--data-dir", str(typo)), f"there is no data directory {typo}")
        assert f"packyard init --data-dir {typo}" in line
        if args[0] in ("org", "db") and args[1] in ("list", "upgrade"):  # one check decides for every command
            line = refused(packyard(*args, "--data-dir", str(empty)), f"there is no packyard database in {empty}")
            assert f"packyard init --data-dir {empty}" in line

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(check, ADMIN_COMMANDS))
    assert not typo.exists(), "a mistyped --data-dir must not become an empty registry"
    assert list(empty.iterdir()) == []


def test_init_and_serve_still_create_a_registry(tmp_path: Path) -> None:
    fresh = tmp_path / "fresh"
    assert packyard("init", "--data-dir", str(fresh), "--json").returncode == 0
    assert (fresh / "packyard.db").is_file()
    listed = packyard("org", "list", "--data-dir", str(fresh))
    assert listed.returncode == 0
    assert listed.stdout.split()[1] == "default"


def test_admin_commands_refuse_a_postgresql_database_without_the_schema(tmp_path: Path, backend: Backend) -> None:
    if backend.name != "postgresql":
        pytest.skip("PostgreSQL lane: set PACKYARD_TEST_POSTGRES_URL")
    url = backend.empty_url(tmp_path)
    try:
        env = {"PACKYARD_DATABASE_URL": url}
        line = refused(packyard("org", "list", env=env), "holds no packyard registry", "packyard init")
        assert f"/{sa.make_url(url).database}" in line  # which database it looked in
        assert packyard("db", "current", env=env).stdout == "(empty)\n"  # db commands may meet an empty one
    finally:
        backend.release(url)


# ------------------------------------------------------------------------------------ the port


def test_a_port_in_use_is_refused_before_anything_is_printed(tmp_path: Path, lane: Lane) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        fresh = tmp_path / "first-start"  # a first start would print an admin's credentials
        env = lane.env
        line = refused(
            packyard("serve", "--data-dir", str(fresh), "--port", str(port), "--no-tls", env=env),
            f"127.0.0.1:{port} is already in use",
            "--port",
        )
        assert "client_secret" not in line
        assert not fresh.exists(), "nothing is created for a server that can't start"
        refused(packyard("serve", "--data-dir", str(fresh), env={**env, "PACKYARD_PORT": str(port)}), "in use")


def test_an_address_that_is_not_this_machines_is_refused(tmp_path: Path) -> None:
    for host, fragment in (("192.0.2.1", "not an address of this machine"), ("no-such-host.invalid", "--host")):
        args = ["serve", "--data-dir", str(tmp_path / "d"), "--host", host, "--port", str(free_port())]
        refused(packyard(*args), fragment)
    assert not (tmp_path / "d").exists()


# -------------------------------------------------------------------------------- the database


def test_an_unreachable_postgresql_is_refused(tmp_path: Path) -> None:
    closed = free_port()  # nothing listens there
    url = f"postgresql://packyard:hunter2@127.0.0.1:{closed}/packyard"
    env = {"PACKYARD_DATABASE_URL": url}
    data_dir = str(tmp_path / "d")
    for args in (
        ["init", "--data-dir", data_dir],
        ["serve", "--data-dir", data_dir, "--port", str(free_port()), "--no-tls"],
        ["org", "list"],
        ["db", "current"],
        ["db", "upgrade"],
    ):
        line = refused(packyard(*args, env=env), "can't connect to PostgreSQL", "Connection refused")
        assert f"127.0.0.1:{closed}" in line
        assert "PACKYARD_DATABASE_URL" in line
        assert "hunter2" not in line, "the password is never shown"
    line = refused(packyard("org", "list", env={"PACKYARD_DATABASE_URL": "postgresql://u@no-such-host.invalid/db"}))
    assert "no-such-host.invalid" in line
    assert "PACKYARD_DATABASE_URL" in line


def test_postgresql_refusing_the_login_is_refused(backend: Backend) -> None:
    if backend.name != "postgresql":
        pytest.skip("PostgreSQL lane: set PACKYARD_TEST_POSTGRES_URL")
    admin = sa.make_url(normalize_url(os.environ["PACKYARD_TEST_POSTGRES_URL"]))
    for url, fragment in (
        (admin.set(drivername="postgresql", username="no_such_role", password="pw"), "no_such_role"),
        (admin.set(drivername="postgresql", database="no_such_database"), "no_such_database"),
    ):
        env = {"PACKYARD_DATABASE_URL": url.render_as_string(hide_password=False)}
        line = refused(packyard("org", "list", env=env), "can't connect to PostgreSQL", fragment)
        assert "pw@" not in line


@pytest.mark.parametrize(
    ("url", "fragment"),
    [
        ("mysql://user:pw@127.0.0.1/db", "doesn't run on mysql databases"),
        ("oracle://user@host/db", "doesn't run on oracle databases"),
        ("garbage", "not a database URL"),
        ("postgresql://user@127.0.0.1:5432", "names no database"),
    ],
)
def test_an_unsupported_database_url_is_refused(tmp_path: Path, url: str, fragment: str) -> None:
    for args in (["init", "--data-dir", str(tmp_path / "d")], ["org", "list"]):
        line = refused(packyard(*args, env={"PACKYARD_DATABASE_URL": url}), fragment, "PACKYARD_DATABASE_URL")
        assert "postgresql://" in line  # the fix: what a URL packyard takes looks like


def test_a_file_that_is_not_a_database_is_refused(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    (data_dir / "packyard.db").write_bytes(b"these are not the bytes of a SQLite database\n" * 4)
    for args in (["org", "list"], ["init"]):
        refused(packyard(*args, "--data-dir", str(data_dir)), "is not a SQLite database", "--data-dir")


def _set_revision(url: str, revision: str) -> None:
    engine = sa.create_engine(normalize_url(url), poolclass=sa.pool.NullPool)
    try:
        with engine.begin() as conn:
            conn.execute(sa.text("UPDATE alembic_version SET version_num = :r"), {"r": revision})
    finally:
        engine.dispose()


def test_a_database_migrated_by_a_newer_packyard_is_refused(tmp_path: Path, lane: Lane) -> None:
    _set_revision(lane.url, "f00dfacef00d")
    data_dir = str(lane.data_dir)
    for args in (
        ["init", "--data-dir", data_dir],
        ["serve", "--data-dir", data_dir, "--port", str(free_port()), "--no-tls", "--migrate"],
        ["org", "list", "--data-dir", data_dir],
        ["db", "upgrade", "--data-dir", data_dir],
    ):
        line = refused(packyard(*args, env=lane.env), "migration f00dfacef00d", "doesn't know")
        assert "newer packyard" in line


def test_a_revision_the_migrations_dont_have_is_refused(lane: Lane) -> None:
    line = refused(packyard("db", "downgrade", "nosuchrevision", "--data-dir", str(lane.data_dir), env=lane.env))
    assert "nosuchrevision" in line
    assert "head" in line


def test_pending_migrations_on_postgresql_are_refused(tmp_path: Path, backend: Backend) -> None:
    if backend.name != "postgresql":
        pytest.skip("PostgreSQL lane: SQLite is migrated on start")
    url = backend.new_url(tmp_path)
    try:
        env = {"PACKYARD_DATABASE_URL": url}
        assert packyard("db", "downgrade", "-1", env=env).returncode == 0
        for args in (["serve", "--data-dir", str(tmp_path / "d"), "--port", str(free_port())], ["org", "list"]):
            refused(packyard(*args, env=env), "not at the current version", "packyard db upgrade", "--migrate")
    finally:
        backend.release(url)


# ------------------------------------------------------------------------------------- settings


BAD_SETTINGS = [
    ("PACKYARD_TOKEN_TTL_SECONDS", "an hour"),
    ("PACKYARD_TOKEN_TTL_SECONDS", "-5"),
    ("PACKYARD_HEARTBEAT_GRACE_SECONDS", "0"),
    ("PACKYARD_JOB_INTERVAL_SECONDS", "nan"),
    ("PACKYARD_READ_CACHE_MB", "-1"),
    ("PACKYARD_READ_CACHE_MB", "lots"),
    ("PACKYARD_HEAD_TIMEOUT_SECONDS", "0"),
    ("PACKYARD_BODY_TIMEOUT_SECONDS", "inf"),
    ("PACKYARD_MAX_HEAD_BYTES", "64k"),
    ("PACKYARD_MAX_HEADERS", "-1"),
    ("PACKYARD_MAX_CONNECTIONS", "1.5"),
    ("PACKYARD_PUBLIC_URL", "packyard.example.com"),
    ("PACKYARD_PUBLIC_URL", "ftp://packyard.example.com"),
]


def test_every_bad_setting_is_refused_in_one_line(tmp_path: Path, lane: Lane) -> None:
    serve = ["serve", "--data-dir", str(tmp_path / "fresh"), "--port", str(free_port())]

    def check(setting: tuple[str, str]) -> None:
        name, value = setting
        # Every command reads the settings in one place: all of them through one, some through serve too.
        for args in [["org", "list", "--data-dir", str(lane.data_dir)], *([serve] if "TIMEOUT" in name else [])]:
            line = refused(packyard(*args, env={**lane.env, name: value}), name, repr(value))
            assert line.startswith("packyard: ")

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(check, BAD_SETTINGS))
    assert not (tmp_path / "fresh").exists()


@pytest.mark.parametrize(
    ("env", "args", "fragment"),
    [
        ({"PACKYARD_PORT": "http"}, [], "--port: 'http' is not a port number"),
        ({}, ["--port", "65536"], "--port: '65536' is not a port number"),
        ({"PACKYARD_WORKERS": "0"}, [], "--workers: '0' is not a number of workers"),
        ({}, ["--workers", "many"], "--workers: 'many' is not a number of workers"),
        ({}, ["--log-level", "loud"], "--log-level: invalid choice: 'loud'"),
        ({}, ["--nonsense"], "unrecognized arguments: --nonsense"),
    ],
)
def test_a_bad_flag_is_refused_in_one_line(tmp_path: Path, env: dict[str, str], args: list[str], fragment: str) -> None:
    result = packyard("serve", "--data-dir", str(tmp_path / "d"), *args, env=env)
    line = refused(result, fragment, "--help`)", status=2)
    assert line.startswith("packyard")
    assert not (tmp_path / "d").exists()


def test_bad_tls_files_are_refused_before_anything_is_printed(tmp_path: Path) -> None:
    files = ensure_local_tls(tmp_path / "certs")
    not_pem = tmp_path / "not.pem"
    not_pem.write_text("hello")
    fresh = tmp_path / "fresh"
    base = ["serve", "--data-dir", str(fresh), "--port", str(free_port())]
    refused(packyard(*base, "--tls-cert", str(files.cert)), "--tls-cert and --tls-key go together")
    refused(packyard(*base, "--tls-cert", str(tmp_path / "nope.pem"), "--tls-key", str(files.key)), "no such file")
    refused(
        packyard(*base, "--tls-cert", str(not_pem), "--tls-key", str(files.key)),
        "not a PEM certificate and its private key",
    )
    refused(  # a certificate with another certificate's key
        packyard(*base, "--tls-cert", str(files.cert), "--tls-key", str(ensure_local_tls(tmp_path / "other").key)),
        "not a PEM certificate and its private key",
    )
    assert not fresh.exists()


def test_an_unknown_command_is_one_line(tmp_path: Path) -> None:
    line = refused(packyard("serv"), "invalid choice: 'serv'", "packyard --help", status=2)
    assert line.startswith("packyard: ")
    refused(packyard("principal", "create", "--org", "x", "--role", "root"), "invalid choice: 'root'", status=2)


# ---------------------------------------------------------------------------------------- --help


def test_help_describes_every_command_and_flag() -> None:
    top = packyard("--help")
    assert top.returncode == 0
    for command in ("init", "serve", "db", "org", "project", "principal", "version", "--version"):
        assert command in top.stdout
    serve = packyard("serve", "--help").stdout
    for flag in ("--host", "--port", "--no-tls", "--tls-cert", "--tls-key", "--migrate", "--workers", "--log-level"):
        assert flag in serve
    for variable in ("PACKYARD_DATA_DIR", "PACKYARD_HOST", "PACKYARD_PORT", "PACKYARD_WORKERS"):
        assert variable in serve
    assert "8443" in serve
    assert "8080" in serve
    org_list = packyard("org", "list", "--help").stdout
    assert "packyard init" in org_list  # an admin command names what makes the registry it needs


def _parsers(parser: argparse.ArgumentParser, path: str = "packyard") -> Iterator[tuple[str, argparse.ArgumentParser]]:
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _parsers(sub, f"{path} {name}")


def test_every_command_and_flag_has_help() -> None:
    seen = 0
    for path, parser in _parsers(build_parser()):
        for action in parser._actions:
            if action.help == argparse.SUPPRESS or isinstance(action, argparse._HelpAction):
                continue
            if isinstance(action, argparse._SubParsersAction):
                for choice in action._choices_actions:
                    assert choice.help, f"{path} {choice.dest}: no help"
                continue
            assert action.help, f"{path} {'/'.join(action.option_strings) or action.dest}: no help"
            seen += 1
    assert seen > 30
