"""Every one of the 28 operations answers, on success and on error, in the shapes of HashiCorp's document.

The client validates each response as it arrives (tests/support/client.py); this test makes sure every
operation is exercised at least once both ways, so no operation escapes the contract check."""

from __future__ import annotations

from tests.conftest import Env
from tests.contract.validator import SwaggerContract
from tests.support.client import VALIDATED, error, ok
from tests.support.packer import publish

ULID = "01HZZZZZZZZZZZZZZZZZZZZZZZ"


def test_all_operations_answer_in_the_published_shapes(env: Env, contracts: list[SwaggerContract]) -> None:
    c = env.client
    base = publish(c, "base", "b1", ["amazon-ebs.a"])
    ch = ok(c.post(c.p("/images/base/channels"), json={"slug": "prod", "iteration_id": base["id"]}))["channel"]
    child = publish(
        c, "child", "c1", ["amazon-ebs.a"], source={"source_iteration_id": base["id"], "source_channel_id": ch["id"]}
    )
    spare = ok(c.post(c.p("/images/child/iterations"), json={"fingerprint": "spare"}))["iteration"]
    build = ok(c.post(c.p(f"/images/child/iterations/{spare['id']}"), json={"build": {"component_type": "x.y"}}))[
        "build"
    ]

    successes = [
        c.get(c.p("/registry")),
        c.patch(c.p("/registry"), json={"feature_tier": "PLUS"}),
        c.get(c.p("/images")),
        c.get(c.p("/images/base")),
        c.patch(c.p("/images/base"), json={"description": "d"}),
        c.get(c.p("/images/child/ancestry")),
        c.get(c.p("/images/base/channels")),
        c.get(c.p("/images/base/channels/prod")),
        c.patch(c.p("/images/base/channels/prod"), json={"mask": "restriction", "restriction": "RESTRICTED"}),
        c.get(c.p("/images/base/channels/prod/history")),
        c.get(c.p("/images/base/iteration"), params={"incremental_version": 1}),
        c.get(c.p("/images/base/iterations")),
        c.get(c.p(f"/images/child/iterations/{spare['id']}/builds")),
        c.get(c.p(f"/builds/{build['id']}")),
        c.patch(c.p(f"/builds/{build['id']}"), json={"updates": {"status": "RUNNING"}}),
        c.patch(c.p(f"/iterations/{child['id']}"), json={"bucket_slug": "child", "revoke_in": "1d"}),
        c.get(c.p("/runtasks/validation")),
        c.patch(c.p("/runtasks/hmac"), json={}),
        c.delete(c.p(f"/builds/{build['id']}")),
        c.delete(c.p(f"/iterations/{spare['id']}")),
        c.delete(c.p("/images/base/channels/prod")),
        c.delete(c.p("/images/child")),
        c.delete(c.p("/registry")),
        c.put(c.p("/registry"), json={}),
    ]
    for response in successes:
        ok(response)

    errors = [
        (c.put(c.p("/registry"), json={}), 6),
        (c.get(c.p("/images"), params={"pagination.page_size": "many"}), 3),
        (c.put(c.p("/images"), json={"bucket_slug": "base"}), 6),
        (c.get(c.p("/images/nope")), 5),
        (c.patch(c.p("/images/nope"), json={}), 5),
        (c.delete(c.p("/images/nope")), 5),
        (c.get(c.p("/images/nope/ancestry")), 5),
        (c.post(c.p("/images/base/channels"), json={"slug": "latest"}), 6),
        (c.get(c.p("/images/base/channels")), 200),
        (c.get(c.p("/images/base/channels/nope")), 5),
        (c.patch(c.p("/images/base/channels/nope"), json={}), 5),
        (c.delete(c.p("/images/base/channels/latest")), 9),
        (c.get(c.p("/images/base/channels/nope/history")), 5),
        (c.get(c.p("/images/base/iteration"), params={"fingerprint": "nope"}), 10),
        (c.post(c.p("/images/base/iterations"), json={"fingerprint": "b1"}), 6),
        (c.get(c.p("/images/nope/iterations")), 5),
        (c.post(c.p(f"/images/base/iterations/{base['id']}"), json={"build": {"component_type": "z"}}), 9),
        (c.get(c.p(f"/images/base/iterations/{ULID}/builds")), 5),
        (c.get(c.p(f"/builds/{ULID}")), 5),
        (c.patch(c.p(f"/builds/{ULID}"), json={}), 5),
        (c.delete(c.p(f"/builds/{ULID}")), 5),
        (c.patch(c.p(f"/iterations/{ULID}"), json={}), 5),
        (c.delete(c.p(f"/iterations/{ULID}")), 5),
        (c.get(c.p("/runtasks/other")), 5),
        (c.get(c.p("/registry"), token="bad"), 16),
        (c.patch(c.p("/runtasks/hmac"), json=[]), 3),
        (c.patch(c.p("/registry"), json={"feature_tier": "GOLD"}), 3),
        (c.delete(c.p("/registry"), params={"hard_delete": "maybe"}), 3),
    ]
    for response, code in errors:
        if code == 200:
            ok(response)
        else:
            error(response, code)

    operations = set(contracts[0].operations)
    assert len(operations) == 28
    seen = {key.split(" ", 1)[1]: statuses for key, statuses in VALIDATED.items() if key.startswith("2021-04-30 ")}
    assert {op for op, statuses in seen.items() if 200 in statuses} >= operations
    errored = {op for op, statuses in seen.items() if statuses - {200}}
    assert errored >= operations - {"PackerService_ListChannels"}, sorted(operations - errored)
