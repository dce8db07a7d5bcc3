"""Channels: managed `latest`, assignment by each identifier, masks, restriction, history, pointer."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tests.conftest import Env
from tests.support.client import ApiClient, error, ok
from tests.support.packer import publish, upsert_bucket


def two_versions(c: ApiClient, slug: str = "app") -> tuple[dict[str, Any], dict[str, Any]]:
    v1 = publish(c, slug, "fp-v1", ["amazon-ebs.a", "googlecompute.b"])
    v2 = publish(c, slug, "fp-v2", ["amazon-ebs.a", "googlecompute.b"])
    assert (v1["incremental_version"], v2["incremental_version"]) == (1, 2)
    return v1, v2


def channel(c: ApiClient, bucket: str, slug: str) -> dict[str, Any]:
    return dict(ok(c.get(c.p(f"/images/{bucket}/channels/{slug}")))["channel"])


def history(c: ApiClient, bucket: str, slug: str, **params: Any) -> dict[str, Any]:
    return dict(ok(c.get(c.p(f"/images/{bucket}/channels/{slug}/history"), params=params)))


def test_consumer_follows_production_from_v1_to_v2(env: Env) -> None:
    """Publish two iterations, point production at v1, read it as Packer's data sources do, move it."""
    c = env.client
    v1, v2 = two_versions(c)
    created = ok(c.post(c.p("/images/app/channels"), json={"slug": "production", "incremental_version": 1}))
    assert created["channel"]["iteration"]["id"] == v1["id"]

    # hcp-packer-iteration (1.7.9+) reads channel.iteration; 1.7.5-1.7.8 read channel.pointer.iteration.
    ch = channel(c, "app", "production")
    assert ch["iteration"]["id"] == v1["id"]
    assert ch["pointer"]["iteration"]["id"] == v1["id"]
    assert ch["pointer"]["author_id"] == env.init.client_id
    assert ch["iteration"]["bucket_slug"] == "app"
    assert ch["iteration"]["fingerprint"] == "fp-v1"
    assert ch["iteration"]["incremental_version"] == 1
    assert "revoke_at" not in ch["iteration"]
    # hcp-packer-image: first build with the provider that has an image in the region. Both builds are
    # created at once, as Packer does, so either may be first (on PostgreSQL they run side by side).
    build = next(b for b in ch["iteration"]["builds"] if b["cloud_provider"] == "aws")
    image = next(i for i in build["images"] if i["region"] == "us-east-1")
    assert build["iteration_id"] == v1["id"]
    assert build["component_type"] in ("amazon-ebs.a", "googlecompute.b")
    assert image["image_id"] == f"ami-{build['component_type'][-4:]}-1"
    assert image["id"] != image["image_id"]

    env.clock.advance(minutes=5)
    moved = ok(c.patch(c.p("/images/app/channels/production"), json={"fingerprint": "fp-v2"}))
    assert moved["channel"]["iteration"]["id"] == v2["id"]
    again = channel(c, "app", "production")
    assert again["iteration"]["incremental_version"] == 2
    assert again["pointer"]["iteration"]["id"] == v2["id"]
    assert again["updated_at"] > ch["updated_at"]

    entries = history(c, "app", "production")
    assert entries["count"] == 2
    assert [e["iteration"]["id"] for e in entries["history"]] == [v2["id"], v1["id"]]
    assert all(e["author_id"] == env.init.client_id for e in entries["history"])
    assert all(e["iteration"]["status"] == "ITERATION_ACTIVE" for e in entries["history"])
    assert entries["history"][0]["promoted_at"] > entries["history"][1]["promoted_at"]
    assert entries["history"][0]["iteration"]["fingerprint"] == "fp-v2"
    assert entries["history"][1]["iteration"]["incremental_version"] == 1


def test_every_bucket_has_managed_latest_following_newest_complete(env: Env) -> None:
    c = env.client
    upsert_bucket(c, "fresh")
    latest = channel(c, "fresh", "latest")
    assert latest["managed"] is True
    assert "iteration" not in latest
    assert "pointer" not in latest
    assert latest["author_id"]
    listed = ok(c.get(c.p("/images/fresh/channels")))["channels"]
    assert [ch["slug"] for ch in listed] == ["latest"]

    v1 = publish(c, "fresh", "one", ["docker.a"])
    assert channel(c, "fresh", "latest")["iteration"]["id"] == v1["id"]
    # An incomplete iteration doesn't move latest.
    publish(c, "fresh", "broken", ["docker.a"], fail={"docker.a"})
    assert channel(c, "fresh", "latest")["iteration"]["id"] == v1["id"]
    v2 = publish(c, "fresh", "two", ["docker.a"])
    assert channel(c, "fresh", "latest")["iteration"]["id"] == v2["id"]
    moves = history(c, "fresh", "latest")["history"]
    assert [e["iteration"]["id"] for e in moves] == [v2["id"], v1["id"]]

    # Deleting the newest complete iteration moves latest back.
    ok(c.delete(c.p(f"/iterations/{v2['id']}"), params={"bucket_slug": "fresh"}))
    assert channel(c, "fresh", "latest")["iteration"]["id"] == v1["id"]


def test_managed_latest_refuses_assignment_clearing_deletion_but_takes_restriction(env: Env) -> None:
    c = env.client
    v1, _ = two_versions(c)
    path = c.p("/images/app/channels/latest")
    before = channel(c, "app", "latest")
    for body in (
        {"incremental_version": 1},
        {"mask": "iterationId", "iteration_id": v1["id"]},
        {"mask": "iterationId,fingerprint,incrementalVersion"},
        {},
    ):
        assert "managed" in error(c.patch(path, json=body), 9, 400)
    assert "managed" in error(c.delete(path), 9, 400)
    error(c.post(c.p("/images/app/channels"), json={"slug": "latest"}), 6, 409)
    assert channel(c, "app", "latest")["iteration"]["id"] == before["iteration"]["id"]

    restricted = ok(c.patch(path, json={"mask": "restriction", "restriction": "RESTRICTED"}))["channel"]
    assert restricted["restricted"] is True
    assert restricted["managed"] is True
    assert restricted["iteration"]["id"] == before["iteration"]["id"]
    unrestricted = ok(c.patch(path, json={"restriction": "UNRESTRICTED"}))["channel"]
    assert "restricted" not in unrestricted


@pytest.mark.parametrize("identifier", ["iteration_id", "fingerprint", "incremental_version"])
def test_create_assigned_by_each_identifier(env: Env, identifier: str) -> None:
    c = env.client
    v1, _ = two_versions(c)
    value = v1["id"] if identifier == "iteration_id" else v1[identifier]
    body = {"slug": "prod", identifier: value, "restriction": "RESTRICTED"}
    created = ok(c.post(c.p("/images/app/channels"), json=body))["channel"]
    assert created["iteration"]["id"] == v1["id"]
    assert created["restricted"] is True
    assert "managed" not in created
    assert created["author_id"] == env.init.client_id
    assert history(c, "app", "prod")["count"] == 1


def test_create_empty_duplicate_and_bad_input(env: Env) -> None:
    c = env.client
    v1, _ = two_versions(c)
    empty = ok(c.post(c.p("/images/app/channels"), json={"slug": "staging"}))["channel"]
    assert "iteration" not in empty
    assert "pointer" not in empty
    assert history(c, "app", "staging") == {"history": [], "pagination": {}}
    error(c.post(c.p("/images/app/channels"), json={"slug": "staging"}), 6, 409)
    for bad in ("", "has space", "a/b", "x" * 37, "-lead"):
        error(c.post(c.p("/images/app/channels"), json={"slug": bad}), 3, 400)
    error(c.post(c.p("/images/app/channels"), json={"slug": "r", "restriction": "SOMETIMES"}), 3, 400)
    error(c.post(c.p("/images/app/channels"), json={"slug": "r", "incremental_version": "one"}), 3, 400)
    error(c.post(c.p("/images/app/channels"), json={"slug": "r", "iteration_id": "nope"}), 3, 400)
    error(c.post(c.p("/images/app/channels"), json={"slug": "r", "incremental_version": 99}), 5, 404)
    error(c.post(c.p("/images/nobucket/channels"), json={"slug": "r"}), 5, 404)
    # Nothing was created by the refused requests.
    slugs = sorted(ch["slug"] for ch in ok(c.get(c.p("/images/app/channels")))["channels"])
    assert slugs == ["latest", "staging"]
    assert v1["complete"] is True


def test_only_complete_unrevoked_iterations_can_be_assigned(env: Env) -> None:
    c = env.client
    upsert_bucket(c, "app")
    incomplete = publish(c, "app", "half", ["a.x", "a.y"], fail={"a.y"})
    msg = error(c.post(c.p("/images/app/channels"), json={"slug": "prod", "fingerprint": "half"}), 9, 400)
    assert "not complete" in msg
    error(c.get(c.p("/images/app/channels/prod")), 5, 404)
    ok(c.post(c.p("/images/app/channels"), json={"slug": "prod"}))
    msg = error(c.patch(c.p("/images/app/channels/prod"), json={"iteration_id": incomplete["id"]}), 9, 400)
    assert "not complete" in msg

    done = publish(c, "app", "whole", ["a.x"])
    ok(
        c.patch(
            c.p(f"/iterations/{done['id']}"),
            json={"bucket_slug": "app", "revoke_at": "2020-01-01T00:00:00Z", "revocation_message": "cve"},
        )
    )
    msg = error(c.patch(c.p("/images/app/channels/prod"), json={"fingerprint": "whole"}), 9, 400)
    assert "revoked" in msg
    assert "iteration" not in channel(c, "app", "prod")


def test_iteration_of_another_bucket_is_not_found(env: Env) -> None:
    c = env.client
    other = publish(c, "other", "shared-fp", ["a.x"])
    publish(c, "app", "mine", ["a.x"])
    ok(c.post(c.p("/images/app/channels"), json={"slug": "prod"}))
    error(c.patch(c.p("/images/app/channels/prod"), json={"iteration_id": other["id"]}), 5, 404)
    error(c.patch(c.p("/images/app/channels/prod"), json={"fingerprint": "shared-fp"}), 5, 404)
    assert "iteration" not in channel(c, "app", "prod")


def test_update_without_mask_first_identifier_wins_and_none_clears(env: Env) -> None:
    c = env.client
    v1, v2 = two_versions(c)
    ok(c.post(c.p("/images/app/channels"), json={"slug": "prod", "incremental_version": 1}))
    path = c.p("/images/app/channels/prod")
    # iteration_id beats fingerprint beats incremental_version; the others are ignored even if they disagree.
    body = {"iteration_id": v2["id"], "fingerprint": "fp-v1", "incremental_version": 1}
    assert ok(c.patch(path, json=body))["channel"]["iteration"]["id"] == v2["id"]
    body = {"fingerprint": "fp-v1", "incremental_version": 2}
    assert ok(c.patch(path, json=body))["channel"]["iteration"]["id"] == v1["id"]
    assert ok(c.patch(path, json={"incremental_version": 2}))["channel"]["iteration"]["id"] == v2["id"]
    cleared = ok(c.patch(path, json={}))["channel"]
    assert "iteration" not in cleared
    assert "pointer" not in cleared
    entries = history(c, "app", "prod")["history"]
    assert len(entries) == 5
    assert "iteration" not in entries[0], "the unassignment is recorded without an iteration"
    assert entries[0]["author_id"] == env.init.client_id


MASK_CASES = [
    ("iterationId", {"iteration_id": "v2"}),
    ("fingerprint", {"fingerprint": "fp-v2"}),
    ("incrementalVersion", {"incremental_version": 2}),
    ("iterationId,fingerprint", {"iteration_id": "v2", "fingerprint": "fp-v2"}),
    ("iterationId,incrementalVersion", {"iteration_id": "v2", "incremental_version": 2}),
    ("fingerprint,incrementalVersion", {"fingerprint": "fp-v2", "incremental_version": 2}),
    (
        "iterationId,fingerprint,incrementalVersion",
        {"iteration_id": "v2", "fingerprint": "fp-v2", "incremental_version": 2},
    ),
    (
        "incrementalVersion,iterationId,fingerprint",
        {"iteration_id": "v2", "fingerprint": "fp-v2", "incremental_version": 2},
    ),
    ("restriction,iterationId", {"iteration_id": "v2", "restriction": "RESTRICTED"}),
]


@pytest.mark.parametrize(("mask", "values"), MASK_CASES)
def test_mask_assigns_when_every_listed_identifier_names_one_iteration(
    env: Env, mask: str, values: dict[str, Any]
) -> None:
    c = env.client
    _, v2 = two_versions(c)
    ok(c.post(c.p("/images/app/channels"), json={"slug": "prod", "incremental_version": 1}))
    body = {k: (v2["id"] if v == "v2" else v) for k, v in values.items()}
    updated = ok(c.patch(c.p("/images/app/channels/prod"), json={"mask": mask, **body}))["channel"]
    assert updated["iteration"]["id"] == v2["id"]
    assert updated.get("restricted", False) is ("restriction" in mask)
    assert history(c, "app", "prod")["count"] == 2


@pytest.mark.parametrize(
    ("mask", "values"),
    [
        ("iterationId,fingerprint", {"iteration_id": "v2", "fingerprint": "fp-v1"}),
        ("fingerprint,incrementalVersion", {"fingerprint": "fp-v2", "incremental_version": 1}),
        ("iterationId,incrementalVersion", {"iteration_id": "v1", "incremental_version": 2}),
        ("iterationId,fingerprint", {"iteration_id": "v2"}),
        ("fingerprint", {"iteration_id": "v2"}),
    ],
)
def test_mask_with_disagreeing_or_missing_identifiers_is_refused(env: Env, mask: str, values: dict[str, Any]) -> None:
    c = env.client
    v1, v2 = two_versions(c)
    ok(c.post(c.p("/images/app/channels"), json={"slug": "prod", "incremental_version": 1}))
    ids = {"v1": v1["id"], "v2": v2["id"]}
    body = {k: ids.get(v, v) if isinstance(v, str) else v for k, v in values.items()}
    if mask == "fingerprint":
        # Only fingerprint is listed and it is empty: that clears, and the unlisted iteration_id is ignored.
        assert "iteration" not in ok(c.patch(c.p("/images/app/channels/prod"), json={"mask": mask, **body}))["channel"]
        return
    error(c.patch(c.p("/images/app/channels/prod"), json={"mask": mask, **body}), 3, 400)
    assert channel(c, "app", "prod")["iteration"]["id"] == v1["id"]
    assert history(c, "app", "prod")["count"] == 1


def test_mask_listing_identifiers_with_empty_values_clears(env: Env) -> None:
    """What terraform-provider-hcp 0.68+ sends to unassign a channel."""
    c = env.client
    two_versions(c)
    ok(c.post(c.p("/images/app/channels"), json={"slug": "prod", "incremental_version": 1}))
    cleared = ok(
        c.patch(c.p("/images/app/channels/prod"), json={"mask": "iterationId,fingerprint,incrementalVersion"})
    )["channel"]
    assert "iteration" not in cleared
    assert "iteration" not in channel(c, "app", "prod")
    assert history(c, "app", "prod")["count"] == 2


def test_mask_restriction_only_touches_restriction(env: Env) -> None:
    c = env.client
    v1, v2 = two_versions(c)
    ok(c.post(c.p("/images/app/channels"), json={"slug": "prod", "incremental_version": 1}))
    body = {"mask": "restriction", "restriction": "RESTRICTED", "iteration_id": v2["id"]}
    updated = ok(c.patch(c.p("/images/app/channels/prod"), json=body))["channel"]
    assert updated["restricted"] is True
    assert updated["iteration"]["id"] == v1["id"]
    assert history(c, "app", "prod")["count"] == 1
    error(c.patch(c.p("/images/app/channels/prod"), json={"mask": "restriction"}), 3, 400)
    error(c.patch(c.p("/images/app/channels/prod"), json={"mask": "restriction", "restriction": "MAYBE"}), 3, 400)
    error(c.patch(c.p("/images/app/channels/prod"), json={"mask": "slug", "restriction": "RESTRICTED"}), 3, 400)
    error(
        c.patch(c.p("/images/app/channels/prod"), json={"mask": "iterationId,bogus", "iteration_id": v2["id"]}), 3, 400
    )
    still = channel(c, "app", "prod")
    assert still["restricted"] is True
    assert still["iteration"]["id"] == v1["id"]


def test_delete_channel_and_its_history_and_unknown_names(env: Env) -> None:
    c = env.client
    two_versions(c)
    ok(c.post(c.p("/images/app/channels"), json={"slug": "prod", "incremental_version": 1}))
    assert ok(c.delete(c.p("/images/app/channels/prod"))) == {}
    msg = error(c.get(c.p("/images/app/channels/prod")), 5, 404)
    assert "prod" in msg
    error(c.get(c.p("/images/app/channels/prod/history")), 5, 404)
    error(c.delete(c.p("/images/app/channels/prod")), 5, 404)
    assert "nobucket" in error(c.get(c.p("/images/nobucket/channels/prod")), 5, 404)
    # A channel of the same name starts with an empty history.
    ok(c.post(c.p("/images/app/channels"), json={"slug": "prod"}))
    assert history(c, "app", "prod")["history"] == []

    ok(c.post(c.p("/images/app/channels"), json={"slug": "qa", "incremental_version": 2}))
    ok(c.delete(c.p("/images/app")))
    error(c.get(c.p("/images/app/channels/qa")), 5, 404)


def test_history_pages_newest_first_with_keyset_tokens(env: Env) -> None:
    c = env.client
    v1, v2 = two_versions(c)
    ok(c.post(c.p("/images/app/channels"), json={"slug": "prod"}))
    expected = []
    for n in range(7):
        env.clock.advance(seconds=1)
        target = v1 if n % 2 == 0 else v2
        ok(c.patch(c.p("/images/app/channels/prod"), json={"iteration_id": target["id"]}))
        expected.append(target["id"])
    expected.reverse()

    seen: list[str] = []
    token = ""
    pages = 0
    while True:
        params = {"pagination.page_size": 3, **({"pagination.next_page_token": token} if token else {})}
        page = history(c, "app", "prod", **params)
        assert page["count"] == 7
        seen += [e["iteration"]["id"] for e in page["history"]]
        pages += 1
        token = page["pagination"].get("next_page_token", "")
        if not token:
            break
    assert seen == expected
    assert pages == 3

    # previous_page_token walks back to the page before.
    first = history(c, "app", "prod", **{"pagination.page_size": 3})
    second = history(
        c,
        "app",
        "prod",
        **{"pagination.page_size": 3, "pagination.next_page_token": first["pagination"]["next_page_token"]},
    )
    back = history(
        c,
        "app",
        "prod",
        **{"pagination.page_size": 3, "pagination.previous_page_token": second["pagination"]["previous_page_token"]},
    )
    assert back["history"] == first["history"]
    error(c.get(c.p("/images/app/channels/prod/history"), params={"pagination.next_page_token": "%%%"}), 3, 400)


def test_delete_iteration_unassigns_channels_with_history(env: Env) -> None:
    c = env.client
    v1, _ = two_versions(c)
    ok(c.post(c.p("/images/app/channels"), json={"slug": "prod", "iteration_id": v1["id"]}))
    ok(c.delete(c.p(f"/iterations/{v1['id']}")))
    assert "iteration" not in channel(c, "app", "prod")
    entries = history(c, "app", "prod")["history"]
    assert len(entries) == 2
    assert "iteration" not in entries[0]


def test_concurrent_updates_each_leave_one_history_entry(env: Env) -> None:
    c = env.client
    v1, v2 = two_versions(c)
    ok(c.post(c.p("/images/app/channels"), json={"slug": "prod"}))

    async def race() -> list[Any]:
        calls = [
            c.arequest("PATCH", c.p("/images/app/channels/prod"), json={"iteration_id": (v1, v2)[n % 2]["id"]})
            for n in range(16)
        ]
        return list(await asyncio.gather(*calls))

    responses = c.loop.run_until_complete(race())
    assert all(r.status_code == 200 for r in responses)
    entries = history(c, "app", "prod", **{"pagination.page_size": 100})
    assert entries["count"] == 16
    assert channel(c, "app", "prod")["iteration"]["id"] == entries["history"][0]["iteration"]["id"]


def test_history_follows_the_order_of_moves_even_when_clocks_disagree(env: Env) -> None:
    """Moves commit in the order they take the channel; a request whose clock reads earlier (another
    replica's clock, or a request that started first and took the channel last) still lands on top."""
    c = env.client
    v1 = publish(c, "app", "fp-v1", ["amazon-ebs.a"])
    v2 = publish(c, "app", "fp-v2", ["amazon-ebs.a"])
    ok(c.post(c.p("/images/app/channels"), json={"slug": "production", "iteration_id": v1["id"]}))
    ok(c.patch(c.p("/images/app/channels/production"), json={"iteration_id": v2["id"]}))  # the same instant
    env.clock.advance(seconds=-30)  # a replica whose clock is behind
    ok(c.patch(c.p("/images/app/channels/production"), json={"iteration_id": v1["id"]}))
    entries = history(c, "app", "production")["history"]
    assert [e["iteration"]["id"] for e in entries] == [v1["id"], v2["id"], v1["id"]]
    stamps = [e["promoted_at"] for e in entries]
    assert stamps == sorted(stamps, reverse=True)  # the wire shows milliseconds: equal here, never reversed
    ch = channel(c, "app", "production")
    assert ch["iteration"]["id"] == entries[0]["iteration"]["id"]
    assert ch["pointer"]["created_at"] == entries[0]["promoted_at"]
