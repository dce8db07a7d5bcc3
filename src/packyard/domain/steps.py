"""The call steps of the API operations (pipeline/operations.py): each takes the unit of work's context
and one wire-neutral command (domain/commands.py), or a write's result for a reread, and returns the
domain's result. Every API tree names these in its Operation declarations, so an operation that two
trees share runs the same step; a tree adds only its decode and its answer. Where two trees address a
thing differently (an iteration by id or by its bucket and fingerprint), the command carries the
difference, or the steps differ by command type (get_build and build_in_version).

The services keep their keyword signatures for their other callers (background jobs, the run task,
tests); a step is the one adapter from a command to them, a direct function reference for the runner.
Operations whose service already takes (ctx, command) name the service itself (sboms.upload)."""

from __future__ import annotations

from packyard.domain import ancestry, buckets, builds, channels, iterations, registry, search, tenants
from packyard.domain.ancestry import RelationPage
from packyard.domain.buckets import BucketView
from packyard.domain.channels import Copied, HistoryPage
from packyard.domain.commands import (
    AncestryQuery,
    ArtifactQuery,
    BucketChange,
    BucketListing,
    BucketName,
    BuildChange,
    BuildListing,
    BuildName,
    BuildRef,
    ChannelChange,
    ChannelCopy,
    ChannelHistoryQuery,
    ChannelName,
    IterationChange,
    IterationDeletion,
    IterationListing,
    IterationQuery,
    NewBucket,
    NewBuild,
    NewChannel,
    NewIteration,
    ProjectScope,
    RegistryChange,
    RegistryDeletion,
)
from packyard.domain.context import Ctx
from packyard.domain.iterations import ListedIteration, UpdateResult
from packyard.domain.models import (
    Build,
    Channel,
    Iteration,
    Organization,
    Principal,
    Project,
    Registry,
    RunTaskBehaviour,
)
from packyard.domain.pagination import Page
from packyard.domain.search import Found

# ---- buckets


def refuse_bucket(ctx: Ctx, new: NewBucket) -> None:
    """CreateBucket's precheck: the refusals reads alone decide (a bucket of that slug exists)."""
    buckets.refuse_before_create(ctx, slug=new.slug, description=new.description, labels=new.labels)


def create_bucket(ctx: Ctx, new: NewBucket) -> BucketView:
    return buckets.create(ctx, slug=new.slug, description=new.description, labels=new.labels)


def get_bucket(ctx: Ctx, name: BucketName) -> BucketView:
    return buckets.get(ctx, name.slug, name.bucket_id)


def list_buckets(ctx: Ctx, listing: BucketListing) -> Page[BucketView]:
    p = listing.page
    return buckets.list_(
        ctx, page_size=p.size, next_token=p.next_token, previous_token=p.previous_token, order_by=p.order_by
    )


def update_bucket(ctx: Ctx, change: BucketChange) -> BucketView:
    bucket = buckets.update(
        ctx, change.slug, description=change.description, labels=change.labels, platforms=change.platforms
    )
    return BucketView(bucket, None)  # its latest iteration is read after the commit (view_bucket)


def view_bucket(ctx: Ctx, written: BucketView) -> BucketView:
    """UpdateBucket's reread: the bucket as written, with its latest iteration and ancestry as of now."""
    return buckets.view(ctx, written.bucket)


def delete_bucket(ctx: Ctx, name: BucketName) -> None:
    buckets.delete(ctx, name.slug)


def require_bucket(ctx: Ctx, name: BucketName) -> None:
    """That the bucket exists, and nothing else (a question about a bucket whose answer packyard does
    not keep, such as its enforced blocks: none)."""
    buckets.require(ctx, name.slug)


# ---- channels


def create_channel(ctx: Ctx, new: NewChannel) -> Channel:
    return channels.create(ctx, new.bucket_slug, slug=new.slug, ref=new.ref, restricted=new.restricted)


def get_channel(ctx: Ctx, name: ChannelName) -> Channel:
    return channels.get(ctx, name.bucket_slug, name.slug)


def list_channels(ctx: Ctx, bucket_slug: str) -> list[Channel]:
    return channels.list_(ctx, bucket_slug)


def update_channel(ctx: Ctx, change: ChannelChange) -> Channel:
    return channels.update(
        ctx, change.bucket_slug, change.slug, ref=change.ref, restricted=change.restricted, fields=change.fields
    )


def delete_channel(ctx: Ctx, name: ChannelName) -> None:
    channels.delete(ctx, name.bucket_slug, name.slug)


def copy_channel(ctx: Ctx, copy: ChannelCopy) -> Copied:
    return channels.copy(ctx, copy.bucket_slug, source=copy.source, target=copy.target)


def channel_history(ctx: Ctx, query: ChannelHistoryQuery) -> HistoryPage:
    p = query.page
    return channels.history(
        ctx, query.bucket_slug, query.slug, page_size=p.size, next_token=p.next_token, previous_token=p.previous_token
    )


# ---- iterations


def create_iteration(ctx: Ctx, new: NewIteration) -> Iteration:
    return iterations.create(ctx, new.bucket_slug, fingerprint=new.fingerprint, template_type=new.template_type)


def get_iteration(ctx: Ctx, query: IterationQuery) -> Iteration:
    return iterations.get(
        ctx,
        query.bucket_slug,
        iteration_id=query.iteration_id,
        fingerprint=query.fingerprint,
        version=query.version,
        metadata=query.metadata,
    )


def list_iterations(ctx: Ctx, listing: IterationListing) -> Page[ListedIteration]:
    p = listing.page
    return iterations.list_(
        ctx,
        listing.bucket_slug,
        page_size=p.size,
        next_token=p.next_token,
        previous_token=p.previous_token,
        order_by=p.order_by,
        with_builds=listing.with_builds,
    )


def update_iteration(ctx: Ctx, change: IterationChange) -> UpdateResult:
    return iterations.update(
        ctx, change.iteration_id, change.changes, bucket_slug=change.bucket_slug, fingerprint=change.fingerprint
    )


def delete_iteration(ctx: Ctx, deletion: IterationDeletion) -> None:
    iterations.delete(
        ctx,
        deletion.iteration_id,
        bucket_slug=deletion.bucket_slug,
        rollback_channels=deletion.rollback_channels,
        fingerprint=deletion.fingerprint,
    )


# ---- builds


def create_build(ctx: Ctx, new: NewBuild) -> Build:
    return builds.create(ctx, new.bucket_slug, new.iteration_id, new.changes, fingerprint=new.fingerprint)


def get_build(ctx: Ctx, name: BuildName) -> Build:
    """A build of the project, by its id alone."""
    return builds.get(ctx, name.build_id)


def build_in_version(ctx: Ctx, ref: BuildRef) -> Build:
    """A build named with the iteration it must be of (its bucket and fingerprint), with its metadata."""
    return builds.in_version(ctx, ref, metadata=True)


def list_builds(ctx: Ctx, listing: BuildListing) -> Page[Build]:
    p = listing.page
    return builds.list_(
        ctx,
        listing.bucket_slug,
        listing.iteration_id,
        fingerprint=listing.fingerprint,
        page_size=p.size,
        next_token=p.next_token,
        previous_token=p.previous_token,
        order_by=p.order_by,
        metadata=listing.metadata,
    )


def update_build(ctx: Ctx, change: BuildChange) -> Build:
    return builds.update(ctx, change.build_id, change.changes, within=change.within, metadata=change.metadata)


def delete_build(ctx: Ctx, name: BuildName) -> None:
    """A build of the project, by its id alone."""
    builds.delete(ctx, name.build_id)


def delete_build_in_version(ctx: Ctx, ref: BuildRef) -> None:
    """A build named with the iteration it must be of (its bucket and fingerprint)."""
    builds.delete(ctx, ref.build_id, within=ref.version)


# ---- ancestry and search


def list_ancestry(ctx: Ctx, query: AncestryQuery) -> RelationPage:
    p = query.page
    return ancestry.list_(
        ctx,
        query.bucket_slug,
        kind=query.kind,
        channel=query.channel,
        iteration_id=query.iteration_id,
        version=query.version,
        fingerprint=query.fingerprint,
        page_size=p.size,
        next_token=p.next_token,
        previous_token=p.previous_token,
    )


def search_artifacts(ctx: Ctx, query: ArtifactQuery) -> Page[Found]:
    return search.artifact(
        ctx,
        external_identifier=query.external_identifier,
        platform=query.platform,
        region=query.region,
        page=query.page,
    )


# ---- the registry


def create_registry(ctx: Ctx, change: RegistryChange) -> Registry:
    return registry.create(ctx, change.tier)


def get_registry(ctx: Ctx, command: None) -> Registry:
    return registry.get(ctx)


def update_registry(ctx: Ctx, change: RegistryChange) -> Registry:
    return registry.update(ctx, tier=change.tier, activate=change.activate)


def delete_registry(ctx: Ctx, deletion: RegistryDeletion) -> Registry:
    return registry.delete(ctx, hard=deletion.hard)


def run_task_behaviour(ctx: Ctx, command: None) -> RunTaskBehaviour:
    return registry.run_task_behaviour(ctx)


def regenerate_hmac_key(ctx: Ctx, command: None) -> str:
    return registry.regenerate_hmac_key(ctx)


# ---- tenants (principal routes: the actor's organization and projects, no project in the path)


def _actor(ctx: Ctx) -> Principal:
    assert ctx.actor is not None  # principal routes always run with one
    return ctx.actor


def organizations(ctx: Ctx, command: None) -> list[Organization]:
    return tenants.visible_organizations(ctx, _actor(ctx))


def organization(ctx: Ctx, org_id: str) -> Organization:
    return tenants.organization(ctx, _actor(ctx), org_id)


def projects(ctx: Ctx, scope: ProjectScope) -> list[Project]:
    return tenants.visible_projects(ctx, _actor(ctx), scope.kind, scope.scope_id)


def project(ctx: Ctx, project_id: str) -> Project:
    return tenants.project(ctx, _actor(ctx), project_id)
