"""TLS for a real host, shown with real `packyard serve` processes: certificate files replaced under a
running server (one worker and several) are served without a restart while open connections carry on;
the generated certificate comes back when removed; the printed HCP_* block, pasted into bash, reaches
the server by its --hostname; and a client in a network namespace the test makes, on a non-loopback
address, verifies the certificate issued with --hostname."""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import re
import shutil
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes

from tests.conftest import Backend
from tests.support.tlsca import client_for, make_ca, presented, replace_file, write_pair
from tests.test_serve import GO_FORM, Server, basic, clean_env, free_port, printed_credentials

pytestmark = pytest.mark.slow

RELOAD_SECONDS = "0.2"
SWAP_TIMEOUT = 10.0  # how long a replaced certificate may take to be served (50 polls)
STOP_TIMEOUT = 15.0


@contextlib.contextmanager
def serve(
    tmp_path: Path, database_url: str, *args: str, host: str = "127.0.0.1", name: str = "serve"
) -> Iterator[Server]:
    port = free_port()
    env = clean_env(tmp_path)
    env.update(PACKYARD_DATABASE_URL=database_url, PACKYARD_TLS_RELOAD_SECONDS=RELOAD_SECONDS)
    out_path, err_path = tmp_path / f"{name}.out", tmp_path / f"{name}.err"
    with out_path.open("wb") as out, err_path.open("wb") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "packyard", "serve", "--host", host, "--port", str(port), *args],
            cwd=tmp_path,
            env=env,
            stdout=out,
            stderr=err,
        )
    server = Server(proc, port, out_path, err_path)
    try:
        yield server
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                proc.kill()
        proc.wait(STOP_TIMEOUT)


@pytest.fixture
def database_url(tmp_path: Path, backend: Backend) -> Iterator[str]:
    url = backend.new_url(tmp_path)
    yield url
    backend.release(url)


def fingerprint(cert: x509.Certificate) -> str:
    return cert.fingerprint(hashes.SHA256()).hex()[:16]


def wait_until_served(
    server: Server, client: ssl.SSLContext, name: str, leaf: x509.Certificate, *, also: Callable[[], None] | None = None
) -> int:
    """Poll new handshakes until ``leaf`` is presented; bounded by SWAP_TIMEOUT. Returns the poll count."""
    deadline = time.monotonic() + SWAP_TIMEOUT
    polls = 0
    while time.monotonic() < deadline:
        polls += 1
        if also is not None:
            also()
        if presented("127.0.0.1", server.port, client, name) == leaf:
            return polls
        with contextlib.suppress(subprocess.TimeoutExpired):  # a bounded pause that notices an early exit
            server.proc.wait(timeout=0.05)
        assert server.proc.poll() is None, server.diagnostics()
    pytest.fail(f"the new certificate was not served within {SWAP_TIMEOUT}s\n{server.diagnostics()}")


class KeptConnection:
    """One HTTPS connection opened before the swap and used across it."""

    def __init__(self, port: int, client: ssl.SSLContext, name: str) -> None:
        raw = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.conn = http.client.HTTPSConnection(name, port, context=client, timeout=5)
        self.conn.sock = client.wrap_socket(raw, server_hostname=name)
        self.requests = 0

    def peer(self) -> x509.Certificate:
        assert isinstance(self.conn.sock, ssl.SSLSocket)
        der = self.conn.sock.getpeercert(binary_form=True)
        assert der is not None
        return x509.load_der_x509_certificate(der)

    def healthz(self) -> None:
        self.conn.request("GET", "/healthz")
        response = self.conn.getresponse()
        assert (response.status, json.loads(response.read())) == (200, {"status": "ok"})
        self.requests += 1

    def close(self) -> None:
        self.conn.close()


def test_replaced_certificate_files_are_served_without_a_restart(tmp_path: Path, database_url: str) -> None:
    ca_a, ca_b = make_ca("test CA a"), make_ca("test CA b")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    first = ca_a.issue("localhost", "127.0.0.1")
    write_pair(cert, key, first)
    client = client_for(ca_a.pem, ca_b.pem)
    with serve(
        tmp_path, database_url, "--data-dir", str(tmp_path / "data"), "--tls-cert", str(cert), "--tls-key", str(key)
    ) as server:
        (tmp_path / "ca-a.pem").write_bytes(ca_a.pem)
        server.wait_ready("https", tmp_path / "ca-a.pem")
        assert presented("127.0.0.1", server.port, client, "localhost") == first.leaf
        kept = KeptConnection(server.port, client, "localhost")
        kept.healthz()
        assert kept.peer() == first.leaf

        second = ca_b.issue("localhost", "127.0.0.1")
        write_pair(cert, key, second)
        wait_until_served(server, client, "localhost", second.leaf, also=kept.healthz)
        # The connection opened before the swap kept working throughout, on the certificate it began with.
        kept.healthz()
        assert kept.peer() == first.leaf
        assert kept.requests >= 2
        assert server.proc.poll() is None, "no restart"

        # A mismatched pair (a new certificate whose key is not there yet) is refused and logged; the
        # certificate being served stays.
        third = ca_a.issue("localhost")
        replace_file(cert, third.chain_pem)
        deadline = time.monotonic() + SWAP_TIMEOUT
        while "does not belong to the certificate" not in server.stderr_path.read_text():
            assert time.monotonic() < deadline, server.diagnostics()
            with contextlib.suppress(subprocess.TimeoutExpired):
                server.proc.wait(timeout=0.05)
        assert presented("127.0.0.1", server.port, client, "localhost") == second.leaf
        replace_file(key, third.key_pem)  # the pair is whole again
        wait_until_served(server, client, "localhost", third.leaf)
        kept.healthz()
        kept.close()
        code, _ = server.terminate()
        assert code == 0, server.diagnostics()
    assert "Traceback" not in server.stderr_path.read_text()


def test_every_worker_reloads(tmp_path: Path, database_url: str) -> None:
    ca_a = make_ca("test CA a")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    write_pair(cert, key, ca_a.issue("localhost", "127.0.0.1"))
    (tmp_path / "ca.pem").write_bytes(ca_a.pem)
    client = client_for(ca_a.pem)
    args = ("--data-dir", str(tmp_path / "data"), "--workers", "2", "--tls-cert", str(cert), "--tls-key", str(key))
    with serve(tmp_path, database_url, *args) as server:
        server.wait_ready("https", tmp_path / "ca.pem")
        new = ca_a.issue("localhost")
        write_pair(cert, key, new)
        wait_until_served(server, client, "localhost", new.leaf)
        # Each worker process says so for itself; two different pids served the new certificate.
        pattern = re.compile(rf"TLS: now serving .*SHA-256 {fingerprint(new.leaf)} \(worker pid (\d+)\)")
        deadline = time.monotonic() + SWAP_TIMEOUT
        while len(set(pattern.findall(server.stderr_path.read_text()))) < 2:
            assert time.monotonic() < deadline, server.diagnostics()
            with contextlib.suppress(subprocess.TimeoutExpired):
                server.proc.wait(timeout=0.05)
        served = {fingerprint(presented("127.0.0.1", server.port, client, "localhost")) for _ in range(20)}
        assert served == {fingerprint(new.leaf)}
        code, _ = server.terminate()
        assert code == 0, server.diagnostics()


def test_generated_certificate_removed_while_serving_is_issued_again(tmp_path: Path, database_url: str) -> None:
    data_dir = tmp_path / "data"
    with serve(tmp_path, database_url, "--data-dir", str(data_dir)) as server:
        ca_file = data_dir / "tls" / "ca.pem"
        server.wait_ready("https", ca_file)
        client = client_for(ca_file)
        before = presented("127.0.0.1", server.port, client, "localhost")
        (data_dir / "tls" / "server.pem").unlink()
        deadline = time.monotonic() + SWAP_TIMEOUT
        while not (data_dir / "tls" / "server.pem").exists():
            assert time.monotonic() < deadline, server.diagnostics()
            with contextlib.suppress(subprocess.TimeoutExpired):
                server.proc.wait(timeout=0.05)
        reissued = x509.load_pem_x509_certificates((data_dir / "tls" / "server.pem").read_bytes())[0]
        assert reissued != before
        wait_until_served(server, client, "localhost", reissued)
        assert ca_file.read_bytes() in (data_dir / "tls" / "server.pem").read_bytes(), "the same CA"


def block_of(output: str) -> str:
    lines = output.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("# packyard serves the HCP Packer API"))
    end = next(i for i, line in enumerate(lines) if line.startswith("# Data directory:"))
    return "\n".join(lines[start : end + 1]) + "\n"


def test_pasted_block_reaches_the_server_by_its_hostname(tmp_path: Path, backend: Backend) -> None:
    bash = shutil.which("bash")
    if bash is None:
        pytest.skip("bash is not installed")
    url = backend.empty_url(tmp_path)  # a first start: the block carries the new credentials
    data_dir = tmp_path / "data dir"
    try:
        args = ("--data-dir", str(data_dir), "--migrate", "--hostname", "packyard.test", "--hostname", "192.0.2.1")
        with serve(tmp_path, url, *args) as server:
            server.wait_ready("https", data_dir / "tls" / "ca.pem")
            output = server.output()
            block = tmp_path / "block.sh"
            block.write_text(block_of(output))
            sourced = subprocess.run(
                [bash, "-c", 'set -eu; source "$1"; env -0', "bash", str(block)],
                capture_output=True,
                timeout=10,
                check=False,
                env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")},
            )
            assert (sourced.returncode, sourced.stderr) == (0, b""), sourced.stderr
            env = dict(item.decode().split("=", 1) for item in sourced.stdout.split(b"\0") if item)
            creds = printed_credentials(output)
            assert env["HCP_API_HOST"] == f"packyard.test:{server.port}"
            assert env["HCP_AUTH_URL"] == f"https://packyard.test:{server.port}"
            assert (env["HCP_CLIENT_ID"], env["HCP_CLIENT_SECRET"]) == (creds["client_id"], creds["client_secret"])
            assert env["SSL_CERT_FILE"] == str(data_dir / "tls" / "ca-bundle.pem")

            # What Packer does with those values: trust SSL_CERT_FILE, reach HCP_AUTH_URL's host (here
            # resolved to 127.0.0.1 by hand) and ask for a token with the client id and secret.
            client = ssl.create_default_context(cafile=env["SSL_CERT_FILE"])
            token = KeptConnection(server.port, client, "packyard.test")
            token.conn.request(
                "POST",
                "/oauth2/token",
                body=GO_FORM,
                headers={
                    "Content-Type": "application/x-www-form-urlencoded",
                    "Authorization": basic(env["HCP_CLIENT_ID"], env["HCP_CLIENT_SECRET"]),
                },
            )
            answer = token.conn.getresponse()
            assert answer.status == 200, answer.read()
            assert json.loads(answer.read())["token_type"] == "Bearer"
            token.close()
            # The second --hostname, an address, is in the certificate too; a name not given is not.
            assert presented("127.0.0.1", server.port, client, "192.0.2.1")
            with pytest.raises(ssl.SSLCertVerificationError):
                presented("127.0.0.1", server.port, client, "other.test")
    finally:
        backend.release(url)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--hostname", "https://packyard.test"), "--hostname 'https://packyard.test' is not a DNS name"),
        (("--tls-cert", "{cert}", "--tls-key", "{other_key}"), "the key does not belong to the certificate"),
    ],
)
def test_bad_tls_settings_stop_serve_with_one_line(tmp_path: Path, args: tuple[str, ...], message: str) -> None:
    ca = make_ca("test CA")
    (tmp_path / "cert.pem").write_bytes(ca.issue("localhost").chain_pem)
    (tmp_path / "other-key.pem").write_bytes(ca.issue("localhost").key_pem)
    filled = [a.format(cert=tmp_path / "cert.pem", other_key=tmp_path / "other-key.pem") for a in args]
    result = subprocess.run(
        [sys.executable, "-m", "packyard", "serve", "--data-dir", str(tmp_path / "data"), *filled],
        cwd=tmp_path,
        env=clean_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode != 0
    assert result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith("packyard: ")
    assert message in result.stderr
    assert "export HCP_" not in result.stdout


# --------------------------------------------------------------------------- a client on another address


NETNS_CLIENT = r"""
import json, socket, ssl, sys
address, port, name = sys.argv[1], int(sys.argv[2]), sys.argv[3]
context = ssl.create_default_context()  # honours SSL_CERT_FILE, as Go does
result = {"roots": context.cert_store_stats()["x509_ca"]}
try:
    with socket.create_connection((address, port), timeout=5) as raw, \
            context.wrap_socket(raw, server_hostname=name) as tls:
        tls.sendall(f"GET /healthz HTTP/1.1\r\nHost: {name}\r\nConnection: close\r\n\r\n".encode())
        answer = b""
        while chunk := tls.recv(4096):
            answer += chunk
        result["status"] = answer.split(b"\r\n", 1)[0].decode()
        result["local"] = tls.getsockname()[0]
except ssl.SSLCertVerificationError as exc:
    result["verify_error"] = exc.verify_message
print(json.dumps(result))
"""


@pytest.fixture
def netns() -> Iterator[tuple[str, str, str]]:
    """A network namespace joined to this one by a veth pair on a private /30: (namespace, host-side
    address, namespace-side address). Removed afterwards."""
    if os.geteuid() != 0:
        pytest.skip("making a network namespace needs root (CI runs as root)")
    ip = shutil.which("ip")
    if ip is None:
        pytest.skip("making a network namespace needs iproute2: apt-get install iproute2 (scripts/test does)")
    n = os.getpid() % 16000
    name, host_if, ns_if = f"pky-tls-{n}", f"pkyt{n}a", f"pkyt{n}b"
    host_addr, ns_addr = f"10.254.{n // 64}.{(n % 64) * 4 + 1}", f"10.254.{n // 64}.{(n % 64) * 4 + 2}"

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([ip, *args], capture_output=True, text=True, timeout=10, check=False)

    made = run("netns", "add", name)
    if made.returncode != 0:
        pytest.skip(f"this machine does not allow network namespaces: {made.stderr.strip()}")
    try:
        for step in (
            ("link", "add", host_if, "type", "veth", "peer", "name", ns_if),
            ("link", "set", ns_if, "netns", name),
            ("addr", "add", f"{host_addr}/30", "dev", host_if),
            ("link", "set", host_if, "up"),
            ("netns", "exec", name, "ip", "addr", "add", f"{ns_addr}/30", "dev", ns_if),
            ("netns", "exec", name, "ip", "link", "set", ns_if, "up"),
        ):
            done = run(*step)
            assert done.returncode == 0, f"ip {' '.join(step)}: {done.stderr}"
        yield name, host_addr, ns_addr
    finally:
        run("link", "del", host_if)  # takes its peer with it
        run("netns", "del", name)


def test_client_on_another_address_verifies_the_certificate_issued_for_its_hostname(
    tmp_path: Path, database_url: str, netns: tuple[str, str, str]
) -> None:
    namespace, host_addr, ns_addr = netns
    data_dir = tmp_path / "data"
    with serve(
        tmp_path, database_url, "--data-dir", str(data_dir), "--hostname", "packyard.test", host=host_addr
    ) as server:
        bundle = data_dir / "tls" / "ca-bundle.pem"
        deadline = time.monotonic() + 20
        while True:  # ready when the certificate it serves verifies with the bundle, by name
            with contextlib.suppress(OSError):  # not listening yet, or the bundle not written yet
                presented(host_addr, server.port, client_for(bundle), "packyard.test")
                break
            assert time.monotonic() < deadline, server.diagnostics()
            assert server.proc.poll() is None, server.diagnostics()
            with contextlib.suppress(subprocess.TimeoutExpired):
                server.proc.wait(timeout=0.1)

        def from_namespace(name: str) -> dict[str, object]:
            env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "SSL_CERT_FILE": str(bundle)}
            run = subprocess.run(
                [
                    "ip",
                    "netns",
                    "exec",
                    namespace,
                    sys.executable,
                    "-c",
                    NETNS_CLIENT,
                    host_addr,
                    str(server.port),
                    name,
                ],
                capture_output=True,
                text=True,
                timeout=30,
                check=False,
                env=env,
            )
            assert run.returncode == 0, run.stderr
            answer: dict[str, object] = json.loads(run.stdout)
            return answer

        by_name = from_namespace("packyard.test")
        assert by_name["status"] == "HTTP/1.1 200 OK", by_name
        assert by_name["local"] == ns_addr, "the client is on the namespace's address, not on loopback"
        # The bundle is the system's roots plus packyard's CA: other servers still verify in that shell.
        assert by_name["roots"] == bundle.read_bytes().count(b"-----BEGIN CERTIFICATE-----")
        assert isinstance(by_name["roots"], int)
        assert by_name["roots"] > 1

        by_address = from_namespace(host_addr)  # the address serve listens on is named too
        assert by_address["status"] == "HTTP/1.1 200 OK", by_address

        wrong = from_namespace("not-given.test")
        assert "status" not in wrong
        assert "mismatch" in str(wrong["verify_error"]).lower(), wrong
        # Request lines go to stderr, written in batches at most 20 ms apart (http/access_log.py): bounded look.
        deadline = time.monotonic() + 10
        while ns_addr not in server.diagnostics() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert ns_addr in server.diagnostics(), "the access log shows the namespace's address"
