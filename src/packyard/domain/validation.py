"""Input rules shared by the services. Every failure is a code 3 error that names the field.

A field is named by a template fragment (domain/errors.py): a plain name ("labels"), a Term
("{iteration_id}", worded by each API tree), or both with values given as keywords
("{images_field}[{n}].{image_id}", n=3)."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from packyard.domain.errors import InvalidArgument
from packyard.domain.rules import Limits
from packyard.ids import is_ulid, normalize_ulid

SLUG_RE = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9_-]{0,34}[A-Za-z0-9])?$")
FINGERPRINT_RE = re.compile(r"^[A-Za-z0-9._'\"-]{1,40}$")
SLUG_RULE = "1 to 36 letters, digits, hyphens or underscores, starting and ending with a letter or digit"


def _refuse(what: str, rest: str, parts: Mapping[str, object], **values: object) -> InvalidArgument:
    merged: dict[str, Any] = {**parts, **values}
    return InvalidArgument(what + rest, template=True, **merged)


def slug(value: str, what: str = "{bucket_slug}", **parts: object) -> str:
    if not value:
        raise _refuse(what, " is required", parts)
    if not SLUG_RE.match(value):
        raise _refuse(what, " {value!r} is not valid: use {rule}", parts, value=value[:80], rule=SLUG_RULE)
    return value


def fingerprint(value: str) -> str:
    if not value:
        raise InvalidArgument("fingerprint is required")
    if not FINGERPRINT_RE.match(value):
        raise InvalidArgument(
            "fingerprint {value!r} is not valid: use 1 to 40 ASCII letters, digits, "
            "hyphens, dots, quotes or underscores",
            value=value[:80],
        )
    return value


def ulid(value: str, what: str, **parts: object) -> str:
    if not is_ulid(value):
        raise _refuse(what, " {value!r} is not a valid ULID", parts, value=value[:80])
    return normalize_ulid(value)


def text(value: str, what: str, limit: int, **parts: object) -> str:
    if len(value) > limit:
        raise _refuse(what, " is longer than {limit} characters", parts, limit=limit)
    if "\x00" in value:  # PostgreSQL text can't store NUL; refuse it on every database alike
        raise _refuse(what, " contains a NUL character", parts)
    return value


def labels(value: Mapping[str, str], what: str, limits: Limits) -> dict[str, str]:
    if len(value) > limits.max_labels:
        raise _refuse(what, " has {n} entries; at most {max} are allowed", {}, n=len(value), max=limits.max_labels)
    for key, val in value.items():
        if not key:
            raise _refuse(what, " has an empty key", {})
        if len(key) > limits.max_label_key_length:
            raise _refuse(
                what,
                " key {key!r}... is longer than {max} characters",
                {},
                key=key[:40],
                max=limits.max_label_key_length,
            )
        if len(val) > limits.max_label_value_length:
            raise _refuse(
                what, "[{key!r}] is longer than {max} characters", {}, key=key[:40], max=limits.max_label_value_length
            )
        if "\x00" in key or "\x00" in val:
            raise _refuse(what, " key {key!r} or its value contains a NUL character", {}, key=key[:40])
    return dict(value)


MAX_DOCUMENT_DEPTH = 32


def document(value: Mapping[str, Any], what: str, limit: int) -> dict[str, Any]:
    """A JSON object a client sends to be kept as it is (a build's metadata): nested at most
    MAX_DOCUMENT_DEPTH deep, at most `limit` bytes as compact JSON, and no NUL character anywhere
    (PostgreSQL can't store one). Walked without recursion, so no depth can overflow the stack."""
    if not isinstance(value, Mapping):
        raise _refuse(what, " must be a JSON object", {})
    stack: list[tuple[object, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > MAX_DOCUMENT_DEPTH:
            raise _refuse(what, " is nested more than {max} levels deep", {}, max=MAX_DOCUMENT_DEPTH)
        if isinstance(item, str):
            if "\x00" in item:
                raise _refuse(what, " contains a NUL character", {})
        elif isinstance(item, Mapping):
            stack.extend((k, depth) for k in item)
            stack.extend((v, depth + 1) for v in item.values())
        elif isinstance(item, list):
            stack.extend((v, depth + 1) for v in item)
    encoded = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    if len(encoded.encode()) > limit:
        raise _refuse(what, " is larger than {limit} bytes as JSON", {}, limit=limit)
    return dict(value)
