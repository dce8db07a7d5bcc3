"""Versions through 2023-01-01: reads, listing, revocation now and at revoke_at (status derived at read
time), restore, inheritance and channel rollback, deletion, and the same objects through 2021-04-30."""

from __future__ import annotations

from datetime import timedelta

from tests.api.hcp_2023.test_publish import publish_2023
from tests.conftest import START, Env
from tests.support.client import error, ok


def _child(env: Env, bucket: str, fingerprint: str, parent_id: str, channel_id: str) -> None:
    """A version built on `parent_id` (as Packer sends it when its source came from a data source)."""
    c = env.client
    ok(c.put(c.p23("/buckets"), json={"name": bucket}))
    ok(c.post(c.p23(f"/buckets/{bucket}/versions"), json={"fingerprint": fingerprint}))
    base = f"/buckets/{bucket}/versions/{fingerprint}/builds"
    build = ok(c.post(c.p23(base), json={"component_type": "amazon-ebs.a", "status": "BUILD_RUNNING"}))["build"]
    ok(
        c.patch(
            c.p23(f"{base}/{build['id']}"),
            json={
                "status": "BUILD_DONE",
                "platform": "aws",
                "artifacts": [{"external_identifier": "ami-child", "region": "us-east-1"}],
                "source_external_identifier": "ami-east",
                "parent_version_id": parent_id,
                "parent_channel_id": channel_id,
            },
        )
    )


def test_list_and_get_versions(env: Env) -> None:
    c = env.client
    v1 = publish_2023(c, "base", "f1")
    ok(c.post(c.p23("/buckets/base/versions"), json={"fingerprint": "open", "template_type": "JSON"}))
    listed = ok(c.get(c.p23("/buckets/base/versions")))
    names = {v["fingerprint"]: (v["name"], v["status"], len(v["builds"])) for v in listed["versions"]}
    assert names == {"f1": ("v1", "VERSION_ACTIVE", 3), "open": ("v0", "VERSION_RUNNING", 0)}
    by_name = ok(c.get(c.p23("/buckets/base/versions"), params={"sorting.order_by": "name desc"}))
    assert [v["name"] for v in by_name["versions"]] == ["v1", "v0"]
    page = ok(c.get(c.p23("/buckets/base/versions"), params={"pagination.page_size": "1"}))
    assert len(page["versions"]) == 1
    token = page["pagination"]["next_page_token"]
    rest = ok(c.get(c.p23("/buckets/base/versions"), params={"pagination.next_page_token": token}))
    assert len(rest["versions"]) == 1
    assert {page["versions"][0]["id"], rest["versions"][0]["id"]} == {
        v1["id"],
        next(v["id"] for v in listed["versions"] if v["fingerprint"] == "open"),
    }
    error(c.get(c.p23("/buckets/nope/versions")), 5, 404)
    error(c.get(c.p23("/buckets/base/versions"), params={"sorting.order_by": "color"}), 3, 400)


def test_revoke_at_turns_revoked_at_read_time_and_restore(env: Env) -> None:
    c = env.client
    publish_2023(c, "base", "f1")
    at = (START + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    scheduled = ok(c.patch(c.p23("/buckets/base/versions/f1"), json={"revoke_at": at, "revocation_message": "cve"}))
    version = scheduled["version"]
    assert version["status"] == "VERSION_REVOCATION_SCHEDULED"
    assert version["revoke_at"] == at.replace("Z", ".000Z")
    assert version["revocation_message"] == "cve"
    assert version["revocation_type"] == "MANUAL"
    assert ok(c.get(c.p23("/buckets/base/channels/latest")))["channel"]["version"]["status"] == (
        "VERSION_REVOCATION_SCHEDULED"
    ), "latest still points at a version scheduled for revocation"
    env.advance(hours=2)
    assert ok(c.get(c.p23("/buckets/base/versions/f1")))["version"]["status"] == "VERSION_REVOKED"
    restored = ok(c.patch(c.p23("/buckets/base/versions/f1"), json={"restore": True}))["version"]
    assert restored["status"] == "VERSION_ACTIVE"
    assert "revoke_at" not in restored
    # Go clients always send revoke_at, as year 1 when unset: that is no revocation.
    unchanged = ok(c.patch(c.p23("/buckets/base/versions/f1"), json={"revoke_at": "0001-01-01T00:00:00.000Z"}))
    assert unchanged["version"]["status"] == "VERSION_ACTIVE"
    error(c.patch(c.p23("/buckets/base/versions/f1"), json={"revoke_in": "soon"}), 3, 400)
    error(c.patch(c.p23("/buckets/base/versions/nope"), json={"revoke_in": "1h"}), 5, 404)


def test_revocation_reaches_descendants_and_rolls_channels_back_by_default(env: Env) -> None:
    c = env.client
    v1 = publish_2023(c, "base", "f1")
    v2 = publish_2023(c, "base", "f2")
    prod = ok(c.post(c.p23("/buckets/base/channels"), json={"name": "prod", "version_fingerprint": "f1"}))["channel"]
    ok(
        c.patch(
            c.p23("/buckets/base/channels/prod"),
            json={"update_mask": "versionFingerprint", "version_fingerprint": "f2"},
        )
    )
    _child(env, "app", "c1", v2["id"], prod["id"])
    revoked = ok(c.patch(c.p23("/buckets/base/versions/f2"), json={"revoke_in": "0s", "revocation_message": "bad"}))
    assert revoked["version"]["status"] == "VERSION_REVOKED"
    assert revoked["operation"]["state"] == "DONE"
    child = ok(c.get(c.p23("/buckets/app/versions/c1")))["version"]
    assert child["status"] == "VERSION_REVOKED"
    assert child["revocation_type"] == "INHERITED"
    assert child["revocation_inherited_from"]["version_id"] == v2["id"]
    assert child["revocation_inherited_from"]["version_name"] == "v2"
    # 2023 rolls channels back unless told not to: prod and latest are on v1 again.
    assert ok(c.get(c.p23("/buckets/base/channels/prod")))["channel"]["version"]["id"] == v1["id"]
    assert ok(c.get(c.p23("/buckets/base/channels/latest")))["channel"]["version"]["id"] == v1["id"]
    # The 2021 tree sees the same revocation.
    it = ok(c.get(c.p("/images/base/iteration"), params={"fingerprint": "f2"}))["iteration"]
    assert it["revocation_type"] == "MANUAL"
    assert it["revocation_message"] == "bad"


def test_disable_rollback_channels_keeps_channels(env: Env) -> None:
    c = env.client
    publish_2023(c, "base", "f1")
    v2 = publish_2023(c, "base", "f2")
    ok(c.post(c.p23("/buckets/base/channels"), json={"name": "prod", "version_fingerprint": "f2"}))
    body = {"revoke_in": "0s", "disable_rollback_channels": True, "skip_descendants_revocation": True}
    revoked = ok(c.patch(c.p23("/buckets/base/versions/f2"), json=body))
    assert "operation" not in revoked
    assert ok(c.get(c.p23("/buckets/base/channels/prod")))["channel"]["version"]["id"] == v2["id"]


def test_delete_version(env: Env) -> None:
    c = env.client
    publish_2023(c, "base", "f1")
    ok(c.delete(c.p23("/buckets/base/versions/f1")))
    error(c.get(c.p23("/buckets/base/versions/f1")), 10, 409)
    error(c.get(c.p("/images/base/iteration"), params={"fingerprint": "f1"}), 10, 409)
    error(c.delete(c.p23("/buckets/base/versions/f1")), 5, 404)
    assert "version" not in ok(c.get(c.p23("/buckets/base/channels/latest")))["channel"]


def test_a_2021_iteration_reads_as_a_2023_version(env: Env) -> None:
    c = env.client
    from tests.support.packer import publish

    published = publish(c, "legacy", "old-fp", ["amazon-ebs.a", "amazon-ebs.b"])
    version = ok(c.get(c.p23("/buckets/legacy/versions/old-fp")))["version"]
    assert version["id"] == published["id"]
    assert version["name"] == "v1"
    assert version["status"] == "VERSION_ACTIVE"
    assert {b["id"] for b in version["builds"]} == {b["id"] for b in published["builds"]}
    for build in version["builds"]:
        assert build["version_id"] == published["id"]
        assert build["platform"]
        assert all(a["external_identifier"] for a in build["artifacts"])
