"""Packer's publish sequence (client-compatibility.md section C), step by step, as the Go client sends it."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from tests.support.client import ApiClient, ok


def upsert_bucket(client: ApiClient, slug: str, labels: dict[str, str] | None = None) -> dict[str, Any]:
    r = client.put(
        client.p("/images"),
        json={"bucket_slug": slug, "description": f"{slug} images", "labels": labels or {}},
    )
    if r.status_code == 409 and r.json()["code"] == 6:
        r = client.patch(client.p(f"/images/{slug}"), json={"description": f"{slug} images", "platforms": None})
    return dict(ok(r)["bucket"])


def find_or_create_iteration(client: ApiClient, slug: str, fingerprint: str) -> dict[str, Any]:
    r = client.get(client.p(f"/images/{slug}/iteration"), params={"fingerprint": fingerprint})
    if r.status_code == 409 and r.json()["code"] == 10:
        r = client.post(
            client.p(f"/images/{slug}/iterations"), json={"fingerprint": fingerprint, "template_type": "HCL2"}
        )
    return dict(ok(r)["iteration"])


def publish(
    client: ApiClient,
    slug: str,
    fingerprint: str,
    components: list[str],
    *,
    fail: set[str] | None = None,
    source: dict[str, str] | None = None,
) -> dict[str, Any]:
    """One `packer build`: bucket upsert, iteration lookup/create, concurrent CreateBuild, RUNNING, DONE."""
    run_uuid = str(uuid.uuid4())
    upsert_bucket(client, slug)
    iteration = find_or_create_iteration(client, slug, fingerprint)
    assert not iteration.get("complete"), "Packer refuses to publish into a complete iteration"
    builds = ok(client.get(client.p(f"/images/{slug}/iterations/{iteration['id']}/builds")))["builds"]
    existing = {b["component_type"]: b for b in builds}

    async def create_missing() -> list[Any]:
        calls = [
            client.arequest(
                "POST",
                client.p(f"/images/{slug}/iterations/{iteration['id']}"),
                json={
                    "fingerprint": fingerprint,
                    "build": {
                        "component_type": c,
                        "packer_run_uuid": run_uuid,
                        "status": "UNSET",
                        "images": None,
                    },
                },
            )
            for c in components
            if c not in existing
        ]
        return list(await asyncio.gather(*calls))

    for response in client.loop.run_until_complete(create_missing()):
        existing[ok(response)["build"]["component_type"]] = response.json()["build"]
    for component in components:
        b = existing[component]
        if b["status"] == "DONE" or b.get("images"):
            continue
        running = {"updates": {"packer_run_uuid": run_uuid, "status": "RUNNING", "images": None}}
        ok(client.patch(client.p(f"/builds/{b['id']}"), json=running))
        ok(client.patch(client.p(f"/builds/{b['id']}"), json=running))  # heartbeat
        if fail and component in fail:
            ok(client.patch(client.p(f"/builds/{b['id']}"), json={"updates": {"status": "FAILED", "images": None}}))
            continue
        done = {
            "updates": {
                "packer_run_uuid": run_uuid,
                "cloud_provider": "aws",
                "labels": {"os": "ubuntu"},
                "status": "DONE",
                "images": [
                    {"image_id": f"ami-{component[-4:]}-1", "region": "us-east-1"},
                    {"image_id": f"ami-{component[-4:]}-2", "region": "eu-west-1"},
                ],
                **(source or {}),
            }
        }
        ok(client.patch(client.p(f"/builds/{b['id']}"), json=done))
    return dict(ok(client.get(client.p(f"/images/{slug}/iteration"), params={"fingerprint": fingerprint}))["iteration"])
