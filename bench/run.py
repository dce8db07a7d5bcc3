"""One benchmark run on one database: seed each dataset, verify it through the API, measure every
workload against packyard and the raw ASGI ceiling, read the server's peak RSS."""

from __future__ import annotations

import contextlib
import os
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from bench import console, observability, publish, servers, verify, wrk
from bench.seed import DatasetSpec, SeedResult, expected_rows, seed

PREFIX = "/packer/2021-04-30/organizations/{org}/projects/{project}"
PREFIX_2023 = "/packer/2023-01-01/organizations/{org}/projects/{project}"
DEEP_WALK_PAGE = 1000  # the largest page the server allows: fewest requests to walk far down the list
DEEP_WALK_BUDGET_S = 120.0
PROBE_TIMEOUT_S = 600.0  # one request that takes longer than this is reported as no answer
SLOW_REQUEST_S = 1.0
IDLE_ANSWER_S = 0.05  # /healthz answers faster than this only when nothing is queued before it
# wrk's latencies include queueing behind the other connections (one worker answers one request at a
# time); keep that queue under this many seconds so that wrk's 10 s timeout never cuts a run short.
QUEUE_BUDGET_S = 4.0


@dataclass(frozen=True)
class Workload:
    key: str
    label: str
    read: bool = True
    console: bool = False  # a console page: requested with a session cookie, not a bearer token


WORKLOADS = (
    Workload("get_channel", "GetChannel (production, 3 builds x 2 images)"),
    # The same question through 2023-01-01 (Packer >= 1.10.1, terraform-provider-hcp >= 0.84).
    Workload("get_channel_2023", "GetChannel 2023-01-01 (the same channel)"),
    Workload("get_iteration", "GetIteration by fingerprint"),
    Workload("get_bucket", "GetBucket"),
    Workload("list_iterations", "ListIterations, first page"),
    Workload("list_iterations_deep", "ListIterations, deep page"),
    Workload("list_buckets", "ListBuckets, first page"),
    Workload("publish_one", "Packer publish, one worker (complete publishes/s)", read=False),
    Workload("publish", "Packer publish, --workers N (complete publishes/s)", read=False),
    Workload("publish_one_2023", "Packer 1.15.3 publish (2023-01-01), one worker", read=False),
    # The web console's heaviest read pages, signed in with a session cookie (issue 19).
    Workload("console_bucket", "Console: bucket page (hot bucket)", console=True),
    Workload("console_version", "Console: version page (3 builds x 2 images)", console=True),
    Workload("console_channel", "Console: channel page (hot bucket's latest, its history)", console=True),
)
RAW = Workload("raw", "raw ASGI, fixed JSON (the ceiling)")


@dataclass
class Measurement:
    rps: float
    p50: float
    p99: float
    count: int
    errors: str = ""
    note: str = ""
    connections: int = 0
    alone: float = 0.0  # seconds one request took on the idle server (the probe before the run)


@dataclass
class SizeRun:
    spec: DatasetSpec
    seed: SeedResult
    body_bytes: int = 0
    deep_depth: int = 0
    deep_how: str = ""
    results: dict[str, Measurement] = field(default_factory=dict)
    peak_rss: int = 0
    worker_peak_rss: int = 0  # the largest worker of the --workers N server (the publish run)
    publish_workers: int = 1
    load: tuple[float, float] = (0.0, 0.0)  # 1-minute load average before and after the measurements
    observed: observability.ObservedCost | None = None  # GetChannel with metrics and JSON logs off and on


@dataclass
class BackendRun:
    name: str  # "SQLite" or "PostgreSQL"
    sizes: list[SizeRun] = field(default_factory=list)


@dataclass(frozen=True)
class Options:
    specs: tuple[DatasetSpec, ...]
    load: wrk.Load
    publishers: int
    publish_seconds: float
    publish_workers: int
    repeat: int
    work_dir: Path
    keep: bool
    profile_seconds: int = 0  # > 0: py-spy the server during GetChannel at the largest size
    profile_dir: Path | None = None


Say = Callable[[str], None]


def _best(runs: list[Measurement]) -> Measurement:
    """Best of N by throughput: interference from other processes only ever slows a run down."""
    return max(runs, key=lambda m: (not m.errors, m.rps))


def _drain(server: servers.Server) -> None:
    """Wait until the server has worked off what the previous run left queued (after wrk stops, the
    requests its connections had in flight are still answered, one at a time), so that neither the next
    probe nor the next run pays for them."""
    deadline = time.monotonic() + PROBE_TIMEOUT_S
    while time.monotonic() < deadline:
        started = time.monotonic()
        servers.request(server.port, "GET", "/healthz", timeout=PROBE_TIMEOUT_S)
        if time.monotonic() - started < IDLE_ANSWER_S:
            return
    raise servers.ServerFailed(f"{server.name} stayed busy for {PROBE_TIMEOUT_S:.0f} s after a run")


def _auth(token: str, cookie: str = "") -> dict[str, str]:
    return {"Cookie": cookie} if cookie else {"Authorization": f"Bearer {token}"}


def _probe(port: int, path: str, token: str, cookie: str = "") -> float:
    """Seconds one request takes on an idle server (the second of two; the first warms caches)."""
    elapsed = 0.0
    for _ in range(2):
        started = time.monotonic()
        status, body = servers.request(port, "GET", path, headers=_auth(token, cookie), timeout=PROBE_TIMEOUT_S)
        elapsed = time.monotonic() - started
        if status != 200:
            raise servers.ServerFailed(f"GET {path}: HTTP {status} {str(body)[:300]}")
        if elapsed > SLOW_REQUEST_S:
            break  # one slow answer is enough to know
    return elapsed


def _wrk(server: servers.Server, path: str, token: str, opts: Options, cookie: str = "") -> Measurement:
    """wrk at the configured concurrency; a workload so slow that queueing behind `connections` requests
    would approach wrk's timeout runs with fewer connections (and one run), noted in the table."""
    url = server.base + path
    try:
        _drain(server)
        probe = _probe(server.port, path, token, cookie)
    except TimeoutError:
        return Measurement(0.0, PROBE_TIMEOUT_S, PROBE_TIMEOUT_S, 0, f"no answer within {PROBE_TIMEOUT_S:.0f} s")
    load = opts.load
    if probe * load.connections > QUEUE_BUDGET_S:
        connections = max(1, int(QUEUE_BUDGET_S / probe))
        seconds = max(load.seconds, int(3 * probe) + 1)
        slow = wrk.Load(load.threads, connections, seconds, 0, timeout_seconds=max(10, int(4 * probe) + 1))
        r = wrk.run(url, token, slow, cookie=cookie)
        note = f"one request took {probe * 1000:,.0f} ms alone: measured with -c{connections} -d{seconds}s"
        return Measurement(r.requests_per_second, r.p50, r.p99, r.requests, r.errors, note, connections, probe)
    if load.warmup_seconds:
        wrk.run(url, token, load, seconds=load.warmup_seconds, cookie=cookie)
    runs = []
    for _ in range(opts.repeat):
        r = wrk.run(url, token, load, cookie=cookie)
        runs.append(Measurement(r.requests_per_second, r.p50, r.p99, r.requests, r.errors, "", load.connections, probe))
    return _best(runs)


def _publish(
    server: servers.Server, token: str, prefix: str, slugs: list[str], opts: Options, api: str = "2021-04-30"
) -> Measurement:
    runs = []
    for _ in range(opts.repeat):
        _drain(server)
        r = publish.run(
            server.port, token, prefix, slugs, publishers=opts.publishers, seconds=opts.publish_seconds, api=api
        )
        errors = f"{len(r.errors)} failed publishes, first: {r.errors[0]}" if r.errors else ""
        if r.incomplete:
            errors = (errors + "; " if errors else "") + f"{r.incomplete} publishes ended incomplete"
        note = f"{r.complete} publishes, {r.requests} requests in {r.seconds:.1f} s; latency is per publish"
        runs.append(
            Measurement(r.per_second, r.percentile(0.5), r.percentile(0.99), r.complete, errors, note, opts.publishers)
        )
        if r.seconds > 3 * opts.publish_seconds:
            break  # so slow that finishing the publishes in flight took most of the time: once is enough
    return _best(runs)


def _constructed_token(seeded: SeedResult) -> str:
    """The next_page_token the server issues after the boundary item, built with the server's own code
    (packyard.domain.pagination, ListIterations' default order) from the seeded item's keyset."""
    from packyard.domain import iterations as domain
    from packyard.domain.pagination import Kind, encode_token, parse_order
    from packyard.storage.codecs import from_us

    boundary = seeded.hot.boundary
    assert boundary is not None
    order = parse_order([], {**domain.SORTABLE, "id": Kind.STR}, domain.DEFAULT_ORDER)
    values: dict[str, object] = {"created_at": from_us(boundary.created_at), "id": boundary.id}
    return encode_token(order, [values[f.name] for f in order], "n")


def _deep_token(server: servers.Server, token: str, path: str, seeded: SeedResult, say: Say) -> tuple[str, int, str]:
    """Walk ListIterations from the newest end with the largest page size until half the hot bucket lies
    behind; the server's own next_page_token from there is the deep page's token. When the walk would
    take longer than DEEP_WALK_BUDGET_S (pages too slow), the token is built the way the server builds it,
    and checked against one the server issued on the way."""
    depth = seeded.hot.iterations // 2
    walked, next_token, started = 0, "", time.monotonic()
    headers = {"Authorization": f"Bearer {token}"}
    while walked < depth:
        # A first page of the default size shows how long the walk would take before committing to it.
        size = min(DEEP_WALK_PAGE if walked else 100, depth - walked)
        query = f"?pagination.page_size={size}" + (f"&pagination.next_page_token={next_token}" if next_token else "")
        page_started = time.monotonic()
        status, body = servers.request(server.port, "GET", path + query, headers=headers, timeout=PROBE_TIMEOUT_S)
        if status != 200:
            raise servers.ServerFailed(f"walking ListIterations: HTTP {status} {str(body)[:300]}")
        walked += len(body["iterations"])
        next_token = body["pagination"].get("next_page_token", "")
        per_item = (time.monotonic() - page_started) / max(1, size)
        if walked < depth and per_item * (depth - walked) > DEEP_WALK_BUDGET_S:
            say(f"  a ListIterations page of {size} took {per_item * size:.1f} s: deep token built instead of walked")
            return _constructed_token(seeded), depth, "token built as the server builds it"
    say(f"  walked ListIterations to depth {walked:,} in {time.monotonic() - started:.0f} s")
    if next_token != _constructed_token(seeded):
        raise verify.SeedMismatch("the server's next_page_token differs from the one bench builds for that item")
    return next_token, walked, "walked"


@contextlib.contextmanager
def _database(backend: str, admin_url: str | None, name: str) -> Iterator[str | None]:
    """None (SQLite in the data dir), or a fresh PostgreSQL database dropped afterwards."""
    if backend == "SQLite":
        yield None
        return
    assert admin_url is not None
    from packyard.storage.urls import normalize_url

    admin = sa.create_engine(normalize_url(admin_url), isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)
    url = sa.make_url(normalize_url(admin_url)).set(database=name).render_as_string(hide_password=False)
    try:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
        yield url
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


def run_backend(backend: str, opts: Options, say: Say, admin_url: str | None = None) -> BackendRun:
    result = BackendRun(backend)
    largest = max(s.iterations for s in opts.specs)
    for spec in opts.specs:
        say(f"{backend}, dataset {spec.name}:")
        data_dir = opts.work_dir / f"{backend.lower()}-{spec.name}"
        db_name = f"bench_{os.getpid()}_{spec.name.lower()}"
        try:
            with _database(backend, admin_url, db_name) as database_url:
                profile = opts.profile_seconds if spec.iterations == largest else 0
                observe = spec.iterations == largest and backend == "SQLite"
                result.sizes.append(_run_size(spec, data_dir, database_url, opts, say, profile, observe=observe))
        finally:
            if not opts.keep:
                shutil.rmtree(data_dir, ignore_errors=True)
    return result


OBSERVED_ROUNDS = 4  # alternating runs of each side for the cost of metrics and logs (at least)


def _run_size(
    spec: DatasetSpec,
    data_dir: Path,
    database_url: str | None,
    opts: Options,
    say: Say,
    profile_seconds: int,
    *,
    observe: bool = False,
) -> SizeRun:
    data_dir.mkdir(parents=True, exist_ok=True)
    creds = servers.packyard_init(data_dir, database_url)
    url = database_url or f"sqlite:///{(data_dir / 'packyard.db').resolve()}"
    say(f"  seeding {spec.iterations:,} iterations in {spec.buckets} buckets ...")
    seeded = seed(url, spec, progress=say)
    expected = expected_rows(spec)
    if seeded.rows != expected:
        raise verify.SeedMismatch(f"seeded rows {seeded.rows} instead of {expected}")
    rows = ", ".join(f"{n:,} {k}" for k, n in seeded.rows.items())
    say(f"  seeded in {seeded.seconds:.1f} s: {rows}")
    run = SizeRun(spec, seeded)
    prefix = PREFIX.format(org=creds["organization_id"], project=creds["project_id"])
    prefix_2023 = PREFIX_2023.format(org=creds["organization_id"], project=creds["project_id"])
    hot = seeded.hot.slug
    assert seeded.hot.middle is not None
    paths = {
        "get_channel": f"{prefix}/images/{hot}/channels/production",
        "get_iteration": f"{prefix}/images/{hot}/iteration?fingerprint={seeded.hot.middle.fingerprint}",
        "get_bucket": f"{prefix}/images/{hot}",
        "list_iterations": f"{prefix}/images/{hot}/iterations",
        "list_buckets": f"{prefix}/images",
        "get_channel_2023": f"{prefix_2023}/buckets/{hot}/channels/production",
        **console.paths(creds["organization_id"], creds["project_id"], seeded),
    }
    with servers.packyard(data_dir, database_url, data_dir / "packyard.log") as server:
        token = servers.token(server.port, creds["client_id"], creds["client_secret"])
        verify.served_values(server.port, token, prefix, seeded)
        verify.api_written_rows(server.port, token, prefix, url, seeded)
        say("  verified through the API: seeded values served, rows and responses shaped as the API writes them")
        cookie = console.session_cookie(url, creds["organization_id"])
        console.check_pages(server.port, cookie, paths, seeded)
        say("  console pages served to a signed-in session, with the seeded values")
        body = servers.get_raw(server.port, paths["get_channel"], token)
        body_file = data_dir / "getchannel.json"
        body_file.write_bytes(body)
        run.body_bytes = len(body)
        deep_token, run.deep_depth, run.deep_how = _deep_token(server, token, paths["list_iterations"], seeded, say)
        paths["list_iterations_deep"] = f"{paths['list_iterations']}?pagination.next_page_token={deep_token}"
        _check_deep_page(server, token, paths["list_iterations_deep"], seeded.hot.iterations - run.deep_depth)
        run.load = (os.getloadavg()[0], 0.0)
        with servers.raw_asgi(body_file, data_dir / "raw.log") as raw:
            run.results[RAW.key] = _wrk(raw, "/", token, opts)
            say(f"  {RAW.label}: {run.results[RAW.key].rps:,.0f} req/s")
        for workload in WORKLOADS:
            server.check_alive()
            if workload.key == "publish":
                continue  # on a server of its own, below
            if workload.key == "publish_one":
                measured = _publish(server, token, prefix, [b.slug for b in seeded.buckets], opts)
            elif workload.key == "publish_one_2023":
                slugs = [b.slug for b in seeded.buckets]
                measured = _publish(server, token, prefix_2023, slugs, opts, api="2023-01-01")
            else:
                measured = _wrk(server, paths[workload.key], token, opts, cookie if workload.console else "")
            run.results[workload.key] = measured
            say(f"  {workload.label}: {measured.rps:,.1f}/s, p50 {measured.p50 * 1000:.2f} ms {measured.errors}")
        run.peak_rss = server.peak_rss_bytes()
        if observe:
            _drain(server)
            rounds = max(OBSERVED_ROUNDS, opts.repeat)
            cost = observability.measure(server, data_dir, database_url, paths["get_channel"], token, opts.load, rounds)
            run.observed = cost
            say(
                f"  GetChannel with metrics and JSON logs off / on: {cost.off:,.0f} / {cost.on:,.0f} req/s, "
                f"{cost.cost:+.1%} CPU per request {cost.errors}"
            )
        # The ceiling again, after packyard's runs, the best of both kept: other processes on the machine
        # slow some runs down, and a ceiling measured low would flatter packyard's share of it.
        with servers.raw_asgi(body_file, data_dir / "raw.log") as raw:
            again = _wrk(raw, "/", token, opts)
        run.results[RAW.key] = _best([run.results[RAW.key], again])
        say(f"  {RAW.label}, again: {again.rps:,.0f} req/s")
        if profile_seconds and opts.profile_dir is not None:
            from bench import profile

            name = f"getchannel-{spec.name}-{'sqlite' if database_url is None else 'postgresql'}"
            profile.record(server, server.base + paths["get_channel"], token, opts, profile_seconds, say, name)
    # Publishes are writes, which SQLite takes one at a time: the way to use more of the machine for
    # them is more worker processes (they queue on the writer lock, storage/writer_lock.py).
    log = data_dir / "packyard-workers.log"
    with servers.packyard(data_dir, database_url, log, workers=opts.publish_workers) as server:
        token = servers.token(server.port, creds["client_id"], creds["client_secret"])
        measured = _publish(server, token, prefix, [b.slug for b in seeded.buckets], opts)
        run.results["publish"] = measured
        run.worker_peak_rss = server.worker_peak_rss_bytes()
        run.publish_workers = opts.publish_workers
        say(f"  Packer publish, --workers {opts.publish_workers}: {measured.rps:,.1f}/s {measured.errors}")
    run.load = (run.load[0], os.getloadavg()[0])
    return run


def _check_deep_page(server: servers.Server, token: str, path: str, version: int) -> None:
    """The deep page starts right after the walked items: at incremental version `version`."""
    headers = {"Authorization": f"Bearer {token}"}
    status, body = servers.request(server.port, "GET", path, headers=headers, timeout=PROBE_TIMEOUT_S)
    if status != 200 or not body["iterations"]:
        raise verify.SeedMismatch(f"deep ListIterations page: HTTP {status} {str(body)[:200]}")
    first: dict[str, Any] = body["iterations"][0]
    if first["incremental_version"] != version:
        raise verify.SeedMismatch(f"the deep page starts at version {first['incremental_version']}, not {version}")
