"""What an API operation is: three typed steps, placed by the runner (pipeline/runner.py), not by the
operation's author.

1. decode: the request (path parameters, query, body) -> a typed, wire-neutral command. Pure, and run
   before any transaction. What it refuses is reported after authentication and authorization, as if
   the domain had refused it, and changes nothing.
2. call: the domain service (ctx, command) -> result, inside the unit of work. A write may add a
   read-only `precheck` (ctx, command) that runs before it (refusals reads alone decide, such as a
   bucket that exists already) and a read-only `reread` (ctx, result) -> result that runs after the
   commit, for the same caller at the same time, and sees the data as of then.
3. answer: (place, result) -> a wire struct (or encoded bytes), after the transaction has ended. It is
   given the request's place (organization, project, time), never the unit of work.

An API tree is a list of routes that each name one Operation; two trees' versions of one operation
differ in decode and answer only: the call, precheck and reread are the domain's (domain/steps.py), the
same function for both. Nothing here knows of SQLite's writer lock, group commit, the read
cache or PostgreSQL's pool: the runner decides where each step runs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, TypeVar

from packyard.domain.context import Ctx
from packyard.http.request import Request

C = TypeVar("C")
R = TypeVar("R")


@dataclass(frozen=True, slots=True)
class Place:
    """Where and when a request ran, for its answer: the path's tenant and the request's clock."""

    organization_id: str
    project_id: str
    now: datetime


@dataclass(frozen=True, slots=True)
class Operation(Generic[C, R]):
    decode: Callable[[Request], C]
    call: Callable[[Ctx, C], R]
    answer: Callable[[Place, R], Any]
    precheck: Callable[[Ctx, C], None] | None = None
    reread: Callable[[Ctx, R], R] | None = None


def no_command(request: Request) -> None:
    """decode for operations that take nothing but their path's tenant."""
    return
