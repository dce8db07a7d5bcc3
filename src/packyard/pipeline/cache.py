"""A per-process cache of encoded answers to the hot reads (GetChannel, GetIteration, GetBucket, ...).

Every `terraform plan` and every `packer build` data source reads the same few channels and iterations
over and over, while writes are rare. An answer is kept with the project's change stamp it was computed
under (a counter that every transaction changing the project's data increments, storage/schema.py) and
with the first instant at which something it derived from the clock flips (a scheduled revocation
falling due, a silent RUNNING build turning FAILED: Ctx.valid_until). A request may be answered from the
cache only when the stamp it reads from the database, in the same statement that re-reads the token's
principal, is still that stamp and the clock is inside that window; otherwise it takes the ordinary
path. So a write committed by any process, replica or CLI on the same database is seen by the very next
read, as without the cache, and authentication and authorization still run on every request.

The stamp is read before the data an answer is computed from, so an answer may be newer than its stamp
but never older: a reader that still sees the old stamp started before the newer write was visible.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime

from packyard.domain.models import Principal

# project, API tree, operation, path parameters, query, role: everything an answer's bytes depend on
# besides the data (the stamp) and the clock (the entry's window)
CacheKey = tuple[str, str, str, tuple[str, ...], bytes, str]
Question = tuple[str, str, str, tuple[str, ...], bytes]  # the key without the role (key[:5]): what was asked


@dataclass(frozen=True, slots=True)
class Entry:
    stamp: int
    body: bytes
    computed_at: datetime
    valid_until: datetime | None

    def fresh(self, stamp: int, now: datetime) -> bool:
        if stamp != self.stamp or now < self.computed_at:  # a clock that stepped back recomputes
            return False
        return self.valid_until is None or now < self.valid_until


class ReadCache:
    """Bounded by the bytes of the answers it holds; the oldest entries go first."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._entries: OrderedDict[CacheKey, Entry] = OrderedDict()
        self._questions: dict[Question, int] = {}  # entries per question, whatever the role
        self._bytes = 0
        self.hits = 0
        self.misses = 0  # counted by the runner: cacheable reads it answered the ordinary way

    @property
    def size_bytes(self) -> int:
        """The bytes of the answers held (at most max_bytes)."""
        return self._bytes

    def holds(self, question: Question) -> bool:
        """Whether any role's answer to the question is kept; when none is, a request need not pay for
        the check (one statement) before taking the ordinary path."""
        return question in self._questions

    def get(self, key: CacheKey, stamp: int, now: datetime) -> bytes | None:
        entry = self._entries.get(key)
        if entry is not None and entry.fresh(stamp, now):
            self.hits += 1
            return entry.body
        return None

    def put(self, key: CacheKey, entry: Entry) -> None:
        size = len(entry.body)
        if size > self.max_bytes // 8:  # a few large answers must not push out everything else
            return
        old = self._entries.pop(key, None)
        if old is not None:
            self._bytes -= len(old.body)
        else:
            question: Question = key[:5]
            self._questions[question] = self._questions.get(question, 0) + 1
        self._entries[key] = entry
        self._bytes += size
        while self._bytes > self.max_bytes:
            evicted_key, evicted = self._entries.popitem(last=False)
            self._bytes -= len(evicted.body)
            question = evicted_key[:5]
            left = self._questions[question] - 1
            if left:
                self._questions[question] = left
            else:
                del self._questions[question]


Check = tuple[Principal | None, int | None]  # the token's principal (None: gone) and the project's stamp
# principals by id, and each project's organization and stamp by project id
Fetch = Callable[[set[str], set[str]], Awaitable[tuple[dict[str, Principal], dict[str, tuple[str, int]]]]]


class CheckBatch:
    """The hit path's check for a database a round trip away (PostgreSQL): one query answers every
    request that was waiting when it was sent.

    A request is answered only by a query sent after the request arrived, never by one already in
    flight, so a write acknowledged before the request arrived is committed before its check reads the
    stamp: the freshness the cache promises, at one round trip per batch instead of per request."""

    def __init__(self, fetch: Fetch) -> None:
        self._fetch = fetch
        self._waiting: list[tuple[str, str, asyncio.Future[Check]]] = []
        self._draining = False
        self.queries = 0

    async def check(self, principal_id: str, project_id: str) -> Check:
        future: asyncio.Future[Check] = asyncio.get_running_loop().create_future()
        self._waiting.append((principal_id, project_id, future))
        if not self._draining:
            self._draining = True
            asyncio.get_running_loop().create_task(self._drain())
        return await future

    async def _drain(self) -> None:
        try:
            while self._waiting:
                batch, self._waiting = self._waiting, []
                self.queries += 1
                try:
                    principals, stamps = await self._fetch({p for p, _, _ in batch}, {q for _, q, _ in batch})
                except Exception as exc:  # every waiter takes the ordinary path, which reports the error
                    for _, _, future in batch:
                        if not future.done():
                            future.set_exception(exc)
                    continue
                for principal_id, project_id, future in batch:
                    if not future.done():
                        principal, found = principals.get(principal_id), stamps.get(project_id)
                        # a project of another organization has no stamp for this principal
                        own = principal is not None and found is not None and found[0] == principal.organization_id
                        future.set_result((principal, found[1] if own and found else None))
        finally:
            self._draining = False
