"""Keyset pagination with opaque tokens. No OFFSET: a deep page costs what the first one costs."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Generic, TypeVar

from packyard.domain.errors import InvalidArgument

T = TypeVar("T")


class Kind(StrEnum):
    STR = "str"
    INT = "int"
    TIME = "time"


@dataclass(frozen=True, slots=True)
class SortField:
    name: str
    descending: bool = False

    def spec(self) -> str:
        return f"{self.name} {'desc' if self.descending else 'asc'}"


@dataclass(frozen=True, slots=True)
class PageRequest:
    size: int
    order: tuple[SortField, ...]
    cursor: tuple[object, ...] | None = None
    backwards: bool = False


@dataclass(slots=True)
class Page(Generic[T]):
    items: list[T]
    next_token: str = ""
    previous_token: str = ""


Sortable = Mapping[str, Kind]


def _order_spec(order: Sequence[SortField]) -> str:
    return ",".join(f.spec() for f in order)


def parse_order(values: Sequence[str], allowed: Sortable, default: Sequence[SortField]) -> tuple[SortField, ...]:
    fields: list[SortField] = []
    for value in values:
        for part in value.split(","):
            words = part.split()
            if not words:
                continue
            if len(words) > 2 or (len(words) == 2 and words[1].lower() not in ("asc", "desc")):
                raise InvalidArgument(f"sorting.order_by entry {part.strip()!r} must be 'field' or 'field asc|desc'")
            name = words[0]
            if name not in allowed:
                choices = ", ".join(sorted(allowed))
                raise InvalidArgument(f"cannot sort by {name!r}; sortable fields are: {choices}")
            if any(f.name == name for f in fields):
                raise InvalidArgument(f"sorting.order_by names {name!r} twice")
            fields.append(SortField(name, len(words) == 2 and words[1].lower() == "desc"))
    if not fields:
        fields = list(default)
    if fields[-1].name != "id":
        fields.append(SortField("id", fields[-1].descending))
    return tuple(fields)


def _encode_value(value: object) -> object:
    if isinstance(value, datetime):
        return int(value.timestamp() * 1_000_000)
    return value


def _decode_value(value: object, kind: Kind) -> object:
    if kind is Kind.TIME:
        if not isinstance(value, int) or isinstance(value, bool):
            raise ValueError("time")
        return datetime.fromtimestamp(value / 1_000_000, UTC)
    if kind is Kind.INT:
        if not isinstance(value, int) or isinstance(value, bool) or not -(2**63) <= value < 2**63:
            raise ValueError("int")  # beyond int64, neither database can compare it
        return value
    if not isinstance(value, str) or "\x00" in value:  # PostgreSQL text can't hold NUL
        raise ValueError("str")
    value.encode()  # UnicodeEncodeError (a ValueError) for a lone surrogate, which no database can take
    return value


def encode_token(order: Sequence[SortField], key: Sequence[object], direction: str) -> str:
    payload = {"o": _order_spec(order), "k": [_encode_value(v) for v in key], "d": direction}
    raw = json.dumps(payload, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_token(token: str, order: Sequence[SortField], kinds: Sortable, direction: str) -> tuple[object, ...]:
    bad = InvalidArgument("the page token is not valid for this request; start again without a token")
    try:
        padded = token + "=" * (-len(token) % 4)
        payload = json.loads(base64.urlsafe_b64decode(padded.encode("ascii")))
    except (ValueError, binascii.Error, UnicodeError, RecursionError):
        raise bad from None
    if not isinstance(payload, dict) or payload.get("d") != direction:
        raise bad
    if payload.get("o") != _order_spec(order):
        raise InvalidArgument("the page token was issued for a different sorting.order_by; start again without it")
    values = payload.get("k")
    if not isinstance(values, list) or len(values) != len(order):
        raise bad
    try:
        return tuple(_decode_value(v, kinds[f.name]) for v, f in zip(values, order, strict=True))
    except (ValueError, OverflowError, OSError):  # a forged time far outside datetime's range
        raise bad from None


def page_request(
    *,
    size: int,
    next_token: str,
    previous_token: str,
    order_by: Sequence[str],
    sortable: Sortable,
    default_order: Sequence[SortField],
    default_size: int,
    max_size: int,
) -> PageRequest:
    if size < 0:
        raise InvalidArgument("pagination.page_size must not be negative")
    if next_token and previous_token:
        raise InvalidArgument("set pagination.next_page_token or pagination.previous_page_token, not both")
    size = default_size if size == 0 else min(size, max_size)
    order = parse_order(order_by, {**sortable, "id": Kind.STR}, default_order)
    kinds = {**sortable, "id": Kind.STR}
    if next_token:
        return PageRequest(size, order, decode_token(next_token, order, kinds, "n"))
    if previous_token:
        return PageRequest(size, order, decode_token(previous_token, order, kinds, "p"), backwards=True)
    return PageRequest(size, order)


def make_page(rows: list[T], request: PageRequest, key: Callable[[T, str], object]) -> Page[T]:
    """Turn size+1 rows fetched in request order (reversed order when backwards) into a page."""
    more = len(rows) > request.size
    items = rows[: request.size]
    if request.backwards:
        items.reverse()

    def token(item: T, direction: str) -> str:
        return encode_token(request.order, [key(item, f.name) for f in request.order], direction)

    page = Page(items)
    if not items:
        return page
    if request.backwards:
        page.next_token = token(items[-1], "n")
        if more:
            page.previous_token = token(items[0], "p")
    else:
        if more:
            page.next_token = token(items[-1], "n")
        if request.cursor is not None:
            page.previous_token = token(items[0], "p")
    return page


def attribute_key(item: object, name: str) -> object:
    return getattr(item, name)
