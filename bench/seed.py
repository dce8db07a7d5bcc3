"""Datasets written straight into packyard's tables, row for row as the API would have written them.

Every iteration is one `packer build` of a three-source template: CreateIteration, three CreateBuild,
each build RUNNING and then DONE with two images; the last DONE completed the iteration, which took the
bucket's next incremental version, moved the managed `latest` channel (one history entry per move) and
set the bucket's latest_* and platforms. Each bucket also has a `production` channel, created by
CreateChannel and promoted a few times along the way (a history entry each time).

The iterations are spread over `buckets` buckets: the hot bucket (`hot`) holds `hot_share` of them and
the others share the rest evenly, so GetChannel, GetIteration and ListIterations on the hot bucket see
the big tables and a bucket with most of their rows.

How the rows are made the API's way: the repositories of packyard/storage/repositories/ write one prototype
of each kind of row (SqlIterations.add then .save on completion, SqlBuilds.add then .save RUNNING and
.save DONE with images, SqlChannels.add_assignment) into the target database, in a transaction that is
read back and rolled back. Bulk rows are those prototypes, as the driver returned them, with only the
per-row values replaced (ids, fingerprint, version, times, image ids), written with one executemany
(SQLite) or COPY (PostgreSQL) per table and batch, in large transactions. Buckets and channels (a few hundred rows) go
through the repositories themselves. Ids are ULIDs whose time part is the row's creation time, times
are integer microseconds, versions are gapless in completion order, as the domain makes them.
"""

from __future__ import annotations

import hashlib
import random
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine

from packyard.domain.models import (
    Bucket,
    Build,
    BuildStatus,
    Channel,
    ChannelAssignment,
    Image,
    Iteration,
    TemplateType,
)
from packyard.storage import schema as t
from packyard.storage.codecs import from_us
from packyard.storage.db import create_engine
from packyard.storage.repositories.buckets import SqlBuckets
from packyard.storage.repositories.builds import SqlBuilds
from packyard.storage.repositories.channels import SqlChannels
from packyard.storage.repositories.iterations import SqlIterations
from packyard.storage.urls import is_sqlite, normalize_url

HOT = "hot"
US = 1_000_000
ITERATION_EVERY_US = 60 * US  # one publish a minute in each bucket
BUILD_CREATED_AFTER_US = 1 * US  # the CreateBuilds a second after CreateIteration
BUILD_DONE_AFTER_US = 20 * US  # each build runs ~20 s; the three finish a second apart
PROMOTION_DELAY_US = 30 * 60 * US  # production is promoted half an hour after a version completes

# (component_type, cloud_provider, regions): what a three-source HCL2 template publishes.
COMPONENTS: tuple[tuple[str, str, tuple[str, str]], ...] = (
    ("amazon-ebs.ubuntu", "aws", ("us-east-1", "eu-west-1")),
    ("azure-arm.ubuntu", "azure", ("eastus", "westeurope")),
    ("googlecompute.ubuntu", "gce", ("us-central1", "europe-west1")),
)
PLATFORMS = sorted({c[1] for c in COMPONENTS})
BUILD_LABELS = {"os": "ubuntu", "os_version": "22.04"}

_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_PAIRS = [a + b for a in _CROCKFORD for b in _CROCKFORD]  # 10 bits -> two characters


class UlidGen:
    """ULIDs as packyard.ids.new_ulid makes them (48-bit ms time, 80 random bits, monotonic within a ms)
    for a given creation time, several times faster, so a million iterations' rows get ids in seconds."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.last_ms = -1
        self.rand = 0
        self.time_part = ""

    def __call__(self, us: int) -> str:
        ms = us // 1000
        if ms == self.last_ms:
            self.rand += 1
        else:
            self.last_ms = ms
            self.rand = self.rng.getrandbits(79)  # headroom for increments, as new_ulid leaves
            self.time_part = "".join([_PAIRS[(ms >> s) & 1023] for s in (40, 30, 20, 10, 0)])
        r = self.rand & ((1 << 80) - 1)
        return self.time_part + "".join([_PAIRS[(r >> s) & 1023] for s in (70, 60, 50, 40, 30, 20, 10, 0)])


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    iterations: int
    buckets: int = 100
    hot_share: float = 0.9
    seed: int = 7

    def bucket_sizes(self) -> list[int]:
        others = self.buckets - 1
        if others <= 0:
            return [self.iterations]
        each = max(1, round(self.iterations * (1 - self.hot_share) / others))
        hot = self.iterations - each * others
        if hot < 1:
            raise ValueError(
                f"dataset {self.name}: {self.iterations} iterations are too few for {self.buckets} buckets"
            )
        return [hot] + [each] * others


@dataclass
class IterationFacts:
    """What the API must serve for one seeded iteration (checked through the API before measuring)."""

    id: str
    fingerprint: str
    version: int
    created_at: int
    builds: list[tuple[str, str, list[str]]]  # (build id, component_type, [image ids])


@dataclass
class BucketFacts:
    slug: str
    id: str
    iterations: int
    latest: IterationFacts | None = None
    production: IterationFacts | None = None
    production_history: int = 0
    # The iteration half-way down ListIterations' default order (created_at desc): the deep page starts
    # there, right after `boundary`, the last item of the page before it (the keyset of its token).
    middle: IterationFacts | None = None
    boundary: IterationFacts | None = None


@dataclass
class SeedResult:
    spec: DatasetSpec
    organization_id: str
    project_id: str
    author_id: str
    hot: BucketFacts
    buckets: list[BucketFacts] = field(default_factory=list)
    rows: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0


def fingerprint(slug: str, n: int) -> str:
    """A 40-hex git SHA, as Packer 1.7.5-1.8 sends (1.9+ sends a random ULID; both fit the rule)."""
    return hashlib.sha1(f"{slug}:{n}".encode()).hexdigest()  # noqa: S324 - an identifier, not security


# ---- prototypes written by the repositories ------------------------------------------------------


def _dt(us: int) -> datetime:
    return from_us(us)


def _read_back(conn: Connection, table: sa.Table, column: str, value: str) -> list[dict[str, Any]]:
    """Rows as the driver returns them, so that writing them back stores the very same values. JSON
    columns are read as text on PostgreSQL (psycopg would parse them) and go back through COPY as text."""
    pg = conn.dialect.name == "postgresql"
    names = [c.name for c in table.columns]
    select = ", ".join(f"CAST({n} AS text) AS {n}" if pg and isinstance(table.c[n].type, sa.JSON) else n for n in names)
    sql = f"SELECT {select} FROM {table.name} WHERE {column} = {'%s' if pg else '?'}"
    driver: Any = conn.connection.driver_connection
    cursor = driver.execute(sql, (value,))
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def _prototypes(engine: Engine, project_id: str, author: str) -> dict[str, dict[str, Any]]:
    """One row of each bulk table as the repositories write it through a whole publish, written into the
    target database in a transaction that is rolled back, and read back."""
    created, done = 1_000 * US, 1_020 * US
    with engine.connect() as conn:
        # Begun before the first statement: the repositories write some rows on the driver connection,
        # which SQLAlchemy's autobegin does not see (SQLite's driver would commit those on its own).
        conn.begin()
        bucket = Bucket(
            id="01BENCHPROTOTYPEBUCKET0000",
            project_id=project_id,
            slug="bench-prototype",
            created_at=_dt(created),
            updated_at=_dt(created),
        )
        SqlBuckets(conn).add(bucket)
        channel = Channel(
            id="01BENCHPROTOTYPECHANNEL000",
            bucket_id=bucket.id,
            bucket_slug=bucket.slug,
            project_id=project_id,
            slug="latest",
            managed=True,
            author_id=author,
            created_at=_dt(created),
            updated_at=_dt(created),
        )
        SqlChannels(conn).add(channel)
        it = Iteration(
            id="01BENCHPROTOTYPEITERATION0",
            bucket_id=bucket.id,
            bucket_slug=bucket.slug,
            project_id=project_id,
            fingerprint="F",
            author_id=author,
            template_type=TemplateType.HCL2,
            created_at=_dt(created),
            updated_at=_dt(created),
        )
        SqlIterations(conn).add(it)  # iterations.create
        build = Build(
            id="01BENCHPROTOTYPEBUILD00000",
            iteration_id=it.id,
            bucket_id=bucket.id,
            project_id=project_id,
            component_type="C",
            status=BuildStatus.UNSET,
            created_at=_dt(created),
            updated_at=_dt(created),
            heartbeat_at=_dt(created),
            packer_run_uuid="R",
        )
        SqlBuilds(conn).add(build)  # builds.create, no images
        build.status = BuildStatus.RUNNING
        SqlBuilds(conn).save(build, images_changed=False)  # RUNNING
        build.status, build.cloud_provider, build.labels = BuildStatus.DONE, "aws", dict(BUILD_LABELS)
        build.updated_at = build.heartbeat_at = _dt(done)
        build.images = [
            Image(id="01BENCHPROTOTYPEIMAGE00000", build_id=build.id, image_id="X", region="r", created_at=_dt(done))
        ]
        SqlBuilds(conn).save(build, images_changed=True)  # DONE with images
        it.incremental_version, it.complete, it.updated_at = 1, True, _dt(done)
        SqlIterations(conn).save(it)  # builds.complete_if_done
        SqlChannels(conn).add_assignment(  # latest.record_assignment
            ChannelAssignment(
                id="01BENCHPROTOTYPEASSIGNMENT",
                channel_id=channel.id,
                created_at=_dt(done),
                iteration_id=it.id,
                iteration_fingerprint="F",
                iteration_version=1,
                author_id=author,
            )
        )
        rows = {
            "iteration": _read_back(conn, t.iteration, "id", it.id),
            "build": _read_back(conn, t.build, "id", build.id),
            "image": _read_back(conn, t.image, "build_id", build.id),
            "channel_assignment": _read_back(conn, t.channel_assignment, "iteration_id", it.id),
        }
        conn.rollback()
    for name, found in rows.items():
        if len(found) != 1:
            raise RuntimeError(f"the prototype publish wrote {len(found)} {name} rows instead of one")
    return {name: found[0] for name, found in rows.items()}


# Per-row values, in this order at the front of each tuple; every other column keeps the prototype's value.
VARYING: dict[str, tuple[str, ...]] = {
    "iteration": ("id", "bucket_id", "project_id", "fingerprint", "incremental_version", "created_at", "updated_at"),
    "build": (
        "id",
        "iteration_id",
        "bucket_id",
        "project_id",
        "component_type",
        "packer_run_uuid",
        "cloud_provider",
        "created_at",
        "updated_at",
        "heartbeat_at",
    ),
    "image": ("id", "build_id", "position", "image_id", "region", "created_at"),
    "channel_assignment": (
        "id",
        "channel_id",
        "iteration_id",
        "iteration_fingerprint",
        "iteration_version",
        "created_at",
    ),
}


class _Writer:
    """Buffers rows per table (tuples: VARYING values, then the prototype's other columns) and writes them
    with one executemany (SQLite) or COPY (PostgreSQL) per table and batch, in foreign-key order."""

    ORDER = (t.iteration, t.build, t.image, t.channel_assignment)

    def __init__(self, conn: Connection, prototypes: dict[str, dict[str, Any]]) -> None:
        self.conn = conn
        self.copy = conn.dialect.name == "postgresql"
        self.pending: dict[str, list[tuple[Any, ...]]] = {tb.name: [] for tb in self.ORDER}
        self.count: dict[str, int] = {tb.name: 0 for tb in self.ORDER}
        self.sql: dict[str, str] = {}
        self.columns: dict[str, list[str]] = {}
        self.constants: dict[str, tuple[Any, ...]] = {}
        for tb in self.ORDER:
            proto = prototypes[tb.name]
            varying = VARYING[tb.name]
            missing = [c for c in varying if c not in proto]
            if missing:
                raise RuntimeError(f"{tb.name} has no column {missing}; update bench.seed.VARYING")
            rest = [c for c in proto if c not in varying]
            self.constants[tb.name] = tuple(proto[c] for c in rest)
            names = self.columns[tb.name] = [*varying, *rest]
            marks = ", ".join(["?"] * len(names))
            self.sql[tb.name] = f"INSERT INTO {tb.name} ({', '.join(names)}) VALUES ({marks})"
        self.last_completed_us = 0

    def size(self) -> int:
        return len(self.pending[t.iteration.name])

    def flush(self) -> None:
        for tb in self.ORDER:
            rows = self.pending[tb.name]
            if not rows:
                continue
            if self.copy:
                self._copy(tb.name, rows)
            else:
                self.conn.exec_driver_sql(self.sql[tb.name], rows)
            self.count[tb.name] += len(rows)
            rows.clear()

    def _copy(self, table: str, rows: list[tuple[Any, ...]]) -> None:
        """PostgreSQL: COPY FROM STDIN on the same connection and transaction (row-at-a-time executemany
        costs a round trip per row)."""
        columns = ", ".join(self.columns[table])
        cursor = self.conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
        with cursor.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)


# ---- seeding -------------------------------------------------------------------------------------


def _seed_engine(url: str) -> Engine:
    engine = create_engine(url)
    if is_sqlite(normalize_url(url)):

        @event.listens_for(engine, "connect")
        def _fast(dbapi_connection: Any, _record: Any) -> None:
            # Seeding only (a crash mid-seed means seeding again): pages are written once, never synced.
            # The server's own connections switch WAL back on.
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=OFF")
            cursor.execute("PRAGMA synchronous=OFF")
            cursor.execute("PRAGMA cache_size=-524288")  # 512 MiB of page cache for the index inserts
            cursor.close()

    return engine


def _tenant(conn: Connection) -> tuple[str, str, str]:
    org = conn.execute(sa.select(t.organization.c.id).order_by(t.organization.c.created_at)).scalar_one()
    project = conn.execute(
        sa.select(t.project.c.id).where(t.project.c.organization_id == org).order_by(t.project.c.created_at)
    ).scalar_one()
    author = conn.execute(
        sa.select(t.principal.c.client_id).order_by(t.principal.c.created_at, t.principal.c.id)
    ).scalar_one()
    return org, project, author


def _promotions(n: int) -> list[int]:
    """Versions at which `production` was (re)assigned; the last one is where it points now."""
    current = max(1, n - 5)
    earlier = {max(1, n * k // 10) for k in range(1, 10)}
    return [*sorted(v for v in earlier if v < current), current]


def seed(url: str, spec: DatasetSpec, *, progress: Callable[[str], None] | None = None) -> SeedResult:
    """Write the dataset into a migrated, initialised packyard database (`packyard init` done)."""
    started = time.monotonic()
    say = progress or (lambda _msg: None)
    rng = random.Random(spec.seed)
    ulid = UlidGen(rng)
    engine = _seed_engine(url)
    sizes = spec.bucket_sizes()
    now_us = int(time.time() * US) - 3600 * US  # the whole history lies more than an hour in the past
    try:
        with engine.begin() as conn:
            org_id, project_id, author = _tenant(conn)
        result = SeedResult(spec, org_id, project_id, author, hot=BucketFacts(HOT, "", 0))
        prototypes = _prototypes(engine, project_id, author)
        batch = 20_000 if spec.iterations >= 100_000 else 2_000
        for b, count in enumerate(sizes):
            slug = HOT if b == 0 else f"bucket-{b:03d}"
            facts = _seed_bucket(engine, ulid, rng, slug, count, now_us, project_id, author, prototypes, batch, result)
            result.buckets.append(facts)
            if b == 0:
                result.hot = facts
                say(f"  bucket {slug!r}: {count:,} iterations ({time.monotonic() - started:.0f} s)")
        say(f"  {len(sizes) - 1} more buckets ({time.monotonic() - started:.0f} s)")
        if engine.dialect.name != "sqlite":
            # What autovacuum does on its own soon after a bulk load; without it PostgreSQL would plan the
            # first minutes of queries on empty-table statistics. (SQLite gets no ANALYZE: packyard never
            # runs one, so a real SQLite database has no statistics either.)
            with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                conn.exec_driver_sql("VACUUM ANALYZE")
        with engine.connect() as conn:
            for table in (t.bucket, t.iteration, t.build, t.image, t.channel, t.channel_assignment):
                result.rows[table.name] = int(conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one())
    finally:
        engine.dispose()
    result.seconds = time.monotonic() - started
    return result


def _seed_bucket(
    engine: Engine,
    ulid: UlidGen,
    rng: random.Random,
    slug: str,
    count: int,
    now_us: int,
    project_id: str,
    author: str,
    prototypes: dict[str, dict[str, Any]],
    batch: int,
    result: SeedResult,
) -> BucketFacts:
    first_us = now_us - (count + 1) * ITERATION_EVERY_US
    created = first_us - 24 * 3600 * US
    bucket = Bucket(
        id=ulid(created),
        project_id=project_id,
        slug=slug,
        created_at=_dt(created),
        updated_at=_dt(created),
        description=f"{slug} images",
    )
    # buckets.create: the bucket and its managed `latest` channel, in one request.
    latest_channel = Channel(
        id=ulid(created),
        bucket_id=bucket.id,
        bucket_slug=slug,
        project_id=project_id,
        slug="latest",
        managed=True,
        author_id=author,
        created_at=_dt(created),
        updated_at=_dt(created),
    )
    with engine.begin() as conn:
        SqlBuckets(conn).add(bucket)
        SqlChannels(conn).add(latest_channel)
    promotions = _promotions(count)
    production: Channel | None = None
    facts = BucketFacts(slug, bucket.id, count)
    middle_version = count - count // 2
    with engine.connect() as conn:  # committed every `batch` iterations
        writer = _Writer(conn, prototypes)
        assignments = writer.pending[t.channel_assignment.name]
        history = writer.constants[t.channel_assignment.name]
        for it in _iterations(ulid, rng, slug, count, first_us, project_id, bucket.id, writer):
            completed = writer.last_completed_us
            assignments.append(
                (ulid(completed), latest_channel.id, it.id, it.fingerprint, it.version, completed, *history)
            )
            if it.version in promotions:
                at = completed + PROMOTION_DELAY_US
                if production is None:  # channels.create names the iteration; later promotions are updates
                    production = Channel(
                        id=ulid(at),
                        bucket_id=bucket.id,
                        bucket_slug=slug,
                        project_id=project_id,
                        slug="production",
                        author_id=author,
                        created_at=_dt(at),
                        updated_at=_dt(at),
                    )
                    SqlChannels(conn).add(production)
                _assign(production, it, at, author)
                assignments.append((ulid(at), production.id, it.id, it.fingerprint, it.version, at, *history))
                if it.version == promotions[-1]:
                    facts.production = it
            if it.version == middle_version:
                facts.middle = it
            if it.version == middle_version + 1:
                facts.boundary = it
            if it.version == count:
                facts.latest = it
            if writer.size() >= batch:
                writer.flush()
                conn.commit()
        writer.flush()
        assert facts.latest is not None
        assert facts.production is not None
        assert production is not None
        # The state after the last completion: refresh_latest (bucket.latest_*, platforms, `latest`), the
        # count kept by iterations.create and the counter taken by every completion.
        bucket.latest_iteration_id = facts.latest.id
        bucket.latest_version = count
        bucket.platforms = list(PLATFORMS)
        bucket.updated_at = _dt(writer.last_completed_us)
        buckets = SqlBuckets(conn)
        buckets.set_latest(bucket)
        buckets.adjust_iteration_count(bucket.id, count)
        conn.execute(t.bucket.update().where(t.bucket.c.id == bucket.id).values(version_counter=count))
        _assign(latest_channel, facts.latest, writer.last_completed_us, author)
        SqlChannels(conn).save(latest_channel)
        SqlChannels(conn).save(production)
        conn.commit()
    facts.production_history = len(promotions)
    for name, n in writer.count.items():
        result.rows[name] = result.rows.get(name, 0) + n
    return facts


def _assign(channel: Channel, it: IterationFacts, at_us: int, author: str) -> None:
    """What latest.record_assignment does to the channel row."""
    channel.iteration_id = it.id
    channel.author_id = author
    channel.assigned_by = author
    channel.assigned_at = _dt(at_us)
    channel.updated_at = _dt(at_us)


def _iterations(
    ulid: UlidGen,
    rng: random.Random,
    slug: str,
    count: int,
    first_us: int,
    project_id: str,
    bucket_id: str,
    writer: _Writer,
) -> Iterator[IterationFacts]:
    """Yield each iteration (in creation order) after queueing its rows; writer.last_completed_us is set."""
    iteration_rows = writer.pending[t.iteration.name]
    build_rows = writer.pending[t.build.name]
    image_rows = writer.pending[t.image.name]
    it_const = writer.constants[t.iteration.name]
    build_const = writer.constants[t.build.name]
    image_const = writer.constants[t.image.name]
    for n in range(1, count + 1):
        created = first_us + n * ITERATION_EVERY_US + rng.randrange(1000) * 1000
        fp = fingerprint(slug, n)
        iteration_id = ulid(created)
        run_uuid = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        builds: list[tuple[str, str, list[str]]] = []
        completed = 0
        for j, (component, provider, regions) in enumerate(COMPONENTS):
            # Packer sends the CreateBuilds concurrently; each build goes RUNNING and, ~20 s later, DONE with
            # its images; the last DONE completes the iteration in that same request.
            build_created = created + BUILD_CREATED_AFTER_US + j * 1000
            build_id = ulid(build_created)
            done = created + BUILD_DONE_AFTER_US + j * US
            completed = max(completed, done)
            images = []
            for position, region in enumerate(regions):
                image_id = f"{provider}-img-{rng.getrandbits(64):016x}"
                images.append(image_id)
                image_rows.append((ulid(done), build_id, position, image_id, region, done, *image_const))
            builds.append((build_id, component, images))
            build_rows.append(
                (
                    build_id,
                    iteration_id,
                    bucket_id,
                    project_id,
                    component,
                    run_uuid,
                    provider,
                    build_created,
                    done,
                    done,
                    *build_const,
                )
            )
        iteration_rows.append((iteration_id, bucket_id, project_id, fp, n, created, completed, *it_const))
        writer.last_completed_us = completed
        yield IterationFacts(iteration_id, fp, n, created, builds)


def expected_rows(spec: DatasetSpec) -> dict[str, int]:
    """Row counts the seed must produce (checked after seeding)."""
    sizes = spec.bucket_sizes()
    iterations = sum(sizes)
    history = sum(n + len(_promotions(n)) for n in sizes)
    builds = iterations * len(COMPONENTS)
    images = builds * 2
    return {
        "bucket": len(sizes),
        "iteration": iterations,
        "build": builds,
        "image": images,
        "channel": 2 * len(sizes),
        "channel_assignment": history,
    }


def slugs(result: SeedResult) -> Sequence[str]:
    return [b.slug for b in result.buckets]
