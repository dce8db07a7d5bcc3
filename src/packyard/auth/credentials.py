"""Client ids and secrets. Secrets are 384-bit random strings stored as salted SHA-256 digests.

A slow password hash (scrypt, argon2) protects low-entropy human passwords; these secrets are generated
by the server with enough entropy that brute force is out of reach, so a fast, salted digest is the
right tool and keeps the token endpoint cheap.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import string

_ALPHABET = string.ascii_letters + string.digits
CLIENT_ID_LENGTH = 32
CLIENT_SECRET_LENGTH = 64


def random_string(length: int) -> str:
    return "".join(secrets.choice(_ALPHABET) for _ in range(length))


def new_client_id() -> str:
    return random_string(CLIENT_ID_LENGTH)


def new_client_secret() -> str:
    return random_string(CLIENT_SECRET_LENGTH)


def plausible(client_id: str, secret: str) -> bool:
    """Whether the pair could be credentials this server issued, judged by length alone: a longer id or
    secret is refused before anything is looked up or kept (nothing about it is stored or counted)."""
    return 0 < len(client_id) <= CLIENT_ID_LENGTH and 0 < len(secret) <= CLIENT_SECRET_LENGTH


def hash_secret(secret: str) -> str:
    salt = secrets.token_hex(16)
    digest = hashlib.sha256((salt + secret).encode()).hexdigest()
    return f"sha256${salt}${digest}"


def verify_secret(secret: str, stored: str) -> bool:
    try:
        scheme, salt, digest = stored.split("$")
    except ValueError:
        return False
    if scheme != "sha256":
        return False
    candidate = hashlib.sha256((salt + secret).encode()).hexdigest()
    return hmac.compare_digest(candidate, digest)


def dummy_verify(secret: str) -> None:
    """Spend the same effort as a real check, so unknown clients and wrong secrets look alike."""
    verify_secret(secret, "sha256$" + "0" * 32 + "$" + "0" * 64)
