"""Identifiers: ULIDs for registry objects, UUIDs for organizations and projects."""

from __future__ import annotations

import os
import re
import threading
import time
import uuid

_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_ULID_RE = re.compile(r"^[0-7][0-9A-HJKMNP-TV-Z]{25}$")
_UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")

_lock = threading.Lock()
_last_ms = -1
_last_rand = 0


# Two Crockford digits per 10 bits: half the steps of one digit at a time.
_PAIRS = [a + b for a in _CROCKFORD for b in _CROCKFORD]


def _encode(value: int, length: int) -> str:
    """`length` Crockford base-32 digits of value, most significant first (length is even)."""
    pairs = _PAIRS
    return "".join([pairs[(value >> shift) & 1023] for shift in range(5 * length - 10, -1, -10)])


def new_ulid(ms: int | None = None) -> str:
    """A new ULID; monotonic within one process, so ids sort in creation order."""
    global _last_ms, _last_rand
    now_ms = int(time.time() * 1000) if ms is None else ms
    with _lock:
        if now_ms <= _last_ms:
            now_ms = _last_ms
            rand = _last_rand + 1
        else:
            rand = int.from_bytes(os.urandom(10), "big") >> 1  # leave headroom for increments
        _last_ms, _last_rand = now_ms, rand
    return _encode(now_ms, 10) + _encode(rand & ((1 << 80) - 1), 16)


def is_ulid(value: str) -> bool:
    return bool(_ULID_RE.match(value.upper())) if len(value) == 26 else False


def normalize_ulid(value: str) -> str:
    return value.upper()


def new_uuid() -> str:
    return str(uuid.uuid4())


def is_uuid(value: str) -> bool:
    return bool(_UUID_RE.match(value))
