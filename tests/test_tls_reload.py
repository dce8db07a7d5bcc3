"""The reloader on a live SSLContext, in process: what it loads, what it refuses, when it renews (by an
injected clock), checked with real TLS handshakes. The same behaviour in real `packyard serve` processes
is in tests/test_tls_serve.py; the printed HCP_* block is checked here by bash itself."""

from __future__ import annotations

import logging
import os
import shutil
import ssl
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509

from packyard import hcp_env
from packyard.clock import ManualClock
from packyard.tls import DEFAULT_HOSTS, ensure_local_tls, renew_at
from packyard.tls_reload import CertSource, Reloader, certificate_hosts, prepare, reload_interval
from tests.support.tlsca import Authority, client_for, make_ca, presented, replace_file, write_pair
from tests.test_tls import tls_server

RELOAD_LOG = "packyard.tls_reload"


@pytest.fixture(scope="module")
def ca_a() -> Authority:
    return make_ca("test CA a")


@pytest.fixture(scope="module")
def ca_b() -> Authority:
    return make_ca("test CA b")


def reloader_for(source: CertSource, clock: ManualClock | None = None) -> Reloader:
    reloader = Reloader(ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER), source, clock or ManualClock(datetime.now(UTC)))
    reloader.adopt()
    return reloader


def given(tmp_path: Path, ca: Authority) -> tuple[CertSource, x509.Certificate]:
    source = CertSource(tmp_path / "cert.pem", tmp_path / "key.pem", interval=0.1)
    issued = ca.issue("localhost")
    write_pair(source.cert, source.key, issued)
    return source, issued.leaf


def reload_lines(caplog: pytest.LogCaptureFixture, level: int) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == RELOAD_LOG and r.levelno == level]


# --------------------------------------------------------------------------- given files


def test_replaced_files_are_served_from_the_next_handshake(tmp_path: Path, ca_a: Authority, ca_b: Authority) -> None:
    source, leaf_a = given(tmp_path, ca_a)
    reloader = reloader_for(source)
    client = client_for(ca_a.pem, ca_b.pem)
    with tls_server(None, context=reloader.context) as server:
        assert presented(server.host, server.port, client, "localhost") == leaf_a
        assert not reloader.check(), "nothing changed"

        issued_b = ca_b.issue("localhost")
        write_pair(source.cert, source.key, issued_b)
        assert reloader.check()
        assert presented(server.host, server.port, client, "localhost") == issued_b.leaf
        assert reloader.serving is not None
        assert reloader.serving.leaf == issued_b.leaf
        # Only ca_b's certificate is served now: a client trusting only ca_a refuses it.
        with pytest.raises(ssl.SSLCertVerificationError):
            presented(server.host, server.port, client_for(ca_a.pem), "localhost")


def test_mismatched_pair_is_refused_once_and_the_old_certificate_kept(
    tmp_path: Path, ca_a: Authority, ca_b: Authority, caplog: pytest.LogCaptureFixture
) -> None:
    source, leaf_a = given(tmp_path, ca_a)
    reloader = reloader_for(source)
    client = client_for(ca_a.pem, ca_b.pem)
    issued_b = ca_b.issue("localhost")
    with caplog.at_level(logging.INFO, logger=RELOAD_LOG), tls_server(None, context=reloader.context) as server:
        replace_file(source.cert, issued_b.chain_pem)  # the certificate is there, its key not yet
        assert not reloader.check()
        assert not reloader.check()
        warnings = reload_lines(caplog, logging.WARNING)
        assert len(warnings) == 1, warnings  # one line per content, not one per check
        assert "does not belong to the certificate" in warnings[0]
        assert "still serving localhost" in warnings[0]
        assert presented(server.host, server.port, client, "localhost") == leaf_a

        replace_file(source.key, issued_b.key_pem)
        assert reloader.check()
        assert presented(server.host, server.port, client, "localhost") == issued_b.leaf
        assert any("now serving localhost" in line for line in reload_lines(caplog, logging.INFO))


@pytest.mark.parametrize("which", ["cert", "key"])
def test_half_written_file_is_refused(
    tmp_path: Path, ca_a: Authority, ca_b: Authority, caplog: pytest.LogCaptureFixture, which: str
) -> None:
    source, leaf_a = given(tmp_path, ca_a)
    reloader = reloader_for(source)
    issued_b = ca_b.issue("localhost")
    full = issued_b.chain_pem if which == "cert" else issued_b.key_pem
    # Written in place, and read half-way through: the file ends in the middle of a PEM block.
    other = source.key if which == "cert" else source.cert
    other.write_bytes(issued_b.key_pem if which == "cert" else issued_b.chain_pem)
    (source.cert if which == "cert" else source.key).write_bytes(full[: len(full) // 3])  # inside the first block
    with caplog.at_level(logging.WARNING, logger=RELOAD_LOG), tls_server(None, context=reloader.context) as server:
        assert not reloader.check()
        assert "not whole PEM" in reload_lines(caplog, logging.WARNING)[0]
        assert presented(server.host, server.port, client_for(ca_a.pem), "localhost") == leaf_a

        (source.cert if which == "cert" else source.key).write_bytes(full)  # the write completes
        assert reloader.check()
        assert presented(server.host, server.port, client_for(ca_b.pem), "localhost") == issued_b.leaf


def test_a_leaf_of_a_chain_file_cut_between_certificates_is_not_served_alone(tmp_path: Path, ca_a: Authority) -> None:
    source, _ = given(tmp_path, ca_a)
    reloader = reloader_for(source)
    issued = ca_a.issue("localhost")
    leaf_only_and_a_half = issued.chain_pem[: len(issued.chain_pem) - 100]  # the CA's block is cut short
    replace_file(source.key, issued.key_pem)
    replace_file(source.cert, leaf_only_and_a_half)
    assert not reloader.check()
    replace_file(source.cert, issued.chain_pem)
    assert reloader.check()


def test_files_touched_or_rewritten_unchanged_are_not_reloaded(
    tmp_path: Path, ca_a: Authority, caplog: pytest.LogCaptureFixture
) -> None:
    source, _ = given(tmp_path, ca_a)
    reloader = reloader_for(source)
    serving = reloader.serving
    with caplog.at_level(logging.INFO, logger=RELOAD_LOG):
        os.utime(source.cert)
        assert not reloader.check()
        replace_file(source.key, source.key.read_bytes())  # a new inode, the same bytes
        assert not reloader.check()
    assert reloader.serving is serving
    assert reload_lines(caplog, logging.INFO) == []


def test_missing_files_keep_the_served_certificate(tmp_path: Path, ca_a: Authority) -> None:
    source, leaf_a = given(tmp_path, ca_a)
    reloader = reloader_for(source)
    source.cert.unlink()
    assert not reloader.check()
    with tls_server(None, context=reloader.context) as server:
        assert presented(server.host, server.port, client_for(ca_a.pem), "localhost") == leaf_a


# --------------------------------------------------------------------------- the generated certificate


def test_generated_certificate_is_renewed_when_a_third_of_its_life_is_left(tmp_path: Path) -> None:
    real_now = datetime.now(UTC).replace(microsecond=0)  # certificates keep whole seconds
    issued_at = real_now - timedelta(days=21)
    files = ensure_local_tls(tmp_path, now=issued_at)
    ca_pem = files.ca_cert.read_bytes()
    source = CertSource(files.cert, files.key, interval=0.1, generated_in=tmp_path, hosts=DEFAULT_HOSTS)
    clock = ManualClock(issued_at + timedelta(days=19))
    reloader = reloader_for(source, clock)
    first = reloader.serving
    assert first is not None
    assert renew_at(first.leaf) > clock.now()

    assert not reloader.due()
    assert not reloader.check(), "11 of 30 days left: not yet"
    assert reloader.serving is first

    clock.set(real_now)  # 9 days left
    assert reloader.due()
    assert reloader.check()
    renewed = reloader.serving
    assert renewed is not None
    assert renewed.leaf != first.leaf
    assert files.ca_cert.read_bytes() == ca_pem, "the CA is kept"
    assert renewed.leaf.not_valid_before_utc == real_now - timedelta(minutes=1)
    assert not reloader.due()
    with tls_server(None, context=reloader.context) as server:
        assert presented(server.host, server.port, client_for(files.ca_cert), "localhost") == renewed.leaf


def test_generated_certificate_removed_is_issued_again_and_served(tmp_path: Path) -> None:
    files = ensure_local_tls(tmp_path)
    source = CertSource(files.cert, files.key, interval=0.1, generated_in=tmp_path, hosts=DEFAULT_HOSTS)
    reloader = reloader_for(source)
    old = reloader.serving
    files.cert.unlink()
    assert reloader.check()
    assert reloader.serving is not None
    assert old is not None
    assert reloader.serving.leaf != old.leaf
    with tls_server(None, context=reloader.context) as server:
        assert presented(server.host, server.port, client_for(files.ca_cert), "127.0.0.1") == reloader.serving.leaf


def test_generated_certificate_issued_by_another_process_is_loaded_not_reissued(tmp_path: Path) -> None:
    files = ensure_local_tls(tmp_path)
    source = CertSource(files.cert, files.key, interval=0.1, generated_in=tmp_path, hosts=DEFAULT_HOSTS)
    reloader = reloader_for(source)
    # Another worker (here: the test) renewed it, for other names: this one serves that certificate and
    # does not answer with one of its own, so two servers never take turns re-issuing.
    ensure_local_tls(tmp_path, hosts=(*DEFAULT_HOSTS, "packyard.example"))
    written = files.cert.read_bytes()
    assert reloader.check()
    assert reloader.serving is not None
    assert reloader.serving.cert_pem == written
    assert not reloader.check()
    assert files.cert.read_bytes() == written


# --------------------------------------------------------------------------- settings and startup checks


def test_reload_interval_from_the_environment() -> None:
    assert reload_interval({}) == 10.0
    assert reload_interval({"PACKYARD_TLS_RELOAD_SECONDS": "0.25"}) == 0.25
    for bad in ("0", "-1", "soon", "nan", "inf"):
        with pytest.raises(SystemExit, match="PACKYARD_TLS_RELOAD_SECONDS must be a positive number of seconds"):
            reload_interval({"PACKYARD_TLS_RELOAD_SECONDS": bad})


def test_given_pair_that_does_not_match_is_refused_at_start(tmp_path: Path, ca_a: Authority) -> None:
    a, b = ca_a.issue("localhost"), ca_a.issue("localhost")
    (tmp_path / "cert.pem").write_bytes(a.chain_pem)
    (tmp_path / "key.pem").write_bytes(b.key_pem)
    with pytest.raises(SystemExit, match=r"^packyard: can't serve --tls-cert .* the key does not belong"):
        prepare(tmp_path, str(tmp_path / "cert.pem"), str(tmp_path / "key.pem"), (), "127.0.0.1")
    with pytest.raises(SystemExit, match=r"^packyard: can't read .*missing.pem: No such file"):
        prepare(tmp_path, str(tmp_path / "missing.pem"), str(tmp_path / "key.pem"), (), "127.0.0.1")


def test_hostnames_from_flags_or_environment() -> None:
    env = {"PACKYARD_HOSTNAMES": "Packyard.Example.COM, 192.0.2.10,,packyard.example.com"}
    assert hcp_env.hostnames(None, env) == ("packyard.example.com", "192.0.2.10")
    assert hcp_env.hostnames(["other.example", "[2001:db8::1]"], env) == ("other.example", "2001:db8::1")
    assert hcp_env.hostnames(None, {}) == ()
    for bad in ("https://packyard.example", "packyard.example:8443", "two words"):
        with pytest.raises(SystemExit, match=r"^packyard: --hostname '.*' is not a DNS name or an IP address"):
            hcp_env.hostnames([bad], {})
    with pytest.raises(SystemExit, match=r"^packyard: PACKYARD_HOSTNAMES 'a/b' is not"):
        hcp_env.hostnames(None, {"PACKYARD_HOSTNAMES": "ok.example,a/b"})


def test_certificate_names_the_loopback_hosts_the_hostnames_and_a_specific_listen_address() -> None:
    assert certificate_hosts(("packyard.example",), "0.0.0.0") == (*DEFAULT_HOSTS, "packyard.example")  # noqa: S104
    assert certificate_hosts((), "192.0.2.7") == (*DEFAULT_HOSTS, "192.0.2.7")
    assert certificate_hosts(("192.0.2.7",), "192.0.2.7") == (*DEFAULT_HOSTS, "192.0.2.7")
    assert certificate_hosts((), "::") == DEFAULT_HOSTS
    assert certificate_hosts((), "localhost") == DEFAULT_HOSTS


# --------------------------------------------------------------------------- the printed block, in bash


def sourced(tmp_path: Path, block: str) -> dict[str, str]:
    """The environment after bash sources ``block`` under `set -eu`; fails on any shell error."""
    bash = shutil.which("bash")
    if bash is None:
        pytest.skip("bash is not installed")
    script = tmp_path / "block.sh"
    script.write_text(block + "\n")
    syntax = subprocess.run([bash, "-n", str(script)], capture_output=True, text=True, timeout=10, check=False)
    assert syntax.returncode == 0, syntax.stderr
    run = subprocess.run(
        [bash, "-c", 'set -eu; source "$1"; env -0', "bash", str(script)],
        capture_output=True,
        timeout=10,
        check=False,
        env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")},
    )
    assert run.returncode == 0, run.stderr
    assert run.stderr == b"", "sourcing the block printed errors"
    pairs = (item.decode().split("=", 1) for item in run.stdout.split(b"\0") if item)
    return {k: v for k, v in pairs if k.startswith(("HCP_", "SSL_"))}


def test_block_on_a_first_start_sources_into_the_real_values(tmp_path: Path) -> None:
    data_dir = tmp_path / "it's a $HOME `dir`"
    block = hcp_env.block(
        data_dir=data_dir,
        listen_host="0.0.0.0",  # noqa: S104
        port=8443,
        organization_id="org-1",
        project_id="project-1",
        names=("packyard.example.com", "192.0.2.10"),
        ca_bundle=data_dir / "tls" / "ca-bundle.pem",
        credentials=("the-client", "s3cr3t;rm -rf /"),
    )
    assert sourced(tmp_path, block) == {
        "HCP_API_HOST": "packyard.example.com:8443",
        "HCP_AUTH_URL": "https://packyard.example.com:8443",
        "HCP_ORGANIZATION_ID": "org-1",
        "HCP_PROJECT_ID": "project-1",
        "HCP_CLIENT_ID": "the-client",
        "HCP_CLIENT_SECRET": "s3cr3t;rm -rf /",
        "SSL_CERT_FILE": str(data_dir / "tls" / "ca-bundle.pem"),
    }
    assert "<" not in block, "no placeholders in angle brackets"


def test_block_on_a_later_start_comments_out_the_credentials(tmp_path: Path) -> None:
    block = hcp_env.block(
        data_dir=tmp_path, listen_host="::1", port=9443, organization_id="o", project_id="p", ca_bundle=None
    )
    env = sourced(tmp_path, block)
    assert env == {
        "HCP_API_HOST": "[::1]:9443",
        "HCP_AUTH_URL": "https://[::1]:9443",
        "HCP_ORGANIZATION_ID": "o",
        "HCP_PROJECT_ID": "p",
    }
    assert "# export HCP_CLIENT_ID=...       (printed once by `packyard init` or `packyard principal create`)" in block


def test_block_without_tls_says_so_in_shell(tmp_path: Path) -> None:
    block = hcp_env.block(
        data_dir=tmp_path, listen_host="127.0.0.1", port=8080, organization_id="o", project_id="p", tls=False
    )
    env = sourced(tmp_path, block)
    assert env["HCP_API_TLS"] == "disabled"
    assert env["HCP_API_HOST"] == "127.0.0.1:8080"
    assert "SSL_CERT_FILE" not in env
