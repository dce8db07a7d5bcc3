"""The ASGI application: routing, body limits, authentication, one transaction per request, errors.

Handlers run on the event loop: SQLite answers the hot reads in microseconds, and a thread hop would
cost more than the query. Every project-scoped operation runs in one transaction opened here.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import msgspec
from sqlalchemy.engine import Connection

from packyard.auth.service import TokenService
from packyard.auth.vault import Vault, load_or_create_secret
from packyard.clock import Clock
from packyard.config import Settings
from packyard.domain import tenants
from packyard.domain.context import Ctx
from packyard.domain.errors import DomainError, PermissionDenied, Unauthenticated
from packyard.domain.models import Principal
from packyard.domain.ports import UnitOfWork
from packyard.domain.rules import Rules
from packyard.http.cache import CacheKey, CheckBatch, Entry, Question, ReadCache
from packyard.http.errors import http_status, status_body
from packyard.http.oauth import OAuthError
from packyard.http.request import Request
from packyard.http.routing import Access, Deferred, ReadAfter, Route, Router
from packyard.jobs import run_due_jobs
from packyard.storage.db import Database, DatabaseUnavailable, Outcome
from packyard.storage.sql import AsyncStampReader, SqlTenants, SqlUnitOfWork, principal_and_stamp

log = logging.getLogger("packyard.http")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

JSON_HEADERS = [(b"content-type", b"application/json")]
_encoder = msgspec.json.Encoder()


class BodyTooLarge(Exception):
    pass


class ClientGone(Exception):
    pass


Pending = tuple[Callable[[Connection], Any], str, "asyncio.Future[Any]"]  # work, its project, its answer


class WriteQueue:
    """SQLite's group commit: the write requests that reach the event loop in the same turn run one
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

    async def run(self, work: Callable[[Connection], Any], project_id: str) -> Any:
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

    def _run(self, pending: list[Pending]) -> None:
        for start in range(0, len(pending), self.max_group):
            group = pending[start : start + self.max_group]
            projects = sorted({project_id for _, project_id, _ in group})

            def bump(conn: Connection, projects: list[str] = projects) -> None:
                tenants = SqlTenants(conn)
                for project_id in projects:
                    tenants.bump_change_stamp(project_id)

            try:
                outcomes = self.db.run_many([work for work, _, _ in group], bump)
            except Exception as exc:  # pragma: no cover - run_many answers every unit itself
                log.exception("a group of writes failed")
                outcomes = [Outcome(None, exc)] * len(group)
            self.groups += 1
            self.requests += len(group)
            for (_, _, future), outcome in zip(group, outcomes, strict=True):
                if future.cancelled():
                    continue
                if outcome.error is not None:
                    future.set_exception(outcome.error)
                else:
                    future.set_result(outcome.value)


class Services:
    """What handlers get besides the request: settings, database, clock, tokens."""

    def __init__(self, settings: Settings, db: Database, clock: Clock) -> None:
        self.settings = settings
        self.db = db
        self.clock = clock
        self.rules = Rules(limits=settings.limits, heartbeat_grace_seconds=settings.heartbeat_grace_seconds)
        self.vault = Vault(settings.secret_key or load_or_create_secret(settings.data_dir))
        self.tokens = TokenService(settings.token_ttl_seconds, self.vault)


def bearer_token(request: Request) -> str:
    header = request.header(b"authorization")
    scheme, _, token = header.partition(" ")
    if not header:
        raise Unauthenticated("this operation needs an Authorization: Bearer token; get one from /oauth2/token")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthenticated("the Authorization header must be 'Bearer <token>'")
    return token.strip()


def authorize(principal: Principal, route: Route, org_id: str, project_id: str, uow: UnitOfWork | None) -> None:
    """Tenancy (domain.tenants.reach: the project looked up inside the path's organization, which must be
    the principal's), then the role. Without a unit of work (the read cache's hit path) the project's
    organization was checked by the statement that read its stamp."""
    if uow is not None:
        tenants.reach(uow, principal, org_id, project_id)
    elif principal.organization_id != org_id or (principal.project_id and principal.project_id != project_id):
        raise PermissionDenied("the principal has no access to this organization or project")
    if not principal.can(route.permission):
        raise PermissionDenied(
            f"the principal's role ({principal.role.value}) does not allow {route.operation_id.split('_')[-1]}"
        )


class App:
    def __init__(self, services: Services, routes: list[Route]) -> None:
        self.services = services
        self.router = Router()
        cached: set[tuple[str, str]] = set()
        for route in routes:
            self.router.add(route)
            if route.cache:  # the read cache tells answers apart by API tree and operation
                if not route.api or (route.api, route.operation_id) in cached:
                    raise ValueError(f"cached route {route.template} needs an API tree of its own (Route.api)")
                cached.add((route.api, route.operation_id))
        self.max_body = services.settings.limits.max_body_bytes
        # PostgreSQL commits concurrent transactions side by side; SQLite has one writer at a time.
        self.writes = WriteQueue(services.db) if services.db.is_sqlite else None
        max_cache = services.settings.read_cache_bytes
        self.cache = ReadCache(max_cache) if max_cache > 0 else None
        # SQLite answers the cache's check in microseconds, in line; PostgreSQL is a round trip away, so
        # the requests waiting for it share one (CheckBatch) while the event loop serves the others.
        self._stamps: AsyncStampReader | None = None
        self.batch: CheckBatch | None = None
        if self.cache is not None and not services.db.is_sqlite:
            self._stamps = AsyncStampReader(services.db)
            self.batch = CheckBatch(self._stamps.fetch)

    async def aclose(self) -> None:
        """Release what the app holds besides the database's pool (called on lifespan shutdown)."""
        if self._stamps is not None:
            await self._stamps.close()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        status, body, extra = await self._handle(scope, receive)
        headers = [*JSON_HEADERS, (b"content-length", str(len(body)).encode()), *extra]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        task: asyncio.Task[None] | None = None
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                task = asyncio.create_task(self._job_loop())
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if task is not None:
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await task
                await self.aclose()
                self.services.db.dispose()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _job_loop(self) -> None:
        svc = self.services
        while True:
            try:
                run_due_jobs(svc.db, svc.clock, svc.rules)
            except Exception:
                log.exception("background jobs failed; retrying")
            await asyncio.sleep(svc.settings.job_interval_seconds)

    async def _read_body(self, scope: Scope, receive: Receive) -> bytes:
        for key, value in scope["headers"]:
            if key == b"content-length":
                try:
                    if int(value) > self.max_body:
                        raise BodyTooLarge
                except ValueError:
                    pass
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise ClientGone
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body:
                raise BodyTooLarge
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)

    async def _handle(self, scope: Scope, receive: Receive) -> tuple[int, bytes, list[tuple[bytes, bytes]]]:
        method: str = scope["method"]
        path: str = scope["path"]
        route, params, path_exists = self.router.match(method, path, scope.get("raw_path"))
        if route is None:
            what = "method" if path_exists else "path"
            return 404, status_body(5, f"no operation {method} {path} (unknown {what})"), []
        request = Request(method, path, scope.get("query_string", b""), scope["headers"], params)
        request.scheme = scope.get("scheme", "http")
        request.client_host = scope["client"][0] if scope.get("client") else ""
        request.public_url = self.services.settings.public_url or ""
        try:
            if method in ("POST", "PUT", "PATCH"):
                request.body = await self._read_body(scope, receive)
            if route.writes and route.access is Access.PROJECT and self.writes is not None:
                refusal = self._prepare(route, request)
                computed: list[Any] = []
                work = self._project_work(route, request, computed, refusal, bump=False, read_after=True)
                result = await self.writes.run(work, request.params.get("project", ""))
                if isinstance(result, ReadAfter):
                    _, written, _ = computed  # the write's stamp, context and principal
                    result = self._read_after(written, result)
                return 200, _body(result), []
            if route.cache and self.batch is not None:
                hit = await self._from_cache_batched(self.batch, route, request)
                if hit is not None:
                    return 200, hit, []
            return 200, self._dispatch(route, request), []
        except BodyTooLarge:
            limit = self.max_body
            return 400, status_body(3, f"request body is larger than the limit of {limit} bytes"), []
        except ClientGone:
            return 400, status_body(3, "client disconnected"), []
        except OAuthError as exc:
            return exc.status, exc.body(), exc.headers
        except DomainError as exc:
            return http_status(exc.code), status_body(exc.code, exc.message), []
        except Exception:
            log.exception("unhandled error in %s %s", method, path)
            return 500, status_body(13, "internal error; the server log has the details"), []

    def _dispatch(self, route: Route, request: Request) -> bytes:
        if route.access is Access.PROJECT:
            result = self._project(route, request)
        elif route.access is Access.PRINCIPAL:
            result = self._principal(route, request)
        else:
            result = route.handler(self.services, request)
        return _body(result)

    def _principal(self, route: Route, request: Request) -> Any:
        """Routes that need a valid token but no project in the path (resource-manager reads)."""
        token = bearer_token(request)
        svc = self.services

        def work(conn: Connection) -> Any:
            uow = SqlUnitOfWork(conn, svc.vault)
            now = svc.clock.now()
            principal = svc.tokens.principal_for(uow, token, now)
            ctx = Ctx(uow, svc.rules, now, principal.organization_id, principal.project_id or "", principal)
            return route.handler(ctx, request)

        return svc.db.run(work, write=route.writes)

    def _project(self, route: Route, request: Request) -> Any:
        token = bearer_token(request)
        svc = self.services
        cache = self.cache if route.cache else None
        if cache is not None and self.batch is None:  # with a batch, _handle looked already
            hit = self._from_cache(cache, route, request, token)
            if hit is not None:
                return hit
        computed: list[Any] = []
        refusal = self._prepare(route, request)
        result = svc.db.run(self._project_work(route, request, computed, refusal), write=route.writes)
        if cache is not None and computed and computed[0] is not None:
            stamp, ctx, principal = computed
            body = _body(result)
            cache.put(_cache_key(route, request, principal), Entry(stamp, body, ctx.now, ctx.valid_until))
            return body
        return result

    def _prepare(self, route: Route, request: Request) -> DomainError | None:
        """What comes before a write's transaction, outside SQLite's writer lock: the route's prepare
        step, whose refusal is returned (the transaction reports it after authentication), then the
        refusals reads alone decide (Route.refuse_early), which are raised here."""
        refusal: DomainError | None = None
        if route.prepare is not None:
            try:
                request.prepared = route.prepare(request)
            except DomainError as exc:
                refusal = exc
        if route.refuse_early is not None and refusal is None:
            work = self._project_work(route, request, [], None, handler=route.refuse_early, bump=False)
            self.services.db.run(work, write=False)
        return refusal

    def _project_work(
        self,
        route: Route,
        request: Request,
        computed: list[Any],
        refusal: DomainError | None,
        *,
        handler: Callable[..., Any] | None = None,
        bump: bool = True,
        read_after: bool = False,
    ) -> Callable[[Connection], Any]:
        """The transaction of a project-scoped request; for a cached route it leaves the stamp read
        before the answer's data, the context and the principal in `computed`. A write bumps the
        project's change stamp at its end, unless bump is False (the write queue bumps it per group).
        refusal (from the prepare step) is raised once the caller is authenticated and authorized;
        handler replaces the route's own (its refuse_early check). With read_after a ReadAfter answer is
        left for the caller to read after the commit (_read_after); without, it is read here."""
        token = bearer_token(request)
        org_id = request.params.get("org", "")
        project_id = request.params.get("project", "")
        svc = self.services
        cache = self.cache if route.cache else None
        handle = route.handler if handler is None else handler

        def work(conn: Connection) -> Any:
            uow = SqlUnitOfWork(conn, svc.vault, project_id=project_id)
            now = svc.clock.now()
            principal = svc.tokens.principal_for(uow, token, now)
            authorize(principal, route, org_id, project_id, uow)
            if refusal is not None:  # a bad body is reported after authentication, as the handler would
                raise refusal
            # Read before the data the answer comes from, so the answer is never older than its stamp.
            stamp = uow.tenants.change_stamp(project_id) if cache is not None else None
            # Whether the project exists is settled by the registry lookup every operation makes.
            ctx = Ctx(uow, svc.rules, now, org_id, project_id, principal)
            result = handle(ctx, request)
            if isinstance(result, ReadAfter) and not read_after:
                result = result.read(ctx)
            if route.writes and bump:  # last, so that PostgreSQL holds the project row's lock only while committing
                uow.tenants.bump_change_stamp(project_id)
            computed[:] = [stamp, ctx, principal]
            return result

        return work

    def _read_after(self, written: Ctx, after: ReadAfter) -> Any:
        """A write's ReadAfter answer, read in a read-only transaction of its own after the commit (outside
        SQLite's writer lock), for the same caller, at the write's time."""
        svc = self.services

        def work(conn: Connection) -> Any:
            uow = SqlUnitOfWork(conn, svc.vault, project_id=written.project_id)
            return after.read(dataclasses.replace(written, uow=uow))

        return svc.db.run(work, write=False)

    def _from_cache(self, cache: ReadCache, route: Route, request: Request, token: str) -> bytes | None:
        """A cached answer, after the same authentication and authorization as the ordinary path (one
        statement re-reads the token's principal and the project's stamp); None takes the ordinary path,
        which also reports every refusal other than a principal's lack of access."""
        if not cache.holds(_question(route, request)):
            return None
        svc = self.services
        now = svc.clock.now()
        claims = svc.tokens.cached_claims(token, now)
        if claims is None:
            return None
        try:
            project_id = request.params.get("project", "")
            principal, stamp = principal_and_stamp(svc.db, claims.principal_id, project_id) or (None, None)
        except DatabaseUnavailable:
            return None
        return self._cached_answer(cache, route, request, principal, stamp)

    async def _from_cache_batched(self, batch: CheckBatch, route: Route, request: Request) -> bytes | None:
        """_from_cache with the check shared by the requests waiting for the same round trip."""
        assert self.cache is not None
        if not self.cache.holds(_question(route, request)):
            return None
        svc = self.services
        token = bearer_token(request)
        claims = svc.tokens.cached_claims(token, svc.clock.now())
        if claims is None:
            return None
        try:
            principal, stamp = await batch.check(claims.principal_id, request.params.get("project", ""))
        except DatabaseUnavailable:
            return None
        return self._cached_answer(self.cache, route, request, principal, stamp)

    def _cached_answer(
        self, cache: ReadCache, route: Route, request: Request, principal: Principal | None, stamp: int | None
    ) -> bytes | None:
        """The end of both checks: the principal's access is refused here as on the ordinary path; a gone
        principal or project, or no fresh entry, goes the ordinary way."""
        if principal is None:
            return None
        project_id = request.params.get("project", "")
        authorize(principal, route, request.params.get("org", ""), project_id, None)
        if stamp is None:
            return None
        return cache.get(_cache_key(route, request, principal), stamp, self.services.clock.now())


def _body(result: Any) -> bytes:
    """A handler's answer as the response body (handlers may hand back bytes already encoded, or a
    Deferred projection, made here: after the commit, outside the writer lock)."""
    if isinstance(result, Deferred):
        result = result()
    return result if isinstance(result, bytes) else _encoder.encode(result)


def _question(route: Route, request: Request) -> Question:
    # The path parameters, not the path: a percent-encoded slash makes two raw paths decode alike, and a
    # tuple, not a joined string, for the same reason.
    project_id = request.params.get("project", "")
    return (project_id, route.api, route.operation_id, tuple(request.params.values()), request.query_string)


def _cache_key(route: Route, request: Request, principal: Principal) -> CacheKey:
    return (*_question(route, request), principal.role.value)
