"""Rows read with the request's principal and handed to the other repositories (to be replaced by an
explicit read: renovation, issue 16)."""

from __future__ import annotations

from sqlalchemy.engine import Connection

from packyard.domain.models import Registry
from packyard.storage.db import GROUP_ROWS


def forget_group_rows(conn: Connection) -> None:
    """A write to what GROUP_ROWS holds (a principal, a registry, a project's stamp): read it again."""
    group = conn.info.get(GROUP_ROWS)
    if group:
        group.clear()


class Prefetched:
    """Rows read in the same statement as the request's principal, each handed out once: the project's
    registry (None when it has none) and its change stamp. A write to either forgets it."""

    __slots__ = ("checked_in", "found", "project_id", "registries", "stamps")

    def __init__(self, project_id: str) -> None:
        self.project_id = project_id
        # The organization the project was looked for in (the principal's), and whether it is there.
        self.checked_in: str | None = None
        self.found = False
        self.registries: dict[str, Registry | None] = {}
        self.stamps: dict[str, int | None] = {}
