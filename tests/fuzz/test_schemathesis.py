"""Fuzzing lane (issue 8): schemathesis generates requests from HashiCorp's Swagger documents, 2021-04-30
and 2023-01-01, and sends them, authenticated, to the real ASGI app in-process, against a seeded database.

Every response must be free of 5xx and must conform to the document's response schemas, both as
schemathesis reads them (``response_schema_conformance``) and under our stricter wire rules
(``tests.contract.validator``: omitted zero values, int64 as strings, RFC 3339 Z times, no nulls,
always-present arrays, ``google.rpc.Status`` plus ``error`` for every non-200).

The organization and project path parameters are fixed to the real tenant (anything else is a 403), and
a share of the cases is steered toward what exists (tests/fuzz/tree_*.py: what each tree seeds and the
names it steers by), so that the deep code paths run, not only the 404s. Every served operation of a
tree gets positive and negative cases; the operations a tree does not serve are listed there with the
reason, and each must answer 404.
Generation is deterministic (``derandomize``) and bounded by a fixed number of examples per operation.
"""

from __future__ import annotations

import logging
import os
import random
import time
from collections import Counter
from typing import Any, cast

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.core import NOT_SET
from schemathesis.python import asgi

from packyard.jobs import run_due_jobs
from tests.conftest import Env
from tests.contract.validator import SwaggerContract
from tests.fuzz import tree_2021, tree_2023
from tests.fuzz.conftest import SUMMARY
from tests.fuzz.lane import (
    BAD_TOKENS,
    RAW_BODIES,
    ErrorLog,
    Finding,
    State,
    Tally,
    Tree,
    check,
    forged_tokens,
    load_document,
    load_schema,
    operations,
    steer,
    summarize,
)

pytestmark = pytest.mark.fuzz

POSTGRES = bool(os.environ.get("PACKYARD_TEST_POSTGRES_URL"))
#: The clock moves this far per generated request, so heartbeats expire and scheduled revocations fall due.
#: (A batch of one operation's cases stays within a token's lifetime; each batch starts with a fresh token.)
SECONDS_PER_REQUEST = 10
TREES = [tree_2021.TREE, tree_2023.TREE]


class OutOfTime(Exception):
    """Raised by a case past its batch's share of the time budget: Hypothesis then stops generating (the
    lane runs without a shrink phase), where returning early would still draw every remaining example."""


def served_and_not(env: Env, tree: Tree, document: dict[str, Any]) -> tuple[set[str], list[str]]:
    """The document's operations the app serves; and what is wrong with the tree's list of the others."""
    in_document = {
        str(operation["operationId"])
        for item in document["paths"].values()
        for method, operation in item.items()
        if method != "parameters"
    }
    routed = {route.operation_id for route in env.app.router.routes if route.api == tree.api}
    problems = [f"{name} is listed as not served but is no operation of the document" for name in tree.not_served]
    problems = [problem for problem in problems if problem.split()[0] not in in_document]
    problems += [f"{name} is listed as not served, but the app routes it" for name in tree.not_served if name in routed]
    missing = in_document - routed - set(tree.not_served)
    problems += [f"{name} is neither served nor listed as not served" for name in sorted(missing)]
    return in_document - set(tree.not_served), problems


@pytest.mark.parametrize("tree", TREES, ids=lambda tree: tree.version)
def test_schemathesis_finds_no_server_errors_and_no_schema_violations(
    env: Env, contracts: list[SwaggerContract], tree: Tree
) -> None:
    started = time.monotonic()
    contract = next(c for c in contracts if c.version == tree.version)
    document = load_document(tree)
    served, listing_problems = served_and_not(env, tree, document)
    assert not listing_problems, "\n".join(listing_problems)
    schema = load_schema(document)
    schema.app = env.app
    session = asgi.get_client(cast(Any, env.app))  # not entered: no lifespan, so no background job loop
    fixed = {"location_organization_id": env.init.organization_id, "location_project_id": env.init.project_id}
    tally = Tally()
    log = ErrorLog()
    logging.getLogger("packyard").addHandler(log)
    state = State()
    all_operations = list(operations(schema, tree))
    fuzzed = [op for op in all_operations if op.definition.raw["operationId"] in served]
    modes = (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
    # One batch per operation and mode, the positive ones first; each gets its share (by its number of
    # examples) of what is left of the time budget when it starts, so a slow machine thins every batch
    # instead of dropping the last ones, and what a quick batch leaves goes to the ones after it.
    batches = [(mode, examples, op) for mode, examples in zip(modes, tree.examples, strict=True) for op in fuzzed]
    deadline = started + tree.budget_seconds
    batch: dict[str, Any] = {}  # the batch running: its (operation, mode) and when it must stop

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
        tree.ensure_seed(env, state)
        for operation in all_operations:  # each operation the tree does not serve, once: a 404
            operation_id = str(operation.definition.raw["operationId"])
            if operation_id in served:
                continue
            parameters = operation.definition.raw.get("parameters", [])
            names = [p["name"] for p in parameters if p["in"] == "path" and not p["name"].startswith("location")]
            anchor = next((a.values for a in state.anchors if all(n in a.values for n in names)), {})
            path = {name: str(anchor.get(name, "fz-unserved")) for name in names}
            has_body = any(p["in"] == "body" for p in parameters)
            case = operation.Case(
                path_parameters={**path, **fixed},
                body={} if has_body else NOT_SET,
                media_type="application/json" if has_body else None,
            )
            status = send(case, env.client.token)
            tally.unserved += 1
            if status != 404:
                what = f"listed as not served ({tree.not_served[operation_id][:60]}...) but answered {status}"
                tally.violations.append(Finding(operation_id, status, what, f"{case.method} {case.formatted_path}"))

        for index, (mode, examples, operation) in enumerate(batches):
            operation_id = str(operation.definition.raw["operationId"])
            kind = "positive" if mode is GenerationMode.POSITIVE else "negative"
            tree.ensure_seed(env, state)
            tree.harvest_tokens(env, state, operation_id)
            real = list(state.tokens.get(operation_id, {}).values())[-4:]
            state.offered_tokens = real + forged_tokens(real)
            run_due_jobs(env.db, env.clock, env.app.services.rules)
            tree.before_operation(env, state, operation_id)
            if mode is GenerationMode.POSITIVE:
                for explicit in tree.explicit_cases(operation_id, state):
                    case = operation.Case(
                        path_parameters={**fixed, **explicit.get("path", {})},
                        query=explicit.get("query"),
                        body=explicit.get("body", NOT_SET),
                        media_type="application/json" if "body" in explicit else None,
                    )
                    status = send(case, explicit.get("token", env.client.token))
                    tally.explicit += 1
                    # Each is bad input: a clear 4xx, never a 200 (5xx counts above), unless the case says
                    # that taking it is as right as refusing it.
                    if 0 < status < 400 and not explicit.get("may_succeed"):
                        what = f"explicit bad input answered {status}: {explicit}"
                        tally.violations.append(Finding(operation_id, status, what[:300], ""))
            now = time.monotonic()
            batch["key"] = (operation_id, kind)
            weight = examples / sum(later_examples for _, later_examples, _ in batches[index:])
            batch["deadline"] = now + max(0.0, deadline - now) * weight

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
                key = batch["key"]
                if tally.generated[key] and time.monotonic() > batch["deadline"]:
                    raise OutOfTime  # every batch sends at least one case
                rng = random.Random(f"{seed}:{sum(tally.generated.values())}")
                steer(case, rng, state, tree)
                if isinstance(case.body, dict) and rng.randrange(25) == 0:  # 1 case in 25
                    case.body = rng.choice(RAW_BODIES)
                token: str | None = env.client.token
                if rng.randrange(25) == 0:  # about 1 case in 25
                    token = rng.choice(BAD_TOKENS)
                tree.before_case(env, state, key[0])
                if send(case, token):
                    tally.generated[key] += 1

            try:
                run()
            except Unsatisfiable:  # nothing in this operation can be made invalid
                tally.unsatisfiable.add(operation_id)
            except OutOfTime:
                tally.cut_short.append(f"{operation_id.removeprefix('PackerService_')} ({kind})")
    finally:
        logging.getLogger("packyard").removeHandler(log)
        session.close()

    elapsed = time.monotonic() - started
    line = report(tree, tally, served, elapsed)
    findings = summarize(tally.server_errors + tally.violations)
    if tally.server_errors or tally.violations:
        pytest.fail(f"{line}\n{findings}", pytrace=False)
    uncovered = [
        f"{operation_id} ({kind})"
        for operation_id in sorted(served)
        for kind in ("positive", "negative")
        if not tally.generated[operation_id, kind] and not (kind == "negative" and operation_id in tally.unsatisfiable)
    ]
    assert not uncovered, f"served operations without generated cases: {', '.join(uncovered)}"
    generated = sum(tally.generated.values())
    assert generated >= tree.min_requests, f"{generated} generated requests, fewer than {tree.min_requests}"


def report(tree: Tree, tally: Tally, served: set[str], elapsed: float) -> str:
    """The lane's lines in the terminal summary; the first one is returned."""
    lane = "postgresql" if POSTGRES else "sqlite"
    generated = sum(tally.generated.values())
    cut = f", time budget cut {len(tally.cut_short)} of {2 * len(served)} batches short" if tally.cut_short else ""
    line = (
        f"fuzz {tree.version}: {tally.requests} requests ({generated} generated, {tally.explicit} explicit, "
        f"{tally.unserved} to unserved operations), {len(served)} operations, "
        f"{len(tally.server_errors)} 5xx, {len(tally.violations)} schema violations ({lane}, {elapsed:.0f} s{cut})"
    )
    SUMMARY.append(line)
    per_op = ", ".join(
        f"{op.removeprefix('PackerService_')} {counts[200]}/{sum(counts.values())}"
        for op, counts in sorted(tally.statuses.items())
        if op in served
    )
    SUMMARY.append(f"  200s/requests per operation: {per_op}")
    negatives = Counter({op: n for (op, kind), n in tally.generated.items() if kind == "negative"})
    none = sorted(op.removeprefix("PackerService_") for op in tally.unsatisfiable)
    SUMMARY.append(
        f"  negative cases: {sum(negatives.values())} over {len(negatives)} operations"
        + (f"; none can be made invalid in {', '.join(none)}" if none else "")
    )
    if tally.cut_short:
        SUMMARY.append(f"  cut short by the time budget: {', '.join(tally.cut_short)}")
    if tree.not_served:
        names = ", ".join(sorted(op.removeprefix("PackerService_") for op in tree.not_served))
        SUMMARY.append(f"  not served (each answered 404 once, not fuzzed): {names}")
    return line
