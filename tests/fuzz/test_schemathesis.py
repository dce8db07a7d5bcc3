"""Fuzzing lane (issue 8): schemathesis generates requests from HashiCorp's Swagger documents and sends
them, authenticated, to the real ASGI app in-process, against a seeded database.

Every response must be free of 5xx and must conform to the document's response schemas, both as
schemathesis reads them (``response_schema_conformance``) and under our stricter wire rules
(``tests.contract.validator``: omitted zero values, int64 as strings, RFC 3339 Z times, no nulls,
always-present arrays, ``google.rpc.Status`` plus ``error`` for every non-200).

The organization and project path parameters are fixed to the real tenant (anything else is a 403), and
a share of the cases is steered toward what exists (tests/fuzz/tree_*.py: what each tree seeds and the
names it steers by), so that the deep code paths run, not only the 404s.
Generation is deterministic (``derandomize``) and bounded by a fixed number of examples per operation.
"""

from __future__ import annotations

import contextlib
import logging
import os
import random
import time
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
from tests.fuzz import tree_2021
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


@pytest.mark.parametrize("tree", [tree_2021.TREE], ids=lambda tree: tree.version)
def test_schemathesis_finds_no_server_errors_and_no_schema_violations(
    env: Env, contracts: list[SwaggerContract], tree: Tree
) -> None:
    started = time.monotonic()
    contract = next(c for c in contracts if c.version == tree.version)
    schema = load_schema(load_document(tree))
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
        for mode, examples in zip((GenerationMode.POSITIVE, GenerationMode.NEGATIVE), tree.examples, strict=True):
            for operation in operations(schema, tree):
                if time.monotonic() - started > tree.budget_seconds:
                    out_of_time = True
                    break
                operation_id = str(operation.definition.raw["operationId"])
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
                    if time.monotonic() - started > tree.budget_seconds:
                        return
                    rng = random.Random(seed)
                    steer(case, rng, state, tree)
                    if isinstance(case.body, dict) and rng.randrange(25) == 0:  # 1 case in 25
                        case.body = rng.choice(RAW_BODIES)
                    token: str | None = env.client.token
                    if rng.randrange(25) == 0:  # about 1 case in 25
                        token = rng.choice(BAD_TOKENS)
                    tree.before_case(env, state, str(case.operation.definition.raw["operationId"]))
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
        f"fuzz {tree.version}: {tally.requests} requests ({tally.requests - tally.explicit} generated, "
        f"{tally.explicit} explicit), {len(tally.server_errors)} 5xx, "
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
    assert tally.requests - tally.explicit >= tree.min_requests, line
