"""The Terraform run task's verdict: what a plan uses from this registry, and whether it may go ahead.

A plan uses images two ways (shared/docs/integrations.md section 1): through HCP Packer data sources,
whose resolved version is checked for revocation (a warning: the data source already chose it), and as
image ids written into resources, checked by finding the build that produced them: a revoked one fails
a resource that is created or replaced and warns for an in-place update; an id the registry doesn't know
is ignored, or fails or warns as the registry's on_untracked_image says. Reading the plan's JSON is the
caller's (run_task.py); this module decides, inside the registry's project.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from packyard.domain.context import Ctx
from packyard.domain.errors import InvalidArgument
from packyard.domain.models import Iteration, RunTaskBehaviour
from packyard.domain.pagination import PageRequest, SortField
from packyard.domain.status import is_revoked
from packyard.ids import is_ulid, normalize_ulid


class Level(StrEnum):
    OK = "ok"
    WARNING = "warning"
    ERROR = "error"


@dataclass(frozen=True, slots=True)
class VersionUse:
    """A data source's resolved version: its address in the plan, and how it names the version."""

    address: str
    bucket_slug: str = ""
    iteration_id: str = ""
    fingerprint: str = ""


@dataclass(frozen=True, slots=True)
class ImageUse:
    """An image id a resource is given, and whether the resource is created or replaced (else updated)."""

    address: str
    attribute: str
    image_id: str
    creates: bool


@dataclass(slots=True)
class Finding:
    address: str
    level: Level
    message: str


@dataclass(slots=True)
class Verdict:
    findings: list[Finding] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return all(f.level is not Level.ERROR for f in self.findings)

    def summary(self) -> str:
        errors = sum(f.level is Level.ERROR for f in self.findings)
        warnings = sum(f.level is Level.WARNING for f in self.findings)
        checked = len(self.findings)
        if not checked:
            return "no HCP Packer data source or known image in this plan"
        return f"{checked} image use(s) checked: {errors} failed, {warnings} warning(s)"


def _revocation(ctx: Ctx, iteration: Iteration) -> str:
    """'' when usable; otherwise why not (revoked, or when it will be)."""
    if iteration.revoke_at is None:
        return ""
    when = iteration.revoke_at.isoformat(timespec="seconds")
    reason = f": {iteration.revocation_message}" if iteration.revocation_message else ""
    if is_revoked(ctx, iteration):
        return f"revoked since {when}{reason}"
    return f"scheduled for revocation at {when}{reason}"


def _version(ctx: Ctx, use: VersionUse) -> Iteration | None:
    if use.iteration_id and is_ulid(use.iteration_id):
        return ctx.uow.iterations.get_in_project(ctx.project_id, normalize_ulid(use.iteration_id))
    if use.bucket_slug and use.fingerprint:
        bucket = ctx.uow.buckets.get(ctx.project_id, use.bucket_slug)
        if bucket is not None:
            return ctx.uow.iterations.get(bucket.id, fingerprint=use.fingerprint)
    return None


def decide(
    ctx: Ctx, versions: Sequence[VersionUse], images: Sequence[ImageUse], untracked: RunTaskBehaviour
) -> Verdict:
    verdict = Verdict()
    limit = ctx.rules.limits.max_page_size
    if len(versions) + len(images) > limit:
        raise InvalidArgument(f"the plan uses more than {limit} images; packyard checks at most that many")
    for use in versions:
        iteration = _version(ctx, use)
        if iteration is None:
            continue  # a data source of another registry
        problem = _revocation(ctx, iteration)
        name = f"{iteration.bucket_slug} {_name(iteration)}"
        if problem:
            verdict.findings.append(Finding(use.address, Level.WARNING, f"{name} is {problem}"))
        else:
            verdict.findings.append(Finding(use.address, Level.OK, f"{name} is in good standing"))
    one = PageRequest(size=limit, order=(SortField("created_at", descending=True), SortField("id", descending=True)))
    for image in images:
        if not image.image_id or len(image.image_id) > ctx.rules.limits.max_field_length:
            continue
        builds = ctx.uow.builds.with_artifact(ctx.project_id, image.image_id, "", "", one)
        found = ctx.uow.iterations.get_many(ctx.project_id, sorted({b.iteration_id for b in builds})) if builds else {}
        where = f"{image.attribute} = {image.image_id}"
        if not found:
            level = _UNTRACKED.get(untracked)
            if level is not None:
                verdict.findings.append(Finding(image.address, level, f"{where} is not an image of this registry"))
            continue
        problems = [(it, _revocation(ctx, it)) for it in found.values()]
        revoked = [(it, p) for it, p in problems if p and is_revoked(ctx, it)]
        scheduled = [(it, p) for it, p in problems if p and not is_revoked(ctx, it)]
        if revoked:
            it, problem = revoked[0]
            level = Level.ERROR if image.creates else Level.WARNING
            message = f"{where} comes from {it.bucket_slug} {_name(it)}, which is {problem}"
            verdict.findings.append(Finding(image.address, level, message))
        elif scheduled:
            it, problem = scheduled[0]
            message = f"{where} comes from {it.bucket_slug} {_name(it)}, which is {problem}"
            verdict.findings.append(Finding(image.address, Level.WARNING, message))
        else:
            it = next(iter(found.values()))
            message = f"{where} comes from {it.bucket_slug} {_name(it)}"
            verdict.findings.append(Finding(image.address, Level.OK, message))
    return verdict


# What an image id the registry doesn't know becomes, by the registry's on_untracked_image (unset: nothing).
_UNTRACKED = {RunTaskBehaviour.FAIL: Level.ERROR, RunTaskBehaviour.WARN: Level.WARNING}


def _name(iteration: Iteration) -> str:
    return f"v{iteration.incremental_version}" if iteration.complete else f"(incomplete, {iteration.fingerprint})"
