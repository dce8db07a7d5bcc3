"""Prometheus metrics: what each process counts, and how a scrape sees the counts of every process.

Counting. A request's trip is the hot path (GetChannel answers from the read cache in about 60 us of
one core), so it pays no more than a few integer additions: each route's counts per status, and the
database's, job loop's and read cache's, are plain Python integers kept here (`Series`: a count, a sum
and one counter per histogram bucket). prometheus_client's metric objects (`Counter`, `Histogram`)
cost 1 to 3 us per observation, a lock taken and released for each value they change, and more in its
multiprocess mode (each change written to a memory-mapped file): for the three observations a request
makes, more than the 5 % of a request that metrics and logs may cost together (docs/performance.md).

Exposition is prometheus_client's: at scrape time `StateCollector`, a collector as the library defines
them, turns the integers into its metric families (`CounterMetricFamily`, `HistogramMetricFamily`,
`GaugeMetricFamily`), and `generate_latest` writes the text format Prometheus reads.

Several processes (`packyard serve --workers N`). Each worker writes its counts, every second and when
it stops, to a file of its own (its pid, `<pid>.json`) in a private directory that `serve` makes for
the run and removes after it (PACKYARD_METRICS_DIR, set for the workers only). The process answering
a scrape adds up every file there, its own counts taken live: the parent process for `--metrics-port`,
whichever worker the connection reached for /metrics on the API's port. A worker's counts are thus at
most a second old in a scrape, and the counts of a worker that died stay in the sums (counters never
go down), as with prometheus_client's own multiprocess mode, which works the same way with a file
write per observation instead of one per second.

Registry counts (buckets, versions, builds) are gauges read from the database at scrape time by
`CountsCollector`: one statement of three COUNT(*)s over indexed tables, at most once every
COUNT_TTL_SECONDS per process (a scrape in between gets the last figures), run on the scrape's
thread, never the event loop, and on PostgreSQL bounded by a statement timeout.
"""

from __future__ import annotations

import contextlib
import hmac
import logging
import os
import threading
import time
from bisect import bisect_left
from collections.abc import Callable, Iterable, Iterator
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgspec
from prometheus_client import CONTENT_TYPE_LATEST
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.exposition import choose_encoder
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector, CollectorRegistry

from packyard.domain.errors import NotFound, Unauthenticated

if TYPE_CHECKING:
    from packyard.http.request import Request
    from packyard.http.routing import Route
    from packyard.pipeline.cache import ReadCache
    from packyard.pipeline.services import Services
    from packyard.storage.db import Database

log = logging.getLogger(__name__)

# Histogram buckets (upper bounds, seconds).
REQUEST_BUCKETS = (0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
DB_BUCKETS = (0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0)
JOB_BUCKETS = (0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 60.0)
DB_KINDS = ("read", "write", "statement")
SNAPSHOT_SECONDS = 1.0  # how often a worker of several writes its counts for the others
COUNT_TTL_SECONDS = 30.0
COUNT_TIMEOUT_MS = 5000  # PostgreSQL's statement timeout for the registry counts


def _bounds_ns(buckets: tuple[float, ...]) -> tuple[int, ...]:
    return tuple(round(b * 1e9) for b in buckets)


REQUEST_BOUNDS_NS = _bounds_ns(REQUEST_BUCKETS)
DB_BOUNDS_NS = _bounds_ns(DB_BUCKETS)
JOB_BOUNDS_NS = _bounds_ns(JOB_BUCKETS)


class Series(msgspec.Struct, array_like=True):
    """A histogram's counts: how many, their sum (ns) and how many fell in each bucket (the last one
    is over every bound, +Inf)."""

    count: int
    sum_ns: int
    buckets: list[int]

    @classmethod
    def empty(cls, bounds_ns: tuple[int, ...]) -> Series:
        return cls(0, 0, [0] * (len(bounds_ns) + 1))

    def add(self, ns: int, bounds_ns: tuple[int, ...]) -> None:
        self.count += 1
        self.sum_ns += ns
        self.buckets[bisect_left(bounds_ns, ns)] += 1  # a value equal to a bound is in that bucket (le)

    def merge(self, other: Series) -> None:
        self.count += other.count
        self.sum_ns += other.sum_ns
        for i, n in enumerate(other.buckets):
            self.buckets[i] += n


class RouteCounts:
    """One route's requests per answer status (the slot the request path adds to)."""

    __slots__ = ("api", "by_status", "operation")

    def __init__(self, operation: str, api: str) -> None:
        self.operation = operation
        self.api = api
        self.by_status: dict[int, Series] = {}

    def series(self, status: int) -> Series:
        """The counts of answers with this status (made on the first; http/access_log.py adds to them)."""
        series = self.by_status.get(status)
        if series is None:
            series = self.by_status[status] = Series.empty(REQUEST_BOUNDS_NS)
        return series


class RequestState(msgspec.Struct, array_like=True):
    operation: str
    api: str
    status: int
    series: Series


class State(msgspec.Struct):
    """A process's counts, as written for the others and as a scrape adds them up."""

    requests: list[RequestState] = msgspec.field(default_factory=list)
    db: dict[str, Series] = msgspec.field(default_factory=dict)
    cache_hits: int = 0
    cache_misses: int = 0
    cache_bytes: int = 0
    job_passes: int = 0
    job_failures: int = 0
    jobs_run: int = 0
    job_duration: Series = msgspec.field(default_factory=lambda: Series.empty(JOB_BOUNDS_NS))
    processes: int = 1


def merge(states: Iterable[State]) -> State:
    total = State(processes=0)
    requests: dict[tuple[str, str, int], Series] = {}
    for state in states:
        for r in state.requests:
            key = (r.operation, r.api, r.status)
            if key not in requests:
                requests[key] = Series.empty(REQUEST_BOUNDS_NS)
            requests[key].merge(r.series)
        for kind, series in state.db.items():
            total.db.setdefault(kind, Series.empty(DB_BOUNDS_NS)).merge(series)
        total.cache_hits += state.cache_hits
        total.cache_misses += state.cache_misses
        total.cache_bytes += state.cache_bytes
        total.job_passes += state.job_passes
        total.job_failures += state.job_failures
        total.jobs_run += state.jobs_run
        total.job_duration.merge(state.job_duration)
        total.processes += state.processes
    total.requests = [RequestState(op, api, status, s) for (op, api, status), s in sorted(requests.items())]
    return total


CONSOLE_TEMPLATE = "/{console page}"  # http/app.py counts the web console's requests under one route


def api_tree(template: str) -> str:
    """The API tree a route belongs to, for the `api` label: 2021-04-30, 2023-01-01, resource-manager,
    oauth, console (the web console's pages), or public (health, readiness, metrics)."""
    for tree in ("2021-04-30", "2023-01-01"):
        if template.startswith(f"/packer/{tree}/"):
            return tree
    if template.startswith("/resource-manager/"):
        return "resource-manager"
    if template == CONSOLE_TEMPLATE:
        return "console"
    if template.startswith(("/oauth2/", "/oauth/")):
        return "oauth"
    return "public"


class Metrics:
    """This process's counts. Requests and the job loop add to them on the event loop; database time
    comes from any thread (PostgreSQL's units run on worker threads), under a lock."""

    def __init__(self, routes: Iterable[Route]) -> None:
        self.routes: dict[int, RouteCounts] = {id(r): RouteCounts(r.operation_id, api_tree(r.template)) for r in routes}
        self.unmatched = RouteCounts("unmatched", "none")  # no route: unknown path or method (404)
        # Database time, per thread that ran transactions (the event loop's, PostgreSQL's workers, a
        # scrape's), so that adding to it takes no lock; a scrape adds the threads' counts up.
        self._db_local = threading.local()
        self._db_threads: list[dict[str, Series]] = []
        self._db_lock = threading.Lock()  # for _db_threads
        self.cache: ReadCache | None = None
        self.job_passes = 0
        self.job_failures = 0
        self.jobs_run = 0
        self.job_duration = Series.empty(JOB_BOUNDS_NS)

    def slot(self, route: Route | None) -> RouteCounts:
        if route is None:
            return self.unmatched
        return self.routes.get(id(route)) or self.unmatched

    def db_time(self, kind: str, ns: int) -> None:
        """Database.timed: one transaction (or statement) and its duration."""
        try:
            mine: dict[str, Series] = self._db_local.series
        except AttributeError:
            mine = self._db_local.series = {k: Series.empty(DB_BOUNDS_NS) for k in DB_KINDS}
            with self._db_lock:
                self._db_threads.append(mine)
        series = mine[kind]  # Series.add, in line: this runs for every transaction
        series.count += 1
        series.sum_ns += ns
        series.buckets[bisect_left(DB_BOUNDS_NS, ns)] += 1

    def job_pass(self, ns: int, ran: int, *, failed: bool) -> None:
        self.job_passes += 1
        self.jobs_run += ran
        self.job_failures += failed
        self.job_duration.add(ns, JOB_BOUNDS_NS)

    def state(self) -> State:
        """A copy of the counts (called from a scrape's thread while requests go on adding)."""
        requests = [
            RequestState(slot.operation, slot.api, status, Series(s.count, s.sum_ns, list(s.buckets)))
            for slot in [*self.routes.values(), self.unmatched]
            for status, s in list(slot.by_status.items())
        ]
        db = {kind: Series.empty(DB_BOUNDS_NS) for kind in DB_KINDS}
        with self._db_lock:
            threads = list(self._db_threads)
        for mine in threads:
            for kind, s in mine.items():
                db[kind].merge(Series(s.count, s.sum_ns, list(s.buckets)))
        cache = self.cache
        jd = self.job_duration
        return State(
            requests=requests,
            db=db,
            cache_hits=cache.hits if cache is not None else 0,
            cache_misses=cache.misses if cache is not None else 0,
            cache_bytes=cache.size_bytes if cache is not None else 0,
            job_passes=self.job_passes,
            job_failures=self.job_failures,
            jobs_run=self.jobs_run,
            job_duration=Series(jd.count, jd.sum_ns, list(jd.buckets)),
        )


# ---- several processes: each worker's counts in a file of its own


_decoder = msgspec.json.Decoder(State)


def write_state(directory: Path, state: State) -> None:
    """This process's counts into directory/<pid>.json, replaced whole (a reader never sees half)."""
    target = directory / f"{os.getpid()}.json"
    partial = directory / f".{os.getpid()}.json.partial"
    partial.write_bytes(msgspec.json.encode(state))
    os.replace(partial, target)


def read_states(directory: Path, *, skip_own: bool) -> list[State]:
    own = f"{os.getpid()}.json"
    states = []
    for path in sorted(directory.glob("*.json")):
        if skip_own and path.name == own:
            continue
        try:
            states.append(_decoder.decode(path.read_bytes()))
        except (OSError, msgspec.DecodeError) as exc:  # a file being replaced, or gone with its directory
            log.warning("metrics: skipped %s: %s", path.name, exc)
    return states


# ---- exposition


def _seconds(ns: int) -> float:
    return ns / 1e9


def _histogram(family: HistogramMetricFamily, labels: list[str], series: Series, buckets: tuple[float, ...]) -> None:
    cumulative = []
    running = 0
    for bound, n in zip(buckets, series.buckets, strict=False):
        running += n
        cumulative.append((repr(float(bound)), float(running)))
    cumulative.append(("+Inf", float(series.count)))
    family.add_metric(labels, cumulative, _seconds(series.sum_ns))


class StateCollector(Collector):
    """prometheus_client's view of a State (this process's, or every worker's added up)."""

    def __init__(self, source: Callable[[], State]) -> None:
        self.source = source

    def collect(self) -> Iterator[Metric]:
        state = self.source()
        labels = ["operation", "api", "status"]
        requests = CounterMetricFamily(
            "packyard_http_requests", "HTTP requests answered, by operation, API tree and status", labels=labels
        )
        latency = HistogramMetricFamily(
            "packyard_http_request_duration_seconds",
            "Time from a request's arrival at the application to its answer's hand-over",
            labels=labels,
        )
        for r in state.requests:
            values = [r.operation, r.api, str(r.status)]
            requests.add_metric(values, r.series.count)
            _histogram(latency, values, r.series, REQUEST_BUCKETS)
        yield requests
        yield latency
        db = HistogramMetricFamily(
            "packyard_db_transaction_duration_seconds",
            "Time in database transactions (read, write: SQLite's writer lock wait included) and in the read "
            "cache's single-statement checks (statement)",
            labels=["kind"],
        )
        for kind in DB_KINDS:
            _histogram(db, [kind], state.db.get(kind) or Series.empty(DB_BOUNDS_NS), DB_BUCKETS)
        yield db
        yield CounterMetricFamily("packyard_read_cache_hits", "Reads answered from the read cache", state.cache_hits)
        yield CounterMetricFamily(
            "packyard_read_cache_misses", "Cacheable reads that ran their queries", state.cache_misses
        )
        yield GaugeMetricFamily(
            "packyard_read_cache_bytes", "Bytes of answers held by the read caches", state.cache_bytes
        )
        yield CounterMetricFamily("packyard_jobs_passes", "Passes of the background job loop", state.job_passes)
        yield CounterMetricFamily(
            "packyard_jobs_pass_failures", "Passes of the background job loop that failed", state.job_failures
        )
        yield CounterMetricFamily("packyard_jobs_run", "Background jobs run (scheduled revocations)", state.jobs_run)
        jobs = HistogramMetricFamily("packyard_jobs_pass_duration_seconds", "Duration of a pass of the job loop")
        _histogram(jobs, [], state.job_duration, JOB_BUCKETS)
        yield jobs
        yield GaugeMetricFamily(
            "packyard_metrics_processes", "Server processes whose counts this answer adds up", state.processes
        )


class CountsCollector(Collector):
    """The registry's size as gauges, counted at scrape time, at most once every COUNT_TTL_SECONDS."""

    def __init__(self, db: Database, ttl: float = COUNT_TTL_SECONDS) -> None:
        self.db = db
        self.ttl = ttl
        self._lock = threading.Lock()
        self._counted_at: float | None = None
        self._values: tuple[int, int, int] | None = None

    def _count(self) -> tuple[int, int, int]:
        def work(conn: Any) -> tuple[int, int, int]:
            postgres = not self.db.is_sqlite
            if postgres:  # a read may run outside a transaction there: SET, then RESET, not SET LOCAL
                conn.exec_driver_sql(f"SET statement_timeout = {COUNT_TIMEOUT_MS}")
            try:
                row = conn.exec_driver_sql(
                    "SELECT (SELECT COUNT(*) FROM bucket), (SELECT COUNT(*) FROM iteration), "
                    "(SELECT COUNT(*) FROM build)"
                ).one()
            finally:
                if postgres:
                    with contextlib.suppress(Exception):  # an aborted transaction undoes the SET anyway
                        conn.exec_driver_sql("RESET statement_timeout")
            return int(row[0]), int(row[1]), int(row[2])

        result: tuple[int, int, int] = self.db.run(work, write=False)
        return result

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            now = time.monotonic()
            if self._counted_at is None or now - self._counted_at >= self.ttl:
                try:
                    self._values = self._count()
                except Exception as exc:  # the scrape still answers; the gauges are left out, and it says why
                    log.warning("metrics: counting the registry failed: %s", exc)
                    self._values = None
                self._counted_at = now
            values = self._values
        if values is None:
            return
        names = (("buckets", "buckets"), ("versions", "versions (iterations)"), ("builds", "builds"))
        for (name, what), value in zip(names, values, strict=True):
            yield GaugeMetricFamily(f"packyard_{name}", f"Number of {what} in the registry, all projects", value)


class InfoCollector(Collector):
    def collect(self) -> Iterator[Metric]:
        info = GaugeMetricFamily("packyard_info", "The running packyard's version", labels=["version"])
        info.add_metric([_version()], 1)
        yield info


def _version() -> str:
    try:
        return metadata.version("packyard")
    except metadata.PackageNotFoundError:  # pragma: no cover - run from a source tree without installing
        return "unknown"


def registry(state: Callable[[], State], db: Database | None, *, process: bool) -> CollectorRegistry:
    """What a scrape answers: the counts, the registry's size (with db) and, for a single process, its
    CPU, memory and descriptors (prometheus_client's ProcessCollector)."""
    reg = CollectorRegistry(auto_describe=False)
    reg.register(StateCollector(state))
    reg.register(InfoCollector())
    if db is not None:
        reg.register(CountsCollector(db))
    if process:
        ProcessCollector(registry=reg)
    return reg


def attach(services: Services, routes: Iterable[Route]) -> Metrics:
    """Count this app's requests and database time; the registry its scrapes answer from."""
    metrics = Metrics(routes)
    services.db.timed = metrics.db_time
    directory = services.settings.ops.metrics_dir
    if directory is None:
        source: Callable[[], State] = metrics.state
    else:

        def source() -> State:
            return merge([metrics.state(), *read_states(directory, skip_own=True)])

    services.metrics = metrics
    services.metrics_registry = registry(source, services.db, process=directory is None)
    return metrics


# ---- /metrics on the API's port


class Exposition(bytes):
    """An answer in a Prometheus format (the app sends it with its media type, not JSON's)."""

    content_type = CONTENT_TYPE_LATEST.encode()


def _exposition(reg: CollectorRegistry, accept: str) -> Exposition:
    """The format the scraper asks for (Accept: OpenMetrics or the text format), as prometheus_client's
    own server chooses it."""
    encode, content_type = choose_encoder(accept)
    answer = Exposition(encode(reg))
    answer.content_type = content_type.encode()
    return answer


async def metrics_route(svc: Services, request: Request) -> bytes:
    """GET /metrics on the API's port: only with PACKYARD_METRICS_TOKEN set, and only for that token."""
    import asyncio  # noqa: PLC0415

    expected = svc.settings.ops.metrics_token
    reg = svc.metrics_registry
    if expected is None or reg is None:
        raise NotFound(
            "metrics are not served on this port: set PACKYARD_METRICS_TOKEN, or serve them on a port of their "
            "own with --metrics-port (docs/operations.md)"
        )
    scheme, _, given = request.header(b"authorization").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), expected.encode()):
        raise Unauthenticated("/metrics needs the header Authorization: Bearer <PACKYARD_METRICS_TOKEN>")
    # Off the event loop: the registry counts may take a statement's time.
    accept = request.header(b"accept")
    return await asyncio.get_running_loop().run_in_executor(None, _exposition, reg, accept)


# ---- --metrics-port


def serve_port(host: str, port: int, reg: CollectorRegistry) -> Callable[[], None]:
    """prometheus_client's own HTTP server for the registry on host:port, on a thread; returns its stop."""
    from prometheus_client import start_http_server  # noqa: PLC0415

    try:
        server, thread = start_http_server(port, addr=host, registry=reg)
    except OSError as exc:
        raise SystemExit(
            f"packyard: can't serve metrics on {host}:{port}: {exc.strerror}; choose another --metrics-port "
            "(PACKYARD_METRICS_PORT)"
        ) from None

    def stop() -> None:
        server.shutdown()
        server.server_close()
        with contextlib.suppress(RuntimeError):
            thread.join(5)

    return stop
