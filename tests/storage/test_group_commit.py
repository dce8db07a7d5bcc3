"""Group commit (both databases): writes that reach the event loop together share one transaction, each in a
savepoint of its own only when needed, and one commit. Each must come out exactly as if it had run alone."""

from __future__ import annotations

import asyncio
import itertools
import os
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from packyard.storage import schema as t
from packyard.storage.db import Database
from packyard.storage.groups import DATABASE_ERRORS, is_transient
from packyard.storage.raw import Conn, Raw
from packyard.storage.writer_lock import WriterLock
from packyard.storage.writes import WriteQueue
from tests.conftest import Env
from tests.support.client import error, ok


def _buckets(env: Env) -> list[str]:
    return sorted(b["slug"] for b in ok(env.client.get(env.client.p("/images")))["buckets"])


def test_concurrent_writes_share_commits_and_a_refusal_changes_nothing(env: Env) -> None:
    c = env.client
    ok(c.put(c.p("/images"), json={"bucket_slug": "taken"}))
    before = (env.db.writes.groups, env.db.writes.requests)
    bodies = [
        {"bucket_slug": "a-1"},
        {"bucket_slug": "taken"},  # exists: code 6, decided by a read before the group (refuse_early)
        {"bucket_slug": "a-2"},
        {"bucket_slug": "Not A Slug"},  # invalid: code 3, refused before the group too
        {"bucket_slug": "a-2", "description": "the same slug in the same turn"},  # code 6, inside the group
        {"bucket_slug": "a-3", "description": "x" * 100_000},  # too long: code 3, before the group
        {"bucket_slug": "a-4"},
    ]

    async def together() -> list[Any]:
        return list(await asyncio.gather(*[c.arequest("PUT", c.p("/images"), json=b) for b in bodies]))

    responses = c.loop.run_until_complete(together())
    # The two a-2 PUTs join the group in the order their prechecks end: on SQLite the order they came in
    # (the prechecks run in line), on PostgreSQL whichever thread was done first.
    won = 2 if responses[2].status_code == 200 else 4
    lost = 6 - won
    assert [r.status_code for r in responses] == [
        200,
        409,
        *([200, 400, 409] if won == 2 else [409, 400, 200]),
        400,
        200,
    ]
    if env.db.is_sqlite:
        assert won == 2
    assert error(responses[1], 6, 409) == "bucket 'taken' already exists"
    assert error(responses[lost], 6, 409) == "bucket 'a-2' already exists", "the group's refusal reads the same"
    error(responses[3], 3, 400)
    error(responses[5], 3, 400)
    groups, requests = env.db.writes.groups - before[0], env.db.writes.requests - before[1]
    # Only the writes that reads could not refuse joined a group; on PostgreSQL the losing a-2's precheck
    # may run after the winner's commit and refuse it before any group.
    assert requests == 4 if env.db.is_sqlite else requests in (3, 4)
    if env.db.is_sqlite:  # on PostgreSQL, prechecks end on threads: the writes join in no set turns
        assert groups < requests, "the four writes arrived together and should have shared commits"
    assert _buckets(env) == ["a-1", "a-2", "a-4", "taken"]
    # The refused a-2 changed nothing: the description is the winner's (none: omitted on the wire).
    assert ok(c.get(c.p("/images/a-2")))["bucket"].get("description") == bodies[won].get("description")
    # Each created bucket is whole: its managed `latest` channel was written in the same unit.
    for slug in ("a-1", "a-2", "a-4"):
        channels = ok(c.get(c.p(f"/images/{slug}/channels")))["channels"]
        assert [ch["slug"] for ch in channels] == ["latest"]


def test_writes_of_one_turn_share_a_transaction_and_one_stamp_and_a_refusal_is_undone_alone(env: Env) -> None:
    """Units handed to db.write in one turn of the event loop form one group on both databases (on
    PostgreSQL it runs on a worker thread): one commit, the project's stamp bumped once, and a unit
    refused after it changed rows undoes only its own changes."""
    project_id = env.init.project_id
    stamp = sa.select(t.project.c.change_stamp).where(t.project.c.id == project_id)

    def current() -> int:
        return int(env.db.run(lambda conn: conn.execute(stamp).scalar_one(), write=False))

    async def together() -> list[Any]:
        units = [_add_org("g6-a"), _add_org("g6-b", then=_refuse), _add_org("g6-c")]
        return list(await asyncio.gather(*[env.db.write(u, project_id) for u in units], return_exceptions=True))

    before, groups = current(), env.db.writes.groups
    first, refused, last = env.client.loop.run_until_complete(together())
    assert (first, last) == ("g6-a", "g6-c")
    assert isinstance(refused, ValueError)
    assert env.db.writes.groups - groups == 1, "the three units were handed over in one turn"
    assert current() - before == 1, "one group, one stamp"
    assert _orgs(env.db, "g6-") == ["g6-a", "g6-c"]


def test_a_lone_write_is_not_kept_waiting(env: Env) -> None:
    before = env.db.writes.groups
    ok(env.client.put(env.client.p("/images"), json={"bucket_slug": "alone"}))
    assert env.db.writes.groups == before + 1
    assert _buckets(env) == ["alone"]


def _add_org(name: str, *, then: Callable[[], None] | None = None) -> Callable[[Conn], str]:
    """A unit in the repositories' idiom (storage/raw.py), so that it runs on every driver: sqlite3,
    psycopg (Database.run_many) and asyncpg (PostgreSQL's Database.write)."""

    def work(conn: Conn) -> str:
        Raw(conn).insert("organization", {"id": name, "name": name, "created_at": 0})
        if then is not None:
            then()
        return name

    return work


def _orgs(db: Database, prefix: str) -> list[str]:
    def read(conn: Connection) -> list[str]:
        rows = conn.execute(sa.select(t.organization.c.id).where(t.organization.c.id.like(prefix + "%")))
        return sorted(r.id for r in rows)

    return db.run(read, write=False)


def _refuse() -> None:
    raise ValueError("refused after writing")


def test_run_many_rolls_back_only_the_unit_that_raised(env: Env) -> None:
    outcomes = env.db.run_many([_add_org("g1-a"), _add_org("g1-b", then=_refuse), _add_org("g1-c")])
    assert [o.value for o in outcomes] == ["g1-a", None, "g1-c"]
    assert outcomes[0].error is None
    assert outcomes[2].error is None
    assert isinstance(outcomes[1].error, ValueError)
    # g1-b's insert ran before it raised; its savepoint took it back.
    assert _orgs(env.db, "g1-") == ["g1-a", "g1-c"]


def test_a_database_error_undoes_the_group_and_each_unit_runs_alone(env: Env) -> None:
    def broken(conn: Connection) -> None:
        conn.exec_driver_sql("SELECT no_such_column FROM organization")

    # The duplicate of g2-a fails on its own run too: a unique violation is the database's answer.
    outcomes = env.db.run_many([_add_org("g2-a"), broken, _add_org("g2-c"), _add_org("g2-a")])
    assert [o.value for o in outcomes] == ["g2-a", None, "g2-c", None]
    assert isinstance(outcomes[1].error, DATABASE_ERRORS)
    assert isinstance(outcomes[3].error, DATABASE_ERRORS)
    assert _orgs(env.db, "g2-") == ["g2-a", "g2-c"]


def _writer_lock_held_elsewhere(env: Env) -> tuple[WriteQueue, WriterLock]:
    """The app's write queue, and the database's writer lock taken on a descriptor of its own, which
    flock treats like another process's."""
    writes = env.db.writes
    if not env.db.is_sqlite:
        pytest.skip("the writer lock is SQLite's")
    path = sa.make_url(env.db.url).database
    assert path is not None
    other = WriterLock(os.path.abspath(path) + "-writer")
    assert other.try_hold()
    return writes, other


def test_writes_wait_for_another_process_holding_the_writer_lock_while_serving(env: Env) -> None:
    """Another process's writer (here: another open file, which flock treats alike) holds the lock: the
    write keeps looking while the event loop serves other requests, and goes through once it is free."""
    writes, other = _writer_lock_held_elsewhere(env)
    writes.lock_tries = 10_000  # keep looking on the loop (the helper thread is the next test's)
    c = env.client

    async def scenario() -> tuple[Any, Any, int]:
        write = asyncio.ensure_future(c.arequest("PUT", c.p("/images"), json={"bucket_slug": "later"}))
        while writes.lock_waits < 3:
            await asyncio.sleep(0.001)
        read = await c.arequest("GET", c.p("/images"))  # served while the write waits
        assert not write.done()
        waits = writes.lock_waits
        other.release()
        return await write, read, waits

    written, read, waits = c.loop.run_until_complete(scenario())
    assert waits >= 3
    assert ok(read)["buckets"] == []
    assert ok(written)["bucket"]["slug"] == "later"
    assert _buckets(env) == ["later"]


def test_after_a_few_looks_a_helper_thread_waits_for_the_writer_lock_while_the_loop_serves(env: Env) -> None:
    """Past its quick looks the write queue doesn't block the event loop on the lock: a helper thread
    waits for the other holder to let go, the loop serves reads meanwhile, and the write then goes
    through."""
    writes, other = _writer_lock_held_elsewhere(env)
    writes.lock_tries = 0  # straight to the helper thread
    c = env.client

    async def scenario() -> tuple[Any, Any, Any, int]:
        write = asyncio.ensure_future(c.arequest("PUT", c.p("/images"), json={"bucket_slug": "waited"}))
        while writes.lock_waits < 1:
            await asyncio.sleep(0)
        first = await c.arequest("GET", c.p("/images"))  # the loop is not blocked on the lock
        second = await c.arequest("GET", c.p("/images"))
        assert not write.done()
        waits = writes.lock_waits
        other.release()
        return await asyncio.wait_for(write, 10), first, second, waits

    written, first, second, waits = c.loop.run_until_complete(scenario())
    assert waits == 1, "one look, then the helper thread waited until the lock was free"
    assert ok(first)["buckets"] == ok(second)["buckets"] == []
    assert ok(written)["bucket"]["slug"] == "waited"
    assert _buckets(env) == ["waited"]


def test_the_writer_lock_is_one_holder_at_a_time(env: Env) -> None:
    lock = WriterLock.for_url(env.db.url)
    if not env.db.is_sqlite:
        assert lock is None  # a PostgreSQL database's name is no file to put a lock beside
        return
    assert lock is not None
    assert WriterLock.for_url(env.db.url) is lock  # one per process and file
    other = WriterLock(lock.path)
    with lock.held():
        with lock.held():  # reentrant in its thread
            assert not other.try_hold()
        assert not other.try_hold()
    assert other.try_hold()
    assert not lock.try_hold()
    other.release()
    assert lock.try_hold()
    lock.release()


def test_a_claimed_writer_lock_passes_to_the_claiming_loop_not_back_to_its_last_holder(env: Env) -> None:
    """The helper thread takes the lock for its event loop when the other process lets it go: that
    process can't take it back before the loop comes for it, the loop's try then succeeds at once, and
    its release frees the lock for everyone."""
    _, other = _writer_lock_held_elsewhere(env)
    lock = WriterLock.for_url(env.db.url)
    assert lock is not None
    claiming = threading.Thread(target=lock.claim)
    claiming.start()
    other.release()
    claiming.join(timeout=10)
    assert not claiming.is_alive()
    assert not other.try_hold(), "the last holder took the lock back from the claiming process"
    assert lock.acquire(wait=False), "the loop's try after the claim must succeed at once"
    lock.release()
    assert other.try_hold(), "the loop's release lets the claimed lock go"
    other.release()


def test_finish_runs_once_per_group_and_after_each_unit_run_alone(env: Env) -> None:
    finished: list[str] = []
    names = itertools.count()

    def finish(conn: Connection) -> None:
        conn.execute(t.organization.insert().values(id=f"g3-finish-{next(names)}", name="f", created_at=0))
        finished.append("x")

    env.db.run_many([_add_org("g3-a"), _add_org("g3-b", then=_refuse), _add_org("g3-c")], finish)
    assert len(finished) == 1
    assert _orgs(env.db, "g3-") == ["g3-a", "g3-c", "g3-finish-0"]
    env.db.run_many([_add_org("g4-a", then=_refuse), _add_org("g4-b", then=_refuse)], finish)
    assert len(finished) == 1, "no unit succeeded: nothing to finish"

    def broken(conn: Connection) -> None:
        conn.exec_driver_sql("SELECT no_such_column FROM organization")

    finished.clear()
    env.db.run_many([_add_org("g5-a"), broken, _add_org("g5-c")], finish)
    # The group was undone; run alone, each unit that succeeded finished its own transaction.
    assert _orgs(env.db, "g5-") == ["g5-a", "g5-c"]
    assert len(finished) == 2


def test_a_group_marks_the_project_changed_once_and_the_cache_sees_it(env: Env) -> None:
    c = env.client
    stamp = sa.select(t.project.c.change_stamp).where(t.project.c.id == c.project_id)

    def current() -> int:
        return int(env.db.run(lambda conn: conn.execute(stamp).scalar_one(), write=False))

    ok(c.put(c.p("/images"), json={"bucket_slug": "seen"}))
    ok(c.get(c.p("/images/seen")))
    ok(c.get(c.p("/images/seen")))  # cached now
    before, groups = current(), env.db.writes.groups

    async def together() -> list[Any]:
        calls = [c.arequest("PATCH", c.p("/images/seen"), json={"description": f"d{n}"}) for n in range(4)]
        return list(await asyncio.gather(*calls))

    for r in c.loop.run_until_complete(together()):
        ok(r)
    assert current() - before == env.db.writes.groups - groups
    if env.db.is_sqlite:  # on PostgreSQL the PATCHes' prechecks end on threads, in no set turns
        assert current() - before < 4
    assert ok(c.get(c.p("/images/seen")))["bucket"]["description"] == "d3"


def test_a_unit_sees_a_registry_change_made_earlier_in_its_group(env: Env) -> None:
    """Each unit of a group reads the principal with its project's registry itself, inside the group's
    transaction: a unit after one that deactivated the registry sees it deactivated and is refused."""
    if not env.db.is_sqlite:
        pytest.skip("on PostgreSQL the three join in the order their prechecks end on threads: no set order")
    c = env.client
    before = (env.db.writes.groups, env.db.writes.requests)

    async def together() -> list[Any]:
        return list(
            await asyncio.gather(
                c.arequest("PUT", c.p("/images"), json={"bucket_slug": "before-it"}),
                c.arequest("DELETE", c.p("/registry")),
                c.arequest("PUT", c.p("/images"), json={"bucket_slug": "after-it"}),
            )
        )

    first, deactivate, last = c.loop.run_until_complete(together())
    assert env.db.writes.groups - before[0] == 1, "the three writes should have shared one group"
    assert env.db.writes.requests - before[1] == 3
    ok(first)
    ok(deactivate)
    error(last, 9, 400)
    assert _buckets(env) == ["before-it"]


def test_a_locked_database_error_from_the_driver_is_retried(env: Env, tmp_path: Path) -> None:
    """BEGIN and the raw statements go to sqlite3 itself, whose errors SQLAlchemy does not wrap: a
    'database is locked' from there is as transient as SQLAlchemy's OperationalError."""
    path = tmp_path / "locked.db"
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    other = sqlite3.connect(path, timeout=0, isolation_level=None)
    with pytest.raises(sqlite3.OperationalError) as locked:
        other.execute("BEGIN IMMEDIATE")
    holder.rollback()
    holder.close()
    other.close()
    assert is_transient(locked.value)
    assert not is_transient(sqlite3.OperationalError("no such table: nothing"))

    attempts = itertools.count(1)

    def work(conn: Connection) -> int:
        attempt = next(attempts)
        if attempt == 1:
            raise locked.value
        return attempt

    assert env.db.run(work, write=True) == 2
