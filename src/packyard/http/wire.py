"""What every API tree's wire module shares: HCP's time text, the msgspec base that leaves zero values
out, and the common shapes (location, pagination, operation, the empty answer), which are the same in
2021-04-30 and 2023-01-01."""

from __future__ import annotations

from datetime import datetime

import msgspec

_TEXTS: dict[datetime, str] = {}  # an answer shows the same few times many times over


def ts(value: datetime | None) -> str:
    """RFC 3339, UTC, milliseconds, trailing Z: 2023-01-01T00:00:00.000Z. Empty (omitted) when unset."""
    if value is None:
        return ""
    text = _TEXTS.get(value)
    if text is None:
        if len(_TEXTS) >= 4096:
            _TEXTS.clear()
        # Times are UTC-aware; isoformat is C code, much cheaper than strftime on this hot path.
        text = _TEXTS[value] = value.isoformat(timespec="milliseconds")[:-6] + "Z"
    return text


class Base(msgspec.Struct, omit_defaults=True, kw_only=True):
    pass


class Location(Base, kw_only=True):
    organization_id: str = ""
    project_id: str = ""


class Pagination(Base, kw_only=True):
    next_page_token: str = ""
    previous_page_token: str = ""


class Operation(Base, kw_only=True):
    id: str = ""
    state: str = ""
    location: Location | None = None
    created_at: str = ""
    updated_at: str = ""


class Empty(Base, kw_only=True):
    pass


EMPTY = Empty()


def location(org_id: str, project_id: str) -> Location:
    return Location(organization_id=org_id, project_id=project_id)


def pagination(next_token: str, previous_token: str) -> Pagination:
    return Pagination(next_page_token=next_token, previous_page_token=previous_token)


def operation(op_id: str, org_id: str, project_id: str, when: datetime) -> Operation:
    """A long-running operation that is already over: packyard does its work inside the request."""
    return Operation(
        id=op_id,
        state="DONE",
        location=location(org_id, project_id),
        created_at=ts(when),
        updated_at=ts(when),
    )
