"""Signals a serving process handles besides uvicorn's own (SIGINT, SIGTERM: a graceful stop).

SIGHUP reloads what is safe to re-read while serving, without dropping a connection: the log files are
opened again (after logrotate moved them), whether request lines are wanted is re-read from the logging
configuration, and every hook in RELOAD_HOOKS runs (another part of packyard may add one, such as a
certificate reload). Without this, SIGHUP's default action would end the process. With `--workers N`
the signal goes to uvicorn's supervising process, which restarts the workers one after the other
(uvicorn's behaviour): each new worker opens the log file afresh and re-reads its files.

SIGTERM and SIGINT also mark the process as shutting down, so that /readyz answers 503 while uvicorn
finishes the requests it has (ops/readiness.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import signal
from collections.abc import Callable
from types import FrameType
from typing import Any

from packyard.ops.readiness import Health

log = logging.getLogger(__name__)

# Callables run on SIGHUP, on the event loop, after the log files were reopened; each should be quick
# and must not raise (a hook that raises is logged and the others still run).
RELOAD_HOOKS: list[Callable[[], object]] = []


def reload(own: list[Callable[[], object]]) -> None:
    for hook in [*own, *RELOAD_HOOKS]:
        try:
            hook()
        except Exception:
            log.exception("a SIGHUP reload step failed: %r", hook)
    log.info("SIGHUP: log files reopened, settings re-read")


def install(health: Health, own: list[Callable[[], object]]) -> Callable[[], None]:
    """Handle SIGHUP (reload) and mark shutdowns, in the main thread of a serving process; returns what
    undoes it. Nothing happens elsewhere (an app run by a test harness on another thread)."""
    undo: list[Callable[[], object]] = []
    try:
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGHUP, reload, own)
        undo.append(lambda: loop.remove_signal_handler(signal.SIGHUP))
        for sig in (signal.SIGTERM, signal.SIGINT):
            previous = signal.getsignal(sig)
            if not callable(previous):
                continue

            def marking(signum: int, frame: FrameType | None, previous: Any = previous) -> None:
                health.shutting_down = True
                previous(signum, frame)

            signal.signal(sig, marking)
            undo.append(functools.partial(signal.signal, sig, previous))
    except (ValueError, RuntimeError, NotImplementedError):  # not the main thread, or no signals here
        pass

    def restore() -> None:
        for step in reversed(undo):
            with contextlib.suppress(ValueError, RuntimeError):
                step()

    return restore
