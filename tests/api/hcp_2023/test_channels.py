"""Channels through 2023-01-01: the update mask of section H, the managed `latest` of section J, the
provider's adopt path, AssignChannelVersion, history shared with 2021-04-30."""

from __future__ import annotations

from packyard.domain.models import Role
from tests.api.hcp_2023.test_publish import publish_2023
from tests.api.test_roles import new_principal
from tests.conftest import Env
from tests.support.client import error, ok


def test_update_mask_semantics(env: Env) -> None:
    c = env.client
    v1 = publish_2023(c, "base", "f1")
    ok(c.post(c.p23("/buckets/base/channels"), json={"name": "prod"}))
    channel = "/buckets/base/channels/prod"
    # No mask: code 3, nothing changes.
    error(c.patch(c.p23(channel), json={"version_fingerprint": "f1"}), 3, 400)
    error(c.patch(c.p23(channel), json={"update_mask": "nonsense", "version_fingerprint": "f1"}), 3, 400)
    assert "version" not in ok(c.get(c.p23(channel)))["channel"]
    # Assign, as Packer >= 1.15's `channels = [...]` and the provider's channel_assignment do.
    assigned = ok(c.patch(c.p23(channel), json={"update_mask": "versionFingerprint", "version_fingerprint": "f1"}))
    assert assigned["channel"]["version"]["id"] == v1["id"]
    assert assigned["channel"]["version"]["fingerprint"] == "f1"
    assert "restricted" not in assigned["channel"], "false is left out"
    # `restricted` alone changes only the restriction; true, then absent (= false).
    restricted = ok(c.patch(c.p23(channel), json={"update_mask": "restricted", "restricted": True}))["channel"]
    assert restricted["restricted"] is True
    assert restricted["version"]["id"] == v1["id"]
    unrestricted = ok(c.patch(c.p23(channel), json={"update_mask": "restricted"}))["channel"]
    assert "restricted" not in unrestricted
    assert unrestricted["version"]["id"] == v1["id"]
    # versionFingerprint with no fingerprint unassigns (the provider's "none" and its Delete).
    cleared = ok(c.patch(c.p23(channel), json={"update_mask": "versionFingerprint"}))["channel"]
    assert "version" not in cleared
    # An unknown fingerprint is 5; an incomplete version 9.
    error(c.patch(c.p23(channel), json={"update_mask": "versionFingerprint", "version_fingerprint": "zz"}), 5)
    ok(c.post(c.p23("/buckets/base/versions"), json={"fingerprint": "open"}))
    error(c.patch(c.p23(channel), json={"update_mask": "versionFingerprint", "version_fingerprint": "open"}), 9)
    # Both at once.
    both = ok(
        c.patch(
            c.p23(channel),
            json={"update_mask": "versionFingerprint,restricted", "version_fingerprint": "f1", "restricted": True},
        )
    )["channel"]
    assert both["restricted"] is True
    assert both["version"]["fingerprint"] == "f1"


def test_the_managed_latest_channel(env: Env) -> None:
    c = env.client
    ok(c.put(c.p23("/buckets"), json={"name": "base"}))
    latest = ok(c.get(c.p23("/buckets/base/channels/latest")))["channel"]
    assert latest["managed"] is True
    assert "version" not in latest
    # The provider's adopt path: CreateChannel latest answers 6, ListChannels shows it managed, and a
    # restricted-only update is accepted.
    assert error(c.post(c.p23("/buckets/base/channels"), json={"name": "latest", "restricted": True}), 6, 409)
    listed = ok(c.get(c.p23("/buckets/base/channels")))["channels"]
    assert [ch["name"] for ch in listed if ch["managed"]] == ["latest"]
    ok(c.patch(c.p23("/buckets/base/channels/latest"), json={"update_mask": "restricted", "restricted": True}))
    v1 = publish_2023(c, "base", "f1")
    assign = {"update_mask": "versionFingerprint", "version_fingerprint": "f1"}
    error(c.patch(c.p23("/buckets/base/channels/latest"), json=assign), 9, 400)
    error(c.delete(c.p23("/buckets/base/channels/latest")), 9, 400)
    assert ok(c.get(c.p23("/buckets/base/channels/latest")))["channel"]["version"]["id"] == v1["id"]


def test_assign_channel_version_copies_a_channel(env: Env) -> None:
    c = env.client
    v1 = publish_2023(c, "base", "f1")
    ok(c.post(c.p23("/buckets/base/channels"), json={"name": "staging", "version_fingerprint": "f1"}))
    ok(c.post(c.p23("/buckets/base/channels"), json={"name": "prod"}))
    assign = c.p23("/buckets/base/channels/assign")
    copied = ok(c.post(assign, json={"source_channel": "staging", "target_channel": "prod"}))
    assert copied["fingerprint"] == "f1"
    assert copied["version"]["id"] == v1["id"]
    assert copied["target_channel"]["name"] == "prod"
    assert copied["source_channel"]["name"] == "staging"
    assert ok(c.get(c.p23("/buckets/base/channels/prod")))["channel"]["version"]["id"] == v1["id"]
    error(c.post(assign, json={"source_channel": "staging", "target_channel": "latest"}), 9)
    error(c.post(assign, json={"source_channel": "nope", "target_channel": "prod"}), 5)
    error(c.post(assign, json={"target_channel": "prod"}), 3)


def test_history_is_shared_with_2021(env: Env) -> None:
    c = env.client
    v1 = publish_2023(c, "base", "f1")
    v2 = publish_2023(c, "base", "f2")
    ok(c.post(c.p23("/buckets/base/channels"), json={"name": "prod", "version_fingerprint": "f1"}))
    # Moved through the 2021 tree, read through 2023.
    ok(c.patch(c.p("/images/base/channels/prod"), json={"iteration_id": v2["id"]}))
    history = ok(c.get(c.p23("/buckets/base/channels/prod/history")))
    assert history["count"] == 2
    assert [h["version"]["id"] for h in history["history"]] == [v2["id"], v1["id"]]
    assert [h["version"]["name"] for h in history["history"]] == ["v2", "v1"]
    assert history["history"][0]["version"]["status"] == "VERSION_ACTIVE"
    old = ok(c.get(c.p("/images/base/channels/prod/history")))
    assert [h["iteration"]["id"] for h in old["history"]] == [v2["id"], v1["id"]]


def test_restricted_channels_are_hidden_from_viewers(env: Env) -> None:
    c = env.client
    publish_2023(c, "base", "f1")
    secret = {"name": "secret", "version_fingerprint": "f1", "restricted": True}
    ok(c.post(c.p23("/buckets/base/channels"), json=secret))
    viewer = env.token_for(*new_principal(env, Role.VIEWER, name="viewer"))
    error(c.get(c.p23("/buckets/base/channels/secret"), token=viewer), 5, 404)
    names = [ch["name"] for ch in ok(c.get(c.p23("/buckets/base/channels"), token=viewer))["channels"]]
    assert "secret" not in names
    # packyard makes `latest` unrestricted (HCP makes it restricted): a viewer's terraform plan reads it.
    assert "latest" in names


def test_a_channel_named_like_a_literal_route_is_reachable(env: Env) -> None:
    """`.../channels/assign` is AssignChannelVersion's POST; a channel named "assign" is still a channel."""
    c = env.client
    publish_2023(c, "base", "f1")
    ok(c.post(c.p23("/buckets/base/channels"), json={"name": "assign", "version_fingerprint": "f1"}))
    assert ok(c.get(c.p23("/buckets/base/channels/assign")))["channel"]["name"] == "assign"
    body = {"update_mask": "restricted", "restricted": True}
    assert ok(c.patch(c.p23("/buckets/base/channels/assign"), json=body))["channel"]["restricted"] is True
    assert ok(c.get(c.p23("/buckets/base/channels/assign/history")))["count"] == 1
    ok(c.delete(c.p23("/buckets/base/channels/assign")))
    error(c.get(c.p23("/buckets/base/channels/assign")), 5, 404)
    # What matches nothing still says so, for a path as for a method.
    assert c.get(c.p23("/buckets/base/channels/assign/nothing")).status_code == 404
    wrong_method = c.put(c.p23("/buckets/base/channels/assign"))  # a known path, another method
    assert wrong_method.status_code == 405
    assert wrong_method.headers["allow"] == "DELETE, GET, PATCH, POST"
    assert c.get(c.p23("/a" * 5000)).status_code == 404
