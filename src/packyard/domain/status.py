"""Clock-derived state: what stored times mean at the request's `now`.

A scheduled revocation is in force from its revoke_at on; a RUNNING build silent for longer than the
heartbeat grace reads as FAILED; an iteration's status (as a channel's history shows it) follows from
both. These are the only places the domain reads the clock for a read, and each one tells the Ctx
when its answer flips (Ctx.changes_at), so cached answers know how long they hold.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from packyard.domain.context import Ctx
from packyard.domain.models import Build, BuildStatus, Iteration, IterationStatus

_TICK = timedelta(microseconds=1)


def is_revoked(ctx: Ctx, iteration: Iteration) -> bool:
    if iteration.revoke_at is None:
        return False
    if iteration.revoke_at <= ctx.now:
        return True
    ctx.changes_at(iteration.revoke_at)  # scheduled: revoked from that instant on
    return False


def effective_status(ctx: Ctx, status: BuildStatus, heartbeat_at: datetime) -> BuildStatus:
    """A RUNNING build whose heartbeats stopped for longer than the grace period has FAILED."""
    if status is BuildStatus.RUNNING:
        deadline = heartbeat_at + timedelta(seconds=ctx.rules.heartbeat_grace_seconds)
        if deadline < ctx.now:
            return BuildStatus.FAILED
        ctx.changes_at(deadline + _TICK)  # FAILED from the first instant past the deadline
    return status


def refresh_statuses(ctx: Ctx, builds: list[Build]) -> list[Build]:
    for build in builds:
        build.status = effective_status(ctx, build.status, build.heartbeat_at)
    return builds


def iteration_status(ctx: Ctx, iteration: Iteration, build_statuses: Sequence[BuildStatus]) -> IterationStatus:
    """`build_statuses` as effective_status gives them."""
    if iteration.revoke_at is not None:
        return IterationStatus.REVOKED if is_revoked(ctx, iteration) else IterationStatus.REVOCATION_SCHEDULED
    if iteration.complete:
        return IterationStatus.ACTIVE
    if BuildStatus.FAILED in build_statuses:
        return IterationStatus.FAILED
    if BuildStatus.CANCELLED in build_statuses:
        return IterationStatus.CANCELLED
    if BuildStatus.RUNNING in build_statuses:
        return IterationStatus.RUNNING
    if build_statuses:
        return IterationStatus.INCOMPLETE
    return IterationStatus.UNSET


def fill_status(ctx: Ctx, iterations: Sequence[Iteration | None]) -> None:
    """Set each iteration's status from its loaded builds (already refreshed by effective_status)."""
    for iteration in iterations:
        if iteration is not None:
            iteration.status = iteration_status(ctx, iteration, [b.status for b in iteration.builds])
