"""One request's trip, in one place: authenticate, authorize, run the operation's steps in a unit of
work, answer after the commit. The only module where the speed machinery shows.

For a project route (every HCP operation) the trip is:

1. decode the request into the operation's command, before any transaction (a refusal is kept and
   reported after authentication and authorization, so a bad body never tells an outsider anything);
2. a read: answered from the read cache when it holds a fresh answer (after the same authentication
   and authorization, by one statement that re-reads the token's principal and the project's stamp);
   otherwise the operation's call in a read-only transaction, its answer encoded and kept;
3. a write: the operation's precheck in a read-only transaction (refusals reads decide, without
   SQLite's writer lock), then its call in a write unit (`await db.write(unit, project)`: storage
   decides where it runs and marks the project changed), then its reread in a read-only transaction
   after the commit, on both databases alike;
4. the answer, made from the result after the transaction ended, outside any lock.

Every unit of work authenticates the token (its principal re-read), checks tenancy (the project is
looked up inside the path's organization, domain.tenants.reach) and the role before it does anything
else. Principal routes (the resource-manager reads) need a token but no project; public routes are
listed in http/public.py and get the services and the request.
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import msgspec

from packyard.auth.service import principal_gone
from packyard.domain import tenants
from packyard.domain.context import Ctx
from packyard.domain.errors import DomainError, PermissionDenied, Unauthenticated
from packyard.domain.models import Principal
from packyard.http.request import Request
from packyard.http.routing import Access, Route
from packyard.pipeline.cache import CacheKey, CheckBatch, Entry, Question, ReadCache
from packyard.pipeline.operations import Operation, Place
from packyard.pipeline.services import Services
from packyard.storage.db import DatabaseUnavailable
from packyard.storage.freshness import AsyncStampReader, principal_and_stamp
from packyard.storage.raw import Conn
from packyard.storage.unit_of_work import SqlUnitOfWork

_encoder = msgspec.json.Encoder()


def bearer_token(request: Request) -> str:
    header = request.header(b"authorization")
    scheme, _, token = header.partition(" ")
    if not header:
        raise Unauthenticated("this operation needs an Authorization: Bearer token; get one from /oauth2/token")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthenticated("the Authorization header must be 'Bearer <token>'")
    return token.strip()


def authorize(principal: Principal, route: Route, org_id: str, project_id: str, *, found: bool) -> None:
    """Tenancy (domain.tenants.reach: the path's organization must be the principal's, and found says
    whether the project is there, as the statement that read the principal found it), then the role."""
    tenants.reach(principal, org_id, project_id, found=found)
    if not principal.can(route.permission):
        raise PermissionDenied(
            f"the principal's role ({principal.role.value}) does not allow {route.operation_id.split('_')[-1]}"
        )


@dataclass(frozen=True, slots=True)
class Done:
    """What a unit of work leaves for the rest of the trip."""

    result: Any
    ctx: Ctx  # its unit of work has ended: for the place, the time and a reread's fresh unit
    principal: Principal
    stamp: int | None  # the project's change stamp, read before the answer's data (cached reads only)

    @property
    def place(self) -> Place:
        return Place(self.ctx.organization_id, self.ctx.project_id, self.ctx.now)


def encode(answer: Any) -> bytes:
    return answer if isinstance(answer, bytes) else _encoder.encode(answer)


class Runner:
    def __init__(self, services: Services) -> None:
        self.services = services
        db = services.db
        max_cache = services.settings.read_cache_bytes
        self.cache = ReadCache(max_cache) if max_cache > 0 else None
        # SQLite answers the cache's check in microseconds, in line; PostgreSQL is a round trip away, so
        # the requests waiting for it share one (CheckBatch) while the event loop serves the others.
        self._stamps: AsyncStampReader | None = None
        self.batch: CheckBatch | None = None
        if self.cache is not None and not db.is_sqlite:
            self._stamps = AsyncStampReader(db)
            self.batch = CheckBatch(self._stamps.fetch)

    async def aclose(self) -> None:
        if self._stamps is not None:
            await self._stamps.close()

    async def run(self, route: Route, request: Request) -> bytes:
        if route.access is Access.PUBLIC:
            assert route.public is not None
            answer = route.public(self.services, request)
            return encode(await answer if inspect.isawaitable(answer) else answer)
        op = route.operation
        assert op is not None, route.template
        if route.access is Access.PRINCIPAL:
            return await self._principal(route, op, request)
        if route.writes:
            return await self._write(route, op, request)
        if route.pure and self.cache is not None:
            hit = (
                await self._from_cache_batched(self.batch, self.cache, route, request)
                if self.batch is not None
                else self._from_cache(self.cache, route, request)
            )
            if hit is not None:
                return hit
            self.cache.misses += 1
        return await self._read(route, op, request)

    # ---- the three kinds of trip

    async def _principal(self, route: Route, op: Operation[Any, Any], request: Request) -> bytes:
        """Routes that need a valid token but no project in the path (resource-manager reads)."""
        token = bearer_token(request)
        svc = self.services
        command = op.decode(request)

        def work(conn: Conn) -> Done:
            uow = SqlUnitOfWork(conn, svc.vault)
            now = svc.clock.now()
            principal = svc.tokens.principal_for(uow, token, now)
            request.principal_id = principal.id
            ctx = Ctx(uow, svc.rules, now, principal.organization_id, principal.project_id or "", principal)
            return Done(op.call(ctx, command), ctx, principal, None)

        done: Done = await svc.db.read(work)
        return encode(op.answer(done.place, done.result))

    async def _read(self, route: Route, op: Operation[Any, Any], request: Request) -> bytes:
        command, refusal = _decode(op, request)
        cache = self.cache if route.pure else None
        unit = self._unit(route, request, command, refusal, op.call, stamp=cache is not None)
        done: Done = await self.services.db.read(unit)
        body = encode(op.answer(done.place, done.result))
        if cache is not None and done.stamp is not None:
            ctx = done.ctx
            cache.put(_cache_key(route, request, done.principal), Entry(done.stamp, body, ctx.now, ctx.valid_until))
        return body

    async def _write(self, route: Route, op: Operation[Any, Any], request: Request) -> bytes:
        svc = self.services
        command, refusal = _decode(op, request)
        if op.precheck is not None and refusal is None:
            await svc.db.read(self._unit(route, request, command, None, op.precheck))
        unit = self._unit(route, request, command, refusal, op.call)
        done: Done = await svc.db.write(unit, request.params.get("project", ""))
        result = done.result
        if op.reread is not None:
            result = await self._reread(done, op.reread)
        return encode(op.answer(done.place, result))

    # ---- units of work

    def _unit(
        self,
        route: Route,
        request: Request,
        command: Any,
        refusal: DomainError | None,
        step: Callable[[Ctx, Any], Any],
        *,
        stamp: bool = False,
    ) -> Callable[[Conn], Done]:
        """The transaction of a project-scoped step: authenticate, authorize, then the step. With stamp,
        the project's change stamp is read before the step's data (so an answer is never older than its
        stamp). A refusal from decode is raised once the caller is authenticated and authorized."""
        token = bearer_token(request)
        org_id = request.params.get("org", "")
        project_id = request.params.get("project", "")
        svc = self.services

        def work(conn: Conn) -> Done:
            uow = SqlUnitOfWork(conn, svc.vault)
            now = svc.clock.now()
            claims = svc.tokens.verify(uow, token, now)
            # One statement: the principal, and inside its organization the project's stamp and registry.
            found = uow.principal_with_project(claims.principal_id, project_id)
            if found is None:
                raise principal_gone()
            principal = found.principal
            request.principal_id = principal.id
            authorize(principal, route, org_id, project_id, found=found.project_found)
            if refusal is not None:
                raise refusal
            ctx = Ctx(uow, svc.rules, now, org_id, project_id, principal, registry=found.registry)
            return Done(step(ctx, command), ctx, principal, found.stamp if stamp else None)

        return work

    async def _reread(self, done: Done, reread: Callable[[Ctx, Any], Any]) -> Any:
        """A write's reread, in a read-only transaction of its own after the commit (outside SQLite's
        writer lock), for the same caller, at the write's time: it sees the data as of then."""
        svc = self.services
        written = done.ctx

        def work(conn: Conn) -> Any:
            # A fresh unit of work, and the registry as it is now (the write may have changed it).
            return reread(dataclasses.replace(written, uow=SqlUnitOfWork(conn, svc.vault), registry=None), done.result)

        return await svc.db.read(work)

    # ---- the read cache's hit path

    def _worth_a_check(self, cache: ReadCache, route: Route, request: Request) -> str | None:
        """The token's principal id when the cache holds an answer to the question and the token's
        signature was checked before (so one statement can settle the rest); None: the ordinary path."""
        if not cache.holds(_question(route, request)):
            return None
        claims = self.services.tokens.cached_claims(bearer_token(request), self.services.clock.now())
        return None if claims is None else claims.principal_id

    def _from_cache(self, cache: ReadCache, route: Route, request: Request) -> bytes | None:
        """A cached answer, after the same authentication and authorization as the ordinary path (one
        statement re-reads the token's principal and the project's stamp); None takes the ordinary path,
        which also reports every refusal other than a principal's lack of access."""
        principal_id = self._worth_a_check(cache, route, request)
        if principal_id is None:
            return None
        try:
            project_id = request.params.get("project", "")
            principal, stamp = principal_and_stamp(self.services.db, principal_id, project_id) or (None, None)
        except DatabaseUnavailable:
            return None
        return self._cached_answer(cache, route, request, principal, stamp)

    async def _from_cache_batched(
        self, batch: CheckBatch, cache: ReadCache, route: Route, request: Request
    ) -> bytes | None:
        """_from_cache with the check shared by the requests waiting for the same round trip."""
        principal_id = self._worth_a_check(cache, route, request)
        if principal_id is None:
            return None
        try:
            principal, stamp = await batch.check(principal_id, request.params.get("project", ""))
        except DatabaseUnavailable:
            return None
        return self._cached_answer(cache, route, request, principal, stamp)

    def _cached_answer(
        self, cache: ReadCache, route: Route, request: Request, principal: Principal | None, stamp: int | None
    ) -> bytes | None:
        """The end of both checks: the principal's access is refused here as on the ordinary path (a
        project that is not inside the principal's organization has no stamp); a gone principal, or no
        fresh entry, goes the ordinary way."""
        if principal is None:
            return None
        request.principal_id = principal.id
        params = request.params
        authorize(principal, route, params.get("org", ""), params.get("project", ""), found=stamp is not None)
        if stamp is None:  # pragma: no cover - reach refused it
            return None
        return cache.get(_cache_key(route, request, principal), stamp, self.services.clock.now())


def _decode(op: Operation[Any, Any], request: Request) -> tuple[Any, DomainError | None]:
    try:
        return op.decode(request), None
    except DomainError as exc:
        return None, exc


def _question(route: Route, request: Request) -> Question:
    # The path parameters, not the path: a percent-encoded slash makes two raw paths decode alike, and a
    # tuple, not a joined string, for the same reason.
    project_id = request.params.get("project", "")
    return (project_id, route.api, route.operation_id, tuple(request.params.values()), request.query_string)


def _cache_key(route: Route, request: Request, principal: Principal) -> CacheKey:
    return (*_question(route, request), principal.role.value)
