"""`packyard serve` as a real process on 127.0.0.1: what it prints, HTTPS with the local CA, plain HTTP,
custom certificates, the token endpoint over the wire, and a clean exit on SIGTERM."""

from __future__ import annotations

import base64
import contextlib
import http.client
import json
import os
import re
import signal
import socket
import ssl
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from packyard.tls import ensure_local_tls

pytestmark = pytest.mark.slow

START_TIMEOUT = 15.0
STOP_TIMEOUT = 10.0
GO_FORM = "grant_type=client_credentials&audience=https%3A%2F%2Fapi.hashicorp.cloud"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def clean_env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PACKYARD_")}
    env["XDG_DATA_HOME"] = str(tmp_path / "xdg")
    return env


@dataclass
class Response:
    status: int
    body: Any
    headers: dict[str, str] = field(default_factory=dict)


def request(
    scheme: str,
    host: str,
    port: int,
    method: str,
    path: str,
    *,
    context: ssl.SSLContext | None = None,
    body: str | None = None,
    headers: dict[str, str] | None = None,
    timeout: float = 5.0,
) -> Response:
    conn: http.client.HTTPConnection
    if scheme == "https":
        conn = http.client.HTTPSConnection(host, port, context=context, timeout=timeout)
    else:
        conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request(method, path, body=body.encode() if body is not None else None, headers=headers or {})
        response = conn.getresponse()
        raw = response.read()
        return Response(response.status, json.loads(raw) if raw else None, dict(response.getheaders()))
    finally:
        conn.close()


@dataclass
class Server:
    proc: subprocess.Popen[bytes]
    port: int
    stdout_path: Path
    stderr_path: Path

    def output(self) -> str:
        return self.stdout_path.read_text()

    def diagnostics(self) -> str:
        return f"stdout:\n{self.output()}\nstderr:\n{self.stderr_path.read_text()}"

    def wait_ready(self, scheme: str, cafile: Path | None = None) -> None:
        """Poll /healthz with short timeouts until it answers 200; bounded by START_TIMEOUT.

        With `cafile` (which the server may still be writing) the answer must verify against it."""
        deadline = time.monotonic() + START_TIMEOUT
        last: object = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"packyard serve exited with {self.proc.returncode}\n{self.diagnostics()}")
            try:
                context = ssl.create_default_context(cafile=str(cafile)) if cafile else None
                response = request(scheme, "127.0.0.1", self.port, "GET", "/healthz", context=context, timeout=0.5)
            except (OSError, http.client.HTTPException) as exc:
                last = exc
            else:
                if response.status == 200:
                    return
                last = response
            with contextlib.suppress(subprocess.TimeoutExpired):  # a bounded pause that notices an early exit
                self.proc.wait(timeout=0.1)
        pytest.fail(f"packyard serve was not healthy within {START_TIMEOUT}s (last: {last!r})\n{self.diagnostics()}")

    def terminate(self) -> tuple[int, float]:
        """SIGTERM; the exit code and how long the process took to exit."""
        started = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(timeout=STOP_TIMEOUT)
        return code, time.monotonic() - started


@contextlib.contextmanager
def serving(tmp_path: Path, data_dir: Path, *args: str, name: str = "serve") -> Iterator[Server]:
    port = free_port()
    stdout_path = tmp_path / f"{name}.out"
    stderr_path = tmp_path / f"{name}.err"
    with stdout_path.open("wb") as out, stderr_path.open("wb") as err:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "packyard",
                "serve",
                "--data-dir",
                str(data_dir),
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                *args,
            ],
            cwd=tmp_path,
            env=clean_env(tmp_path),
            stdout=out,
            stderr=err,
        )
    server = Server(proc, port, stdout_path, stderr_path)
    try:
        yield server
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=STOP_TIMEOUT)


def exports(output: str) -> dict[str, str]:
    found = {}
    for line in output.splitlines():
        match = re.match(r"^\s*export (HCP_[A-Z_]+|SSL_CERT_FILE)=(\S+)", line)
        if match:
            found[match.group(1)] = match.group(2)
    return found


def printed_credentials(output: str) -> dict[str, str]:
    found = {}
    for line in output.splitlines():
        match = re.match(r"^(client_id|client_secret|organization_id|project_id): (\S+)$", line)
        if match:
            found[match.group(1)] = match.group(2)
    return found


def basic(client_id: str, client_secret: str) -> str:
    return "Basic " + base64.b64encode(f"{client_id}:{client_secret}".encode()).decode()


def token_and_registry(
    scheme: str, host: str, port: int, creds: dict[str, str], org_id: str, project_id: str, **kw: Any
) -> None:
    """The Go SDK's token call (Basic on /oauth2/token, form on /oauth/token), then GetRegistry with it."""
    form_headers = {"Content-Type": "application/x-www-form-urlencoded"}
    calls = [
        (
            "/oauth2/token",
            GO_FORM,
            {**form_headers, "Authorization": basic(creds["client_id"], creds["client_secret"])},
        ),
        (
            "/oauth/token",
            f"{GO_FORM}&client_id={creds['client_id']}&client_secret={creds['client_secret']}",
            form_headers,
        ),
    ]
    prefix = f"/packer/2021-04-30/organizations/{org_id}/projects/{project_id}"
    for path, form, headers in calls:
        token = request(scheme, host, port, "POST", path, body=form, headers=headers, **kw)
        assert token.status == 200, (path, token.status, token.body)
        assert token.headers.get("content-type") == "application/json"
        assert token.body["token_type"] == "Bearer"
        assert isinstance(token.body["expires_in"], int)
        bearer = {"Authorization": f"Bearer {token.body['access_token']}", "Accept": "application/json"}
        registry = request(scheme, host, port, "GET", prefix + "/registry", headers=bearer, **kw)
        assert registry.status == 200, registry.body
        assert registry.body["registry"]["id"]
        no_token = request(scheme, host, port, "GET", prefix + "/registry", **kw)
        assert no_token.status == 401
        assert no_token.body["code"] == 16
    wrong = {**form_headers, "Authorization": basic(creds["client_id"], "wrong")}
    denied = request(scheme, host, port, "POST", "/oauth2/token", body=GO_FORM, headers=wrong, **kw)
    assert denied.status == 401
    assert denied.body["error"] == "invalid_client"


def assert_clean_exit(server: Server) -> None:
    code, took = server.terminate()
    assert code == 0, f"exit code {code} after SIGTERM\n{server.diagnostics()}"
    assert took < STOP_TIMEOUT


def test_first_start_serves_https_with_the_local_ca(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    with serving(tmp_path, data_dir) as server:
        ca_file = data_dir / "tls" / "ca.pem"
        server.wait_ready("https", ca_file)
        trusting = ssl.create_default_context(cafile=str(ca_file))
        port = server.port
        output = server.output()

        # The HCP_* block, pointing at this server and its CA.
        env = exports(output)
        assert env["HCP_API_HOST"] == f"127.0.0.1:{port}"
        assert env["HCP_AUTH_URL"] == f"https://127.0.0.1:{port}"
        org_id, project_id = env["HCP_ORGANIZATION_ID"], env["HCP_PROJECT_ID"]
        assert str(uuid.UUID(org_id)) == org_id
        assert str(uuid.UUID(project_id)) == project_id
        # SSL_CERT_FILE is the bundle: the system's roots and packyard's CA, so other tools keep working.
        assert Path(env["SSL_CERT_FILE"]) == data_dir / "tls" / "ca-bundle.pem"
        assert ca_file.read_bytes() in Path(env["SSL_CERT_FILE"]).read_bytes()
        # On a first start the block carries the credentials it just made, ready to paste.
        assert (env["HCP_CLIENT_ID"], env["HCP_CLIENT_SECRET"]) == (
            printed_credentials(output)["client_id"],
            printed_credentials(output)["client_secret"],
        )
        assert "HCP_API_TLS" not in env

        # First start: the admin credentials, printed once, for the same organization and project.
        assert "First start" in output
        creds = printed_credentials(output)
        assert creds.keys() == {"organization_id", "project_id", "client_id", "client_secret"}
        assert (creds["organization_id"], creds["project_id"]) == (org_id, project_id)

        # The certificate verifies for both names the printed variables and browsers use.
        for host in ("127.0.0.1", "localhost"):
            health = request("https", host, port, "GET", "/healthz", context=trusting)
            assert (health.status, health.body) == (200, {"status": "ok"})
        ready = request("https", "127.0.0.1", port, "GET", "/readyz", context=trusting)
        assert ready.status == 200

        # Without the local CA, verification fails.
        with pytest.raises(ssl.SSLCertVerificationError):
            request("https", "127.0.0.1", port, "GET", "/healthz", context=ssl.create_default_context())

        token_and_registry("https", "127.0.0.1", port, creds, org_id, project_id, context=trusting)
        assert_clean_exit(server)

    # A second start on the same data directory reuses everything and prints no new secret.
    with serving(tmp_path, data_dir, name="again") as again:
        again.wait_ready("https", data_dir / "tls" / "ca.pem")
        output = again.output()
        assert "First start" not in output
        assert "client_secret:" not in output
        env = exports(output)
        assert (env["HCP_ORGANIZATION_ID"], env["HCP_PROJECT_ID"]) == (org_id, project_id)
        assert "HCP_CLIENT_ID" not in env, "no secret is known on a later start: the lines are comments"
        assert "# export HCP_CLIENT_SECRET=..." in output
        trusting = ssl.create_default_context(cafile=str(data_dir / "tls" / "ca.pem"))
        token_and_registry("https", "localhost", again.port, creds, org_id, project_id, context=trusting)
        assert_clean_exit(again)


def test_no_tls_serves_plain_http(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    init = subprocess.run(
        [sys.executable, "-m", "packyard", "init", "--data-dir", str(data_dir), "--json"],
        cwd=tmp_path,
        env=clean_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    creds = json.loads(init.stdout)
    with serving(tmp_path, data_dir, "--no-tls") as server:
        server.wait_ready("http")
        output = server.output()
        env = exports(output)
        assert env["HCP_API_TLS"] == "disabled"
        assert env["HCP_API_HOST"] == f"127.0.0.1:{server.port}"
        assert env["HCP_AUTH_URL"].startswith("https://"), "every HCP SDK insists on an https auth URL"
        assert "SSL_CERT_FILE" not in env
        assert (env["HCP_ORGANIZATION_ID"], env["HCP_PROJECT_ID"]) == (creds["organization_id"], creds["project_id"])
        assert "client_secret:" not in output, "init already created the principal"
        assert not (data_dir / "tls").exists(), "--no-tls must not generate certificates"

        health = request("http", "127.0.0.1", server.port, "GET", "/healthz")
        assert (health.status, health.body) == (200, {"status": "ok"})
        with pytest.raises(ssl.SSLError):
            request("https", "127.0.0.1", server.port, "GET", "/healthz", context=ssl.create_default_context())
        token_and_registry("http", "127.0.0.1", server.port, creds, creds["organization_id"], creds["project_id"])
        assert_clean_exit(server)


def test_custom_certificate_and_key_are_served(tmp_path: Path) -> None:
    files = ensure_local_tls(tmp_path / "certs")
    data_dir = tmp_path / "data"
    with serving(tmp_path, data_dir, "--tls-cert", str(files.cert), "--tls-key", str(files.key)) as server:
        server.wait_ready("https", files.ca_cert)
        trusting = ssl.create_default_context(cafile=str(files.ca_cert))
        output = server.output()
        env = exports(output)
        assert env["HCP_AUTH_URL"] == f"https://127.0.0.1:{server.port}"
        assert "HCP_API_TLS" not in env
        assert "SSL_CERT_FILE" not in env, "packyard's CA is not involved with a given certificate"
        assert not (data_dir / "tls").exists(), "no local CA is generated when a certificate is given"

        with (
            socket.create_connection(("127.0.0.1", server.port), timeout=5) as raw,
            trusting.wrap_socket(raw, server_hostname="localhost") as tls,
        ):
            served = tls.getpeercert(binary_form=True)
        leaf = x509.load_pem_x509_certificates(files.cert.read_bytes())[0]
        assert served == leaf.public_bytes(serialization.Encoding.DER)

        with pytest.raises(ssl.SSLCertVerificationError):
            request("https", "127.0.0.1", server.port, "GET", "/healthz", context=ssl.create_default_context())
        creds = printed_credentials(output)
        token_and_registry(
            "https",
            "localhost",
            server.port,
            creds,
            env["HCP_ORGANIZATION_ID"],
            env["HCP_PROJECT_ID"],
            context=trusting,
        )
        assert_clean_exit(server)


def test_tls_cert_without_key_is_refused(tmp_path: Path) -> None:
    files = ensure_local_tls(tmp_path / "certs")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "packyard",
            "serve",
            "--data-dir",
            str(tmp_path / "data"),
            "--tls-cert",
            str(files.cert),
        ],
        cwd=tmp_path,
        env=clean_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode != 0
    assert "--tls-key" in result.stderr
    assert "export HCP_" not in result.stdout
