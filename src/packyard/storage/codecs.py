"""What every repository shares: the time codecs (times are stored as integer microseconds since the
epoch, on both databases), the keyset builder that pages a statement, and the insert that refuses a
duplicate with a domain error."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta

from packyard.domain.errors import DomainError
from packyard.domain.pagination import PageRequest
from packyard.storage.raw import Raw

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_US = timedelta(microseconds=1)


def to_us(value: datetime) -> int:
    return (value - EPOCH) // _US


def opt_to_us(value: datetime | None) -> int | None:
    return None if value is None else to_us(value)


_TIMES: dict[int, datetime] = {}  # datetimes are immutable, and a request reads the same few many times


def from_us(value: int) -> datetime:
    found = _TIMES.get(value)
    if found is None:
        if len(_TIMES) >= 4096:
            _TIMES.clear()
        found = _TIMES[value] = EPOCH + timedelta(microseconds=value)
    return found


def opt_from_us(value: int | None) -> datetime | None:
    return None if value is None else from_us(value)


def _db_value(value: object) -> object:
    return to_us(value) if isinstance(value, datetime) else value


def keyset(
    select: str, params: Sequence[object], columns: Mapping[str, str], page: PageRequest
) -> tuple[str, list[object]]:
    """`select` (a statement that ends in its WHERE clause) ordered by the page's fields, starting after
    (or, backwards, before) the page's cursor, with one row more than the page holds. `columns` maps
    each sortable field to its column's SQL: only those names ever reach the statement's text."""
    cols = [columns[f.name] for f in page.order]
    desc = [f.descending != page.backwards for f in page.order]
    sql, args = select, list(params)
    if page.cursor is not None:
        values = [_db_value(v) for v in page.cursor]
        if all(desc) or not any(desc):  # one direction: a row comparison, which an index answers
            marks = ", ".join("?" * len(cols))
            sql += f" AND ({', '.join(cols)}) {'<' if desc[0] else '>'} ({marks})"
            args += values
        else:
            clauses = []
            for i, col in enumerate(cols):
                equal = [f"{cols[j]} = ?" for j in range(i)]
                clauses.append("(" + " AND ".join([*equal, f"{col} {'<' if desc[i] else '>'} ?"]) + ")")
                args += [*values[:i], values[i]]
            sql += " AND (" + " OR ".join(clauses) + ")"
    sql += " ORDER BY " + ", ".join(f"{c} DESC" if d else c for c, d in zip(cols, desc, strict=True)) + " LIMIT ?"
    args.append(page.size + 1)
    return sql, args


def insert_new(raw: Raw, table: str, values: Mapping[str, object], duplicate: Callable[[], DomainError]) -> None:
    """Insert the row, or raise duplicate() when it breaks a unique constraint (ON CONFLICT DO NOTHING:
    the transaction stays usable, and a refusal has changed nothing)."""
    if not raw.insert_unique(table, values):
        raise duplicate()
