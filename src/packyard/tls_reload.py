"""Serving a certificate that changes while the server runs: the generated one renewed, given ones reloaded.

uvicorn builds one ``ssl.SSLContext`` per worker process when the worker starts, and each connection's
TLS session is made from it when the connection is accepted (asyncio's and uvloop's SSL transports call
``SSLContext.wrap_bio`` per connection, and OpenSSL copies the context's certificate and key into the
new session). Loading another chain into that same context with ``load_cert_chain`` therefore changes
what the next handshake sees and nothing about connections already open. ``ReloadingContext`` is given
to uvicorn as its ``ssl_context_factory`` (uvicorn 0.47 and later): in every worker it builds uvicorn's
default context and starts ``Reloader.run`` on the worker's event loop, which every ``interval`` seconds

* notices a change of the certificate or key file (device, inode, size, modification and change times;
  then the SHA-256 of both, so a file touched but not changed is not reloaded),
* for packyard's generated certificate, also calls ``ensure_local_tls`` when the served certificate is
  due for renewal (``tls.renew_at``: a third of its lifetime left) or its files are gone, which issues
  the next one under the same CA; when several workers do so at once, ensure_local_tls serialises them
  on its lock file and the later ones find the fresh certificate (and load it as a changed file),
* checks the new pair off the event loop (both files are whole PEM, the key belongs to the certificate,
  OpenSSL accepts the pair in a scratch context) and only then loads it into the live context, on the
  event loop's thread, so that no handshake of that worker runs while the context changes.

A pair that fails a check (a certificate written before its key, a key of another certificate, a file
cut short) is refused with one log line, once per content, and the served certificate stays; the next
change of the files is checked again. OpenSSL loads certificates only from files, so the checked bytes
reach it through anonymous in-memory files (``memfd``) on Linux, or a 0700 temporary directory
elsewhere: what is loaded is exactly what was checked, whatever happens to the files meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import ipaddress
import logging
import math
import os
import re
import ssl
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization

from packyard.clock import Clock, SystemClock
from packyard.tls import DEFAULT_HOSTS, ensure_local_tls, renew_at, tls_lock

if TYPE_CHECKING:
    from uvicorn.config import Config

__all__ = ["CertSource", "PairError", "Reloader", "ReloadingContext", "ServedTls", "check_pair", "prepare"]

logger = logging.getLogger(__name__)

INTERVAL_ENV = "PACKYARD_TLS_RELOAD_SECONDS"
DEFAULT_INTERVAL = 10.0

_Stamp = tuple[tuple[int, int, int, int, int], ...]
_RUNNING: set[asyncio.Task[None]] = set()  # the reload loops of this process, kept from the garbage collector


class PairError(Exception):
    """A certificate and key that can't be served together; the message says why."""


@dataclass(frozen=True)
class CertSource:
    """Where a worker's certificate comes from; pickled into every worker process."""

    cert: Path
    key: Path
    interval: float = DEFAULT_INTERVAL
    generated_in: Path | None = None  # the data dir when the certificate is packyard's own (ensure_local_tls)
    hosts: tuple[str, ...] = DEFAULT_HOSTS  # what the generated certificate names


@dataclass(frozen=True)
class Pair:
    """A certificate chain and its key as read from the files, checked."""

    cert_pem: bytes
    key_pem: bytes
    stamp: _Stamp
    digest: str
    leaf: x509.Certificate

    def describe(self) -> str:
        try:
            san = self.leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
            names = [*san.get_values_for_type(x509.DNSName), *map(str, san.get_values_for_type(x509.IPAddress))]
        except x509.ExtensionNotFound:
            names = [self.leaf.subject.rfc4514_string()]
        return (
            f"{', '.join(names)}, valid until {self.leaf.not_valid_after_utc.isoformat()}, "
            f"SHA-256 {self.leaf.fingerprint(hashes.SHA256()).hex()[:16]}"
        )


# --------------------------------------------------------------------------- reading and checking


def _stamp(source: CertSource) -> _Stamp:
    stamps = []
    for path in (source.cert, source.key):
        st = os.stat(path)
        stamps.append((st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns))
    return tuple(stamps)


def _read(source: CertSource) -> tuple[_Stamp, bytes, bytes]:
    """Both files and their stamp; PairError when either changed while being read (try again later)."""
    before = _stamp(source)
    cert_pem, key_pem = source.cert.read_bytes(), source.key.read_bytes()
    if _stamp(source) != before:
        raise PairError("the files changed while being read")
    return before, cert_pem, key_pem


_PEM_BEGIN = re.compile(rb"-----BEGIN [A-Z0-9 ]+-----")
_PEM_END = re.compile(rb"-----END [A-Z0-9 ]+-----")


def _whole_pem(data: bytes) -> bool:
    """Every PEM block that begins also ends, and nothing but white space follows the last one."""
    ends = list(_PEM_END.finditer(data))
    return bool(ends) and len(_PEM_BEGIN.findall(data)) == len(ends) and not data[ends[-1].end() :].strip()


def check_pair(cert_pem: bytes, key_pem: bytes) -> x509.Certificate:
    """The leaf certificate when the chain and key can be served together; PairError says why not."""
    if not _whole_pem(cert_pem):
        raise PairError("the certificate file is not whole PEM (empty, or still being written?)")
    if not _whole_pem(key_pem):
        raise PairError("the key file is not whole PEM (empty, or still being written?)")
    try:
        chain = x509.load_pem_x509_certificates(cert_pem)
    except ValueError as exc:
        raise PairError(f"the certificate file can't be read ({exc})") from None
    try:
        key = serialization.load_pem_private_key(key_pem, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise PairError(f"the key file is not an unencrypted PEM private key ({exc})") from None
    if chain[0].public_key() != key.public_key():
        raise PairError("the key does not belong to the certificate")
    with _staged(cert_pem, key_pem) as (cert_path, key_path):
        try:
            ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER).load_cert_chain(cert_path, key_path)
        except ssl.SSLError as exc:
            raise PairError(f"OpenSSL refuses the pair ({exc.reason or exc})") from None
    return chain[0]


@contextlib.contextmanager
def _staged(cert_pem: bytes, key_pem: bytes) -> Iterator[tuple[str, str]]:
    """Paths OpenSSL can load ``cert_pem`` and ``key_pem`` from, private to this process, gone afterwards."""
    if hasattr(os, "memfd_create") and os.path.isdir("/proc/self/fd"):
        fds = []
        try:
            for name, data in (("packyard-cert", cert_pem), ("packyard-key", key_pem)):
                fd = os.memfd_create(name, os.MFD_CLOEXEC)
                fds.append(fd)
                os.write(fd, data)
            yield f"/proc/self/fd/{fds[0]}", f"/proc/self/fd/{fds[1]}"
        finally:
            for fd in fds:
                os.close(fd)
        return
    with tempfile.TemporaryDirectory(prefix="packyard-tls-") as directory:  # 0700
        paths = []
        for name, data in (("cert.pem", cert_pem), ("key.pem", key_pem)):
            path = os.path.join(directory, name)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            paths.append(path)
        yield paths[0], paths[1]


# --------------------------------------------------------------------------- the reloader


class Reloader:
    """Keeps one live SSLContext serving the current certificate of ``source``."""

    def __init__(self, context: ssl.SSLContext, source: CertSource, clock: Clock) -> None:
        self.context = context
        self.source = source
        self.clock = clock
        self.serving: Pair | None = None
        self._seen: _Stamp | None = None  # the files' stamp when last looked at
        self._refused: str | None = None  # digest of the last pair refused, so that it is logged once

    def adopt(self) -> Pair:
        """Read, check and load the current files: what the context serves from now on."""
        stamp, cert_pem, key_pem = self._read()
        pair = Pair(cert_pem, key_pem, stamp, _digest(cert_pem, key_pem), check_pair(cert_pem, key_pem))
        if not self.apply(pair):
            raise PairError("the live context refused the pair")
        return pair

    def due(self) -> bool:
        """Whether the generated certificate being served is due for renewal by the injected clock."""
        return (
            self.source.generated_in is not None
            and self.serving is not None
            and self.clock.now() >= renew_at(self.serving.leaf)
        )

    def poll(self) -> Pair | None:
        """The next pair to serve, checked; None when nothing changed or the change was refused. Blocks
        (reads files, may issue a certificate): run it off the event loop."""
        source = self.source
        # Issue only when due or gone: a certificate another process just issued in this data dir is
        # loaded as it is, so two servers can't take turns re-issuing it.
        if source.generated_in is not None and (self.due() or self._current_stamp() is None):
            try:
                ensure_local_tls(source.generated_in, hosts=source.hosts, now=self.clock.now())
            except OSError as exc:
                logger.warning("TLS: can't renew the certificate in %s (%s); will try again", source.generated_in, exc)
                return None
        if self._current_stamp() == self._seen:
            return None
        try:
            stamp, cert_pem, key_pem = self._read()
        except (OSError, PairError) as exc:
            logger.info("TLS: %s and %s not read this time (%s)", source.cert, source.key, exc)
            return None
        digest = _digest(cert_pem, key_pem)
        if self.serving is not None and digest == self.serving.digest:
            self._seen = stamp
            return None
        try:
            leaf = check_pair(cert_pem, key_pem)
        except PairError as exc:
            if digest != self._refused:
                logger.warning(
                    "TLS: not serving the new %s and %s: %s; still serving %s",
                    source.cert,
                    source.key,
                    exc,
                    self.serving.describe() if self.serving else "the previous certificate",
                )
                self._refused = digest
            self._seen = stamp
            return None
        return Pair(cert_pem, key_pem, stamp, digest, leaf)

    def apply(self, pair: Pair) -> bool:
        """Load a checked pair into the live context. Call it on the event loop's thread."""
        try:
            with _staged(pair.cert_pem, pair.key_pem) as (cert_path, key_path):
                self.context.load_cert_chain(cert_path, key_path)
        except (ssl.SSLError, OSError) as exc:
            logger.error("TLS: loading %s failed (%s); keeping the previous certificate", self.source.cert, exc)
            if self.serving is not None:  # the context may hold the new chain without a key: put the old pair back
                with (
                    contextlib.suppress(ssl.SSLError, OSError),
                    _staged(self.serving.cert_pem, self.serving.key_pem) as (cert_path, key_path),
                ):
                    self.context.load_cert_chain(cert_path, key_path)
            return False
        renewed = self.serving is not None
        self.serving, self._seen, self._refused = pair, pair.stamp, None
        logger.info("TLS: %s %s (worker pid %d)", "now serving" if renewed else "serving", pair.describe(), os.getpid())
        return True

    def check(self) -> bool:
        """``poll`` and ``apply`` in one step, for callers without an event loop (tests)."""
        pair = self.poll()
        return pair is not None and self.apply(pair)

    async def run(self) -> None:
        """Check every ``interval`` seconds until cancelled (when the worker's event loop ends)."""
        while True:
            await asyncio.sleep(self.source.interval)
            try:
                pair = await asyncio.to_thread(self.poll)
            except Exception:  # one bad check must not end the loop: the next one may succeed
                logger.exception("TLS: checking %s failed; will try again", self.source.cert)
                continue
            if pair is not None:
                self.apply(pair)

    def _current_stamp(self) -> _Stamp | None:
        try:
            return _stamp(self.source)
        except OSError:
            return None

    def _read(self) -> tuple[_Stamp, bytes, bytes]:
        if self.source.generated_in is None:
            return _read(self.source)
        with tls_lock(self.source.generated_in):  # not while ensure_local_tls is half-way through writing
            return _read(self.source)


def _digest(cert_pem: bytes, key_pem: bytes) -> str:
    return hashlib.sha256(hashlib.sha256(cert_pem).digest() + hashlib.sha256(key_pem).digest()).hexdigest()


class ReloadingContext:
    """uvicorn's ``ssl_context_factory``: its default context, kept current by a Reloader on the worker's
    event loop. Called once in every worker process (``--workers N``)."""

    def __init__(self, source: CertSource) -> None:
        self.source = source

    def __call__(self, config: Config, default: Callable[[], ssl.SSLContext]) -> ssl.SSLContext:
        context = default()
        reloader = Reloader(context, self.source, SystemClock())
        reloader.adopt()
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # built outside a running server: nothing to keep current
            return context
        task = loop.create_task(reloader.run(), name="packyard-tls-reload")
        _RUNNING.add(task)
        task.add_done_callback(_RUNNING.discard)
        return context


# --------------------------------------------------------------------------- serve's entry point


@dataclass(frozen=True)
class ServedTls:
    cert: Path
    key: Path
    ca_bundle: Path | None  # packyard's own CA bundle, None for a given certificate
    factory: ReloadingContext


def reload_interval(environ: Mapping[str, str] | None = None) -> float:
    env = os.environ if environ is None else environ
    raw = env.get(INTERVAL_ENV)
    if not raw:
        return DEFAULT_INTERVAL
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise SystemExit(f"packyard: {INTERVAL_ENV} must be a positive number of seconds, not {raw!r}")
    return value


def certificate_hosts(hostnames: Sequence[str], listen_host: str) -> tuple[str, ...]:
    """What the generated certificate names: the loopback names, the ``--hostname``s and the address
    ``--host`` listens on when it is one specific address (the printed block may show it)."""
    hosts = [*DEFAULT_HOSTS, *hostnames]
    try:
        address = ipaddress.ip_address(listen_host.strip("[]"))
    except ValueError:
        address = None
    if address is not None and not address.is_unspecified and str(address) not in hosts:
        hosts.append(str(address))
    return tuple(dict.fromkeys(hosts))


def prepare(
    data_dir: Path, tls_cert: str | None, tls_key: str | None, hostnames: Sequence[str], listen_host: str
) -> ServedTls:
    """The certificate ``serve`` starts with, checked, and the factory that keeps it current.

    Exits with one line when a given certificate and key can't be served."""
    interval = reload_interval()
    if tls_cert or tls_key:
        if not (tls_cert and tls_key):
            raise SystemExit("packyard: --tls-cert and --tls-key go together")
        source = CertSource(Path(tls_cert), Path(tls_key), interval)
        try:
            _, cert_pem, key_pem = _read(source)
            check_pair(cert_pem, key_pem)
        except OSError as exc:
            raise SystemExit(f"packyard: can't read {exc.filename}: {exc.strerror}") from None
        except PairError as exc:
            raise SystemExit(f"packyard: can't serve --tls-cert {tls_cert} with --tls-key {tls_key}: {exc}") from None
        return ServedTls(source.cert, source.key, None, ReloadingContext(source))
    hosts = certificate_hosts(hostnames, listen_host)
    files = ensure_local_tls(data_dir, hosts=hosts)
    source = CertSource(files.cert, files.key, interval, generated_in=data_dir, hosts=hosts)
    return ServedTls(files.cert, files.key, files.ca_bundle, ReloadingContext(source))
