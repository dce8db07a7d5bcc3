"""Fuzzing lane (issue 8): schemathesis generates requests from HashiCorp's 2021-04-30 Swagger document and
sends them, authenticated, to the real ASGI app in-process, against a seeded database.

Every response must be free of 5xx and must conform to the document's response schemas, both as
schemathesis reads them (``response_schema_conformance``) and under our stricter wire rules
(``tests.contract.validator``: omitted zero values, int64 as strings, RFC 3339 Z times, no nulls,
always-present arrays, ``google.rpc.Status`` plus ``error`` for every non-200).

The organization and project path parameters are fixed to the real tenant (anything else is a 403), and
a share of the cases is steered toward what exists (bucket slugs, iteration and build ids, channel slugs,
fingerprints, versions, page tokens, masks), so that the deep code paths run, not only the 404s.
Generation is deterministic (``derandomize``) and bounded by a fixed number of examples per operation.
"""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import os
import random
import time
import traceback
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, cast

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core import NOT_SET
from schemathesis.errors import FailureGroup
from schemathesis.python import asgi
from schemathesis.specs.openapi.checks import response_schema_conformance

from packyard.http.errors import HTTP_STATUS
from packyard.jobs import run_due_jobs
from tests.conftest import Env
from tests.contract.validator import ContractViolation, SwaggerContract, spec_dir
from tests.fuzz.conftest import SUMMARY
from tests.support.client import ok
from tests.support.packer import publish

pytestmark = pytest.mark.fuzz

POSTGRES = bool(os.environ.get("PACKYARD_TEST_POSTGRES_URL"))
#: Examples per operation and generation mode: (positive, negative). Operations with a small input space
#: run out earlier; the total is asserted below. About 8,000 requests in under a minute on either database.
EXAMPLES = (200, 120)
MIN_REQUESTS = 2000
#: A wall-clock guard: past it, no further cases are generated (the count assertion then reports it).
TIME_BUDGET_SECONDS = 180.0
#: The clock moves this far per generated request, so heartbeats expire and scheduled revocations fall due.
#: (A batch of one operation's cases stays within a token's lifetime; each batch starts with a fresh token.)
SECONDS_PER_REQUEST = 10

SPEC = "packer-service-2021-04-30.swagger.json"
DOTTED_PATH_PARAMETERS = ("location.organization_id", "location.project_id")
METHOD_ORDER = {"GET": 0, "PUT": 1, "POST": 2, "PATCH": 3, "DELETE": 4}
# Registry deletion last within a round: a hard delete empties the project.
LAST = ("PackerService_DeleteRegistry",)

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


# Query parameters added now and then (with values from SORTS and the page tokens seen) when not generated.
INSERT_QUERY = frozenset({"sorting.order_by", "pagination.next_page_token"})

# Whole request bodies a JSON decoder can trip on, sent now and then instead of the generated one.
RAW_BODIES: list[bytes] = [
    b'{"location":' + b"[" * 3000 + b"]" * 3000 + b"}",  # deeper than any decoder's stack
    b'{"location":' + b'{"a":' * 3000 + b"{}" + b"}" * 3000 + b"}",
    b'{"description":"\\ud800","labels":{"\\udc00":"x"}}',  # lone surrogate escapes
    b'{"bucket_slug":"a","bucket_slug":"b","slug":"x","slug":"y"}',  # duplicate keys
    b"\xef\xbb\xbf{}",  # a byte order mark
    b"1e999",
    b"null",
    b" ",
]


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


# Bearer tokens that are not: the header part is read (for its key id) before the signature is checked.
BAD_TOKENS: list[str | None] = [
    None,  # no Authorization header at all
    "not-a-token",
    "a.b.c",
    _b64(b"[" * 3000 + b"]" * 3000) + ".e30.x",
    _b64(b'{"alg":"HS256","kid":"\\u0000"}') + ".e30.x",
    _b64(b'{"alg":"HS256","kid":"\\ud800"}') + ".e30.x",
    _b64(b'{"alg":"none","kid":1}') + ".e30.",
]


def token_payload(token: object) -> dict[str, Any] | None:
    """What a page token says, if it is one the server could have issued (base64 of a JSON object)."""
    if not isinstance(token, str):
        return None
    try:
        payload = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    except (ValueError, RecursionError):
        return None
    return payload if isinstance(payload, dict) and isinstance(payload.get("k"), list) else None


def forged_tokens(real: list[str]) -> list[str]:
    """Page tokens made from real ones with one part changed: the key values, the direction, the order."""
    forged: list[str] = [_b64(b"[" * 3000 + b"]" * 3000), "!!!"]
    for token in real:
        payload = token_payload(token)
        assert payload is not None
        for value in (2**64, "\ud800", "x\x00", None):
            forged.append(_b64(json.dumps({**payload, "k": [value, *payload["k"][1:]]}).encode()))
            forged.append(_b64(json.dumps({**payload, "k": [*payload["k"][:-1], value]}).encode()))
        forged.append(_b64(json.dumps({**payload, "d": "p" if payload["d"] == "n" else "n"}).encode()))
        forged.append(_b64(json.dumps({**payload, "k": payload["k"][:1]}).encode()))
    return forged


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
FRESH_NAME = object()


@dataclass
class Anchor:
    """One existing thing (a build in an iteration in a bucket, maybe a channel) whose names fit together."""

    values: dict[str, Any]


@dataclass
class State:
    anchors: list[Anchor] = field(default_factory=list)
    # Page tokens the server handed out, per operation and per (order, direction): the latest of each.
    tokens: dict[str, dict[str, str]] = field(default_factory=dict)
    offered_tokens: list[str] = field(default_factory=list)  # real and forged, fixed for one operation's run
    seeded: int = 0
    fresh: int = 0  # names made up so far (new bucket and channel slugs, fingerprints)


@dataclass
class Finding:
    operation: str
    status: int
    what: str
    curl: str

    def __str__(self) -> str:
        return f"{self.operation} -> HTTP {self.status}: {self.what}\n    {self.curl}"


@dataclass
class Tally:
    requests: int = 0
    explicit: int = 0  # of the requests, the explicit_cases
    server_errors: list[Finding] = field(default_factory=list)
    violations: list[Finding] = field(default_factory=list)
    statuses: dict[str, Counter[int]] = field(default_factory=dict)


class ErrorLog(logging.Handler):
    """Keeps the error the app logs for an unhandled exception: its type, message and innermost packyard line."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.last = ""

    def emit(self, record: logging.LogRecord) -> None:
        self.last = record.getMessage()
        if record.exc_info and record.exc_info[1] is not None:
            exc = record.exc_info[1]
            frames = [f for f in traceback.extract_tb(exc.__traceback__) if "/packyard/" in f.filename]
            where = f" at {frames[-1].filename.split('/src/')[-1]}:{frames[-1].lineno}" if frames else ""
            self.last = f"{type(exc).__name__}: {str(exc)[:200]}{where}"


# ----------------------------------------------------------------------------------------- the seed


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


# ------------------------------------------------------------------------------------- steering


def steer(case: schemathesis.Case[Any], rng: random.Random, state: State) -> None:
    """Most cases are pointed at existing things; some keep what schemathesis generated.

    The choices come from ``rng``, seeded by one Hypothesis draw: they depend on the state (which anchors
    exist), so they must not be Hypothesis draws of their own. Modes 0-5 take every path parameter from one
    anchor that has them all, 6-7 take each from any anchor by chance, 8-9 leave the case as generated.
    Query parameters and body properties are replaced (or added, for the ones an operation needs) by chance,
    from the anchor, made-up names and POOLS."""
    mode = rng.randrange(10)
    if mode >= 8 or not state.anchors:
        return
    operation_id = case.operation.definition.raw["operationId"]
    names = [name for name in case.path_parameters or {} if not name.startswith("location_")]
    fitting = [a for a in state.anchors if all(name in a.values for name in names)] or state.anchors
    anchor = rng.choice(fitting if mode < 6 else state.anchors).values
    for name in names:
        choices = _choices(name, anchor, state, operation_id)
        if choices and (mode < 6 or rng.random() < 0.5):
            case.path_parameters[name] = str(_pick(choices, rng, state))
    query = dict(case.query or {})
    for parameter in case.operation.query:
        insertable = parameter.name in anchor or parameter.name in POOLS or parameter.name in INSERT_QUERY
        if parameter.name not in query and insertable and rng.random() < 0.5:
            query[parameter.name] = None  # filled in just below
    _replace(query, anchor, rng, state, operation_id, body=False)
    both = query.get("pagination.next_page_token") and query.get("pagination.previous_page_token")
    if both and rng.random() < 0.5:  # both at once is always refused; mostly send one
        del query[rng.choice(["pagination.next_page_token", "pagination.previous_page_token"])]
    for key in ("pagination.next_page_token", "pagination.previous_page_token"):
        payload = token_payload(query.get(key))
        if payload is not None and isinstance(payload.get("o"), str) and rng.random() < 0.5:
            query["sorting.order_by"] = [payload["o"]]  # the order the token was issued for
    case.query = cast(Any, query or None)
    if isinstance(case.body, dict):
        for dotted in INSERT.get(operation_id, ()):
            *parents, key = dotted.split(".")
            target: dict[str, Any] = case.body
            for parent in parents:
                if not isinstance(target.get(parent), dict):
                    target[parent] = {}
                target = target[parent]
            if key not in target and rng.random() < 0.5:
                target[key] = None  # filled in just below
        if rng.random() < 0.5:  # fewer properties: fewer that contradict each other
            for key in list(case.body):
                if rng.random() < 0.5:
                    del case.body[key]
        _replace(case.body, anchor, rng, state, operation_id, body=True)


def _pick(choices: list[Any], rng: random.Random, state: State) -> Any:
    chosen = rng.choice(choices)
    if chosen is FRESH_NAME:
        state.fresh += 1
        return f"fz{state.fresh}"
    return chosen


def _choices(key: str, anchor: dict[str, Any], state: State, operation_id: str, *, body: bool = False) -> list[Any]:
    """Values to put in ``key``: a made-up name first in a creation's body, else the anchor's value first."""
    choices: list[Any] = []
    if body and operation_id.startswith("PackerService_Create") and key in FRESH:
        choices.append(FRESH_NAME)
    if key in anchor:
        choices.append(anchor[key])
    choices.extend(POOLS.get(key, []))
    if key == "sorting.order_by":
        choices.extend(SORTS.get(operation_id, []))
    if key in ("pagination.next_page_token", "pagination.previous_page_token"):
        choices.extend(state.offered_tokens)
    return choices


def _replace(
    values: dict[str, Any], anchor: dict[str, Any], rng: random.Random, state: State, operation_id: str, *, body: bool
) -> None:
    for key in list(values):
        value = values[key]
        if isinstance(value, dict):
            _replace(value, anchor, rng, state, operation_id, body=body)
            continue
        choices = _choices(key, anchor, state, operation_id, body=body)
        if choices and (value is None or rng.random() < 0.5):
            values[key] = _pick(choices, rng, state)


def remember_tokens(operation: str, body: Any, state: State) -> None:
    if isinstance(body, dict) and isinstance(body.get("pagination"), dict):
        for key in ("next_page_token", "previous_page_token"):
            token = body["pagination"].get(key)
            payload = token_payload(token)
            if payload is not None:
                state.tokens.setdefault(operation, {})[f"{payload.get('o')} {payload.get('d')}"] = token


# -------------------------------------------------------------------------------------- checking


def check(
    case: schemathesis.Case[Any],
    response: schemathesis.Response,
    contract: SwaggerContract,
    tally: Tally,
    log: ErrorLog,
    state: State,
    note: str,
) -> None:
    """Count the response and record what is wrong with it: a 5xx, or a body off the document's schemas."""
    operation = str(case.operation.definition.raw["operationId"])
    tally.statuses.setdefault(operation, Counter())[response.status_code] += 1
    try:
        curl = case.as_curl_command(headers={"Authorization": "Bearer <token>"})
    except Exception:  # curl rendering must never hide a finding
        curl = f"{case.method} {case.formatted_path}"
    curl += note
    if response.status_code >= 500:
        tally.server_errors.append(Finding(operation, response.status_code, log.last or response.text[:500], curl))
    try:
        case.validate_response(response, checks=[not_a_server_error, response_schema_conformance])
    except FailureGroup as group:
        for failure in group.exceptions:
            if "not_a_server_error" not in getattr(failure, "checks", ()):
                tally.violations.append(Finding(operation, response.status_code, f"schemathesis: {failure}", curl))
    problems: list[str] = []
    if response.headers.get("content-type", [""])[0] != "application/json":
        problems.append(f"content-type {response.headers.get('content-type')}")
    try:
        body = json.loads(response.content)
    except ValueError:
        problems.append("body is not JSON")
    else:
        remember_tokens(operation, body, state)
        try:
            contract.validate_response(operation, response.status_code, body)
        except ContractViolation as exc:
            problems.append(str(exc))
        if response.status_code != 200 and isinstance(body, dict):
            code = body.get("code")
            if not isinstance(code, int) or HTTP_STATUS.get(code) != response.status_code:
                problems.append(f"gRPC code {code!r} does not map to HTTP {response.status_code}")
    if problems:
        tally.violations.append(Finding(operation, response.status_code, "; ".join(problems), curl))


# ------------------------------------------------------------------------------------------ lane


def load_schema() -> Any:
    """HashiCorp's document, adapted in two ways that change no request the lane can make:

    * the two dotted path parameters are renamed: schemathesis 4.32 fills path templates with str.format,
      which reads ``{location.organization_id}`` as an attribute lookup and rejects every operation;
      ``{location_organization_id}`` makes the same URLs;
    * the bearer security scheme is dropped: the lane sets the Authorization header itself (a real token,
      now and then none or a bad one), because schemathesis's negative mode would otherwise spend a third
      of its cases on removing the header (all 401s) and strips it even when the lane puts it back.
    """
    document = json.loads((spec_dir() / SPEC).read_text())
    document.pop("security", None)
    document.pop("securityDefinitions", None)
    renamed: dict[str, Any] = {}
    for original, item in document["paths"].items():
        template = original
        for name in DOTTED_PATH_PARAMETERS:
            template = template.replace("{" + name + "}", "{" + name.replace(".", "_") + "}")
        for operation in item.values():
            for parameter in operation.get("parameters", []):
                if parameter["in"] == "path" and parameter["name"] in DOTTED_PATH_PARAMETERS:
                    parameter["name"] = parameter["name"].replace(".", "_")
        renamed[template] = item
    document["paths"] = renamed
    return schemathesis.openapi.from_dict(document)


def summarize(findings: list[Finding]) -> str:
    """One line per distinct finding (operation, status and cause), with how often and one reproduction."""
    groups: dict[tuple[str, int, str], list[Finding]] = {}
    for finding in findings:
        groups.setdefault((finding.operation, finding.status, finding.what[:300]), []).append(finding)
    return "\n".join(f"{len(found)}x {found[0]}" for found in groups.values())


def operations(schema: Any) -> Iterator[Any]:
    found = [result.ok() for result in schema.get_all_operations()]
    found.sort(key=lambda op: (op.definition.raw["operationId"] in LAST, METHOD_ORDER[op.method.upper()]))
    yield from found


def explicit_cases(operation_id: str, state: State) -> list[dict[str, Any]]:
    """Inputs that once made the server fail (docs/reliability.md lists them), sent on every run on top of
    the generated cases, so the lane never depends on chance to notice one coming back."""

    def forge(order_prefix: str, position: int, value: object) -> str | None:
        for token in state.tokens.get(operation_id, {}).values():
            payload = token_payload(token)
            if payload is not None and str(payload.get("o", "")).startswith(order_prefix):
                keys = list(payload["k"])
                keys[position] = value
                return _b64(json.dumps({**payload, "k": keys}).encode())
        return None

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
            token = forge(order, position, value)
            if token is not None:
                query = {"sorting.order_by": [json.loads(base64.urlsafe_b64decode(token + "==="))["o"]]}
                cases.append({"path": path, "query": {**query, "pagination.next_page_token": token}})
    elif operation_id == "PackerService_CreateBucket":
        cases.append({"body": RAW_BODIES[0]})
        cases.append({"body": {"bucket_slug": "deep-token"}, "token": BAD_TOKENS[3]})
    return cases


def test_schemathesis_finds_no_server_errors_and_no_schema_violations(
    env: Env, contracts: list[SwaggerContract]
) -> None:
    started = time.monotonic()
    contract = contracts[0]
    schema = load_schema()
    schema.app = env.app
    session = asgi.get_client(cast(Any, env.app))  # not entered: no lifespan, so no background job loop
    fixed = {"location_organization_id": env.init.organization_id, "location_project_id": env.init.project_id}
    tally = Tally()
    log = ErrorLog()
    logging.getLogger("packyard").addHandler(log)
    state = State()
    out_of_time = False

    def send(case: schemathesis.Case[Any], token: str | None) -> int:
        if token is None:
            case.headers.pop("Authorization", None)
        else:
            case.headers["Authorization"] = f"Bearer {token}"
        note = "" if token == env.client.token else f"  (Authorization: {'none' if token is None else token[:40]})"
        env.clock.advance(seconds=SECONDS_PER_REQUEST)
        log.last = ""
        try:
            response = case.call(session=session)
        except requests.RequestException as exc:  # the app never answered
            tally.server_errors.append(Finding(str(case.operation.label), 0, repr(exc), ""))
            return 0
        tally.requests += 1
        check(case, response, contract, tally, log, state, note)
        return response.status_code

    try:
        for mode, examples in zip((GenerationMode.POSITIVE, GenerationMode.NEGATIVE), EXAMPLES, strict=True):
            for operation in operations(schema):
                if time.monotonic() - started > TIME_BUDGET_SECONDS:
                    out_of_time = True
                    break
                operation_id = str(operation.definition.raw["operationId"])
                ensure_seed(env, state)
                harvest_tokens(env, state, operation_id)
                real = list(state.tokens.get(operation_id, {}).values())[-4:]
                state.offered_tokens = real + forged_tokens(real)
                run_due_jobs(env.db, env.clock, env.app.services.rules)
                if operation_id == "PackerService_CreateRegistry":  # so that one creation can succeed
                    ok(env.client.delete(env.client.p("/registry")))
                if mode is GenerationMode.POSITIVE:
                    for explicit in explicit_cases(operation_id, state):
                        case = operation.Case(
                            path_parameters={**fixed, **explicit.get("path", {})},
                            query=explicit.get("query"),
                            body=explicit.get("body", NOT_SET),
                            media_type="application/json" if "body" in explicit else None,
                        )
                        status = send(case, explicit.get("token", env.client.token))
                        tally.explicit += 1
                        if 0 < status < 400:  # each is bad input: a clear 4xx, never a 200 (5xx counts above)
                            what = f"explicit bad input answered {status}: {explicit}"
                            tally.violations.append(Finding(operation_id, status, what[:300], ""))

                @settings(
                    max_examples=examples,
                    derandomize=True,
                    database=None,
                    deadline=None,
                    phases=[Phase.explicit, Phase.generate],
                    suppress_health_check=list(HealthCheck),
                    print_blob=False,
                )
                # Everything Hypothesis draws is drawn before the body runs, so what the body does (steering
                # by the server's state, stopping at the time budget) can't make two cases with the same
                # choices draw differently, which Hypothesis rejects as a flaky strategy.
                @given(
                    case=operation.as_strategy(generation_mode=mode, path_parameters=fixed),
                    seed=st.integers(0, 2**64 - 1),
                )
                def run(case: schemathesis.Case[Any], seed: int) -> None:
                    if time.monotonic() - started > TIME_BUDGET_SECONDS:
                        return
                    rng = random.Random(seed)
                    steer(case, rng, state)
                    if isinstance(case.body, dict) and rng.randrange(25) == 0:  # 1 case in 25
                        case.body = rng.choice(RAW_BODIES)
                    token: str | None = env.client.token
                    if rng.randrange(25) == 0:  # about 1 case in 25
                        token = rng.choice(BAD_TOKENS)
                    send(case, token)

                with contextlib.suppress(Unsatisfiable):  # nothing in this operation can be made invalid
                    run()
    finally:
        logging.getLogger("packyard").removeHandler(log)
        session.close()

    elapsed = time.monotonic() - started
    lane = "postgresql" if POSTGRES else "sqlite"
    budget = ", time budget hit" if out_of_time else ""
    line = (
        f"fuzz: {tally.requests} requests ({tally.requests - tally.explicit} generated, {tally.explicit} explicit), "
        f"{len(tally.server_errors)} 5xx, "
        f"{len(tally.violations)} schema violations ({lane}, {elapsed:.0f} s{budget})"
    )
    SUMMARY.append(line)
    per_op = ", ".join(
        f"{op.removeprefix('PackerService_')} {counts[200]}/{sum(counts.values())}"
        for op, counts in sorted(tally.statuses.items())
    )
    SUMMARY.append(f"  200s/requests per operation: {per_op}")
    report = summarize(tally.server_errors + tally.violations)
    if tally.server_errors or tally.violations:
        pytest.fail(f"{line}\n{report}", pytrace=False)
    assert tally.requests - tally.explicit >= MIN_REQUESTS, line
