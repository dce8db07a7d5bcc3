"""UpdateIteration's and UpdateVersion's revocation fields, as both API trees take them: `revoke_at`, or
`revoke_in` (a duration such as '30d' or '2h45m'), or `restore`."""

from __future__ import annotations

import re
from datetime import timedelta

from packyard.domain.commands import IterationChanges
from packyard.domain.errors import InvalidArgument
from packyard.http.request import parse_time

_DURATION_RE = re.compile(r"^(?:(\d+(?:\.\d+)?)([smhd]))+$")
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)([smhd])")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
MAX_REVOKE_IN = timedelta(days=366 * 100)


def parse_duration(value: str) -> timedelta:
    """'30d', '2h45m', '0s': units s, m, h and d, as HCP documents revoke_in."""
    text = value.strip()
    if not _DURATION_RE.match(text):
        raise InvalidArgument(f"revoke_in {value[:40]!r} is not a duration such as '30d', '2h45m' or '0s'")
    seconds = sum(float(n) * _UNIT_SECONDS[u] for n, u in _DURATION_PART.findall(text))
    try:
        duration = timedelta(seconds=seconds)
    except OverflowError:  # '99999999999999999999d' would otherwise be a 500
        raise InvalidArgument("revoke_in is more than a hundred years away") from None
    if duration > MAX_REVOKE_IN:
        raise InvalidArgument("revoke_in is more than a hundred years away")
    return duration


def iteration_changes(
    *,
    complete: bool | None,
    revoke_at: str | None,
    revoke_in: str | None,
    message: str | None,
    restore: bool | None,
    skip_descendants: bool | None,
    rollback_channels: bool,
) -> IterationChanges:
    """The changes an update body asks for; a time and a delay together, or a restore with either, are
    refused here (Go clients send revoke_at in year 1 when unset: that is no time)."""
    at = parse_time(revoke_at or "", "revoke_at")
    if at is not None and revoke_in:
        raise InvalidArgument("set revoke_at or revoke_in, not both")
    if restore and (at is not None or revoke_in):
        raise InvalidArgument("restore can't be combined with revoke_at or revoke_in")
    return IterationChanges(
        complete=bool(complete),
        revoke_at=at,
        revoke_after=parse_duration(revoke_in) if revoke_in else None,
        revocation_message=message or "",
        restore=bool(restore),
        skip_descendants_revocation=bool(skip_descendants),
        rollback_channels=rollback_channels,
    )
