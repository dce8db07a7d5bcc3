"""CreateRegistry, GetRegistry, UpdateRegistry and DeleteRegistry (soft and hard), over HTTP.

The project of every test starts with the registry that `packyard init` made at conftest.START: active,
tier PLUS. A deactivated registry answers reads and refuses every write with code 9.
"""

from __future__ import annotations

import re
from typing import Any

import httpx

from tests.conftest import Env
from tests.support.client import ApiClient, error, ok
from tests.support.packer import publish

ULID = re.compile(r"^[0-9A-HJKMNP-TV-Z]{26}$")
T0 = "2024-05-01T12:00:00.000Z"  # conftest.START, when the registry was created


def later(env: Env, **delta: float) -> None:
    """Move the injected clock on, with a fresh token: tokens live an hour on the same clock."""
    env.clock.advance(**delta)
    env.client.token = env.token_for(env.init.client_id, env.init.client_secret)


def registry(c: ApiClient) -> dict[str, Any]:
    return dict(ok(c.get(c.p("/registry")))["registry"])


def location(c: ApiClient) -> dict[str, str]:
    return {"organization_id": c.org_id, "project_id": c.project_id}


def refused(response: httpx.Response, code: int, status: int, case: object) -> str:
    """`error`, naming the case that failed: several cases share one app to keep the suite fast."""
    try:
        return error(response, code, status)
    except AssertionError as exc:
        raise AssertionError(f"case {case!r}: {exc}") from None


def check_operation(c: ApiClient, body: dict[str, Any], now: str) -> None:
    op = body["operation"]
    assert set(op) == {"id", "state", "location", "created_at", "updated_at"}
    assert ULID.match(op["id"])
    assert op["state"] == "DONE"
    assert op["location"] == location(c)
    assert op["created_at"] == op["updated_at"] == now


# ---- GetRegistry ----------------------------------------------------------------------------------


def test_get_registry_wire_shape(env: Env) -> None:
    c = env.client
    later(env, hours=3)  # a read doesn't touch any time
    body = ok(c.get(c.p("/registry")))
    assert set(body) == {"registry"}
    reg = body["registry"]
    assert set(reg) == {"id", "location", "config", "created_at", "updated_at"}
    assert ULID.match(reg["id"])
    assert reg["location"] == location(c)
    assert reg["created_at"] == reg["updated_at"] == T0
    config = reg["config"]
    assert set(config) == {"feature_tier", "activated", "tfc_run_task_config"}, "no billing_deprovision while active"
    assert config["feature_tier"] == "PLUS"
    assert config["activated"] is True
    assert ULID.match(config["tfc_run_task_config"]["api_id"])
    assert config["tfc_run_task_config"]["api_id"] != reg["id"]
    assert registry(c) == reg, "two reads agree"


def test_get_registry_of_unknown_project_is_refused_as_any_other_tenant(env: Env) -> None:
    """A project that doesn't exist is refused as one of another tenant is: the answer doesn't tell
    which project ids exist (tests/api/test_tenancy_matrix.py walks every operation)."""
    c = env.client
    path = f"/packer/2021-04-30/organizations/{c.org_id}/projects/00000000-0000-4000-8000-000000000000/registry"
    message = error(c.get(path), 7, 403)
    assert message == "the principal has no access to this organization or project"


# ---- CreateRegistry --------------------------------------------------------------------------------


def test_create_registry_on_active_registry_is_already_exists(env: Env) -> None:
    c = env.client
    before = registry(c)
    for body in ({}, {"feature_tier": "STANDARD"}, {"feature_tier": 3}, {"feature_tier": "PLUS"}):
        env.clock.advance(minutes=5)
        message = refused(c.put(c.p("/registry"), json=body), 6, 409, body)
        assert c.project_id in message
        assert registry(c) == before, f"{body}: a refused CreateRegistry changes nothing"


def test_create_registry_reactivates_a_deactivated_registry(env: Env) -> None:
    c = env.client
    before = registry(c)
    env.clock.advance(minutes=1)
    ok(c.delete(c.p("/registry")))
    env.clock.advance(minutes=1)
    body = ok(c.put(c.p("/registry"), json={"feature_tier": "STANDARD"}))
    assert set(body) == {"registry", "operation"}
    check_operation(c, body, "2024-05-01T12:02:00.000Z")
    reg = body["registry"]
    assert reg["id"] == before["id"], "the same registry comes back"
    assert reg["created_at"] == T0
    assert reg["updated_at"] == "2024-05-01T12:02:00.000Z"
    assert reg["config"]["activated"] is True
    assert reg["config"]["feature_tier"] == "STANDARD"
    assert "billing_deprovision" not in reg["config"]
    assert registry(c) == reg
    ok(c.put(c.p("/images"), json={"bucket_slug": "works-again"}))


# ---- UpdateRegistry --------------------------------------------------------------------------------


def test_update_registry_changes_tier_and_returns_an_operation(env: Env) -> None:
    c = env.client
    before = registry(c)
    env.clock.advance(seconds=90.2345)  # times are truncated to milliseconds
    body = ok(c.patch(c.p("/registry"), json={"feature_tier": "STANDARD"}))
    assert set(body) == {"registry", "operation"}
    now = "2024-05-01T12:01:30.234Z"
    check_operation(c, body, now)
    reg = body["registry"]
    assert reg["config"]["feature_tier"] == "STANDARD"
    assert reg["config"]["activated"] is True
    assert reg["id"] == before["id"]
    assert reg["created_at"] == T0
    assert reg["updated_at"] == now
    assert reg["config"]["tfc_run_task_config"] == before["config"]["tfc_run_task_config"]
    assert registry(c) == reg


def test_update_to_deprecated_private_beta_becomes_standard(env: Env) -> None:
    c = env.client
    for tier in ("PRIVATE_BETA", 1):
        ok(c.patch(c.p("/registry"), json={"feature_tier": "PLUS"}))
        body = ok(c.patch(c.p("/registry"), json={"feature_tier": tier}))
        assert body["registry"]["config"]["feature_tier"] == "STANDARD", tier
        assert registry(c)["config"]["feature_tier"] == "STANDARD", tier


def test_update_registry_accepts_enum_names_and_numbers(env: Env) -> None:
    """grpc-gateway accepts an enum's number as well as its name."""
    c = env.client
    for start, sent, expected in [
        ("PLUS", 2, "STANDARD"),
        ("STANDARD", 3, "PLUS"),
        ("PLUS", "STANDARD", "STANDARD"),
        ("STANDARD", "PLUS", "PLUS"),
    ]:
        ok(c.patch(c.p("/registry"), json={"feature_tier": start}))
        assert registry(c)["config"]["feature_tier"] == start
        reg = ok(c.patch(c.p("/registry"), json={"feature_tier": sent}))["registry"]
        assert reg["config"]["feature_tier"] == expected, sent
        assert registry(c)["config"]["feature_tier"] == expected, sent


def test_update_registry_without_a_tier_keeps_it(env: Env) -> None:
    c = env.client
    ok(c.patch(c.p("/registry"), json={"feature_tier": "STANDARD"}))
    before = registry(c)
    bodies: list[dict[str, Any]] = [
        {},
        {"feature_tier": None},
        {"feature_tier": "UNSET"},
        {"feature_tier": 0},
        {"activate": None},
        {"activate": False},
    ]
    for n, body in enumerate(bodies, start=1):
        env.clock.advance(seconds=1)
        reg = ok(c.patch(c.p("/registry"), json=body))["registry"]
        assert reg == {**before, "updated_at": f"2024-05-01T12:00:{n:02d}.000Z"}, body
        assert registry(c) == reg


def test_update_registry_ignores_location_and_unknown_fields(env: Env) -> None:
    c = env.client
    body = {
        "location": {
            "organization_id": "11111111-1111-4111-8111-111111111111",
            "project_id": "22222222-2222-4222-8222-222222222222",
            "region": {"provider": "aws", "region": "us-east-1"},
        },
        "feature_tier": "STANDARD",
        "not_a_field": {"nested": [1, 2, 3]},
    }
    reg = ok(c.patch(c.p("/registry"), json=body))["registry"]
    assert reg["location"] == location(c), "the path, not the body, names the project"
    assert reg["config"]["feature_tier"] == "STANDARD"


BAD_REGISTRY_BODIES: list[tuple[str, bytes]] = [
    ("unknown-tier", b'{"feature_tier": "GOLD"}'),
    ("lowercase-tier", b'{"feature_tier": "standard"}'),
    ("tier-number-too-big", b'{"feature_tier": 4}'),
    ("tier-negative", b'{"feature_tier": -1}'),
    ("tier-bool", b'{"feature_tier": true}'),
    ("tier-float", b'{"feature_tier": 2.5}'),
    ("tier-object", b'{"feature_tier": {"name": "PLUS"}}'),
    ("activate-string", b'{"activate": "true"}'),
    ("activate-number", b'{"activate": 1}'),
    ("malformed", b'{"feature_tier": "STANDARD"'),
    ("array", b'[{"feature_tier": "STANDARD"}]'),
    ("string", b'"STANDARD"'),
    ("null", b"null"),
    ("not-utf8", b'{"feature_tier": "\xff"}'),
]


def test_update_registry_rejects_bad_bodies_and_changes_nothing(env: Env) -> None:
    c = env.client
    ok(c.delete(c.p("/registry")))  # deactivated: a wrongly accepted `activate` would show
    before = registry(c)
    for name, raw in BAD_REGISTRY_BODIES:
        env.clock.advance(minutes=1)
        refused(c.patch(c.p("/registry"), content=raw, headers={"Content-Type": "application/json"}), 3, 400, name)
        assert registry(c) == before, name


def test_create_registry_rejects_bad_bodies(env: Env) -> None:
    c = env.client
    ok(c.delete(c.p("/registry")))
    before = registry(c)
    for name, raw in BAD_REGISTRY_BODIES:
        if name.startswith("activate"):
            continue  # CreateRegistry has no `activate`; unknown fields are ignored
        refused(c.put(c.p("/registry"), content=raw, headers={"Content-Type": "application/json"}), 3, 400, name)
        assert registry(c) == before, f"{name}: still deactivated"


def test_update_registry_rejects_an_oversized_body(env: Env) -> None:
    c = env.client
    before = registry(c)
    limit = env.settings.limits.max_body_bytes
    raw = b'{"feature_tier": "STANDARD"}'
    message = error(c.patch(c.p("/registry"), content=raw + b" " * (limit + 1 - len(raw))), 3, 400)
    assert str(limit) in message
    assert registry(c) == before
    # exactly at the limit is fine
    reg = ok(c.patch(c.p("/registry"), content=raw + b" " * (limit - len(raw))))["registry"]
    assert reg["config"]["feature_tier"] == "STANDARD"


# ---- DeleteRegistry (soft): deactivation ----------------------------------------------------------------


def test_delete_registry_deactivates_and_keeps_everything(env: Env) -> None:
    c = env.client
    ok(c.put(c.p("/images"), json={"bucket_slug": "kept", "description": "still here"}))
    before = registry(c)
    env.clock.advance(minutes=10)
    body = ok(c.delete(c.p("/registry")))
    now = "2024-05-01T12:10:00.000Z"
    assert set(body) == {"registry", "operation"}
    check_operation(c, body, now)
    reg = body["registry"]
    assert reg["id"] == before["id"]
    assert reg["created_at"] == T0
    assert reg["updated_at"] == now
    config = reg["config"]
    assert "activated" not in config, "false is a zero value and is left out"
    assert config["feature_tier"] == "PLUS"
    assert config["billing_deprovision"] == {"at": now, "reason": "USER_REQUEST"}
    assert config["tfc_run_task_config"] == before["config"]["tfc_run_task_config"]
    assert registry(c) == reg
    bucket = ok(c.get(c.p("/images/kept")))["bucket"]
    assert bucket["description"] == "still here"

    # A second DELETE is harmless: still deactivated, since the first time.
    env.clock.advance(minutes=10)
    again = ok(c.delete(c.p("/registry")))["registry"]
    assert again == reg
    assert registry(c) == reg


def test_delete_registry_with_hard_delete_false_is_soft(env: Env) -> None:
    c = env.client
    ok(c.put(c.p("/images"), json={"bucket_slug": "kept"}))
    for flag in ("false", "0", ""):
        reg = ok(c.delete(c.p("/registry"), params={"hard_delete": flag}))["registry"]
        assert "activated" not in reg["config"], flag
        assert registry(c)["id"] == reg["id"], flag
        ok(c.get(c.p("/images/kept")))
        ok(c.patch(c.p("/registry"), json={"activate": True}))


def test_delete_registry_with_a_bad_hard_delete_flag_changes_nothing(env: Env) -> None:
    c = env.client
    before = registry(c)
    message = error(c.delete(c.p("/registry"), params={"hard_delete": "yes"}), 3, 400)
    assert "hard_delete" in message
    assert registry(c) == before
    assert before["config"]["activated"] is True


def _world(c: ApiClient) -> dict[str, str]:
    """A bucket with an incomplete iteration holding one build and a channel, for the write and read checks."""
    ok(c.put(c.p("/images"), json={"bucket_slug": "web", "description": "web images", "labels": {"team": "a"}}))
    it = ok(c.post(c.p("/images/web/iterations"), json={"fingerprint": "fp-1", "template_type": "HCL2"}))
    iteration_id = it["iteration"]["id"]
    build = ok(
        c.post(
            c.p(f"/images/web/iterations/{iteration_id}"),
            json={"build": {"component_type": "amazon-ebs.a", "status": "UNSET"}},
        )
    )
    ok(c.post(c.p("/images/web/channels"), json={"slug": "dev"}))
    return {"iteration": iteration_id, "build": build["build"]["id"]}


def _reads(c: ApiClient, ids: dict[str, str]) -> dict[str, Any]:
    """Every read of the world; each must still answer 200 on a deactivated registry."""
    return {
        "runtask": ok(c.get(c.p("/runtasks/validation"))),  # first: it makes the HMAC key on first use
        "registry": ok(c.get(c.p("/registry"))),
        "buckets": ok(c.get(c.p("/images"))),
        "bucket": ok(c.get(c.p("/images/web"))),
        "iteration": ok(c.get(c.p("/images/web/iteration"), params={"fingerprint": "fp-1"})),
        "iterations": ok(c.get(c.p("/images/web/iterations"))),
        "builds": ok(c.get(c.p(f"/images/web/iterations/{ids['iteration']}/builds"))),
        "build": ok(c.get(c.p(f"/builds/{ids['build']}"))),
        "channels": ok(c.get(c.p("/images/web/channels"))),
        "channel": ok(c.get(c.p("/images/web/channels/dev"))),
        "history": ok(c.get(c.p("/images/web/channels/dev/history"))),
        "ancestry": ok(c.get(c.p("/images/web/ancestry"))),
    }


def _writes(c: ApiClient, ids: dict[str, str]) -> dict[str, httpx.Response]:
    it, b = ids["iteration"], ids["build"]
    return {
        "CreateBucket": c.put(c.p("/images"), json={"bucket_slug": "new-bucket"}),
        "UpdateBucket": c.patch(c.p("/images/web"), json={"description": "changed", "platforms": None}),
        "DeleteBucket": c.delete(c.p("/images/web")),
        "CreateIteration": c.post(c.p("/images/web/iterations"), json={"fingerprint": "fp-2"}),
        "UpdateIteration": c.patch(c.p(f"/iterations/{it}"), json={"bucket_slug": "web", "revoke_in": "1h"}),
        "DeleteIteration": c.delete(c.p(f"/iterations/{it}"), params={"bucket_slug": "web"}),
        "CreateBuild": c.post(
            c.p(f"/images/web/iterations/{it}"), json={"build": {"component_type": "docker.b", "status": "UNSET"}}
        ),
        "UpdateBuild": c.patch(c.p(f"/builds/{b}"), json={"updates": {"status": "RUNNING", "images": None}}),
        "DeleteBuild": c.delete(c.p(f"/builds/{b}")),
        "CreateChannel": c.post(c.p("/images/web/channels"), json={"slug": "prod"}),
        "UpdateChannel": c.patch(
            c.p("/images/web/channels/dev"), json={"restriction": "RESTRICTED", "mask": "restriction"}
        ),
        "DeleteChannel": c.delete(c.p("/images/web/channels/dev")),
        "RegenerateTFCRunTaskHmacKey": c.patch(c.p("/runtasks/hmac"), json={}),
    }


def test_deactivated_registry_refuses_every_write_and_answers_reads(env: Env) -> None:
    c = env.client
    ids = _world(c)
    env.clock.advance(minutes=1)
    ok(c.delete(c.p("/registry")))
    env.clock.advance(minutes=1)
    before = _reads(c, ids)
    assert before["bucket"]["bucket"]["description"] == "web images"
    assert [b["slug"] for b in before["buckets"]["buckets"]] == ["web"]

    for operation, response in _writes(c, ids).items():
        message = error(response, 9, 400)
        assert "deactivated" in message, operation

    assert _reads(c, ids) == before, "refused writes changed nothing"


def test_update_registry_activate_reactivates(env: Env) -> None:
    c = env.client
    ids = _world(c)
    deactivated = ok(c.delete(c.p("/registry")))["registry"]
    later(env, minutes=30)

    # A tier change alone leaves the registry deactivated.
    reg = ok(c.patch(c.p("/registry"), json={"feature_tier": "STANDARD"}))["registry"]
    assert "activated" not in reg["config"]
    assert reg["config"]["billing_deprovision"] == deactivated["config"]["billing_deprovision"]
    error(c.put(c.p("/images"), json={"bucket_slug": "too-early"}), 9, 400)

    later(env, minutes=30)
    body = ok(c.patch(c.p("/registry"), json={"activate": True}))
    check_operation(c, body, "2024-05-01T13:00:00.000Z")
    reg = body["registry"]
    assert reg["config"]["activated"] is True
    assert "billing_deprovision" not in reg["config"]
    assert reg["config"]["feature_tier"] == "STANDARD", "activate alone keeps the tier"
    assert reg["updated_at"] == "2024-05-01T13:00:00.000Z"
    assert registry(c) == reg

    # Writes work again, on the data kept while deactivated.
    ok(c.put(c.p("/images"), json={"bucket_slug": "new-bucket"}))
    assert ok(c.patch(c.p("/images/web"), json={"description": "changed"}))["bucket"]["description"] == "changed"
    ok(c.post(c.p("/images/web/iterations"), json={"fingerprint": "fp-2"}))
    running = {"updates": {"status": "RUNNING", "images": None}}
    assert ok(c.patch(c.p(f"/builds/{ids['build']}"), json=running))["build"]["status"] == "RUNNING"
    assert ok(c.get(c.p("/images/web")))["bucket"]["iteration_count"] == "2"
    ok(c.delete(c.p("/images/new-bucket")))


def test_activate_on_an_active_registry_is_harmless(env: Env) -> None:
    c = env.client
    before = registry(c)
    reg = ok(c.patch(c.p("/registry"), json={"activate": True, "feature_tier": "PLUS"}))["registry"]
    assert reg["config"] == before["config"]
    assert reg["id"] == before["id"]


# ---- DeleteRegistry (hard): purge ---------------------------------------------------------------------


def test_hard_delete_purges_the_registry_and_its_buckets(env: Env) -> None:
    c = env.client
    done = publish(c, "base", "fp-base", ["amazon-ebs.a"])
    build_id = done["builds"][0]["id"]
    ok(c.put(c.p("/images"), json={"bucket_slug": "other", "labels": {"x": "y"}}))
    old = registry(c)
    later(env, hours=1)

    body = ok(c.delete(c.p("/registry"), params={"hard_delete": "true"}))
    assert set(body) == {"registry", "operation"}
    check_operation(c, body, "2024-05-01T13:00:00.000Z")
    gone = body["registry"]
    assert gone["id"] == old["id"]
    assert "activated" not in gone["config"]
    assert gone["config"]["billing_deprovision"] == {"at": "2024-05-01T13:00:00.000Z", "reason": "USER_REQUEST"}

    # No registry any more: every registry-scoped call is NOT_FOUND.
    assert c.project_id in error(c.get(c.p("/registry")), 5, 404)
    error(c.get(c.p("/images")), 5, 404)
    error(c.get(c.p("/images/base")), 5, 404)
    error(c.put(c.p("/images"), json={"bucket_slug": "new"}), 5, 404)
    error(c.patch(c.p("/registry"), json={"activate": True}), 5, 404)
    error(c.delete(c.p("/registry")), 5, 404)
    error(c.delete(c.p("/registry"), params={"hard_delete": "true"}), 5, 404)

    # A new registry starts empty: the old rows are gone, not hidden.
    env.clock.advance(minutes=5)
    fresh = ok(c.put(c.p("/registry"), json={}))
    check_operation(c, fresh, "2024-05-01T13:05:00.000Z")
    reg = fresh["registry"]
    assert reg["id"] != old["id"]
    assert reg["created_at"] == reg["updated_at"] == "2024-05-01T13:05:00.000Z"
    assert reg["config"]["activated"] is True
    assert reg["config"]["feature_tier"] == "PLUS"
    assert registry(c) == reg
    assert ok(c.get(c.p("/images")))["buckets"] == []
    error(c.get(c.p("/images/base")), 5, 404)
    error(c.get(c.p(f"/builds/{build_id}")), 5, 404)
    bucket = ok(c.put(c.p("/images"), json={"bucket_slug": "base"}))["bucket"]
    assert "iteration_count" not in bucket
    assert "latest_iteration" not in bucket
    error(c.get(c.p("/images/base/iteration"), params={"fingerprint": "fp-base"}), 10, 409)


def test_hard_delete_of_a_deactivated_registry(env: Env) -> None:
    c = env.client
    ok(c.put(c.p("/images"), json={"bucket_slug": "web"}))
    ok(c.delete(c.p("/registry")))
    ok(c.delete(c.p("/registry"), params={"hard_delete": "true"}))
    error(c.get(c.p("/registry")), 5, 404)


def test_create_registry_after_hard_delete_takes_the_tier(env: Env) -> None:
    c = env.client
    for sent, expected in [(None, "PLUS"), ("STANDARD", "STANDARD"), (2, "STANDARD"), (1, "STANDARD"), (3, "PLUS")]:
        ok(c.delete(c.p("/registry"), params={"hard_delete": "true"}))
        body: dict[str, Any] = {} if sent is None else {"feature_tier": sent}
        if sent == "STANDARD":  # as pre-2025 clients send it: a location, which is ignored, and extra keys
            body |= {"location": {"organization_id": "x", "region": {"provider": "aws"}}, "extra": [1]}
        reg = ok(c.put(c.p("/registry"), json=body))["registry"]
        assert reg["location"] == location(c), sent
        assert reg["config"]["feature_tier"] == expected, sent
        assert registry(c)["config"]["feature_tier"] == expected, sent
        refused(c.put(c.p("/registry"), json=body), 6, 409, sent)
