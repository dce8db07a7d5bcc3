"""Builds over HTTP: CreateBuild, GetBuild, ListBuilds, UpdateBuild, DeleteBuild.

Every response is also checked against HashiCorp's Swagger document by the client. Failed requests are
followed by a re-read that proves they changed nothing.
"""

from __future__ import annotations

import asyncio
import threading
import uuid
from typing import Any

from tests.conftest import Env
from tests.support.client import ApiClient, error, ok

UNKNOWN_ULID = "01HZZZZZZZZZZZZZZZZZZZZZZZ"
RUN = str(uuid.uuid4())


# ---- helpers ---------------------------------------------------------------------------------------


def make_bucket(c: ApiClient, slug: str = "ubuntu") -> None:
    ok(c.put(c.p("/images"), json={"bucket_slug": slug, "description": slug}))


def get_bucket(c: ApiClient, slug: str = "ubuntu") -> dict[str, Any]:
    return dict(ok(c.get(c.p(f"/images/{slug}")))["bucket"])


def make_iteration(c: ApiClient, slug: str = "ubuntu", fingerprint: str = "fp-1") -> dict[str, Any]:
    body = {"fingerprint": fingerprint, "template_type": "HCL2"}
    return dict(ok(c.post(c.p(f"/images/{slug}/iterations"), json=body))["iteration"])


def get_iteration(c: ApiClient, iteration_id: str, slug: str = "ubuntu") -> dict[str, Any]:
    return dict(ok(c.get(c.p(f"/images/{slug}/iteration"), params={"iteration_id": iteration_id}))["iteration"])


def create_build_response(c: ApiClient, iteration_id: str, build: dict[str, Any], slug: str = "ubuntu") -> Any:
    return c.post(c.p(f"/images/{slug}/iterations/{iteration_id}"), json={"fingerprint": "fp-1", "build": build})


def create_build(
    c: ApiClient, iteration_id: str, component: str, slug: str = "ubuntu", **fields: Any
) -> dict[str, Any]:
    build = {"component_type": component, "packer_run_uuid": RUN, "status": "UNSET", "images": None, **fields}
    return dict(ok(create_build_response(c, iteration_id, build, slug))["build"])


def get_build(c: ApiClient, build_id: str) -> dict[str, Any]:
    return dict(ok(c.get(c.p(f"/builds/{build_id}")))["build"])


def update(c: ApiClient, build_id: str, **updates: Any) -> Any:
    return c.patch(c.p(f"/builds/{build_id}"), json={"updates": updates})


def patch(c: ApiClient, build_id: str, **updates: Any) -> dict[str, Any]:
    return dict(ok(update(c, build_id, **updates))["build"])


def running(c: ApiClient, build_id: str) -> dict[str, Any]:
    """Packer's RUNNING PATCH, which is also its heartbeat."""
    return patch(c, build_id, packer_run_uuid=RUN, status="RUNNING", images=None)


def done(c: ApiClient, build_id: str, provider: str = "aws", images: list[dict[str, str]] | None = None) -> Any:
    return patch(
        c,
        build_id,
        packer_run_uuid=RUN,
        cloud_provider=provider,
        status="DONE",
        images=images if images is not None else [{"image_id": f"ami-{build_id[-6:]}", "region": "us-east-1"}],
    )


def list_builds(c: ApiClient, iteration_id: str, slug: str = "ubuntu", params: Any = None) -> dict[str, Any]:
    return dict(ok(c.get(c.p(f"/images/{slug}/iterations/{iteration_id}/builds"), params=params)))


def list_iterations(c: ApiClient, slug: str = "ubuntu") -> list[dict[str, Any]]:
    return list(ok(c.get(c.p(f"/images/{slug}/iterations")))["iterations"])


def new_iteration(env: Env) -> tuple[ApiClient, dict[str, Any]]:
    c = env.client
    make_bucket(c)
    return c, make_iteration(c)


def is_ulid(value: str) -> bool:
    return len(value) == 26 and value == value.upper() and value.isalnum()


# ---- CreateBuild -----------------------------------------------------------------------------------


def test_create_build_as_packer_sends_it(env: Env) -> None:
    c, it = new_iteration(env)
    body = {
        "fingerprint": "fp-1",
        "bucket_slug": "someone-else",
        "iteration_id": UNKNOWN_ULID,
        "location": {"organization_id": "x", "project_id": "y"},
        "build": {
            "component_type": "amazon-ebs.ubuntu",
            "packer_run_uuid": RUN,
            "status": "UNSET",
            "images": None,
            "labels": {"team": "infra"},
        },
    }
    b = ok(c.post(c.p(f"/images/ubuntu/iterations/{it['id']}"), json=body))["build"]
    assert is_ulid(b["id"])
    assert b["iteration_id"] == it["id"], "the path wins over the body"
    assert b["component_type"] == "amazon-ebs.ubuntu"
    assert b["packer_run_uuid"] == RUN
    assert b["status"] == "UNSET"
    assert b["images"] == []
    assert b["labels"] == {"team": "infra"}
    assert b["created_at"] == b["updated_at"] == "2024-05-01T12:00:00.000Z"
    assert "cloud_provider" not in b
    assert get_build(c, b["id"]) == b
    assert get_iteration(c, it["id"])["builds"] == [b]
    assert list_builds(c, it["id"])["builds"] == [b]


def test_create_build_done_with_images_completes_the_iteration_at_once(env: Env) -> None:
    c, it = new_iteration(env)
    b = create_build(
        c,
        it["id"],
        "amazon-ebs.a",
        status="DONE",
        cloud_provider="aws",
        images=[{"image_id": "ami-1", "region": "us-east-1"}],
    )
    assert b["status"] == "DONE"
    assert [i["image_id"] for i in b["images"]] == ["ami-1"]
    got = get_iteration(c, it["id"])
    assert got["complete"] is True
    assert got["incremental_version"] == 1
    assert get_bucket(c)["platforms"] == ["aws"]


def test_create_build_errors_create_nothing(env: Env) -> None:
    c, it = new_iteration(env)
    make_bucket(c, "debian")
    other = make_iteration(c, "debian", "fp-debian")
    url = c.p(f"/images/ubuntu/iterations/{it['id']}")
    error(c.post(url, json={"build": {"status": "UNSET"}}), 3, 400)  # no component_type
    error(c.post(url, json={"build": {"component_type": ""}}), 3, 400)
    error(c.post(url, json={}), 3, 400)
    error(c.post(url, json={"build": {"component_type": "x" * 1025}}), 3, 400)
    error(c.post(url, json={"build": {"component_type": "a", "status": "DONE"}}), 9, 400)  # DONE without images
    no_provider = {"component_type": "a", "status": "DONE", "images": [{"image_id": "ami-1", "region": "r"}]}
    error(c.post(url, json={"build": no_provider}), 3, 400)
    error(c.post(url, json={"build": {"component_type": "a", "images": [{"region": "us-east-1"}]}}), 3, 400)
    error(c.post(url, json={"build": {"component_type": "a", "status": "BOGUS"}}), 3, 400)
    error(c.post(url, json={"build": {"component_type": "a", "source_iteration_id": "nope"}}), 3, 400)
    error(c.post(url, json={"build": []}), 3, 400)
    error(c.post(url, json={"build": {"component_type": 5}}), 3, 400)
    error(c.post(url, content=b'{"build": {"component_type": "a"'), 3, 400)
    # Unknown bucket, unknown iteration, another bucket's iteration, a malformed iteration id.
    build = {"build": {"component_type": "a"}}
    error(c.post(c.p(f"/images/nope/iterations/{it['id']}"), json=build), 5, 404)
    error(c.post(c.p(f"/images/ubuntu/iterations/{UNKNOWN_ULID}"), json=build), 5, 404)
    error(c.post(c.p(f"/images/ubuntu/iterations/{other['id']}"), json=build), 5, 404)
    error(c.post(c.p("/images/ubuntu/iterations/not-a-ulid"), json=build), 3, 400)
    assert list_builds(c, it["id"])["builds"] == []
    assert list_builds(c, other["id"], "debian")["builds"] == []
    assert get_iteration(c, it["id"])["builds"] == []


def test_create_build_in_a_complete_iteration_is_failed_precondition(env: Env) -> None:
    c, it = new_iteration(env)
    done(c, create_build(c, it["id"], "amazon-ebs.a")["id"])
    before = get_iteration(c, it["id"])
    assert before["complete"] is True
    error(create_build_response(c, it["id"], {"component_type": "amazon-ebs.b", "status": "UNSET"}), 9, 400)
    assert get_iteration(c, it["id"]) == before


def test_duplicate_component_type_in_one_iteration_is_already_exists(env: Env) -> None:
    c, it = new_iteration(env)
    first = create_build(c, it["id"], "amazon-ebs.a", labels={"n": "1"})
    message = error(create_build_response(c, it["id"], {"component_type": "amazon-ebs.a", "labels": {"n": "2"}}), 6)
    assert "amazon-ebs.a" in message
    assert list_builds(c, it["id"])["builds"] == [first]
    # The same component in another iteration is a different build.
    second_it = make_iteration(c, fingerprint="fp-2")
    assert create_build(c, second_it["id"], "amazon-ebs.a")["id"] != first["id"]


def test_concurrent_identical_create_build_calls_yield_one_build(env: Env) -> None:
    c, it = new_iteration(env)
    body = {
        "fingerprint": "fp-1",
        "build": {"component_type": "amazon-ebs.a", "packer_run_uuid": RUN, "status": "UNSET", "images": None},
    }

    async def race() -> list[Any]:
        url = c.p(f"/images/ubuntu/iterations/{it['id']}")
        return list(await asyncio.gather(*[c.arequest("POST", url, json=body) for _ in range(8)]))

    responses = c.loop.run_until_complete(race())
    winners = [r for r in responses if r.status_code == 200]
    assert len(winners) == 1
    for r in responses:
        if r.status_code != 200:
            error(r, 6, 409)
    builds = list_builds(c, it["id"])["builds"]
    assert [b["id"] for b in builds] == [winners[0].json()["build"]["id"]]


def test_concurrent_create_build_of_different_components_all_succeed(env: Env) -> None:
    c, it = new_iteration(env)
    components = [f"amazon-ebs.c{n}" for n in range(6)]

    async def race() -> list[Any]:
        url = c.p(f"/images/ubuntu/iterations/{it['id']}")
        calls = [c.arequest("POST", url, json={"build": {"component_type": comp}}) for comp in components]
        return list(await asyncio.gather(*calls))

    ids = {ok(r)["build"]["id"] for r in c.loop.run_until_complete(race())}
    assert len(ids) == len(components)
    assert sorted(b["component_type"] for b in list_builds(c, it["id"])["builds"]) == components


# ---- status machine --------------------------------------------------------------------------------


def test_unset_failed_cancelled_and_running_may_all_go_to_running(env: Env) -> None:
    c, it = new_iteration(env)
    for start in ("UNSET", "FAILED", "CANCELLED", "RUNNING"):
        b = create_build(c, it["id"], f"comp.{start.lower()}")
        if start != "UNSET":
            assert patch(c, b["id"], status=start)["status"] == start
        env.clock.advance(seconds=1)
        again = running(c, b["id"])
        assert again["status"] == "RUNNING", start
        assert get_build(c, b["id"])["status"] == "RUNNING"
        # ... and from RUNNING on to FAILED, CANCELLED or back again.
        assert patch(c, b["id"], status="FAILED")["status"] == "FAILED"
        assert patch(c, b["id"], status="CANCELLED")["status"] == "CANCELLED"
    assert all(s == "CANCELLED" for s in list_iterations(c)[0]["build_statuses"].values())


def test_status_accepts_enum_numbers(env: Env) -> None:
    c, it = new_iteration(env)
    b = create_build(c, it["id"], "amazon-ebs.a", status=1)
    assert b["status"] == "RUNNING"
    assert patch(c, b["id"], status=4)["status"] == "FAILED"
    assert patch(c, b["id"], status=3)["status"] == "CANCELLED"
    final = patch(c, b["id"], status=2, cloud_provider="aws", images=[{"image_id": "ami-1", "region": "eu"}])
    assert final["status"] == "DONE"


def test_unset_status_in_an_update_means_unchanged(env: Env) -> None:
    c, it = new_iteration(env)
    b = create_build(c, it["id"], "amazon-ebs.a")
    running(c, b["id"])
    assert patch(c, b["id"], status="UNSET", labels={"a": "b"})["status"] == "RUNNING"
    assert patch(c, b["id"], status=0)["status"] == "RUNNING"
    assert patch(c, b["id"], labels={"c": "d"})["status"] == "RUNNING"


def test_done_needs_images_and_a_cloud_provider(env: Env) -> None:
    c, it = new_iteration(env)
    b = create_build(c, it["id"], "amazon-ebs.a")
    running(c, b["id"])
    before = get_build(c, b["id"])
    env.clock.advance(seconds=30)
    message = error(update(c, b["id"], status="DONE", cloud_provider="aws", images=None), 9, 400)
    assert "image" in message
    error(update(c, b["id"], status="DONE", cloud_provider="aws", images=[]), 9, 400)
    # Images but no cloud_provider: Packer could not load such a build back.
    error(update(c, b["id"], status="DONE", images=[{"image_id": "ami-1", "region": "us-east-1"}]), 3, 400)
    assert get_build(c, b["id"]) == before, "refused updates change nothing, images included"
    assert "complete" not in get_iteration(c, it["id"])

    # Images and cloud_provider sent earlier count: DONE may then come alone.
    staged = patch(c, b["id"], status="RUNNING", cloud_provider="aws", images=[{"image_id": "ami-1", "region": "r"}])
    assert staged["status"] == "RUNNING"
    finished = patch(c, b["id"], status="DONE", images=None)
    assert finished["status"] == "DONE"
    assert [i["image_id"] for i in finished["images"]] == ["ami-1"]
    assert finished["cloud_provider"] == "aws"
    assert get_iteration(c, it["id"])["complete"] is True


def test_a_done_build_cannot_be_changed(env: Env) -> None:
    c, it = new_iteration(env)
    a = create_build(c, it["id"], "amazon-ebs.a")
    create_build(c, it["id"], "amazon-ebs.b")  # keeps the iteration incomplete
    finished = done(c, a["id"])
    env.clock.advance(seconds=30)
    attempts: list[dict[str, Any]] = [
        {"status": "RUNNING", "images": None},
        {"status": "FAILED"},
        {"status": "CANCELLED"},
        {"status": "DONE", "cloud_provider": "aws", "images": [{"image_id": "ami-2", "region": "r"}]},
        {"labels": {"x": "y"}},
        {"images": [{"image_id": "ami-3", "region": "r"}]},
        {"cloud_provider": "gce"},
        {},
    ]
    for attempt in attempts:
        response = update(c, a["id"], **attempt)
        assert response.status_code == 400, (attempt, response.text)
        error(response, 9, 400)
    assert get_build(c, a["id"]) == finished


# ---- partial updates -------------------------------------------------------------------------------


def test_null_images_never_wipe_images_and_a_list_replaces_them(env: Env) -> None:
    c, it = new_iteration(env)
    images = [{"image_id": "ami-0", "region": "us-east-1"}]
    b = create_build(c, it["id"], "amazon-ebs.a", cloud_provider="aws", images=images)
    first = b["images"]
    assert [i["image_id"] for i in first] == ["ami-0"]
    # Packer's status-only PATCHes carry images:null; so does a body without the key.
    assert running(c, b["id"])["images"] == first
    assert patch(c, b["id"], status="RUNNING")["images"] == first
    assert get_build(c, b["id"])["images"] == first, "the image ids are stable too"

    two = [{"image_id": "ami-1", "region": "us-east-1"}, {"image_id": "ami-2", "region": "eu-west-1"}]
    replaced = patch(c, b["id"], images=two)["images"]
    assert [(i["image_id"], i["region"]) for i in replaced] == [("ami-1", "us-east-1"), ("ami-2", "eu-west-1")]
    assert {i["id"] for i in replaced}.isdisjoint({i["id"] for i in first})
    assert get_build(c, b["id"])["images"] == replaced

    # An explicit empty list is a list too: it replaces the images with none.
    assert patch(c, b["id"], images=[])["images"] == []
    assert get_build(c, b["id"])["images"] == []


def test_images_get_their_own_ulid_distinct_from_image_id(env: Env) -> None:
    c, it = new_iteration(env)
    b = create_build(c, it["id"], "amazon-ebs.a")
    images = [{"image_id": f"ami-{n}", "region": f"region-{n}"} for n in range(3)]
    images.append({"image_id": "ami-0", "region": "region-0"})  # the same cloud image twice is allowed
    env.clock.advance(seconds=5)
    got = done(c, b["id"], images=images)["images"]
    assert [(i["image_id"], i["region"]) for i in got] == [(i["image_id"], i["region"]) for i in images]
    ids = [i["id"] for i in got]
    assert all(is_ulid(i) for i in ids)
    assert len(set(ids)) == len(ids)
    assert all(i["id"] != i["image_id"] for i in got)
    assert all(i["created_at"] == "2024-05-01T12:00:05.000Z" for i in got)
    # The images read back the same everywhere the build appears.
    assert get_iteration(c, it["id"])["builds"][0]["images"] == got
    assert list_builds(c, it["id"])["builds"][0]["images"] == got
    assert get_bucket(c)["latest_iteration"]["builds"][0]["images"] == got


def test_images_need_a_cloud_provider_whatever_the_status(env: Env) -> None:
    # Packer loads existing builds back (NewBuildFromCloudPackerBuild) and fails on images without a provider.
    c, it = new_iteration(env)
    images = [{"image_id": "ami-1", "region": "us-east-1"}]
    error(create_build_response(c, it["id"], {"component_type": "amazon-ebs.a", "images": images}), 3, 400)
    assert list_builds(c, it["id"])["builds"] == []
    b = create_build(c, it["id"], "amazon-ebs.a")
    for status in ("RUNNING", "FAILED", None):
        response = update(c, b["id"], status=status, images=images)
        assert response.status_code == 400, (status, response.text)
        assert "cloud_provider" in error(response, 3, 400)
    assert get_build(c, b["id"])["images"] == []
    staged = patch(c, b["id"], status="RUNNING", cloud_provider="aws", images=images)
    assert staged["cloud_provider"] == "aws"
    assert [i["image_id"] for i in staged["images"]] == ["ami-1"]
    # Every build with images that any reader sees has a provider.
    for build in get_iteration(c, it["id"])["builds"] + list_builds(c, it["id"])["builds"]:
        assert not build["images"] or build["cloud_provider"]


def test_an_image_without_region_is_accepted(env: Env) -> None:
    c, it = new_iteration(env)
    b = create_build(c, it["id"], "docker.a")
    got = done(c, b["id"], provider="docker", images=[{"image_id": "sha256:abc"}])["images"]
    assert got[0]["image_id"] == "sha256:abc"
    assert "region" not in got[0]


def test_labels_are_replaced_only_when_sent(env: Env) -> None:
    c, it = new_iteration(env)
    b = create_build(c, it["id"], "amazon-ebs.a", labels={"a": "1", "b": "2"})
    assert running(c, b["id"])["labels"] == {"a": "1", "b": "2"}
    assert patch(c, b["id"], labels=None)["labels"] == {"a": "1", "b": "2"}
    assert patch(c, b["id"], labels={"c": "3"})["labels"] == {"c": "3"}, "replaced, not merged"
    assert get_build(c, b["id"])["labels"] == {"c": "3"}
    assert "labels" not in patch(c, b["id"], labels={})
    assert "labels" not in get_build(c, b["id"])


def test_empty_strings_leave_fields_unchanged(env: Env) -> None:
    c, it = new_iteration(env)
    source_iteration = make_iteration(c, fingerprint="fp-src")["id"]
    b = create_build(c, it["id"], "amazon-ebs.a")
    full = patch(
        c,
        b["id"],
        status="RUNNING",
        cloud_provider="aws",
        packer_run_uuid="11111111-1111-1111-1111-111111111111",
        source_image_id="ami-base",
        source_iteration_id=source_iteration,
        source_channel_id="01HZZZZZZZZZZZZZZZZZZZZZZY",
    )
    assert full["cloud_provider"] == "aws"
    assert full["source_image_id"] == "ami-base"
    blank = {
        "cloud_provider": "",
        "packer_run_uuid": "",
        "source_image_id": "",
        "source_iteration_id": "",
        "source_channel_id": "",
        "component_type": "",
    }
    env.clock.advance(seconds=1)
    after = patch(c, b["id"], **blank)
    for key in ("cloud_provider", "packer_run_uuid", "source_image_id", "component_type", "status", "images"):
        assert after[key] == full[key], key
    assert after["updated_at"] == "2024-05-01T12:00:01.000Z"
    # The component_type of an existing build can't be changed through an update.
    assert patch(c, b["id"], component_type="other.b")["component_type"] == "amazon-ebs.a"


def test_more_images_than_the_limit_is_invalid(env: Env) -> None:
    c, it = new_iteration(env)
    limit = env.settings.limits.max_images_per_build
    b = create_build(c, it["id"], "amazon-ebs.a")
    running(c, b["id"])
    before = get_build(c, b["id"])
    too_many = [{"image_id": f"ami-{n}", "region": "us-east-1"} for n in range(limit + 1)]
    message = error(update(c, b["id"], status="DONE", cloud_provider="aws", images=too_many), 3, 400)
    assert str(limit) in message
    error(create_build_response(c, it["id"], {"component_type": "amazon-ebs.b", "images": too_many}), 3, 400)
    assert get_build(c, b["id"]) == before
    assert len(list_builds(c, it["id"])["builds"]) == 1
    # Exactly the limit is fine.
    assert len(done(c, b["id"], images=too_many[:limit])["images"]) == limit


def test_an_image_without_image_id_is_invalid(env: Env) -> None:
    c, it = new_iteration(env)
    b = create_build(c, it["id"], "amazon-ebs.a")
    running(c, b["id"])
    before = get_build(c, b["id"])
    for images in (
        [{"region": "us-east-1"}],
        [{"image_id": "", "region": "us-east-1"}],
        [{"image_id": None, "region": "us-east-1"}],
        [{"image_id": "ami-ok", "region": "us-east-1"}, {"region": "eu-west-1"}],
        [{"image_id": "x" * 1025, "region": "us-east-1"}],
    ):
        response = update(c, b["id"], status="DONE", cloud_provider="aws", images=images)
        assert response.status_code == 400, (images, response.text)
        message = error(response, 3, 400)
        assert "image_id" in message
    assert get_build(c, b["id"]) == before


def test_malformed_update_bodies_are_invalid_and_change_nothing(env: Env) -> None:
    c, it = new_iteration(env)
    b = create_build(c, it["id"], "amazon-ebs.a", labels={"keep": "me"})
    running(c, b["id"])
    patch(c, b["id"], cloud_provider="aws", images=[{"image_id": "ami-0", "region": "us-east-1"}])
    before = get_build(c, b["id"])
    env.clock.advance(seconds=30)
    url = c.p(f"/builds/{b['id']}")
    bodies: list[bytes] = [
        b'{"updates": []}',
        b'{"updates": "RUNNING"}',
        b'{"updates": {"status": 7}}',
        b'{"updates": {"status": -1}}',
        b'{"updates": {"status": "done"}}',
        b'{"updates": {"status": "ITERATION_RUNNING"}}',
        b'{"updates": {"status": true}}',
        b'{"updates": {"status": 1.5}}',
        b'{"updates": {"images": [{"image_id": 5}]}}',
        b'{"updates": {"images": {"image_id": "ami-1"}}}',
        b'{"updates": {"images": ["ami-1"]}}',
        b'{"updates": {"labels": {"a": 1}}}',
        b'{"updates": {"labels": ["a"]}}',
        b'{"updates": {"cloud_provider": 5}}',
        b'{"updates": {"source_iteration_id": "not-a-ulid"}}',
        b'{"updates": {"labels": {"": "empty key"}}}',
        b'{"updates": {"status": "FAILED", "labels": {"x": "y"}, "images": [{"image_id": 5}]}}',
        b'{"updates": {"status": "FAILED"',
        b"not json at all",
        b"[]",
        b"null",
        b'"updates"',
    ]
    for body in bodies:
        response = c.patch(url, content=body, headers={"Content-Type": "application/json"})
        assert response.status_code == 400, (body, response.text)
        error(response, 3, 400)
    assert get_build(c, b["id"]) == before


# ---- GetBuild and project-scoped ids ---------------------------------------------------------------


def test_build_ids_are_project_scoped_and_validated(env: Env) -> None:
    c, it = new_iteration(env)
    make_bucket(c, "debian")
    other = make_iteration(c, "debian", "fp-debian")
    a = create_build(c, it["id"], "amazon-ebs.a")
    d = create_build(c, other["id"], "amazon-ebs.a", "debian")
    # No bucket or iteration in the path: the id alone finds the build, in any bucket of the project.
    assert get_build(c, a["id"])["iteration_id"] == it["id"]
    assert get_build(c, d["id"])["iteration_id"] == other["id"]
    assert get_build(c, a["id"].lower())["id"] == a["id"]
    assert running(c, d["id"])["status"] == "RUNNING"
    for bad in ("not-a-ulid", "01HZZZZZZZZZZZZZZZZZZZZZZ", "01HZZZZZZZZZZZZZZZZZZZZZZU", "8" * 26):
        error(c.get(c.p(f"/builds/{bad}")), 3, 400)
        error(update(c, bad, status="RUNNING"), 3, 400)
        error(c.delete(c.p(f"/builds/{bad}")), 3, 400)
    for unknown in (UNKNOWN_ULID, it["id"]):  # an iteration's id is not a build's id
        error(c.get(c.p(f"/builds/{unknown}")), 5, 404)
        error(update(c, unknown, status="RUNNING"), 5, 404)
        error(c.delete(c.p(f"/builds/{unknown}")), 5, 404)
    assert [b["id"] for b in list_builds(c, it["id"])["builds"]] == [a["id"]]


# ---- heartbeats ------------------------------------------------------------------------------------


def statuses_everywhere(c: ApiClient, iteration_id: str, build_id: str) -> set[str]:
    """The status of one build as GetBuild, ListBuilds, GetIteration and ListIterations report it."""
    seen = {get_build(c, build_id)["status"]}
    seen |= {b["status"] for b in list_builds(c, iteration_id)["builds"] if b["id"] == build_id}
    seen |= {b["status"] for b in get_iteration(c, iteration_id)["builds"] if b["id"] == build_id}
    component = get_build(c, build_id)["component_type"]
    for item in list_iterations(c):
        if item["id"] == iteration_id:
            seen.add(item["build_statuses"][component])
    return seen


def test_running_build_without_heartbeat_reads_as_failed_after_the_grace(env: Env) -> None:
    c, it = new_iteration(env)
    grace = env.settings.heartbeat_grace_seconds
    assert grace == 600
    b = create_build(c, it["id"], "amazon-ebs.a")
    idle = create_build(c, it["id"], "amazon-ebs.idle")  # UNSET builds have no heartbeat to miss
    running(c, b["id"])
    env.clock.advance(seconds=grace - 1)
    assert statuses_everywhere(c, it["id"], b["id"]) == {"RUNNING"}
    env.clock.advance(seconds=1)
    assert statuses_everywhere(c, it["id"], b["id"]) == {"RUNNING"}, "exactly the grace is not longer than it"
    env.clock.advance(seconds=1)
    assert statuses_everywhere(c, it["id"], b["id"]) == {"FAILED"}
    env.clock.advance(seconds=2000)  # (still within the bearer token's hour)
    assert statuses_everywhere(c, it["id"], b["id"]) == {"FAILED"}
    assert statuses_everywhere(c, it["id"], idle["id"]) == {"UNSET"}
    assert "complete" not in get_iteration(c, it["id"])


def test_heartbeats_keep_a_running_build_alive(env: Env) -> None:
    c, it = new_iteration(env)
    grace = env.settings.heartbeat_grace_seconds
    b = create_build(c, it["id"], "amazon-ebs.a")
    running(c, b["id"])
    for _ in range(5):  # Packer's heartbeat every two minutes, here every grace - 10 seconds
        env.clock.advance(seconds=grace - 10)
        assert running(c, b["id"])["status"] == "RUNNING"
    env.clock.advance(seconds=grace - 10)
    assert statuses_everywhere(c, it["id"], b["id"]) == {"RUNNING"}
    env.clock.advance(seconds=11)
    assert statuses_everywhere(c, it["id"], b["id"]) == {"FAILED"}


def test_an_expired_build_can_be_rerun_and_finished(env: Env) -> None:
    c, it = new_iteration(env)
    grace = env.settings.heartbeat_grace_seconds
    a = create_build(c, it["id"], "amazon-ebs.a")
    b = create_build(c, it["id"], "amazon-ebs.b")
    running(c, a["id"])
    running(c, b["id"])
    env.clock.advance(seconds=grace + 60)
    assert statuses_everywhere(c, it["id"], a["id"]) == {"FAILED"}
    # An update that does not say RUNNING does not bring it back to life.
    assert patch(c, b["id"], labels={"late": "label"})["status"] == "FAILED"
    assert statuses_everywhere(c, it["id"], b["id"]) == {"FAILED"}
    # Packer re-runs the failed build with the same fingerprint: back to RUNNING, then DONE.
    again = running(c, a["id"])
    assert again["status"] == "RUNNING"
    assert statuses_everywhere(c, it["id"], a["id"]) == {"RUNNING"}
    env.clock.advance(seconds=grace - 1)
    assert get_build(c, a["id"])["status"] == "RUNNING"
    done(c, a["id"])
    # The other expired build may also go straight to DONE.
    assert done(c, b["id"])["status"] == "DONE"
    got = get_iteration(c, it["id"])
    assert got["complete"] is True
    assert [x["status"] for x in got["builds"]] == ["DONE", "DONE"]
    # DONE builds never expire.
    env.clock.advance(seconds=grace * 3)
    assert statuses_everywhere(c, it["id"], a["id"]) == {"DONE"}


def test_heartbeat_grace_is_a_setting(tmp_path: Any, backend: Any, contracts: Any) -> None:
    from tests.conftest import close_env, make_env

    env = make_env(tmp_path, backend, contracts, heartbeat_grace_seconds=150)
    try:
        c, it = new_iteration(env)
        b = create_build(c, it["id"], "amazon-ebs.a")
        running(c, b["id"])
        env.clock.advance(seconds=150)
        assert get_build(c, b["id"])["status"] == "RUNNING"
        env.clock.advance(seconds=1)
        assert get_build(c, b["id"])["status"] == "FAILED"
    finally:
        close_env(env, backend)


# ---- DeleteBuild -----------------------------------------------------------------------------------


def test_delete_build_of_incomplete_iteration_can_complete_it(env: Env) -> None:
    c, it = new_iteration(env)
    a = create_build(c, it["id"], "amazon-ebs.a")
    b = create_build(c, it["id"], "googlecompute.b")
    f = create_build(c, it["id"], "azure-arm.f")
    done(c, a["id"], "aws")
    patch(c, f["id"], status="FAILED")
    done(c, b["id"], "gce")
    assert "complete" not in get_iteration(c, it["id"])

    env.clock.advance(seconds=10)
    assert ok(c.delete(c.p(f"/builds/{f['id']}"))) == {}
    error(c.get(c.p(f"/builds/{f['id']}")), 5, 404)
    error(c.delete(c.p(f"/builds/{f['id']}")), 5, 404)
    got = get_iteration(c, it["id"])
    assert got["complete"] is True
    assert got["incremental_version"] == 1
    assert [x["component_type"] for x in got["builds"]] == ["amazon-ebs.a", "googlecompute.b"]
    bucket = get_bucket(c)
    assert bucket["latest_version"] == 1
    assert bucket["latest_iteration"]["id"] == it["id"]
    assert bucket["platforms"] == ["aws", "gce"]
    assert list_iterations(c)[0]["build_statuses"] == {"amazon-ebs.a": "DONE", "googlecompute.b": "DONE"}

    # The component may not be re-added now: the iteration is complete.
    error(create_build_response(c, it["id"], {"component_type": "azure-arm.f"}), 9, 400)


def test_delete_build_leaving_unfinished_or_no_builds_keeps_the_iteration_incomplete(env: Env) -> None:
    c, it = new_iteration(env)
    a = create_build(c, it["id"], "amazon-ebs.a")
    b = create_build(c, it["id"], "amazon-ebs.b")
    running(c, b["id"])
    ok(c.delete(c.p(f"/builds/{a['id']}")))
    assert "complete" not in get_iteration(c, it["id"])
    ok(c.delete(c.p(f"/builds/{b['id']}")))
    got = get_iteration(c, it["id"])
    assert got["builds"] == []
    assert "complete" not in got
    assert "latest_version" not in get_bucket(c)
    # The component may be created again in the still-open iteration.
    assert create_build(c, it["id"], "amazon-ebs.a")["id"] != a["id"]


def test_delete_build_in_a_complete_iteration_is_failed_precondition(env: Env) -> None:
    c, it = new_iteration(env)
    a = create_build(c, it["id"], "amazon-ebs.a")
    done(c, a["id"])
    before = get_iteration(c, it["id"])
    assert before["complete"] is True
    error(c.delete(c.p(f"/builds/{a['id']}")), 9, 400)
    assert get_iteration(c, it["id"]) == before
    assert get_build(c, a["id"]) == before["builds"][0]


# ---- ListBuilds ------------------------------------------------------------------------------------


def test_list_builds_returns_every_build_in_one_reply(env: Env) -> None:
    c, it = new_iteration(env)
    count = env.settings.limits.default_page_size + 5
    created = []
    for n in range(count):
        created.append(create_build(c, it["id"], f"comp.{n:03d}")["id"])
        if n % 50 == 0:
            env.clock.advance(seconds=1)
    reply = list_builds(c, it["id"])
    assert [b["id"] for b in reply["builds"]] == created, "all of them, in creation order"
    assert not reply.get("pagination", {}).get("next_page_token")


def test_list_builds_pages_and_sorts_when_asked(env: Env) -> None:
    c, it = new_iteration(env)
    for name in ("c.x", "a.x", "d.x", "b.x"):
        create_build(c, it["id"], name)
        env.clock.advance(seconds=1)
    first = list_builds(c, it["id"], params={"pagination.page_size": 3, "sorting.order_by": "component_type"})
    assert [b["component_type"] for b in first["builds"]] == ["a.x", "b.x", "c.x"]
    token = first["pagination"]["next_page_token"]
    params = {"pagination.page_size": 3, "sorting.order_by": "component_type", "pagination.next_page_token": token}
    second = list_builds(c, it["id"], params=params)
    assert [b["component_type"] for b in second["builds"]] == ["d.x"]
    assert not second["pagination"].get("next_page_token")
    desc = list_builds(c, it["id"], params={"sorting.order_by": "created_at desc"})
    assert [b["component_type"] for b in desc["builds"]] == ["b.x", "d.x", "a.x", "c.x"]
    url = c.p(f"/images/ubuntu/iterations/{it['id']}/builds")
    error(c.get(url, params={"sorting.order_by": "status"}), 3, 400)
    error(c.get(url, params={"pagination.next_page_token": "garbage!"}), 3, 400)


def test_list_builds_errors(env: Env) -> None:
    c, it = new_iteration(env)
    make_bucket(c, "debian")
    other = make_iteration(c, "debian", "fp-debian")
    error(c.get(c.p(f"/images/nope/iterations/{it['id']}/builds")), 5, 404)
    error(c.get(c.p(f"/images/ubuntu/iterations/{UNKNOWN_ULID}/builds")), 5, 404)
    error(c.get(c.p(f"/images/ubuntu/iterations/{other['id']}/builds")), 5, 404)
    error(c.get(c.p("/images/ubuntu/iterations/not-a-ulid/builds")), 3, 400)


# ---- real concurrency: one client per thread, so transactions truly overlap ------------------------


def in_threads(env: Env, calls: list[tuple[str, str, Any]]) -> list[Any]:
    """Send the calls at the same moment from separate threads (each with its own loop and client)."""
    barrier = threading.Barrier(len(calls))
    results: list[Any] = [None] * len(calls)

    def worker(index: int, method: str, path: str, body: Any) -> None:
        loop = asyncio.new_event_loop()
        client = ApiClient(env.app, env.client.contracts, loop, env.client.org_id, env.client.project_id)
        client.token = env.client.token
        try:
            barrier.wait(timeout=10)
            results[index] = client.request(method, path, json=body)
        except BaseException as exc:  # reported by the assertion below
            results[index] = exc
        finally:
            client.close()
            loop.close()

    threads = [threading.Thread(target=worker, args=(n, *call)) for n, call in enumerate(calls)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert all(not isinstance(r, BaseException) and r is not None for r in results), results
    return results


def test_threaded_identical_create_build_calls_yield_one_build(env: Env) -> None:
    c, it = new_iteration(env)
    body = {"fingerprint": "fp-1", "build": {"component_type": "amazon-ebs.a", "status": "UNSET", "images": None}}
    url = c.p(f"/images/ubuntu/iterations/{it['id']}")
    responses = in_threads(env, [("POST", url, body)] * 6)
    assert sorted(r.status_code for r in responses) == [200, 409, 409, 409, 409, 409]
    for r in responses:
        if r.status_code != 200:
            error(r, 6, 409)
    assert len(list_builds(c, it["id"])["builds"]) == 1


def test_threaded_builds_finishing_together_complete_the_iteration_once(env: Env) -> None:
    c, it = new_iteration(env)
    builds = [create_build(c, it["id"], f"amazon-ebs.c{n}") for n in range(5)]
    calls = [
        (
            "PATCH",
            c.p(f"/builds/{b['id']}"),
            {
                "updates": {
                    "status": "DONE",
                    "cloud_provider": "aws",
                    "images": [{"image_id": f"ami-{n}", "region": "us-east-1"}],
                }
            },
        )
        for n, b in enumerate(builds)
    ]
    for r in in_threads(env, calls):
        assert ok(r)["build"]["status"] == "DONE"
    got = get_iteration(c, it["id"])
    assert got["complete"] is True
    assert got["incremental_version"] == 1
    bucket = get_bucket(c)
    assert bucket["latest_version"] == 1
    assert bucket["latest_iteration"]["id"] == it["id"]


def test_threaded_iterations_completing_together_get_distinct_versions(env: Env) -> None:
    c, _ = new_iteration(env)
    builds = []
    for n in range(5):
        other = make_iteration(c, fingerprint=f"fp-par-{n}")
        builds.append(create_build(c, other["id"], "amazon-ebs.a"))
    calls = [
        (
            "PATCH",
            c.p(f"/builds/{b['id']}"),
            {"updates": {"status": "DONE", "cloud_provider": "aws", "images": [{"image_id": "ami-1"}]}},
        )
        for b in builds
    ]
    for r in in_threads(env, calls):
        ok(r)
    versions = sorted(get_iteration(c, b["iteration_id"])["incremental_version"] for b in builds)
    assert versions == [1, 2, 3, 4, 5]
    bucket = get_bucket(c)
    assert bucket["latest_version"] == 5
    assert get_iteration(c, bucket["latest_iteration"]["id"])["incremental_version"] == 5
