"""ListBucketAncestry and the bucket's parents/children summaries: which images were built from which,
and whether each child is still built from what the parent's channel points at."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from tests.conftest import Env
from tests.support.client import ApiClient, error, ok
from tests.support.packer import find_or_create_iteration, publish, upsert_bucket


def ancestry(c: ApiClient, bucket: str, **params: Any) -> dict[str, Any]:
    return dict(ok(c.get(c.p(f"/images/{bucket}/ancestry"), params=params)))


def relations(c: ApiClient, bucket: str, **params: Any) -> list[tuple[str, str, str, str, str, str]]:
    """(status, parent bucket, parent iteration, child bucket, child iteration, channel) of each relation."""
    return [compact(r) for r in ancestry(c, bucket, **params)["relations"]]


def compact(r: dict[str, Any]) -> tuple[str, str, str, str, str, str]:
    parent, child = r["parent"], r["child"]
    return (
        r["status"],
        parent["bucket_slug"],
        parent["iteration_id"],
        child["bucket_slug"],
        child["iteration_id"],
        parent.get("channel", ""),
    )


def bucket(c: ApiClient, slug: str) -> dict[str, Any]:
    return dict(ok(c.get(c.p(f"/images/{slug}")))["bucket"])


def make_channel(c: ApiClient, bucket_slug: str, slug: str, it: dict[str, Any]) -> str:
    created = ok(c.post(c.p(f"/images/{bucket_slug}/channels"), json={"slug": slug, "iteration_id": it["id"]}))
    return str(created["channel"]["id"])


def move_channel(c: ApiClient, bucket_slug: str, slug: str, it: dict[str, Any] | None) -> None:
    body = {"iteration_id": it["id"]} if it else {}
    ok(c.patch(c.p(f"/images/{bucket_slug}/channels/{slug}"), json=body))


def built_from(
    c: ApiClient, slug: str, fingerprint: str, parent: dict[str, Any], channel_id: str = ""
) -> dict[str, Any]:
    source = {"source_iteration_id": parent["id"]}
    if channel_id:
        source["source_channel_id"] = channel_id
    return publish(c, slug, fingerprint, ["amazon-ebs.ubuntu"], source=source)


def with_builds_from(c: ApiClient, slug: str, fingerprint: str, sources: list[dict[str, str]]) -> dict[str, Any]:
    """One iteration whose builds each name their own source (as a template with several sources does)."""
    upsert_bucket(c, slug)
    it = find_or_create_iteration(c, slug, fingerprint)
    builds = []
    for n in range(len(sources)):
        body = {"build": {"component_type": f"amazon-ebs.s{n}", "status": "UNSET", "images": None}}
        builds.append(ok(c.post(c.p(f"/images/{slug}/iterations/{it['id']}"), json=body))["build"])
    for build, source in zip(builds, sources, strict=True):
        done = {
            "updates": {
                "status": "DONE",
                "cloud_provider": "aws",
                "images": [{"image_id": f"ami-{build['id'][-6:]}", "region": "us-east-1"}],
                **source,
            }
        }
        ok(c.patch(c.p(f"/builds/{build['id']}"), json=done))
    final = ok(c.get(c.p(f"/images/{slug}/iteration"), params={"iteration_id": it["id"]}))["iteration"]
    assert final["complete"] is True
    return dict(final)


def test_parents_children_and_both(env: Env) -> None:
    c = env.client
    b1 = publish(c, "base", "base-fp1", ["amazon-ebs.ubuntu"])
    prod = make_channel(c, "base", "prod", b1)
    w1 = built_from(c, "web", "web-fp1", b1, prod)
    a1 = built_from(c, "app", "app-fp1", w1)

    page = ancestry(c, "web", type="parents")
    assert page["total_count"] == 1
    assert page["relations"] == [
        {
            "status": "UP_TO_DATE",
            "parent": {
                "bucket_slug": "base",
                "iteration_id": b1["id"],
                "iteration_incremental_version": 1,
                "iteration_fingerprint": "base-fp1",
                "channel": "prod",
                "channel_iteration": {"id": b1["id"], "incremental_version": 1, "fingerprint": "base-fp1"},
            },
            "child": {
                "bucket_slug": "web",
                "iteration_id": w1["id"],
                "iteration_incremental_version": 1,
                "iteration_fingerprint": "web-fp1",
            },
        }
    ]
    assert not page.get("pagination", {}).get("next_page_token")

    children = ancestry(c, "web", type="children")
    assert children["total_count"] == 1
    (rel,) = children["relations"]
    assert compact(rel) == ("UNDETERMINED", "web", w1["id"], "app", a1["id"], "")
    assert "channel_iteration" not in rel["parent"]
    assert rel["child"]["iteration_fingerprint"] == "app-fp1"

    both = ancestry(c, "web")
    assert both["total_count"] == 2
    assert sorted(compact(r) for r in both["relations"]) == sorted(
        [compact(page["relations"][0]), compact(children["relations"][0])]
    )
    assert (
        relations(c, "base")
        == relations(c, "base", type="children")
        == [("UP_TO_DATE", "base", b1["id"], "web", w1["id"], "prod")]
    )
    empty = ancestry(c, "base", type="parents")
    assert empty["relations"] == []
    assert empty.get("total_count", 0) == 0
    assert relations(c, "app", type="children") == []
    assert relations(c, "app", type="parents") == [("UNDETERMINED", "web", w1["id"], "app", a1["id"], "")]

    for bogus in ("bogus", "parent", "PARENTS", "parents,children"):
        error(c.get(c.p("/images/web/ancestry"), params={"type": bogus}), 3, 400)
    error(c.get(c.p("/images/nobucket/ancestry")), 5, 404)


def test_status_follows_the_parent_channel_and_summaries_flip_with_it(env: Env) -> None:
    c = env.client
    b1 = publish(c, "base", "base-fp1", ["amazon-ebs.ubuntu"])
    b2 = publish(c, "base", "base-fp2", ["amazon-ebs.ubuntu"])
    prod = make_channel(c, "base", "prod", b1)
    w1 = built_from(c, "web", "web-fp1", b1, prod)

    assert relations(c, "web", type="parents") == [("UP_TO_DATE", "base", b1["id"], "web", w1["id"], "prod")]
    web, base = bucket(c, "web"), bucket(c, "base")
    assert web["parents"]["status"] == "UP_TO_DATE"
    assert web["parents"]["href"].endswith(c.p("/images/web/ancestry?type=parents"))
    assert "children" not in web
    assert base["children"] == {"href": base["children"]["href"], "status": "UP_TO_DATE"}
    assert base["children"]["href"].endswith(c.p("/images/base/ancestry?type=children"))
    assert "parents" not in base
    # Publishing a newer base alone changes nothing: the channel still points at b1.
    assert bucket(c, "base")["latest_iteration"]["id"] == b2["id"]
    assert bucket(c, "web")["parents"]["status"] == "UP_TO_DATE"

    # The parent's channel moves on: the child is now out of date, wherever it is read from.
    move_channel(c, "base", "prod", b2)
    (rel,) = ancestry(c, "web", type="parents")["relations"]
    assert rel["status"] == "OUT_OF_DATE"
    assert rel["parent"]["iteration_id"] == b1["id"]
    assert rel["parent"]["channel_iteration"] == {"id": b2["id"], "incremental_version": 2, "fingerprint": "base-fp2"}
    assert relations(c, "base", type="children") == [("OUT_OF_DATE", "base", b1["id"], "web", w1["id"], "prod")]
    assert bucket(c, "web")["parents"]["status"] == "OUT_OF_DATE"
    assert bucket(c, "base")["children"]["status"] == "OUT_OF_DATE"

    # Moving the channel back makes it up to date again; unassigning it makes it out of date.
    move_channel(c, "base", "prod", b1)
    assert bucket(c, "web")["parents"]["status"] == "UP_TO_DATE"
    move_channel(c, "base", "prod", None)
    (rel,) = ancestry(c, "web", type="parents")["relations"]
    assert rel["status"] == "OUT_OF_DATE"
    assert "channel_iteration" not in rel["parent"]

    # Rebuilding the child from what the channel points at now brings it up to date.
    move_channel(c, "base", "prod", b2)
    w2 = built_from(c, "web", "web-fp2", b2, prod)
    assert relations(c, "web", type="parents") == [("UP_TO_DATE", "base", b2["id"], "web", w2["id"], "prod")]
    assert relations(c, "base", type="children") == [("UP_TO_DATE", "base", b2["id"], "web", w2["id"], "prod")]
    assert bucket(c, "web")["parents"]["status"] == "UP_TO_DATE"
    assert bucket(c, "base")["children"]["status"] == "UP_TO_DATE"


def test_undetermined_without_a_channel_and_the_summary_of_mixed_children(env: Env) -> None:
    c = env.client
    b1 = publish(c, "base", "base-fp1", ["amazon-ebs.ubuntu"])
    prod = make_channel(c, "base", "prod", b1)
    w1 = built_from(c, "web", "web-fp1", b1, prod)
    a1 = built_from(c, "api", "api-fp1", b1)

    assert relations(c, "api", type="parents") == [("UNDETERMINED", "base", b1["id"], "api", a1["id"], "")]
    assert bucket(c, "api")["parents"]["status"] == "UNDETERMINED"
    assert sorted(relations(c, "base", type="children")) == sorted(
        [
            ("UP_TO_DATE", "base", b1["id"], "web", w1["id"], "prod"),
            ("UNDETERMINED", "base", b1["id"], "api", a1["id"], ""),
        ]
    )
    assert bucket(c, "base")["children"]["status"] == "UNDETERMINED"

    b2 = publish(c, "base", "base-fp2", ["amazon-ebs.ubuntu"])
    assert bucket(c, "api")["parents"]["status"] == "UNDETERMINED", "no channel, no judgement"
    move_channel(c, "base", "prod", b2)
    assert bucket(c, "base")["children"]["status"] == "OUT_OF_DATE"
    assert bucket(c, "web")["parents"]["status"] == "OUT_OF_DATE"
    assert bucket(c, "api")["parents"]["status"] == "UNDETERMINED"


def test_a_channel_of_another_bucket_gives_no_status(env: Env) -> None:
    c = env.client
    b1 = publish(c, "base", "base-fp1", ["amazon-ebs.ubuntu"])
    o1 = publish(c, "other", "other-fp1", ["amazon-ebs.ubuntu"])
    foreign = make_channel(c, "other", "prod", o1)
    w1 = built_from(c, "web", "web-fp1", b1, foreign)
    assert relations(c, "web", type="parents") == [("UNDETERMINED", "base", b1["id"], "web", w1["id"], "")]


def test_buckets_without_relations_have_no_summaries(env: Env) -> None:
    c = env.client
    upsert_bucket(c, "empty")
    publish(c, "lonely", "lonely-fp1", ["amazon-ebs.ubuntu"])
    for slug in ("empty", "lonely"):
        b = bucket(c, slug)
        assert "parents" not in b
        assert "children" not in b
        page = ancestry(c, slug)
        assert page["relations"] == []
        assert page.get("total_count", 0) == 0


def test_iteration_filters_choose_whose_parents_are_listed(env: Env) -> None:
    c = env.client
    b1 = publish(c, "base", "base-fp1", ["amazon-ebs.ubuntu"])
    b2 = publish(c, "base", "base-fp2", ["amazon-ebs.ubuntu"])
    prod = make_channel(c, "base", "prod", b1)
    w1 = built_from(c, "web", "web-fp1", b1, prod)
    w2 = built_from(c, "web", "web-fp2", b2)
    a1 = built_from(c, "app", "app-fp1", w1)

    latest = [("UNDETERMINED", "base", b2["id"], "web", w2["id"], "")]
    older = [("UP_TO_DATE", "base", b1["id"], "web", w1["id"], "prod")]
    assert relations(c, "web", type="parents") == latest
    assert relations(c, "web", type="parents", incremental_version=1) == older
    assert relations(c, "web", type="parents", iteration_id=w1["id"]) == older
    assert relations(c, "web", type="parents", fingerprint="web-fp1") == older
    assert relations(c, "web", type="parents", incremental_version=2) == latest
    # Children are always those of the bucket, whatever iteration the parents are asked for.
    children = [("UNDETERMINED", "web", w1["id"], "app", a1["id"], "")]
    assert relations(c, "web", type="children", incremental_version=2) == children
    assert sorted(relations(c, "web", incremental_version=1)) == sorted(older + children)
    # base's children are the latest iterations of the buckets built from it: web v2, from b2.
    assert relations(c, "base", type="children") == [("UNDETERMINED", "base", b2["id"], "web", w2["id"], "")]

    path = c.p("/images/web/ancestry")
    for params in (
        {"incremental_version": 99},
        {"fingerprint": "no-such-fp"},
        {"iteration_id": "01HZZZZZZZZZZZZZZZZZZZZZZZ"},
        {"iteration_id": b1["id"]},  # an iteration of another bucket
    ):
        assert "web" in error(c.get(path, params=params), 5, 404)
    for params in (
        {"iteration_id": "not-a-ulid"},
        {"incremental_version": "one"},
        {"incremental_version": -1},
        {"incremental_version": 2**31},
    ):
        error(c.get(path, params=params), 3, 400)


def test_channel_filters_children_to_those_built_through_it(env: Env) -> None:
    c = env.client
    b1 = publish(c, "base", "base-fp1", ["amazon-ebs.ubuntu"])
    b2 = publish(c, "base", "base-fp2", ["amazon-ebs.ubuntu"])
    prod = make_channel(c, "base", "prod", b1)
    staging = make_channel(c, "base", "staging", b2)
    w1 = built_from(c, "web", "web-fp1", b1, prod)
    a1 = built_from(c, "api", "api-fp1", b2, staging)
    k1 = built_from(c, "worker", "worker-fp1", b1)

    web = ("UP_TO_DATE", "base", b1["id"], "web", w1["id"], "prod")
    api = ("UP_TO_DATE", "base", b2["id"], "api", a1["id"], "staging")
    worker = ("UNDETERMINED", "base", b1["id"], "worker", k1["id"], "")
    assert sorted(relations(c, "base", type="children")) == sorted([web, api, worker])
    assert relations(c, "base", type="children", channel="prod") == [web]
    assert relations(c, "base", type="children", channel="staging") == [api]
    assert relations(c, "base", channel="staging") == [api]
    assert relations(c, "base", type="children", channel="latest") == []
    # Still through prod after prod moved on (it was assigned through prod when web was built).
    move_channel(c, "base", "prod", b2)
    assert relations(c, "base", type="children", channel="prod") == [
        ("OUT_OF_DATE", "base", b1["id"], "web", w1["id"], "prod")
    ]
    page = ancestry(c, "base", type="children", channel="prod")
    assert page["total_count"] == 1

    assert "nope" in error(c.get(c.p("/images/base/ancestry"), params={"channel": "nope"}), 5, 404)
    error(c.get(c.p("/images/web/ancestry"), params={"channel": "prod"}), 5, 404)  # prod is base's channel
    error(c.get(c.p("/images/base/ancestry"), params={"channel": "a/b"}), 3, 400)


def _walk(c: ApiClient, slug: str, size: int, **params: Any) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Follow next_page_token to the end; return the relations seen and the pages."""
    seen: list[dict[str, Any]] = []
    pages: list[dict[str, Any]] = []
    token = ""
    while True:
        query = {"pagination.page_size": size, **params}
        if token:
            query["pagination.next_page_token"] = token
        page = ancestry(c, slug, **query)
        pages.append(page)
        seen += page["relations"]
        token = page.get("pagination", {}).get("next_page_token", "")
        if not token:
            return seen, pages
        assert len(pages) < 50, "paging does not end"


@pytest.fixture
def many(env: Env) -> dict[str, Any]:
    """base has one parent (root) and five children, one of which came through base's channel."""
    c = env.client
    r1 = publish(c, "root", "root-fp1", ["amazon-ebs.ubuntu"])
    b1 = built_from(c, "base", "base-fp1", r1)
    prod = make_channel(c, "base", "prod", b1)
    kids = [built_from(c, f"kid{n}", f"kid{n}-fp1", b1, prod if n == 2 else "") for n in range(5)]
    return {"root": r1, "base": b1, "kids": kids}


@pytest.mark.parametrize("size", [1, 2, 4, 6, 100])
def test_paging_walks_every_relation_exactly_once(env: Env, many: dict[str, Any], size: int) -> None:
    c = env.client
    everything = ancestry(c, "base", **{"pagination.page_size": 100})
    assert everything["total_count"] == 6
    assert len(everything["relations"]) == 6
    seen, pages = _walk(c, "base", size)
    assert [compact(r) for r in seen] == [compact(r) for r in everything["relations"]]
    assert len({compact(r) for r in seen}) == 6
    assert len(pages) == -(-6 // size)
    assert all(p["total_count"] == 6 for p in pages)
    assert all(len(p["relations"]) <= size for p in pages)
    assert {r["child"]["iteration_id"] for r in seen} == {many["base"]["id"]} | {k["id"] for k in many["kids"]}

    if len(pages) > 1:
        # previous_page_token walks back over the same pages.
        back: list[dict[str, Any]] = []
        token = pages[-1]["pagination"]["previous_page_token"]
        while token:
            page = ancestry(c, "base", **{"pagination.page_size": size, "pagination.previous_page_token": token})
            back = page["relations"] + back
            token = page.get("pagination", {}).get("previous_page_token", "")
        assert [compact(r) for r in back] == [compact(r) for r in seen[: len(back)]]
        assert len(back) == 6 - len(pages[-1]["relations"])


def test_paging_with_filters_counts_only_what_matches(env: Env, many: dict[str, Any]) -> None:
    c = env.client
    seen, pages = _walk(c, "base", 1, type="children")
    assert len(seen) == 5
    assert all(p["total_count"] == 5 for p in pages)
    seen, pages = _walk(c, "base", 1, type="children", channel="prod")
    assert [r["child"]["bucket_slug"] for r in seen] == ["kid2"]
    assert pages[0]["total_count"] == 1


def test_bad_page_tokens_and_sizes(env: Env, many: dict[str, Any]) -> None:
    c = env.client
    path = c.p("/images/base/ancestry")
    first = ancestry(c, "base", **{"pagination.page_size": 2})
    token = first["pagination"]["next_page_token"]
    junk = base64.urlsafe_b64encode(json.dumps({"o": [], "k": [1], "d": "n"}).encode()).decode().rstrip("=")
    buckets = ok(c.get(c.p("/images"), params={"pagination.page_size": 1}))
    foreign = buckets["pagination"]["next_page_token"]  # a ListBuckets token, for another ordering
    for params in (
        {"pagination.next_page_token": "%%%"},
        {"pagination.next_page_token": "abc"},
        {"pagination.next_page_token": junk},
        {"pagination.previous_page_token": token},  # a next token used backwards
        {"pagination.next_page_token": token, "pagination.previous_page_token": token},
        {"pagination.page_size": -1},
        {"pagination.page_size": "ten"},
        {"pagination.next_page_token": foreign},
    ):
        error(c.get(path, params=params), 3, 400)
    # The good token still works.
    second = ancestry(c, "base", **{"pagination.page_size": 2, "pagination.next_page_token": token})
    assert len(second["relations"]) == 2


def test_one_parent_through_two_channels_is_walked_once_per_relation(env: Env) -> None:
    """A template whose two sources read the same base iteration through two channels."""
    c = env.client
    b1 = publish(c, "base", "base-fp1", ["amazon-ebs.ubuntu"])
    prod = make_channel(c, "base", "prod", b1)
    staging = make_channel(c, "base", "staging", b1)
    w1 = with_builds_from(
        c,
        "web",
        "web-fp1",
        [
            {"source_iteration_id": b1["id"], "source_channel_id": prod},
            {"source_iteration_id": b1["id"], "source_channel_id": staging},
        ],
    )
    everything = ancestry(c, "web", type="parents")
    assert everything["total_count"] == 2
    expected = sorted(
        [
            ("UP_TO_DATE", "base", b1["id"], "web", w1["id"], "prod"),
            ("UP_TO_DATE", "base", b1["id"], "web", w1["id"], "staging"),
        ]
    )
    assert sorted(compact(r) for r in everything["relations"]) == expected
    seen, _ = _walk(c, "web", 1, type="parents")
    assert sorted(compact(r) for r in seen) == expected
    seen, _ = _walk(c, "base", 1, type="children")
    assert sorted(compact(r) for r in seen) == expected

    b2 = publish(c, "base", "base-fp2", ["amazon-ebs.ubuntu"])
    move_channel(c, "base", "staging", b2)
    statuses = {compact(r)[5]: r["status"] for r in ancestry(c, "web", type="parents")["relations"]}
    assert statuses == {"prod": "UP_TO_DATE", "staging": "OUT_OF_DATE"}
    assert bucket(c, "web")["parents"]["status"] == "OUT_OF_DATE"
