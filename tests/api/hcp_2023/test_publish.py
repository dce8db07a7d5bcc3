"""The publish path of client-compatibility-2023.md section B, call for call, as Packer 1.11.1+ sends it
(GetBucket first), with the data sources' reads of section C and what the 2021 tree sees of it."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx

from tests.conftest import Env
from tests.support.client import ApiClient, error, ok

COMPONENTS = ("amazon-ebs.east", "amazon-ebs.west", "googlecompute.eu")
METADATA = {
    "packer": {
        "version": "1.11.2",
        "plugins": [{"name": "amazon", "version": "1.3.2"}, None],
        "options": {"debug": False, "force": False, "only": [], "except": [], "var-files": [], "path": ".", "vars": []},
        "os": {"type": "linux", "details": {"arch": "amd64", "version": "6.1"}},
    },
    "vcs": {
        "type": "git",
        "details": {"ref": "main", "commit": "abc1234", "author": "dev", "has_uncommitted_changes": False},
    },
    "cicd": None,
}


def concurrently(c: ApiClient, calls: list[tuple[str, str, Any]]) -> list[httpx.Response]:
    async def run() -> list[httpx.Response]:
        return list(await asyncio.gather(*[c.arequest(m, p, json=b) for m, p, b in calls]))

    return c.loop.run_until_complete(run())


def publish_2023(
    c: ApiClient, bucket: str, fingerprint: str, components: tuple[str, ...] = COMPONENTS
) -> dict[str, Any]:
    """Packer >= 1.11.1's calls for one `packer build` (section B), asserting what Packer reads."""
    run = str(uuid.uuid4())
    got = c.get(c.p23(f"/buckets/{bucket}"))
    if got.status_code == 404:
        error(got, 5, 404)
        ok(c.put(c.p23("/buckets"), json={"name": bucket, "description": "base images", "labels": {"team": "a"}}))
    else:
        ok(got)
        ok(c.patch(c.p23(f"/buckets/{bucket}"), json={"description": "base images", "platforms": None}))
    v = f"/buckets/{bucket}/versions/{fingerprint}"
    missing = c.get(c.p23(v))
    if missing.status_code != 200:
        error(missing, 10, 409)
        created = ok(
            c.post(c.p23(f"/buckets/{bucket}/versions"), json={"fingerprint": fingerprint, "template_type": "HCL2"})
        )
        assert created["version"]["id"]
    version = ok(c.get(c.p23(v)))["version"]
    assert version["name"] == "v0", "Packer refuses a complete version"
    assert version["template_type"] == "HCL2"
    listed = ok(c.get(c.p23(v + "/builds")))["builds"]
    have = {b["component_type"]: b for b in listed}
    new = [comp for comp in components if comp not in have]
    for response in concurrently(
        c,
        [
            (
                "POST",
                c.p23(v + "/builds"),
                {"artifacts": None, "component_type": comp, "packer_run_uuid": run, "status": "BUILD_UNSET"},
            )
            for comp in new
        ],
    ):
        build = ok(response)["build"]
        assert build["status"] == "BUILD_UNSET"
        assert build["packer_run_uuid"] == run, "Packer echoes the reply's run uuid"
        assert build["version_id"] == version["id"]
        assert build["artifacts"] == []
        have[build["component_type"]] = build
    enforced = ok(c.get(c.p23(f"/enforced_blocks/bucket/{bucket}")))
    assert enforced == {"enforced_block_detail": []}
    todo = [b for b in have.values() if b["status"] != "BUILD_DONE" and not b["artifacts"]]
    for response in concurrently(
        c,
        [
            (
                "PATCH",
                c.p23(f"{v}/builds/{b['id']}"),
                {"artifacts": None, "packer_run_uuid": run, "status": "BUILD_RUNNING"},
            )
            for b in todo
        ],
    ):
        assert ok(response)["build"]["status"] == "BUILD_RUNNING"
    done = concurrently(
        c,
        [
            (
                "PATCH",
                c.p23(f"{v}/builds/{b['id']}"),
                {
                    "artifacts": [{"external_identifier": f"ami-{b['component_type'][-4:]}", "region": "us-east-1"}],
                    "labels": {"os": "ubuntu"},
                    "metadata": METADATA,
                    "packer_run_uuid": run,
                    "platform": "aws" if b["component_type"].startswith("amazon") else "gce",
                    "status": "BUILD_DONE",
                },
            )
            for b in todo
        ],
    )
    for response in done:
        assert ok(response)["build"]["status"] == "BUILD_DONE"
    final: dict[str, Any] = ok(c.get(c.p23(v)))["version"]
    return final


def test_a_packer_publish_completes_a_version_named_v1(env: Env) -> None:
    c = env.client
    version = publish_2023(c, "ubuntu", "fp-1")
    assert version["name"] == "v1"
    assert version["status"] == "VERSION_ACTIVE"
    assert version["bucket_name"] == "ubuntu"
    assert len(version["builds"]) == 3
    for build in version["builds"]:
        assert build["metadata"]["packer"]["version"] == "1.11.2"
        assert build["metadata"]["vcs"]["details"]["commit"] == "abc1234"
        assert "cicd" not in build["metadata"]
        assert build["metadata"]["packer"]["plugins"] == [{"name": "amazon", "version": "1.3.2"}], "nulls left out"
        assert build["labels"] == {"os": "ubuntu"}
    # The managed channel follows it at once: Packer >= 1.15 reads it right after its last DONE.
    latest = ok(c.get(c.p23("/buckets/ubuntu/channels/latest")))["channel"]
    assert latest["managed"] is True
    assert latest["version"]["id"] == version["id"]
    assert latest["version"]["status"] == "VERSION_ACTIVE"
    bucket = ok(c.get(c.p23("/buckets/ubuntu")))["bucket"]
    assert bucket["latest_version"]["name"] == "v1"
    assert bucket["version_count"] == "1"
    assert sorted(bucket["platforms"]) == ["aws", "gce"]
    assert bucket["resource_name"] == f"packer/project/{c.project_id}/bucket/ubuntu"
    assert bucket["location"] == {"organization_id": c.org_id, "project_id": c.project_id}

    # The same objects through the 2021 tree: the iteration is the version, same ids.
    it = ok(c.get(c.p("/images/ubuntu/iteration"), params={"fingerprint": "fp-1"}))["iteration"]
    assert it["id"] == version["id"]
    assert it["incremental_version"] == 1
    assert it["complete"] is True
    assert {b["id"] for b in it["builds"]} == {b["id"] for b in version["builds"]}


def test_a_second_publish_is_v2_and_a_resume_keeps_v0(env: Env) -> None:
    c = env.client
    publish_2023(c, "ubuntu", "fp-1")
    # A run that dies after creating its builds: the version stays v0 and INCOMPLETE.
    version = ok(c.post(c.p23("/buckets/ubuntu/versions"), json={"fingerprint": "fp-2", "template_type": "HCL2"}))[
        "version"
    ]
    assert version["name"] == "v0"
    assert version["status"] == "VERSION_RUNNING"
    base = "/buckets/ubuntu/versions/fp-2/builds"
    ok(
        c.post(
            c.p23(base),
            json={
                "component_type": COMPONENTS[0],
                "packer_run_uuid": str(uuid.uuid4()),
                "status": "BUILD_UNSET",
                "artifacts": None,
            },
        )
    )
    assert ok(c.get(c.p23("/buckets/ubuntu/versions/fp-2")))["version"]["status"] == "VERSION_INCOMPLETE"
    # HCP_PACKER_BUILD_FINGERPRINT=fp-2: the same calls finish it.
    resumed = publish_2023(c, "ubuntu", "fp-2")
    assert resumed["name"] == "v2"
    assert len(resumed["builds"]) == 3


def test_publish_errors_are_the_codes_packer_branches_on(env: Env) -> None:
    c = env.client
    error(c.get(c.p23("/buckets/nope")), 5, 404)
    ok(c.put(c.p23("/buckets"), json={"name": "base"}))
    error(c.put(c.p23("/buckets"), json={"name": "base"}), 6, 409)
    error(c.get(c.p23("/buckets/base/versions/unknown")), 10, 409)
    error(c.get(c.p23("/buckets/nope/versions/unknown")), 5, 404)
    ok(c.post(c.p23("/buckets/base/versions"), json={"fingerprint": "f1"}))
    error(c.post(c.p23("/buckets/base/versions"), json={"fingerprint": "f1"}), 6, 409)
    build = {"component_type": "a.b", "status": "BUILD_UNSET", "artifacts": None}
    ok(c.post(c.p23("/buckets/base/versions/f1/builds"), json=build))
    error(c.post(c.p23("/buckets/base/versions/f1/builds"), json=build), 6, 409)
    error(c.get(c.p23("/enforced_blocks/bucket/nope")), 5, 404)


def test_search_external_artifact_finds_the_build_of_an_ami(env: Env) -> None:
    c = env.client
    v1 = publish_2023(c, "ubuntu", "fp-1")
    publish_2023(c, "debian", "fp-9", components=("amazon-ebs.east",))  # the same AMI id, another bucket
    search = c.p23("/_search/external_artifact")
    found = ok(c.post(search, json={"external_identifier": "ami-west"}))["artifacts"]
    assert len(found) == 1
    assert found[0]["bucket"]["name"] == "ubuntu"
    assert found[0]["version"]["id"] == v1["id"]
    assert found[0]["version"]["name"] == "v1"
    assert found[0]["version"]["status"] == "VERSION_ACTIVE"
    assert found[0]["build"]["component_type"] == "amazon-ebs.west"
    both = ok(c.post(search, json={"external_identifier": "ami-east", "region": "us-east-1", "platform": "aws"}))
    assert sorted(a["bucket"]["name"] for a in both["artifacts"]) == ["debian", "ubuntu"]
    paged = ok(c.post(search, json={"external_identifier": "ami-east"}, params={"pagination.page_size": "1"}))
    assert len(paged["artifacts"]) == 1
    token = paged["pagination"]["next_page_token"]
    rest = ok(c.post(search, json={"external_identifier": "ami-east"}, params={"pagination.next_page_token": token}))
    assert {paged["artifacts"][0]["bucket"]["name"], rest["artifacts"][0]["bucket"]["name"]} == {"debian", "ubuntu"}
    assert ok(c.post(search, json={"external_identifier": "ami-east", "region": "eu-west-1"}))["artifacts"] == []
    assert ok(c.post(search, json={"external_identifier": "ami-east", "platform": "gce"}))["artifacts"] == []
    error(c.post(search, json={}), 3, 400)
    error(c.post(search, json={"external_identifier": "x" * 2000}), 3, 400)
