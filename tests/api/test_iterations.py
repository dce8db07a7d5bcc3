"""Iterations over HTTP: CreateIteration, GetIteration, ListIterations, UpdateIteration, DeleteIteration.

Every response is also checked against HashiCorp's Swagger document by the client. Failed requests are
followed by a re-read that proves they changed nothing.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

from tests.conftest import Env
from tests.support.client import ApiClient, error, ok

ZERO_TIME = "0001-01-01T00:00:00.000Z"  # what the Go client sends as revoke_at when none was set
UNKNOWN_ULID = "01HZZZZZZZZZZZZZZZZZZZZZZZ"


# ---- helpers ---------------------------------------------------------------------------------------


def make_bucket(c: ApiClient, slug: str) -> dict[str, Any]:
    return dict(ok(c.put(c.p("/images"), json={"bucket_slug": slug, "description": slug}))["bucket"])


def get_bucket(c: ApiClient, slug: str) -> dict[str, Any]:
    return dict(ok(c.get(c.p(f"/images/{slug}")))["bucket"])


def create_iteration(c: ApiClient, slug: str, fingerprint: str, **extra: Any) -> dict[str, Any]:
    body = {"fingerprint": fingerprint, **extra}
    return dict(ok(c.post(c.p(f"/images/{slug}/iterations"), json=body))["iteration"])


def get_iteration(c: ApiClient, slug: str, **params: Any) -> dict[str, Any]:
    return dict(ok(c.get(c.p(f"/images/{slug}/iteration"), params=params))["iteration"])


def add_build(c: ApiClient, slug: str, iteration_id: str, component: str) -> dict[str, Any]:
    body = {"build": {"component_type": component, "status": "UNSET", "images": None}}
    return dict(ok(c.post(c.p(f"/images/{slug}/iterations/{iteration_id}"), json=body))["build"])


def patch_build(c: ApiClient, build_id: str, **updates: Any) -> dict[str, Any]:
    return dict(ok(c.patch(c.p(f"/builds/{build_id}"), json={"updates": updates}))["build"])


def finish(c: ApiClient, build_id: str, provider: str = "aws", region: str = "us-east-1") -> dict[str, Any]:
    return patch_build(
        c,
        build_id,
        status="DONE",
        cloud_provider=provider,
        images=[{"image_id": f"img-{build_id[-6:]}", "region": region}],
    )


def complete_iteration(
    c: ApiClient, slug: str, fingerprint: str, components: dict[str, str] | None = None
) -> dict[str, Any]:
    """Create an iteration whose builds (component -> cloud provider) all finish DONE."""
    it = create_iteration(c, slug, fingerprint, template_type="HCL2")
    wanted = components or {"amazon-ebs.main": "aws"}
    builds = {component: add_build(c, slug, it["id"], component) for component in wanted}
    for component, provider in wanted.items():
        finish(c, builds[component]["id"], provider)
    done = get_iteration(c, slug, iteration_id=it["id"])
    assert done["complete"] is True
    return done


def list_iterations(c: ApiClient, slug: str, params: Any = None) -> dict[str, Any]:
    return dict(ok(c.get(c.p(f"/images/{slug}/iterations"), params=params)))


def update_iteration(c: ApiClient, iteration_id: str, body: dict[str, Any]) -> Any:
    return c.patch(c.p(f"/iterations/{iteration_id}"), json=body)


def advance(env: Env, **delta: float) -> None:
    """Move the clock on; past the token lifetime the client then needs a fresh token, as Packer would."""
    env.clock.advance(**delta)
    env.client.token = env.token_for(env.init.client_id, env.init.client_secret)


def is_ulid(value: str) -> bool:
    return len(value) == 26 and value == value.upper() and value.isalnum()


# ---- CreateIteration -------------------------------------------------------------------------------


def test_create_iteration_starts_incomplete_and_counts_in_bucket(env: Env) -> None:
    c = env.client
    make_bucket(c, "ubuntu")
    it = create_iteration(c, "ubuntu", "fp-1", template_type="HCL2")
    assert is_ulid(it["id"])
    assert it["bucket_slug"] == "ubuntu"
    assert it["fingerprint"] == "fp-1"
    assert it["builds"] == []
    assert it["created_at"] == it["updated_at"] == "2024-05-01T12:00:00.000Z"
    assert it["author_id"] == env.init.client_id
    for absent in ("complete", "incremental_version", "revoke_at", "revocation_message", "revocation_type"):
        assert absent not in it
    assert get_bucket(c, "ubuntu")["iteration_count"] == "1"
    assert "latest_version" not in get_bucket(c, "ubuntu")
    assert get_iteration(c, "ubuntu", iteration_id=it["id"]) == it


def test_create_iteration_ignores_location_and_duplicated_path_values(env: Env) -> None:
    c = env.client
    make_bucket(c, "ubuntu")
    make_bucket(c, "other")
    body = {
        "fingerprint": "fp-loc",
        "bucket_slug": "other",
        "location": {"organization_id": "x", "project_id": "y", "region": {"provider": "aws", "region": "eu"}},
        "unknown_field": True,
    }
    it = ok(c.post(c.p("/images/ubuntu/iterations"), json=body))["iteration"]
    assert it["bucket_slug"] == "ubuntu", "the path wins over the body"
    error(c.get(c.p("/images/other/iteration"), params={"fingerprint": "fp-loc"}), 10, 409)


INVALID_FINGERPRINTS = ["", "a" * 41, "has space", " lead", "a/b", "tab\there", "ünïcode", "semi;colon", "a\nb", None]


def test_create_iteration_rejects_invalid_fingerprints(env: Env) -> None:
    c = env.client
    make_bucket(c, "ubuntu")
    for fingerprint in INVALID_FINGERPRINTS:
        response = c.post(c.p("/images/ubuntu/iterations"), json={"fingerprint": fingerprint})
        assert response.status_code == 400, (fingerprint, response.text)
        assert "fingerprint" in error(response, 3, 400)
    assert list_iterations(c, "ubuntu")["iterations"] == []
    assert "iteration_count" not in get_bucket(c, "ubuntu")


def test_create_iteration_without_fingerprint_key_is_invalid(env: Env) -> None:
    c = env.client
    make_bucket(c, "ubuntu")
    error(c.post(c.p("/images/ubuntu/iterations"), json={"template_type": "HCL2"}), 3, 400)
    error(c.post(c.p("/images/ubuntu/iterations")), 3, 400)  # the client's bare "{}"
    assert list_iterations(c, "ubuntu")["iterations"] == []


def test_create_iteration_accepts_every_allowed_fingerprint_character(env: Env) -> None:
    c = env.client
    make_bucket(c, "ubuntu")
    for fingerprint in ["a" * 40, "x", "A-b.c'd\"e_f", "01HX5J4B6E2Q4ZK7Y3N3P0M1QW", "deadbeef" * 5, "1.2.3"]:
        it = create_iteration(c, "ubuntu", fingerprint)
        assert it["fingerprint"] == fingerprint
        assert get_iteration(c, "ubuntu", fingerprint=fingerprint)["id"] == it["id"]
    # Fingerprints are case-sensitive: these are two iterations.
    assert create_iteration(c, "ubuntu", "X")["id"] != get_iteration(c, "ubuntu", fingerprint="x")["id"]


def test_duplicate_fingerprint_is_already_exists_per_bucket(env: Env) -> None:
    c = env.client
    make_bucket(c, "ubuntu")
    make_bucket(c, "debian")
    first = create_iteration(c, "ubuntu", "same-fp", template_type="HCL2")
    message = error(c.post(c.p("/images/ubuntu/iterations"), json={"fingerprint": "same-fp"}), 6, 409)
    assert "same-fp" in message
    # A different template type does not make it a different iteration.
    error(c.post(c.p("/images/ubuntu/iterations"), json={"fingerprint": "same-fp", "template_type": "JSON"}), 6, 409)
    listed = list_iterations(c, "ubuntu")["iterations"]
    assert [i["id"] for i in listed] == [first["id"]]
    assert get_bucket(c, "ubuntu")["iteration_count"] == "1"
    assert get_iteration(c, "ubuntu", fingerprint="same-fp")["template_type"] == "HCL2"
    # Fingerprints are unique per bucket only.
    other = create_iteration(c, "debian", "same-fp")
    assert other["id"] != first["id"]


def test_duplicate_fingerprint_of_a_complete_iteration_is_still_already_exists(env: Env) -> None:
    c = env.client
    make_bucket(c, "ubuntu")
    done = complete_iteration(c, "ubuntu", "fp-done")
    error(c.post(c.p("/images/ubuntu/iterations"), json={"fingerprint": "fp-done"}), 6, 409)
    assert get_iteration(c, "ubuntu", fingerprint="fp-done") == done


def test_unknown_bucket_is_not_found_for_every_iteration_operation(env: Env) -> None:
    c = env.client
    make_bucket(c, "ubuntu")
    it = create_iteration(c, "ubuntu", "fp-1")
    error(c.post(c.p("/images/nope/iterations"), json={"fingerprint": "fp-1"}), 5, 404)
    error(c.get(c.p("/images/nope/iteration"), params={"fingerprint": "fp-1"}), 5, 404)
    error(c.get(c.p("/images/nope/iteration"), params={"iteration_id": it["id"]}), 5, 404)
    error(c.get(c.p("/images/nope/iterations")), 5, 404)
    error(update_iteration(c, it["id"], {"bucket_slug": "nope", "complete": True}), 5, 404)
    error(c.delete(c.p(f"/iterations/{it['id']}"), params={"bucket_slug": "nope"}), 5, 404)
    assert get_iteration(c, "ubuntu", iteration_id=it["id"]) == it


def test_invalid_bucket_slug_is_invalid_argument(env: Env) -> None:
    c = env.client
    make_bucket(c, "ubuntu")
    it = create_iteration(c, "ubuntu", "fp-1")
    error(c.post(c.p("/images/bad.slug/iterations"), json={"fingerprint": "fp-x"}), 3, 400)
    error(c.delete(c.p(f"/iterations/{it['id']}"), params={"bucket_slug": "bad slug!"}), 3, 400)
    assert get_iteration(c, "ubuntu", iteration_id=it["id"]) == it


# ---- template_type ---------------------------------------------------------------------------------


def test_template_type_is_stored_and_echoed_everywhere(env: Env) -> None:
    c = env.client
    for n, (sent, echoed) in enumerate([("HCL2", "HCL2"), ("JSON", "JSON"), (1, "HCL2"), (2, "JSON")]):
        slug = f"bucket-{n}"
        make_bucket(c, slug)
        it = create_iteration(c, slug, "fp-t", template_type=sent)
        assert it["template_type"] == echoed, sent
        assert get_iteration(c, slug, iteration_id=it["id"])["template_type"] == echoed
        assert get_iteration(c, slug, fingerprint="fp-t")["template_type"] == echoed
        updated = ok(update_iteration(c, it["id"], {"bucket_slug": slug, "revoke_at": ZERO_TIME}))["iteration"]
        assert updated["template_type"] == echoed
        finish(c, add_build(c, slug, it["id"], "amazon-ebs.a")["id"])
        assert get_iteration(c, slug, incremental_version=1)["template_type"] == echoed


def test_template_type_unset_is_omitted(env: Env) -> None:
    c = env.client
    make_bucket(c, "ubuntu")
    for n, sent in enumerate([None, "TEMPLATE_TYPE_UNSET", 0, "omitted"]):
        body: dict[str, Any] = {"fingerprint": f"fp-{n}"}
        if sent != "omitted":
            body["template_type"] = sent
        it = ok(c.post(c.p("/images/ubuntu/iterations"), json=body))["iteration"]
        assert "template_type" not in it, sent
        assert "template_type" not in get_iteration(c, "ubuntu", fingerprint=f"fp-{n}")


def test_unknown_template_type_is_invalid_and_creates_nothing(env: Env) -> None:
    c = env.client
    make_bucket(c, "ubuntu")
    for sent in ["YAML", "hcl2", "", "ITERATION_UNSET", 3, -1, 1.5, True, ["HCL2"], {"name": "HCL2"}]:
        response = c.post(c.p("/images/ubuntu/iterations"), json={"fingerprint": "fp-bad", "template_type": sent})
        assert response.status_code == 400, (sent, response.text)
        error(response, 3, 400)
    error(c.get(c.p("/images/ubuntu/iteration"), params={"fingerprint": "fp-bad"}), 10, 409)
    assert "iteration_count" not in get_bucket(c, "ubuntu")


# ---- GetIteration ----------------------------------------------------------------------------------


def test_get_iteration_by_each_identifier_returns_the_same_iteration_with_builds(env: Env) -> None:
    c = env.client
    make_bucket(c, "ubuntu")
    done = complete_iteration(c, "ubuntu", "fp-a", {"amazon-ebs.a": "aws", "googlecompute.b": "gce"})
    by_id = get_iteration(c, "ubuntu", iteration_id=done["id"])
    by_fp = get_iteration(c, "ubuntu", fingerprint="fp-a")
    by_version = get_iteration(c, "ubuntu", incremental_version=1)
    assert by_id == by_fp == by_version == done
    assert by_id["bucket_slug"] == "ubuntu"
    assert [b["component_type"] for b in by_id["builds"]] == ["amazon-ebs.a", "googlecompute.b"]
    for b in by_id["builds"]:
        assert b["iteration_id"] == done["id"]
        assert b["status"] == "DONE"
        assert b["images"]
        assert b["images"][0]["image_id"]
        assert b["cloud_provider"] in ("aws", "gce")
    # Crockford base32 is case-insensitive: a lower-case id names the same iteration.
    assert get_iteration(c, "ubuntu", iteration_id=done["id"].lower())["id"] == done["id"]


def test_get_iteration_identifier_precedence_is_id_then_fingerprint_then_version(env: Env) -> None:
    c = env.client
    make_bucket(c, "ubuntu")
    first = complete_iteration(c, "ubuntu", "fp-1")
    second = complete_iteration(c, "ubuntu", "fp-2")
    assert get_iteration(c, "ubuntu", iteration_id=first["id"], fingerprint="fp-2", incremental_version=2) == first
    assert get_iteration(c, "ubuntu", fingerprint="fp-2", incremental_version=1) == second


def test_get_iteration_matching_nothing_is_aborted_for_every_identifier_kind(env: Env) -> None:
    c = env.client
    make_bucket(c, "ubuntu")
    make_bucket(c, "debian")
    incomplete = create_iteration(c, "ubuntu", "fp-incomplete")
    elsewhere = complete_iteration(c, "debian", "fp-debian")
    url = c.p("/images/ubuntu/iteration")
    error(c.get(url, params={"iteration_id": UNKNOWN_ULID}), 10, 409)
    error(c.get(url, params={"fingerprint": "no-such-fp"}), 10, 409)
    error(c.get(url, params={"incremental_version": 1}), 10, 409)  # the only iteration is incomplete
    error(c.get(url, params={"incremental_version": 2147483647}), 10, 409)
    # Another bucket's iteration is not found through this bucket, by any identifier.
    error(c.get(url, params={"iteration_id": elsewhere["id"]}), 10, 409)
    error(c.get(url, params={"fingerprint": "fp-debian"}), 10, 409)
    assert get_iteration(c, "ubuntu", iteration_id=incomplete["id"])["id"] == incomplete["id"]


def test_get_iteration_without_identifier_is_invalid(env: Env) -> None:
    c = env.client
    make_bucket(c, "ubuntu")
    create_iteration(c, "ubuntu", "fp-1")
    for params in [
        {},
        {"iteration_id": ""},
        {"fingerprint": ""},
        {"incremental_version": "0"},
        {"iteration_id": "", "fingerprint": "", "incremental_version": ""},
    ]:
        response = c.get(c.p("/images/ubuntu/iteration"), params=params)
        assert response.status_code == 400, (params, response.text)
        error(response, 3, 400)


def test_get_iteration_with_malformed_identifier_is_invalid(env: Env) -> None:
    c = env.client
    make_bucket(c, "ubuntu")
    create_iteration(c, "ubuntu", "fp-1")
    for params in [
        {"iteration_id": "not-a-ulid"},
        {"iteration_id": "01HZZZZZZZZZZZZZZZZZZZZZZ"},  # 25 characters
        {"iteration_id": "01HZZZZZZZZZZZZZZZZZZZZZZU"},  # U is not Crockford base32
        {"iteration_id": "81HZZZZZZZZZZZZZZZZZZZZZZZ"},  # overflows 128 bits
        {"incremental_version": "abc"},
        {"incremental_version": "-1"},
        {"incremental_version": "2147483648"},  # beyond int32
        {"fingerprint": "has space"},
        {"fingerprint": "a" * 41},
        {"fingerprint": "a/b"},
    ]:
        response = c.get(c.p("/images/ubuntu/iteration"), params=params)
        assert response.status_code == 400, (params, response.text)
        error(response, 3, 400)


# ---- completion and incremental versions -----------------------------------------------------------


def test_iteration_with_zero_builds_never_completes(env: Env) -> None:
    c = env.client
    make_bucket(c, "ubuntu")
    it = create_iteration(c, "ubuntu", "fp-empty")
    advance(env, hours=1)
    message = error(update_iteration(c, it["id"], {"bucket_slug": "ubuntu", "complete": True}), 9, 400)
    assert "build" in message
    again = get_iteration(c, "ubuntu", iteration_id=it["id"])
    assert again == it, "a refused completion changes nothing, not even updated_at"
    assert "latest_version" not in get_bucket(c, "ubuntu")


def test_complete_true_on_incomplete_iteration_is_failed_precondition(env: Env) -> None:
    c = env.client
    for other_status in ["UNSET", "RUNNING", "FAILED", "CANCELLED"]:
        slug = f"b-{other_status.lower()}"
        make_bucket(c, slug)
        it = create_iteration(c, slug, "fp-1")
        first = add_build(c, slug, it["id"], "amazon-ebs.a")
        other = add_build(c, slug, it["id"], "amazon-ebs.b")
        finish(c, first["id"])
        if other_status != "UNSET":
            patch_build(c, other["id"], status=other_status)
        before = get_iteration(c, slug, iteration_id=it["id"])
        assert "complete" not in before
        env.clock.advance(minutes=1)
        body = {"bucket_slug": slug, "complete": True, "revoke_at": ZERO_TIME}
        error(update_iteration(c, it["id"], body), 9, 400)
        assert get_iteration(c, slug, iteration_id=it["id"]) == before, other_status
        bucket = get_bucket(c, slug)
        assert "latest_version" not in bucket
        assert "latest_iteration" not in bucket
        # The version the refused completion did not take is the first one handed out later.
        finish(c, other["id"])
        assert get_iteration(c, slug, iteration_id=it["id"])["incremental_version"] == 1


def test_iteration_completes_by_itself_when_every_build_is_done(env: Env) -> None:
    c = env.client
    make_bucket(c, "ubuntu")
    it = create_iteration(c, "ubuntu", "fp-1")
    a = add_build(c, "ubuntu", it["id"], "amazon-ebs.a")
    b = add_build(c, "ubuntu", it["id"], "googlecompute.b")
    finish(c, a["id"], "aws")
    mid = get_iteration(c, "ubuntu", iteration_id=it["id"])
    assert "complete" not in mid
    assert "incremental_version" not in mid
    env.clock.advance(minutes=5)
    finish(c, b["id"], "gce")
    done = get_iteration(c, "ubuntu", iteration_id=it["id"])
    assert done["complete"] is True
    assert done["incremental_version"] == 1
    assert done["updated_at"] == "2024-05-01T12:05:00.000Z"
    bucket = get_bucket(c, "ubuntu")
    assert bucket["latest_version"] == 1
    assert bucket["latest_iteration"]["id"] == it["id"]
    assert bucket["platforms"] == ["aws", "gce"]
    # complete:true on an already complete iteration is accepted and changes nothing that matters.
    again = ok(update_iteration(c, it["id"], {"bucket_slug": "ubuntu", "complete": True, "revoke_at": ZERO_TIME}))
    assert again["iteration"]["complete"] is True
    assert again["iteration"]["incremental_version"] == 1
    assert get_bucket(c, "ubuntu")["latest_version"] == 1


def test_incremental_versions_follow_completion_order_without_gaps(env: Env) -> None:
    c = env.client
    make_bucket(c, "ubuntu")
    created = []
    for n in range(3):
        it = create_iteration(c, "ubuntu", f"fp-{n}")
        created.append((it, add_build(c, "ubuntu", it["id"], "amazon-ebs.a")))
        env.clock.advance(seconds=10)
    # Complete in the order third, first, second.
    for index in (2, 0, 1):
        env.clock.advance(seconds=10)
        finish(c, created[index][1]["id"])
    versions = {n: get_iteration(c, "ubuntu", fingerprint=f"fp-{n}")["incremental_version"] for n in range(3)}
    assert versions == {2: 1, 0: 2, 1: 3}
    for version, n in ((1, 2), (2, 0), (3, 1)):
        assert get_iteration(c, "ubuntu", incremental_version=version)["fingerprint"] == f"fp-{n}"
    bucket = get_bucket(c, "ubuntu")
    assert bucket["latest_version"] == 3
    assert bucket["latest_iteration"]["id"] == created[1][0]["id"]
    assert bucket["iteration_count"] == "3"


def test_incremental_versions_are_per_bucket(env: Env) -> None:
    c = env.client
    make_bucket(c, "ubuntu")
    make_bucket(c, "debian")
    assert complete_iteration(c, "ubuntu", "u1")["incremental_version"] == 1
    assert complete_iteration(c, "debian", "d1")["incremental_version"] == 1
    assert complete_iteration(c, "ubuntu", "u2")["incremental_version"] == 2
    assert complete_iteration(c, "debian", "d2")["incremental_version"] == 2


# ---- UpdateIteration -------------------------------------------------------------------------------


def test_go_client_zero_revoke_at_means_unset_and_changes_nothing(env: Env) -> None:
    c = env.client
    make_bucket(c, "ubuntu")
    incomplete = create_iteration(c, "ubuntu", "fp-open")
    done = complete_iteration(c, "ubuntu", "fp-done")
    advance(env, days=2)
    for it in (incomplete, done):
        before = get_iteration(c, "ubuntu", iteration_id=it["id"])
        body = {"bucket_slug": "ubuntu", "revoke_at": ZERO_TIME, "revocation_message": "", "revoke_in": ""}
        reply = ok(update_iteration(c, it["id"], body))
        assert "operation" not in reply, "nothing was revoked, so there is no operation to wait for"
        got = reply["iteration"]
        for key in ("revoke_at", "revocation_message", "revocation_author", "revocation_type"):
            assert key not in got
        assert got == before, "not even updated_at moves"
        assert get_iteration(c, "ubuntu", iteration_id=it["id"]) == before
    # Other zero-time spellings the Go client may produce are unset too.
    for spelling in ("0001-01-01T00:00:00Z", "0001-01-01T00:00:00.000000000Z"):
        ok(update_iteration(c, done["id"], {"bucket_slug": "ubuntu", "revoke_at": spelling}))
    assert "revoke_at" not in get_iteration(c, "ubuntu", iteration_id=done["id"])
    bucket = get_bucket(c, "ubuntu")
    assert bucket["latest_iteration"]["id"] == done["id"]
    assert "revoke_at" not in bucket["latest_iteration"]


def test_update_iteration_without_bucket_slug_finds_it_in_the_project(env: Env) -> None:
    c = env.client
    make_bucket(c, "ubuntu")
    it = create_iteration(c, "ubuntu", "fp-1")
    got = ok(update_iteration(c, it["id"], {"revoke_at": ZERO_TIME}))["iteration"]
    assert got["id"] == it["id"]


def test_update_iteration_errors_change_nothing(env: Env) -> None:
    c = env.client
    make_bucket(c, "ubuntu")
    make_bucket(c, "debian")
    it = create_iteration(c, "ubuntu", "fp-1")
    finish(c, add_build(c, "ubuntu", it["id"], "amazon-ebs.a")["id"])
    before = get_iteration(c, "ubuntu", iteration_id=it["id"])
    advance(env, hours=1)
    error(update_iteration(c, it["id"], {"bucket_slug": "debian", "complete": True}), 5, 404)
    error(update_iteration(c, UNKNOWN_ULID, {"bucket_slug": "ubuntu", "complete": True}), 5, 404)
    error(update_iteration(c, "not-a-ulid", {"bucket_slug": "ubuntu"}), 3, 400)
    error(update_iteration(c, it["id"], {"bucket_slug": "ubuntu", "revoke_at": "yesterday"}), 3, 400)
    error(update_iteration(c, it["id"], {"bucket_slug": "ubuntu", "complete": "yes"}), 3, 400)
    error(update_iteration(c, it["id"], {"bucket_slug": "ubuntu", "revoke_in": "soon"}), 3, 400)
    error(c.patch(c.p(f"/iterations/{it['id']}"), content=b"{not json"), 3, 400)
    error(c.patch(c.p(f"/iterations/{it['id']}"), content=b"[]"), 3, 400)
    assert get_iteration(c, "ubuntu", iteration_id=it["id"]) == before


# ---- DeleteIteration -------------------------------------------------------------------------------


def test_deleting_latest_complete_iteration_falls_back_to_previous_one(env: Env) -> None:
    c = env.client
    make_bucket(c, "ubuntu")
    v1 = complete_iteration(c, "ubuntu", "fp-1", {"amazon-ebs.a": "aws"})
    env.clock.advance(minutes=1)
    v2 = complete_iteration(c, "ubuntu", "fp-2", {"googlecompute.a": "gce", "azure-arm.b": "azure"})
    bucket = get_bucket(c, "ubuntu")
    assert (bucket["latest_version"], bucket["iteration_count"]) == (2, "2")
    assert bucket["platforms"] == ["azure", "gce"]
    v2_build = v2["builds"][0]["id"]

    env.clock.advance(minutes=1)
    reply = ok(c.delete(c.p(f"/iterations/{v2['id']}"), params={"bucket_slug": "ubuntu"}))
    assert reply == {}
    bucket = get_bucket(c, "ubuntu")
    assert bucket["latest_version"] == 1
    assert bucket["latest_iteration"]["id"] == v1["id"]
    assert bucket["latest_iteration"]["incremental_version"] == 1
    assert [b["component_type"] for b in bucket["latest_iteration"]["builds"]] == ["amazon-ebs.a"]
    assert bucket["platforms"] == ["aws"]
    assert bucket["iteration_count"] == "1"
    error(c.get(c.p("/images/ubuntu/iteration"), params={"iteration_id": v2["id"]}), 10, 409)
    error(c.get(c.p("/images/ubuntu/iteration"), params={"incremental_version": 2}), 10, 409)
    error(c.get(c.p("/images/ubuntu/iteration"), params={"fingerprint": "fp-2"}), 10, 409)
    error(c.get(c.p(f"/builds/{v2_build}")), 5, 404)
    assert [i["id"] for i in list_iterations(c, "ubuntu")["iterations"]] == [v1["id"]]
    latest = ok(c.get(c.p("/images/ubuntu/channels/latest")))["channel"]
    assert latest["iteration"]["id"] == v1["id"], "the managed latest channel falls back too"

    # Deleting it again, or deleting the last one, behaves.
    error(c.delete(c.p(f"/iterations/{v2['id']}"), params={"bucket_slug": "ubuntu"}), 5, 404)
    ok(c.delete(c.p(f"/iterations/{v1['id']}"), params={"bucket_slug": "ubuntu"}))
    bucket = get_bucket(c, "ubuntu")
    for absent in ("latest_version", "latest_iteration", "iteration_count"):
        assert absent not in bucket
    assert bucket["platforms"] == []
    assert "iteration" not in ok(c.get(c.p("/images/ubuntu/channels/latest")))["channel"]

    # The fingerprint is free again, and a deleted version number is never handed out again.
    again = complete_iteration(c, "ubuntu", "fp-2")
    assert again["incremental_version"] == 3
    assert get_bucket(c, "ubuntu")["latest_version"] == 3


def test_deleting_an_older_or_incomplete_iteration_keeps_latest(env: Env) -> None:
    c = env.client
    make_bucket(c, "ubuntu")
    v1 = complete_iteration(c, "ubuntu", "fp-1", {"amazon-ebs.a": "aws"})
    v2 = complete_iteration(c, "ubuntu", "fp-2", {"googlecompute.a": "gce"})
    open_it = create_iteration(c, "ubuntu", "fp-open")
    add_build(c, "ubuntu", open_it["id"], "amazon-ebs.a")
    assert get_bucket(c, "ubuntu")["iteration_count"] == "3"

    ok(c.delete(c.p(f"/iterations/{open_it['id']}"), params={"bucket_slug": "ubuntu"}))
    ok(c.delete(c.p(f"/iterations/{v1['id']}")))  # bucket_slug is optional: ids are project-wide
    bucket = get_bucket(c, "ubuntu")
    assert bucket["iteration_count"] == "1"
    assert bucket["latest_version"] == 2
    assert bucket["latest_iteration"]["id"] == v2["id"]
    assert bucket["platforms"] == ["gce"]
    assert [i["id"] for i in list_iterations(c, "ubuntu")["iterations"]] == [v2["id"]]


def test_delete_iteration_errors_change_nothing(env: Env) -> None:
    c = env.client
    make_bucket(c, "ubuntu")
    make_bucket(c, "debian")
    it = complete_iteration(c, "ubuntu", "fp-1")
    error(c.delete(c.p(f"/iterations/{it['id']}"), params={"bucket_slug": "debian"}), 5, 404)
    error(c.delete(c.p(f"/iterations/{UNKNOWN_ULID}"), params={"bucket_slug": "ubuntu"}), 5, 404)
    error(c.delete(c.p("/iterations/not-a-ulid"), params={"bucket_slug": "ubuntu"}), 3, 400)
    error(c.delete(c.p(f"/iterations/{it['id']}"), params={"bucket_slug": "ubuntu", "rollback_channels": "maybe"}), 3)
    assert get_iteration(c, "ubuntu", iteration_id=it["id"]) == it
    bucket = get_bucket(c, "ubuntu")
    assert (bucket["iteration_count"], bucket["latest_version"]) == ("1", 1)


# ---- ListIterations --------------------------------------------------------------------------------


def test_list_iterations_newest_first_with_build_statuses(env: Env) -> None:
    c = env.client
    make_bucket(c, "ubuntu")
    assert list_iterations(c, "ubuntu")["iterations"] == []
    done = complete_iteration(c, "ubuntu", "fp-done", {"amazon-ebs.a": "aws", "googlecompute.b": "gce"})
    env.clock.advance(seconds=1)
    mixed = create_iteration(c, "ubuntu", "fp-mixed")
    running = add_build(c, "ubuntu", mixed["id"], "amazon-ebs.a")
    patch_build(c, running["id"], status="RUNNING")
    failed = add_build(c, "ubuntu", mixed["id"], "googlecompute.b")
    patch_build(c, failed["id"], status="FAILED")
    add_build(c, "ubuntu", mixed["id"], "docker.c")
    env.clock.advance(seconds=1)
    empty = create_iteration(c, "ubuntu", "fp-empty")

    reply = list_iterations(c, "ubuntu")
    listed = reply["iterations"]
    assert [i["id"] for i in listed] == [empty["id"], mixed["id"], done["id"]]
    assert "next_page_token" not in reply.get("pagination", {})
    assert "build_statuses" not in listed[0]
    assert listed[1]["build_statuses"] == {"amazon-ebs.a": "RUNNING", "googlecompute.b": "FAILED", "docker.c": "UNSET"}
    assert listed[2]["build_statuses"] == {"amazon-ebs.a": "DONE", "googlecompute.b": "DONE"}
    assert listed[2]["complete"] is True
    assert listed[2]["incremental_version"] == 1
    assert "complete" not in listed[1]
    assert "incremental_version" not in listed[1]
    for item in listed:
        assert "builds" not in item
        assert item["bucket_slug"] == "ubuntu"


def _walk(c: ApiClient, slug: str, size: int, order: list[str] | None = None) -> tuple[list[list[str]], list[str]]:
    """Follow next tokens to the end; return the pages (as fingerprints) and each page's previous token."""
    base: list[tuple[str, Any]] = [("pagination.page_size", size)] + [("sorting.order_by", o) for o in order or []]
    pages: list[list[str]] = []
    previous: list[str] = []
    token = ""
    while True:
        params = base + ([("pagination.next_page_token", token)] if token else [])
        reply = list_iterations(c, slug, params)
        pages.append([i["fingerprint"] for i in reply["iterations"]])
        previous.append(reply.get("pagination", {}).get("previous_page_token", ""))
        token = reply.get("pagination", {}).get("next_page_token", "")
        if not token:
            return pages, previous
        assert len(pages) < 50, "paging does not terminate"


def _walk_back(c: ApiClient, slug: str, size: int, order: list[str], token: str) -> list[list[str]]:
    """Follow previous tokens to the first page; return the pages (as fingerprints) in the order visited."""
    base: list[tuple[str, Any]] = [("pagination.page_size", size)] + [("sorting.order_by", o) for o in order]
    pages: list[list[str]] = []
    while token:
        reply = list_iterations(c, slug, [*base, ("pagination.previous_page_token", token)])
        pages.append([i["fingerprint"] for i in reply["iterations"]])
        assert reply["pagination"]["next_page_token"], "a page reached backwards still has a next page"
        token = reply["pagination"].get("previous_page_token", "")
        assert len(pages) < 50, "paging does not terminate"
    return pages


def test_list_iterations_paging_visits_each_exactly_once_both_ways(env: Env) -> None:
    c = env.client
    make_bucket(c, "ubuntu")
    for n in range(7):
        create_iteration(c, "ubuntu", f"fp-{n}")
        env.clock.advance(seconds=1)
    pages, previous = _walk(c, "ubuntu", 3)
    assert pages == [["fp-6", "fp-5", "fp-4"], ["fp-3", "fp-2", "fp-1"], ["fp-0"]]
    assert previous[0] == "", "the first page has no previous page"
    assert all(previous[1:])

    # Walk back from the last page with previous tokens.
    assert _walk_back(c, "ubuntu", 3, [], previous[-1]) == [["fp-3", "fp-2", "fp-1"], ["fp-6", "fp-5", "fp-4"]]

    # Exactly divisible: the last full page has no next token and no empty page follows.
    create_iteration(c, "ubuntu", "fp-7")
    create_iteration(c, "ubuntu", "fp-8")
    pages, _ = _walk(c, "ubuntu", 3)
    flat = [f for page in pages for f in page]
    assert len(pages) == 3
    assert sorted(flat) == sorted(f"fp-{n}" for n in range(9))
    assert len(set(flat)) == 9

    # Page size 0 means the server default, which holds all nine.
    assert len(list_iterations(c, "ubuntu", {"pagination.page_size": 0})["iterations"]) == 9


def test_list_iterations_paging_is_stable_when_iterations_are_added_between_pages(env: Env) -> None:
    c = env.client
    make_bucket(c, "ubuntu")
    for n in range(4):
        create_iteration(c, "ubuntu", f"fp-{n}")
        env.clock.advance(seconds=1)
    first = list_iterations(c, "ubuntu", {"pagination.page_size": 2})
    create_iteration(c, "ubuntu", "fp-new")  # newer than everything: belongs before page one
    token = first["pagination"]["next_page_token"]
    second = list_iterations(c, "ubuntu", {"pagination.page_size": 2, "pagination.next_page_token": token})
    assert [i["fingerprint"] for i in first["iterations"]] == ["fp-3", "fp-2"]
    assert [i["fingerprint"] for i in second["iterations"]] == ["fp-1", "fp-0"]


def test_list_iterations_sorting(env: Env) -> None:
    c = env.client
    make_bucket(c, "ubuntu")
    its = {}
    for fp in ("c-fp", "a-fp", "d-fp", "b-fp"):
        its[fp] = create_iteration(c, "ubuntu", fp)
        add_build(c, "ubuntu", its[fp]["id"], "amazon-ebs.a")
        env.clock.advance(seconds=1)
    # Completion order gives versions: d=1, c=2, b=3; a stays incomplete (version 0).
    for fp in ("d-fp", "c-fp", "b-fp"):
        finish(c, get_iteration(c, "ubuntu", fingerprint=fp)["builds"][0]["id"])

    def order(*values: str) -> list[str]:
        params = [("sorting.order_by", v) for v in values]
        return [i["fingerprint"] for i in list_iterations(c, "ubuntu", params)["iterations"]]

    assert order() == ["b-fp", "d-fp", "a-fp", "c-fp"]  # created_at desc
    assert order("created_at desc") == order()
    assert order("created_at") == ["c-fp", "a-fp", "d-fp", "b-fp"]
    assert order("created_at asc") == order("created_at")
    assert order("incremental_version") == ["a-fp", "d-fp", "c-fp", "b-fp"]
    assert order("incremental_version desc") == ["b-fp", "c-fp", "d-fp", "a-fp"]
    assert order("fingerprint") == ["a-fp", "b-fp", "c-fp", "d-fp"]
    assert order("fingerprint desc") == ["d-fp", "c-fp", "b-fp", "a-fp"]
    assert order("fingerprint DESC") == order("fingerprint desc")
    assert order("incremental_version desc,fingerprint") == ["b-fp", "c-fp", "d-fp", "a-fp"]
    assert order("incremental_version", "fingerprint desc") == ["a-fp", "d-fp", "c-fp", "b-fp"]


def test_list_iterations_sorted_paging_visits_each_exactly_once(env: Env) -> None:
    c = env.client
    make_bucket(c, "ubuntu")
    names = [f"fp-{n:02d}" for n in (5, 1, 9, 3, 7, 0, 8, 2, 6, 4)]
    for n, fp in enumerate(names):
        it = create_iteration(c, "ubuntu", fp)
        if n % 2 == 0:  # complete every other one, in creation order
            finish(c, add_build(c, "ubuntu", it["id"], "amazon-ebs.a")["id"])
    pages, _ = _walk(c, "ubuntu", 3, ["fingerprint"])
    assert [f for page in pages for f in page] == sorted(names)
    pages, _ = _walk(c, "ubuntu", 4, ["fingerprint desc"])
    assert [f for page in pages for f in page] == sorted(names, reverse=True)
    # Many iterations share incremental_version 0: ties are broken so that no page repeats or skips one.
    pages, _ = _walk(c, "ubuntu", 2, ["incremental_version desc"])
    flat = [f for page in pages for f in page]
    assert sorted(flat) == sorted(names)
    assert len(flat) == len(names)
    assert flat[:5] == [names[8], names[6], names[4], names[2], names[0]]
    # Mixed directions, forwards and then all the way back with previous tokens.
    for order, size in (
        (["incremental_version desc", "fingerprint"], 3),
        (["incremental_version", "fingerprint desc"], 4),
    ):
        pages, previous = _walk(c, "ubuntu", size, order)
        everything = [
            i["fingerprint"]
            for i in list_iterations(c, "ubuntu", [("sorting.order_by", o) for o in order])["iterations"]
        ]
        assert [f for page in pages for f in page] == everything
        assert len(set(everything)) == len(names)
        assert _walk_back(c, "ubuntu", size, order, previous[-1]) == pages[:-1][::-1], order
    # The last order: the incomplete ones (version 0) by fingerprint descending, then versions 1 to 5.
    assert everything == ["fp-04", "fp-03", "fp-02", "fp-01", "fp-00", "fp-05", "fp-09", "fp-07", "fp-08", "fp-06"]


def test_list_iterations_bad_paging_or_sorting_is_invalid(env: Env) -> None:
    c = env.client
    make_bucket(c, "ubuntu")
    create_iteration(c, "ubuntu", "fp-1")
    for params in [
        {"pagination.next_page_token": "!!!not-a-token!!!"},
        {"pagination.previous_page_token": "eyJmb28iOiAxfQ"},  # base64 of {"foo": 1}
        {"pagination.next_page_token": "bm90IGpzb24"},  # base64 of "not json"
        {"pagination.page_size": "-1"},
        {"pagination.page_size": "ten"},
        {"sorting.order_by": "nonsense"},
        {"sorting.order_by": "fingerprint sideways"},
        {"sorting.order_by": "fingerprint,fingerprint desc"},
        {"sorting.order_by": "fingerprint desc extra"},
        {"sorting.order_by": "build_statuses"},
    ]:
        response = c.get(c.p("/images/ubuntu/iterations"), params=params)
        assert response.status_code == 400, (params, response.text)
        error(response, 3, 400)


def test_list_iterations_tokens_only_fit_the_request_that_issued_them(env: Env) -> None:
    c = env.client
    make_bucket(c, "ubuntu")
    for n in range(5):
        create_iteration(c, "ubuntu", f"fp-{n}")
        env.clock.advance(seconds=1)
    reply = list_iterations(c, "ubuntu", {"pagination.page_size": 2})
    next_token = reply["pagination"]["next_page_token"]
    second = list_iterations(c, "ubuntu", {"pagination.page_size": 2, "pagination.next_page_token": next_token})
    previous_token = second["pagination"]["previous_page_token"]
    url = c.p("/images/ubuntu/iterations")
    # A token issued for another sort order, a next token used as a previous one and vice versa, both at once.
    error(c.get(url, params={"pagination.next_page_token": next_token, "sorting.order_by": "fingerprint"}), 3, 400)
    error(c.get(url, params={"pagination.previous_page_token": next_token}), 3, 400)
    error(c.get(url, params={"pagination.next_page_token": previous_token}), 3, 400)
    both = {"pagination.next_page_token": next_token, "pagination.previous_page_token": previous_token}
    error(c.get(url, params=both), 3, 400)
    # A truncated token is refused rather than misread.
    error(c.get(url, params={"pagination.next_page_token": next_token[:-4]}), 3, 400)


def test_threaded_identical_create_iteration_calls_yield_one_iteration(env: Env) -> None:
    """Separate threads (each with its own loop and client), so the transactions truly overlap."""
    c = env.client
    make_bucket(c, "ubuntu")
    url = c.p("/images/ubuntu/iterations")
    barrier = threading.Barrier(6)
    results: list[Any] = [None] * 6

    def worker(index: int) -> None:
        loop = asyncio.new_event_loop()
        client = ApiClient(env.app, c.contracts, loop, c.org_id, c.project_id)
        client.token = c.token
        try:
            barrier.wait(timeout=10)
            results[index] = client.post(url, json={"fingerprint": "fp-race", "template_type": "HCL2"})
        finally:
            client.close()
            loop.close()

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert sorted(r.status_code for r in results) == [200, 409, 409, 409, 409, 409]
    for r in results:
        if r.status_code != 200:
            error(r, 6, 409)
    winner = next(r.json()["iteration"] for r in results if r.status_code == 200)
    assert get_iteration(c, "ubuntu", fingerprint="fp-race") == winner
    assert get_bucket(c, "ubuntu")["iteration_count"] == "1"
