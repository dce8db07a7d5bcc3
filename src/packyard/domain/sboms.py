"""SBOMs: documents a build uploads while it runs (Packer's hcp-sbom provisioner, 2023-01-01). They
belong to the build: deleting the build, its iteration or its bucket deletes them."""

from __future__ import annotations

import re

from packyard.domain import builds
from packyard.domain import registry as registries
from packyard.domain.commands import NewSbom, SbomName
from packyard.domain.context import Ctx
from packyard.domain.errors import InvalidArgument, NotFound
from packyard.domain.models import BuildStatus, Sbom
from packyard.domain.status import effective_status
from packyard.ids import new_ulid

# What Packer's provisioner allows a user to name an SBOM (3-36 of these); packyard's own names are ULIDs.
NAME_RE = re.compile(r"^[A-Za-z0-9_-]{3,36}$")


def upload(ctx: Ctx, new: NewSbom) -> Sbom:
    """Keep an SBOM for a RUNNING build (as HCP does: a build that is done, failed or silent takes none),
    under the name given or a fresh ULID."""
    registries.require_active(ctx)
    name = new.name or new_ulid()
    if not NAME_RE.match(name):
        raise InvalidArgument(
            "sbom name {name!r} is not valid: use 3 to 36 letters, digits, hyphens or underscores", name=name[:80]
        )
    build = builds.in_version(ctx, new.build)
    if effective_status(ctx, build.status, build.heartbeat_at) is not BuildStatus.RUNNING:
        raise InvalidArgument("build {id} is not running: SBOMs are taken only while a build runs", id=build.id)
    sbom = Sbom(
        id=new_ulid(),
        build_id=build.id,
        project_id=ctx.project_id,
        name=name,
        format=new.format,
        size=new.size,
        created_at=ctx.now,
        content=new.content,
    )
    ctx.uow.sboms.add(sbom)
    return sbom


def list_(ctx: Ctx, ref: SbomName) -> list[Sbom]:
    """The SBOMs of the build `ref` names (its name is not used)."""
    build = builds.in_version(ctx, ref.build)
    return ctx.uow.sboms.for_build(build.id)


def get(ctx: Ctx, ref: SbomName) -> Sbom:
    build = builds.in_version(ctx, ref.build)
    found = ctx.uow.sboms.get(build.id, ref.name)
    if found is None:
        raise NotFound("build {id} has no SBOM named {name!r}", id=build.id, name=ref.name[:80])
    return found


def by_id(ctx: Ctx, sbom_id: str) -> Sbom:
    """An SBOM by id alone, for a download link that was signed for it (the link is the authority)."""
    found = ctx.uow.sboms.get_by_id(sbom_id)
    if found is None:
        raise NotFound("this SBOM no longer exists")
    return found
