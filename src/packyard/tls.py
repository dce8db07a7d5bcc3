"""A private certificate authority and server certificate for serving HTTPS on a local machine.

``ensure_local_tls`` keeps five PEM files under ``<data_dir>/tls``:

* ``ca.pem``          the local CA certificate; clients trust this one
* ``ca-key.pem``      the CA private key
* ``server.pem``      the server certificate followed by the CA certificate, so clients that want the
                      chain (Go's crypto/tls, for one) get it
* ``server-key.pem``  the server private key
* ``ca-bundle.pem``   the system's trusted roots followed by the local CA: what ``SSL_CERT_FILE`` points
                      at, so that a shell that trusts packyard still trusts everyone else

The directory is 0700 and every file 0600, certificates included (see packyard/files.py: one rule for
everything packyard writes; the certificates are no secret, but nobody else can reach them anyway).

Existing files are reused. The server certificate lives 30 days and is re-issued (keeping the CA)
when it is missing, unreadable, not signed by the current CA, has less than a third of its lifetime
left (``renew_at``), or does not name exactly the requested hosts. ``packyard serve`` calls this again
while it runs (packyard/tls_reload.py), so the short-lived certificate is renewed without a restart.
The CA is replaced, together with the server certificate, when it is missing, unreadable or expiring
within 30 days. The bundle is rewritten whenever the CA or the system's roots change. Every file is
written atomically, and private keys are never logged.
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import os
import sys
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from packyard.files import DIR_MODE, FILE_MODE, private_dir

__all__ = ["TlsFiles", "canonical_host", "ensure_local_tls", "renew_at", "system_roots", "tls_lock"]

logger = logging.getLogger(__name__)

CA_COMMON_NAME = "packyard local CA"
SERVER_COMMON_NAME = "localhost"
CA_VALIDITY = timedelta(days=3650)
SERVER_VALIDITY = timedelta(days=30)
CA_RENEW_BEFORE = timedelta(days=30)  # at least SERVER_VALIDITY, so no server certificate outlives its CA
DEFAULT_HOSTS = ("localhost", "127.0.0.1", "::1")
CLOCK_SKEW = timedelta(minutes=1)

_DIR_MODE = DIR_MODE
_KEY_MODE = FILE_MODE
_CERT_MODE = FILE_MODE

_CA_CERT = "ca.pem"
_CA_KEY = "ca-key.pem"
_SERVER_CERT = "server.pem"
_SERVER_KEY = "server-key.pem"
_CA_BUNDLE = "ca-bundle.pem"
_LOCK = ".lock"

_IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True)
class TlsFiles:
    ca_cert: Path  # PEM of the local CA certificate: what clients trust
    cert: Path  # PEM server certificate followed by the CA certificate
    key: Path  # PEM server private key, mode 0600
    ca_bundle: Path  # the system's roots followed by ca_cert: what SSL_CERT_FILE points at


@dataclass(frozen=True)
class _Hosts:
    dns_names: tuple[str, ...]
    ips: tuple[_IPAddress, ...]

    def general_names(self) -> list[x509.GeneralName]:
        names: list[x509.GeneralName] = [x509.DNSName(name) for name in self.dns_names]
        names.extend(x509.IPAddress(ip) for ip in self.ips)
        return names


def ensure_local_tls(
    data_dir: Path,
    *,
    hosts: Sequence[str] = DEFAULT_HOSTS,
    now: datetime | None = None,
) -> TlsFiles:
    """Create, reuse or renew the local CA and server certificate under ``data_dir / "tls"``.

    ``hosts`` are the DNS names and IP addresses the server certificate names, exactly: a certificate
    naming other hosts, or fewer, is re-issued. ``now`` must be timezone-aware; it defaults to the
    current time and exists so tests (and the renewal loop's injected clock) can move it.
    """
    wanted = _parse_hosts(hosts)
    if now is None:
        now = datetime.now(UTC)
    elif now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be a timezone-aware datetime")
    now = now.astimezone(UTC)

    tls_dir = Path(data_dir) / "tls"
    private_dir(Path(data_dir))
    tls_dir.mkdir(mode=_DIR_MODE, exist_ok=True)
    if (tls_dir.stat().st_mode & 0o777) != _DIR_MODE:
        tls_dir.chmod(_DIR_MODE)

    files = TlsFiles(
        ca_cert=tls_dir / _CA_CERT,
        cert=tls_dir / _SERVER_CERT,
        key=tls_dir / _SERVER_KEY,
        ca_bundle=tls_dir / _CA_BUNDLE,
    )
    ca_key_path = tls_dir / _CA_KEY

    with _locked(tls_dir / _LOCK):
        ca = _load_ca(files.ca_cert, ca_key_path, now)
        if ca is None:
            ca = _create_ca(files.ca_cert, ca_key_path, now)
            reason: str | None = "new CA"
        else:
            _tighten_mode(ca_key_path)
            _tighten_mode(files.ca_cert)
            reason = _server_problem(files.cert, files.key, ca[0], wanted, now)
        if reason is not None:
            _issue_server_cert(files.cert, files.key, ca, wanted, now=now, reason=reason)
        else:
            _tighten_mode(files.key)
            _tighten_mode(files.cert)
        _write_bundle(files.ca_bundle, ca[0])
    return files


def canonical_host(raw: str) -> str:
    """``raw`` as the certificate names it: an IP address in its short form, a DNS name lower-case and
    IDNA-encoded. ValueError says what is wrong with it."""
    hosts = _parse_hosts([raw])
    return hosts.dns_names[0] if hosts.dns_names else str(hosts.ips[0])


def renew_at(cert: x509.Certificate) -> datetime:
    """When a server certificate is due for renewal: once less than a third of its lifetime is left."""
    lifetime = cert.not_valid_after_utc - cert.not_valid_before_utc
    return cert.not_valid_after_utc - lifetime / 3


# --------------------------------------------------------------------------- hosts


def _parse_hosts(hosts: Sequence[str]) -> _Hosts:
    if isinstance(hosts, str):
        raise TypeError("hosts must be a sequence of host names, not a single string")
    dns_names: list[str] = []
    ips: list[_IPAddress] = []
    for raw in hosts:
        host = raw.strip()
        if host.startswith("[") and host.endswith("]"):
            host = host[1:-1]
        if not host:
            raise ValueError(f"empty host name in {list(hosts)!r}")
        try:
            ip = ipaddress.ip_address(host)
        except ValueError:
            name = _normalise_dns_name(host)
            if name not in dns_names:
                dns_names.append(name)
        else:
            if ip not in ips:
                ips.append(ip)
    if not dns_names and not ips:
        raise ValueError("at least one host is required")
    return _Hosts(tuple(dns_names), tuple(ips))


def _normalise_dns_name(host: str) -> str:
    name = host.rstrip(".").lower()
    try:
        # Certificates carry IDNA A-labels ("xn--..."), never raw Unicode.
        name = name.encode("idna").decode("ascii")
    except UnicodeError as exc:
        raise ValueError(f"invalid host name {host!r}") from exc
    if not name or any(c.isspace() or c in "/:@" for c in name):
        raise ValueError(f"invalid host name {host!r}")
    return name


def _names_exactly(cert: x509.Certificate, wanted: _Hosts) -> bool:
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return False
    have_dns = {name.rstrip(".").lower() for name in san.get_values_for_type(x509.DNSName)}
    have_ips = set(san.get_values_for_type(x509.IPAddress))
    return have_dns == set(wanted.dns_names) and have_ips == set(wanted.ips)


# --------------------------------------------------------------------------- CA


def _load_ca(
    cert_path: Path, key_path: Path, now: datetime
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey] | None:
    """The existing CA, or None when it is missing, unusable or due for renewal."""
    if not cert_path.exists() and not key_path.exists():
        return None
    try:
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        key = _load_ec_key(key_path)
    except (OSError, ValueError, TypeError) as exc:
        logger.warning("local CA in %s is unreadable (%s); creating a new one", cert_path.parent, exc)
        return None
    if key is None or cert.public_key() != key.public_key():
        logger.warning("local CA key in %s does not match its certificate; creating a new CA", key_path)
        return None
    try:
        is_ca = cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
        cert.verify_directly_issued_by(cert)
    except (x509.ExtensionNotFound, ValueError, TypeError, InvalidSignature):
        is_ca = False
    if not is_ca:
        logger.warning("%s is not a self-signed CA certificate; creating a new CA", cert_path)
        return None
    if not (cert.not_valid_before_utc <= now and cert.not_valid_after_utc > now + CA_RENEW_BEFORE):
        logger.warning(
            "local CA in %s expires %s; creating a new one: clients must trust the new ca.pem (or ca-bundle.pem)",
            cert_path,
            cert.not_valid_after_utc,
        )
        return None
    return cert, key


def _create_ca(cert_path: Path, key_path: Path, now: datetime) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    public_key = key.public_key()
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, CA_COMMON_NAME)])
    not_before = now - CLOCK_SKEW
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_before + CA_VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        # Optional for a self-signed root, but OpenSSL's X509_STRICT checks (the default from
        # Python 3.13 on) and some other verifiers expect it.
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(public_key), critical=False)
        .sign(key, hashes.SHA256())
    )
    # Key first: if we die between the two writes, the pair mismatches and is replaced next time.
    _write_atomic(key_path, _key_pem(key), _KEY_MODE)
    _write_atomic(cert_path, cert.public_bytes(serialization.Encoding.PEM), _CERT_MODE)
    logger.info(
        "created local CA %s (SHA-256 fingerprint %s, valid until %s)",
        cert_path,
        cert.fingerprint(hashes.SHA256()).hex(":"),
        cert.not_valid_after_utc.isoformat(),
    )
    return cert, key


# --------------------------------------------------------------------------- server certificate


def _server_problem(
    cert_path: Path, key_path: Path, ca_cert: x509.Certificate, wanted: _Hosts, now: datetime
) -> str | None:
    """Why the server certificate must be re-issued, or None if it can be reused."""
    if not cert_path.exists() or not key_path.exists():
        return "missing"
    try:
        chain = x509.load_pem_x509_certificates(cert_path.read_bytes())
        key = _load_ec_key(key_path)
    except (OSError, ValueError, TypeError) as exc:
        return f"unreadable ({exc})"
    leaf = chain[0]
    if key is None or leaf.public_key() != key.public_key():
        return "key does not match certificate"
    if chain[1:] != [ca_cert]:
        return "chain does not end in the current CA"
    try:
        leaf.verify_directly_issued_by(ca_cert)
    except (ValueError, TypeError, InvalidSignature):
        return "not issued by the current CA"
    if not leaf.not_valid_before_utc <= now < renew_at(leaf):
        return f"due for renewal, expires {leaf.not_valid_after_utc.isoformat()}"
    if not _names_exactly(leaf, wanted):
        return "the requested hosts changed"
    return None


def _issue_server_cert(
    cert_path: Path,
    key_path: Path,
    ca: tuple[x509.Certificate, ec.EllipticCurvePrivateKey],
    wanted: _Hosts,
    *,
    now: datetime,
    reason: str,
) -> None:
    ca_cert, ca_key = ca
    key = ec.generate_private_key(ec.SECP256R1())
    public_key = key.public_key()
    ca_ski = ca_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    not_before = now - CLOCK_SKEW
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, SERVER_COMMON_NAME)]))
        .issuer_name(ca_cert.subject)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        # Ends before the CA does: a CA is replaced while it has more than SERVER_VALIDITY left.
        .not_valid_after(not_before + SERVER_VALIDITY)
        .add_extension(x509.SubjectAlternativeName(wanted.general_names()), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    chain_pem = cert.public_bytes(serialization.Encoding.PEM) + ca_cert.public_bytes(serialization.Encoding.PEM)
    # Key first: a crash between the writes leaves a mismatched pair, which is re-issued next time.
    _write_atomic(key_path, _key_pem(key), _KEY_MODE)
    _write_atomic(cert_path, chain_pem, _CERT_MODE)
    logger.info(
        "issued server certificate %s for %s, valid until %s (%s)",
        cert_path,
        ", ".join([*wanted.dns_names, *(str(ip) for ip in wanted.ips)]),
        cert.not_valid_after_utc.isoformat(),
        reason,
    )


# --------------------------------------------------------------------------- helpers


# Where the system's trusted roots are, most specific first: OpenSSL's compiled-in default file (not
# SSL_CERT_FILE, which may point at an older packyard bundle), the distributions' usual bundles, then
# certifi's copy of Mozilla's list.
_SYSTEM_BUNDLES = (
    "/etc/ssl/certs/ca-certificates.crt",  # Debian, Ubuntu, Alpine, Arch
    "/etc/pki/tls/certs/ca-bundle.crt",  # Fedora, RHEL
    "/etc/ssl/ca-bundle.pem",  # openSUSE
    "/etc/ssl/cert.pem",  # macOS, the BSDs
)


def system_roots() -> tuple[Path | None, bytes]:
    """The file the system's trusted roots come from and its PEM text; (None, b"") if none is found."""
    import ssl  # noqa: PLC0415 - only the bundle needs it

    candidates = [ssl.get_default_verify_paths().openssl_cafile, *_SYSTEM_BUNDLES]
    try:
        import certifi  # noqa: PLC0415 - optional

        candidates.append(certifi.where())
    except ImportError:
        pass
    for candidate in candidates:
        path = Path(candidate)
        try:
            text = path.read_bytes()
        except OSError:
            continue
        if b"-----BEGIN CERTIFICATE-----" in text:
            return path, text
    return None, b""


def _write_bundle(bundle_path: Path, ca_cert: x509.Certificate) -> None:
    source, roots = system_roots()
    if source is None:
        logger.warning("found no system CA bundle; %s holds only packyard's local CA", bundle_path)
    if roots and not roots.endswith(b"\n"):
        roots += b"\n"
    bundle = (
        b"# The system's trusted roots (from "
        + (str(source) if source else "nowhere: none was found").encode()
        + b") followed by packyard's local CA.\n"
        + b"# packyard serve rewrites this file when either changes; point SSL_CERT_FILE at it.\n"
        + roots
        + b"# packyard local CA\n"
        + ca_cert.public_bytes(serialization.Encoding.PEM)
    )
    try:
        unchanged = bundle_path.read_bytes() == bundle
    except OSError:
        unchanged = False
    if unchanged:
        _tighten_mode(bundle_path)
    else:
        _write_atomic(bundle_path, bundle, _CERT_MODE)
        logger.info("wrote %s: the system's roots from %s and packyard's local CA", bundle_path, source)


def _load_ec_key(path: Path) -> ec.EllipticCurvePrivateKey | None:
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if isinstance(key, ec.EllipticCurvePrivateKey) and isinstance(key.curve, ec.SECP256R1):
        return key
    return None


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        encoding=serialization.Encoding.PEM,
        format=serialization.PrivateFormat.PKCS8,
        encryption_algorithm=serialization.NoEncryption(),
    )


def _tighten_mode(path: Path) -> None:
    """Reset a reused file to 0600 if someone (or an older packyard, for certificates) loosened it."""
    with contextlib.suppress(FileNotFoundError):
        if (path.stat().st_mode & 0o777) != _KEY_MODE:
            path.chmod(_KEY_MODE)


def _write_atomic(path: Path, data: bytes, mode: int) -> None:
    """Replace ``path`` with ``data`` so readers see the old file or the new one, never a part."""
    # mkstemp creates the file 0600, so a key is never readable by others, not even briefly.
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as fh:
            os.fchmod(fh.fileno(), mode)
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    _fsync_dir(path.parent)


def _fsync_dir(directory: Path) -> None:
    if sys.platform == "win32":
        return
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def tls_lock(data_dir: Path) -> Iterator[None]:
    """The lock ``ensure_local_tls`` writes under: hold it to read the server certificate and key whole."""
    with _locked(Path(data_dir) / "tls" / _LOCK):
        yield


@contextlib.contextmanager
def _locked(lock_path: Path) -> Iterator[None]:
    """Serialise concurrent callers (e.g. two server processes starting at once) on one data dir."""
    if sys.platform == "win32":
        yield
        return
    import fcntl  # noqa: PLC0415 - POSIX only

    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, _KEY_MODE)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)
