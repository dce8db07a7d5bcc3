"""The interfaces the domain needs from storage. storage/ implements them for SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Protocol

from packyard.domain.models import (
    Bucket,
    Build,
    BuildStatus,
    Iteration,
    Organization,
    Principal,
    Project,
    Registry,
)
from packyard.domain.pagination import PageRequest


class Tenants(Protocol):
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
    def list(self) -> list[Principal]: ...
    def delete(self, principal_id: str) -> None: ...


class SigningKeys(Protocol):
    def current(self) -> tuple[str, bytes] | None: ...
    def get(self, key_id: str) -> bytes | None: ...
    def add(self, key_id: str, secret: bytes) -> None: ...


class Registries(Protocol):
    def get(self, project_id: str) -> Registry | None: ...
    def add(self, registry: Registry) -> None: ...
    def save(self, registry: Registry) -> None: ...
    def purge(self, project_id: str) -> None:
        """Delete the registry and every bucket, iteration, build and image of the project."""


class Buckets(Protocol):
    def get(self, project_id: str, slug: str, *, for_update: bool = False) -> Bucket | None: ...
    def get_by_id(self, bucket_id: str) -> Bucket | None: ...
    def list(self, project_id: str, page: PageRequest) -> list[Bucket]: ...
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
    def get_many(self, iteration_ids: Sequence[str]) -> dict[str, Iteration]: ...
    def latest_complete(self, bucket_id: str, *, excluding: str | None = None) -> Iteration | None: ...
    def list(self, bucket_id: str, page: PageRequest) -> list[Iteration]: ...
    def add(self, iteration: Iteration) -> None:
        """Insert; raises AlreadyExists when the fingerprint is taken in the bucket."""

    def save(self, iteration: Iteration) -> None: ...
    def delete(self, iteration_id: str) -> None: ...
    def build_states(self, iteration_ids: Sequence[str]) -> dict[str, list[tuple[str, BuildStatus, datetime]]]:
        """For each iteration: (component_type, stored status, heartbeat_at) of its builds."""


class Builds(Protocol):
    def get(self, project_id: str, build_id: str, *, for_update: bool = False) -> Build | None: ...
    def for_iteration(self, iteration_id: str, page: PageRequest | None = None) -> list[Build]:
        """Builds with their images, in page order (all of them without a page)."""

    def for_iterations(self, iteration_ids: Sequence[str]) -> dict[str, list[Build]]: ...

    def add(self, build: Build) -> None:
        """Insert with its images; raises AlreadyExists for a second build of one component_type."""

    def save(self, build: Build, *, images_changed: bool) -> None: ...
    def delete(self, build_id: str) -> None: ...


class UnitOfWork(Protocol):
    """One transaction. Opened and committed at the edge (HTTP request, CLI command); services never commit."""

    tenants: Tenants
    principals: Principals
    signing_keys: SigningKeys
    registries: Registries
    buckets: Buckets
    iterations: Iterations
    builds: Builds
