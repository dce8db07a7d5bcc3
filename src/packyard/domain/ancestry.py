"""Ancestry: which buckets an iteration was built from (parents) and which were built from a bucket
(children), and whether each relation is still UP_TO_DATE with the parent's channel."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from packyard.domain import lookup
from packyard.domain import registry as registries
from packyard.domain import validation as check
from packyard.domain.commands import IterationRef
from packyard.domain.context import Ctx
from packyard.domain.errors import InvalidArgument, NotFound
from packyard.domain.models import Bucket, Build, Channel, Iteration
from packyard.domain.pagination import Kind, SortField, decode_token, encode_token


class AncestryStatus(StrEnum):
    UNDETERMINED = "UNDETERMINED"
    UP_TO_DATE = "UP_TO_DATE"
    OUT_OF_DATE = "OUT_OF_DATE"


@dataclass(slots=True)
class Relation:
    kind: str  # "parent" or "child", seen from the bucket asked about
    status: AncestryStatus
    parent: Iteration
    child: Iteration
    channel: Channel | None
    channel_iteration: Iteration | None

    def key(self) -> tuple[str, str, str, str, str]:
        # The channel too: one child may name one parent through two channels, and paging must see both.
        channel = self.channel.slug if self.channel else ""
        buckets = self.parent.bucket_slug + "/" + self.child.bucket_slug
        return (self.kind, buckets, self.parent.id, self.child.id, channel)


@dataclass(slots=True)
class RelationPage:
    relations: list[Relation]
    total: int
    next_token: str
    previous_token: str


_ORDER = (SortField("kind"), SortField("buckets"), SortField("parent"), SortField("id"), SortField("channel"))
_KINDS = {"kind": Kind.STR, "buckets": Kind.STR, "parent": Kind.STR, "id": Kind.STR, "channel": Kind.STR}


def summarize(relations: Sequence[Relation]) -> AncestryStatus | None:
    """Overall status: OUT_OF_DATE if any relation is, UP_TO_DATE if all are, else UNDETERMINED."""
    if not relations:
        return None
    statuses = {r.status for r in relations}
    if AncestryStatus.OUT_OF_DATE in statuses:
        return AncestryStatus.OUT_OF_DATE
    if statuses == {AncestryStatus.UP_TO_DATE}:
        return AncestryStatus.UP_TO_DATE
    return AncestryStatus.UNDETERMINED


def _relations(ctx: Ctx, kind: str, child: Iteration, builds: Sequence[Build]) -> list[Relation]:
    found: dict[tuple[str, str], Relation] = {}
    parent_ids = sorted({b.source_iteration_id for b in builds if b.source_iteration_id})
    parents = ctx.uow.iterations.get_many(ctx.project_id, parent_ids) if parent_ids else {}
    for build in builds:
        parent = parents.get(build.source_iteration_id)
        if parent is None or parent.project_id != ctx.project_id:
            continue
        channel = (
            ctx.uow.channels.get_by_id(ctx.project_id, build.source_channel_id) if build.source_channel_id else None
        )
        if channel is not None and (channel.bucket_id != parent.bucket_id or not lookup.visible(ctx, channel)):
            channel = None  # a restricted channel is not shown to viewers, not even through ancestry
        current = None
        if channel is None:
            status = AncestryStatus.UNDETERMINED
        else:
            status = AncestryStatus.UP_TO_DATE if channel.iteration_id == parent.id else AncestryStatus.OUT_OF_DATE
            if channel.iteration_id:
                current = ctx.uow.iterations.get_many(ctx.project_id, [channel.iteration_id]).get(channel.iteration_id)
        relation = Relation(kind, status, parent, child, channel, current)
        previous = found.get((parent.id, channel.id if channel else ""))
        if previous is None:
            found[(parent.id, channel.id if channel else "")] = relation
    return list(found.values())


def _target(ctx: Ctx, bucket: Bucket, iteration_id: str, version: int, fingerprint: str) -> Iteration | None:
    """Whose parents to list: the iteration the filters name, or the bucket's latest complete one."""
    if not (iteration_id or fingerprint or version):
        latest = bucket.latest_iteration_id
        return ctx.uow.iterations.get(bucket.id, iteration_id=latest) if latest else None
    ref = IterationRef(iteration_id, fingerprint, version)
    it = lookup.iteration(ctx, bucket, ref)
    if it is None:
        raise lookup.missing(bucket.slug, ref)
    return it


def parents(ctx: Ctx, bucket: Bucket, child: Iteration | None) -> list[Relation]:
    if child is None:
        return []
    return _relations(ctx, "parent", child, ctx.uow.builds.for_iteration(child.id))


def children(ctx: Ctx, bucket: Bucket, channel_slug: str = "") -> list[Relation]:
    """Relations to the latest complete iteration of every bucket built from one of this bucket's iterations."""
    derived = ctx.uow.builds.derived_from_bucket(ctx.project_id, bucket.id)
    by_child: dict[str, list[Build]] = {}
    for build in derived:
        by_child.setdefault(build.iteration_id, []).append(build)
    child_iterations = ctx.uow.iterations.get_many(ctx.project_id, sorted(by_child)) if by_child else {}
    relations: list[Relation] = []
    latest_of: dict[str, str | None] = {}
    for child in child_iterations.values():
        if child.project_id != ctx.project_id:
            continue  # another tenant's build may name our iteration as its source; it is not our child
        if child.bucket_id not in latest_of:
            child_bucket = ctx.uow.buckets.get_by_id(ctx.project_id, child.bucket_id)
            latest_of[child.bucket_id] = child_bucket.latest_iteration_id if child_bucket else None
        if latest_of[child.bucket_id] != child.id:
            continue
        for relation in _relations(ctx, "child", child, by_child[child.id]):
            if relation.parent.bucket_id != bucket.id:
                continue
            if channel_slug and (relation.channel is None or relation.channel.slug != channel_slug):
                continue
            relations.append(relation)
    return relations


def list_(
    ctx: Ctx,
    bucket_slug: str,
    *,
    kind: str,
    channel: str,
    iteration_id: str,
    version: int,
    fingerprint: str,
    page_size: int,
    next_token: str,
    previous_token: str,
) -> RelationPage:
    registries.get(ctx)
    if kind not in ("", "parents", "children"):
        raise InvalidArgument(f"type {kind[:40]!r} must be 'parents' or 'children' (or absent for both)")
    if page_size < 0:
        raise InvalidArgument("pagination.page_size must not be negative")
    if next_token and previous_token:
        raise InvalidArgument("set pagination.next_page_token or pagination.previous_page_token, not both")
    bucket = lookup.bucket(ctx, bucket_slug)
    if channel:
        check.slug(channel, "channel")
        named = ctx.uow.channels.get(bucket.id, channel)
        if named is None or not lookup.visible(ctx, named):  # a restricted channel doesn't exist for viewers
            raise NotFound(f"channel {channel!r} does not exist in bucket {bucket.slug!r}")
    relations: list[Relation] = []
    if kind in ("", "parents"):
        relations += parents(ctx, bucket, _target(ctx, bucket, iteration_id, version, fingerprint))
    if kind in ("", "children"):
        relations += children(ctx, bucket, channel)
    relations.sort(key=Relation.key)
    limits = ctx.rules.limits
    size = limits.default_page_size if page_size == 0 else min(page_size, limits.max_page_size)
    # Relations are few and computed; the tokens are keysets over their sort key all the same.
    if previous_token:
        key = decode_token(previous_token, _ORDER, _KINDS, "p")
        before = [r for r in relations if r.key() < key]
        items = before[-size:]
        has_before = len(before) > size
        has_after = True
    else:
        after = relations
        if next_token:
            key = decode_token(next_token, _ORDER, _KINDS, "n")
            after = [r for r in relations if r.key() > key]
        items = after[:size]
        has_before = bool(next_token)
        has_after = len(after) > size
    return RelationPage(
        items,
        len(relations),
        encode_token(_ORDER, items[-1].key(), "n") if items and has_after else "",
        encode_token(_ORDER, items[0].key(), "p") if items and has_before else "",
    )
