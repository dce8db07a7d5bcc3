"""HashiCorp's 2021-04-30 wire shapes, and the projections of domain objects onto them.

Zero values are left out (omit_defaults), except the arrays HCP's Go client always expects; those are
declared without defaults so they are always written, as [] when empty. int64 travels as a string.
"""

from __future__ import annotations

from collections.abc import Sequence

from packyard.domain import models as m
from packyard.domain.ancestry import AncestryStatus
from packyard.http.wire import EMPTY, Base, Empty, Location, Operation, Pagination, location, operation, pagination, ts

__all__ = ["EMPTY", "Empty", "Operation", "location", "operation", "pagination", "ts"]


class Image(Base, kw_only=True):
    id: str = ""
    image_id: str = ""
    region: str = ""
    created_at: str = ""


class Build(Base, kw_only=True):
    id: str = ""
    iteration_id: str = ""
    component_type: str = ""
    packer_run_uuid: str = ""
    images: list[Image]
    cloud_provider: str = ""
    status: str  # always present: Packer 1.8.5+ crashes on a build without a status
    created_at: str = ""
    updated_at: str = ""
    source_image_id: str = ""
    labels: dict[str, str] = {}
    source_build_ulid: str = ""


class RevokedAncestor(Base, kw_only=True):
    href: str = ""
    bucket_slug: str = ""
    iteration_incremental_version: int = 0
    iteration_id: str = ""
    iteration_fingerprint: str = ""


class Iteration(Base, kw_only=True):
    id: str = ""
    bucket_slug: str = ""
    iteration_ancestor_id: str = ""
    incremental_version: int = 0
    complete: bool = False
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


class IterationForList(Base, kw_only=True):
    id: str = ""
    bucket_slug: str = ""
    iteration_ancestor_id: str = ""
    incremental_version: int = 0
    complete: bool = False
    author_id: str = ""
    created_at: str = ""
    updated_at: str = ""
    fingerprint: str = ""
    build_statuses: dict[str, str] = {}
    revoke_at: str = ""
    revocation_message: str = ""
    revocation_author: str = ""
    revocation_type: str = ""
    revocation_inherited_from: RevokedAncestor | None = None
    has_descendants: bool = False


class BucketLatestIteration(Base, kw_only=True):
    id: str = ""
    bucket_slug: str = ""
    iteration_ancestor_id: str = ""
    incremental_version: int = 0
    complete: bool = False
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


class AncestrySummary(Base, kw_only=True):
    href: str = ""
    status: str  # UNDETERMINED is a real answer here, so it is always written


class Bucket(Base, kw_only=True):
    id: str = ""
    slug: str = ""
    location: Location | None = None
    latest_iteration: BucketLatestIteration | None = None
    latest_version: int = 0
    created_at: str = ""
    updated_at: str = ""
    platforms: list[str]
    description: str = ""
    labels: dict[str, str] = {}
    iteration_count: str = ""
    parents: AncestrySummary | None = None
    children: AncestrySummary | None = None


class RelationChannelIteration(Base, kw_only=True):
    id: str = ""
    incremental_version: int = 0
    fingerprint: str = ""


class RelationParent(Base, kw_only=True):
    bucket_slug: str = ""
    iteration_id: str = ""
    iteration_incremental_version: int = 0
    iteration_fingerprint: str = ""
    channel: str = ""
    channel_iteration: RelationChannelIteration | None = None


class RelationChild(Base, kw_only=True):
    bucket_slug: str = ""
    iteration_id: str = ""
    iteration_incremental_version: int = 0
    iteration_fingerprint: str = ""


class BucketAncestry(Base, kw_only=True):
    status: str
    parent: RelationParent | None = None
    child: RelationChild | None = None


class ListBucketAncestryResponse(Base, kw_only=True):
    relations: list[BucketAncestry]
    total_count: int = 0
    pagination: Pagination | None = None


class RunTaskConfig(Base, kw_only=True):
    api_id: str = ""
    hmac_key: str = ""


class BillingDeprovision(Base, kw_only=True):
    at: str = ""
    reason: str = ""


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


class ChannelIterationPointer(Base, kw_only=True):
    iteration: Iteration | None = None
    author_id: str = ""
    created_at: str = ""


class Channel(Base, kw_only=True):
    id: str = ""
    slug: str = ""
    bucket_slug: str = ""
    author_id: str = ""
    created_at: str = ""
    pointer: ChannelIterationPointer | None = None
    updated_at: str = ""
    iteration: Iteration | None = None
    managed: bool = False
    restricted: bool = False


class AssignmentIteration(Base, kw_only=True):
    id: str = ""
    incremental_version: int = 0
    fingerprint: str = ""
    status: str = ""


class ChannelAssignment(Base, kw_only=True):
    iteration: AssignmentIteration | None = None
    author_id: str = ""
    promoted_at: str = ""


# ---- responses -------------------------------------------------------------------------------


class BucketResponse(Base, kw_only=True):
    bucket: Bucket


class ListBucketsResponse(Base, kw_only=True):
    buckets: list[Bucket]
    pagination: Pagination | None = None


class IterationResponse(Base, kw_only=True):
    iteration: Iteration


class UpdateIterationResponse(Base, kw_only=True):
    iteration: Iteration
    operation: Operation | None = None


class ListIterationsResponse(Base, kw_only=True):
    iterations: list[IterationForList]
    pagination: Pagination | None = None


class BuildResponse(Base, kw_only=True):
    build: Build


class ListBuildsResponse(Base, kw_only=True):
    location: Location | None = None
    pagination: Pagination | None = None
    builds: list[Build]


class RegistryResponse(Base, kw_only=True):
    registry: Registry


class RegistryOperationResponse(Base, kw_only=True):
    registry: Registry | None = None
    operation: Operation | None = None


class ChannelResponse(Base, kw_only=True):
    channel: Channel


class ListChannelsResponse(Base, kw_only=True):
    channels: list[Channel]


class ListChannelHistoryResponse(Base, kw_only=True):
    history: list[ChannelAssignment]
    count: int = 0
    pagination: Pagination | None = None


# ---- enums: the 2021 texts of the domain's values, in the order of HashiCorp's enums (the index is
# the enum's number, which grpc-gateway accepts too)

# Restriction: a channel's restricted flag; RESTRICTION_UNSET leaves it as it is.
RESTRICTION: dict[str, bool | None] = {"RESTRICTION_UNSET": None, "RESTRICTED": True, "UNRESTRICTED": False}

BUILD_STATUS: dict[str, m.BuildStatus] = {
    "UNSET": m.BuildStatus.UNSET,
    "RUNNING": m.BuildStatus.RUNNING,
    "DONE": m.BuildStatus.DONE,
    "CANCELLED": m.BuildStatus.CANCELLED,
    "FAILED": m.BuildStatus.FAILED,
}
TEMPLATE_TYPE: dict[str, m.TemplateType] = {
    "TEMPLATE_TYPE_UNSET": m.TemplateType.UNSET,
    "HCL2": m.TemplateType.HCL2,
    "JSON": m.TemplateType.JSON,
}
TIER: dict[str, m.Tier] = {
    "UNSET": m.Tier.UNSET,
    "PRIVATE_BETA": m.Tier.PRIVATE_BETA,
    "STANDARD": m.Tier.STANDARD,
    "PLUS": m.Tier.PLUS,
}
REVOCATION_TYPE: dict[str, m.RevocationType] = {
    "UNSET": m.RevocationType.UNSET,
    "MANUAL": m.RevocationType.MANUAL,
    "INHERITED": m.RevocationType.INHERITED,
}
ITERATION_STATUS: dict[str, m.IterationStatus] = {
    "ITERATION_UNSET": m.IterationStatus.UNSET,
    "ITERATION_RUNNING": m.IterationStatus.RUNNING,
    "ITERATION_CANCELLED": m.IterationStatus.CANCELLED,
    "ITERATION_FAILED": m.IterationStatus.FAILED,
    "ITERATION_REVOKED": m.IterationStatus.REVOKED,
    "ITERATION_REVOCATION_SCHEDULED": m.IterationStatus.REVOCATION_SCHEDULED,
    "ITERATION_ACTIVE": m.IterationStatus.ACTIVE,
}
ANCESTRY_STATUS: dict[str, AncestryStatus] = {
    "UNDETERMINED": AncestryStatus.UNDETERMINED,
    "UP_TO_DATE": AncestryStatus.UP_TO_DATE,
    "OUT_OF_DATE": AncestryStatus.OUT_OF_DATE,
}
# The other way: what an answer shows for each value. An enum's UNSET is left out of answers.
BUILD_STATUS_TEXT = {v: k for k, v in BUILD_STATUS.items()}
TEMPLATE_TYPE_TEXT = {v: k for k, v in TEMPLATE_TYPE.items()} | {m.TemplateType.UNSET: ""}
TIER_TEXT = {v: k for k, v in TIER.items()} | {m.Tier.UNSET: ""}
REVOCATION_TYPE_TEXT = {v: k for k, v in REVOCATION_TYPE.items()} | {m.RevocationType.UNSET: ""}
# 2021-04-30 has no word for an incomplete iteration: it shows none, as it always did.
ITERATION_STATUS_TEXT = {v: k for k, v in ITERATION_STATUS.items()} | {
    m.IterationStatus.UNSET: "",
    m.IterationStatus.INCOMPLETE: "",
}
ANCESTRY_STATUS_TEXT = {v: k for k, v in ANCESTRY_STATUS.items()}


# ---- projections -----------------------------------------------------------------------------


def image(img: m.Image) -> Image:
    return Image(id=img.id, image_id=img.image_id, region=img.region, created_at=ts(img.created_at))


def build(b: m.Build) -> Build:
    return Build(
        id=b.id,
        iteration_id=b.iteration_id,
        component_type=b.component_type,
        packer_run_uuid=b.packer_run_uuid,
        images=[image(i) for i in b.images],
        cloud_provider=b.cloud_provider,
        status=BUILD_STATUS_TEXT[b.status],
        created_at=ts(b.created_at),
        updated_at=ts(b.updated_at),
        source_image_id=b.source_image_id,
        labels=b.labels,
        source_build_ulid=b.source_build_ulid,
    )


def _revocation(it: m.Iteration) -> dict[str, object]:
    if it.revoke_at is None:
        return {}
    return {
        "revoke_at": ts(it.revoke_at),
        "revocation_message": it.revocation_message,
        "revocation_author": it.revocation_author,
        "revocation_type": REVOCATION_TYPE_TEXT[it.revocation_type],
    }


def api_prefix(org_id: str, project_id: str) -> str:
    return f"/packer/2021-04-30/organizations/{org_id}/projects/{project_id}"


def revoked_ancestor(it: m.Iteration, org_id: str) -> RevokedAncestor | None:
    anc = it.revoked_ancestor
    if anc is None:
        return None
    href = f"{api_prefix(org_id, anc.project_id)}/images/{anc.bucket_slug}/iteration?iteration_id={anc.id}"
    return RevokedAncestor(
        href=href,
        bucket_slug=anc.bucket_slug,
        iteration_incremental_version=anc.incremental_version,
        iteration_id=anc.id,
        iteration_fingerprint=anc.fingerprint,
    )


def iteration(it: m.Iteration, org_id: str = "") -> Iteration:
    return Iteration(
        id=it.id,
        bucket_slug=it.bucket_slug,
        incremental_version=it.incremental_version,
        complete=it.complete,
        author_id=it.author_id,
        created_at=ts(it.created_at),
        updated_at=ts(it.updated_at),
        fingerprint=it.fingerprint,
        builds=[build(b) for b in it.builds],
        has_descendants=it.has_descendants,
        revocation_inherited_from=revoked_ancestor(it, org_id),
        template_type=TEMPLATE_TYPE_TEXT[it.template_type],
        **_revocation(it),  # type: ignore[arg-type]
    )


def iteration_for_list(it: m.Iteration, statuses: dict[str, m.BuildStatus], org_id: str) -> IterationForList:
    return IterationForList(
        id=it.id,
        bucket_slug=it.bucket_slug,
        incremental_version=it.incremental_version,
        complete=it.complete,
        author_id=it.author_id,
        created_at=ts(it.created_at),
        updated_at=ts(it.updated_at),
        fingerprint=it.fingerprint,
        build_statuses={k: BUILD_STATUS_TEXT[v] for k, v in statuses.items()},
        has_descendants=it.has_descendants,
        revocation_inherited_from=revoked_ancestor(it, org_id),
        **_revocation(it),  # type: ignore[arg-type]
    )


def latest_iteration(it: m.Iteration, org_id: str) -> BucketLatestIteration:
    return BucketLatestIteration(
        id=it.id,
        bucket_slug=it.bucket_slug,
        incremental_version=it.incremental_version,
        complete=it.complete,
        author_id=it.author_id,
        created_at=ts(it.created_at),
        updated_at=ts(it.updated_at),
        fingerprint=it.fingerprint,
        builds=[build(b) for b in it.builds],
        revocation_inherited_from=revoked_ancestor(it, org_id),
        **_revocation(it),  # type: ignore[arg-type]
    )


def summary(status: AncestryStatus | None, href: str) -> AncestrySummary | None:
    return AncestrySummary(href=href, status=ANCESTRY_STATUS_TEXT[status]) if status else None


def bucket(
    b: m.Bucket,
    latest: m.Iteration | None,
    org_id: str,
    parents: AncestryStatus | None = None,
    children: AncestryStatus | None = None,
) -> Bucket:
    ancestry = f"{api_prefix(org_id, b.project_id)}/images/{b.slug}/ancestry"
    return Bucket(
        id=b.id,
        slug=b.slug,
        location=location(org_id, b.project_id),
        latest_iteration=latest_iteration(latest, org_id) if latest is not None else None,
        latest_version=b.latest_version,
        created_at=ts(b.created_at),
        updated_at=ts(b.updated_at),
        platforms=list(b.platforms),
        description=b.description,
        labels=b.labels,
        iteration_count=str(b.iteration_count) if b.iteration_count else "",
        parents=summary(parents, ancestry + "?type=parents"),
        children=summary(children, ancestry + "?type=children"),
    )


def registry(r: m.Registry) -> Registry:
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
            tfc_run_task_config=RunTaskConfig(api_id=r.run_task_api_id),
        ),
        created_at=ts(r.created_at),
        updated_at=ts(r.updated_at),
    )


def builds(items: Sequence[m.Build]) -> list[Build]:
    return [build(b) for b in items]


def channel(c: m.Channel, org_id: str) -> Channel:
    assigned = iteration(c.iteration, org_id) if c.iteration is not None else None
    return Channel(
        id=c.id,
        slug=c.slug,
        bucket_slug=c.bucket_slug,
        author_id=c.author_id,
        created_at=ts(c.created_at),
        # The deprecated pointer repeats the iteration for Packer <= 1.7.8 and provider <= 0.21.
        pointer=ChannelIterationPointer(iteration=assigned, author_id=c.assigned_by, created_at=ts(c.assigned_at))
        if assigned is not None
        else None,
        updated_at=ts(c.updated_at),
        iteration=assigned,
        managed=c.managed,
        restricted=c.restricted,
    )


def assignment(a: m.ChannelAssignment) -> ChannelAssignment:
    it = None
    if a.iteration_id:
        it = AssignmentIteration(
            id=a.iteration_id,
            incremental_version=a.iteration_version,
            fingerprint=a.iteration_fingerprint,
            status=ITERATION_STATUS_TEXT[a.status],
        )
    return ChannelAssignment(iteration=it, author_id=a.author_id, promoted_at=ts(a.created_at))
