"""SQLite's writer lock: one writer at a time among the processes and threads that share a database file."""

from __future__ import annotations

import fcntl
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import ClassVar

from packyard.files import FILE_MODE
from packyard.storage.urls import sqlite_file


class WriterLock:
    """One SQLite writer at a time among the processes and threads that share a database file, queued
    in the kernel (flock on a file beside the database) instead of in SQLite's busy handler.

    SQLite's own lock is a try-lock: a writer that finds it taken sleeps and tries again, 1 ms, then
    2, 5, 10 ... so with several worker processes every collision costs milliseconds while the lock
    itself is held for a fraction of one. A waiter on flock is woken the moment the holder lets go.
    SQLite's lock stays underneath for writers that don't take this one (another program, an old
    packyard); BEGIN IMMEDIATE and the busy timeout still order those. The wait has no timeout of its
    own: a holder keeps the lock for one transaction, whose statements are bounded by that busy
    timeout, and the kernel releases it when the holding process dies. One lock per process and file,
    so that two Database objects on one file in one thread can't wait for each other here."""

    _shared: ClassVar[dict[str, WriterLock]] = {}
    _shared_lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self, path: str) -> None:
        self.path = path
        self._fd: int | None = None
        self._thread = threading.RLock()  # flock excludes other open files, not other threads of this one
        self._depth = 0

    @classmethod
    def for_url(cls, url: str) -> WriterLock | None:
        """The lock of a SQLite database file (one per process and file); None for an in-memory SQLite
        database and for any other database, whose URL names no file."""
        database = sqlite_file(url)
        if database is None:
            return None
        path = database + "-writer"
        with cls._shared_lock:
            lock = cls._shared.get(path)
            if lock is None:
                lock = cls._shared[path] = cls(path)
            return lock

    def acquire(self, *, wait: bool) -> bool:
        """Take the lock, waiting for it or not; True when taken, and release() gives it back."""
        if not self._thread.acquire(blocking=wait):
            return False
        try:
            if self._depth == 0:
                fcntl.flock(self._descriptor(), fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._thread.release()
            return False
        except BaseException:
            self._thread.release()
            raise
        self._depth += 1
        return True

    def claim(self) -> None:
        """Wait for the lock and take it for this process, for a helper thread whose event loop then
        takes it with acquire(wait=False) and lets it go with release().

        The flock is taken on this process's descriptor, on which the loop's acquire then succeeds at
        once (flock on an open file that holds the lock already is granted), so the process that has just
        let the lock go can't take it back in the moment between this thread's wake-up and the loop's
        try: the lock passes from one worker to the other instead of going to whoever tries first. The
        thread lock is held only while waiting, so that this thread doesn't claim a lock that another
        thread of this process is using (flock would grant it at once) and leave the loop spinning."""
        with self._thread:  # once it is ours, no other thread of this process holds the lock
            fcntl.flock(self._descriptor(), fcntl.LOCK_EX)

    def _descriptor(self) -> int:
        if self._fd is None:
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, FILE_MODE)
        return self._fd

    def try_hold(self) -> bool:
        """Take the lock if no one holds it, without waiting."""
        return self.acquire(wait=False)

    def release(self) -> None:
        self._depth -= 1
        if self._depth == 0 and self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
        self._thread.release()

    @contextmanager
    def held(self) -> Iterator[None]:
        self.acquire(wait=True)
        try:
            yield
        finally:
            self.release()
