"""The one place buckets, channels and iterations are found: by slug, and an iteration by id,
fingerprint or incremental version, in its bucket (one query from the bucket's slug when it can) or in
the project by id. Every lookup is inside the request's project (Ctx.project_id)."""

from __future__ import annotations

from typing import Any

from packyard.domain import validation as check
from packyard.domain.commands import IterationRef, VersionRef
from packyard.domain.context import Ctx
from packyard.domain.errors import DomainError, InvalidArgument, NotFound, Term
from packyard.domain.models import Bucket, Channel, Iteration, Permission


def bucket(ctx: Ctx, slug: str, *, for_update: bool = False) -> Bucket:
    check.slug(slug)
    found = ctx.uow.buckets.get(ctx.project_id, slug, for_update=for_update)
    if found is None:
        raise NotFound(f"bucket {slug!r} does not exist in project {ctx.project_id}")
    return found


def visible(ctx: Ctx, channel: Channel) -> bool:
    """Restricted channels exist only for principals that may write (contributors and admins)."""
    return not channel.restricted or ctx.actor is None or ctx.actor.can(Permission.WRITE)


def channel(ctx: Ctx, bucket: Bucket, slug: str, *, for_update: bool = False) -> Channel:
    """The bucket's channel of that slug, if the actor may see it."""
    check.slug(slug, "channel slug")
    found = ctx.uow.channels.get(bucket.id, slug, for_update=for_update)
    if found is None or not visible(ctx, found):
        raise NotFound(f"channel {slug!r} does not exist in bucket {bucket.slug!r}")
    return found


def _what(ref: IterationRef) -> tuple[str, dict[str, Any]]:
    if ref.iteration_id:
        return "id {id}", {"id": ref.iteration_id}
    if ref.fingerprint:
        return "fingerprint {fingerprint!r}", {"fingerprint": ref.fingerprint}
    return "{version} {number}", {"number": ref.incremental_version}


def missing(bucket_slug: str, ref: IterationRef, error: type[DomainError] = NotFound) -> DomainError:
    """The refusal for an iteration the reference names that the bucket doesn't have. Its code is the
    caller's: GetIteration answers a miss with 10, since Packer creates the iteration only after it."""
    what, values = _what(ref.first())
    return error(
        "bucket {bucket!r} has no {iteration} with " + what, subject=Term.ITERATION, bucket=bucket_slug, **values
    )


def iteration(ctx: Ctx, bucket: Bucket, ref: IterationRef) -> Iteration | None:
    """The bucket's iteration named by the reference's first identifier (id, fingerprint, then
    version); None when nothing matches."""
    if ref.iteration_id:
        return ctx.uow.iterations.get(bucket.id, iteration_id=check.ulid(ref.iteration_id, "{iteration_id}"))
    if ref.fingerprint:
        return ctx.uow.iterations.get(bucket.id, fingerprint=check.fingerprint(ref.fingerprint))
    version = ref.incremental_version
    if version:
        if not 0 < version < 2**31:
            raise InvalidArgument("{version_field} must be a positive int32", subject=Term.VERSION_FIELD)
        return ctx.uow.iterations.get(bucket.id, version=version)
    raise InvalidArgument("give one of {iteration_id}, fingerprint or {version_field}", subject=Term.ITERATION)


def iteration_in_bucket(ctx: Ctx, bucket_slug: str, ref: IterationRef, *, for_update: bool = False) -> Iteration | None:
    """iteration(ctx, bucket(ctx, bucket_slug), ref), in one query for an id or a fingerprint (the
    bucket's slug and the identifier together); the same refusals, a missing bucket first."""
    if not (ref.iteration_id or ref.fingerprint):
        return iteration(ctx, bucket(ctx, bucket_slug), ref)
    check.slug(bucket_slug)
    try:
        if ref.iteration_id:
            iteration_id = check.ulid(ref.iteration_id, "{iteration_id}")
            found = ctx.uow.iterations.in_bucket(
                ctx.project_id, bucket_slug, iteration_id=iteration_id, for_update=for_update
            )
        else:
            fingerprint = check.fingerprint(ref.fingerprint)
            found = ctx.uow.iterations.in_bucket(
                ctx.project_id, bucket_slug, fingerprint=fingerprint, for_update=for_update
            )
    except InvalidArgument:
        bucket(ctx, bucket_slug)
        raise
    if found is None:
        bucket(ctx, bucket_slug)
    return found


def iteration_by_id(ctx: Ctx, iteration_id: str, *, bucket_slug: str = "", for_update: bool = False) -> Iteration:
    """The project's iteration of that id (and of that bucket, when a slug is given)."""
    found = ctx.uow.iterations.get_in_project(
        ctx.project_id, check.ulid(iteration_id, "{iteration_id}"), for_update=for_update
    )
    if found is None or (bucket_slug and found.bucket_slug != bucket_slug):
        where = f"bucket {bucket_slug!r}" if bucket_slug else f"project {ctx.project_id}"
        raise NotFound(
            "{iteration} {id} does not exist in {where}", subject=Term.ITERATION, id=iteration_id, where=where
        )
    return found


def version(ctx: Ctx, ref: VersionRef, *, for_update: bool = False, error: type[DomainError] = NotFound) -> Iteration:
    """The iteration a bucket and a fingerprint name (as 2023-01-01 addresses it); a missing bucket is
    NotFound, a missing iteration `error` (GetVersion's is ABORTED, since Packer creates it after)."""
    named = IterationRef(fingerprint=ref.fingerprint)
    found = iteration_in_bucket(ctx, ref.bucket_slug, named, for_update=for_update)
    if found is None:
        raise missing(ref.bucket_slug, named, error)
    return found
