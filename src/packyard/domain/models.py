"""Domain objects. Neither wire format lives here: the API modules project these to HCP's shapes.

The values of the stored enums (BuildStatus, TemplateType, RevocationType, Tier) are the text in the
database, so they stay as they are; no API shows them as they are: each tree's wire module maps every
enum to its own text with an explicit table."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any


class BuildStatus(StrEnum):
    UNSET = "UNSET"
    RUNNING = "RUNNING"
    DONE = "DONE"
    CANCELLED = "CANCELLED"
    FAILED = "FAILED"


class TemplateType(StrEnum):
    UNSET = "TEMPLATE_TYPE_UNSET"
    HCL2 = "HCL2"
    JSON = "JSON"


class RevocationType(StrEnum):
    UNSET = "UNSET"
    MANUAL = "MANUAL"
    INHERITED = "INHERITED"


class Tier(StrEnum):
    UNSET = "UNSET"
    PRIVATE_BETA = "PRIVATE_BETA"
    STANDARD = "STANDARD"
    PLUS = "PLUS"


class RunTaskBehaviour(StrEnum):
    """What the Terraform run task does with an image packyard doesn't know (stored text)."""

    UNSET = ""
    FAIL = "FAIL"
    WARN = "WARN"


class SbomFormat(StrEnum):
    SPDX = "SPDX"
    CYCLONEDX = "CYCLONEDX"


class Role(StrEnum):
    ADMIN = "admin"
    CONTRIBUTOR = "contributor"
    VIEWER = "viewer"


class Permission(StrEnum):
    READ = "read"
    WRITE = "write"
    ADMIN = "admin"


ROLE_PERMISSIONS: dict[Role, frozenset[Permission]] = {
    Role.VIEWER: frozenset({Permission.READ}),
    Role.CONTRIBUTOR: frozenset({Permission.READ, Permission.WRITE}),
    Role.ADMIN: frozenset({Permission.READ, Permission.WRITE, Permission.ADMIN}),
}


@dataclass(slots=True)
class Organization:
    id: str
    name: str
    created_at: datetime


@dataclass(slots=True)
class Project:
    id: str
    organization_id: str
    name: str
    created_at: datetime


@dataclass(slots=True)
class Principal:
    id: str
    client_id: str
    name: str
    organization_id: str
    project_id: str | None
    role: Role
    secret_hash: str
    created_at: datetime

    def can(self, permission: Permission) -> bool:
        return permission in ROLE_PERMISSIONS[self.role]


@dataclass(frozen=True, slots=True)
class User:
    """A person who signs in to the web console (console/), separate from the API's service principals.
    In the domain a user acts as a Principal of the same role and scope (`actor`), so the console's
    writes go through the same services and permissions as the API's."""

    id: str
    email: str
    organization_id: str
    project_id: str | None
    role: Role
    password_hash: str  # argon2id (auth/accounts.py); "" until the one-time link sets one
    created_at: datetime
    sso_subject: str | None = None  # the single sign-on provider's `sub`, once signed in through it

    def actor(self) -> Principal:
        return Principal(
            id=self.id,
            client_id=self.email,  # what the domain records as the author of a change
            name=self.email,
            organization_id=self.organization_id,
            project_id=self.project_id,
            role=self.role,
            secret_hash="",
            created_at=self.created_at,
        )


@dataclass(frozen=True, slots=True)
class UserSession:
    """A signed-in browser: whose, its form token (CSRF) and when it ends."""

    user: User
    csrf_token: str
    expires_at: datetime


@dataclass(slots=True)
class Registry:
    id: str
    organization_id: str
    project_id: str
    feature_tier: Tier
    activated: bool
    created_at: datetime
    updated_at: datetime
    run_task_api_id: str
    deactivated_at: datetime | None = None


@dataclass(slots=True)
class Bucket:
    id: str
    project_id: str
    slug: str
    created_at: datetime
    updated_at: datetime
    description: str = ""
    labels: dict[str, str] = field(default_factory=dict)
    platforms: list[str] = field(default_factory=list)
    latest_iteration_id: str | None = None
    latest_version: int = 0
    iteration_count: int = 0


@dataclass(slots=True)
class Image:
    id: str
    build_id: str
    image_id: str
    region: str
    created_at: datetime


@dataclass(slots=True)
class Build:
    id: str
    iteration_id: str
    bucket_id: str
    project_id: str
    component_type: str
    status: BuildStatus
    created_at: datetime
    updated_at: datetime
    heartbeat_at: datetime
    packer_run_uuid: str = ""
    cloud_provider: str = ""
    source_image_id: str = ""
    source_iteration_id: str = ""
    source_channel_id: str = ""
    source_build_ulid: str = ""
    labels: dict[str, str] = field(default_factory=dict)
    images: list[Image] = field(default_factory=list)
    # What the client says about the run (Packer and plugin versions, OS, VCS, CI), kept as it came.
    metadata: dict[str, Any] | None = None


class IterationStatus(StrEnum):
    """How an iteration looks from a channel's history (domain/status.py). Computed, never stored; each
    API tree's wire module words it (2021-04-30: ITERATION_REVOKED, ...)."""

    UNSET = "unset"
    RUNNING = "running"
    CANCELLED = "cancelled"
    FAILED = "failed"
    REVOKED = "revoked"
    REVOCATION_SCHEDULED = "revocation_scheduled"
    ACTIVE = "active"
    # Builds exist, none failed, cancelled or running, yet not all are DONE (Packer left some out).
    INCOMPLETE = "incomplete"


@dataclass(slots=True)
class Iteration:
    id: str
    bucket_id: str
    bucket_slug: str
    project_id: str
    fingerprint: str
    created_at: datetime
    updated_at: datetime
    author_id: str = ""
    incremental_version: int = 0
    complete: bool = False
    template_type: TemplateType = TemplateType.UNSET
    revoke_at: datetime | None = None
    revocation_message: str = ""
    revocation_author: str = ""
    revocation_type: RevocationType = RevocationType.UNSET
    revocation_inherited_from: str | None = None
    # Its own scheduled revocation, kept aside while an ancestor's earlier revocation overrides it.
    own_revoke_at: datetime | None = None
    own_revocation_message: str = ""
    own_revocation_author: str = ""
    builds: list[Build] = field(default_factory=list)
    # Filled by the services that return iterations; not stored.
    has_descendants: bool = False
    revoked_ancestor: Iteration | None = None
    status: IterationStatus = IterationStatus.UNSET  # domain/status.py, at the request's time


@dataclass(slots=True)
class Channel:
    id: str
    bucket_id: str
    bucket_slug: str
    project_id: str
    slug: str
    created_at: datetime
    updated_at: datetime
    managed: bool = False
    restricted: bool = False
    iteration_id: str | None = None
    author_id: str = ""
    assigned_by: str = ""
    assigned_at: datetime | None = None
    iteration: Iteration | None = None


@dataclass(slots=True)
class ChannelAssignment:
    id: str
    channel_id: str
    created_at: datetime
    iteration_id: str | None = None
    iteration_fingerprint: str = ""
    iteration_version: int = 0
    author_id: str = ""
    status: IterationStatus = IterationStatus.UNSET


@dataclass(slots=True)
class Sbom:
    """A software bill of materials a build uploaded while it ran: the document (SPDX or CycloneDX JSON),
    kept zstd-compressed as it came, with its decompressed size."""

    id: str
    build_id: str
    project_id: str
    name: str
    format: SbomFormat
    size: int
    created_at: datetime
    content: bytes = b""  # left empty by listings


@dataclass(slots=True)
class Job:
    """A scheduled revocation's side effects, run once when it falls due."""

    id: str
    kind: str
    organization_id: str
    project_id: str
    iteration_id: str
    run_at: datetime
    created_at: datetime
    author_id: str = ""
    rollback_channels: bool = False
    skip_descendants: bool = False
    state: str = "pending"


@dataclass(frozen=True, slots=True)
class FailureCount:
    """Failed client authentications counted under one key of the token endpoint's throttle."""

    failures: int
    first_at: datetime
    locked_until: datetime
