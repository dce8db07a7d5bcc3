"""What `latest` means: the newest complete iteration that is not revoked. The bucket's latest_* fields
and the managed `latest` channel follow it; every move of a channel is written to its history."""

from __future__ import annotations

from datetime import timedelta

from packyard.domain.context import Ctx
from packyard.domain.models import Bucket, Channel, ChannelAssignment, Iteration
from packyard.ids import new_ulid

LATEST = "latest"
_TICK = timedelta(microseconds=1)


def record_assignment(ctx: Ctx, channel: Channel, iteration: Iteration | None) -> None:
    """Point a channel at an iteration (or at nothing) and append the change to its history.

    The caller holds the channel's row. History is ordered by time, and moves commit in the order they
    take that row, which need not be the order of their requests' clocks (two replicas' clocks, or two
    requests that started in one order and took the row in the other): a move is therefore recorded
    after the one it follows, so the newest entry is always where the channel points."""
    at = ctx.now
    if channel.assigned_at is not None and at <= channel.assigned_at:
        at = channel.assigned_at + _TICK
    channel.iteration_id = iteration.id if iteration else None
    channel.iteration = iteration
    channel.author_id = ctx.author_id
    channel.assigned_by = ctx.author_id
    channel.assigned_at = at
    channel.updated_at = ctx.now
    ctx.uow.channels.save(channel)
    ctx.uow.channels.add_assignment(
        ChannelAssignment(
            id=new_ulid(),
            channel_id=channel.id,
            created_at=at,
            iteration_id=iteration.id if iteration else None,
            iteration_fingerprint=iteration.fingerprint if iteration else "",
            iteration_version=iteration.incremental_version if iteration else 0,
            author_id=ctx.author_id,
        )
    )


def create_managed_channel(ctx: Ctx, bucket: Bucket) -> Channel:
    channel = Channel(
        id=new_ulid(),
        bucket_id=bucket.id,
        bucket_slug=bucket.slug,
        project_id=bucket.project_id,
        slug=LATEST,
        managed=True,
        author_id=ctx.author_id,
        created_at=ctx.now,
        updated_at=ctx.now,
    )
    ctx.uow.channels.add(channel)
    return channel


def refresh_latest(ctx: Ctx, bucket_id: str, completed: Iteration | None = None) -> None:
    """Recompute the bucket's latest iteration; move `latest` (with a history entry) when it changed.

    `completed`: an iteration that has just taken the bucket's next version. Unless it is revoked it is
    the latest, and the bucket's complete iterations need not be searched."""
    bucket = ctx.uow.buckets.get_by_id(ctx.project_id, bucket_id)
    if bucket is None:  # pragma: no cover - callers hold a row of the bucket
        return
    if completed is not None and completed.complete and (completed.revoke_at is None or completed.revoke_at > ctx.now):
        latest: Iteration | None = completed
    else:
        latest = ctx.uow.iterations.latest_complete(bucket_id, valid_at=ctx.now)
    new_id = latest.id if latest else None
    if bucket.latest_iteration_id != new_id:
        bucket.latest_iteration_id = new_id
        bucket.latest_version = latest.incremental_version if latest else 0
        bucket.platforms = sorted(ctx.uow.builds.cloud_providers(latest.id)) if latest is not None else []
        bucket.updated_at = ctx.now
        ctx.uow.buckets.set_latest(bucket)
    channel = ctx.uow.channels.get(bucket_id, LATEST, for_update=True)
    if channel is not None and channel.iteration_id != new_id:
        record_assignment(ctx, channel, latest)
