"""The URL GetRegistryTFCRunTaskAPI gives out, where HCP Terraform sends its run-task requests. Public
(Terraform has no packyard token): the request is authenticated by its HMAC signature with the
registry's run-task key, and the URL's id is all it names. It answers 200 at once and does the work in
the background (run_task.py), as Terraform expects."""

from __future__ import annotations

import msgspec

from packyard import run_task
from packyard.domain import registry as registries
from packyard.domain.context import Ctx
from packyard.domain.errors import InvalidArgument, Unauthenticated
from packyard.domain.models import Registry
from packyard.http.request import Request
from packyard.pipeline.services import Services
from packyard.storage.raw import Conn
from packyard.storage.unit_of_work import SqlUnitOfWork

REFUSED = "the run task request's X-Tfc-Task-Signature does not match this run task's HMAC key"


async def receive(svc: Services, request: Request) -> bytes:
    api_id, task_type = request.params["api_id"], request.params["task_type"]

    def find(conn: Conn) -> tuple[Registry, str | None]:
        ctx = Ctx(SqlUnitOfWork(conn, svc.vault), svc.rules, svc.clock.now(), "", "")
        return registries.for_run_task(ctx, api_id, task_type)

    registry, key = await svc.db.read(find)
    signature = request.header(b"x-tfc-task-signature") or ""
    if not key or not signature or not run_task.signature_ok(key, request.body, signature):
        raise Unauthenticated(REFUSED)
    try:
        task = msgspec.json.decode(request.body or b"{}", type=run_task.TaskRequest)
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        raise InvalidArgument(f"the run task request is not Terraform's JSON: {exc}") from None
    if task.access_token == run_task.TEST_TOKEN:
        return b"{}"  # Terraform checking the task when it is created or edited
    if not task.access_token or not task.task_result_callback_url:
        raise InvalidArgument("the run task request has no access_token or task_result_callback_url")
    svc.spawn(run_task.perform(svc, registry.organization_id, registry.project_id, task))
    return b"{}"
