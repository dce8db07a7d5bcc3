"""Files at rest: whatever the umask, every file packyard writes is 0600 and every directory it creates
0700; files an older packyard left open are tightened on the next start; a data directory that was
already open is left as it is, and `packyard serve` says once how to close it. Real `packyard`
processes, with the umask set in the child."""

from __future__ import annotations

import contextlib
import os
import signal
import ssl
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.server import free_port

pytestmark = pytest.mark.slow

START_TIMEOUT = 20.0
STOP_TIMEOUT = 15.0


def clean_env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PACKYARD_")}
    env["XDG_DATA_HOME"] = str(tmp_path / "xdg")
    return env


def packyard(tmp_path: Path, umask: int, *args: str, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "packyard", *args],
        env=env or clean_env(tmp_path),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        umask=umask,
        check=False,
    )
    assert done.returncode == 0, f"packyard {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout + done.stderr


@contextlib.contextmanager
def serving(tmp_path: Path, data_dir: Path, umask: int) -> Iterator[tuple[str, Path]]:
    """`packyard serve` (HTTPS with the local CA) on data_dir, once it has answered a request; yields its
    base URL and its output file, and stops it with SIGTERM."""
    port = free_port()
    log = tmp_path / f"serve-{port}.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "packyard", "serve", "--data-dir", str(data_dir), "--port", str(port)],
            env=clean_env(tmp_path),
            cwd=tmp_path,
            stdout=out,
            stderr=subprocess.STDOUT,
            umask=umask,
        )
    url = f"https://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if proc.poll() is not None:
                pytest.fail(f"packyard serve exited with {proc.returncode}:\n{log.read_text()}")
            try:
                context = ssl.create_default_context(cafile=str(data_dir / "tls" / "ca.pem"))
                if httpx.get(url + "/healthz", verify=context, timeout=0.5).status_code == 200:
                    break
            except (OSError, ssl.SSLError, httpx.HTTPError):
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"packyard serve was not healthy within {START_TIMEOUT}s:\n{log.read_text()}")
            with contextlib.suppress(subprocess.TimeoutExpired):  # a bounded pause that notices an exit
                proc.wait(timeout=0.1)
        # The database's -wal, -shm and -writer files exist now: serve's start wrote (its default tenant)
        # and the answered request read.
        yield url, log
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


def modes(root: Path) -> dict[str, int]:
    """The permission bits of root and of everything under it, by path relative to root."""
    found = {".": stat.S_IMODE(root.stat().st_mode)}
    for path in root.rglob("*"):
        found[str(path.relative_to(root))] = stat.S_IMODE(path.lstat().st_mode)
    return found


def assert_private(root: Path, *, root_mode: int = 0o700) -> None:
    found = modes(root)
    expected = {name: (root_mode if name == "." else 0o700 if (root / name).is_dir() else 0o600) for name in found}
    assert {k: oct(v) for k, v in found.items()} == {k: oct(v) for k, v in expected.items()}


EXPECTED_FILES = {
    "packyard.db",
    "packyard.db-wal",
    "packyard.db-shm",
    "packyard.db-writer",
    "secret.key",
    "tls",
    "tls/ca.pem",
    "tls/ca-key.pem",
    "tls/server.pem",
    "tls/server-key.pem",
}


def warnings(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.startswith("warning:")]


@pytest.mark.parametrize("umask", [0o022, 0o000], ids=["umask-022", "umask-000"])
def test_a_new_data_dir_and_everything_in_it_are_private(tmp_path: Path, umask: int) -> None:
    data_dir = tmp_path / "new" / "data"
    init_output = packyard(tmp_path, umask, "init", "--data-dir", str(data_dir))
    assert stat.S_IMODE(data_dir.parent.stat().st_mode) == 0o700  # a parent packyard made, too
    assert_private(data_dir)
    with serving(tmp_path, data_dir, umask) as (_url, log):
        assert set(modes(data_dir)) >= EXPECTED_FILES, sorted(modes(data_dir))
        assert_private(data_dir)
    assert_private(data_dir)
    assert warnings(init_output + log.read_text()) == []


def test_a_data_dir_open_to_others_keeps_its_mode_and_serve_says_once_how_to_close_it(tmp_path: Path) -> None:
    data_dir = tmp_path / "shared"
    data_dir.mkdir()
    data_dir.chmod(0o755)
    packyard(tmp_path, 0o022, "init", "--data-dir", str(data_dir))
    with serving(tmp_path, data_dir, 0o022) as (_url, log):
        assert set(modes(data_dir)) >= EXPECTED_FILES
        assert_private(data_dir, root_mode=0o755)
    lines = warnings(log.read_text())
    assert len(lines) == 1, log.read_text()
    assert "0755" in lines[0]
    assert f"chmod 700 {data_dir}" in lines[0]


def test_files_an_older_packyard_left_open_are_tightened_on_the_next_start(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    packyard(tmp_path, 0o022, "init", "--data-dir", str(data_dir))
    with serving(tmp_path, data_dir, 0o022):
        pass
    # What an older packyard, or a umask of 022, left behind.
    for name in ("packyard.db", "packyard.db-writer", "secret.key", "tls/ca.pem", "tls/server.pem", "tls/.lock"):
        (data_dir / name).chmod(0o644)
    (data_dir / "tls").chmod(0o755)
    data_dir.chmod(0o700)
    assert modes(data_dir)["packyard.db"] == 0o644
    with serving(tmp_path, data_dir, 0o022) as (_url, log):
        assert_private(data_dir)
    assert warnings(log.read_text()) == []


def test_a_sqlite_database_outside_the_data_dir_is_private_too(tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir(mode=0o755)
    database = elsewhere / "packyard.db"
    env = clean_env(tmp_path) | {"PACKYARD_DATABASE_URL": f"sqlite:///{database}"}
    packyard(tmp_path, 0o022, "db", "--data-dir", str(tmp_path / "data"), "upgrade", env=env)
    assert stat.S_IMODE(database.stat().st_mode) == 0o600
    database.chmod(0o644)
    packyard(tmp_path, 0o022, "org", "list", "--data-dir", str(tmp_path / "data"), env=env)
    assert {name: oct(mode) for name, mode in modes(elsewhere).items() if name != "."} == {
        name: "0o600" for name in modes(elsewhere) if name != "."
    }
    assert "packyard.db-writer" in modes(elsewhere)


def test_a_data_dir_that_cant_be_made_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("")
    for data_dir in (tmp_path / "a-file", tmp_path / "a-file" / "data"):
        done = subprocess.run(
            [sys.executable, "-m", "packyard", "init", "--data-dir", str(data_dir)],
            env=clean_env(tmp_path),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 1
        assert done.stderr == (
            f"packyard: the data directory {data_dir} is a file, or lies under one: "
            "choose another --data-dir (or PACKYARD_DATA_DIR)\n"
        )
