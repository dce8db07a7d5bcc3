"""The interfaces the domain (and auth) need from storage, which storage/ implements for SQLite and
PostgreSQL, and the one storage needs from auth: a Sealer for the secrets it keeps but must read back."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any, Protocol

from packyard.domain.models import (
    Bucket,
    Build,
    BuildStatus,
    Channel,
    ChannelAssignment,
    FailureCount,
    Iteration,
    Job,
    Organization,
    Principal,
    Project,
    Registry,
    Role,
    RunTaskBehaviour,
    Sbom,
    User,
    UserSession,
)
from packyard.domain.pagination import PageRequest


class SealError(Exception):
    """A sealed value that this server's secret can't open (the secret changed since it was sealed)."""


class Sealer(Protocol):
    """Seals the secrets storage keeps but must read back (the run-task HMAC keys). auth/vault.py's Vault
    is the one there is; storage is handed it when its unit of work is made."""

    def seal(self, plaintext: str) -> str: ...
    def open(self, sealed: str) -> str:
        """The plaintext of what seal() made; raises SealError when this server's secret can't open it."""
        ...


class Tenants(Protocol):
    def hold_setup(self) -> None:
        """Until the transaction ends, no other transaction sets up the default tenant (serve's first
        start on several replicas at once, each finding no organization)."""
        ...

    def add_organization(self, org: Organization) -> None: ...
    def get_organization(self, org_id: str) -> Organization | None: ...
    def list_organizations(self) -> list[Organization]: ...
    def add_project(self, project: Project) -> None: ...
    def get_project(self, organization_id: str, project_id: str) -> Project | None: ...
    def list_projects(self, organization_id: str) -> list[Project]: ...


class Principals(Protocol):
    def add(self, principal: Principal) -> None: ...
    def get(self, principal_id: str) -> Principal | None: ...
    def get_by_client_id(self, client_id: str) -> Principal | None: ...
    def all(self) -> list[Principal]: ...
    def delete(self, principal_id: str) -> None: ...


class SigningKeys(Protocol):
    def current(self) -> tuple[str, bytes] | None: ...
    def get(self, key_id: str) -> bytes | None: ...
    def add(self, key_id: str, secret: bytes) -> None: ...


class Registries(Protocol):
    def get(self, project_id: str) -> Registry | None: ...
    def add(self, registry: Registry) -> None: ...
    def save(self, registry: Registry) -> None: ...
    def hmac_key(self, project_id: str) -> str | None:
        """The run-task HMAC key in clear (storage keeps it sealed); None when there is none yet. Raises
        SealError when this server's secret can't open it."""

    def set_hmac_key(self, project_id: str, key: str) -> None: ...
    def for_run_task(self, run_task_api_id: str) -> Registry | None:
        """The registry whose run-task URL carries that id (the URL names nothing else)."""
        ...

    def run_task_behaviour(self, project_id: str) -> RunTaskBehaviour:
        """What the run task does with untracked images (read apart: only its config shows it)."""
        ...

    def set_run_task_behaviour(self, project_id: str, behaviour: RunTaskBehaviour) -> None: ...
    def purge(self, project_id: str) -> None:
        """Delete the registry and every bucket, iteration, build and image of the project."""


class Buckets(Protocol):
    def get(self, project_id: str, slug: str, *, for_update: bool = False) -> Bucket | None: ...
    def get_by_id(self, project_id: str, bucket_id: str) -> Bucket | None: ...
    def page(self, project_id: str, page: PageRequest) -> list[Bucket]: ...
    def matching(self, project_id: str, text: str, limit: int) -> list[Bucket]:
        """Buckets whose slug contains the text (any case), those that start with it first, then by slug."""
        ...

    def add(self, bucket: Bucket) -> None:
        """Insert; raises AlreadyExists when the slug is taken in the project."""

    def save(self, bucket: Bucket) -> None:
        """Write description, labels, platforms and updated_at; never the counters."""

    def set_latest(self, bucket: Bucket) -> None:
        """Write latest_iteration_id, latest_version, platforms and updated_at."""

    def delete(self, bucket_id: str) -> None: ...
    def next_version(self, bucket_id: str) -> int:
        """Atomically take the bucket's next incremental version (1, 2, 3, ...)."""

    def adjust_iteration_count(self, bucket_id: str, delta: int) -> None: ...


class Iterations(Protocol):
    def get(
        self,
        bucket_id: str,
        *,
        iteration_id: str | None = None,
        fingerprint: str | None = None,
        version: int | None = None,
        for_update: bool = False,
    ) -> Iteration | None: ...
    def get_in_project(self, project_id: str, iteration_id: str, *, for_update: bool = False) -> Iteration | None: ...
    def in_bucket(
        self,
        project_id: str,
        bucket_slug: str,
        *,
        iteration_id: str | None = None,
        fingerprint: str | None = None,
        for_update: bool = False,
    ) -> Iteration | None:
        """The iteration with that id (or else fingerprint) of the project's bucket of that slug."""
        ...

    def of_build(self, project_id: str, build_id: str, *, for_update: bool = False) -> Iteration | None:
        """The iteration of a build of the project (locked with for_update), in one statement."""
        ...

    def get_many(self, project_id: str, iteration_ids: Sequence[str]) -> dict[str, Iteration]:
        """The project's iterations of these ids; ids of another project's iterations find nothing."""

    def with_fingerprint(self, project_id: str, fingerprint: str, limit: int) -> list[Iteration]:
        """The project's iterations of that fingerprint (one per bucket at most), by bucket slug."""
        ...

    def latest_complete(self, bucket_id: str, *, valid_at: datetime | None = None) -> Iteration | None:
        """The complete iteration with the highest version; with valid_at, only those not revoked by then."""

    def page(self, bucket_id: str, page: PageRequest) -> list[Iteration]: ...
    def add(self, iteration: Iteration) -> None:
        """Insert; raises AlreadyExists when the fingerprint is taken in the bucket."""

    def save(self, iteration: Iteration) -> None: ...
    def delete(self, iteration_id: str) -> None: ...
    def children(self, project_id: str, iteration_ids: Sequence[str]) -> list[Iteration]:
        """Iterations of the project with a build whose source_iteration_id is one of these."""

    def with_descendants(self, project_id: str, iteration_ids: Sequence[str]) -> set[str]:
        """Those of these iterations that a build of the same project names as its source_iteration_id."""

    def inherited_from(self, project_id: str, ancestor_id: str) -> list[Iteration]: ...

    def build_states(self, iteration_ids: Sequence[str]) -> dict[str, list[tuple[str, BuildStatus, datetime]]]:
        """For each iteration: (component_type, stored status, heartbeat_at) of its builds."""


class Builds(Protocol):
    def for_change(self, project_id: str, build_id: str) -> tuple[Iteration, Build] | None:
        """A build and its iteration (None when the build doesn't exist in the project), both locked
        for a change, the iteration first: every change to an iteration's builds is serialized on it."""
        ...

    def get(self, project_id: str, build_id: str, *, for_update: bool = False) -> Build | None: ...

    def for_iteration(self, iteration_id: str, page: PageRequest | None = None) -> list[Build]:
        """Builds with their images, in page order (all of them without a page)."""

    def for_iterations(self, iteration_ids: Sequence[str]) -> dict[str, list[Build]]: ...
    def cloud_providers(self, iteration_id: str) -> set[str]:
        """The non-empty cloud providers of an iteration's builds (the bucket's platforms)."""
        ...

    def derived_from_bucket(self, project_id: str, bucket_id: str) -> list[Build]:
        """Builds of the latest complete iteration of each bucket of the project whose source_iteration_id is
        an iteration of this bucket: what makes those buckets its children. Costs what the project's
        buckets cost, not what this bucket's iterations do."""

    def add(self, build: Build) -> None:
        """Insert with its images; raises AlreadyExists for a second build of one component_type."""

    def save(self, build: Build, *, images_changed: bool, had_images: bool = True) -> None:
        """Write the build's fields, and its images when images_changed (replacing those it had, if any)."""
        ...

    def delete(self, build_id: str) -> None: ...
    def with_artifact(
        self, project_id: str, external_identifier: str, platform: str, region: str, page: PageRequest
    ) -> list[Build]:
        """The project's builds with an image of that id (region and platform when given), a page of them."""
        ...

    def metadata(self, build_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        """The stored metadata of those builds that have any (read apart: few answers show it)."""
        ...


class Sboms(Protocol):
    def add(self, sbom: Sbom) -> None:
        """Raises AlreadyExists when the build has an SBOM of that name."""
        ...

    def for_build(self, build_id: str) -> list[Sbom]:
        """The build's SBOMs, oldest first, without their content."""
        ...

    def get(self, build_id: str, name: str) -> Sbom | None: ...
    def get_by_id(self, sbom_id: str) -> Sbom | None:
        """With its content: for a download link, which names the SBOM and nothing else."""
        ...


class Channels(Protocol):
    def get(self, bucket_id: str, slug: str, *, for_update: bool = False) -> Channel | None: ...
    def get_by_id(self, project_id: str, channel_id: str) -> Channel | None: ...
    def for_bucket(self, bucket_id: str) -> list[Channel]: ...
    def pointing_at(self, iteration_id: str, *, for_update: bool = False) -> list[Channel]: ...
    def add(self, channel: Channel) -> None:
        """Insert; raises AlreadyExists when the slug is taken in the bucket."""

    def save(self, channel: Channel) -> None: ...
    def delete(self, channel_id: str) -> None: ...
    def add_assignment(self, assignment: ChannelAssignment) -> None: ...
    def history(self, channel_id: str, page: PageRequest) -> list[ChannelAssignment]: ...
    def history_count(self, channel_id: str, limit: int | None = None) -> int:
        """The channel's assignments, counted up to `limit` when one is given."""
        ...


class Jobs(Protocol):
    def add(self, job: Job) -> None: ...
    def cancel_for(self, iteration_id: str, now: datetime) -> None:
        """Cancel the pending jobs of an iteration (its revocation was restored or rescheduled)."""

    def for_iteration(self, iteration_id: str, limit: int) -> list[Job]:
        """An iteration's scheduled revocations, pending, done or cancelled, newest first."""
        ...

    def due(self, now: datetime, limit: int) -> list[Job]: ...
    def claim(self, job_id: str, now: datetime) -> bool:
        """Mark a pending job done; True for exactly one caller. The caller's transaction does the work."""


class FailureStore(Protocol):
    """Where the token endpoint's FailureThrottle (auth/service.py) keeps its counts: a table shared by
    every process on the database. Keys are (source, client id); client id "" is the source's count over
    all ids."""

    def read(self, source: str, client_id: str) -> dict[str, FailureCount]: ...
    def add_failure(
        self,
        source: str,
        client_id: str,
        now: datetime,
        *,
        limit: int,
        window: timedelta,
        lockout: timedelta,
        keep: timedelta,
    ) -> None: ...
    def clear(self, source: str, client_id: str) -> None: ...
    def sweep(self, now: datetime) -> None: ...


class Users(Protocol):
    """The console's people, their sessions and one-time links (storage/repositories/users.py). Session
    and link ids are stored as SHA-256 hashes; the callers (auth/accounts.py) hash them."""

    def add(self, user: User) -> None:
        """Raise AlreadyExists when a user has the email."""

    def get(self, user_id: str) -> User | None: ...
    def get_by_email(self, email: str) -> User | None: ...
    def get_by_sso_subject(self, subject: str) -> User | None: ...
    def set_sso(self, user_id: str, *, subject: str, email: str, role: Role, project_id: str | None) -> None:
        """Bind the user to the single sign-on subject and take the provider's email, role and scope."""

    def list_(self, organization_id: str) -> list[User]: ...
    def set_password(self, user_id: str, password_hash: str) -> None: ...
    def delete(self, user_id: str) -> None: ...
    def add_session(
        self, id_hash: str, user_id: str, csrf_token: str, created_at: datetime, expires_at: datetime
    ) -> None: ...
    def session(self, id_hash: str, now: datetime) -> UserSession | None:
        """The unexpired session of that id hash, with its user; None otherwise."""

    def delete_session(self, id_hash: str) -> None: ...
    def delete_sessions_of(self, user_id: str) -> None: ...
    def sweep_sessions(self, now: datetime) -> None: ...
    def add_link(self, id_hash: str, user_id: str, expires_at: datetime) -> None: ...
    def take_link(self, id_hash: str, now: datetime) -> User | None:
        """The user of an unexpired link, deleting the link (used once); None otherwise."""

    def link_user(self, id_hash: str, now: datetime) -> User | None:
        """The user of an unexpired link, leaving it in place (the form that uses it is still to come)."""


class UnitOfWork(Protocol):
    """One transaction. Opened and committed at the edge (HTTP request, CLI command); services never commit."""

    @property
    def tenants(self) -> Tenants: ...
    @property
    def principals(self) -> Principals: ...
    @property
    def signing_keys(self) -> SigningKeys: ...
    @property
    def registries(self) -> Registries: ...
    @property
    def buckets(self) -> Buckets: ...
    @property
    def iterations(self) -> Iterations: ...
    @property
    def builds(self) -> Builds: ...
    @property
    def channels(self) -> Channels: ...
    @property
    def jobs(self) -> Jobs: ...
    @property
    def sboms(self) -> Sboms: ...
    @property
    def users(self) -> Users: ...
