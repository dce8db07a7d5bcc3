"""Repositories over SQLAlchemy Core; one implementation for SQLite and PostgreSQL."""

from __future__ import annotations

from collections import namedtuple
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Generic, TypeVar, overload

import psycopg
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Row
from sqlalchemy.exc import IntegrityError

from packyard.auth.vault import Vault, VaultError
from packyard.domain.errors import AlreadyExists, FailedPrecondition
from packyard.domain.models import (
    Bucket,
    Build,
    BuildStatus,
    Channel,
    ChannelAssignment,
    Image,
    Iteration,
    Job,
    Organization,
    Principal,
    Project,
    Registry,
    RevocationType,
    Role,
    RunTaskBehaviour,
    TemplateType,
    Tier,
)
from packyard.domain.pagination import PageRequest
from packyard.ids import is_uuid
from packyard.storage import schema as t
from packyard.storage.db import GROUP_ROWS, Database, DatabaseUnavailable
from packyard.storage.raw import Raw, as_json, in_list

if TYPE_CHECKING:
    from packyard.storage.sboms import SqlSboms

T = TypeVar("T")
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_US = timedelta(microseconds=1)


def to_us(value: datetime) -> int:
    return (value - EPOCH) // _US


_TIMES: dict[int, datetime] = {}  # datetimes are immutable, and a request reads the same few many times


def from_us(value: int) -> datetime:
    found = _TIMES.get(value)
    if found is None:
        if len(_TIMES) >= 4096:
            _TIMES.clear()
        found = _TIMES[value] = EPOCH + timedelta(microseconds=value)
    return found


def opt_from_us(value: int | None) -> datetime | None:
    return None if value is None else from_us(value)


def _db_value(value: object) -> object:
    return to_us(value) if isinstance(value, datetime) else value


def keyset(stmt: sa.Select[Any], columns: Mapping[str, sa.ColumnElement[Any]], page: PageRequest) -> sa.Select[Any]:
    """Order by the page's fields and start after (or before) its cursor; fetch one extra row."""
    cols = [columns[f.name] for f in page.order]
    desc = [f.descending != page.backwards for f in page.order]
    if page.cursor is not None:
        values = [_db_value(v) for v in page.cursor]
        if all(desc) or not any(desc):
            left, right = sa.tuple_(*cols), sa.tuple_(*[sa.literal(v) for v in values])
            stmt = stmt.where(left < right if desc[0] else left > right)
        else:
            clauses = []
            for i, col in enumerate(cols):
                equal = [cols[j] == values[j] for j in range(i)]
                beyond = col < values[i] if desc[i] else col > values[i]
                clauses.append(sa.and_(*equal, beyond))
            stmt = stmt.where(sa.or_(*clauses))
    stmt = stmt.order_by(*[c.desc() if d else c.asc() for c, d in zip(cols, desc, strict=True)])
    return stmt.limit(page.size + 1)


def _insert(conn: Connection, table: sa.Table, values: Mapping[str, Any], duplicate: str) -> None:
    try:
        with conn.begin_nested():
            conn.execute(table.insert().values(**values))
    except IntegrityError as exc:
        raise AlreadyExists(duplicate) from exc


def forget_group_rows(conn: Connection) -> None:
    """A write to what GROUP_ROWS holds (a principal, a registry, a project's stamp): read it again."""
    group = conn.info.get(GROUP_ROWS)
    if group:
        group.clear()


class _Repository:
    def __init__(self, conn: Connection, raw: Raw | None = None) -> None:
        self.conn = conn
        self._raw = raw  # a unit of work hands all its repositories the same one

    @property
    def raw(self) -> Raw:
        if self._raw is None:
            self._raw = Raw(self.conn)
        return self._raw


class SqlTenants(_Repository):
    def __init__(self, conn: Connection, prefetched: Prefetched | None = None, raw: Raw | None = None) -> None:
        super().__init__(conn, raw)
        self.prefetched = prefetched

    @staticmethod
    def _org(row: Row[Any]) -> Organization:
        return Organization(row.id, row.name, from_us(row.created_at))

    @staticmethod
    def _project(row: Row[Any]) -> Project:
        return Project(row.id, row.organization_id, row.name, from_us(row.created_at))

    def add_organization(self, org: Organization) -> None:
        _insert(
            self.conn,
            t.organization,
            {"id": org.id, "name": org.name, "created_at": to_us(org.created_at)},
            f"organization {org.id} already exists",
        )

    def get_organization(self, org_id: str) -> Organization | None:
        row = self.conn.execute(sa.select(t.organization).where(t.organization.c.id == org_id)).first()
        return self._org(row) if row else None

    def list_organizations(self) -> list[Organization]:
        rows = self.conn.execute(sa.select(t.organization).order_by(t.organization.c.created_at))
        return [self._org(r) for r in rows]

    def add_project(self, project: Project) -> None:
        _insert(
            self.conn,
            t.project,
            {
                "id": project.id,
                "organization_id": project.organization_id,
                "name": project.name,
                "created_at": to_us(project.created_at),
            },
            f"project {project.id} already exists",
        )

    def get_project(self, organization_id: str, project_id: str) -> Project | None:
        row = self.raw.first(
            "SELECT id, organization_id, name, created_at FROM project WHERE id = ? AND organization_id = ?",
            (project_id, organization_id),
        )
        return self._project(row) if row else None

    def project_in(self, organization_id: str, project_id: str) -> bool:
        prefetched = self.prefetched
        if prefetched is not None and prefetched.project_id == project_id and prefetched.checked_in is not None:
            # read with the principal, inside the principal's organization (_PRINCIPAL_WITH_PROJECT)
            return prefetched.found and prefetched.checked_in == organization_id
        if not (is_uuid(organization_id) and is_uuid(project_id)):
            return False
        row = self.raw.first(
            "SELECT 1 FROM project WHERE id = ? AND organization_id = ?", (project_id, organization_id)
        )
        return row is not None

    def change_stamp(self, project_id: str) -> int | None:
        if self.prefetched is not None and project_id in self.prefetched.stamps:
            return self.prefetched.stamps.pop(project_id)
        row = self.raw.first("SELECT change_stamp FROM project WHERE id = ?", (project_id,))
        return int(row.change_stamp) if row else None

    def list_projects(self, organization_id: str) -> list[Project]:
        rows = self.conn.execute(
            sa.select(t.project)
            .where(t.project.c.organization_id == organization_id)
            .order_by(t.project.c.created_at, t.project.c.id)
        )
        return [self._project(r) for r in rows]


REGISTRY_COLUMNS = (
    "id, organization_id, project_id, feature_tier, activated, deactivated_at, run_task_api_id, created_at, updated_at"
)


PRINCIPAL_COLUMNS = "id, client_id, name, organization_id, project_id, role, secret_hash, created_at"
_PrincipalRow = namedtuple(  # the columns of PRINCIPAL_COLUMNS, in order
    "_PrincipalRow", ["id", "client_id", "name", "organization_id", "project_id", "role", "secret_hash", "created_at"]
)
# The project's stamp and registry are read only inside the principal's own organization: a project of
# another organization reads as missing (no stamp), which is how tenancy refuses it (Tenants.project_in).
_PRINCIPAL_WITH_PROJECT = (
    f"SELECT {', '.join('p.' + c for c in PRINCIPAL_COLUMNS.split(', '))}, "
    "(SELECT change_stamp FROM project WHERE id = ? AND organization_id = p.organization_id) AS change_stamp, "
    f"{', '.join(f'r.{c} AS registry_{c}' for c in REGISTRY_COLUMNS.split(', '))} "
    "FROM principal p LEFT JOIN registry r ON r.project_id = ? AND r.organization_id = p.organization_id "
    "WHERE p.id = ?"
)
_PRINCIPAL_AND_STAMP = (
    f"SELECT {PRINCIPAL_COLUMNS}, (SELECT change_stamp FROM project "
    "WHERE id = ? AND organization_id = principal.organization_id) FROM principal WHERE id = ?"
)


def principal_and_stamp(db: Database, principal_id: str, project_id: str) -> tuple[Principal, int | None] | None:
    """A token's principal and the project's change stamp in one statement outside any transaction
    (the read cache's hit path); None when the principal no longer exists."""
    row = db.peek(_PRINCIPAL_AND_STAMP, (project_id, principal_id))
    if row is None:
        return None
    columns, stamp = row[:-1], row[-1]
    return _principal_from(columns), (None if stamp is None else int(stamp))


_PRINCIPALS: dict[tuple[Any, ...], Principal] = {}


def _principal_from(columns: tuple[Any, ...]) -> Principal:
    """The Principal of a row of PRINCIPAL_COLUMNS, made once per distinct row (the hit path's hot spot)."""
    principal = _PRINCIPALS.get(columns)
    if principal is None:  # a principal row never changes in place, but it is looked up by all of its columns
        if len(_PRINCIPALS) >= 1024:
            _PRINCIPALS.clear()
        principal = _PRINCIPALS[columns] = SqlPrincipals._principal(_PrincipalRow._make(columns))
    return principal


# PostgreSQL only (= ANY): the principals and stamps a batch of waiting requests needs, in one statement.
# A stamp row carries its project's organization, so a stamp is handed only to a principal of that
# organization (CheckBatch).
_PRINCIPALS_AND_STAMPS = (
    f"SELECT 'p' AS kind, {PRINCIPAL_COLUMNS}, NULL::bigint AS change_stamp FROM principal WHERE id = ANY(%s) "
    "UNION ALL SELECT 's', id, organization_id, NULL, NULL, NULL, NULL, NULL, NULL, change_stamp "
    "FROM project WHERE id = ANY(%s)"
)


class AsyncStampReader:
    """principal_and_stamp for many requests at once, on an asynchronous PostgreSQL connection of its own
    (autocommit), so that the event loop serves other requests while the round trip is under way."""

    def __init__(self, db: Database) -> None:
        self._conninfo = db.engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
        self._conn: psycopg.AsyncConnection[Any] | None = None

    async def fetch(
        self, principal_ids: set[str], project_ids: set[str]
    ) -> tuple[dict[str, Principal], dict[str, tuple[str, int]]]:
        try:
            if self._conn is None or self._conn.closed:
                self._conn = await psycopg.AsyncConnection.connect(self._conninfo, autocommit=True)
            cursor = await self._conn.execute(_PRINCIPALS_AND_STAMPS, (sorted(principal_ids), sorted(project_ids)))
            rows = await cursor.fetchall()
        except Exception as exc:
            await self.close()
            raise DatabaseUnavailable(str(exc)) from exc
        principals: dict[str, Principal] = {}
        stamps: dict[str, tuple[str, int]] = {}  # project id -> its organization and stamp
        for row in rows:
            if row[0] == "s":
                stamps[row[1]] = (row[2], int(row[-1]))
                continue
            principal = _principal_from(tuple(row[1:-1]))
            principals[principal.id] = principal
        return principals, stamps

    async def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None and not conn.closed:
            try:
                await conn.close()
            except Exception:  # already broken
                return


class SqlPrincipals(_Repository):
    def __init__(self, conn: Connection, prefetched: Prefetched | None = None, raw: Raw | None = None) -> None:
        super().__init__(conn, raw)
        self.prefetched = prefetched

    @staticmethod
    def _principal(row: Any) -> Principal:
        return Principal(
            id=row.id,
            client_id=row.client_id,
            name=row.name,
            organization_id=row.organization_id,
            project_id=row.project_id,
            role=Role(row.role),
            secret_hash=row.secret_hash,
            created_at=from_us(row.created_at),
        )

    def add(self, principal: Principal) -> None:
        forget_group_rows(self.conn)
        _insert(
            self.conn,
            t.principal,
            {
                "id": principal.id,
                "client_id": principal.client_id,
                "name": principal.name,
                "organization_id": principal.organization_id,
                "project_id": principal.project_id,
                "role": principal.role.value,
                "secret_hash": principal.secret_hash,
                "created_at": to_us(principal.created_at),
            },
            f"principal {principal.client_id} already exists",
        )

    def get(self, principal_id: str) -> Principal | None:
        if self.prefetched is not None:
            return self._get_with_project(principal_id, self.prefetched)
        row = self.raw.first(f"SELECT {PRINCIPAL_COLUMNS} FROM principal WHERE id = ?", (principal_id,))
        return self._principal(row) if row else None

    def _get_with_project(self, principal_id: str, prefetched: Prefetched) -> Principal | None:
        """The principal, and in the same statement the project's change stamp and registry, which
        every project-scoped request reads next (first, so the stamp is never newer than the data)."""
        project_id = prefetched.project_id
        group: dict[Any, tuple[Any, ...]] | None = self.conn.info.get(GROUP_ROWS)
        key = (principal_id, project_id)
        values = group.get(key) if group is not None else None
        if values is None:
            row = self.raw.first(_PRINCIPAL_WITH_PROJECT, (project_id, project_id, principal_id))
            if row is None:
                return None
            values = tuple(row)
            if group is not None:  # the next units of the group read the same rows (see GROUP_ROWS)
                group[key] = values
        width = len(_PrincipalRow._fields)
        stamp, registry = values[width], values[width + 1 :]
        prefetched.stamps[project_id] = None if stamp is None else int(stamp)
        prefetched.registries[project_id] = _registry_from(registry) if registry[0] is not None else None
        principal = _principal_from(values[:width])
        prefetched.checked_in, prefetched.found = principal.organization_id, stamp is not None
        return principal

    def get_by_client_id(self, client_id: str) -> Principal | None:
        row = self.conn.execute(sa.select(t.principal).where(t.principal.c.client_id == client_id)).first()
        return self._principal(row) if row else None

    def all(self) -> list[Principal]:
        rows = self.conn.execute(sa.select(t.principal).order_by(t.principal.c.created_at, t.principal.c.id))
        return [self._principal(r) for r in rows]

    def delete(self, principal_id: str) -> None:
        forget_group_rows(self.conn)
        self.conn.execute(t.principal.delete().where(t.principal.c.id == principal_id))


class SqlSigningKeys(_Repository):
    def current(self) -> tuple[str, bytes] | None:
        row = self.conn.execute(
            sa.select(t.signing_key).order_by(t.signing_key.c.created_at.desc(), t.signing_key.c.id.desc()).limit(1)
        ).first()
        return (row.id, bytes(row.secret)) if row else None

    def get(self, key_id: str) -> bytes | None:
        row = self.conn.execute(sa.select(t.signing_key.c.secret).where(t.signing_key.c.id == key_id)).first()
        return bytes(row.secret) if row else None

    def add(self, key_id: str, secret: bytes) -> None:
        self.conn.execute(t.signing_key.insert().values(id=key_id, secret=secret, created_at=to_us(datetime.now(UTC))))


def _registry_from(row: tuple[Any, ...]) -> Registry:
    """The Registry of a row of REGISTRY_COLUMNS."""
    id_, org_id, project_id, tier, activated, deactivated_at, run_task_api_id, created_at, updated_at = row
    return Registry(
        id=id_,
        organization_id=org_id,
        project_id=project_id,
        feature_tier=Tier(tier),
        activated=bool(activated),
        created_at=from_us(created_at),
        updated_at=from_us(updated_at),
        run_task_api_id=run_task_api_id,
        deactivated_at=opt_from_us(deactivated_at),
    )


class Prefetched:
    """Rows read in the same statement as the request's principal, each handed out once: the project's
    registry (None when it has none) and its change stamp. A write to either forgets it."""

    __slots__ = ("checked_in", "found", "project_id", "registries", "stamps")

    def __init__(self, project_id: str) -> None:
        self.project_id = project_id
        # The organization the project was looked for in (the principal's), and whether it is there.
        self.checked_in: str | None = None
        self.found = False
        self.registries: dict[str, Registry | None] = {}
        self.stamps: dict[str, int | None] = {}


class SqlRegistries(_Repository):
    def __init__(
        self,
        conn: Connection,
        vault: Vault | None = None,
        prefetched: Prefetched | None = None,
        raw: Raw | None = None,
    ) -> None:
        super().__init__(conn, raw)
        self.vault = vault
        self.prefetched = prefetched

    def _forget(self) -> None:
        if self.prefetched is not None:
            self.prefetched.registries.clear()
        forget_group_rows(self.conn)

    def _vault(self) -> Vault:
        if self.vault is None:
            raise RuntimeError("this unit of work was opened without the server's vault")
        return self.vault

    def hmac_key(self, project_id: str) -> str | None:
        sealed = self.conn.execute(
            sa.select(t.registry.c.hmac_key).where(t.registry.c.project_id == project_id)
        ).scalar_one_or_none()
        if not sealed:
            return None
        try:
            return self._vault().open(sealed)
        except VaultError:
            raise FailedPrecondition(
                "the run-task HMAC key can't be decrypted with this server's secret key "
                "(PACKYARD_SECRET_KEY or <data dir>/secret.key changed); regenerate it with PATCH .../runtasks/hmac"
            ) from None

    def set_hmac_key(self, project_id: str, key: str) -> None:
        self._forget()
        self.conn.execute(
            t.registry.update().where(t.registry.c.project_id == project_id).values(hmac_key=self._vault().seal(key))
        )

    def for_run_task(self, run_task_api_id: str) -> Registry | None:
        row = self.raw.first(f"SELECT {REGISTRY_COLUMNS} FROM registry WHERE run_task_api_id = ?", (run_task_api_id,))
        return _registry_from(tuple(row)) if row is not None else None

    def run_task_behaviour(self, project_id: str) -> RunTaskBehaviour:
        row = self.raw.first("SELECT run_task_on_untracked FROM registry WHERE project_id = ?", (project_id,))
        return RunTaskBehaviour(row.run_task_on_untracked) if row is not None else RunTaskBehaviour.UNSET

    def set_run_task_behaviour(self, project_id: str, behaviour: RunTaskBehaviour) -> None:
        self.raw.execute(
            "UPDATE registry SET run_task_on_untracked = ? WHERE project_id = ?", (behaviour.value, project_id)
        )

    def get(self, project_id: str) -> Registry | None:
        if self.prefetched is not None and project_id in self.prefetched.registries:
            return self.prefetched.registries.pop(project_id)
        row = self.raw.first(f"SELECT {REGISTRY_COLUMNS} FROM registry WHERE project_id = ?", (project_id,))
        return _registry_from(tuple(row)) if row is not None else None

    @staticmethod
    def _values(registry: Registry) -> dict[str, Any]:
        return {
            "feature_tier": registry.feature_tier.value,
            "activated": registry.activated,
            "deactivated_at": None if registry.deactivated_at is None else to_us(registry.deactivated_at),
            "updated_at": to_us(registry.updated_at),
        }

    def add(self, registry: Registry) -> None:
        self._forget()
        _insert(
            self.conn,
            t.registry,
            {
                "id": registry.id,
                "organization_id": registry.organization_id,
                "project_id": registry.project_id,
                "run_task_api_id": registry.run_task_api_id,
                "created_at": to_us(registry.created_at),
                **self._values(registry),
            },
            f"project {registry.project_id} already has a registry",
        )

    def save(self, registry: Registry) -> None:
        self._forget()
        self.conn.execute(t.registry.update().where(t.registry.c.id == registry.id).values(**self._values(registry)))

    def purge(self, project_id: str) -> None:
        self._forget()
        self.conn.execute(t.bucket.delete().where(t.bucket.c.project_id == project_id))
        self.conn.execute(t.registry.delete().where(t.registry.c.project_id == project_id))


_BUCKET_SQL = (
    "SELECT id, project_id, slug, description, labels, platforms, latest_iteration_id, latest_version, "
    "iteration_count, created_at, updated_at FROM bucket"
)


class SqlBuckets(_Repository):
    COLUMNS: Mapping[str, sa.ColumnElement[Any]] = {
        "slug": t.bucket.c.slug,
        "created_at": t.bucket.c.created_at,
        "updated_at": t.bucket.c.updated_at,
        "id": t.bucket.c.id,
    }

    @staticmethod
    def _bucket(row: Row[Any]) -> Bucket:
        return Bucket(
            id=row.id,
            project_id=row.project_id,
            slug=row.slug,
            description=row.description,
            labels=dict(as_json(row.labels) or {}),
            platforms=list(as_json(row.platforms) or []),
            latest_iteration_id=row.latest_iteration_id,
            latest_version=row.latest_version,
            iteration_count=row.iteration_count,
            created_at=from_us(row.created_at),
            updated_at=from_us(row.updated_at),
        )

    def get(self, project_id: str, slug: str, *, for_update: bool = False) -> Bucket | None:
        lock = self.raw.for_update("bucket") if for_update else ""
        row = self.raw.first(f"{_BUCKET_SQL} WHERE project_id = ? AND slug = ?{lock}", (project_id, slug))
        return self._bucket(row) if row else None

    def get_by_id(self, project_id: str, bucket_id: str) -> Bucket | None:
        row = self.raw.first(_BUCKET_SQL + " WHERE project_id = ? AND id = ?", (project_id, bucket_id))
        return self._bucket(row) if row else None

    def page(self, project_id: str, page: PageRequest) -> list[Bucket]:
        stmt = keyset(sa.select(t.bucket).where(t.bucket.c.project_id == project_id), self.COLUMNS, page)
        return [self._bucket(r) for r in self.conn.execute(stmt)]

    def add(self, bucket: Bucket) -> None:
        # Packer's bucket upsert tries this first on every build, so it is on the driver connection too.
        values = {
            "id": bucket.id,
            "project_id": bucket.project_id,
            "slug": bucket.slug,
            "description": bucket.description,
            "labels": bucket.labels,
            "platforms": bucket.platforms,
            "latest_iteration_id": bucket.latest_iteration_id,
            "latest_version": bucket.latest_version,
            "iteration_count": 0,
            "version_counter": 0,
            "created_at": to_us(bucket.created_at),
            "updated_at": to_us(bucket.updated_at),
        }
        if not self.raw.insert_unique("bucket", values):
            raise AlreadyExists(f"bucket {bucket.slug!r} already exists")

    def save(self, bucket: Bucket) -> None:
        values = {
            "description": bucket.description,
            "labels": bucket.labels,
            "platforms": bucket.platforms,
            "updated_at": to_us(bucket.updated_at),
        }
        self.raw.update("bucket", values, "id", bucket.id)

    def set_latest(self, bucket: Bucket) -> None:
        values = {
            "latest_iteration_id": bucket.latest_iteration_id,
            "latest_version": bucket.latest_version,
            "platforms": bucket.platforms,
            "updated_at": to_us(bucket.updated_at),
        }
        self.raw.update("bucket", values, "id", bucket.id)

    def delete(self, bucket_id: str) -> None:
        self.conn.execute(t.bucket.delete().where(t.bucket.c.id == bucket_id))

    def next_version(self, bucket_id: str) -> int:
        # One UPDATE ... RETURNING: the row lock (PostgreSQL) or the write lock (SQLite) makes it atomic.
        row = self.raw.first(
            "UPDATE bucket SET version_counter = version_counter + 1 WHERE id = ? RETURNING version_counter",
            (bucket_id,),
        )
        assert row is not None, f"bucket {bucket_id} vanished"
        return int(row.version_counter)

    def adjust_iteration_count(self, bucket_id: str, delta: int) -> None:
        self.raw.execute("UPDATE bucket SET iteration_count = iteration_count + ? WHERE id = ?", (delta, bucket_id))


_ITERATION_SELECT = sa.select(
    t.iteration,
    t.bucket.c.slug.label("bucket_slug"),
).join(t.bucket, t.bucket.c.id == t.iteration.c.bucket_id)


_IterationRow = namedtuple(  # the columns of _ITERATION_SQL, which is made from it
    "_IterationRow",
    [
        "id",
        "bucket_id",
        "bucket_slug",
        "project_id",
        "fingerprint",
        "incremental_version",
        "complete",
        "author_id",
        "template_type",
        "revoke_at",
        "revocation_message",
        "revocation_author",
        "revocation_type",
        "revocation_inherited_from",
        "own_revoke_at",
        "own_revocation_message",
        "own_revocation_author",
        "created_at",
        "updated_at",
    ],
)
_ITERATION_SQL = (
    "SELECT "
    + ", ".join("b.slug AS bucket_slug" if c == "bucket_slug" else f"i.{c}" for c in _IterationRow._fields)
    + " FROM iteration i JOIN bucket b ON b.id = i.bucket_id"
)


class SqlIterations(_Repository):
    COLUMNS: Mapping[str, sa.ColumnElement[Any]] = {
        "created_at": t.iteration.c.created_at,
        "updated_at": t.iteration.c.updated_at,
        "incremental_version": t.iteration.c.incremental_version,
        "fingerprint": t.iteration.c.fingerprint,
        "id": t.iteration.c.id,
    }

    @staticmethod
    def _iteration(row: Any) -> Iteration:
        return Iteration(
            id=row.id,
            bucket_id=row.bucket_id,
            bucket_slug=row.bucket_slug,
            project_id=row.project_id,
            fingerprint=row.fingerprint,
            incremental_version=row.incremental_version,
            complete=bool(row.complete),
            author_id=row.author_id,
            template_type=TemplateType(row.template_type),
            revoke_at=opt_from_us(row.revoke_at),
            revocation_message=row.revocation_message,
            revocation_author=row.revocation_author,
            revocation_type=RevocationType(row.revocation_type),
            revocation_inherited_from=row.revocation_inherited_from,
            own_revoke_at=opt_from_us(row.own_revoke_at),
            own_revocation_message=row.own_revocation_message,
            own_revocation_author=row.own_revocation_author,
            created_at=from_us(row.created_at),
            updated_at=from_us(row.updated_at),
        )

    def get(
        self,
        bucket_id: str,
        *,
        iteration_id: str | None = None,
        fingerprint: str | None = None,
        version: int | None = None,
        for_update: bool = False,
    ) -> Iteration | None:
        value: object
        if iteration_id is not None:
            where, value = "i.id = ?", iteration_id
        elif fingerprint is not None:
            where, value = "i.fingerprint = ?", fingerprint
        elif version is not None:
            where, value = "i.incremental_version = ? AND i.incremental_version > 0", version
        else:
            raise ValueError("one identifier is required")
        lock = self.raw.for_update("i") if for_update else ""
        row = self.raw.first(f"{_ITERATION_SQL} WHERE i.bucket_id = ? AND {where}{lock}", (bucket_id, value))
        return self._iteration(row) if row else None

    def in_bucket(
        self,
        project_id: str,
        bucket_slug: str,
        *,
        iteration_id: str | None = None,
        fingerprint: str | None = None,
        for_update: bool = False,
    ) -> Iteration | None:
        where, value = ("i.id = ?", iteration_id) if iteration_id is not None else ("i.fingerprint = ?", fingerprint)
        lock = self.raw.for_update("i") if for_update else ""
        row = self.raw.first(
            f"{_ITERATION_SQL} WHERE b.project_id = ? AND b.slug = ? AND {where}{lock}",
            (project_id, bucket_slug, value),
        )
        return self._iteration(row) if row else None

    def get_in_project(self, project_id: str, iteration_id: str, *, for_update: bool = False) -> Iteration | None:
        lock = self.raw.for_update("i") if for_update else ""
        row = self.raw.first(f"{_ITERATION_SQL} WHERE i.project_id = ? AND i.id = ?{lock}", (project_id, iteration_id))
        return self._iteration(row) if row else None

    def of_build(self, project_id: str, build_id: str, *, for_update: bool = False) -> Iteration | None:
        lock = self.raw.for_update("i") if for_update else ""
        row = self.raw.first(
            f"{_ITERATION_SQL} JOIN build x ON x.iteration_id = i.id WHERE x.project_id = ? AND x.id = ?{lock}",
            (project_id, build_id),
        )
        return self._iteration(row) if row else None

    def get_many(self, project_id: str, iteration_ids: Sequence[str]) -> dict[str, Iteration]:
        ids = list(iteration_ids)
        rows = self.raw.rows(
            f"{_ITERATION_SQL} WHERE i.project_id = ? AND i.id IN ({in_list(len(ids))})", [project_id, *ids]
        )
        return {r.id: self._iteration(r) for r in rows}

    def latest_complete(self, bucket_id: str, *, valid_at: datetime | None = None) -> Iteration | None:
        where = "i.bucket_id = ? AND i.incremental_version > 0"
        params: list[object] = [bucket_id]
        if valid_at is not None:
            where += " AND (i.revoke_at IS NULL OR i.revoke_at > ?)"
            params.append(to_us(valid_at))
        row = self.raw.first(f"{_ITERATION_SQL} WHERE {where} ORDER BY i.incremental_version DESC LIMIT 1", params)
        return self._iteration(row) if row else None

    def page(self, bucket_id: str, page: PageRequest) -> list[Iteration]:
        stmt = keyset(_ITERATION_SELECT.where(t.iteration.c.bucket_id == bucket_id), self.COLUMNS, page)
        return [self._iteration(r) for r in self.conn.execute(stmt)]

    @staticmethod
    def _values(iteration: Iteration) -> dict[str, Any]:
        return {
            "fingerprint": iteration.fingerprint,
            "incremental_version": iteration.incremental_version,
            "complete": iteration.complete,
            "author_id": iteration.author_id,
            "template_type": iteration.template_type.value,
            "revoke_at": None if iteration.revoke_at is None else to_us(iteration.revoke_at),
            "revocation_message": iteration.revocation_message,
            "revocation_author": iteration.revocation_author,
            "revocation_type": iteration.revocation_type.value,
            "revocation_inherited_from": iteration.revocation_inherited_from,
            "own_revoke_at": None if iteration.own_revoke_at is None else to_us(iteration.own_revoke_at),
            "own_revocation_message": iteration.own_revocation_message,
            "own_revocation_author": iteration.own_revocation_author,
            "updated_at": to_us(iteration.updated_at),
        }

    def add(self, iteration: Iteration) -> None:
        values = {
            "id": iteration.id,
            "bucket_id": iteration.bucket_id,
            "project_id": iteration.project_id,
            "created_at": to_us(iteration.created_at),
            **self._values(iteration),
        }
        if not self.raw.insert_unique("iteration", values):
            raise AlreadyExists(
                f"bucket {iteration.bucket_slug!r} already has an iteration with fingerprint {iteration.fingerprint!r}"
            )

    def save(self, iteration: Iteration) -> None:
        self.raw.update("iteration", self._values(iteration), "id", iteration.id)

    def delete(self, iteration_id: str) -> None:
        self.conn.execute(t.iteration.delete().where(t.iteration.c.id == iteration_id))

    def children(self, project_id: str, iteration_ids: Sequence[str]) -> list[Iteration]:
        if not iteration_ids:
            return []
        sources = (
            sa.select(t.build.c.iteration_id)
            .where(t.build.c.project_id == project_id, t.build.c.source_iteration_id.in_(list(iteration_ids)))
            .distinct()
        )
        rows = self.conn.execute(_ITERATION_SELECT.where(t.iteration.c.id.in_(sources)).order_by(t.iteration.c.id))
        return [self._iteration(r) for r in rows]

    def with_descendants(self, project_id: str, iteration_ids: Sequence[str]) -> set[str]:
        # The ids are bound as constants on purpose: nearly every build has an empty source, and with a
        # correlated EXISTS PostgreSQL's estimate then favours scanning every build of the table.
        ids = list(iteration_ids)
        if not ids:
            return set()
        rows = self.raw.rows(
            "SELECT DISTINCT source_iteration_id FROM build "
            f"WHERE source_iteration_id IN ({in_list(len(ids))}) AND project_id = ?",
            [*ids, project_id],
        )
        return {r.source_iteration_id for r in rows}

    def inherited_from(self, project_id: str, ancestor_id: str) -> list[Iteration]:
        rows = self.conn.execute(
            _ITERATION_SELECT.where(
                t.iteration.c.project_id == project_id,
                t.iteration.c.revocation_inherited_from == ancestor_id,
                t.iteration.c.revocation_type == "INHERITED",
            ).order_by(t.iteration.c.id)
        )
        return [self._iteration(r) for r in rows]

    def build_states(self, iteration_ids: Sequence[str]) -> dict[str, list[tuple[str, BuildStatus, datetime]]]:
        ids = list(iteration_ids)
        rows = self.raw.rows(
            "SELECT iteration_id, component_type, status, heartbeat_at FROM build "
            f"WHERE iteration_id IN ({in_list(len(ids))}) ORDER BY created_at, id",
            ids,
        )
        out: dict[str, list[tuple[str, BuildStatus, datetime]]] = {}
        for r in rows:
            out.setdefault(r.iteration_id, []).append(
                (r.component_type, BuildStatus(r.status), from_us(r.heartbeat_at))
            )
        return out


_BUILD_COLUMNS = (
    "b.id, b.iteration_id, b.bucket_id, b.project_id, b.component_type, b.status, b.packer_run_uuid, "
    "b.cloud_provider, b.source_image_id, b.source_iteration_id, b.source_channel_id, b.source_build_ulid, "
    "b.labels, b.created_at, b.updated_at, b.heartbeat_at"
)
_BUILD_WITH_IMAGES_SQL = (
    f"SELECT {_BUILD_COLUMNS}, m.id AS image_pk, m.image_id AS image_image_id, "
    "m.region AS image_region, m.created_at AS image_created_at "
    "FROM build b LEFT JOIN image m ON m.build_id = b.id"
)
_BUILD_ORDER = "ORDER BY b.created_at, b.id, m.position"
# The build with its images and, first, its iteration's columns (renamed: the build's have the same names).
_FOR_CHANGE_ITERATION = ", ".join(
    "b2.slug AS it_bucket_slug" if c == "bucket_slug" else f"i.{c} AS it_{c}" for c in _IterationRow._fields
)
_BUILD_FOR_CHANGE_SQL = (
    f"SELECT {_FOR_CHANGE_ITERATION}, {_BUILD_COLUMNS}, m.id AS image_pk, m.image_id AS image_image_id, "
    "m.region AS image_region, m.created_at AS image_created_at "
    "FROM build b JOIN iteration i ON i.id = b.iteration_id JOIN bucket b2 ON b2.id = i.bucket_id "
    "LEFT JOIN image m ON m.build_id = b.id WHERE b.project_id = ? AND b.id = ? ORDER BY m.position"
)


class SqlBuilds(_Repository):
    COLUMNS: Mapping[str, sa.ColumnElement[Any]] = {
        "created_at": t.build.c.created_at,
        "updated_at": t.build.c.updated_at,
        "component_type": t.build.c.component_type,
        "id": t.build.c.id,
    }

    @staticmethod
    def _build(row: Row[Any]) -> Build:
        return Build(
            id=row.id,
            iteration_id=row.iteration_id,
            bucket_id=row.bucket_id,
            project_id=row.project_id,
            component_type=row.component_type,
            status=BuildStatus(row.status),
            packer_run_uuid=row.packer_run_uuid,
            cloud_provider=row.cloud_provider,
            source_image_id=row.source_image_id,
            source_iteration_id=row.source_iteration_id,
            source_channel_id=row.source_channel_id,
            source_build_ulid=row.source_build_ulid,
            labels=dict(as_json(row.labels) or {}),
            created_at=from_us(row.created_at),
            updated_at=from_us(row.updated_at),
            heartbeat_at=from_us(row.heartbeat_at),
        )

    def _attach_images(self, builds: list[Build]) -> list[Build]:
        if not builds:
            return builds
        by_id = {b.id: b for b in builds}
        rows = self.raw.rows(
            "SELECT id, build_id, image_id, region, created_at FROM image "
            f"WHERE build_id IN ({in_list(len(by_id))}) ORDER BY build_id, position",
            list(by_id),
        )
        for r in rows:
            by_id[r.build_id].images.append(Image(r.id, r.build_id, r.image_id, r.region, from_us(r.created_at)))
        return builds

    def for_change(self, project_id: str, build_id: str) -> tuple[Iteration, Build] | None:
        if self.raw.pg:
            # Two statements, so that the iteration's row lock is taken before the build is read: in one,
            # a statement that waited for the lock would go on with the build as it was before the wait.
            iteration = SqlIterations(self.conn, self.raw).of_build(project_id, build_id, for_update=True)
            build = self.get(project_id, build_id, for_update=True) if iteration is not None else None
            return (iteration, build) if iteration is not None and build is not None else None
        # SQLite: the transaction holds the database's write lock already; one statement.
        rows = self.raw.rows(_BUILD_FOR_CHANGE_SQL, (project_id, build_id))
        if not rows:
            return None
        width = len(_IterationRow._fields)
        iteration = SqlIterations._iteration(_IterationRow._make(rows[0][:width]))
        return iteration, self._assemble(rows)[0]

    def get(self, project_id: str, build_id: str, *, for_update: bool = False) -> Build | None:
        lock = self.raw.for_update("b") if for_update else ""
        rows = self.raw.rows(
            f"{_BUILD_WITH_IMAGES_SQL} WHERE b.project_id = ? AND b.id = ? {_BUILD_ORDER}{lock}", (project_id, build_id)
        )
        builds = self._assemble(rows)
        return builds[0] if builds else None

    def for_iteration(self, iteration_id: str, page: PageRequest | None = None) -> list[Build]:
        if page is None:
            return self.for_iterations([iteration_id]).get(iteration_id, [])
        if page.cursor is None and not page.backwards:
            # The first page, which is what Packer reads before it creates builds: fixed SQL on the driver.
            order = ", ".join(f"b.{f.name} DESC" if f.descending else f"b.{f.name}" for f in page.order)
            rows = self.raw.rows(
                f"SELECT {_BUILD_COLUMNS} FROM build b WHERE b.iteration_id = ? ORDER BY {order} LIMIT ?",
                (iteration_id, page.size + 1),
            )
            return self._attach_images([self._build(r) for r in rows])
        stmt = keyset(sa.select(t.build).where(t.build.c.iteration_id == iteration_id), self.COLUMNS, page)
        return self._attach_images([self._build(r) for r in self.conn.execute(stmt)])

    def cloud_providers(self, iteration_id: str) -> set[str]:
        rows = self.raw.rows(
            "SELECT DISTINCT cloud_provider FROM build WHERE iteration_id = ? AND cloud_provider != ''", (iteration_id,)
        )
        return {r.cloud_provider for r in rows}

    def for_iterations(self, iteration_ids: Sequence[str]) -> dict[str, list[Build]]:
        """Builds and their images in one query, each iteration's builds in creation order."""
        ids = list(iteration_ids)
        out: dict[str, list[Build]] = {}
        if not ids:
            return out
        rows = self.raw.rows(
            f"{_BUILD_WITH_IMAGES_SQL} WHERE b.iteration_id IN ({in_list(len(ids))}) {_BUILD_ORDER}", ids
        )
        for build in self._assemble(rows):
            out.setdefault(build.iteration_id, []).append(build)
        return out

    def _assemble(self, rows: Sequence[Any]) -> list[Build]:
        """Builds from rows of build LEFT JOIN image, ordered by build then image position."""
        builds: list[Build] = []
        for r in rows:
            if not builds or builds[-1].id != r.id:
                builds.append(self._build(r))
            if r.image_pk is not None:
                builds[-1].images.append(
                    Image(r.image_pk, r.id, r.image_image_id, r.image_region, from_us(r.image_created_at))
                )
        return builds

    def with_artifact(
        self, project_id: str, external_identifier: str, platform: str, region: str, page: PageRequest
    ) -> list[Build]:
        """The project's builds with an image of that id (and of that region and build platform, when
        given), with all their images, in the page's order."""
        image = t.image.c
        match = sa.select(image.id).where(image.build_id == t.build.c.id, image.image_id == external_identifier)
        if region:
            match = match.where(image.region == region)
        stmt = sa.select(t.build).where(t.build.c.project_id == project_id, match.exists())
        if platform:
            stmt = stmt.where(t.build.c.cloud_provider == platform)
        return self._attach_images([self._build(r) for r in self.conn.execute(keyset(stmt, self.COLUMNS, page))])

    def derived_from_bucket(self, project_id: str, bucket_id: str) -> list[Build]:
        # Two steps, each driven by an index, so that neither database can start from this bucket's
        # (possibly millions of) iterations: the builds of every bucket's latest iteration that name a
        # source, then which of those sources are iterations of this bucket. CROSS JOIN fixes the order on
        # SQLite, which otherwise walks every build of the project along ix_build_project to skip the sort
        # (1.7 s at 3M builds); PostgreSQL plans it like the inner join it is.
        candidates = self.raw.rows(
            f"SELECT {_BUILD_COLUMNS} FROM bucket cb CROSS JOIN build b WHERE b.iteration_id = cb.latest_iteration_id "
            "AND cb.project_id = ? AND b.project_id = ? AND b.source_iteration_id <> '' ORDER BY b.id",
            (project_id, project_id),
        )
        sources = sorted({r.source_iteration_id for r in candidates})
        if not sources:
            return []
        ours = {
            r.id
            for r in self.raw.rows(
                f"SELECT id FROM iteration WHERE id IN ({in_list(len(sources))}) AND bucket_id = ? AND project_id = ?",
                [*sources, bucket_id, project_id],
            )
        }
        return [self._build(r) for r in candidates if r.source_iteration_id in ours]

    @staticmethod
    def _values(build: Build) -> dict[str, Any]:
        return {
            "status": build.status.value,
            "packer_run_uuid": build.packer_run_uuid,
            "cloud_provider": build.cloud_provider,
            "source_image_id": build.source_image_id,
            "source_iteration_id": build.source_iteration_id,
            "source_channel_id": build.source_channel_id,
            "source_build_ulid": build.source_build_ulid,
            "labels": build.labels,
            "updated_at": to_us(build.updated_at),
            "heartbeat_at": to_us(build.heartbeat_at),
            # None: not read or not changed (no API clears it), so what is stored stays.
            **({"metadata": build.metadata} if build.metadata is not None else {}),
        }

    def metadata(self, build_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        if not build_ids:
            return {}
        rows = self.raw.rows(
            f"SELECT id, metadata FROM build WHERE id IN ({in_list(len(build_ids))}) AND metadata IS NOT NULL",
            list(build_ids),
        )
        return {r.id: dict(as_json(r.metadata)) for r in rows}

    def _write_images(self, build: Build, *, replace: bool) -> None:
        if replace:
            self.raw.execute("DELETE FROM image WHERE build_id = ?", (build.id,))
        self.raw.executemany(
            "INSERT INTO image (id, build_id, position, image_id, region, created_at) VALUES (?, ?, ?, ?, ?, ?)",
            [
                (img.id, build.id, n, img.image_id, img.region, to_us(img.created_at))
                for n, img in enumerate(build.images)
            ],
        )

    def add(self, build: Build) -> None:
        values = {
            "id": build.id,
            "iteration_id": build.iteration_id,
            "bucket_id": build.bucket_id,
            "project_id": build.project_id,
            "component_type": build.component_type,
            "created_at": to_us(build.created_at),
            **self._values(build),
        }
        if not self.raw.insert_unique("build", values):
            raise AlreadyExists(
                f"iteration {build.iteration_id} already has a build for component_type {build.component_type!r}"
            )
        self._write_images(build, replace=False)

    def save(self, build: Build, *, images_changed: bool, had_images: bool = True) -> None:
        self.raw.update("build", self._values(build), "id", build.id)
        if images_changed:
            self._write_images(build, replace=had_images)

    def delete(self, build_id: str) -> None:
        self.conn.execute(t.build.delete().where(t.build.c.id == build_id))


_CHANNEL_SELECT = sa.select(t.channel, t.bucket.c.slug.label("bucket_slug")).join(
    t.bucket, t.bucket.c.id == t.channel.c.bucket_id
)


class SqlChannels(_Repository):
    HISTORY_COLUMNS: Mapping[str, sa.ColumnElement[Any]] = {
        "created_at": t.channel_assignment.c.created_at,
        "id": t.channel_assignment.c.id,
    }

    @staticmethod
    def _channel(row: Row[Any]) -> Channel:
        return Channel(
            id=row.id,
            bucket_id=row.bucket_id,
            bucket_slug=row.bucket_slug,
            project_id=row.project_id,
            slug=row.slug,
            managed=bool(row.managed),
            restricted=bool(row.restricted),
            iteration_id=row.iteration_id,
            author_id=row.author_id,
            assigned_by=row.assigned_by,
            assigned_at=opt_from_us(row.assigned_at),
            created_at=from_us(row.created_at),
            updated_at=from_us(row.updated_at),
        )

    def get(self, bucket_id: str, slug: str, *, for_update: bool = False) -> Channel | None:
        lock = self.raw.for_update("c") if for_update else ""
        row = self.raw.first(
            "SELECT c.id, c.bucket_id, b.slug AS bucket_slug, c.project_id, c.slug, c.managed, c.restricted, "
            "c.iteration_id, c.author_id, c.assigned_by, c.assigned_at, c.created_at, c.updated_at "
            f"FROM channel c JOIN bucket b ON b.id = c.bucket_id WHERE c.bucket_id = ? AND c.slug = ?{lock}",
            (bucket_id, slug),
        )
        return self._channel(row) if row else None

    def get_by_id(self, project_id: str, channel_id: str) -> Channel | None:
        row = self.conn.execute(
            _CHANNEL_SELECT.where(t.channel.c.project_id == project_id, t.channel.c.id == channel_id)
        ).first()
        return self._channel(row) if row else None

    def for_bucket(self, bucket_id: str) -> list[Channel]:
        rows = self.conn.execute(
            _CHANNEL_SELECT.where(t.channel.c.bucket_id == bucket_id).order_by(t.channel.c.created_at, t.channel.c.id)
        )
        return [self._channel(r) for r in rows]

    def pointing_at(self, iteration_id: str) -> list[Channel]:
        """The channels pointing at an iteration, locked (PostgreSQL): callers move them."""
        rows = self.conn.execute(
            _CHANNEL_SELECT.where(t.channel.c.iteration_id == iteration_id)
            .order_by(t.channel.c.id)
            .with_for_update(of=t.channel)
        )
        return [self._channel(r) for r in rows]

    @staticmethod
    def _values(channel: Channel) -> dict[str, Any]:
        return {
            "restricted": channel.restricted,
            "iteration_id": channel.iteration_id,
            "author_id": channel.author_id,
            "assigned_by": channel.assigned_by,
            "assigned_at": None if channel.assigned_at is None else to_us(channel.assigned_at),
            "updated_at": to_us(channel.updated_at),
        }

    def add(self, channel: Channel) -> None:
        _insert(
            self.conn,
            t.channel,
            {
                "id": channel.id,
                "bucket_id": channel.bucket_id,
                "project_id": channel.project_id,
                "slug": channel.slug,
                "managed": channel.managed,
                "created_at": to_us(channel.created_at),
                **self._values(channel),
            },
            f"bucket {channel.bucket_slug!r} already has a channel {channel.slug!r}",
        )

    def save(self, channel: Channel) -> None:
        self.raw.update("channel", self._values(channel), "id", channel.id)

    def delete(self, channel_id: str) -> None:
        self.conn.execute(t.channel.delete().where(t.channel.c.id == channel_id))

    def add_assignment(self, assignment: ChannelAssignment) -> None:
        self.raw.insert(
            "channel_assignment",
            {
                "id": assignment.id,
                "channel_id": assignment.channel_id,
                "iteration_id": assignment.iteration_id,
                "iteration_fingerprint": assignment.iteration_fingerprint,
                "iteration_version": assignment.iteration_version,
                "author_id": assignment.author_id,
                "created_at": to_us(assignment.created_at),
            },
        )

    def history(self, channel_id: str, page: PageRequest) -> list[ChannelAssignment]:
        stmt = keyset(
            sa.select(t.channel_assignment).where(t.channel_assignment.c.channel_id == channel_id),
            self.HISTORY_COLUMNS,
            page,
        )
        return [
            ChannelAssignment(
                id=r.id,
                channel_id=r.channel_id,
                iteration_id=r.iteration_id,
                iteration_fingerprint=r.iteration_fingerprint,
                iteration_version=r.iteration_version,
                author_id=r.author_id,
                created_at=from_us(r.created_at),
            )
            for r in self.conn.execute(stmt)
        ]

    def history_count(self, channel_id: str) -> int:
        count = self.conn.execute(
            sa.select(sa.func.count()).where(t.channel_assignment.c.channel_id == channel_id)
        ).scalar_one()
        return int(count)


class SqlJobs(_Repository):
    def add(self, job: Job) -> None:
        self.conn.execute(
            t.job.insert().values(
                id=job.id,
                kind=job.kind,
                organization_id=job.organization_id,
                project_id=job.project_id,
                iteration_id=job.iteration_id,
                author_id=job.author_id,
                rollback_channels=job.rollback_channels,
                skip_descendants=job.skip_descendants,
                run_at=to_us(job.run_at),
                state=job.state,
                created_at=to_us(job.created_at),
            )
        )

    def cancel_for(self, iteration_id: str, now: datetime) -> None:
        self.conn.execute(
            t.job.update()
            .where(t.job.c.iteration_id == iteration_id, t.job.c.state == "pending")
            .values(state="cancelled", done_at=to_us(now))
        )

    def due(self, now: datetime, limit: int) -> list[Job]:
        rows = self.conn.execute(
            sa.select(t.job)
            .where(t.job.c.state == "pending", t.job.c.run_at <= to_us(now))
            .order_by(t.job.c.run_at, t.job.c.id)
            .limit(limit)
        )
        return [
            Job(
                id=r.id,
                kind=r.kind,
                organization_id=r.organization_id,
                project_id=r.project_id,
                iteration_id=r.iteration_id,
                author_id=r.author_id,
                rollback_channels=r.rollback_channels,
                skip_descendants=r.skip_descendants,
                run_at=from_us(r.run_at),
                created_at=from_us(r.created_at),
                state=r.state,
            )
            for r in rows
        ]

    def claim(self, job_id: str, now: datetime) -> bool:
        # The row lock (PostgreSQL) or the write lock (SQLite) makes exactly one claimant see rowcount 1;
        # a second one waits for the first to commit and then finds the job no longer pending.
        result = self.conn.execute(
            t.job.update()
            .where(t.job.c.id == job_id, t.job.c.state == "pending")
            .values(state="done", done_at=to_us(now))
        )
        return result.rowcount == 1


class _once(Generic[T]):  # noqa: N801 - used as a decorator, like functools.cached_property
    """functools.cached_property without its lock (Python 3.11 takes one on every first access, which
    costs more here than building the repository): the value goes in the instance's __dict__, which
    attribute lookup then finds first."""

    def __init__(self, make: Callable[[Any], T]) -> None:
        self.make = make
        self.name = make.__name__

    @overload
    def __get__(self, instance: None, owner: type[Any]) -> _once[T]: ...
    @overload
    def __get__(self, instance: object, owner: type[Any]) -> T: ...
    def __get__(self, instance: object | None, owner: type[Any]) -> T | _once[T]:
        if instance is None:
            return self
        value = instance.__dict__[self.name] = self.make(instance)
        return value


class SqlUnitOfWork:
    """The repositories of one transaction, each made when first used (a request uses three or four)."""

    def __init__(self, conn: Connection, vault: Vault | None = None, *, project_id: str = "") -> None:
        """project_id: the project the request names, whose stamp and registry are then read along with
        the principal."""
        self.conn = conn
        self._vault = vault
        # Only a well-formed id is looked up (PostgreSQL's text refuses a NUL; tenancy refuses the rest).
        self._prefetched = Prefetched(project_id) if project_id and is_uuid(project_id) else None
        self._raw = Raw(conn)

    @_once
    def tenants(self) -> SqlTenants:
        return SqlTenants(self.conn, self._prefetched, self._raw)

    @_once
    def principals(self) -> SqlPrincipals:
        return SqlPrincipals(self.conn, self._prefetched, self._raw)

    @_once
    def signing_keys(self) -> SqlSigningKeys:
        return SqlSigningKeys(self.conn, self._raw)

    @_once
    def registries(self) -> SqlRegistries:
        return SqlRegistries(self.conn, self._vault, self._prefetched, self._raw)

    @_once
    def buckets(self) -> SqlBuckets:
        return SqlBuckets(self.conn, self._raw)

    @_once
    def iterations(self) -> SqlIterations:
        return SqlIterations(self.conn, self._raw)

    @_once
    def builds(self) -> SqlBuilds:
        return SqlBuilds(self.conn, self._raw)

    @_once
    def channels(self) -> SqlChannels:
        return SqlChannels(self.conn, self._raw)

    @_once
    def jobs(self) -> SqlJobs:
        return SqlJobs(self.conn, self._raw)

    @_once
    def sboms(self) -> SqlSboms:
        from packyard.storage.sboms import SqlSboms  # noqa: PLC0415 - sboms.py imports this module's codecs

        return SqlSboms(self.conn, self._raw)
