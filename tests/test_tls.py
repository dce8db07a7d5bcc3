"""The local CA and server certificate, checked with real TLS handshakes rather than by reading the code."""

from __future__ import annotations

import logging
import os
import socket
import ssl
import stat
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from ipaddress import ip_address
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from packyard.tls import TlsFiles, canonical_host, ensure_local_tls, renew_at, system_roots

TIMEOUT = 5.0
FILE_NAMES = ("ca-key.pem", "ca.pem", "server-key.pem", "server.pem", "ca-bundle.pem")


# --------------------------------------------------------------------------- a real TLS server


@dataclass
class _Server:
    host: str
    port: int
    handshakes_ok: int = 0
    errors: list[BaseException] = field(default_factory=list)


@contextmanager
def tls_server(
    files: TlsFiles | None, host: str = "127.0.0.1", context: ssl.SSLContext | None = None
) -> Iterator[_Server]:
    """Serve TLS with ``files`` (or a ready ``context``) on an ephemeral port; each client gets b"ok\\n"
    after the handshake."""
    if context is None:
        assert files is not None
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(certfile=files.cert, keyfile=files.key)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    listener = socket.socket(family, socket.SOCK_STREAM)
    stop = threading.Event()
    thread: threading.Thread | None = None
    try:
        listener.bind((host, 0))
        listener.listen(8)
        listener.settimeout(0.1)
        server = _Server(host=host, port=listener.getsockname()[1])

        def serve() -> None:
            while not stop.is_set():
                try:
                    conn, _ = listener.accept()
                except TimeoutError:
                    continue
                except OSError as exc:  # listener closed under us
                    server.errors.append(exc)
                    return
                with conn:
                    conn.settimeout(TIMEOUT)
                    try:
                        with context.wrap_socket(conn, server_side=True) as tls:
                            server.handshakes_ok += 1
                            tls.sendall(b"ok\n")
                    except (ssl.SSLError, OSError) as exc:  # a client that rejected us
                        server.errors.append(exc)

        thread = threading.Thread(target=serve, name="tls-test-server", daemon=True)
        thread.start()
        yield server
    finally:
        stop.set()
        if thread is not None:
            thread.join(TIMEOUT)
        listener.close()
    assert thread is not None
    assert not thread.is_alive(), "TLS test server thread did not stop"


def handshake(server: _Server, client: ssl.SSLContext, server_hostname: str) -> bytes:
    """Connect, complete a verified handshake and return what the server sent."""
    with (
        socket.create_connection((server.host, server.port), timeout=TIMEOUT) as raw,
        client.wrap_socket(raw, server_hostname=server_hostname) as tls,
    ):
        return tls.recv(16)


def trusting(files: TlsFiles) -> ssl.SSLContext:
    """A client that trusts only the local CA, with the stricter checks Python 3.13 turns on by default."""
    context = ssl.create_default_context(cafile=files.ca_cert)
    context.verify_flags |= ssl.VERIFY_X509_STRICT
    return context


def read_all(files: TlsFiles) -> dict[str, bytes]:
    return {name: (files.ca_cert.parent / name).read_bytes() for name in FILE_NAMES}


def load_chain(files: TlsFiles) -> list[x509.Certificate]:
    return x509.load_pem_x509_certificates(files.cert.read_bytes())


def load_ca(files: TlsFiles) -> x509.Certificate:
    return x509.load_pem_x509_certificate(files.ca_cert.read_bytes())


def san_of(cert: x509.Certificate) -> x509.SubjectAlternativeName:
    return cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value


@pytest.fixture
def files(tmp_path: Path) -> TlsFiles:
    return ensure_local_tls(tmp_path)


# --------------------------------------------------------------------------- (1) real handshakes


@pytest.mark.parametrize("server_hostname", ["localhost", "127.0.0.1"])
def test_server_certificate_verifies_against_the_local_ca(files: TlsFiles, server_hostname: str) -> None:
    with tls_server(files) as server:
        assert handshake(server, trusting(files), server_hostname) == b"ok\n"
    assert server.handshakes_ok == 1


def test_handshake_over_ipv6_loopback(files: TlsFiles) -> None:
    try:
        probe = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    except OSError:
        pytest.skip("no IPv6 support")
    with probe:
        try:
            probe.bind(("::1", 0))
        except OSError:
            pytest.skip("::1 is not configured")
    with tls_server(files, host="::1") as server:
        assert handshake(server, trusting(files), "::1") == b"ok\n"


def test_client_with_system_trust_store_rejects_the_certificate(files: TlsFiles) -> None:
    system_client = ssl.create_default_context()
    with tls_server(files) as server:
        with pytest.raises(ssl.SSLCertVerificationError):
            handshake(server, system_client, "localhost")
        # The server still works for a client that does trust the local CA.
        assert handshake(server, trusting(files), "localhost") == b"ok\n"
    assert server.handshakes_ok == 1


def test_client_rejects_a_host_name_that_is_not_in_the_certificate(files: TlsFiles) -> None:
    with tls_server(files) as server:
        with pytest.raises(ssl.SSLCertVerificationError, match=r"(?i)hostname|ip address"):
            handshake(server, trusting(files), "example.com")
        assert handshake(server, trusting(files), "localhost") == b"ok\n"


def test_server_pem_is_leaf_then_ca(files: TlsFiles) -> None:
    chain = load_chain(files)
    assert len(chain) == 2
    assert chain[1] == load_ca(files)
    chain[0].verify_directly_issued_by(chain[1])


# --------------------------------------------------------------------------- certificate profile


def test_ca_certificate_profile(files: TlsFiles) -> None:
    ca = load_ca(files)
    assert ca.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "packyard local CA"
    assert ca.subject == ca.issuer
    ca.verify_directly_issued_by(ca)
    public_key = ca.public_key()
    assert isinstance(public_key, ec.EllipticCurvePublicKey)
    assert isinstance(public_key.curve, ec.SECP256R1)

    basic = ca.extensions.get_extension_for_class(x509.BasicConstraints)
    assert basic.critical
    assert basic.value.ca
    assert basic.value.path_length == 0
    usage = ca.extensions.get_extension_for_class(x509.KeyUsage)
    assert usage.critical
    assert usage.value.key_cert_sign
    assert usage.value.crl_sign
    assert not usage.value.digital_signature
    ski = ca.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    assert ski == x509.SubjectKeyIdentifier.from_public_key(public_key)

    lifetime = ca.not_valid_after_utc - ca.not_valid_before_utc
    assert timedelta(days=3649) <= lifetime <= timedelta(days=3651)


def test_server_certificate_profile(tmp_path: Path) -> None:
    now = datetime(2030, 6, 1, 12, 0, tzinfo=UTC)
    files = ensure_local_tls(tmp_path, now=now)
    leaf, ca = load_chain(files)
    assert leaf.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "localhost"
    assert leaf.issuer == ca.subject
    public_key = leaf.public_key()
    assert isinstance(public_key, ec.EllipticCurvePublicKey)
    assert isinstance(public_key.curve, ec.SECP256R1)

    san = san_of(leaf)
    assert san.get_values_for_type(x509.DNSName) == ["localhost"]
    assert set(san.get_values_for_type(x509.IPAddress)) == {ip_address("127.0.0.1"), ip_address("::1")}
    basic = leaf.extensions.get_extension_for_class(x509.BasicConstraints)
    assert basic.critical
    assert not basic.value.ca
    usage = leaf.extensions.get_extension_for_class(x509.KeyUsage)
    assert usage.critical
    assert usage.value.digital_signature
    assert not usage.value.key_cert_sign
    eku = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.SERVER_AUTH]
    aki = leaf.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    ca_ski = ca.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    assert aki.key_identifier == ca_ski.digest

    assert leaf.not_valid_before_utc == now - timedelta(minutes=1)
    assert leaf.not_valid_after_utc - leaf.not_valid_before_utc == timedelta(days=30)


# --------------------------------------------------------------------------- (2) file modes


def test_private_keys_are_0600_and_directory_0700(files: TlsFiles) -> None:
    tls_dir = files.ca_cert.parent
    assert tls_dir.name == "tls"
    assert stat.S_IMODE(tls_dir.stat().st_mode) == 0o700
    assert stat.S_IMODE(files.key.stat().st_mode) == 0o600
    assert stat.S_IMODE((tls_dir / "ca-key.pem").stat().st_mode) == 0o600
    assert files.key == tls_dir / "server-key.pem"
    assert files.cert == tls_dir / "server.pem"
    assert files.ca_cert == tls_dir / "ca.pem"
    # Only the four PEM files (plus the lock file): no temporary files left behind.
    assert sorted(p.name for p in tls_dir.iterdir() if not p.name.startswith(".lock")) == sorted(FILE_NAMES)


def test_reused_key_with_loosened_mode_is_tightened(files: TlsFiles) -> None:
    files.key.chmod(0o644)
    ensure_local_tls(files.ca_cert.parent.parent)
    assert stat.S_IMODE(files.key.stat().st_mode) == 0o600


# --------------------------------------------------------------------------- (3) reuse


def test_second_call_reuses_files_byte_for_byte(tmp_path: Path) -> None:
    first = ensure_local_tls(tmp_path)
    before = read_all(first)
    inodes = {name: (first.ca_cert.parent / name).stat().st_ino for name in FILE_NAMES}

    second = ensure_local_tls(tmp_path)

    assert second == first
    assert read_all(second) == before
    # Not even rewritten with the same content: an atomic replace would change the inode.
    assert {name: (second.ca_cert.parent / name).stat().st_ino for name in FILE_NAMES} == inodes


# --------------------------------------------------------------------------- (4) renewal


def test_server_certificate_is_reissued_near_expiry_but_ca_is_kept(tmp_path: Path) -> None:
    start = datetime.now(UTC)
    files = ensure_local_tls(tmp_path, now=start)
    before = read_all(files)

    later = start + timedelta(days=21)  # 9 days before the 30-day certificate expires: less than a third left
    ensure_local_tls(tmp_path, now=later)
    after = read_all(files)

    assert after["ca.pem"] == before["ca.pem"]
    assert after["ca-key.pem"] == before["ca-key.pem"]
    assert after["server.pem"] != before["server.pem"]
    assert after["server-key.pem"] != before["server-key.pem"]
    leaf, ca = load_chain(files)
    assert ca == load_ca(files)
    leaf.verify_directly_issued_by(ca)
    assert leaf.not_valid_before_utc <= later < renew_at(leaf)
    assert renew_at(leaf) == leaf.not_valid_after_utc - timedelta(days=10)


def test_renewed_certificate_passes_a_real_handshake(tmp_path: Path) -> None:
    # Issue in the past so that "now" is 21 days later; the renewed certificate is valid right now.
    files = ensure_local_tls(tmp_path, now=datetime.now(UTC) - timedelta(days=21))
    old = read_all(files)
    ensure_local_tls(tmp_path)
    assert read_all(files)["ca.pem"] == old["ca.pem"]
    assert read_all(files)["server.pem"] != old["server.pem"]
    with tls_server(files) as server:
        assert handshake(server, trusting(files), "localhost") == b"ok\n"


def test_certificate_with_more_than_a_third_of_its_lifetime_left_is_kept(tmp_path: Path) -> None:
    start = datetime(2030, 1, 1, tzinfo=UTC)
    files = ensure_local_tls(tmp_path, now=start)
    before = read_all(files)
    ensure_local_tls(tmp_path, now=start + timedelta(days=19))  # 11 days left
    assert read_all(files) == before
    ensure_local_tls(tmp_path, now=start + timedelta(days=20, minutes=1))  # just under 10 days left
    assert read_all(files)["server.pem"] != before["server.pem"]
    assert read_all(files)["ca.pem"] == before["ca.pem"]


def test_ca_near_expiry_is_replaced_along_with_server_certificate(tmp_path: Path) -> None:
    start = datetime(2030, 1, 1, tzinfo=UTC)
    files = ensure_local_tls(tmp_path, now=start)
    before = read_all(files)
    ensure_local_tls(tmp_path, now=start + timedelta(days=3650 - 20))
    after = read_all(files)
    assert all(after[name] != before[name] for name in FILE_NAMES)
    leaf, ca = load_chain(files)
    leaf.verify_directly_issued_by(ca)
    assert ca == load_ca(files)


def test_missing_server_certificate_is_reissued_by_the_same_ca(files: TlsFiles) -> None:
    before = read_all(files)
    files.cert.unlink()
    ensure_local_tls(files.ca_cert.parent.parent)
    after = read_all(files)
    assert after["ca.pem"] == before["ca.pem"]
    assert after["server.pem"] != before["server.pem"]
    with tls_server(files) as server:
        assert handshake(server, trusting(files), "localhost") == b"ok\n"


@pytest.mark.parametrize("missing", ["ca.pem", "ca-key.pem"])
def test_missing_ca_file_means_new_ca_and_new_server_certificate(files: TlsFiles, missing: str) -> None:
    before = read_all(files)
    (files.ca_cert.parent / missing).unlink()
    ensure_local_tls(files.ca_cert.parent.parent)
    after = read_all(files)
    assert all(after[name] != before[name] for name in FILE_NAMES)
    with tls_server(files) as server:
        assert handshake(server, trusting(files), "localhost") == b"ok\n"


def test_corrupt_server_key_is_recovered(files: TlsFiles) -> None:
    files.key.write_bytes(b"-----BEGIN PRIVATE KEY-----\ngarbage\n")
    ensure_local_tls(files.ca_cert.parent.parent)
    with tls_server(files) as server:
        assert handshake(server, trusting(files), "localhost") == b"ok\n"


# --------------------------------------------------------------------------- (5) extra hosts


def test_extra_host_reissues_certificate_with_that_name(files: TlsFiles) -> None:
    data_dir = files.ca_cert.parent.parent
    before = read_all(files)
    hosts = ("localhost", "127.0.0.1", "::1", "packyard.internal")

    ensure_local_tls(data_dir, hosts=hosts)

    after = read_all(files)
    assert after["ca.pem"] == before["ca.pem"]
    assert after["server.pem"] != before["server.pem"]
    leaf = load_chain(files)[0]
    assert set(san_of(leaf).get_values_for_type(x509.DNSName)) == {"localhost", "packyard.internal"}
    assert set(san_of(leaf).get_values_for_type(x509.IPAddress)) == {
        ip_address("127.0.0.1"),
        ip_address("::1"),
    }
    with tls_server(files) as server:
        assert handshake(server, trusting(files), "packyard.internal") == b"ok\n"

    # The same request again changes nothing.
    ensure_local_tls(data_dir, hosts=hosts)
    assert read_all(files) == after

    # A name no longer asked for is taken out: the certificate names exactly the requested hosts.
    ensure_local_tls(data_dir)
    narrowed = read_all(files)
    assert narrowed["ca.pem"] == before["ca.pem"]
    assert narrowed["server.pem"] != after["server.pem"]
    assert san_of(load_chain(files)[0]).get_values_for_type(x509.DNSName) == ["localhost"]
    with tls_server(files) as server:
        with pytest.raises(ssl.SSLCertVerificationError):
            handshake(server, trusting(files), "packyard.internal")
        assert handshake(server, trusting(files), "localhost") == b"ok\n"


def test_hosts_are_matched_case_insensitively_and_ips_by_value(tmp_path: Path) -> None:
    files = ensure_local_tls(tmp_path, hosts=("Example.Internal", "10.0.0.1", "::1"))
    before = read_all(files)
    ensure_local_tls(tmp_path, hosts=("example.internal", "10.0.0.1", "0:0:0:0:0:0:0:1"))
    assert read_all(files) == before


# --------------------------------------------------------------------------- safety


def test_failed_write_leaves_previous_files_and_no_temporary_files(
    files: TlsFiles, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = read_all(files)
    real_replace = os.replace

    def failing_replace(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> None:
        if Path(dst).parent == files.ca_cert.parent:
            raise OSError("disk full")
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(OSError, match="disk full"):
        ensure_local_tls(files.ca_cert.parent.parent, hosts=("packyard.internal",))
    monkeypatch.undo()

    assert read_all(files) == before
    leftovers = [p.name for p in files.ca_cert.parent.iterdir() if p.name.endswith(".tmp")]
    assert leftovers == []


def test_private_keys_are_never_logged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    with caplog.at_level(logging.DEBUG):
        files = ensure_local_tls(tmp_path)
        ensure_local_tls(tmp_path, hosts=("packyard.internal",))
    out, err = capsys.readouterr()
    key_bodies = [
        line
        for name in ("ca-key.pem", "server-key.pem")
        for line in (files.ca_cert.parent / name).read_text().splitlines()
        if not line.startswith("-----")
    ]
    for text in (caplog.text, out, err):
        assert "PRIVATE KEY" not in text
        assert not any(body in text for body in key_bodies)
    assert caplog.records, "expected creation to be logged"


def test_naive_now_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        ensure_local_tls(tmp_path, now=datetime(2030, 1, 1))


@pytest.mark.parametrize("hosts", [(), ("",), ("localhost", " ")])
def test_empty_hosts_are_rejected(tmp_path: Path, hosts: tuple[str, ...]) -> None:
    with pytest.raises(ValueError, match="host"):
        ensure_local_tls(tmp_path, hosts=hosts)


# --------------------------------------------------------------------------- the CA bundle


def test_bundle_is_the_system_roots_then_the_local_ca(files: TlsFiles) -> None:
    source, roots = system_roots()
    if source is None:
        pytest.skip("this machine has no system CA bundle (install ca-certificates)")
    bundle = files.ca_bundle.read_bytes()
    assert files.ca_bundle == files.ca_cert.parent / "ca-bundle.pem"
    assert stat.S_IMODE(files.ca_bundle.stat().st_mode) == 0o600
    assert roots in bundle
    assert bundle.endswith(files.ca_cert.read_bytes()), "packyard's CA last"
    # OpenSSL reads every certificate of it: the system's and packyard's.
    context = ssl.create_default_context(cafile=files.ca_bundle)
    assert context.cert_store_stats()["x509_ca"] == bundle.count(b"-----BEGIN CERTIFICATE-----")
    with tls_server(files) as server:
        assert handshake(server, context, "localhost") == b"ok\n"


def test_bundle_does_not_take_roots_from_ssl_cert_file(files: TlsFiles, monkeypatch: pytest.MonkeyPatch) -> None:
    # A shell that pasted the block has SSL_CERT_FILE pointing at the bundle: it must not feed on itself.
    monkeypatch.setenv("SSL_CERT_FILE", str(files.ca_bundle))
    source, _ = system_roots()
    assert source != files.ca_bundle
    before = files.ca_bundle.read_bytes()
    ensure_local_tls(files.ca_cert.parent.parent)
    assert files.ca_bundle.read_bytes() == before


def test_bundle_follows_a_new_ca(tmp_path: Path) -> None:
    start = datetime(2030, 1, 1, tzinfo=UTC)
    files = ensure_local_tls(tmp_path, now=start)
    old_ca = files.ca_cert.read_bytes()
    ensure_local_tls(tmp_path, now=start + timedelta(days=3650 - 20))
    new_ca = files.ca_cert.read_bytes()
    assert new_ca != old_ca
    bundle = files.ca_bundle.read_bytes()
    assert bundle.endswith(new_ca)
    assert old_ca not in bundle


def test_canonical_host() -> None:
    assert canonical_host("Packyard.Example.") == "packyard.example"
    assert canonical_host("[2001:DB8::1]") == "2001:db8::1"
    assert canonical_host("bücher.example") == "xn--bcher-kva.example"
    for bad in ("", "a b", "host:443", "https://x", "user@host"):
        with pytest.raises(ValueError, match="host"):
            canonical_host(bad)
