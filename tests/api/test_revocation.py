"""Revocation: now and scheduled, inherited by descendants, restored; channel rollback; the due-job runner."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest

from packyard.jobs import run_due_jobs
from tests.conftest import START, Env
from tests.support.client import ApiClient, error, ok
from tests.support.packer import publish

REVOCATION_KEYS = (
    "revoke_at",
    "revocation_message",
    "revocation_author",
    "revocation_type",
    "revocation_inherited_from",
)


def iso(when: datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z"


def parse(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def update(c: ApiClient, iteration_id: str, **body: Any) -> httpx.Response:
    return c.patch(c.p(f"/iterations/{iteration_id}"), json=body)


def revoke(c: ApiClient, it: dict[str, Any], **body: Any) -> dict[str, Any]:
    return dict(ok(update(c, it["id"], bucket_slug=it["bucket_slug"], **body)))


def restore(c: ApiClient, it: dict[str, Any]) -> dict[str, Any]:
    return dict(ok(update(c, it["id"], bucket_slug=it["bucket_slug"], restore=True)))


def read(c: ApiClient, it: dict[str, Any]) -> dict[str, Any]:
    r = c.get(c.p(f"/images/{it['bucket_slug']}/iteration"), params={"iteration_id": it["id"]})
    return dict(ok(r)["iteration"])


def listed(c: ApiClient, it: dict[str, Any]) -> dict[str, Any]:
    page = ok(c.get(c.p(f"/images/{it['bucket_slug']}/iterations"), params={"pagination.page_size": 100}))
    return dict(next(i for i in page["iterations"] if i["id"] == it["id"]))


def channel(c: ApiClient, bucket: str, slug: str) -> dict[str, Any]:
    return dict(ok(c.get(c.p(f"/images/{bucket}/channels/{slug}")))["channel"])


def pointed(c: ApiClient, bucket: str, slug: str) -> str | None:
    """The id of the iteration a channel points at, or None when it is unassigned."""
    ch = channel(c, bucket, slug)
    return ch["iteration"]["id"] if "iteration" in ch else None


def history(c: ApiClient, bucket: str, slug: str) -> list[dict[str, Any]]:
    page = ok(c.get(c.p(f"/images/{bucket}/channels/{slug}/history"), params={"pagination.page_size": 100}))
    return list(page["history"])


def history_ids(c: ApiClient, bucket: str, slug: str) -> list[str | None]:
    return [e["iteration"]["id"] if "iteration" in e else None for e in history(c, bucket, slug)]


def assign(env: Env, bucket: str, slug: str, it: dict[str, Any]) -> None:
    """Create or move a user channel, a second later so that its history has a clear order."""
    c = env.client
    env.clock.advance(seconds=1)
    if c.get(c.p(f"/images/{bucket}/channels/{slug}")).status_code == 404:
        ok(c.post(c.p(f"/images/{bucket}/channels"), json={"slug": slug, "iteration_id": it["id"]}))
    else:
        ok(c.patch(c.p(f"/images/{bucket}/channels/{slug}"), json={"iteration_id": it["id"]}))


def run_jobs(env: Env) -> int:
    return run_due_jobs(env.db, env.clock, env.app.services.rules)


def no_revocation(it: dict[str, Any]) -> None:
    for key in REVOCATION_KEYS:
        assert key not in it, f"{key} still present: {it}"


def versions(c: ApiClient, slug: str, n: int) -> list[dict[str, Any]]:
    made = [publish(c, slug, f"{slug}-fp{k}", ["amazon-ebs.a"]) for k in range(1, n + 1)]
    assert [i["incremental_version"] for i in made] == list(range(1, n + 1))
    return made


def family(c: ApiClient) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """Three generations in three buckets: middle's builds name base, leaf's builds name middle."""
    base = publish(c, "base", "base-fp1", ["amazon-ebs.base"])
    middle = publish(c, "middle", "middle-fp1", ["amazon-ebs.mid"], source={"source_iteration_id": base["id"]})
    leaf = publish(c, "leaf", "leaf-fp1", ["amazon-ebs.leaf"], source={"source_iteration_id": middle["id"]})
    assert middle["builds"][0]["status"] == "DONE"
    assert leaf["complete"] is True
    return base, middle, leaf


def snapshot(c: ApiClient, slug: str) -> dict[str, Any]:
    """Everything a client can read about a bucket, to show that a refused request changed nothing."""
    iterations = ok(c.get(c.p(f"/images/{slug}/iterations"), params={"pagination.page_size": 100}))["iterations"]
    channels = ok(c.get(c.p(f"/images/{slug}/channels")))["channels"]
    return {
        "bucket": ok(c.get(c.p(f"/images/{slug}")))["bucket"],
        "iterations": iterations,
        "full": [read(c, i) for i in iterations],
        "channels": channels,
        "history": {ch["slug"]: history(c, slug, ch["slug"]) for ch in channels},
    }


# ---- revoking now ------------------------------------------------------------------------------


def test_revoked_iteration_stays_readable_everywhere_and_restore_clears_it(env: Env) -> None:
    c = env.client
    v1, v2 = versions(c, "app", 2)
    assign(env, "app", "prod", v2)
    assert pointed(c, "app", "latest") == v2["id"]

    env.clock.advance(minutes=1)
    now = env.clock.now()
    answer = revoke(c, v2, revoke_at=iso(now), revocation_message="CVE-2024-0001 in openssl")
    it = answer["iteration"]
    assert it["id"] == v2["id"]
    assert it["revoke_at"] == iso(now)
    assert it["revocation_message"] == "CVE-2024-0001 in openssl"
    assert it["revocation_author"].startswith("admin-"), it  # the service principal's name
    assert it["revocation_type"] == "MANUAL"
    assert "revocation_inherited_from" not in it
    assert "has_descendants" not in it

    expected = {k: it[k] for k in REVOCATION_KEYS if k in it}
    for view in (
        read(c, v2),
        listed(c, v2),
        channel(c, "app", "prod")["iteration"],  # no rollback: prod keeps pointing at it
        channel(c, "app", "prod")["pointer"]["iteration"],
    ):
        assert view["id"] == v2["id"]
        assert {k: view[k] for k in REVOCATION_KEYS if k in view} == expected
    no_revocation(read(c, v1))
    # The managed latest moved to the newest valid iteration; the bucket says the same.
    assert pointed(c, "app", "latest") == v1["id"]
    bucket = ok(c.get(c.p("/images/app")))["bucket"]
    assert bucket["latest_iteration"]["id"] == v1["id"]
    assert bucket["latest_version"] == 1
    assert history(c, "app", "prod")[0]["iteration"]["status"] == "ITERATION_REVOKED"

    # A revoked iteration can't be changed, not even to revoke it again.
    for body in (
        {"complete": True},
        {"revoke_in": "1h", "revocation_message": "again"},
        {"revoke_at": iso(now), "skip_descendants_revocation": True},
        {"bucket_slug": "app"},
    ):
        assert "revoked" in error(update(c, v2["id"], **body), 9, 400)
    assert {k: read(c, v2)[k] for k in expected} == expected

    env.clock.advance(minutes=1)
    restored = restore(c, v2)
    assert "operation" not in restored
    no_revocation(restored["iteration"])
    for view in (read(c, v2), listed(c, v2), channel(c, "app", "prod")["iteration"]):
        no_revocation(view)
    assert history(c, "app", "prod")[0]["iteration"]["status"] == "ITERATION_ACTIVE"
    assert pointed(c, "app", "latest") == v2["id"]
    assert history_ids(c, "app", "latest") == [v2["id"], v1["id"], v2["id"], v1["id"]]
    # Restored, it can be updated again.
    assert ok(update(c, v2["id"], complete=True))["iteration"]["complete"] is True


def test_revocation_message_is_optional(env: Env) -> None:
    c = env.client
    (v1,) = versions(c, "app", 1)
    it = revoke(c, v1, revoke_in="0s")["iteration"]
    assert it["revoke_at"] == iso(START)
    assert it["revocation_type"] == "MANUAL"
    assert it["revocation_author"]
    assert "revocation_message" not in it
    assert "revocation_message" not in read(c, v1)
    assert pointed(c, "app", "latest") is None


def test_a_past_revoke_at_revokes_at_once(env: Env) -> None:
    c = env.client
    (v1,) = versions(c, "app", 1)
    env.advance(hours=3)
    it = revoke(c, v1, revoke_at="2020-01-01T00:00:00Z", revocation_message="old")["iteration"]
    assert parse(it["revoke_at"]) <= env.clock.now()
    assert it["revocation_type"] == "MANUAL"
    assert pointed(c, "app", "latest") is None
    assert "revoked" in error(update(c, v1["id"], complete=True), 9, 400)


@pytest.mark.parametrize(
    ("duration", "delta"),
    [
        ("0s", timedelta(0)),
        ("90s", timedelta(seconds=90)),
        ("45m", timedelta(minutes=45)),
        ("2h45m", timedelta(hours=2, minutes=45)),
        ("30d", timedelta(days=30)),
        ("1d12h30m15s", timedelta(days=1, hours=12, minutes=30, seconds=15)),
    ],
)
def test_revoke_in_counts_from_now(env: Env, duration: str, delta: timedelta) -> None:
    c = env.client
    (v1,) = versions(c, "app", 1)
    # HCP's Go client always sends the zero revoke_at next to revoke_in: that is "unset", not "both".
    body = {"revoke_at": "0001-01-01T00:00:00.000Z", "revoke_in": duration, "revocation_message": "m"}
    it = revoke(c, v1, **body)["iteration"]
    assert it["revoke_at"] == iso(START + delta)
    assert read(c, v1)["revoke_at"] == iso(START + delta)
    assert pointed(c, "app", "latest") == (None if delta == timedelta(0) else v1["id"])


def test_revoke_at_with_an_offset_is_recorded_in_utc(env: Env) -> None:
    c = env.client
    (v1,) = versions(c, "app", 1)
    it = revoke(c, v1, revoke_at="2024-05-01T16:30:00.250+02:00")["iteration"]
    assert it["revoke_at"] == "2024-05-01T14:30:00.250Z"


def test_go_zero_revoke_at_alone_changes_nothing(env: Env) -> None:
    c = env.client
    (v1,) = versions(c, "app", 1)
    answer = revoke(c, v1, revoke_at="0001-01-01T00:00:00.000Z", restore=False)
    assert "operation" not in answer
    no_revocation(answer["iteration"])
    no_revocation(read(c, v1))


def test_builds_of_a_revoked_iteration_are_frozen_until_restore(env: Env) -> None:
    c = env.client
    versions(c, "app", 1)
    wip = publish(c, "app", "wip", ["amazon-ebs.a", "amazon-ebs.b"], fail={"amazon-ebs.b"})
    assert "complete" not in wip
    failed = next(b for b in wip["builds"] if b["status"] == "FAILED")
    revoke(c, wip, revoke_in="0s", revocation_message="bad base")

    create = {"build": {"component_type": "docker.c", "status": "UNSET", "images": None}}
    assert "revoked" in error(c.post(c.p(f"/images/app/iterations/{wip['id']}"), json=create), 9, 400)
    running = {"updates": {"status": "RUNNING", "images": None}}
    assert "revoked" in error(c.patch(c.p(f"/builds/{failed['id']}"), json=running), 9, 400)
    assert "revoked" in error(c.delete(c.p(f"/builds/{failed['id']}")), 9, 400)
    after = read(c, wip)
    assert [(b["id"], b["status"]) for b in after["builds"]] == [(b["id"], b["status"]) for b in wip["builds"]]

    restore(c, wip)
    assert ok(c.patch(c.p(f"/builds/{failed['id']}"), json=running))["build"]["status"] == "RUNNING"
    ok(c.post(c.p(f"/images/app/iterations/{wip['id']}"), json=create))
    assert len(read(c, wip)["builds"]) == 3


# ---- scheduled revocation ----------------------------------------------------------------------


def test_scheduled_revocation_takes_effect_by_the_clock_alone(env: Env) -> None:
    """No API call and no job run at the due time: readers and writers follow the clock."""
    c = env.client
    v1, v2 = versions(c, "app", 2)
    assign(env, "app", "prod", v2)
    wip = publish(c, "app", "wip", ["amazon-ebs.a", "amazon-ebs.b"], fail={"amazon-ebs.b"})
    failed = next(b for b in wip["builds"] if b["status"] == "FAILED")
    due = env.clock.now() + timedelta(hours=2)
    scheduled = revoke(c, v2, revoke_at=iso(due), revocation_message="end of support")
    assert scheduled["iteration"]["revoke_at"] == iso(due)
    assert scheduled["operation"]["state"] == "QUEUED"
    assert revoke(c, wip, revoke_in="2h")["iteration"]["revoke_at"] == iso(due)

    env.advance(hours=1, minutes=59, seconds=59)  # one second before
    for it in (v2, wip):
        seen = read(c, it)
        assert parse(seen["revoke_at"]) > env.clock.now(), "scheduled, not yet in effect"
        assert seen["revocation_type"] == "MANUAL"
    assert read(c, v2)["revocation_message"] == "end of support"
    assert history(c, "app", "prod")[0]["iteration"]["status"] == "ITERATION_REVOCATION_SCHEDULED"
    assert pointed(c, "app", "latest") == v2["id"]
    # Still writable: a build can be added and the iteration updated.
    ok(c.post(c.p(f"/images/app/iterations/{wip['id']}"), json={"build": {"component_type": "docker.c"}}))
    ok(update(c, wip["id"], bucket_slug="app"))
    ok(update(c, v2["id"], complete=True))

    env.clock.advance(seconds=2)  # one second after
    for it in (v2, wip):
        seen = read(c, it)
        assert parse(seen["revoke_at"]) < env.clock.now(), "in effect now"
        assert "revoked" in error(update(c, it["id"], bucket_slug="app"), 9, 400)
    assert listed(c, v2)["revoke_at"] == iso(due)
    assert history(c, "app", "prod")[0]["iteration"]["status"] == "ITERATION_REVOKED"
    create = {"build": {"component_type": "docker.d", "status": "UNSET"}}
    assert "revoked" in error(c.post(c.p(f"/images/app/iterations/{wip['id']}"), json=create), 9, 400)
    running = {"updates": {"status": "RUNNING", "images": None}}
    assert "revoked" in error(c.patch(c.p(f"/builds/{failed['id']}"), json=running), 9, 400)
    assert len(read(c, wip)["builds"]) == 3
    # The bucket's latest is moved by the job, which hasn't run yet; it shows the due revocation.
    latest = ok(c.get(c.p("/images/app")))["bucket"]["latest_iteration"]
    assert latest["id"] != v2["id"] or parse(latest["revoke_at"]) < env.clock.now()
    assert run_jobs(env) == 2
    assert pointed(c, "app", "latest") == v1["id"]


def test_a_scheduled_revocation_can_be_moved_and_the_old_time_does_nothing(env: Env) -> None:
    c = env.client
    v1, v2 = versions(c, "app", 2)
    revoke(c, v2, revoke_in="1h")
    assert revoke(c, v2, revoke_in="3h", revocation_message="later")["iteration"]["revoke_at"] == iso(
        START + timedelta(hours=3)
    )
    env.advance(hours=2)
    assert run_jobs(env) == 0
    assert parse(read(c, v2)["revoke_at"]) > env.clock.now()
    assert pointed(c, "app", "latest") == v2["id"]
    env.advance(hours=1, seconds=1)
    assert run_jobs(env) == 1
    assert pointed(c, "app", "latest") == v1["id"]
    assert read(c, v2)["revocation_message"] == "later"


# ---- descendants -------------------------------------------------------------------------------


def test_revocation_cascades_to_every_generation_as_inherited(env: Env) -> None:
    c = env.client
    base, middle, leaf = family(c)
    assert read(c, base)["has_descendants"] is True
    assert read(c, middle)["has_descendants"] is True
    assert "has_descendants" not in read(c, leaf)
    assert listed(c, base)["has_descendants"] is True
    assert "has_descendants" not in listed(c, leaf)

    assign(env, "middle", "prod", middle)
    env.clock.advance(minutes=5)
    answer = revoke(c, base, revoke_in="0s", revocation_message="compromised base image")
    assert answer["operation"]["state"] == "DONE"
    assert answer["operation"]["id"]
    assert answer["iteration"]["revocation_type"] == "MANUAL"
    assert answer["iteration"]["has_descendants"] is True
    named = {
        "bucket_slug": "base",
        "iteration_id": base["id"],
        "iteration_incremental_version": 1,
        "iteration_fingerprint": "base-fp1",
    }
    for it in (middle, leaf):
        for view in (read(c, it), listed(c, it)):
            assert view["revocation_type"] == "INHERITED"
            assert view["revoke_at"] == answer["iteration"]["revoke_at"]
            assert view["revocation_message"] == "compromised base image"
            inherited = view["revocation_inherited_from"]
            assert {k: inherited[k] for k in named} == named, "leaf names base, not middle"
            assert inherited["href"].endswith(f"/images/base/iteration?iteration_id={base['id']}")
        assert "revoked" in error(update(c, it["id"], complete=True), 9, 400)
        assert pointed(c, it["bucket_slug"], "latest") is None
    # No rollback asked: middle's prod keeps its iteration, and shows the inherited revocation.
    through_channel = channel(c, "middle", "prod")["iteration"]
    assert through_channel["id"] == middle["id"]
    assert through_channel["revocation_type"] == "INHERITED"
    assert through_channel["revocation_inherited_from"]["iteration_id"] == base["id"]

    env.clock.advance(minutes=5)
    restore(c, base)
    for it in (base, middle, leaf):
        no_revocation(read(c, it))
        assert pointed(c, it["bucket_slug"], "latest") == it["id"]


def test_skip_descendants_revocation_leaves_them_alone(env: Env) -> None:
    c = env.client
    base, middle, leaf = family(c)
    answer = revoke(c, base, revoke_in="0s", skip_descendants_revocation=True)
    assert "operation" not in answer
    assert answer["iteration"]["revocation_type"] == "MANUAL"
    for it in (middle, leaf):
        no_revocation(read(c, it))
        assert pointed(c, it["bucket_slug"], "latest") == it["id"]
    assert read(c, middle)["has_descendants"] is True
    # Scheduled and skipped: no operation either, and the job later catches nothing.
    restore(c, base)
    assert "operation" not in revoke(c, base, revoke_in="1h", skip_descendants_revocation=True)
    env.advance(hours=1, seconds=1)
    assert run_jobs(env) == 1
    for it in (middle, leaf):
        no_revocation(read(c, it))


def test_restoring_base_keeps_a_descendants_own_manual_revocation(env: Env) -> None:
    c = env.client
    base, middle, leaf = family(c)
    own = revoke(c, leaf, revoke_in="0s", revocation_message="leaf has its own problem")["iteration"]
    env.clock.advance(minutes=1)
    revoke(c, base, revoke_in="0s", revocation_message="base problem")
    assert read(c, middle)["revocation_type"] == "INHERITED"
    kept = read(c, leaf)
    assert kept["revocation_type"] == "MANUAL"
    assert kept["revocation_message"] == "leaf has its own problem"
    assert kept["revoke_at"] == own["revoke_at"]
    assert "revocation_inherited_from" not in kept

    restore(c, base)
    no_revocation(read(c, base))
    no_revocation(read(c, middle))
    still = read(c, leaf)
    assert {k: still.get(k) for k in REVOCATION_KEYS} == {k: own.get(k) for k in REVOCATION_KEYS}
    assert pointed(c, "leaf", "latest") is None


def test_restoring_base_keeps_a_descendants_own_scheduled_revocation(env: Env) -> None:
    c = env.client
    base, _, leaf = family(c)
    own = revoke(c, leaf, revoke_in="30d", revocation_message="leaf end of life")["iteration"]
    revoke(c, base, revoke_in="0s")
    assert read(c, leaf)["revocation_type"] == "INHERITED"  # revoked now, with base
    restore(c, base)
    still = read(c, leaf)
    assert {k: still.get(k) for k in REVOCATION_KEYS} == {k: own.get(k) for k in REVOCATION_KEYS}
    assert pointed(c, "leaf", "latest") == leaf["id"], "valid again until its own time"
    ok(update(c, leaf["id"], bucket_slug="leaf"))
    # Its own job is still there and runs at its own time.
    env.advance(days=29)
    assert run_jobs(env) == 0
    env.advance(days=1, seconds=1)
    assert run_jobs(env) == 1
    assert pointed(c, "leaf", "latest") is None
    assert "revoked" in error(update(c, leaf["id"], bucket_slug="leaf"), 9, 400)


def test_a_descendants_own_time_passing_under_an_inherited_revocation(env: Env) -> None:
    c = env.client
    base, _, leaf = family(c)
    own = revoke(c, leaf, revoke_in="1d", revocation_message="leaf end of life")["iteration"]
    revoke(c, base, revoke_in="0s")
    env.advance(days=1, seconds=1)
    assert run_jobs(env) == 1  # leaf's own job: it is revoked (inherited) by then anyway
    restore(c, base)
    still = read(c, leaf)
    assert {k: still.get(k) for k in REVOCATION_KEYS} == {k: own.get(k) for k in REVOCATION_KEYS}
    assert pointed(c, "leaf", "latest") is None
    assert pointed(c, "base", "latest") == base["id"]
    assert run_jobs(env) == 0


def test_scheduled_cascade_answers_queued_and_descendants_follow_the_clock(env: Env) -> None:
    c = env.client
    base, middle, leaf = family(c)
    answer = revoke(c, base, revoke_in="1d", revocation_message="rotating the base")
    assert answer["operation"]["state"] == "QUEUED"
    due = START + timedelta(days=1)
    for it in (middle, leaf):
        seen = read(c, it)
        assert seen["revoke_at"] == iso(due)
        assert seen["revocation_type"] == "INHERITED"
        ok(update(c, it["id"], bucket_slug=it["bucket_slug"]))  # not in effect yet
    env.advance(days=1, seconds=1)
    for it in (middle, leaf):
        assert "revoked" in error(update(c, it["id"], bucket_slug=it["bucket_slug"]), 9, 400)
    assert run_jobs(env) == 1
    for it in (base, middle, leaf):
        assert pointed(c, it["bucket_slug"], "latest") is None


# ---- channel rollback --------------------------------------------------------------------------


def test_revoke_with_rollback_moves_user_channels_back_to_the_last_valid_assignment(env: Env) -> None:
    c = env.client
    v1, v2, v3 = versions(c, "app", 3)
    for it in (v1, v2, v3):
        assign(env, "app", "prod", it)
    assign(env, "app", "staging", v3)
    assign(env, "app", "qa", v1)
    assign(env, "app", "canary", v2)
    assign(env, "app", "canary", v3)
    revoke(c, v2, revoke_in="0s")  # no rollback: canary isn't at v2 anymore, and prod is at v3
    env.clock.advance(seconds=1)
    before = {slug: history_ids(c, "app", slug) for slug in ("prod", "staging", "qa", "canary")}

    revoke(c, v3, revoke_in="0s", rollback_channels=True)
    # prod: v3 -> v2 is revoked -> v1. staging: nothing earlier -> unassigned. canary: only v2 earlier -> unassigned.
    assert pointed(c, "app", "prod") == v1["id"]
    assert pointed(c, "app", "staging") is None
    assert pointed(c, "app", "canary") is None
    assert pointed(c, "app", "qa") == v1["id"]
    assert history_ids(c, "app", "prod") == [v1["id"], *before["prod"]]
    assert history_ids(c, "app", "staging") == [None, *before["staging"]]
    assert history_ids(c, "app", "canary") == [None, *before["canary"]]
    assert history_ids(c, "app", "qa") == before["qa"]
    assert history(c, "app", "prod")[0]["author_id"] == env.init.client_id
    assert pointed(c, "app", "latest") == v1["id"]

    # Restoring doesn't roll channels forward again, but latest follows.
    restore(c, v3)
    assert pointed(c, "app", "prod") == v1["id"]
    assert pointed(c, "app", "latest") == v3["id"]


def test_without_rollback_the_channel_keeps_the_revoked_iteration(env: Env) -> None:
    c = env.client
    v1, v2 = versions(c, "app", 2)
    assign(env, "app", "prod", v1)
    assign(env, "app", "prod", v2)
    before = history_ids(c, "app", "prod")
    revoke(c, v2, revoke_in="0s")
    ch = channel(c, "app", "prod")
    assert ch["iteration"]["id"] == v2["id"]
    assert ch["iteration"]["revocation_type"] == "MANUAL"
    assert history_ids(c, "app", "prod") == before
    assert pointed(c, "app", "latest") == v1["id"]


def test_rollback_reaches_channels_of_inheriting_descendants(env: Env) -> None:
    c = env.client
    base = publish(c, "base", "base-fp1", ["amazon-ebs.base"])
    older = publish(c, "middle", "middle-old", ["amazon-ebs.mid"])
    newer = publish(c, "middle", "middle-new", ["amazon-ebs.mid"], source={"source_iteration_id": base["id"]})
    assign(env, "middle", "prod", older)
    assign(env, "middle", "prod", newer)
    assign(env, "base", "prod", base)
    revoke(c, base, revoke_in="0s", rollback_channels=True)
    assert read(c, newer)["revocation_type"] == "INHERITED"
    assert pointed(c, "middle", "prod") == older["id"]
    assert pointed(c, "middle", "latest") == older["id"]
    assert pointed(c, "base", "prod") is None
    assert pointed(c, "base", "latest") is None


def test_delete_iteration_with_rollback_channels(env: Env) -> None:
    c = env.client
    v1, v2, v3 = versions(c, "app", 3)
    assign(env, "app", "prod", v1)
    assign(env, "app", "prod", v3)
    assign(env, "app", "staging", v3)
    assign(env, "app", "qa", v2)
    env.clock.advance(seconds=1)
    before = history_ids(c, "app", "prod")
    r = c.delete(c.p(f"/iterations/{v3['id']}"), params={"bucket_slug": "app", "rollback_channels": "true"})
    assert ok(r) == {}
    assert pointed(c, "app", "prod") == v1["id"]
    assert history_ids(c, "app", "prod") == [v1["id"], *before]
    assert pointed(c, "app", "staging") is None
    assert history_ids(c, "app", "staging") == [None, v3["id"]]
    assert pointed(c, "app", "qa") == v2["id"]
    assert pointed(c, "app", "latest") == v2["id"]

    # Without rollback the channel is simply unassigned.
    assign(env, "app", "qa", v1)
    r = c.delete(c.p(f"/iterations/{v1['id']}"), params={"bucket_slug": "app"})
    ok(r)
    assert pointed(c, "app", "qa") is None
    assert pointed(c, "app", "prod") is None


# ---- the due-job runner ------------------------------------------------------------------------


def test_a_due_revocation_job_runs_exactly_once_across_two_runners(env: Env) -> None:
    c = env.client
    v1, v2 = versions(c, "app", 2)
    assign(env, "app", "prod", v1)
    assign(env, "app", "prod", v2)
    revoke(c, v2, revoke_in="1h", rollback_channels=True, revocation_message="scheduled")
    prod_before = history_ids(c, "app", "prod")
    latest_before = history_ids(c, "app", "latest")

    env.advance(minutes=59, seconds=59)
    assert run_jobs(env) == 0
    assert pointed(c, "app", "prod") == v2["id"]
    assert pointed(c, "app", "latest") == v2["id"]
    assert history_ids(c, "app", "prod") == prod_before
    assert history_ids(c, "app", "latest") == latest_before

    env.advance(seconds=2)
    barrier = threading.Barrier(2)

    def runner() -> int:
        barrier.wait(timeout=30)
        return run_jobs(env)

    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = [pool.submit(runner) for _ in range(2)]
        results = [f.result(timeout=60) for f in futures]
    assert sum(results) == 1, results
    assert sorted(results) == [0, 1]

    prod_after = history_ids(c, "app", "prod")
    assert prod_after == [v1["id"], *prod_before], "exactly one rollback entry"
    assert pointed(c, "app", "prod") == v1["id"]
    assert history_ids(c, "app", "latest") == [v1["id"], *latest_before]
    assert pointed(c, "app", "latest") == v1["id"]

    env.advance(hours=1)
    assert run_jobs(env) == 0
    assert history_ids(c, "app", "prod") == prod_after
    assert history_ids(c, "app", "latest") == [v1["id"], *latest_before]


def test_restoring_before_the_time_cancels_the_job(env: Env) -> None:
    c = env.client
    v1, v2 = versions(c, "app", 2)
    assign(env, "app", "prod", v1)
    assign(env, "app", "prod", v2)
    revoke(c, v2, revoke_in="2h", rollback_channels=True)
    env.advance(hours=1)
    no_revocation(restore(c, v2)["iteration"])
    prod_before = history_ids(c, "app", "prod")
    latest_before = history_ids(c, "app", "latest")
    env.advance(hours=2)
    assert run_jobs(env) == 0
    no_revocation(read(c, v2))
    assert pointed(c, "app", "prod") == v2["id"]
    assert pointed(c, "app", "latest") == v2["id"]
    assert history_ids(c, "app", "prod") == prod_before
    assert history_ids(c, "app", "latest") == latest_before
    ok(update(c, v2["id"], complete=True))


def test_a_descendant_born_after_scheduling_is_caught_by_the_job(env: Env) -> None:
    c = env.client
    base = publish(c, "base", "base-fp1", ["amazon-ebs.base"])
    scheduled = revoke(c, base, revoke_in="2h", revocation_message="base EOL")["iteration"]
    env.advance(hours=1)
    late = publish(c, "late", "late-fp1", ["amazon-ebs.late"], source={"source_iteration_id": base["id"]})
    no_revocation(read(c, late))
    assert read(c, base)["has_descendants"] is True
    env.advance(hours=1, seconds=1)
    assert run_jobs(env) == 1
    caught = read(c, late)
    assert caught["revocation_type"] == "INHERITED"
    assert caught["revoke_at"] == scheduled["revoke_at"]
    assert caught["revocation_message"] == "base EOL"
    assert caught["revocation_author"] == scheduled["revocation_author"]
    assert caught["revocation_inherited_from"]["iteration_id"] == base["id"]
    assert "revoked" in error(update(c, late["id"], complete=True), 9, 400)
    assert pointed(c, "late", "latest") is None
    # Restoring base restores what the job gave the late descendant too.
    restore(c, base)
    no_revocation(read(c, late))
    assert pointed(c, "late", "latest") == late["id"]


# ---- bad input ---------------------------------------------------------------------------------

BAD_BODIES = [
    ({"revoke_at": "yesterday"}, 3),
    ({"revoke_at": "2024-05-01T13:00:00"}, 3),
    ({"revoke_at": "2024-05-01"}, 3),
    ({"revoke_in": "5 minutes"}, 3),
    ({"revoke_in": "-1h"}, 3),
    ({"revoke_in": "10x"}, 3),
    ({"revoke_in": "h"}, 3),
    ({"revoke_in": "99999999999999999999d"}, 3),
    ({"revoke_in": "36600000h"}, 3),
    ({"revoke_in": "1h", "revocation_message": "x" * 1025}, 3),
    ({"revoke_at": "2024-05-01T11:00:00Z", "revoke_in": "0s"}, 3),
    ({"revoke_at": "2024-05-02T11:00:00Z", "revoke_in": "1h"}, 3),
    ({"restore": True}, 9),
    ({"restore": True, "revoke_at": "2024-05-01T11:00:00Z"}, 3),
    ({"restore": True, "revoke_in": "1h"}, 3),
]


@pytest.mark.parametrize(("body", "code"), BAD_BODIES)
def test_bad_update_changes_nothing(env: Env, body: dict[str, Any], code: int) -> None:
    c = env.client
    v1, v2 = versions(c, "app", 2)
    assign(env, "app", "prod", v1)
    assign(env, "app", "prod", v2)
    before = snapshot(c, "app")
    full = {"bucket_slug": "app", "rollback_channels": True, "revocation_message": "no"} | body
    r = update(c, v2["id"], **full)
    assert 400 <= r.status_code < 500
    error(r, code)
    assert snapshot(c, "app") == before
    env.advance(days=2)  # nothing was scheduled either
    assert run_jobs(env) == 0
    after = snapshot(c, "app")
    assert after == before
    no_revocation(read(c, v2))


def test_unknown_or_malformed_iteration_ids_change_nothing(env: Env) -> None:
    c = env.client
    v1, v2 = versions(c, "app", 2)
    assign(env, "app", "prod", v2)
    before = snapshot(c, "app")
    body = {"revoke_in": "0s", "rollback_channels": True}
    error(update(c, "01HZZZZZZZZZZZZZZZZZZZZZZZ", **body), 5, 404)
    error(update(c, "not-a-ulid", **body), 3, 400)
    error(update(c, v2["id"], bucket_slug="other", **body), 5, 404)
    error(c.delete(c.p("/iterations/01HZZZZZZZZZZZZZZZZZZZZZZZ"), params={"rollback_channels": "true"}), 5, 404)
    error(c.delete(c.p("/iterations/nope"), params={"rollback_channels": "true"}), 3, 400)
    error(c.delete(c.p(f"/iterations/{v2['id']}"), params={"rollback_channels": "maybe"}), 3, 400)
    assert snapshot(c, "app") == before
    assert v1["id"] != v2["id"]
