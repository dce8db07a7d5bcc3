"""Builds through 2023-01-01: addressed inside their version, metadata, artifacts: null, the status
machine Packer drives (heartbeats, FAILED, DONE refused afterwards), SBOM-free paths."""

from __future__ import annotations

import uuid

from tests.api.hcp_2023.test_publish import publish_2023
from tests.conftest import Env
from tests.support.client import error, ok

ULID = "01HZZZZZZZZZZZZZZZZZZZZZZZ"


def test_a_build_is_found_only_inside_its_version(env: Env) -> None:
    c = env.client
    v1 = publish_2023(c, "base", "f1")
    publish_2023(c, "other", "f9")
    build = v1["builds"][0]
    got = ok(c.get(c.p23(f"/buckets/base/versions/f1/builds/{build['id']}")))["build"]
    assert got["id"] == build["id"]
    assert got["metadata"]["packer"]["version"] == "1.11.2"
    assert got["version_id"] == v1["id"]
    # The same id under another version, another bucket, or nothing at all.
    publish_2023(c, "base", "f2")
    for path in (
        f"/buckets/base/versions/f2/builds/{build['id']}",
        f"/buckets/other/versions/f9/builds/{build['id']}",
        f"/buckets/base/versions/f1/builds/{ULID}",
    ):
        error(c.get(c.p23(path)), 5, 404)
        error(c.patch(c.p23(path), json={"status": "BUILD_FAILED"}), 5, 404)
        error(c.delete(c.p23(path)), 5, 404)
    error(c.get(c.p23(f"/buckets/base/versions/nope/builds/{build['id']}")), 5, 404)
    error(c.get(c.p23("/buckets/base/versions/f1/builds/not-a-ulid")), 3, 400)
    # DONE builds can't change (code 9); through 2021 neither.
    error(c.patch(c.p23(f"/buckets/base/versions/f1/builds/{build['id']}"), json={"status": "BUILD_RUNNING"}), 9)
    error(c.patch(c.p(f"/builds/{build['id']}"), json={"updates": {"status": "RUNNING"}}), 9)


def test_status_machine_as_packer_drives_it(env: Env) -> None:
    c = env.client
    ok(c.put(c.p23("/buckets"), json={"name": "base"}))
    ok(c.post(c.p23("/buckets/base/versions"), json={"fingerprint": "f1", "template_type": "HCL2"}))
    run = str(uuid.uuid4())
    base = "/buckets/base/versions/f1/builds"
    body = {"artifacts": None, "component_type": "a.b", "packer_run_uuid": run, "status": "BUILD_UNSET"}
    build = ok(c.post(c.p23(base), json=body))["build"]
    path = f"{base}/{build['id']}"
    running = {"artifacts": None, "packer_run_uuid": run, "status": "BUILD_RUNNING"}
    ok(c.patch(c.p23(path), json=running))
    env.advance(minutes=2)
    beat = ok(c.patch(c.p23(path), json=running))["build"]
    assert beat["status"] == "BUILD_RUNNING"
    assert ok(c.get(c.p23("/buckets/base/versions/f1")))["version"]["status"] == "VERSION_RUNNING"
    # Silent for longer than the heartbeat grace: FAILED at read time.
    env.advance(minutes=30)
    assert ok(c.get(c.p23(path)))["build"]["status"] == "BUILD_FAILED"
    assert ok(c.get(c.p23("/buckets/base/versions/f1")))["version"]["status"] == "VERSION_FAILED"
    # A rerun takes it back to RUNNING, then a failure is reported as Packer >= 1.12 does.
    ok(c.patch(c.p23(path), json=running))
    failed = ok(c.patch(c.p23(path), json={"artifacts": None, "packer_run_uuid": run, "status": "BUILD_FAILED"}))
    assert failed["build"]["status"] == "BUILD_FAILED"
    cancelled = ok(c.patch(c.p23(path), json={"packer_run_uuid": run, "status": "BUILD_CANCELLED"}))
    assert cancelled["build"]["status"] == "BUILD_CANCELLED"
    assert ok(c.get(c.p23("/buckets/base/versions/f1")))["version"]["status"] == "VERSION_CANCELLED"
    # DONE without artifacts is refused; a bad status name is code 3; nothing changed.
    error(c.patch(c.p23(path), json={"status": "BUILD_DONE"}), 9)
    error(c.patch(c.p23(path), json={"status": "DONE"}), 3, 400)
    error(c.patch(c.p23(path), json={"metadata": {"packer": "not an object"}}), 3, 400)
    assert ok(c.get(c.p23(path)))["build"]["status"] == "BUILD_CANCELLED"
    # ListBuilds with no page size returns every build (Packer reads them all in one reply).
    for n in range(150):
        ok(c.post(c.p23(base), json={"component_type": f"c.{n}", "status": "BUILD_UNSET"}))
    assert len(ok(c.get(c.p23(base)))["builds"]) == 151
    error(c.get(c.p23(base), params={"sorting.order_by": "platform"}), 3, 400)
    deleted = ok(c.delete(c.p23(path)))
    assert deleted == {}
    assert len(ok(c.get(c.p23(base)))["builds"]) == 150


def test_metadata_is_kept_and_too_large_metadata_refused(env: Env) -> None:
    c = env.client
    ok(c.put(c.p23("/buckets"), json={"name": "base"}))
    ok(c.post(c.p23("/buckets/base/versions"), json={"fingerprint": "f1"}))
    base = "/buckets/base/versions/f1/builds"
    build = ok(c.post(c.p23(base), json={"component_type": "a.b", "status": "BUILD_RUNNING"}))["build"]
    path = f"{base}/{build['id']}"
    big = {"packer": {"version": "1.12.0", "options": {"vars": ["x" * 1000] * 70}}}
    error(c.patch(c.p23(path), json={"metadata": big}), 3, 400)
    assert "metadata" not in ok(c.get(c.p23(path)))["build"]
    deep: object = "bottom"
    for _ in range(400):
        deep = [deep]
    assert "nested more than 32" in error(c.patch(c.p23(path), json={"metadata": {"packer": {"a": deep}}}), 3, 400)
    error(c.post(c.p23(base), json={"component_type": "x.y", "metadata": {"vcs": {"a": deep}}}), 3, 400)
    nul = {"packer": {"version": "1.12\u0000"}}
    error(c.patch(c.p23(path), json={"metadata": nul}), 3, 400)
    cicd = {"cicd": {"type": "github", "details": {"GITHUB_RUN_ID": "42"}}}
    kept = ok(c.patch(c.p23(path), json={"metadata": cicd, "status": "BUILD_RUNNING"}))["build"]
    assert kept["metadata"] == cicd
    # A later heartbeat without metadata keeps it; the 2021 tree's update does too.
    ok(c.patch(c.p23(path), json={"status": "BUILD_RUNNING", "artifacts": None}))
    ok(c.patch(c.p(f"/builds/{build['id']}"), json={"updates": {"status": "RUNNING"}}))
    assert ok(c.get(c.p23(path)))["build"]["metadata"] == cicd
