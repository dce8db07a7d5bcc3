"""Group commit.

The write units that reach the event loop in the same turn share one transaction and its commit
(`WriteQueue`, behind `await Database.write(unit, project_id)`). SQLite has one writer at a time, and
every worker process and replica on the file queues for it on a kernel lock (storage/db.py WriterLock):
sharing a commit among the writes of one turn takes that lock once for all of them. On PostgreSQL a
group runs in a greenlet of its own (storage/green.py), side by side with the other groups, and saves
the BEGIN, the change stamps' UPDATE and the COMMIT of all but one of its units.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Callable
from typing import Any

from packyard.storage.db import Database, bump_stamps
from packyard.storage.groups import Outcome
from packyard.storage.raw import Conn

log = logging.getLogger("packyard.storage")


Pending = tuple[Callable[[Conn], Any], str, "asyncio.Future[Any]"]  # work, its project, its answer


class WriteQueue:
    """Group commit: the write requests that reach the event loop in the same turn run one
    after another in one transaction, each in a savepoint, and share its commit (Database.run_many).

    Each answer waits for the commit that makes it durable, as before; a request that fails rolls back
    only its own savepoint. The first request of a turn schedules the group to run once the requests
    already in that turn have joined it, so a lone request waits for nothing but its own turn."""

    def __init__(self, db: Database, max_group: int = 64) -> None:
        self.db = db
        self.max_group = max_group
        # Per event loop: a server has one, but an app driven from several threads has one per thread,
        # and each groups only its own requests.
        self._pending: dict[asyncio.AbstractEventLoop, list[Pending]] = {}
        # Looks at a taken writer lock this often, on the loop's next turns (uvloop rounds a timer of
        # 0.5 ms down to 0), before a helper thread waits for it to be let go.
        self.lock_tries = 4
        self.lock_retry_s = 0.0005
        self.lock_waits = 0
        self.groups = 0  # commits made, and the requests they carried (for tests and the benchmark)
        self.requests = 0
        self._running: set[asyncio.Task[None]] = set()  # PostgreSQL's groups under way

    async def run(self, work: Callable[[Conn], Any], project_id: str) -> Any:
        """work's answer, committed; work changes project_id's data, whose change stamp the group then
        bumps once (work must not)."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        pending = self._pending.get(loop)
        if pending is None:
            pending = self._pending[loop] = []
            loop.call_soon(self._flush, loop)
        pending.append((work, project_id, future))
        return await future

    def _flush(self, loop: asyncio.AbstractEventLoop, tries: int = 0) -> None:
        if not self.db.is_sqlite:
            for group in self._groups(self._pending.pop(loop, [])):
                task = loop.create_task(self._commit_green(group))
                self._running.add(task)
                task.add_done_callback(self._running.discard)
            return
        # Another process (a worker of the same server, a replica) holds the writer lock: go on
        # serving, the group growing meanwhile, and look again shortly; after a few looks, a helper
        # thread waits for the lock, takes it for this loop (Database.claim_writer) and calls this
        # again, while the loop serves on.
        if not self.db.start_writing(wait=False):
            self.lock_waits += 1
            if tries < self.lock_tries:
                loop.call_later(self.lock_retry_s, self._flush, loop, tries + 1)
            else:
                waiting = loop.run_in_executor(None, self.db.claim_writer)
                waiting.add_done_callback(lambda _: self._flush(loop))
            return
        try:
            self._run(self._pending.pop(loop, []))  # run_many takes the lock again: it is reentrant
        finally:
            self.db.end_writing()

    def _groups(self, pending: list[Pending]) -> list[list[Pending]]:
        return [pending[start : start + self.max_group] for start in range(0, len(pending), self.max_group)]

    def _run(self, pending: list[Pending]) -> None:
        for group in self._groups(pending):
            self._answer(group, self._commit(group))

    def _commit(self, group: list[Pending]) -> list[Outcome]:
        """The group's units in one transaction (run_many), their projects' stamps bumped last."""
        works, bump = self._parts(group)
        try:
            outcomes = self.db.run_many(works, bump)
        except Exception as exc:  # pragma: no cover - run_many answers every unit itself
            log.exception("a group of writes failed")
            outcomes = [Outcome(None, exc)] * len(group)
        return self._counted(group, outcomes)

    async def _commit_green(self, group: list[Pending]) -> None:
        """A PostgreSQL group: storage/green.py's run_many, on this loop, then its answers."""
        assert self.db.green is not None
        works, bump = self._parts(group)
        try:
            outcomes = await self.db.green.run_many(works, bump)
        except Exception as exc:  # pragma: no cover - run_many answers every unit itself
            log.exception("a group of writes failed")
            outcomes = [Outcome(None, exc)] * len(group)
        self._answer(group, self._counted(group, outcomes))

    @staticmethod
    def _parts(group: list[Pending]) -> tuple[list[Callable[[Conn], Any]], Callable[[Conn], None]]:
        """The group's units, and what its transaction does last: bump the stamps of its projects."""
        projects = sorted({project_id for _, project_id, _ in group})
        return [work for work, _, _ in group], functools.partial(bump_stamps, project_ids=projects)

    def _counted(self, group: list[Pending], outcomes: list[Outcome]) -> list[Outcome]:
        self.groups += 1
        self.requests += len(group)
        return outcomes

    @staticmethod
    def _answer(group: list[Pending], outcomes: list[Outcome]) -> None:
        for (_, _, future), outcome in zip(group, outcomes, strict=True):
            if future.cancelled():
                continue
            if outcome.error is not None:
                future.set_exception(outcome.error)
            else:
                future.set_result(outcome.value)
