"""The server secret's uses: sealing secrets that packyard must read back (the run-task HMAC keys), and
deriving keys that must never be readable from the database (the token-signing keys).

The server secret comes from PACKYARD_SECRET_KEY or from `<data dir>/secret.key` (created 0600 on first
use). Values are sealed with AES-256-GCM under a key derived from it, and other keys are derived from it
with HKDF-SHA256 and a salt kept in the database: the database alone reveals nothing and mints nothing.
"""

from __future__ import annotations

import base64
import hashlib
import os
import secrets
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from packyard.domain.ports import SealError
from packyard.files import FILE_MODE, SECRET_FILE, private_dir, tighten

__all__ = ["SECRET_FILE", "Vault", "VaultError", "load_or_create_secret"]


class VaultError(SealError):
    """The vault can't open a sealed value (or has no secret to work with)."""


def load_or_create_secret(data_dir: Path) -> str:
    path = data_dir / SECRET_FILE
    if path.exists():
        tighten(path)  # one written by an older packyard, or loosened since
        return path.read_text().strip()
    private_dir(data_dir)
    value = secrets.token_hex(32)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
    with os.fdopen(fd, "w") as fh:
        os.fchmod(fh.fileno(), FILE_MODE)  # a .tmp left behind by a crash keeps its mode through O_TRUNC
        fh.write(value + "\n")
        fh.flush()
        os.fsync(fh.fileno())
    try:
        os.link(tmp, path)  # never replaces a secret another process wrote meanwhile
    except FileExistsError:
        pass
    finally:
        tmp.unlink(missing_ok=True)
    return path.read_text().strip()


class Vault:
    def __init__(self, secret: str) -> None:
        if not secret:
            raise VaultError("the server secret is empty")
        key = hashlib.sha256(b"packyard/vault/v1\x00" + secret.encode()).digest()
        self._aead = AESGCM(key)
        self._secret = secret.encode()

    def derive(self, purpose: str, salt: bytes) -> bytes:
        """A 256-bit key for one purpose, from the server secret and a salt (HKDF-SHA256). The salt may be
        stored anywhere: without the server secret it yields nothing."""
        info = b"packyard/" + purpose.encode()
        return HKDF(algorithm=hashes.SHA256(), length=32, salt=salt, info=info).derive(self._secret)

    def seal(self, plaintext: str) -> str:
        nonce = os.urandom(12)
        sealed = self._aead.encrypt(nonce, plaintext.encode(), b"packyard")
        return "v1:" + base64.urlsafe_b64encode(nonce + sealed).decode()

    def open(self, token: str) -> str:
        try:
            version, payload = token.split(":", 1)
            if version != "v1":
                raise ValueError(version)
            raw = base64.urlsafe_b64decode(payload)
            return self._aead.decrypt(raw[:12], raw[12:], b"packyard").decode()
        except (ValueError, InvalidTag) as exc:
            raise VaultError("a stored secret can't be decrypted with this server's secret key") from exc
