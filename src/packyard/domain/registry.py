"""The registry of a project: created, deactivated (writes refused), reactivated or purged."""

from __future__ import annotations

import secrets

from packyard.domain.context import Ctx
from packyard.domain.errors import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound, Term
from packyard.domain.models import Registry, RunTaskBehaviour, Tier
from packyard.domain.ports import SealError
from packyard.ids import new_ulid

DEFAULT_TIER = Tier.PLUS  # self-hosted: every feature is available


def _normal_tier(tier: Tier) -> Tier:
    if tier is Tier.PRIVATE_BETA:
        return Tier.STANDARD
    return tier


def _require_project(ctx: Ctx) -> None:
    if ctx.uow.tenants.get_project(ctx.organization_id, ctx.project_id) is None:
        raise NotFound(f"project {ctx.project_id} does not exist in organization {ctx.organization_id}")


def get(ctx: Ctx) -> Registry:
    """The project's registry: the one read with the actor (Ctx.registry), or else storage's."""
    registry = ctx.registry if ctx.registry is not None else ctx.uow.registries.get(ctx.project_id)
    if registry is None:
        _require_project(ctx)
        raise NotFound(
            "project {project} has no registry; create it with {create_registry}",
            subject=Term.REGISTRY,
            project=ctx.project_id,
        )
    return registry


def require_active(ctx: Ctx) -> Registry:
    registry = get(ctx)
    if not registry.activated:
        raise FailedPrecondition(
            "the registry of project {project} is deactivated and refuses writes; "
            "reactivate it with {activate_registry}",
            subject=Term.REGISTRY,
            project=ctx.project_id,
        )
    return registry


def create(ctx: Ctx, tier: Tier) -> Registry:
    _require_project(ctx)
    existing = ctx.uow.registries.get(ctx.project_id)
    tier = _normal_tier(tier) if tier is not Tier.UNSET else DEFAULT_TIER
    if existing is not None:
        if existing.activated:
            raise AlreadyExists(f"project {ctx.project_id} already has an active registry")
        existing.activated = True
        existing.deactivated_at = None
        existing.feature_tier = tier
        existing.updated_at = ctx.now
        ctx.uow.registries.save(existing)
        ctx.registry = existing
        return existing
    registry = Registry(
        id=new_ulid(),
        organization_id=ctx.organization_id,
        project_id=ctx.project_id,
        feature_tier=tier,
        activated=True,
        created_at=ctx.now,
        updated_at=ctx.now,
        run_task_api_id=new_ulid(),
    )
    ctx.uow.registries.add(registry)
    ctx.registry = registry
    return registry


def update(ctx: Ctx, *, tier: Tier, activate: bool) -> Registry:
    registry = get(ctx)
    if tier is not Tier.UNSET:
        registry.feature_tier = _normal_tier(tier)
    if activate:
        registry.activated = True
        registry.deactivated_at = None
    registry.updated_at = ctx.now
    ctx.uow.registries.save(registry)
    ctx.registry = registry
    return registry


def delete(ctx: Ctx, *, hard: bool) -> Registry:
    registry = get(ctx)
    if hard:
        ctx.uow.registries.purge(ctx.project_id)
        ctx.registry = None  # there is none now
        registry.activated = False
        registry.deactivated_at = ctx.now
        return registry
    if registry.activated:
        registry.activated = False
        registry.deactivated_at = ctx.now
        registry.updated_at = ctx.now
        ctx.uow.registries.save(registry)
        ctx.registry = registry
    return registry


RUN_TASK_TYPES = ("validation",)


def run_task_key(ctx: Ctx, task_type: str) -> tuple[Registry, str]:
    """The registry and its run-task HMAC key, made on first use."""
    if task_type not in RUN_TASK_TYPES:
        raise NotFound(f"there is no run task of type {task_type[:40]!r}; the only one is 'validation'")
    registry = get(ctx)
    key = _hmac_key(ctx, ctx.project_id)
    if key is None:
        key = new_hmac_key()
        ctx.uow.registries.set_hmac_key(ctx.project_id, key)
    return registry, key


def for_run_task(ctx: Ctx, run_task_api_id: str, task_type: str) -> tuple[Registry, str | None]:
    """The registry a run-task URL names, and its current key (None until one is made). Used before any
    tenant is known: the URL's id is the only name, and the caller checks the request's signature."""
    if task_type not in RUN_TASK_TYPES or not run_task_api_id:
        raise NotFound("there is no such run task")
    registry = ctx.uow.registries.for_run_task(run_task_api_id)
    if registry is None:
        raise NotFound("there is no such run task")
    return registry, _hmac_key(ctx, registry.project_id)


def _hmac_key(ctx: Ctx, project_id: str) -> str | None:
    """The project's run-task key in clear, or the refusal when this server's secret can't open it."""
    try:
        return ctx.uow.registries.hmac_key(project_id)
    except SealError:
        raise FailedPrecondition(
            "the run-task HMAC key can't be decrypted with this server's secret key "
            "(PACKYARD_SECRET_KEY or <data dir>/secret.key changed); regenerate it with {regenerate_hmac_key}",
            subject=Term.REGISTRY,
        ) from None


def regenerate_hmac_key(ctx: Ctx) -> str:
    require_active(ctx)
    key = new_hmac_key()
    ctx.uow.registries.set_hmac_key(ctx.project_id, key)
    return key


def new_hmac_key() -> str:
    return secrets.token_urlsafe(48)


def run_task_behaviour(ctx: Ctx) -> RunTaskBehaviour:
    """What the Terraform run task does with an image packyard doesn't track (both API trees share it)."""
    get(ctx)
    return ctx.uow.registries.run_task_behaviour(ctx.project_id)


def set_run_task_behaviour(ctx: Ctx, behaviour: RunTaskBehaviour) -> RunTaskBehaviour:
    require_active(ctx)
    if behaviour is RunTaskBehaviour.UNSET:
        raise InvalidArgument("on_untracked_image must be FAIL or WARN")
    ctx.uow.registries.set_run_task_behaviour(ctx.project_id, behaviour)
    return behaviour
