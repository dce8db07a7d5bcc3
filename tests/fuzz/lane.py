"""The fuzzing lane's machinery, shared by the API trees it drives (tests/fuzz/tree_2021.py and
tree_2023.py describe one each): steering generated cases toward seeded things, checking responses,
page tokens, and loading HashiCorp's documents into schemathesis."""

from __future__ import annotations

import base64
import json
import logging
import random
import traceback
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, cast

import schemathesis
from schemathesis.checks import not_a_server_error
from schemathesis.errors import FailureGroup
from schemathesis.specs.openapi.checks import response_schema_conformance

from packyard.http.errors import HTTP_STATUS
from tests.conftest import Env
from tests.contract.validator import ContractViolation, SwaggerContract, spec_dir

DOTTED_PATH_PARAMETERS = ("location.organization_id", "location.project_id")
METHOD_ORDER = {"GET": 0, "PUT": 1, "POST": 2, "PATCH": 3, "DELETE": 4}

# Query parameters added now and then (with values from the tree's sorts and the page tokens seen) when
# not generated.
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


def b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


# Bearer tokens that are not: the header part is read (for its key id) before the signature is checked.
BAD_TOKENS: list[str | None] = [
    None,  # no Authorization header at all
    "not-a-token",
    "a.b.c",
    b64(b"[" * 3000 + b"]" * 3000) + ".e30.x",
    b64(b'{"alg":"HS256","kid":"\\u0000"}') + ".e30.x",
    b64(b'{"alg":"HS256","kid":"\\ud800"}') + ".e30.x",
    b64(b'{"alg":"none","kid":1}') + ".e30.",
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
    forged: list[str] = [b64(b"[" * 3000 + b"]" * 3000), "!!!"]
    for token in real:
        payload = token_payload(token)
        assert payload is not None
        for value in (2**64, "\ud800", "x\x00", None):
            forged.append(b64(json.dumps({**payload, "k": [value, *payload["k"][1:]]}).encode()))
            forged.append(b64(json.dumps({**payload, "k": [*payload["k"][:-1], value]}).encode()))
        forged.append(b64(json.dumps({**payload, "d": "p" if payload["d"] == "n" else "n"}).encode()))
        forged.append(b64(json.dumps({**payload, "k": payload["k"][:1]}).encode()))
    return forged


def forge(state: State, operation_id: str, order_prefix: str, position: int, value: object) -> str | None:
    """A real page token of the operation, issued for an order starting with `order_prefix`, with the
    key value at `position` replaced."""
    for token in state.tokens.get(operation_id, {}).values():
        payload = token_payload(token)
        if payload is not None and str(payload.get("o", "")).startswith(order_prefix):
            keys = list(payload["k"])
            keys[position] = value
            return b64(json.dumps({**payload, "k": keys}).encode())
    return None


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
    # What a tree's seeding keeps between operations (the 2023 tree: the builds it keeps running).
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Tree:
    """One API tree the lane drives: its document, how to seed and steer it, and its share of the time."""

    version: str  # the document's info.version, 2021-04-30
    spec: str  # its file in spec_dir()
    #: Examples per operation and generation mode: (positive, negative).
    examples: tuple[int, int]
    #: Generated requests below which the run proves too little (the time budget cut it short).
    min_requests: int
    #: A wall-clock guard: past it, no further cases are generated (the count assertion then reports it).
    budget_seconds: float
    # Values mixed into generated cases by parameter or property name: valid ones first, then edges.
    pools: Mapping[str, list[Any]]
    # Sort orders each list operation accepts.
    sorts: Mapping[str, list[Any]]
    # Properties a useful request of the operation needs, added to generated bodies that lack them.
    insert: Mapping[str, tuple[str, ...]]
    # Names that are sometimes made up in a creation's body, so creations succeed rather than collide.
    fresh: frozenset[str]
    creations: frozenset[str]
    ensure_seed: Callable[[Env, State], None]
    harvest_tokens: Callable[[Env, State, str], None]
    explicit_cases: Callable[[str, State], list[dict[str, Any]]]
    # What to do before an operation's cases (besides seeding), such as making room for one creation.
    before_operation: Callable[[Env, State, str], None]
    # Operations run last within a round (a hard delete empties the project).
    last: tuple[str, ...] = ()
    # Per operation: body or query names that mean another anchor value (a 2023 body's `name`).
    aliases: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    # Per operation: pools that replace the tree's for one name (an update_mask means different things).
    operation_pools: Mapping[str, Mapping[str, list[Any]]] = field(default_factory=dict)
    # Operations a share of whose cases are careful attempts to succeed: every property the operation needs
    # is added and none is taken away, on an anchor that has the given value when one is given (UploadSbom:
    # a build that is running).
    careful: Mapping[str, tuple[str, Any] | None] = field(default_factory=dict)
    # Called before each generated case is sent (the 2023 tree: a heartbeat now and then).
    before_case: Callable[[Env, State, str], None] = lambda env, state, operation_id: None
    # Operations of the document packyard does not serve, with the reason: not fuzzed, but each is sent
    # once and must answer 404 (code 5), and every other operation of the document must be served.
    not_served: Mapping[str, str] = field(default_factory=dict)

    @property
    def api(self) -> str:
        """The tree's routes' api (packyard.http.routing.Route.api)."""
        return f"packer/{self.version}"


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
    unserved: int = 0  # of the requests, the ones to the operations the tree does not serve
    server_errors: list[Finding] = field(default_factory=list)
    violations: list[Finding] = field(default_factory=list)
    statuses: dict[str, Counter[int]] = field(default_factory=dict)
    # Generated requests per (operation, "positive" or "negative"); operations nothing can be made
    # invalid in (schemathesis answers Unsatisfiable); batches the time budget cut short.
    generated: Counter[tuple[str, str]] = field(default_factory=Counter)
    unsatisfiable: set[str] = field(default_factory=set)
    cut_short: list[str] = field(default_factory=list)


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


# ------------------------------------------------------------------------------------- steering


def steer(case: schemathesis.Case[Any], rng: random.Random, state: State, tree: Tree) -> None:
    """Most cases are pointed at existing things; some keep what schemathesis generated.

    The choices come from ``rng``, seeded by one Hypothesis draw: they depend on the state (which anchors
    exist), so they must not be Hypothesis draws of their own. Modes 0-5 take every path parameter from one
    anchor that has them all, 6-7 take each from any anchor by chance, 8-9 leave the case as generated.
    Query parameters and body properties are replaced (or added, for the ones an operation needs) by chance,
    from the anchor, made-up names and pools. For the operations a tree names in ``careful``, modes 0-2 are
    careful: an anchor it prefers, and every property the operation needs, none taken away."""
    mode = rng.randrange(10)
    if mode >= 8 or not state.anchors:
        return
    operation_id = case.operation.definition.raw["operationId"]
    names = [name for name in case.path_parameters or {} if not name.startswith("location_")]
    fitting = [a for a in state.anchors if all(name in a.values for name in names)] or state.anchors
    careful = mode < 3 and operation_id in tree.careful
    preferred = tree.careful.get(operation_id)
    if careful and preferred is not None:
        key, wanted = preferred
        fitting = [a for a in fitting if a.values.get(key) == wanted] or fitting
    anchor = rng.choice(fitting if mode < 6 else state.anchors).values
    for name in names:
        choices = _choices(name, anchor, state, tree, operation_id)
        if choices and (mode < 6 or rng.random() < 0.5):
            case.path_parameters[name] = str(_pick(choices, rng, state))
    query = dict(case.query or {})
    aliases = tree.aliases.get(operation_id, {})
    for parameter in case.operation.query:
        pooled = parameter.name in tree.pools or parameter.name in tree.operation_pools.get(operation_id, {})
        known = aliases.get(parameter.name, parameter.name) in anchor or pooled
        if parameter.name not in query and (known or parameter.name in INSERT_QUERY) and rng.random() < 0.5:
            query[parameter.name] = None  # filled in just below
    _replace(query, anchor, rng, state, tree, operation_id, body=False)
    both = query.get("pagination.next_page_token") and query.get("pagination.previous_page_token")
    if both and rng.random() < 0.5:  # both at once is always refused; mostly send one
        del query[rng.choice(["pagination.next_page_token", "pagination.previous_page_token"])]
    for key in ("pagination.next_page_token", "pagination.previous_page_token"):
        payload = token_payload(query.get(key))
        if payload is not None and isinstance(payload.get("o"), str) and rng.random() < 0.5:
            query["sorting.order_by"] = [payload["o"]]  # the order the token was issued for
    case.query = cast(Any, query or None)
    if isinstance(case.body, dict):
        for dotted in tree.insert.get(operation_id, ()):
            *parents, key = dotted.split(".")
            target: dict[str, Any] = case.body
            for parent in parents:
                if not isinstance(target.get(parent), dict):
                    target[parent] = {}
                target = target[parent]
            if key not in target and (careful or rng.random() < 0.5):
                target[key] = None  # filled in just below
        if not careful and rng.random() < 0.5:  # fewer properties: fewer that contradict each other
            for key in list(case.body):
                if rng.random() < 0.5:
                    del case.body[key]
        _replace(case.body, anchor, rng, state, tree, operation_id, body=True)


def _pick(choices: list[Any], rng: random.Random, state: State) -> Any:
    chosen = rng.choice(choices)
    if chosen is FRESH_NAME:
        state.fresh += 1
        return f"fz{state.fresh}"
    return chosen


def _choices(
    key: str, anchor: dict[str, Any], state: State, tree: Tree, operation_id: str, *, body: bool = False
) -> list[Any]:
    """Values to put in ``key``: a made-up name first in a creation's body, else the anchor's value first."""
    choices: list[Any] = []
    if body and operation_id in tree.creations and key in tree.fresh:
        choices.append(FRESH_NAME)
    anchor_key = tree.aliases.get(operation_id, {}).get(key, key)
    if anchor_key in anchor:
        choices.append(anchor[anchor_key])
    choices.extend(tree.operation_pools.get(operation_id, {}).get(key, tree.pools.get(key, [])))
    if key == "sorting.order_by":
        choices.extend(tree.sorts.get(operation_id, []))
    if key in ("pagination.next_page_token", "pagination.previous_page_token"):
        choices.extend(state.offered_tokens)
    return choices


def _replace(
    values: dict[str, Any],
    anchor: dict[str, Any],
    rng: random.Random,
    state: State,
    tree: Tree,
    operation_id: str,
    *,
    body: bool,
) -> None:
    for key in list(values):
        value = values[key]
        if isinstance(value, dict):
            _replace(value, anchor, rng, state, tree, operation_id, body=body)
            continue
        choices = _choices(key, anchor, state, tree, operation_id, body=body)
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


def summarize(findings: list[Finding]) -> str:
    """One line per distinct finding (operation, status and cause), with how often and one reproduction."""
    groups: dict[tuple[str, int, str], list[Finding]] = {}
    for finding in findings:
        groups.setdefault((finding.operation, finding.status, finding.what[:300]), []).append(finding)
    return "\n".join(f"{len(found)}x {found[0]}" for found in groups.values())


# ------------------------------------------------------------------------------------ documents


def load_document(tree: Tree) -> dict[str, Any]:
    return cast(dict[str, Any], json.loads((spec_dir() / tree.spec).read_text()))


def load_schema(document: dict[str, Any]) -> Any:
    """HashiCorp's document, adapted in two ways that change no request the lane can make:

    * the two dotted path parameters are renamed: schemathesis 4.32 fills path templates with str.format,
      which reads ``{location.organization_id}`` as an attribute lookup and rejects every operation;
      ``{location_organization_id}`` makes the same URLs;
    * the bearer security scheme is dropped: the lane sets the Authorization header itself (a real token,
      now and then none or a bad one), because schemathesis's negative mode would otherwise spend a third
      of its cases on removing the header (all 401s) and strips it even when the lane puts it back.
    """
    document = json.loads(json.dumps(document))  # a copy: the caller keeps the document as published
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


def operations(schema: Any, tree: Tree) -> Iterator[Any]:
    found = [result.ok() for result in schema.get_all_operations()]
    found.sort(key=lambda op: (op.definition.raw["operationId"] in tree.last, METHOD_ORDER[op.method.upper()]))
    yield from found
