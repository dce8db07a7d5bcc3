"""Input rules shared by the services. Every failure is a code 3 error that names the field."""

from __future__ import annotations

import re
from collections.abc import Mapping

from packyard.domain.errors import InvalidArgument
from packyard.domain.rules import Limits
from packyard.ids import is_ulid, normalize_ulid

SLUG_RE = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9_-]{0,34}[A-Za-z0-9])?$")
FINGERPRINT_RE = re.compile(r"^[A-Za-z0-9._'\"-]{1,40}$")
SLUG_RULE = "1 to 36 letters, digits, hyphens or underscores, starting and ending with a letter or digit"


def slug(value: str, what: str = "bucket_slug") -> str:
    if not value:
        raise InvalidArgument(f"{what} is required")
    if not SLUG_RE.match(value):
        raise InvalidArgument(f"{what} {value[:80]!r} is not valid: use {SLUG_RULE}")
    return value


def fingerprint(value: str) -> str:
    if not value:
        raise InvalidArgument("fingerprint is required")
    if not FINGERPRINT_RE.match(value):
        raise InvalidArgument(
            f"fingerprint {value[:80]!r} is not valid: use 1 to 40 ASCII letters, digits, "
            "hyphens, dots, quotes or underscores"
        )
    return value


def ulid(value: str, what: str) -> str:
    if not is_ulid(value):
        raise InvalidArgument(f"{what} {value[:80]!r} is not a valid ULID")
    return normalize_ulid(value)


def text(value: str, what: str, limit: int) -> str:
    if len(value) > limit:
        raise InvalidArgument(f"{what} is longer than {limit} characters")
    if "\x00" in value:  # PostgreSQL text can't store NUL; refuse it on every database alike
        raise InvalidArgument(f"{what} contains a NUL character")
    return value


def labels(value: Mapping[str, str], what: str, limits: Limits) -> dict[str, str]:
    if len(value) > limits.max_labels:
        raise InvalidArgument(f"{what} has {len(value)} entries; at most {limits.max_labels} are allowed")
    for key, val in value.items():
        if not key:
            raise InvalidArgument(f"{what} has an empty key")
        if len(key) > limits.max_label_key_length:
            raise InvalidArgument(f"{what} key {key[:40]!r}... is longer than {limits.max_label_key_length} characters")
        if len(val) > limits.max_label_value_length:
            raise InvalidArgument(f"{what}[{key[:40]!r}] is longer than {limits.max_label_value_length} characters")
        if "\x00" in key or "\x00" in val:
            raise InvalidArgument(f"{what} key {key[:40]!r} or its value contains a NUL character")
    return dict(value)
