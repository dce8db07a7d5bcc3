"""Iterations: one fingerprinted run of a Packer template, complete once all its builds are DONE."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta

from packyard.domain import lookup, revocation
from packyard.domain import registry as registries
from packyard.domain import validation as check
from packyard.domain.builds import complete_if_done, with_metadata
from packyard.domain.channels import unassign_deleted
from packyard.domain.commands import IterationChanges, IterationRef, VersionRef
from packyard.domain.context import Ctx
from packyard.domain.errors import Aborted, FailedPrecondition, InvalidArgument, Term
from packyard.domain.latest import refresh_latest
from packyard.domain.models import BuildStatus, Iteration, TemplateType
from packyard.domain.pagination import Kind, Page, SortField, attribute_key, make_page, page_request
from packyard.domain.status import effective_status, fill_status, is_revoked, iteration_status, refresh_statuses
from packyard.ids import new_ulid

SORTABLE = {
    "created_at": Kind.TIME,
    "updated_at": Kind.TIME,
    "incremental_version": Kind.INT,
    "fingerprint": Kind.STR,
}
DEFAULT_ORDER = (SortField("created_at", descending=True),)


@dataclass(slots=True)
class ListedIteration:
    iteration: Iteration
    build_statuses: dict[str, BuildStatus] = field(default_factory=dict)


def _with_builds(ctx: Ctx, iteration: Iteration) -> Iteration:
    iteration.builds = refresh_statuses(ctx, ctx.uow.builds.for_iteration(iteration.id))
    revocation.decorate(ctx, [iteration])
    fill_status(ctx, [iteration])
    return iteration


def create(ctx: Ctx, bucket_slug: str, *, fingerprint: str, template_type: TemplateType) -> Iteration:
    check.fingerprint(fingerprint)
    registries.require_active(ctx)
    bucket = lookup.bucket(ctx, bucket_slug)
    iteration = Iteration(
        id=new_ulid(),
        bucket_id=bucket.id,
        bucket_slug=bucket.slug,
        project_id=ctx.project_id,
        fingerprint=fingerprint,
        author_id=ctx.author_id,
        template_type=template_type,
        created_at=ctx.now,
        updated_at=ctx.now,
    )
    ctx.uow.iterations.add(iteration)
    ctx.uow.buckets.adjust_iteration_count(bucket.id, +1)
    return iteration


def get(
    ctx: Ctx, bucket_slug: str, *, iteration_id: str, fingerprint: str, version: int, metadata: bool = False
) -> Iteration:
    """`metadata`: with the builds' metadata too (2023-01-01's GetVersion shows it)."""
    registries.get(ctx)
    ref = IterationRef(iteration_id, fingerprint, version)
    iteration = lookup.iteration_in_bucket(ctx, bucket_slug, ref)
    if iteration is None:
        # Code 10 (ABORTED), not 5: Packer creates the iteration only after this answer.
        raise lookup.missing(bucket_slug, ref, Aborted)
    _with_builds(ctx, iteration)
    if metadata:
        with_metadata(ctx, iteration.builds)
    return iteration


def list_(
    ctx: Ctx,
    bucket_slug: str,
    *,
    page_size: int,
    next_token: str,
    previous_token: str,
    order_by: Sequence[str],
    with_builds: bool = False,
) -> Page[ListedIteration]:
    """A page of the bucket's iterations, each with its builds' statuses (and, `with_builds`, its
    builds: 2023-01-01 lists versions whole)."""
    registries.get(ctx)
    bucket = lookup.bucket(ctx, bucket_slug)
    limits = ctx.rules.limits
    request = page_request(
        size=page_size,
        next_token=next_token,
        previous_token=previous_token,
        order_by=order_by,
        sortable=SORTABLE,
        default_order=DEFAULT_ORDER,
        default_size=limits.default_page_size,
        max_size=limits.max_page_size,
    )
    page = make_page(ctx.uow.iterations.page(bucket.id, request), request, attribute_key)
    states = ctx.uow.iterations.build_states([i.id for i in page.items]) if page.items else {}
    revocation.decorate(ctx, page.items)
    if with_builds and page.items:
        builds = ctx.uow.builds.for_iterations([i.id for i in page.items])
        for it in page.items:
            it.builds = refresh_statuses(ctx, builds.get(it.id, []))
    listed = []
    for it in page.items:
        statuses = {component: effective_status(ctx, status, beat) for component, status, beat in states.get(it.id, [])}
        it.status = iteration_status(ctx, it, list(statuses.values()))
        listed.append(ListedIteration(it, statuses))
    return Page(listed, page.next_token, page.previous_token)


@dataclass(slots=True)
class UpdateResult:
    iteration: Iteration
    cascaded: bool = False  # a revocation that reaches descendants: HCP answers with an operation
    scheduled: bool = False


def _named(ctx: Ctx, iteration_id: str, bucket_slug: str, fingerprint: str) -> Iteration:
    """The iteration to change, locked: by id (in the bucket, when one is given) or by bucket and
    fingerprint (2023-01-01's address)."""
    if fingerprint:
        return lookup.version(ctx, VersionRef(bucket_slug, fingerprint), for_update=True)
    return lookup.iteration_by_id(ctx, iteration_id, bucket_slug=bucket_slug, for_update=True)


def update(
    ctx: Ctx, iteration_id: str, changes: IterationChanges, *, bucket_slug: str = "", fingerprint: str = ""
) -> UpdateResult:
    registries.require_active(ctx)
    if changes.revoke_at is not None and changes.revoke_after is not None:
        raise InvalidArgument("a revocation takes a time or a delay, not both")
    revoking = changes.revoke_at is not None or changes.revoke_after is not None
    if changes.restore and revoking:
        raise InvalidArgument("a restore can't be combined with a revocation")
    when = None
    if revoking:
        when = changes.revoke_at if changes.revoke_at is not None else ctx.now + (changes.revoke_after or timedelta())
        check.text(changes.revocation_message, "revocation_message", ctx.rules.limits.max_description_length)
    iteration = _named(ctx, iteration_id, bucket_slug, fingerprint)
    result = UpdateResult(iteration)
    if changes.restore:
        revocation.restore(ctx, iteration)
    elif is_revoked(ctx, iteration):
        raise FailedPrecondition(
            "{iteration} {id} is revoked; restore it before changing it", subject=Term.ITERATION, id=iteration.id
        )
    if when is not None:
        revocation.revoke(
            ctx,
            iteration,
            when=when,
            message=changes.revocation_message,
            skip_descendants=changes.skip_descendants_revocation,
            rollback_channels=changes.rollback_channels,
        )
        result.cascaded = not changes.skip_descendants_revocation
        result.scheduled = iteration.revoke_at is not None and iteration.revoke_at > ctx.now
    if changes.complete and not iteration.complete:
        complete_if_done(ctx, iteration)
        if not iteration.complete:
            raise FailedPrecondition(
                "{iteration} {id} can't be completed: it needs at least one build and every build DONE",
                subject=Term.ITERATION,
                id=iteration.id,
            )
    _with_builds(ctx, iteration)
    return result


def delete(ctx: Ctx, iteration_id: str, *, bucket_slug: str, rollback_channels: bool, fingerprint: str = "") -> None:
    registries.require_active(ctx)
    if bucket_slug:
        check.slug(bucket_slug)
    iteration = _named(ctx, iteration_id, bucket_slug, fingerprint)
    if rollback_channels:
        revocation.roll_back(ctx, [iteration.id])
    unassign_deleted(ctx, iteration)
    ctx.uow.jobs.cancel_for(iteration.id, ctx.now)
    ctx.uow.iterations.delete(iteration.id)
    ctx.uow.buckets.adjust_iteration_count(iteration.bucket_id, -1)
    refresh_latest(ctx, iteration.bucket_id)
