"""Both trees, one truth: every kind of object written through one API version is the same object,
with the same id, read, changed and deleted through the other (issue 17, point 7)."""

from __future__ import annotations

from tests.api.hcp_2023.test_publish import publish_2023
from tests.conftest import Env
from tests.support.client import error, ok
from tests.support.packer import publish


def test_buckets(env: Env) -> None:
    c = env.client
    old = ok(c.put(c.p("/images"), json={"bucket_slug": "made-in-2021", "labels": {"a": "1"}}))["bucket"]
    new = ok(c.get(c.p23("/buckets/made-in-2021")))["bucket"]
    assert (new["id"], new["name"], new["labels"]) == (old["id"], "made-in-2021", {"a": "1"})
    ok(c.patch(c.p23("/buckets/made-in-2021"), json={"description": "changed in 2023"}))
    assert ok(c.get(c.p("/images/made-in-2021")))["bucket"]["description"] == "changed in 2023"
    made = ok(c.put(c.p23("/buckets"), json={"name": "made-in-2023"}))["bucket"]
    assert ok(c.get(c.p("/images/made-in-2023")))["bucket"]["id"] == made["id"]
    error(c.put(c.p("/images"), json={"bucket_slug": "made-in-2023"}), 6, 409)
    ok(c.delete(c.p("/images/made-in-2023")))
    error(c.get(c.p23("/buckets/made-in-2023")), 5, 404)
    listed = {b["name"] for b in ok(c.get(c.p23("/buckets")))["buckets"]}
    assert listed == {"made-in-2021"}


def test_versions_and_builds(env: Env) -> None:
    c = env.client
    ok(c.put(c.p("/images"), json={"bucket_slug": "base"}))
    it = ok(c.post(c.p("/images/base/iterations"), json={"fingerprint": "f1"}))["iteration"]
    build = ok(c.post(c.p(f"/images/base/iterations/{it['id']}"), json={"build": {"component_type": "a.b"}}))["build"]
    # Written in 2021, finished in 2023: the build's id is the same, and so is its iteration.
    path = f"/buckets/base/versions/f1/builds/{build['id']}"
    ok(c.patch(c.p23(path), json={"status": "BUILD_RUNNING"}))
    done = {"status": "BUILD_DONE", "platform": "aws", "artifacts": [{"external_identifier": "ami-1", "region": "r"}]}
    finished = ok(c.patch(c.p23(path), json=done))["build"]
    assert finished["version_id"] == it["id"]
    again = ok(c.get(c.p(f"/builds/{build['id']}")))["build"]
    assert (again["status"], again["cloud_provider"], again["images"][0]["image_id"]) == ("DONE", "aws", "ami-1")
    iteration = ok(c.get(c.p("/images/base/iteration"), params={"iteration_id": it["id"]}))["iteration"]
    assert (iteration["complete"], iteration["incremental_version"]) == (True, 1)
    # Revoked in 2021, REVOKED in 2023; restored in 2023, usable in 2021.
    ok(c.patch(c.p(f"/iterations/{it['id']}"), json={"revoke_in": "0s", "revocation_message": "bad"}))
    assert ok(c.get(c.p23("/buckets/base/versions/f1")))["version"]["status"] == "VERSION_REVOKED"
    ok(c.patch(c.p23("/buckets/base/versions/f1"), json={"restore": True}))
    assert "revoke_at" not in ok(c.get(c.p("/images/base/iteration"), params={"fingerprint": "f1"}))["iteration"]
    # A build deleted in 2023 is gone in 2021 (its version is complete, so delete an incomplete one's).
    open_ = ok(c.post(c.p23("/buckets/base/versions"), json={"fingerprint": "f2"}))["version"]
    extra = ok(c.post(c.p23("/buckets/base/versions/f2/builds"), json={"component_type": "x.y"}))["build"]
    ok(c.delete(c.p23(f"/buckets/base/versions/f2/builds/{extra['id']}")))
    error(c.get(c.p(f"/builds/{extra['id']}")), 5, 404)
    # A version deleted in 2021 is gone in 2023: GetVersion answers 10, as for a fingerprint never seen.
    ok(c.delete(c.p(f"/iterations/{open_['id']}")))
    error(c.get(c.p23("/buckets/base/versions/f2")), 10, 409)


def test_channels_and_registry(env: Env) -> None:
    c = env.client
    v1 = publish(c, "base", "f1", ["amazon-ebs.a"])
    v2 = publish_2023(c, "base", "f2")
    made = ok(c.post(c.p23("/buckets/base/channels"), json={"name": "prod", "version_fingerprint": "f1"}))["channel"]
    old = ok(c.get(c.p("/images/base/channels/prod")))["channel"]
    assert (old["id"], old["iteration"]["id"]) == (made["id"], v1["id"])
    ok(c.patch(c.p("/images/base/channels/prod"), json={"fingerprint": "f2"}))
    assert ok(c.get(c.p23("/buckets/base/channels/prod")))["channel"]["version"]["id"] == v2["id"]
    ok(c.patch(c.p23("/buckets/base/channels/prod"), json={"update_mask": "restricted", "restricted": True}))
    assert ok(c.get(c.p("/images/base/channels/prod")))["channel"]["restricted"] is True
    ok(c.delete(c.p("/images/base/channels/prod")))
    error(c.get(c.p23("/buckets/base/channels/prod")), 5, 404)
    ok(c.patch(c.p23("/registry"), json={"feature_tier": "PLUS", "update_mask": "featureTier"}))
    assert ok(c.get(c.p("/registry")))["registry"]["config"]["feature_tier"] == "PLUS"
    ok(c.patch(c.p("/registry"), json={"feature_tier": "STANDARD"}))
    assert ok(c.get(c.p23("/registry")))["registry"]["config"]["feature_tier"] == "STANDARD"
