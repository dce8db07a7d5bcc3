"""Before measuring: the seeded rows are what the API serves, and have the shape of rows the API writes.

Two checks. (1) GetChannel, GetIteration, GetBucket and ListChannelHistory on the hot bucket return
exactly the seeded iterations, builds, images, versions and counts. (2) One real publish through the
API (client-compatibility.md section C) into a scratch bucket; its responses must have the same JSON
shape as the seeded ones, and its database rows the same columns set and unset (same types, same
constant values) as the seeded rows. The scratch bucket is then deleted through the API.
"""

from __future__ import annotations

import random
from typing import Any

import sqlalchemy as sa

from bench.publish import Connection, Publisher, PublishResult
from bench.seed import BUILD_LABELS, COMPONENTS, PLATFORMS, IterationFacts, SeedResult
from bench.servers import request
from packyard.storage import schema as t
from packyard.storage.db import create_engine

SCRATCH = "bench-verify"
# Columns whose values differ from row to row (ids, times, names, versions); the rest must be equal.
_PER_ROW = {
    "id",
    "bucket_id",
    "iteration_id",
    "build_id",
    "channel_id",
    "fingerprint",
    "iteration_fingerprint",
    "incremental_version",
    "iteration_version",
    "created_at",
    "updated_at",
    "heartbeat_at",
    "packer_run_uuid",
    "image_id",
}


class SeedMismatch(AssertionError):
    pass


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise SeedMismatch(message)


def _get(port: int, token: str, path: str) -> Any:
    status, body = request(port, "GET", path, headers={"Authorization": f"Bearer {token}"})
    _check(status == 200, f"GET {path}: HTTP {status} {body}")
    return body


def _iteration_matches(it: dict[str, Any], facts: IterationFacts, slug: str, what: str) -> None:
    _check(it["id"] == facts.id, f"{what}: iteration {it['id']} instead of {facts.id}")
    _check(it["fingerprint"] == facts.fingerprint, f"{what}: fingerprint {it['fingerprint']}")
    _check(it["incremental_version"] == facts.version, f"{what}: version {it['incremental_version']}")
    _check(it.get("complete") is True, f"{what}: not complete")
    _check(it["bucket_slug"] == slug, f"{what}: bucket_slug {it['bucket_slug']}")
    _check(it.get("template_type") == "HCL2", f"{what}: template_type {it.get('template_type')}")
    served = [(b["id"], b["component_type"], [i["image_id"] for i in b["images"]]) for b in it["builds"]]
    _check(served == facts.builds, f"{what}: builds {served} instead of {facts.builds}")
    providers = {c[0]: c[1] for c in COMPONENTS}
    for b in it["builds"]:
        _check(b["status"] == "DONE", f"{what}: build {b['id']} is {b['status']}")
        _check(b["cloud_provider"] == providers[b["component_type"]], f"{what}: cloud_provider {b['cloud_provider']}")
        _check(b.get("labels") == BUILD_LABELS, f"{what}: labels {b.get('labels')}")
        _check(b["iteration_id"] == facts.id, f"{what}: build.iteration_id {b['iteration_id']}")


def served_values(port: int, token: str, prefix: str, seed: SeedResult) -> None:
    """Check (1); raises SeedMismatch on the first difference."""
    hot = seed.hot
    assert hot.production is not None
    assert hot.latest is not None
    assert hot.middle is not None
    channel = _get(port, token, f"{prefix}/images/{hot.slug}/channels/production")["channel"]
    _iteration_matches(channel["iteration"], hot.production, hot.slug, "GetChannel production")
    _check(channel["pointer"]["iteration"] == channel["iteration"], "GetChannel: pointer.iteration differs")
    _check(not channel.get("managed"), "GetChannel production: managed")
    latest = _get(port, token, f"{prefix}/images/{hot.slug}/channels/latest")["channel"]
    _iteration_matches(latest["iteration"], hot.latest, hot.slug, "GetChannel latest")
    _check(latest.get("managed") is True, "GetChannel latest: not managed")
    it = _get(port, token, f"{prefix}/images/{hot.slug}/iteration?fingerprint={hot.middle.fingerprint}")["iteration"]
    _iteration_matches(it, hot.middle, hot.slug, "GetIteration")
    bucket = _get(port, token, f"{prefix}/images/{hot.slug}")["bucket"]
    _check(bucket["iteration_count"] == str(hot.iterations), f"GetBucket: iteration_count {bucket['iteration_count']}")
    _check(bucket["latest_version"] == hot.iterations, f"GetBucket: latest_version {bucket['latest_version']}")
    _check(bucket["platforms"] == PLATFORMS, f"GetBucket: platforms {bucket['platforms']}")
    _iteration_matches(
        {**bucket["latest_iteration"], "template_type": "HCL2"}, hot.latest, hot.slug, "GetBucket latest_iteration"
    )
    history = _get(port, token, f"{prefix}/images/{hot.slug}/channels/production/history")
    _check(history["count"] == hot.production_history, f"ListChannelHistory: count {history['count']}")
    _check(
        history["history"][0]["iteration"]["id"] == hot.production.id,
        "ListChannelHistory: the newest entry is not the current iteration",
    )


def shape(value: Any) -> Any:
    """The JSON structure without the values: keys, nesting, scalar types."""
    if isinstance(value, dict):
        return {k: shape(v) for k, v in sorted(value.items())}
    if isinstance(value, list):
        return [shape(value[0])] if value else []
    return type(value).__name__


def _rows(conn: sa.Connection, table: sa.Table, column: str, value: str) -> list[dict[str, Any]]:
    rows = conn.execute(sa.select(table).where(table.c[column] == value).order_by(table.c.id))
    return [dict(r._mapping) for r in rows]


def _row_kinds(row: dict[str, Any]) -> dict[str, Any]:
    """None/empty/type for per-row columns; the value itself for the others."""
    out: dict[str, Any] = {}
    for key, value in row.items():
        if key in _PER_ROW:
            out[key] = "null" if value is None else ("empty" if value == "" else type(value).__name__)
        else:
            out[key] = value
    return out


def api_written_rows(port: int, token: str, prefix: str, database_url: str, seed: SeedResult) -> None:
    """Check (2): one publish through the API, compared with the seeded rows and responses."""
    import asyncio

    hot = seed.hot
    assert hot.middle is not None

    async def one() -> tuple[bool, str]:
        conns = [Connection("127.0.0.1", port, token) for _ in COMPONENTS]
        try:
            publisher = Publisher(prefix, SCRATCH, conns, PublishResult())
            return await publisher.publish(random.Random(1))
        finally:
            for conn in conns:
                await conn.close()

    complete, fingerprint = asyncio.run(one())
    _check(complete, "a publish through the API did not complete")
    try:
        for path_api, path_seed, what in (
            (f"/images/{SCRATCH}/iteration?fingerprint={fingerprint}", None, "GetIteration"),
            (f"/images/{SCRATCH}/channels/latest", f"/images/{hot.slug}/channels/latest", "GetChannel"),
            (f"/images/{SCRATCH}/channels/latest/history", f"/images/{hot.slug}/channels/latest/history", "History"),
        ):
            api = _get(port, token, prefix + path_api)
            seeded_path = path_seed or f"/images/{hot.slug}/iteration?fingerprint={hot.middle.fingerprint}"
            seeded = _get(port, token, prefix + seeded_path)
            if what == "History":  # the API-written channel has one entry; compare one with one
                api["history"], seeded["history"] = api["history"][:1], seeded["history"][:1]
                api.pop("pagination", None)
                seeded.pop("pagination", None)
            _check(shape(api) == shape(seeded), f"{what}: API-written {shape(api)} vs seeded {shape(seeded)}")
        api_iteration = _get(port, token, f"{prefix}/images/{SCRATCH}/iteration?fingerprint={fingerprint}")
        engine = create_engine(database_url)
        try:
            with engine.connect() as conn:
                _compare_rows(conn, api_iteration["iteration"]["id"], hot.middle.id)
        finally:
            engine.dispose()
    finally:
        status, body = request(
            port, "DELETE", f"{prefix}/images/{SCRATCH}", headers={"Authorization": f"Bearer {token}"}
        )
        _check(status == 200, f"DeleteBucket {SCRATCH}: HTTP {status} {body}")


def _compare_rows(conn: sa.Connection, api_iteration: str, seeded_iteration: str) -> None:
    pairs = []
    for iteration_id in (api_iteration, seeded_iteration):
        its = _rows(conn, t.iteration, "id", iteration_id)
        builds = _rows(conn, t.build, "iteration_id", iteration_id)
        images = [img for b in builds for img in _rows(conn, t.image, "build_id", b["id"])]
        # The first entry naming the iteration is `latest` moving to it when it completed.
        latest = _rows(conn, t.channel_assignment, "iteration_id", iteration_id)[:1]
        pairs.append({"iteration": its, "build": builds, "image": images, "channel_assignment": latest})
    api, seeded = pairs
    for table in ("iteration", "build", "image", "channel_assignment"):
        _check(len(api[table]) > 0, f"no {table} row written by the API publish")
        a = [_row_kinds(r) for r in api[table]]
        s = [_row_kinds(r) for r in seeded[table]]
        if table == "build":  # the API publish used its own image ids; components and providers match
            for rows in (a, s):
                rows.sort(key=lambda r: str(r["component_type"]))
        if table == "image":
            for rows in (a, s):
                rows.sort(key=lambda r: (str(r["region"]), r["position"]))
        _check(a == s, f"{table} rows differ between the API and the seed:\n  API  {a}\n  seed {s}")
