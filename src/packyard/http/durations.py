"""`revoke_in`, as both API trees take it: a duration such as '30d' or '2h45m'."""

from __future__ import annotations

import re
from datetime import timedelta

from packyard.domain.errors import InvalidArgument

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
