"""Builds: one Packer source's run inside an iteration, its status machine and its images.

An iteration completes by itself when it has at least one build and every build is DONE: Packer never
calls UpdateIteration, so completion (and the bucket's next incremental version) is derived here.
"""

from __future__ import annotations

from collections.abc import Sequence

from packyard.domain import lookup
from packyard.domain import registry as registries
from packyard.domain import validation as check
from packyard.domain.commands import BuildChanges, BuildRef, ImageInput, IterationRef, VersionRef
from packyard.domain.context import Ctx
from packyard.domain.errors import FailedPrecondition, InvalidArgument, NotFound, Term
from packyard.domain.latest import refresh_latest
from packyard.domain.models import Build, BuildStatus, Image, Iteration
from packyard.domain.pagination import Kind, Page, SortField, attribute_key, make_page, page_request
from packyard.domain.status import effective_status, is_revoked, refresh_statuses
from packyard.ids import new_ulid

SORTABLE = {
    "created_at": Kind.TIME,
    "updated_at": Kind.TIME,
    "component_type": Kind.STR,
}
DEFAULT_ORDER = (SortField("created_at"),)
# The build's text fields a change may set, and how a message names each.
_TEXT_FIELDS = (
    ("cloud_provider", "{cloud_provider}"),
    ("packer_run_uuid", "packer_run_uuid"),
    ("source_image_id", "source_image_id"),
    ("source_channel_id", "source_channel_id"),
)


def _writable_iteration(ctx: Ctx, iteration: Iteration) -> None:
    if is_revoked(ctx, iteration):
        raise FailedPrecondition(
            "{iteration} {id} is revoked; its builds can't be changed until it is restored",
            subject=Term.ITERATION,
            id=iteration.id,
        )


def _validate_images(ctx: Ctx, images: Sequence[ImageInput]) -> None:
    limit = ctx.rules.limits.max_images_per_build
    if len(images) > limit:
        raise InvalidArgument(
            "a build can have at most {limit} {images}; got {count}", subject=Term.IMAGE, limit=limit, count=len(images)
        )
    for n, image in enumerate(images):
        if not image.image_id:
            raise InvalidArgument("{images_field}[{n}].{image_id} is required", subject=Term.IMAGE, n=n)
        check.text(image.image_id, "{images_field}[{n}].{image_id}", ctx.rules.limits.max_field_length, n=n)
        check.text(image.region, "{images_field}[{n}].region", ctx.rules.limits.max_field_length, n=n)


def _apply(ctx: Ctx, build: Build, changes: BuildChanges) -> bool:
    """Apply a partial update to a build in memory; returns whether its images changed."""
    limits = ctx.rules.limits
    for name, what in _TEXT_FIELDS:
        value = getattr(changes, name)
        if value:
            setattr(build, name, check.text(value, what, limits.max_field_length))
    if changes.source_iteration_id:
        build.source_iteration_id = check.ulid(changes.source_iteration_id, "{source_iteration_id}")
    if changes.labels is not None:
        build.labels = check.labels(changes.labels, "labels", limits)
    if changes.metadata is not None:
        build.metadata = check.document(changes.metadata, "metadata", limits.max_metadata_bytes)
    images_changed = False
    if changes.images is not None:
        _validate_images(ctx, changes.images)
        build.images = [
            Image(id=new_ulid(), build_id=build.id, image_id=i.image_id, region=i.region, created_at=ctx.now)
            for i in changes.images
        ]
        images_changed = True
    if changes.status is not None and changes.status is not BuildStatus.UNSET:
        build.status = changes.status
    if build.status is BuildStatus.DONE and not build.images:
        raise FailedPrecondition(
            "build {component!r} can't be DONE without at least one {image}",
            subject=Term.IMAGE,
            component=build.component_type,
        )
    if build.images and not build.cloud_provider:
        # Packer refuses to load a build whose images have no provider, so such a build can't be stored.
        raise InvalidArgument(
            "build {component!r} needs a {cloud_provider} to have {images}",
            subject=Term.IMAGE,
            component=build.component_type,
        )
    build.updated_at = ctx.now
    build.heartbeat_at = ctx.now
    return images_changed


def complete_if_done(ctx: Ctx, iteration: Iteration, written: Build | None = None) -> None:
    """Complete the iteration once it has builds and all are DONE; takes the bucket's next version.

    `written` is the build just added or changed: while it isn't DONE, neither is the iteration, and
    the other builds need not be read."""
    if iteration.complete or (written is not None and written.status is not BuildStatus.DONE):
        return
    states = ctx.uow.iterations.build_states([iteration.id]).get(iteration.id, [])
    if not states or any(status is not BuildStatus.DONE for _, status, _ in states):
        return
    iteration.incremental_version = ctx.uow.buckets.next_version(iteration.bucket_id)
    iteration.complete = True
    iteration.updated_at = ctx.now
    ctx.uow.iterations.save(iteration)
    refresh_latest(ctx, iteration.bucket_id, completed=iteration)


def _iteration_of_bucket(ctx: Ctx, bucket_slug: str, iteration_id: str, *, for_update: bool) -> Iteration:
    iteration = lookup.iteration_in_bucket(
        ctx, bucket_slug, IterationRef(iteration_id=iteration_id), for_update=for_update
    )
    if iteration is None:
        raise NotFound(
            "{iteration} {id} does not exist in bucket {bucket!r}",
            subject=Term.ITERATION,
            id=iteration_id,
            bucket=bucket_slug,
        )
    return iteration


def create(ctx: Ctx, bucket_slug: str, iteration_id: str, changes: BuildChanges, *, fingerprint: str = "") -> Build:
    """A new build of the bucket's iteration of that id, or (given a fingerprint) of that fingerprint."""
    if not changes.component_type:
        raise InvalidArgument("{component_type} is required", subject=Term.COMPONENT_TYPE)
    check.text(changes.component_type, "{component_type}", ctx.rules.limits.max_field_length)
    registries.require_active(ctx)
    if fingerprint:
        iteration = lookup.version(ctx, VersionRef(bucket_slug, fingerprint), for_update=True)
    else:
        iteration = _iteration_of_bucket(ctx, bucket_slug, iteration_id, for_update=True)
    _writable_iteration(ctx, iteration)
    if iteration.complete:
        raise FailedPrecondition(
            "{iteration} {id} is complete; builds can't be added to it", subject=Term.ITERATION, id=iteration.id
        )
    build = Build(
        id=new_ulid(),
        iteration_id=iteration.id,
        bucket_id=iteration.bucket_id,
        project_id=ctx.project_id,
        component_type=changes.component_type,
        status=BuildStatus.UNSET,
        created_at=ctx.now,
        updated_at=ctx.now,
        heartbeat_at=ctx.now,
    )
    _apply(ctx, build, changes)
    ctx.uow.builds.add(build)
    complete_if_done(ctx, iteration, build)
    return build


def with_metadata(ctx: Ctx, builds: list[Build]) -> list[Build]:
    """Fill the builds' stored metadata (a read of its own: only 2023-01-01's build answers show it)."""
    stored = ctx.uow.builds.metadata([b.id for b in builds if b.metadata is None])
    for build in builds:
        if build.metadata is None:
            build.metadata = stored.get(build.id)
    return builds


def _missing_build(ctx: Ctx, build_id: str, within: VersionRef | None) -> NotFound:
    """The refusal for a build that isn't there; inside a version, a missing bucket or version is named
    as such first (lookup.version raises it)."""
    if within is None:
        return NotFound(f"build {build_id} does not exist in project {ctx.project_id}")
    lookup.version(ctx, within)
    return NotFound(
        "build {id} does not exist in the {iteration} of bucket {bucket!r} with fingerprint {fingerprint!r}",
        subject=Term.ITERATION,
        id=build_id,
        bucket=within.bucket_slug,
        fingerprint=within.fingerprint,
    )


def _check_within(ctx: Ctx, iteration: Iteration, build_id: str, within: VersionRef | None) -> None:
    """A build named inside an iteration (2023-01-01's paths) must be of that bucket and fingerprint."""
    if within is not None and (
        iteration.bucket_slug != within.bucket_slug or iteration.fingerprint != within.fingerprint
    ):
        raise _missing_build(ctx, build_id, within)


def get(ctx: Ctx, build_id: str, *, within: VersionRef | None = None, metadata: bool = False) -> Build:
    """`metadata`: with the build's metadata too (2023-01-01's build answers show it)."""
    registries.get(ctx)
    build = ctx.uow.builds.get(ctx.project_id, check.ulid(build_id, "build_id"))
    if build is None:
        raise _missing_build(ctx, build_id, within)
    if within is not None:
        iteration = ctx.uow.iterations.get_in_project(ctx.project_id, build.iteration_id)
        if iteration is None:
            raise _missing_build(ctx, build_id, within)
        _check_within(ctx, iteration, build_id, within)
    refresh_statuses(ctx, [build])
    return with_metadata(ctx, [build])[0] if metadata else build


def in_version(ctx: Ctx, ref: BuildRef, *, metadata: bool = False) -> Build:
    return get(ctx, ref.build_id, within=ref.version, metadata=metadata)


def list_(
    ctx: Ctx,
    bucket_slug: str,
    iteration_id: str,
    *,
    page_size: int,
    next_token: str,
    previous_token: str,
    order_by: Sequence[str],
    fingerprint: str = "",
    metadata: bool = False,
) -> Page[Build]:
    """The builds of the bucket's iteration of that id, or (given a fingerprint) of that fingerprint."""
    registries.get(ctx)
    if fingerprint:
        iteration = lookup.version(ctx, VersionRef(bucket_slug, fingerprint))
    else:
        iteration = _iteration_of_bucket(ctx, bucket_slug, iteration_id, for_update=False)
    limits = ctx.rules.limits
    request = page_request(
        size=page_size,
        next_token=next_token,
        previous_token=previous_token,
        order_by=order_by,
        sortable=SORTABLE,
        default_order=DEFAULT_ORDER,
        default_size=limits.max_page_size,  # Packer reads every build of an iteration in one reply
        max_size=limits.max_page_size,
    )
    rows = ctx.uow.builds.for_iteration(iteration.id, request)
    page = make_page(rows, request, attribute_key)
    refresh_statuses(ctx, page.items)
    if metadata:
        with_metadata(ctx, page.items)
    return page


def update(
    ctx: Ctx, build_id: str, changes: BuildChanges, *, within: VersionRef | None = None, metadata: bool = False
) -> Build:
    """`metadata`: answer with the build's stored metadata (2023-01-01); 2021's publish path reads none."""
    registries.require_active(ctx)
    build_id = check.ulid(build_id, "build_id")
    # Locked, the iteration first: every change to its builds is serialized through it, so that two
    # builds finishing at once can't both miss that the other one is DONE.
    found = ctx.uow.builds.for_change(ctx.project_id, build_id)
    if found is None:
        raise _missing_build(ctx, build_id, within)
    iteration, build = found
    _check_within(ctx, iteration, build_id, within)
    _writable_iteration(ctx, iteration)
    if build.status is BuildStatus.DONE:
        raise FailedPrecondition(f"build {build.id} ({build.component_type}) is DONE and can't be changed")
    build.status = effective_status(ctx, build.status, build.heartbeat_at)
    had_images = bool(build.images)
    images_changed = _apply(ctx, build, changes)
    ctx.uow.builds.save(build, images_changed=images_changed, had_images=had_images)
    complete_if_done(ctx, iteration, build)
    return with_metadata(ctx, [build])[0] if metadata else build


def delete(ctx: Ctx, build_id: str, *, within: VersionRef | None = None) -> None:
    registries.require_active(ctx)
    build_id = check.ulid(build_id, "build_id")
    iteration = ctx.uow.iterations.of_build(ctx.project_id, build_id, for_update=True)
    if iteration is None:
        raise _missing_build(ctx, build_id, within)
    _check_within(ctx, iteration, build_id, within)
    _writable_iteration(ctx, iteration)
    if iteration.complete:
        raise FailedPrecondition(
            "build {id} belongs to complete {iteration} v{number}; delete the {iteration} instead",
            subject=Term.ITERATION,
            id=build_id,
            number=iteration.incremental_version,
        )
    ctx.uow.builds.delete(build_id)
    complete_if_done(ctx, iteration)
