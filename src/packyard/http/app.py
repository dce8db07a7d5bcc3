"""The ASGI application: routing, body limits, lifespan and background jobs, and the one place errors
become HCP's `{code, message, details, error}` bodies. A request's trip (authentication, authorization,
units of work, the read cache, SQLite's group commit) is the runner's: pipeline/runner.py.

Requests run on the event loop: SQLite answers the hot reads in microseconds, and a thread hop would
cost more than the query.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, MutableMapping
from time import perf_counter_ns
from typing import Any

from packyard.domain.errors import DomainError
from packyard.http.access_log import RequestLog, reopen_log_files
from packyard.http.errors import http_status, status_body
from packyard.http.oauth import OAuthError
from packyard.http.request import Request
from packyard.http.routing import Access, Route, Router
from packyard.jobs import run_due_jobs
from packyard.ops import metrics, signals
from packyard.pipeline.runner import Runner
from packyard.pipeline.services import Services

log = logging.getLogger("packyard.http")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

JSON = b"application/json"
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
# First path segments that are the API's even where packyard serves no operation under them (HCP's IAM).
API_ROOTS = frozenset({"iam", "packer", "resource-manager", "oauth2", "oauth"})
SECRET_PATHS = ("/set-password/",)  # console paths whose rest is a secret (a one-time link)


class BodyTooLarge(Exception):
    pass


class ClientGone(Exception):
    pass


class App:
    def __init__(self, services: Services, routes: list[Route], console: ASGIApp | None = None) -> None:
        self.services = services
        # Requests whose first path segment is none of the API's go to the web console (console/app.py).
        self.console = console
        self.api_roots = frozenset(route.template[1:].partition("/")[0] for route in routes) | API_ROOTS
        self.router = Router()
        cached: set[tuple[str, str]] = set()
        for route in routes:
            self.router.add(route)
            if route.pure:  # the read cache tells answers apart by API tree and operation
                if not route.api or (route.api, route.operation_id) in cached:
                    raise ValueError(f"cached route {route.template} needs an API tree of its own (Route.api)")
                cached.add((route.api, route.operation_id))
        self.max_body = services.settings.limits.max_body_bytes
        self.runner = Runner(services)
        # The console's requests are logged and counted as one route of their own (not served by the router).
        self.console_route = Route("GET", metrics.CONSOLE_TEMPLATE, "Console", access=Access.PUBLIC)
        counted = [*routes, self.console_route] if console is not None else routes
        # Request ids, counts and log lines (http/access_log.py); the counts only when metrics are on.
        counting = services.settings.ops.metrics
        counts = metrics.attach(services, counted) if counting else metrics.Metrics(counted)
        counts.cache = self.runner.cache
        self.requests = RequestLog(counts, counting=counting)

    async def aclose(self) -> None:
        """Release what the app holds on the running event loop: the read cache's stamp reader, and
        PostgreSQL's request-path connections (called on lifespan shutdown; Database.dispose then closes
        the rest)."""
        await self.runner.aclose()
        await self.services.db.aclose()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        if self.console is not None and scope["path"][1:].partition("/")[0] not in self.api_roots:
            await self._console(scope, receive, send)
            return
        start = perf_counter_ns()
        route, request, status, body, extra = await self._handle(scope, receive)
        rid = self.requests.ids.for_request(scope["headers"])
        ctype = JSON if type(body) is bytes else getattr(body, "content_type", JSON)  # ops.metrics.Exposition
        headers = [
            (b"content-type", ctype),
            (b"content-length", str(len(body)).encode()),
            (b"x-request-id", rid),
            *extra,
        ]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})
        self.requests.done(route, request, status, start, rid, scope)

    async def _console(self, scope: Scope, receive: Receive, send: Send) -> None:
        """A console page: its answer gets a request id, and a log line whose path never holds a secret."""
        assert self.console is not None
        start = perf_counter_ns()
        rid = self.requests.ids.for_request(scope["headers"])
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message = {**message, "headers": [*message.get("headers", []), (b"x-request-id", rid)]}
            await send(message)

        try:
            await self.console(scope, receive, send_with_id)
        finally:
            path: str = scope["path"]
            if path.startswith(SECRET_PATHS):  # a one-time link's secret stays out of the log
                path = path[: path.index("/", 1) + 1] + "..."
            line = {"method": scope["method"], "path": path, "query_string": scope.get("query_string", b"")}
            self.requests.done(self.console_route, None, status, start, rid, {**line, "client": scope.get("client")})

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        svc = self.services
        tasks: list[asyncio.Task[None]] = []
        restore: Callable[[], None] = lambda: None  # noqa: E731
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                svc.health.jobs = asyncio.create_task(self._job_loop())
                tasks.append(svc.health.jobs)
                if svc.settings.ops.metrics_dir is not None and svc.metrics is not None:
                    tasks.append(asyncio.create_task(self._leave_counts(svc.metrics)))
                self.requests.refresh()  # uvicorn has configured logging by now
                restore = signals.install(svc.health, [reopen_log_files, self.requests.refresh])
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                svc.health.shutting_down = True
                restore()
                for task in tasks:
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await task
                self.requests.flush()
                if svc.settings.ops.metrics_dir is not None and svc.metrics is not None:
                    metrics.write_state(svc.settings.ops.metrics_dir, svc.metrics.state())
                await self.services.settle(timeout=5.0)  # a run task's report, if one is on its way
                await self.aclose()
                self.services.db.dispose()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _job_loop(self) -> None:
        svc = self.services
        health = svc.health
        while True:
            health.pass_started = time.monotonic()
            start = perf_counter_ns()
            ran, failed = 0, False
            try:
                ran = await svc.db.off_loop(run_due_jobs, svc.db, svc.clock, svc.rules)
            except Exception:
                failed = True
                log.exception("background jobs failed; retrying")
            health.pass_started = None
            if svc.metrics is not None:
                svc.metrics.job_pass(perf_counter_ns() - start, ran, failed=failed)
            await asyncio.sleep(svc.settings.job_interval_seconds)

    async def _leave_counts(self, counts: metrics.Metrics) -> None:
        """With several workers: this one's counts where the process answering a scrape reads them."""
        directory = self.services.settings.ops.metrics_dir
        assert directory is not None
        while True:
            try:
                await asyncio.get_running_loop().run_in_executor(None, metrics.write_state, directory, counts.state())
            except OSError as exc:
                log.warning("metrics: can't write this worker's counts to %s: %s", directory, exc)
            await asyncio.sleep(metrics.SNAPSHOT_SECONDS)

    async def _read_body(self, scope: Scope, receive: Receive, limit: int) -> bytes:
        for key, value in scope["headers"]:
            if key == b"content-length":
                try:
                    if int(value) > limit:
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
            if size > limit:
                raise BodyTooLarge
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)

    async def _handle(
        self, scope: Scope, receive: Receive
    ) -> tuple[Route | None, Request | None, int, bytes, list[tuple[bytes, bytes]]]:
        method: str = scope["method"]
        path: str = scope["path"]
        route, params, path_exists = self.router.match(method, path, scope.get("raw_path"))
        if route is None:
            allowed = self.router.allowed(path, scope.get("raw_path")) if path_exists else []
            if allowed:  # a known path, another method: 405 and what it takes, as grpc-gateway answers
                methods = ", ".join(allowed)
                message = f"method {method} is not allowed on {path}; it takes {methods}"
                return None, None, 405, status_body(12, message), [(b"allow", methods.encode())]
            return None, None, 404, status_body(5, f"no operation {method} {path} (unknown path)"), []
        request = Request(method, path, scope.get("query_string", b""), scope["headers"], params)
        request.scheme = scope.get("scheme", "http")
        request.client_host = scope["client"][0] if scope.get("client") else ""
        request.public_url = self.services.settings.public_url or ""
        request.limits = self.services.settings.limits
        limit = getattr(self.services.settings.limits, route.body_limit) if route.body_limit else self.max_body
        try:
            if method in ("POST", "PUT", "PATCH"):
                request.body = await self._read_body(scope, receive, limit)
            return route, request, 200, await self.runner.run(route, request), []
        except BodyTooLarge:
            return route, request, 400, status_body(3, f"request body is larger than the limit of {limit} bytes"), []
        except ClientGone:
            return route, request, 400, status_body(3, "client disconnected"), []
        except OAuthError as exc:
            return route, request, exc.status, exc.body(), exc.headers
        except DomainError as exc:
            # Worded in the route's API tree's vocabulary (domain/errors.py).
            return route, request, http_status(exc.code), status_body(exc.code, exc.render(route.words)), []
        except Exception:
            log.exception("unhandled error in %s %s", method, path)
            return route, request, 500, status_body(13, "internal error; the server log has the details"), []
