"""The run task's far side: HCP Terraform's signed request to the URL GetRegistryTFCRunTaskAPI gives
out, answered at once, then the plan fetched from a stand-in Terraform on 127.0.0.1 and the verdict
PATCHed to its callback (shared/docs/integrations.md section 1)."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import socket
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import uvicorn

from tests.api.hcp_2023.test_publish import publish_2023
from tests.conftest import Env
from tests.support.client import error, ok

TOKEN = "atlas-run-task-token"


@dataclass
class StandIn:
    """HCP Terraform, as far as a run task sees it: the plan's JSON behind a redirect, and the callback."""

    plan: dict[str, Any] = field(default_factory=dict)
    results: list[tuple[dict[str, str], dict[str, Any]]] = field(default_factory=list)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)
    port: int = 0

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        headers = {k.decode(): v.decode() for k, v in scope["headers"]}
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        status, extra, answer = 404, [], b"{}"
        if scope["path"] == "/api/v2/plans/plan-1/json-output":
            if headers.get("authorization") == f"Bearer {TOKEN}":
                status, extra = 307, [(b"location", f"http://127.0.0.1:{self.port}/signed/plan-1".encode())]
            else:
                status = 401
        elif scope["path"] == "/signed/plan-1":
            status, answer = 200, json.dumps(self.plan).encode()
        elif scope["path"] == "/api/v2/task-results/result-1/callback" and scope["method"] == "PATCH":
            self.results.append((headers, json.loads(body)))
            self.arrived.set()
            status = 200
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(b"content-type", b"application/json"), *extra],
            }
        )
        await send({"type": "http.response.body", "body": answer})


@pytest.fixture
def terraform(env: Env) -> Iterator[StandIn]:
    stand_in = StandIn()
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    stand_in.port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(stand_in, log_level="warning", lifespan="off"))
    loop = env.client.loop
    task = loop.create_task(server.serve(sockets=[sock]))
    loop.run_until_complete(asyncio.sleep(0))
    while not server.started:
        loop.run_until_complete(asyncio.sleep(0.01))
    yield stand_in
    server.should_exit = True
    loop.run_until_complete(task)
    sock.close()


def signed(key: str, payload: dict[str, Any]) -> tuple[bytes, dict[str, str]]:
    body = json.dumps(payload).encode()
    signature = hmac.new(key.encode(), body, hashlib.sha512).hexdigest()
    return body, {"X-Tfc-Task-Signature": signature, "Content-Type": "application/json"}


def request_for(stand_in: StandIn, **extra: Any) -> dict[str, Any]:
    base = f"http://127.0.0.1:{stand_in.port}/api/v2"
    return {
        "payload_version": 1,
        "access_token": TOKEN,
        "stage": "post_plan",
        "is_speculative": False,
        "task_result_id": "result-1",
        "task_result_enforcement_level": "mandatory",
        "task_result_callback_url": f"{base}/task-results/result-1/callback",
        "run_id": "run-1",
        "workspace_name": "prod",
        "organization_name": "acme",
        "plan_json_api_url": f"{base}/plans/plan-1/json-output",
        "capabilities": {"outcomes": True},
        **extra,
    }


def instance(address: str, actions: list[str], **after: Any) -> dict[str, Any]:
    return {
        "address": address,
        "mode": "managed",
        "type": address.split(".", maxsplit=1)[0],
        "change": {"actions": actions, "after": after},
    }


def test_a_plan_with_a_revoked_image_fails_and_says_why(env: Env, terraform: StandIn) -> None:
    c = env.client
    old = publish_2023(c, "base", "f1")
    new = publish_2023(c, "base", "f2")
    ok(c.patch(c.p23("/buckets/base/versions/f1"), json={"revoke_in": "0s", "revocation_message": "CVE-2024-1"}))
    ok(c.patch(c.p23("/runtasks/config"), json={"on_untracked_image": "FAIL"}))
    task = ok(c.get(c.p23("/runtasks/validation")))
    path = task["api_url"].removeprefix("http://packyard.test")
    terraform.plan = {
        "format_version": "1.2",
        "prior_state": {
            "values": {
                "root_module": {
                    "resources": [
                        {
                            "address": "data.hcp_packer_version.base",
                            "mode": "data",
                            "type": "hcp_packer_version",
                            "values": {"id": new["id"], "bucket_name": "base", "fingerprint": "f2"},
                        },
                    ],
                    "child_modules": [
                        {
                            "resources": [
                                {
                                    "address": "module.old.data.hcp_packer_artifact.a",
                                    "mode": "data",
                                    "type": "hcp_packer_artifact",
                                    "values": {"bucket_name": "base", "version_fingerprint": "f1"},
                                },
                            ]
                        }
                    ],
                }
            }
        },
        "resource_changes": [
            instance("aws_instance.web", ["create"], ami="ami-east"),  # in both versions: f1 is revoked
            instance("aws_instance.kept", ["update"], ami="ami-west"),
            instance("aws_launch_template.lt", ["create"], image_id="ami-nobody-knows"),
            instance(
                "google_compute_instance.vm", ["delete"], boot_disk=[{"initialize_params": [{"image": "ami-east"}]}]
            ),
        ],
    }
    body, headers = signed(task["hmac_key"], request_for(terraform))
    answered = c.post(path, content=body, headers=headers)
    assert answered.status_code == 200, answered.text
    c.loop.run_until_complete(asyncio.wait_for(terraform.arrived.wait(), timeout=10))
    ((headers_seen, result),) = terraform.results
    assert headers_seen["authorization"] == f"Bearer {TOKEN}"
    assert headers_seen["content-type"] == "application/vnd.api+json"
    attributes = result["data"]["attributes"]
    assert result["data"]["type"] == "task-results"
    assert attributes["status"] == "failed"
    outcomes = {
        o["attributes"]["description"].split(":")[0]: o["attributes"]
        for o in result["data"]["relationships"]["outcomes"]["data"]
    }
    assert outcomes["aws_instance.web"]["tags"]["Status"][0]["level"] == "error"
    assert "CVE-2024-1" in outcomes["aws_instance.web"]["description"]
    assert outcomes["aws_instance.kept"]["tags"]["Status"][0]["level"] == "warning", "an update is only warned"
    assert outcomes["aws_launch_template.lt"]["tags"]["Status"][0]["level"] == "error", "untracked: FAIL"
    assert outcomes["data.hcp_packer_version.base"]["tags"]["Status"][0]["level"] == "none"
    assert outcomes["module.old.data.hcp_packer_artifact.a"]["tags"]["Status"][0]["level"] == "warning"
    assert "google_compute_instance.vm" not in outcomes, "a deletion uses no image"
    assert old["id"]


def test_a_clean_plan_passes_and_the_verification_request_does_nothing(env: Env, terraform: StandIn) -> None:
    c = env.client
    publish_2023(c, "base", "f1")
    task = ok(c.get(c.p23("/runtasks/validation")))
    path = task["api_url"].removeprefix("http://packyard.test")
    body, headers = signed(task["hmac_key"], request_for(terraform, access_token="test-token"))
    assert c.post(path, content=body, headers=headers).status_code == 200
    c.loop.run_until_complete(asyncio.sleep(0.05))
    assert terraform.results == []
    terraform.plan = {
        "resource_changes": [
            instance("aws_instance.web", ["create"], ami="ami-west"),
            instance("aws_instance.x", ["create"], ami="ami-other"),
        ]
    }
    body, headers = signed(task["hmac_key"], request_for(terraform, capabilities={"outcomes": False}))
    assert c.post(path, content=body, headers=headers).status_code == 200
    c.loop.run_until_complete(asyncio.wait_for(terraform.arrived.wait(), timeout=10))
    result = terraform.results[0][1]["data"]
    assert result["attributes"]["status"] == "passed", "untracked images are ignored while on_untracked_image is unset"
    assert "relationships" not in result


def test_requests_that_are_not_terraforms_are_refused(env: Env, terraform: StandIn) -> None:
    c = env.client
    task = ok(c.get(c.p23("/runtasks/validation")))
    path = task["api_url"].removeprefix("http://packyard.test")
    body, headers = signed(task["hmac_key"], request_for(terraform))
    error(c.post(path, content=body, headers={**headers, "X-Tfc-Task-Signature": "0" * 128}), 16, 401)
    error(c.post(path, content=body, headers={"Content-Type": "application/json"}), 16, 401)
    error(c.post(path, content=body + b" ", headers=headers), 16, 401)
    unknown = path.replace(path.split("/")[-2], "01HZZZZZZZZZZZZZZZZZZZZZZZ")
    error(c.post(unknown, content=body, headers=headers), 5, 404)
    error(c.post(path.replace("/validation", "/other"), content=body, headers=headers), 5, 404)
    # The old key stops working the moment it is regenerated; the 2021 URL is served too.
    new_key = ok(c.patch(c.p23("/runtasks/hmac"), json={}))["hmac_key"]
    error(c.post(path, content=body, headers=headers), 16, 401)
    old_tree = ok(c.get(c.p("/runtasks/validation")))["api_url"].removeprefix("http://packyard.test")
    body, headers = signed(new_key, request_for(terraform, access_token="test-token"))
    assert c.post(old_tree, content=body, headers=headers).status_code == 200
    garbage, garbage_headers = signed(new_key, {"access_token": 5})
    error(c.post(old_tree, content=garbage, headers=garbage_headers), 3, 400)
    c.loop.run_until_complete(asyncio.sleep(0.05))
    assert terraform.results == []


def test_an_unreachable_plan_is_reported_as_a_failed_check(env: Env, terraform: StandIn) -> None:
    c = env.client
    task = ok(c.get(c.p23("/runtasks/validation")))
    path = task["api_url"].removeprefix("http://packyard.test")
    payload = request_for(terraform, plan_json_api_url=f"http://127.0.0.1:{terraform.port}/api/v2/plans/missing")
    body, headers = signed(task["hmac_key"], payload)
    assert c.post(path, content=body, headers=headers).status_code == 200
    c.loop.run_until_complete(asyncio.wait_for(terraform.arrived.wait(), timeout=10))
    attributes = terraform.results[0][1]["data"]["attributes"]
    assert attributes["status"] == "failed"
    assert "could not check this plan" in attributes["message"]
    assert TOKEN not in attributes["message"]
