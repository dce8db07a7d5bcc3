"""Registry, run task and ancestry reads through 2023-01-01, and what they share with 2021-04-30."""

from __future__ import annotations

from tests.api.hcp_2023.test_publish import publish_2023
from tests.api.hcp_2023.test_versions import _child
from tests.conftest import Env
from tests.support.client import error, ok


def test_registry_lifecycle(env: Env) -> None:
    c = env.client
    registry = ok(c.get(c.p23("/registry")))["registry"]
    assert registry["config"]["activated"] is True
    assert registry["location"] == {"organization_id": c.org_id, "project_id": c.project_id}
    error(c.put(c.p23("/registry"), json={"feature_tier": "PLUS"}), 6, 409)
    # The provider's test helper: update_mask "featureTier,activated".
    updated = ok(c.patch(c.p23("/registry"), json={"feature_tier": "PLUS", "update_mask": "featureTier,activated"}))
    assert updated["registry"]["config"]["feature_tier"] == "PLUS"
    assert updated["operation"]["state"] == "DONE"
    error(c.patch(c.p23("/registry"), json={"update_mask": "color"}), 3, 400)
    # The document's own name for the field works as well as the provider's.
    ok(c.patch(c.p23("/registry"), json={"feature_tier": "STANDARD", "update_mask": "config.feature_tier"}))
    assert ok(c.get(c.p23("/registry")))["registry"]["config"]["feature_tier"] == "STANDARD"
    ok(c.patch(c.p23("/registry"), json={"feature_tier": "PLUS", "update_mask": "featureTier"}))
    error(c.patch(c.p23("/registry"), json={"feature_tier": "GOLD"}), 3, 400)
    # Read through the other tree: the same registry.
    assert ok(c.get(c.p("/registry")))["registry"]["id"] == registry["id"]
    deleted = ok(c.delete(c.p23("/registry")))
    assert "activated" not in deleted["registry"]["config"], "false is left out"
    assert deleted["registry"]["config"]["billing_deprovision"]["reason"] == "USER_REQUEST"
    error(c.put(c.p23("/buckets"), json={"name": "base"}), 9)
    reactivated = ok(c.patch(c.p23("/registry"), json={"activated": True, "update_mask": "activated"}))
    assert reactivated["registry"]["config"]["activated"] is True


def test_run_task_key_is_shared_by_both_trees(env: Env) -> None:
    c = env.client
    task = ok(c.get(c.p23("/runtasks/validation")))
    assert task["api_url"].startswith("http://packyard.test/packer/2023-01-01/runtask/")
    assert task["hmac_key"]
    assert ok(c.get(c.p("/runtasks/validation")))["hmac_key"] == task["hmac_key"]
    regenerated = ok(c.patch(c.p23("/runtasks/hmac"), json={}))["hmac_key"]
    assert regenerated != task["hmac_key"]
    assert ok(c.get(c.p("/runtasks/validation")))["hmac_key"] == regenerated
    error(c.get(c.p23("/runtasks/other")), 5, 404)
    error(c.patch(c.p23("/runtasks/hmac"), json=[]), 3, 400)


def test_ancestry_in_2023_words(env: Env) -> None:
    c = env.client
    v1 = publish_2023(c, "base", "f1")
    prod = ok(c.post(c.p23("/buckets/base/channels"), json={"name": "prod", "version_fingerprint": "f1"}))["channel"]
    _child(env, "app", "c1", v1["id"], prod["id"])
    parents = ok(c.get(c.p23("/buckets/app/ancestry"), params={"type": "ANCESTRY_TYPE_PARENTS"}))
    assert parents["total_count"] == 1
    relation = parents["relations"][0]
    assert relation["status"] == "UP_TO_DATE"
    assert relation["parent"]["bucket_name"] == "base"
    assert relation["parent"]["version_name"] == "v1"
    assert relation["parent"]["channel_name"] == "prod"
    assert relation["child"]["version_fingerprint"] == "c1"
    # The parent's channel moves on: the child is out of date, seen from both buckets.
    publish_2023(c, "base", "f2")
    ok(
        c.patch(
            c.p23("/buckets/base/channels/prod"),
            json={"update_mask": "versionFingerprint", "version_fingerprint": "f2"},
        )
    )
    children = ok(c.get(c.p23("/buckets/base/ancestry"), params={"type": "ANCESTRY_TYPE_CHILDREN"}))
    assert [r["status"] for r in children["relations"]] == ["OUT_OF_DATE"]
    assert children["relations"][0]["parent"]["channel_version"]["name"] == "v2"
    bucket = ok(c.get(c.p23("/buckets/app")))["bucket"]
    assert bucket["parents"]["status"] == "OUT_OF_DATE"
    assert bucket["parents"]["href"].endswith("/buckets/app/ancestry?type=ANCESTRY_TYPE_PARENTS")
    by_number = ok(c.get(c.p23("/buckets/app/ancestry"), params={"type": "1"}))
    assert by_number["total_count"] == 1
    error(c.get(c.p23("/buckets/app/ancestry"), params={"type": "SIDEWAYS"}), 3, 400)
    error(c.get(c.p23("/buckets/app/ancestry"), params={"type": "\u00b2"}), 3, 400)  # a digit, not ASCII
    error(c.get(c.p23("/buckets/app/ancestry"), params={"type": "9" * 5000}), 3, 400)
    error(c.get(c.p23("/buckets/nope/ancestry")), 5, 404)


def test_run_task_config(env: Env) -> None:
    c = env.client
    assert ok(c.get(c.p23("/runtasks/config"))) == {}, "unset until set"
    assert ok(c.patch(c.p23("/runtasks/config"), json={"on_untracked_image": "WARN"})) == {"on_untracked_image": "WARN"}
    assert ok(c.get(c.p23("/runtasks/config"))) == {"on_untracked_image": "WARN"}
    assert ok(c.patch(c.p23("/runtasks/config"), json={"on_untracked_image": 1})) == {"on_untracked_image": "FAIL"}
    error(c.patch(c.p23("/runtasks/config"), json={"on_untracked_image": "UNSET"}), 3, 400)
    error(c.patch(c.p23("/runtasks/config"), json={"on_untracked_image": "MAYBE"}), 3, 400)
    error(c.patch(c.p23("/runtasks/config"), json={}), 3, 400)
    assert ok(c.get(c.p23("/runtasks/config"))) == {"on_untracked_image": "FAIL"}
