"""Revocation: now or scheduled, inherited by descendants, restored; and channel rollback.

A descendant is an iteration one of whose builds names another iteration as source_iteration_id, and
so on down the generations. Readers see a scheduled revocation take effect when its time comes,
because `revoked` is derived from revoke_at and the clock. What must *happen* at that time (moving
`latest`, rolling channels back, catching descendants born meanwhile) is a job claimed from the
database, so it runs once even with several server processes.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime

from packyard.domain.context import Ctx
from packyard.domain.errors import FailedPrecondition, Term
from packyard.domain.latest import record_assignment, refresh_latest
from packyard.domain.models import Channel, Iteration, Job, RevocationType
from packyard.domain.pagination import PageRequest, SortField
from packyard.domain.status import is_revoked
from packyard.ids import new_ulid

JOB_KIND = "revocation_due"
_HISTORY_PAGE = PageRequest(size=100, order=(SortField("created_at", True), SortField("id", True)))


def descendants(ctx: Ctx, root: Iteration) -> list[Iteration]:
    """Every generation below root, each once (cycles can't loop forever)."""
    seen = {root.id}
    found: list[Iteration] = []
    frontier = [root.id]
    while frontier:
        children = [c for c in ctx.uow.iterations.children(ctx.project_id, frontier) if c.id not in seen]
        for child in children:
            seen.add(child.id)
            found.append(child)
        frontier = [c.id for c in children]
    return found


def decorate(ctx: Ctx, iterations: Sequence[Iteration]) -> None:
    """Fill has_descendants and the revoked ancestor of inherited revocations (one or two queries)."""
    if not iterations:
        return
    parents = ctx.uow.iterations.with_descendants(ctx.project_id, [i.id for i in iterations])
    ancestor_ids = sorted({i.revocation_inherited_from for i in iterations if i.revocation_inherited_from})
    ancestors = ctx.uow.iterations.get_many(ctx.project_id, ancestor_ids) if ancestor_ids else {}
    for it in iterations:
        it.has_descendants = it.id in parents
        it.revoked_ancestor = ancestors.get(it.revocation_inherited_from or "")


def _mark(
    ctx: Ctx, it: Iteration, when: datetime, message: str, kind: RevocationType, source: str | None, author: str = ""
) -> None:
    it.revoke_at = when
    it.revocation_message = message
    it.revocation_author = author or ctx.author_name
    it.revocation_type = kind
    it.revocation_inherited_from = source
    it.updated_at = ctx.now
    ctx.uow.iterations.save(it)


def inheritors(ctx: Ctx, root: Iteration, when: datetime) -> list[Iteration]:
    """The descendants that take root's revocation at `when`: all but those already revoked by then.
    Read-only: the console's confirmation shows them, and _cascade revokes them."""
    return [c for c in descendants(ctx, root) if c.revoke_at is None or c.revoke_at > when]


def _cascade(ctx: Ctx, root: Iteration, when: datetime) -> list[Iteration]:
    """Give every descendant root's revocation (INHERITED), except those already revoked by then.

    A descendant's own revocation scheduled for later is kept aside, and comes back if root is restored.
    """
    inherited = []
    for child in inheritors(ctx, root, when):
        if child.revocation_type is RevocationType.MANUAL and child.revoke_at is not None:
            child.own_revoke_at = child.revoke_at
            child.own_revocation_message = child.revocation_message
            child.own_revocation_author = child.revocation_author
        # The ancestor's author, also when a due job (acting without a principal) catches a late descendant.
        _mark(ctx, child, when, root.revocation_message, RevocationType.INHERITED, root.id, root.revocation_author)
        inherited.append(child)
    return inherited


def revoke(
    ctx: Ctx,
    iteration: Iteration,
    *,
    when: datetime,
    message: str,
    skip_descendants: bool,
    rollback_channels: bool,
) -> list[Iteration]:
    """Revoke now (when <= now) or schedule it; returns the iterations revoked with it (descendants)."""
    at = max(when, ctx.now) if when > ctx.now else ctx.now
    ctx.uow.jobs.cancel_for(iteration.id, ctx.now)
    iteration.own_revoke_at = None
    iteration.own_revocation_message = iteration.own_revocation_author = ""
    _mark(ctx, iteration, at, message, RevocationType.MANUAL, None)
    inherited = [] if skip_descendants else _cascade(ctx, iteration, at)
    if at <= ctx.now:
        _take_effect(ctx, [iteration, *inherited], rollback_channels)
    else:
        ctx.uow.jobs.add(
            Job(
                id=new_ulid(),
                kind=JOB_KIND,
                organization_id=ctx.organization_id,
                project_id=ctx.project_id,
                iteration_id=iteration.id,
                run_at=at,
                created_at=ctx.now,
                author_id=ctx.author_id,
                rollback_channels=rollback_channels,
                skip_descendants=skip_descendants,
            )
        )
    return inherited


def restore(ctx: Ctx, iteration: Iteration) -> list[Iteration]:
    """Clear a revocation (or cancel a scheduled one) and what its descendants inherited from it."""
    if iteration.revoke_at is None:
        raise FailedPrecondition(
            "{iteration} {id} is not revoked, so there is nothing to restore", subject=Term.ITERATION, id=iteration.id
        )
    restored = [iteration, *ctx.uow.iterations.inherited_from(ctx.project_id, iteration.id)]
    for n, it in enumerate(restored):
        if n > 0 and it.own_revoke_at is not None:
            # The descendant's own revocation comes back (its job is still pending if not yet due).
            it.revoke_at = it.own_revoke_at
            it.revocation_message = it.own_revocation_message
            it.revocation_author = it.own_revocation_author
            it.revocation_type = RevocationType.MANUAL
        else:
            ctx.uow.jobs.cancel_for(it.id, ctx.now)
            it.revoke_at = None
            it.revocation_message = ""
            it.revocation_author = ""
            it.revocation_type = RevocationType.UNSET
        it.revocation_inherited_from = None
        it.own_revoke_at = None
        it.own_revocation_message = ""
        it.own_revocation_author = ""
        it.updated_at = ctx.now
        ctx.uow.iterations.save(it)
    for bucket_id in sorted({it.bucket_id for it in restored}):
        refresh_latest(ctx, bucket_id)
    return restored[1:]


def _take_effect(ctx: Ctx, revoked: Sequence[Iteration], rollback_channels: bool) -> None:
    if rollback_channels:
        roll_back(ctx, [it.id for it in revoked])
    for bucket_id in sorted({it.bucket_id for it in revoked}):
        refresh_latest(ctx, bucket_id)


def _previous_valid(ctx: Ctx, channel_id: str, bad: set[str]) -> Iteration | None:
    """The most recent earlier assignment of the channel whose iteration is still valid."""
    request = _HISTORY_PAGE
    while True:
        entries = ctx.uow.channels.history(channel_id, request)
        for entry in entries[: request.size]:
            if not entry.iteration_id or entry.iteration_id in bad:
                continue
            found = ctx.uow.iterations.get_many(ctx.project_id, [entry.iteration_id]).get(entry.iteration_id)
            if found is not None and found.complete and not is_revoked(ctx, found):
                return found
        if len(entries) <= request.size:
            return None
        last = entries[request.size - 1]
        request = PageRequest(size=request.size, order=request.order, cursor=(last.created_at, last.id))


def previous_assignment(ctx: Ctx, channel: Channel) -> Iteration | None:
    """Where rolling the channel back takes it: its most recent earlier assignment whose iteration is
    still complete and unrevoked, other than the one it points at now (None: there is none)."""
    return _previous_valid(ctx, channel.id, {channel.iteration_id} if channel.iteration_id else set())


def rollback_plan(
    ctx: Ctx, iteration_ids: Iterable[str], *, for_update: bool = False
) -> list[tuple[Channel, Iteration | None]]:
    """Each user channel that points at one of these iterations, with where rolling back moves it (None:
    unassigned). Read-only (the console's confirmation shows it); roll_back makes the moves."""
    bad = set(iteration_ids)
    moves: list[tuple[Channel, Iteration | None]] = []
    for iteration_id in sorted(bad):
        for channel in ctx.uow.channels.pointing_at(iteration_id, for_update=for_update):
            if channel.managed:
                continue  # `latest` follows refresh_latest
            moves.append((channel, _previous_valid(ctx, channel.id, bad)))
    return moves


def roll_back(ctx: Ctx, iteration_ids: Iterable[str]) -> None:
    """Move every user channel that points at one of these iterations back (history records each move)."""
    for channel, target in rollback_plan(ctx, iteration_ids, for_update=True):
        record_assignment(ctx, channel, target)


def run_job(ctx: Ctx, job: Job) -> bool:
    """Run a due revocation's side effects if this caller claims the job; False when someone else did."""
    if not ctx.uow.jobs.claim(job.id, ctx.now):
        return False
    iteration = ctx.uow.iterations.get_in_project(job.project_id, job.iteration_id, for_update=True)
    if iteration is None or not is_revoked(ctx, iteration):
        return True  # deleted or restored meanwhile: nothing left to do
    inherited = [] if job.skip_descendants else _cascade(ctx, iteration, iteration.revoke_at or ctx.now)
    already = ctx.uow.iterations.inherited_from(ctx.project_id, iteration.id)
    _take_effect(ctx, [iteration, *{i.id: i for i in [*already, *inherited]}.values()], job.rollback_channels)
    return True
