"""The Terraform run task's far side (shared/docs/integrations.md section 1): what HCP Terraform sends
to the URL GetRegistryTFCRunTaskAPI gives out, and the work done after answering it.

HCP Terraform POSTs a signed request (X-Tfc-Task-Signature: hex HMAC-SHA512 of the raw body with the
registry's key) and expects 200 at once; packyard then fetches the plan's JSON with the request's
access token, reads which images the plan uses (domain/run_task.py decides) and PATCHes the verdict to
the request's callback URL. Outbound requests are bounded in time, redirects and size, and carry the
token only to where Terraform said (httpx drops Authorization on a redirect to another host).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from collections.abc import Iterator, Mapping
from typing import Any

import httpx
import msgspec

from packyard.domain import registry as registries
from packyard.domain import run_task
from packyard.domain.context import Ctx
from packyard.domain.run_task import ImageUse, Level, Verdict, VersionUse
from packyard.pipeline.services import Services
from packyard.storage.raw import Conn
from packyard.storage.unit_of_work import SqlUnitOfWork

log = logging.getLogger("packyard.run_task")

TIMEOUT_SECONDS = 10.0
MAX_PLAN_BYTES = 64 * 1024 * 1024
MAX_REDIRECTS = 3
# What Terraform sends as access_token when the task is created or edited: answer, do nothing.
TEST_TOKEN = "test-token"  # noqa: S105 - a documented marker, not a secret

# Data sources whose resolved version the task checks, and the attributes that name it.
DATA_SOURCES = {
    "hcp_packer_version": ("id", "fingerprint"),
    "hcp_packer_artifact": ("", "version_fingerprint"),
    "hcp_packer_iteration": ("ulid", "fingerprint"),
    "hcp_packer_image": ("iteration_id", ""),
}
# Resource attributes that hold an image id, at any depth (aws ami/image_id, azurerm source_image_id,
# google boot disks' image, ...).
IMAGE_ATTRIBUTES = frozenset({"ami", "image_id", "source_image_id", "image"})


class Capabilities(msgspec.Struct):
    outcomes: bool = False


class TaskRequest(msgspec.Struct):
    """The fields of Terraform's request that packyard uses (payload_version 1); the rest is ignored."""

    access_token: str = ""
    stage: str = ""
    task_result_id: str = ""
    task_result_callback_url: str = ""
    plan_json_api_url: str = ""
    run_id: str = ""
    workspace_name: str = ""
    organization_name: str = ""
    capabilities: Capabilities | None = None


def signature_ok(key: str, body: bytes, header: str) -> bool:
    expected = hmac.new(key.encode(), body, hashlib.sha512).hexdigest()
    return hmac.compare_digest(expected, header.strip().lower())


# ---- reading a plan


def _modules(module: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
    yield module
    for child in module.get("child_modules") or []:
        if isinstance(child, Mapping):
            yield from _modules(child)


def _strings(value: Any, names: frozenset[str], path: str = "") -> Iterator[tuple[str, str]]:
    """(attribute path, value) of every string under an attribute named in `names`, at any depth."""
    if isinstance(value, Mapping):
        for key, item in value.items():
            where = f"{path}.{key}" if path else str(key)
            if key in names and isinstance(item, str) and item:
                yield where, item
            else:
                yield from _strings(item, names, where)
    elif isinstance(value, list):
        for n, item in enumerate(value):
            yield from _strings(item, names, f"{path}[{n}]")


def plan_uses(plan: Mapping[str, Any]) -> tuple[list[VersionUse], list[ImageUse]]:
    """The HCP Packer data sources a plan read, and the image ids its created, replaced or updated
    resources are given (Terraform's JSON plan format)."""
    versions: list[VersionUse] = []
    state = plan.get("prior_state") or {}
    root = (state.get("values") or {}).get("root_module") if isinstance(state, Mapping) else None
    if isinstance(root, Mapping):
        for module in _modules(root):
            for resource in module.get("resources") or []:
                if not isinstance(resource, Mapping) or resource.get("mode") != "data":
                    continue
                names = DATA_SOURCES.get(str(resource.get("type")))
                values = resource.get("values")
                if names is None or not isinstance(values, Mapping):
                    continue
                id_name, fingerprint_name = names
                versions.append(
                    VersionUse(
                        address=str(resource.get("address", "")),
                        bucket_slug=str(values.get("bucket_name") or ""),
                        iteration_id=str(values.get(id_name) or "") if id_name else "",
                        fingerprint=str(values.get(fingerprint_name) or "") if fingerprint_name else "",
                    )
                )
    images: list[ImageUse] = []
    for change in plan.get("resource_changes") or []:
        if not isinstance(change, Mapping) or change.get("mode") == "data":
            continue
        body = change.get("change") or {}
        actions = body.get("actions") or [] if isinstance(body, Mapping) else []
        if not ({"create", "update"} & set(actions)):
            continue
        for attribute, value in _strings(body.get("after"), IMAGE_ATTRIBUTES):
            images.append(ImageUse(str(change.get("address", "")), attribute, value, creates="create" in actions))
    return versions, images


# ---- the result


_TAG = {Level.ERROR: ("Revoked", "error"), Level.WARNING: ("Warning", "warning"), Level.OK: ("Passed", "none")}


def result_body(verdict: Verdict, outcomes: bool) -> dict[str, Any]:
    """The task result Terraform's callback takes (JSON:API, `task-results`)."""
    attributes = {"status": "passed" if verdict.passed else "failed", "message": verdict.summary()[:500]}
    data: dict[str, Any] = {"type": "task-results", "attributes": attributes}
    if outcomes:
        data["relationships"] = {
            "outcomes": {
                "data": [
                    {
                        "type": "task-result-outcomes",
                        "attributes": {
                            "outcome-id": f"packyard-{n}",
                            "description": f"{f.address}: {f.message}"[:300],
                            "tags": {"Status": [{"label": _TAG[f.level][0], "level": _TAG[f.level][1]}]},
                        },
                    }
                    for n, f in enumerate(verdict.findings)
                ]
            }
        }
    return {"data": data}


async def _fetch_plan(client: httpx.AsyncClient, url: str, token: str) -> Any:
    async with client.stream("GET", url, headers={"Authorization": f"Bearer {token}"}) as response:
        response.raise_for_status()
        size = 0
        chunks: list[bytes] = []
        async for chunk in response.aiter_bytes():
            size += len(chunk)
            if size > MAX_PLAN_BYTES:
                raise ValueError(f"the plan is larger than {MAX_PLAN_BYTES} bytes")
            chunks.append(chunk)
    return msgspec.json.decode(b"".join(chunks))


async def perform(services: Services, organization_id: str, project_id: str, task: TaskRequest) -> None:
    """Fetch the plan, decide, report. Failures to fetch or decide are reported to Terraform as a failed
    result with the reason; a failure to report is logged (without the token)."""
    transport_limits = httpx.Limits(max_connections=4)
    async with httpx.AsyncClient(
        timeout=TIMEOUT_SECONDS, follow_redirects=True, max_redirects=MAX_REDIRECTS, limits=transport_limits
    ) as client:
        outcomes = bool(task.capabilities and task.capabilities.outcomes)
        try:
            if not task.plan_json_api_url:
                raise ValueError(f"stage {task.stage or '?'} sends no plan; run the task post-plan")
            plan = await _fetch_plan(client, task.plan_json_api_url, task.access_token)
            if not isinstance(plan, Mapping):
                raise ValueError("the plan is not a JSON object")
            versions, images = plan_uses(plan)

            def decide(conn: Conn) -> Verdict:
                now = services.clock.now()
                ctx = Ctx(SqlUnitOfWork(conn, services.vault), services.rules, now, organization_id, project_id)
                return run_task.decide(ctx, versions, images, registries.run_task_behaviour(ctx))

            body = result_body(await services.db.read(decide), outcomes)
        except Exception as exc:
            log.warning("run task %s: %s", task.run_id or task.task_result_id, exc)
            message = f"packyard could not check this plan: {exc}"[:500]
            body = {"data": {"type": "task-results", "attributes": {"status": "failed", "message": message}}}
        try:
            response = await client.patch(
                task.task_result_callback_url,
                content=msgspec.json.encode(body),
                headers={"Authorization": f"Bearer {task.access_token}", "Content-Type": "application/vnd.api+json"},
            )
            if response.status_code >= 300:
                log.warning("run task %s: the callback answered %s", task.run_id, response.status_code)
        except httpx.HTTPError as exc:
            log.warning("run task %s: the callback failed: %s", task.run_id, type(exc).__name__)
