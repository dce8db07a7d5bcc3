"""The 2021-04-30 tree for the fuzzing lane: how it is seeded (Packer's 2021 publish sequence) and steered
(bucket slugs, iteration and build ids, channel slugs, fingerprints, versions, page tokens, masks)."""

from __future__ import annotations

import base64
import json
from typing import Any

from tests.conftest import Env
from tests.fuzz.lane import BAD_TOKENS, RAW_BODIES, Anchor, State, Tree, forge, remember_tokens
from tests.support.client import ok
from tests.support.packer import publish

# Values mixed into generated cases by parameter or property name: valid ones first, then edges (int32 and
# int64 bounds, times at the end of the calendar in other zones) that schemathesis rarely reaches alone.
POOLS: dict[str, list[Any]] = {
    "incremental_version": [1, 2**31 - 1, 2**31, 2**63, 2**64, -(2**63) - 1],
    "type": ["parents", "children"],
    "task_type": ["validation"],
    "mask": [
        "iterationId",
        "fingerprint",
        "incrementalVersion",
        "restriction",
        "restriction,iterationId",
        "iterationId,fingerprint,incrementalVersion",
    ],
    "revoke_in": ["10s", "30m", "2h", "1d", "90d", "36500d", "36501d"],
    "revoke_at": [
        "0001-01-01T00:00:00.000Z",
        "2024-05-01T11:00:00Z",
        "2024-05-03T12:00:00.123Z",
        "9999-12-31T23:59:59Z",
        "9999-12-31T23:59:59-10:00",
        "0001-01-01T00:00:00+01:00",
    ],
    "status": ["UNSET", "RUNNING", "DONE", "FAILED", "CANCELLED"],
    "pagination.page_size": [0, 1, 2, 1000, 2**31, 2**62],
    "hard_delete": [False, True],
    "rollback_channels": [True, False],
}

# Sort orders each list operation accepts.
SORTS: dict[str, list[Any]] = {
    "PackerService_ListBuckets": [["slug"], ["created_at desc"], ["updated_at asc", "slug desc"]],
    "PackerService_ListIterations": [["incremental_version desc"], ["fingerprint"], ["created_at,fingerprint desc"]],
    "PackerService_ListBuilds": [["component_type desc"], ["updated_at"], ["created_at desc", "component_type"]],
}
# Properties a useful request of the operation needs, added to generated bodies that lack them.
INSERT: dict[str, tuple[str, ...]] = {
    "PackerService_CreateBucket": ("bucket_slug",),
    "PackerService_CreateIteration": ("fingerprint",),
    "PackerService_CreateChannel": ("slug", "iteration_id", "incremental_version"),
    "PackerService_UpdateChannel": ("iteration_id", "mask", "incremental_version"),
    "PackerService_UpdateIteration": ("bucket_slug",),
    "PackerService_CreateBuild": ("fingerprint", "build.component_type", "build.source_iteration_id"),
    "PackerService_UpdateBuild": ("updates.status", "updates.source_build_ulid"),
}
# Names that are sometimes made up, so creations succeed rather than collide.
FRESH = frozenset({"bucket_slug", "slug", "fingerprint", "component_type"})
CREATIONS = frozenset(
    {
        "PackerService_CreateBucket",
        "PackerService_CreateIteration",
        "PackerService_CreateBuild",
        "PackerService_CreateChannel",
        "PackerService_CreateRegistry",
    }
)
# Registry deletion last within a round: a hard delete empties the project.
LAST = ("PackerService_DeleteRegistry",)


def seed(env: Env, n: int) -> None:
    """Buckets with complete and incomplete iterations, parents and children, channels, a failed build."""
    c = env.client
    base = publish(c, "fuzz-base", f"base-{n}", ["amazon-ebs.ubuntu", "docker.ubuntu"])
    channel = c.post(c.p("/images/fuzz-base/channels"), json={"slug": f"prod-{n}", "iteration_id": base["id"]})
    source: dict[str, str] = {"source_iteration_id": base["id"]}
    if channel.status_code == 200:
        source["source_channel_id"] = channel.json()["channel"]["id"]
    child = publish(c, "fuzz-app", f"app-{n}", ["amazon-ebs.app"], source=source)
    c.post(c.p("/images/fuzz-app/channels"), json={"slug": f"stable-{n}", "iteration_id": child["id"]})
    publish(c, "fuzz-app", f"app-failed-{n}", ["amazon-ebs.app", "docker.app"], fail={"docker.app"})
    spare = c.post(c.p("/images/fuzz-app/iterations"), json={"fingerprint": f"spare-{n}"})
    if spare.status_code == 200:
        iteration_id = spare.json()["iteration"]["id"]
        build = c.post(
            c.p(f"/images/fuzz-app/iterations/{iteration_id}"),
            json={"build": {"component_type": "qemu.app", "status": "RUNNING"}},
        )
        ok(build)


def ensure_seed(env: Env, state: State) -> None:
    """Bring back what the previous operations destroyed: an active registry and the seeded buckets."""
    c = env.client
    env.client.token = env.token_for(env.init.client_id, env.init.client_secret)
    registry = c.get(c.p("/registry"))
    if registry.status_code == 404:
        ok(c.put(c.p("/registry"), json={}))
    elif registry.json()["registry"].get("activated") is not True:
        ok(c.patch(c.p("/registry"), json={"activate": True}))
    present = {b["slug"] for b in ok(c.get(c.p("/images"), params={"pagination.page_size": 1000}))["buckets"]}
    if not {"fuzz-base", "fuzz-app"} <= present or state.seeded == 0:
        state.seeded += 1
        seed(env, state.seeded)
    for slug in ("fuzz-base", "fuzz-app"):
        have = {ch["slug"] for ch in ok(c.get(c.p(f"/images/{slug}/channels")))["channels"]}
        for channel in ("canary", "beta"):
            if channel not in have:
                ok(c.post(c.p(f"/images/{slug}/channels"), json={"slug": channel}))
    refresh(env, state)


def refresh(env: Env, state: State) -> None:
    """Anchors: every build of a few buckets (the seeded ones first), with its iteration and a channel."""
    c = env.client
    buckets = ok(c.get(c.p("/images"), params={"sorting.order_by": "updated_at desc"}))["buckets"]
    others = [b["slug"] for b in buckets if not b["slug"].startswith("fuzz-")]
    slugs = ["fuzz-base", "fuzz-app", *others[:2]]
    anchors: list[Anchor] = []
    for slug in slugs:
        bucket = c.get(c.p(f"/images/{slug}"))
        if bucket.status_code != 200:
            continue
        bucket_id = bucket.json()["bucket"]["id"]
        channels = ok(c.get(c.p(f"/images/{slug}/channels")))["channels"]
        own_channels = [channel for channel in channels if not channel.get("managed")]
        iterations = ok(c.get(c.p(f"/images/{slug}/iterations"), params={"pagination.page_size": 6}))["iterations"]
        base = {"bucket_slug": slug, "bucket_id": bucket_id, "channel": "latest", "slug": "latest"}
        anchors.append(Anchor(dict(base)))
        for index, iteration in enumerate(iterations):
            values = {
                **base,
                "iteration_id": iteration["id"],
                "fingerprint": iteration.get("fingerprint", ""),
                "incremental_version": iteration.get("incremental_version", 0),
                "source_iteration_id": iteration["id"],
            }
            if own_channels:
                chosen = own_channels[index % len(own_channels)]
                values.update(slug=chosen["slug"], channel=chosen["slug"], source_channel_id=chosen["id"])
            builds = ok(c.get(c.p(f"/images/{slug}/iterations/{iteration['id']}/builds")))["builds"]
            anchors.append(Anchor(values))
            anchors.extend(Anchor({**values, "build_id": b["id"], "source_build_ulid": b["id"]}) for b in builds)
    state.anchors = anchors


def harvest_tokens(env: Env, state: State, operation_id: str) -> None:
    """Page through a list operation one item at a time in each of its orders, as a client would, to learn
    real page tokens (the lane forges its bad ones from them)."""
    c = env.client
    built = next((a.values for a in state.anchors if "build_id" in a.values), None)
    paths = {
        "PackerService_ListBuckets": "/images",
        "PackerService_ListIterations": "/images/fuzz-app/iterations",
        "PackerService_ListBucketAncestry": "/images/fuzz-base/ancestry",
        "PackerService_ListChannelHistory": "/images/fuzz-app/channels/latest/history",
    }
    if built is not None:
        paths["PackerService_ListBuilds"] = f"/images/{built['bucket_slug']}/iterations/{built['iteration_id']}/builds"
    if operation_id not in paths:
        return
    for order in [[], *SORTS.get(operation_id, [])]:
        params: dict[str, Any] = {"pagination.page_size": 1, "sorting.order_by": order}
        response = c.get(c.p(paths[operation_id]), params=params)
        if response.status_code == 200:
            remember_tokens(operation_id, response.json(), state)


def explicit_cases(operation_id: str, state: State) -> list[dict[str, Any]]:
    """Inputs that once made the server fail (docs/reliability.md lists them), sent on every run on top of
    the generated cases, so the lane never depends on chance to notice one coming back."""
    iteration = next((a.values for a in state.anchors if "iteration_id" in a.values), {})
    cases: list[dict[str, Any]] = []
    if operation_id == "PackerService_CreateChannel":
        for version in (2**63, 2**64):
            body = {"slug": "v-big", "incremental_version": version}
            cases.append({"path": {"bucket_slug": "fuzz-app"}, "body": body})
    elif operation_id == "PackerService_UpdateChannel":
        body = {"incremental_version": 2**64, "mask": "incrementalVersion"}
        cases.append({"path": {"bucket_slug": "fuzz-app", "slug": "canary"}, "body": body})
    elif operation_id == "PackerService_UpdateIteration" and iteration:
        body = {"bucket_slug": iteration["bucket_slug"], "revoke_at": "9999-12-31T23:59:59-10:00"}
        cases.append({"path": {"iteration_id": iteration["iteration_id"]}, "body": body})
    elif operation_id in ("PackerService_ListIterations", "PackerService_ListBuckets"):
        path = {"bucket_slug": "fuzz-app"} if operation_id == "PackerService_ListIterations" else {}
        for order, position, value in (("incremental_version", 0, 2**64), ("created_at", -1, "\ud800")):
            token = forge(state, operation_id, order, position, value)
            if token is not None:
                query = {"sorting.order_by": [json.loads(base64.urlsafe_b64decode(token + "==="))["o"]]}
                cases.append({"path": path, "query": {**query, "pagination.next_page_token": token}})
    elif operation_id == "PackerService_CreateBucket":
        cases.append({"body": RAW_BODIES[0]})
        cases.append({"body": {"bucket_slug": "deep-token"}, "token": BAD_TOKENS[3]})
    return cases


def before_operation(env: Env, state: State, operation_id: str) -> None:
    if operation_id == "PackerService_CreateRegistry":  # so that one creation can succeed
        ok(env.client.delete(env.client.p("/registry")))


TREE = Tree(
    version="2021-04-30",
    spec="packer-service-2021-04-30.swagger.json",
    # With the 2023 tree beside it, the lane keeps the cost it had alone (8,000 generated requests, 180 s
    # at most): 28 operations x (90 + 55) is about 4,000 requests, and half the time budget.
    examples=(90, 55),
    min_requests=1000,
    budget_seconds=90.0,
    pools=POOLS,
    sorts=SORTS,
    insert=INSERT,
    fresh=FRESH,
    creations=CREATIONS,
    ensure_seed=ensure_seed,
    harvest_tokens=harvest_tokens,
    explicit_cases=explicit_cases,
    before_operation=before_operation,
    last=LAST,
)
