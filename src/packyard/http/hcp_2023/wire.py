"""HashiCorp's 2023-01-01 wire shapes, and the projections of domain objects onto them.

Zero values are left out (omit_defaults), except the arrays and enums HCP's Go clients always expect
(a version's builds, a build's artifacts, a bucket's platforms, every status); those are declared
without defaults so they are always written. int64 travels as a string. The words differ from
2021-04-30 (version, artifact, platform, name), the objects are the same: a version's id is its
2021 iteration's id.
"""

from __future__ import annotations

from typing import Any

from packyard.domain import models as m
from packyard.domain.ancestry import AncestryStatus
from packyard.http.wire import Base, Location, Operation, Pagination, location, ts


class Artifact(Base, kw_only=True):
    id: str = ""
    external_identifier: str = ""
    region: str = ""
    created_at: str = ""


class BuildMetadata(Base, kw_only=True):
    packer: dict[str, Any] | None = None
    cicd: dict[str, Any] | None = None
    vcs: dict[str, Any] | None = None


class Build(Base, kw_only=True):
    id: str = ""
    version_id: str = ""
    component_type: str = ""
    packer_run_uuid: str = ""
    artifacts: list[Artifact]
    platform: str = ""
    status: str  # always: Packer dereferences it
    created_at: str = ""
    updated_at: str = ""
    source_external_identifier: str = ""
    labels: dict[str, str] = {}
    metadata: BuildMetadata | None = None


class RevokedAncestor(Base, kw_only=True):
    href: str = ""
    bucket_name: str = ""
    version_name: str = ""
    version_id: str = ""
    version_fingerprint: str = ""


class Version(Base, kw_only=True):
    id: str = ""
    bucket_name: str = ""
    name: str  # always: v0 until complete, then v1, v2, ... (Packer judges completion by it)
    status: str  # always: Packer and the provider dereference it
    author_id: str = ""
    created_at: str = ""
    updated_at: str = ""
    fingerprint: str = ""
    builds: list[Build]
    revoke_at: str = ""
    revocation_message: str = ""
    revocation_author: str = ""
    revocation_type: str = ""
    revocation_inherited_from: RevokedAncestor | None = None
    has_descendants: bool = False
    template_type: str = ""


class AncestrySummary(Base, kw_only=True):
    href: str = ""
    status: str  # UNDETERMINED is a real answer here


class Bucket(Base, kw_only=True):
    id: str = ""
    name: str = ""
    location: Location  # always: terraform-provider-hcp dereferences it
    latest_version: Version | None = None
    created_at: str = ""
    updated_at: str = ""
    platforms: list[str]
    description: str = ""
    labels: dict[str, str] = {}
    version_count: str = ""
    parents: AncestrySummary | None = None
    children: AncestrySummary | None = None
    resource_name: str = ""


class Channel(Base, kw_only=True):
    id: str = ""
    name: str = ""
    bucket_name: str = ""
    author_id: str = ""
    created_at: str = ""
    updated_at: str = ""
    version: Version | None = None
    managed: bool = False
    restricted: bool = False


class ChannelAssignment(Base, kw_only=True):
    version: Version | None = None
    author_id: str = ""
    assigned_at: str = ""


class RunTaskConfig(Base, kw_only=True):
    api_id: str = ""
    hmac_key: str = ""
    on_untracked_image: str = ""


class BillingDeprovision(Base, kw_only=True):
    at: str = ""
    reason: str  # USER_REQUEST; the enum's first value is a real one, so it is always written
    message: str = ""


class RegistryConfig(Base, kw_only=True):
    feature_tier: str = ""
    activated: bool = False
    billing_deprovision: BillingDeprovision | None = None
    tfc_run_task_config: RunTaskConfig | None = None


class Registry(Base, kw_only=True):
    id: str = ""
    location: Location | None = None
    config: RegistryConfig | None = None
    created_at: str = ""
    updated_at: str = ""


class ChannelVersion(Base, kw_only=True):
    id: str = ""
    name: str = ""
    fingerprint: str = ""


class Parent(Base, kw_only=True):
    bucket_name: str = ""
    version_name: str = ""
    version_id: str = ""
    version_fingerprint: str = ""
    channel_name: str = ""
    channel_version: ChannelVersion | None = None


class Child(Base, kw_only=True):
    bucket_name: str = ""
    version_name: str = ""
    version_id: str = ""
    version_fingerprint: str = ""


class BucketAncestry(Base, kw_only=True):
    status: str
    parent: Parent | None = None
    child: Child | None = None


# ---- responses -------------------------------------------------------------------------------


class BucketResponse(Base, kw_only=True):
    bucket: Bucket


class ListBucketsResponse(Base, kw_only=True):
    buckets: list[Bucket]
    pagination: Pagination | None = None


class VersionResponse(Base, kw_only=True):
    version: Version


class UpdateVersionResponse(Base, kw_only=True):
    version: Version
    operation: Operation | None = None  # when a revocation reaches descendants


class ListVersionsResponse(Base, kw_only=True):
    versions: list[Version]
    pagination: Pagination | None = None


class BuildResponse(Base, kw_only=True):
    build: Build


class ListBuildsResponse(Base, kw_only=True):
    location: Location | None = None
    pagination: Pagination | None = None
    builds: list[Build]


class ChannelResponse(Base, kw_only=True):
    channel: Channel


class ListChannelsResponse(Base, kw_only=True):
    channels: list[Channel]


class AssignChannelVersionResponse(Base, kw_only=True):
    fingerprint: str = ""
    version: Version | None = None
    source_channel: Channel | None = None
    target_channel: Channel | None = None


class ListChannelAssignmentHistoryResponse(Base, kw_only=True):
    history: list[ChannelAssignment]
    count: int = 0
    pagination: Pagination | None = None


class ListBucketAncestryResponse(Base, kw_only=True):
    relations: list[BucketAncestry]
    total_count: int = 0
    pagination: Pagination | None = None


class RegistryResponse(Base, kw_only=True):
    registry: Registry


class RegistryOperationResponse(Base, kw_only=True):
    registry: Registry | None = None
    operation: Operation | None = None


# ---- enums: the 2023 texts of the domain's values, in the order of HashiCorp's enums (the index is
# the enum's number, which grpc-gateway accepts too)

BUILD_STATUS: dict[str, m.BuildStatus] = {
    "BUILD_UNSET": m.BuildStatus.UNSET,
    "BUILD_RUNNING": m.BuildStatus.RUNNING,
    "BUILD_DONE": m.BuildStatus.DONE,
    "BUILD_CANCELLED": m.BuildStatus.CANCELLED,
    "BUILD_FAILED": m.BuildStatus.FAILED,
}
TEMPLATE_TYPE: dict[str, m.TemplateType] = {
    "TEMPLATE_TYPE_UNSET": m.TemplateType.UNSET,
    "HCL2": m.TemplateType.HCL2,
    "JSON": m.TemplateType.JSON,
}
TIER: dict[str, m.Tier] = {
    "UNSET": m.Tier.UNSET,
    "STANDARD": m.Tier.STANDARD,
    "PLUS": m.Tier.PLUS,
}
REVOCATION_TYPE: dict[str, m.RevocationType] = {
    "REVOCATION_TYPE_UNSET": m.RevocationType.UNSET,
    "MANUAL": m.RevocationType.MANUAL,
    "INHERITED": m.RevocationType.INHERITED,
}
# A version's status; a version with no builds yet is RUNNING (Packer is about to add them).
VERSION_STATUS: dict[str, m.IterationStatus] = {
    "VERSION_UNSET": m.IterationStatus.UNSET,
    "VERSION_RUNNING": m.IterationStatus.RUNNING,
    "VERSION_CANCELLED": m.IterationStatus.CANCELLED,
    "VERSION_FAILED": m.IterationStatus.FAILED,
    "VERSION_REVOKED": m.IterationStatus.REVOKED,
    "VERSION_REVOCATION_SCHEDULED": m.IterationStatus.REVOCATION_SCHEDULED,
    "VERSION_ACTIVE": m.IterationStatus.ACTIVE,
    "VERSION_INCOMPLETE": m.IterationStatus.INCOMPLETE,
}
ANCESTRY_STATUS: dict[str, AncestryStatus] = {
    "UNDETERMINED": AncestryStatus.UNDETERMINED,
    "UP_TO_DATE": AncestryStatus.UP_TO_DATE,
    "OUT_OF_DATE": AncestryStatus.OUT_OF_DATE,
}
# The other way: what an answer shows for each value. An enum's UNSET is left out of answers, but a
# version's status is always written, and one without builds is shown RUNNING.
BUILD_STATUS_TEXT = {v: k for k, v in BUILD_STATUS.items()}
TEMPLATE_TYPE_TEXT = {v: k for k, v in TEMPLATE_TYPE.items()} | {m.TemplateType.UNSET: ""}
# PRIVATE_BETA is a 2021 tier that 2023 has no word for: such a registry reads as STANDARD.
TIER_TEXT = {v: k for k, v in TIER.items()} | {m.Tier.UNSET: "", m.Tier.PRIVATE_BETA: "STANDARD"}
REVOCATION_TYPE_TEXT = {v: k for k, v in REVOCATION_TYPE.items()} | {m.RevocationType.UNSET: ""}
VERSION_STATUS_TEXT = {v: k for k, v in VERSION_STATUS.items()} | {m.IterationStatus.UNSET: "VERSION_RUNNING"}
ANCESTRY_STATUS_TEXT = {v: k for k, v in ANCESTRY_STATUS.items()}


# ---- projections -----------------------------------------------------------------------------


def api_prefix(org_id: str, project_id: str) -> str:
    return f"/packer/2023-01-01/organizations/{org_id}/projects/{project_id}"


def version_name(it: m.Iteration) -> str:
    """v0 until the version is complete, then v<n> with the bucket's number for it."""
    return f"v{it.incremental_version}" if it.complete else "v0"


def artifact(img: m.Image) -> Artifact:
    return Artifact(id=img.id, external_identifier=img.image_id, region=img.region, created_at=ts(img.created_at))


def metadata(value: dict[str, Any] | None) -> BuildMetadata | None:
    if value is None:
        return None

    def part(name: str) -> dict[str, Any] | None:
        found = value.get(name)
        return found if isinstance(found, dict) and found else None

    return BuildMetadata(packer=part("packer"), cicd=part("cicd"), vcs=part("vcs"))


def build(b: m.Build) -> Build:
    return Build(
        id=b.id,
        version_id=b.iteration_id,
        component_type=b.component_type,
        packer_run_uuid=b.packer_run_uuid,
        artifacts=[artifact(i) for i in b.images],
        platform=b.cloud_provider,
        status=BUILD_STATUS_TEXT[b.status],
        created_at=ts(b.created_at),
        updated_at=ts(b.updated_at),
        source_external_identifier=b.source_image_id,
        labels=b.labels,
        metadata=metadata(b.metadata),
    )


def revoked_ancestor(it: m.Iteration, org_id: str) -> RevokedAncestor | None:
    anc = it.revoked_ancestor
    if anc is None:
        return None
    return RevokedAncestor(
        href=f"{api_prefix(org_id, anc.project_id)}/buckets/{anc.bucket_slug}/versions/{anc.fingerprint}",
        bucket_name=anc.bucket_slug,
        version_name=version_name(anc),
        version_id=anc.id,
        version_fingerprint=anc.fingerprint,
    )


def version(it: m.Iteration, org_id: str, *, with_builds: bool = True) -> Version:
    revoked = it.revoke_at is not None
    return Version(
        id=it.id,
        bucket_name=it.bucket_slug,
        name=version_name(it),
        status=VERSION_STATUS_TEXT[it.status],
        author_id=it.author_id,
        created_at=ts(it.created_at),
        updated_at=ts(it.updated_at),
        fingerprint=it.fingerprint,
        builds=[build(b) for b in it.builds] if with_builds else [],
        revoke_at=ts(it.revoke_at),
        revocation_message=it.revocation_message if revoked else "",
        revocation_author=it.revocation_author if revoked else "",
        revocation_type=REVOCATION_TYPE_TEXT[it.revocation_type] if revoked else "",
        revocation_inherited_from=revoked_ancestor(it, org_id),
        has_descendants=it.has_descendants,
        template_type=TEMPLATE_TYPE_TEXT[it.template_type],
    )


def summary(status: AncestryStatus | None, href: str) -> AncestrySummary | None:
    return AncestrySummary(href=href, status=ANCESTRY_STATUS_TEXT[status]) if status else None


def resource_name(project_id: str, bucket_name: str) -> str:
    """What terraform-provider-hcp imports a bucket by and checks with a regular expression."""
    return f"packer/project/{project_id}/bucket/{bucket_name}"


def bucket(
    b: m.Bucket,
    latest: m.Iteration | None,
    org_id: str,
    parents: AncestryStatus | None = None,
    children: AncestryStatus | None = None,
) -> Bucket:
    ancestry = f"{api_prefix(org_id, b.project_id)}/buckets/{b.slug}/ancestry"
    return Bucket(
        id=b.id,
        name=b.slug,
        location=location(org_id, b.project_id),
        latest_version=version(latest, org_id) if latest is not None else None,
        created_at=ts(b.created_at),
        updated_at=ts(b.updated_at),
        platforms=list(b.platforms),
        description=b.description,
        labels=b.labels,
        version_count=str(b.iteration_count) if b.iteration_count else "",
        parents=summary(parents, ancestry + "?type=ANCESTRY_TYPE_PARENTS"),
        children=summary(children, ancestry + "?type=ANCESTRY_TYPE_CHILDREN"),
        resource_name=resource_name(b.project_id, b.slug),
    )


def channel(c: m.Channel, org_id: str) -> Channel:
    return Channel(
        id=c.id,
        name=c.slug,
        bucket_name=c.bucket_slug,
        author_id=c.author_id,
        created_at=ts(c.created_at),
        updated_at=ts(c.updated_at),
        version=version(c.iteration, org_id) if c.iteration is not None else None,
        managed=c.managed,
        restricted=c.restricted,
    )


def assignment(a: m.ChannelAssignment, bucket_name: str) -> ChannelAssignment:
    assigned = None
    if a.iteration_id:
        assigned = Version(
            id=a.iteration_id,
            bucket_name=bucket_name,
            name=f"v{a.iteration_version}",
            status=VERSION_STATUS_TEXT[a.status],
            fingerprint=a.iteration_fingerprint,
            builds=[],
        )
    return ChannelAssignment(version=assigned, author_id=a.author_id, assigned_at=ts(a.created_at))


def registry(r: m.Registry, on_untracked_image: str = "") -> Registry:
    deprovision = None
    if not r.activated and r.deactivated_at is not None:
        deprovision = BillingDeprovision(at=ts(r.deactivated_at), reason="USER_REQUEST")
    return Registry(
        id=r.id,
        location=location(r.organization_id, r.project_id),
        config=RegistryConfig(
            feature_tier=TIER_TEXT[r.feature_tier],
            activated=r.activated,
            billing_deprovision=deprovision,
            tfc_run_task_config=RunTaskConfig(api_id=r.run_task_api_id, on_untracked_image=on_untracked_image),
        ),
        created_at=ts(r.created_at),
        updated_at=ts(r.updated_at),
    )
