"""Call for call, what each client era sends (client-compatibility-2023.md sections B to E), each read
checking the fields that client reads: Packer 1.10.1, 1.11.1, 1.12 (an SBOM), 1.15.3 (channels
promotion, enforced blocks), a resume with HCP_PACKER_BUILD_FINGERPRINT; the data sources of Packer and
terraform-provider-hcp, and the provider's resources."""

from __future__ import annotations

import uuid
from typing import Any

from tests.api.hcp_2023.test_publish import METADATA, concurrently
from tests.api.hcp_2023.test_sboms import SPDX, packed
from tests.conftest import Env
from tests.support.client import ApiClient, error, ok

RM = "/resource-manager/2019-12-10"


def discovery(c: ApiClient) -> None:
    """Packer with only HCP_PROJECT_ID: one organization, then the 2023 GetRegistry, which must be non-null."""
    orgs = ok(c.get(RM + "/organizations"))["organizations"]
    assert [o["id"] for o in orgs] == [c.org_id]
    assert ok(c.get(c.p23("/registry")))["registry"]["config"]["activated"] is True


def version_or_create(c: ApiClient, bucket: str, fingerprint: str, template: str = "HCL2") -> dict[str, Any]:
    """Step 3: GetVersion; code 10 creates it; Packer reads version.id and aborts unless name is v0."""
    v = f"/buckets/{bucket}/versions/{fingerprint}"
    got = c.get(c.p23(v))
    if got.status_code == 409:
        error(got, 10, 409)
        created = ok(
            c.post(c.p23(f"/buckets/{bucket}/versions"), json={"fingerprint": fingerprint, "template_type": template})
        )
        assert created["version"]["id"]
        got = c.get(c.p23(v))
    version: dict[str, Any] = ok(got)["version"]
    assert version["name"] == "v0"
    assert version["template_type"] == template
    return version


def builds_for(
    c: ApiClient, bucket: str, fingerprint: str, components: list[str], run: str
) -> dict[str, dict[str, Any]]:
    """Steps 4-5: ListBuilds without paging (every build in one reply), then concurrent CreateBuild."""
    base = f"/buckets/{bucket}/versions/{fingerprint}/builds"
    have = {b["component_type"]: b for b in ok(c.get(c.p23(base)))["builds"]}
    for b in have.values():
        assert b["status"]  # Packer dereferences it
        for artifact in b["artifacts"]:
            assert artifact["external_identifier"]
            assert b["platform"]
    body = {"artifacts": None, "packer_run_uuid": run, "status": "BUILD_UNSET"}
    calls = [("POST", c.p23(base), {**body, "component_type": comp}) for comp in components if comp not in have]
    for response in concurrently(c, calls):
        build = ok(response)["build"]
        assert build["packer_run_uuid"] == run
        assert build["status"] == "BUILD_UNSET"
        have[build["component_type"]] = build
    return have


def run_build(
    c: ApiClient, path: str, run: str, artifact: str, *, metadata: bool = True, sbom: bool = False
) -> dict[str, Any]:
    """Steps 7-10 for one build: RUNNING, (an SBOM), DONE with its artifact, labels and metadata."""
    ok(c.patch(c.p23(path), json={"artifacts": None, "packer_run_uuid": run, "status": "BUILD_RUNNING"}))
    if sbom:
        ok(c.put(c.p23(path + "/sboms"), json={"compressed_sbom": packed(SPDX), "format": "SPDX"}))
    done: dict[str, Any] = {
        "artifacts": [{"external_identifier": artifact, "region": "us-east-1"}],
        "labels": {"git_sha": "abc1234"},
        "packer_run_uuid": run,
        "platform": "aws",
        "status": "BUILD_DONE",
    }
    if metadata:
        done["metadata"] = METADATA
    build: dict[str, Any] = ok(c.patch(c.p23(path), json=done))["build"]
    assert build["id"]
    return build


def test_packer_1_10_1_creates_the_bucket_first_and_updates_on_code_6(env: Env) -> None:
    c = env.client
    discovery(c)
    for attempt in range(2):
        created = c.put(c.p23("/buckets"), json={"name": "app", "description": "app images"})
        if attempt == 0:
            ok(created)
        else:
            assert "Code:6" not in created.text  # the client renders it; the code is what matters
            error(created, 6, 409)
            ok(c.patch(c.p23("/buckets/app"), json={"description": "app images", "platforms": None}))
        version_or_create(c, "app", f"fp-{attempt}")
        run = str(uuid.uuid4())
        builds = builds_for(c, "app", f"fp-{attempt}", ["amazon-ebs.a"], run)
        run_build(
            c,
            f"/buckets/app/versions/fp-{attempt}/builds/{builds['amazon-ebs.a']['id']}",
            run,
            f"ami-{attempt}",
            metadata=False,
        )
        assert ok(c.get(c.p23(f"/buckets/app/versions/fp-{attempt}")))["version"]["name"] == f"v{attempt + 1}"


def test_packer_1_12_uploads_an_sbom_and_reports_a_failure(env: Env) -> None:
    c = env.client
    assert error(c.get(c.p23("/buckets/app")), 5, 404)
    ok(c.put(c.p23("/buckets"), json={"name": "app"}))
    version_or_create(c, "app", "fp-1")
    run = str(uuid.uuid4())
    builds = builds_for(c, "app", "fp-1", ["amazon-ebs.a", "amazon-ebs.b"], run)
    base = "/buckets/app/versions/fp-1/builds"
    run_build(c, f"{base}/{builds['amazon-ebs.a']['id']}", run, "ami-a", sbom=True)
    # The other build fails after RUNNING: Packer >= 1.12 PATCHes FAILED and exits non-zero.
    b = f"{base}/{builds['amazon-ebs.b']['id']}"
    ok(c.patch(c.p23(b), json={"artifacts": None, "packer_run_uuid": run, "status": "BUILD_RUNNING"}))
    ok(c.patch(c.p23(b), json={"artifacts": None, "packer_run_uuid": run, "status": "BUILD_FAILED"}))
    version = ok(c.get(c.p23("/buckets/app/versions/fp-1")))["version"]
    assert version["name"] == "v0"
    assert version["status"] == "VERSION_FAILED"
    sboms = ok(c.get(c.p23(f"{base}/{builds['amazon-ebs.a']['id']}/sboms")))["sboms"]
    assert [s["format"] for s in sboms] == ["SPDX"]

    # The resume: HCP_PACKER_BUILD_FINGERPRINT=fp-1. DONE builds are skipped, the failed one reruns.
    rerun = str(uuid.uuid4())
    assert version_or_create(c, "app", "fp-1")["id"] == version["id"]
    again = builds_for(c, "app", "fp-1", ["amazon-ebs.a", "amazon-ebs.b"], rerun)
    assert again["amazon-ebs.a"]["status"] == "BUILD_DONE"
    assert again["amazon-ebs.b"]["status"] == "BUILD_FAILED"
    assert again["amazon-ebs.b"]["artifacts"] == []
    run_build(c, b, rerun, "ami-b")
    finished = ok(c.get(c.p23("/buckets/app/versions/fp-1")))["version"]
    assert (finished["name"], finished["status"]) == ("v1", "VERSION_ACTIVE")
    assert {b["packer_run_uuid"] for b in finished["builds"]} == {run, rerun}


def test_packer_1_15_3_skips_unchanged_buckets_and_promotes_channels(env: Env) -> None:
    c = env.client
    ok(c.put(c.p23("/buckets"), json={"name": "app", "description": "d", "labels": {"team": "a"}}))
    ok(c.post(c.p23("/buckets/app/channels"), json={"name": "dev"}))
    bucket = ok(c.get(c.p23("/buckets/app")))["bucket"]
    assert (bucket["description"], bucket["labels"]) == ("d", {"team": "a"}), "equal: Packer writes nothing"
    version_or_create(c, "app", "fp-1")
    run = str(uuid.uuid4())
    builds = builds_for(c, "app", "fp-1", ["amazon-ebs.a", "amazon-ebs.b"], run)
    assert ok(c.get(c.p23("/enforced_blocks/bucket/app"))) == {"enforced_block_detail": []}
    promote = {"update_mask": "versionFingerprint", "version_fingerprint": "fp-1"}
    base = "/buckets/app/versions/fp-1/builds"
    run_build(c, f"{base}/{builds['amazon-ebs.a']['id']}", run, "ami-a")
    # channels = ["dev"] after the first DONE: the version isn't complete yet (code 9, which Packer prints
    # and tolerates); after the last DONE it is, at once.
    error(c.patch(c.p23("/buckets/app/channels/dev"), json=promote), 9, 400)
    run_build(c, f"{base}/{builds['amazon-ebs.b']['id']}", run, "ami-b")
    dev = ok(c.patch(c.p23("/buckets/app/channels/dev"), json=promote))["channel"]
    assert dev["version"]["fingerprint"] == "fp-1"
    assert dev["version"]["name"] == "v1"


def _published(env: Env) -> tuple[dict[str, Any], dict[str, Any]]:
    c = env.client
    ok(c.put(c.p23("/buckets"), json={"name": "base"}))
    version_or_create(c, "base", "fp-1")
    run = str(uuid.uuid4())
    builds = builds_for(c, "base", "fp-1", ["amazon-ebs.east", "googlecompute.eu"], run)
    base = "/buckets/base/versions/fp-1/builds"
    run_build(c, f"{base}/{builds['amazon-ebs.east']['id']}", run, "ami-east")
    gce = builds["googlecompute.eu"]["id"]
    ok(c.patch(c.p23(f"{base}/{gce}"), json={"status": "BUILD_RUNNING"}))
    done = {
        "status": "BUILD_DONE",
        "platform": "gce",
        "artifacts": [{"external_identifier": "img-eu", "region": "europe-west1"}],
    }
    ok(c.patch(c.p23(f"{base}/{gce}"), json=done))
    channel = ok(c.post(c.p23("/buckets/base/channels"), json={"name": "production", "version_fingerprint": "fp-1"}))
    version = ok(c.get(c.p23("/buckets/base/versions/fp-1")))["version"]
    return version, channel["channel"]


def test_packer_data_sources(env: Env) -> None:
    c = env.client
    version, channel = _published(env)
    discovery(c)
    # hcp-packer-version: GetChannel; outputs read from channel.version and channel.id.
    got = ok(c.get(c.p23("/buckets/base/channels/production")))["channel"]
    v = got["version"]
    for field in ("author_id", "bucket_name", "status", "created_at", "fingerprint", "id", "name", "updated_at"):
        assert v[field], field
    assert v["status"] != "VERSION_REVOKED"
    assert got["id"] == channel["id"]

    # hcp-packer-artifact: the first build with the platform that has an artifact in the region.
    def artifact(version: dict[str, Any], platform: str, region: str) -> tuple[dict[str, Any], dict[str, Any]]:
        for build in version["builds"]:
            if build["platform"] == platform:
                for a in build["artifacts"]:
                    if a["region"] == region:
                        return build, a
        raise AssertionError((platform, region))

    build, a = artifact(v, "aws", "us-east-1")
    assert a["external_identifier"] == "ami-east"
    assert build["version_id"] == version["id"]
    assert build["packer_run_uuid"]
    assert build["component_type"]
    assert a["created_at"]
    assert build["labels"] == {"git_sha": "abc1234"}
    by_fp = ok(c.get(c.p23("/buckets/base/versions/fp-1")))["version"]
    assert artifact(by_fp, "gce", "europe-west1")[1]["external_identifier"] == "img-eu"
    # The deprecated 2021 data sources (hcp-packer-iteration/-image) read the same ids; their outputs
    # feed 2023's parent_version_id / parent_channel_id.
    old = ok(c.get(c.p("/images/base/channels/production")))["channel"]
    assert old["iteration"]["id"] == version["id"]
    assert old["id"] == channel["id"]
    image = next(i for b in old["iteration"]["builds"] for i in b["images"] if i["region"] == "us-east-1")
    assert image["image_id"] == "ami-east"
    error(c.get(c.p23("/buckets/base/channels/nope")), 5, 404)


def test_provider_data_sources(env: Env) -> None:
    c = env.client
    version, _ = _published(env)
    # hcp_packer_version: channel.name non-empty, version non-nil, bucket_name from the version.
    got = ok(c.get(c.p23("/buckets/base/channels/production")))["channel"]
    assert got["name"] == "production"
    assert got["version"]["bucket_name"] == "base"
    assert "revoke_at" not in got["version"], "the provider fills year 1 itself"
    # An unassigned channel: no version ("does not have an assigned Version").
    ok(c.post(c.p23("/buckets/base/channels"), json={"name": "empty"}))
    assert "version" not in ok(c.get(c.p23("/buckets/base/channels/empty")))["channel"]
    # hcp_packer_artifact by fingerprint: GetVersion with a non-empty fingerprint; labels path: the first
    # build whose labels contain every pair.
    by_fp = ok(c.get(c.p23("/buckets/base/versions/fp-1")))["version"]
    assert by_fp["fingerprint"] == "fp-1"
    labelled = [
        b for b in by_fp["builds"] if b.get("labels", {}).get("git_sha") == "abc1234" and b["platform"] == "aws"
    ]
    assert labelled
    assert labelled[0]["artifacts"][0]["id"]
    # hcp_packer_bucket_names: ListBuckets by name, following tokens until none.
    for n in range(5):
        ok(c.put(c.p23("/buckets"), json={"name": f"b{n}"}))
    names: list[str] = []
    params: dict[str, str] = {"sorting.order_by": "name", "pagination.page_size": "2"}
    while True:
        page = ok(c.get(c.p23("/buckets"), params=params))
        names += [b["name"] for b in page["buckets"]]
        token = page.get("pagination", {}).get("next_page_token")
        if not token:
            break
        params = {"sorting.order_by": "name", "pagination.next_page_token": token, "pagination.page_size": "2"}
    assert names == ["b0", "b1", "b2", "b3", "b4", "base"]
    # hcp_packer_run_task: api_url and hmac_key; regenerate.
    task = ok(c.get(c.p23("/runtasks/validation")))
    assert task["api_url"]
    assert task["hmac_key"]
    assert ok(c.patch(c.p23("/runtasks/hmac"), json={}))["hmac_key"] != task["hmac_key"]
    assert version["id"]


def test_provider_resources(env: Env) -> None:
    c = env.client
    # hcp_packer_bucket: Create reads resource_name, location and created_at; Read; Delete; 404 after.
    created = ok(c.put(c.p23("/buckets"), json={"name": "tf-bucket"}))["bucket"]
    assert created["resource_name"] == f"packer/project/{c.project_id}/bucket/tf-bucket"
    assert created["location"]["organization_id"] == c.org_id
    assert created["location"]["project_id"] == c.project_id
    assert created["created_at"]
    read = ok(c.get(c.p23("/buckets/tf-bucket")))["bucket"]
    assert (read["name"], read["resource_name"]) == ("tf-bucket", created["resource_name"])
    ok(c.delete(c.p23("/buckets/tf-bucket")))
    error(c.get(c.p23("/buckets/tf-bucket")), 5, 404)
    error(c.delete(c.p23("/buckets/tf-bucket")), 5, 404)
    # hcp_packer_channel: create (restricted only when true), adopt latest on code 6, read by listing.
    _published(env)
    made = ok(c.post(c.p23("/buckets/base/channels"), json={"name": "tf-channel", "restricted": True}))["channel"]
    for field in ("id", "author_id", "created_at", "updated_at"):
        assert made[field], field
    assert made["restricted"] is True
    assert "managed" not in made
    conflict = c.post(c.p23("/buckets/base/channels"), json={"name": "latest"})
    assert conflict.json()["code"] == 6
    listed = {ch["name"]: ch for ch in ok(c.get(c.p23("/buckets/base/channels")))["channels"]}
    assert listed["latest"]["managed"] is True
    ok(c.patch(c.p23("/buckets/base/channels/latest"), json={"update_mask": "restricted", "restricted": True}))
    # hcp_packer_channel_assignment: assign, then "none" (the fingerprint omitted) unassigns; state comes
    # from the reply's channel.version.fingerprint.
    assigned = ok(
        c.patch(
            c.p23("/buckets/base/channels/tf-channel"),
            json={"update_mask": "versionFingerprint", "version_fingerprint": "fp-1"},
        )
    )
    assert assigned["channel"]["version"]["fingerprint"] == "fp-1"
    none = ok(c.patch(c.p23("/buckets/base/channels/tf-channel"), json={"update_mask": "versionFingerprint"}))
    assert "version" not in none["channel"]
    ok(c.delete(c.p23("/buckets/base/channels/tf-channel")))
    assert "tf-channel" not in {ch["name"] for ch in ok(c.get(c.p23("/buckets/base/channels")))["channels"]}
