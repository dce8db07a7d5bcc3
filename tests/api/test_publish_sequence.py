"""The Packer publish sequence of client-compatibility.md section C, step by step, as Packer 1.9 sends it."""

from __future__ import annotations

import uuid
from typing import Any

import httpx

from tests.conftest import Env
from tests.support.client import error, ok
from tests.support.packer import publish


def test_packer_publish_sequence_step_by_step(env: Env) -> None:
    c = env.client
    run = str(uuid.uuid4())

    # 2. bucket upsert: PUT creates, a second PUT answers code 6 and Packer PATCHes instead.
    created = ok(c.put(c.p("/images"), json={"bucket_slug": "ubuntu", "description": "base", "labels": {"team": "a"}}))
    assert created["bucket"]["slug"] == "ubuntu"
    assert created["bucket"]["platforms"] == []
    error(c.put(c.p("/images"), json={"bucket_slug": "ubuntu", "description": "base"}), 6, 409)
    patched = ok(c.patch(c.p("/images/ubuntu"), json={"description": "base images", "platforms": None}))
    assert patched["bucket"]["description"] == "base images"
    assert patched["bucket"]["labels"] == {"team": "a"}, "absent labels leave labels alone"

    # 3. the iteration lookup by fingerprint answers code 10 (ABORTED), then Packer creates it.
    error(c.get(c.p("/images/ubuntu/iteration"), params={"fingerprint": "abc123"}), 10, 409)
    iteration = ok(c.post(c.p("/images/ubuntu/iterations"), json={"fingerprint": "abc123", "template_type": "HCL2"}))
    it = iteration["iteration"]
    assert it["fingerprint"] == "abc123"
    assert it["template_type"] == "HCL2"
    assert it["builds"] == []
    assert "incremental_version" not in it
    assert "complete" not in it
    assert "revoke_at" not in it
    error(c.post(c.p("/images/ubuntu/iterations"), json={"fingerprint": "abc123"}), 6, 409)

    # 4. list builds: none yet, all in one reply.
    listed = ok(c.get(c.p(f"/images/ubuntu/iterations/{it['id']}/builds")))
    assert listed["builds"] == []

    # 5. concurrent CreateBuild, one per source; a repeat answers code 6.
    async def create_all() -> list[httpx.Response]:
        import asyncio

        return list(
            await asyncio.gather(
                *[
                    c.arequest(
                        "POST",
                        c.p(f"/images/ubuntu/iterations/{it['id']}"),
                        json={
                            "fingerprint": "abc123",
                            "build": {
                                "component_type": comp,
                                "packer_run_uuid": run,
                                "status": "UNSET",
                                "images": None,
                            },
                        },
                    )
                    for comp in ("amazon-ebs.east", "amazon-ebs.west", "googlecompute.eu")
                ]
            )
        )

    responses = c.loop.run_until_complete(create_all())
    builds = {ok(r)["build"]["component_type"]: r.json()["build"] for r in responses}
    assert set(builds) == {"amazon-ebs.east", "amazon-ebs.west", "googlecompute.eu"}
    assert all(b["status"] == "UNSET" and b["images"] == [] for b in builds.values())
    dup = {"build": {"component_type": "amazon-ebs.east", "status": "UNSET"}}
    error(c.post(c.p(f"/images/ubuntu/iterations/{it['id']}"), json=dup), 6, 409)

    # 6-7. RUNNING, then a heartbeat (the same PATCH two minutes later).
    for b in builds.values():
        running = ok(
            c.patch(
                c.p(f"/builds/{b['id']}"),
                json={"updates": {"packer_run_uuid": run, "status": "RUNNING", "images": None}},
            )
        )
        assert running["build"]["status"] == "RUNNING"
    env.clock.advance(minutes=2)
    for b in builds.values():
        ok(
            c.patch(
                c.p(f"/builds/{b['id']}"),
                json={"updates": {"packer_run_uuid": run, "status": "RUNNING", "images": None}},
            )
        )

    # 10. DONE with images; the iteration completes only when the last build is DONE.
    def done(build_id: str, provider: str, region: str) -> dict[str, Any]:
        body = {
            "updates": {
                "packer_run_uuid": run,
                "cloud_provider": provider,
                "labels": {"git_sha": "deadbeef"},
                "status": "DONE",
                "images": [{"image_id": f"img-{region}", "region": region}],
            }
        }
        return dict(ok(c.patch(c.p(f"/builds/{build_id}"), json=body))["build"])

    done(builds["amazon-ebs.east"]["id"], "aws", "us-east-1")
    done(builds["amazon-ebs.west"]["id"], "aws", "us-west-2")
    mid = ok(c.get(c.p("/images/ubuntu/iteration"), params={"fingerprint": "abc123"}))["iteration"]
    assert "complete" not in mid
    assert "incremental_version" not in mid
    last = done(builds["googlecompute.eu"]["id"], "gce", "europe-west1")
    assert last["images"][0]["image_id"] == "img-europe-west1"
    assert last["images"][0]["id"] != last["images"][0]["image_id"]

    final = ok(c.get(c.p("/images/ubuntu/iteration"), params={"fingerprint": "abc123"}))["iteration"]
    assert final["complete"] is True
    assert final["incremental_version"] == 1
    assert [b["status"] for b in final["builds"]] == ["DONE", "DONE", "DONE"]
    bucket = ok(c.get(c.p("/images/ubuntu")))["bucket"]
    assert bucket["latest_version"] == 1
    assert bucket["iteration_count"] == "1"
    assert bucket["platforms"] == ["aws", "gce"]
    assert bucket["latest_iteration"]["id"] == final["id"]
    assert len(bucket["latest_iteration"]["builds"]) == 3

    # A DONE build can't change; a complete iteration takes no new builds.
    error(c.patch(c.p(f"/builds/{last['id']}"), json={"updates": {"status": "RUNNING"}}), 9, 400)
    more = {"build": {"component_type": "docker.x", "status": "UNSET"}}
    error(c.post(c.p(f"/images/ubuntu/iterations/{final['id']}"), json=more), 9, 400)


def test_rerun_same_fingerprint_after_failed_build(env: Env) -> None:
    c = env.client
    first = publish(c, "web", "fp-rerun", ["amazon-ebs.a", "amazon-ebs.b"], fail={"amazon-ebs.b"})
    assert "complete" not in first
    statuses = {b["component_type"]: b["status"] for b in first["builds"]}
    assert statuses == {"amazon-ebs.a": "DONE", "amazon-ebs.b": "FAILED"}
    assert ok(c.get(c.p("/images/web")))["bucket"].get("latest_version") is None

    # Packer re-runs with the same fingerprint: the DONE build is skipped, the FAILED one runs again.
    second = publish(c, "web", "fp-rerun", ["amazon-ebs.a", "amazon-ebs.b"])
    assert second["id"] == first["id"]
    assert second["complete"] is True
    assert second["incremental_version"] == 1

    third = publish(c, "web", "fp-next", ["amazon-ebs.a", "amazon-ebs.b"])
    assert third["incremental_version"] == 2
    bucket = ok(c.get(c.p("/images/web")))["bucket"]
    assert bucket["latest_version"] == 2
    assert bucket["iteration_count"] == "2"
    assert bucket["latest_iteration"]["id"] == third["id"]
