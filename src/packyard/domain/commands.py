"""Typed, wire-neutral inputs of the domain's operations: what an API tree's decode step makes of a
request (path parameters, query and body), in the domain's words. No field name, enum text or route of
any API version appears here; each tree maps its own onto these."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from packyard.domain.models import BuildStatus, SbomFormat, TemplateType, Tier

IDENTIFIERS = ("iteration_id", "fingerprint", "incremental_version")


@dataclass(slots=True)
class IterationRef:
    """The three ways to name an iteration of a bucket; empty string or 0 means not given."""

    iteration_id: str = ""
    fingerprint: str = ""
    incremental_version: int = 0

    def given(self, name: str) -> bool:
        return bool(getattr(self, name))

    def any(self) -> bool:
        return any(self.given(n) for n in IDENTIFIERS)

    def only(self, name: str) -> IterationRef:
        """This reference reduced to one of its identifiers."""
        return IterationRef(**{name: getattr(self, name)})

    def first(self) -> IterationRef:
        """The first identifier given (id, then fingerprint, then version): the one a lookup uses."""
        return next((self.only(n) for n in IDENTIFIERS if self.given(n)), IterationRef())


@dataclass(frozen=True, slots=True)
class PageQuery:
    """One page of a listing: its size (0: the default), a token from the previous answer, an order."""

    size: int = 0
    next_token: str = ""
    previous_token: str = ""
    order_by: Sequence[str] = ()


@dataclass(slots=True)
class ImageInput:
    image_id: str
    region: str


@dataclass(slots=True)
class BuildChanges:
    """A partial update: None (or an empty string) means unchanged, as HCP's clients send it."""

    status: BuildStatus | None = None
    cloud_provider: str = ""
    packer_run_uuid: str = ""
    images: Sequence[ImageInput] | None = None
    labels: Mapping[str, str] | None = None
    source_image_id: str = ""
    source_iteration_id: str = ""
    source_channel_id: str = ""
    component_type: str = ""
    metadata: Mapping[str, Any] | None = None


@dataclass(slots=True)
class IterationChanges:
    """What an update asks of an iteration. A revocation is at a time (revoke_at) or after a delay from
    the request's clock (revoke_after), not both; restore combines with neither."""

    complete: bool = False
    revoke_at: datetime | None = None
    revoke_after: timedelta | None = None
    revocation_message: str = ""
    restore: bool = False
    skip_descendants_revocation: bool = False
    rollback_channels: bool = False


# ---- registry


@dataclass(frozen=True, slots=True)
class RegistryChange:
    tier: Tier = Tier.UNSET
    activate: bool = False


@dataclass(frozen=True, slots=True)
class RegistryDeletion:
    hard: bool = False


@dataclass(frozen=True, slots=True)
class RunTaskQuery:
    task_type: str
    base_url: str  # where clients reach this server, for the run task's URL


# ---- buckets


@dataclass(frozen=True, slots=True)
class BucketName:
    slug: str
    bucket_id: str = ""


@dataclass(frozen=True, slots=True)
class NewBucket:
    slug: str
    description: str = ""
    labels: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class BucketChange:
    slug: str
    description: str | None = None
    labels: Mapping[str, str] | None = None
    platforms: Sequence[str] | None = None


@dataclass(frozen=True, slots=True)
class BucketListing:
    page: PageQuery


# ---- iterations (versions)


@dataclass(frozen=True, slots=True)
class NewIteration:
    bucket_slug: str
    fingerprint: str
    template_type: TemplateType = TemplateType.UNSET


@dataclass(frozen=True, slots=True)
class IterationQuery:
    """An iteration of a bucket, named by one of id, fingerprint or incremental version."""

    bucket_slug: str
    iteration_id: str = ""
    fingerprint: str = ""
    version: int = 0
    metadata: bool = False  # the answer shows the builds' metadata: read it too


@dataclass(frozen=True, slots=True)
class IterationListing:
    bucket_slug: str
    page: PageQuery
    with_builds: bool = False  # each iteration with its builds, not only their statuses


@dataclass(frozen=True, slots=True)
class IterationChange:
    iteration_id: str
    changes: IterationChanges
    bucket_slug: str = ""  # when given, the iteration must be of this bucket
    fingerprint: str = ""  # instead of the id: the bucket's iteration of this fingerprint


@dataclass(frozen=True, slots=True)
class IterationDeletion:
    iteration_id: str
    bucket_slug: str = ""
    rollback_channels: bool = False
    fingerprint: str = ""  # instead of the id: the bucket's iteration of this fingerprint


@dataclass(frozen=True, slots=True)
class VersionRef:
    """An iteration named as 2023-01-01 names it: its bucket and its fingerprint."""

    bucket_slug: str
    fingerprint: str


@dataclass(frozen=True, slots=True)
class BuildRef:
    """A build inside the iteration its bucket and fingerprint name."""

    version: VersionRef
    build_id: str


@dataclass(frozen=True, slots=True)
class BuildListing:
    bucket_slug: str
    iteration_id: str
    page: PageQuery
    fingerprint: str = ""  # instead of the id: the bucket's iteration of this fingerprint
    metadata: bool = False  # the answer shows the builds' metadata: read it too


@dataclass(frozen=True, slots=True)
class BuildChange:
    build_id: str
    changes: BuildChanges
    within: VersionRef | None = None  # the build must be of this bucket's iteration of this fingerprint
    metadata: bool = False  # the answer shows the build's metadata: read it too


# ---- builds


@dataclass(frozen=True, slots=True)
class NewBuild:
    bucket_slug: str
    iteration_id: str
    changes: BuildChanges
    fingerprint: str = ""  # instead of the id: the bucket's iteration of this fingerprint


@dataclass(frozen=True, slots=True)
class BuildName:
    build_id: str


@dataclass(frozen=True, slots=True)
class NewSbom:
    """An SBOM for a build: `content` is the zstd-compressed document, already read and found to be
    `format` with at least one package (the decode step's work); `size` its decompressed length."""

    build: BuildRef
    name: str
    format: SbomFormat
    content: bytes
    size: int


@dataclass(frozen=True, slots=True)
class SbomName:
    build: BuildRef
    name: str


# ---- channels


@dataclass(frozen=True, slots=True)
class ChannelName:
    bucket_slug: str
    slug: str


@dataclass(frozen=True, slots=True)
class NewChannel:
    bucket_slug: str
    slug: str
    ref: IterationRef
    restricted: bool | None = None  # None: not given (unrestricted)


class ChannelField(StrEnum):
    """What of a channel an update may change."""

    ITERATION = "iteration"
    RESTRICTION = "restriction"


@dataclass(frozen=True, slots=True)
class ChannelChange:
    """An update of a channel. `fields` lists what changes: the iteration (to the one every identifier
    of `ref` names, or to none when `ref` names none) and the restriction (`restricted` then says
    which). Without a list (None), what the request gives changes: the iteration its first identifier
    names, or none at all (a managed channel is then left as it is, so it must change its
    restriction), and the restriction when `restricted` is given."""

    bucket_slug: str
    slug: str
    ref: IterationRef
    restricted: bool | None = None
    fields: frozenset[ChannelField] | None = None


@dataclass(frozen=True, slots=True)
class ChannelCopy:
    """Point the target channel where the source channel points."""

    bucket_slug: str
    source: str
    target: str


@dataclass(frozen=True, slots=True)
class ChannelHistoryQuery:
    bucket_slug: str
    slug: str
    page: PageQuery


# ---- ancestry


@dataclass(frozen=True, slots=True)
class AncestryQuery:
    bucket_slug: str
    kind: str = ""
    channel: str = ""
    iteration_id: str = ""
    version: int = 0
    fingerprint: str = ""
    page: PageQuery = PageQuery()


# ---- search


@dataclass(frozen=True, slots=True)
class ArtifactQuery:
    """The builds that produced an image of this external id (an AMI id, say), on a platform (cloud
    provider) and in a region when given."""

    external_identifier: str
    platform: str
    region: str
    page: PageQuery


# ---- tenants


@dataclass(frozen=True, slots=True)
class ProjectScope:
    """Where to list projects: the kind of scope (empty or an organization) and its id (empty: the
    principal's organization)."""

    kind: str = ""
    scope_id: str = ""
