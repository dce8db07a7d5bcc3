"""The console's read pages over data published through the real API (2023-01-01, as Packer sends it):
the buckets list with search, a bucket (versions, channels, ancestry graph, activity), a version
(builds, artifacts, metadata, revocation, SBOMs), a channel's history; paging, roles and refusals."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import timedelta
from html import unescape
from typing import Any

import pytest
import zstandard
from sqlalchemy.engine import Connection

from packyard.console import graph
from packyard.domain import browse as domain_browse
from packyard.domain import tenants
from packyard.domain.ancestry import AncestryStatus, Relation
from packyard.domain.models import Iteration, Role
from packyard.storage.unit_of_work import SqlUnitOfWork
from tests.conftest import START, Env
from tests.console.support import Browser, make_user
from tests.support.client import ApiClient, ok

PACKER = {
    "version": "1.11.2",
    "plugins": [{"name": "amazon", "version": "1.3.2"}],
    "os": {"type": "linux", "details": {"arch": "amd64", "version": "6.1"}},
}
VCS = {
    "type": "git",
    "details": {"ref": "main", "commit": "abc1234", "author": "dev", "has_uncommitted_changes": False},
}
CICD = {
    "type": "github",
    "details": {
        "GITHUB_SERVER_URL": "https://github.example",
        "GITHUB_REPOSITORY": "acme/images",
        "GITHUB_RUN_ID": "4242",
    },
}


def publish(
    c: ApiClient,
    bucket: str,
    fingerprint: str,
    *,
    artifacts: dict[str, list[tuple[str, str]]] | None = None,
    labels: dict[str, str] | None = None,
    parent: tuple[str, str] | None = None,
    metadata: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """One `packer build` through 2023-01-01: the bucket (made if missing), a version, a build per
    component with its artifacts, DONE. `parent`: (parent version id, parent channel id)."""
    if c.get(c.p23(f"/buckets/{bucket}")).status_code == 404:
        ok(c.put(c.p23("/buckets"), json={"name": bucket, "description": f"{bucket} images"}))
    ok(c.post(c.p23(f"/buckets/{bucket}/versions"), json={"fingerprint": fingerprint, "template_type": "HCL2"}))
    base = f"/buckets/{bucket}/versions/{fingerprint}/builds"
    components = artifacts or {"amazon-ebs.east": [(f"ami-{fingerprint}", "us-east-1")]}
    made = [
        ok(c.post(c.p23(base), json={"component_type": component, "status": "BUILD_RUNNING"}))["build"]
        for component in components
    ]
    for build, (component, images) in zip(made, components.items(), strict=True):
        body: dict[str, Any] = {
            "status": "BUILD_DONE",
            "platform": "aws" if component.startswith("amazon") else "gce",
            "artifacts": [{"external_identifier": i, "region": r} for i, r in images],
            "labels": labels or {"os": "ubuntu"},
            "metadata": metadata or {"packer": PACKER, "vcs": VCS, "cicd": None},
        }
        if parent:
            body |= {"source_external_identifier": "ami-base", "parent_version_id": parent[0]}
            body |= {"parent_channel_id": parent[1]} if parent[1] else {}
        ok(c.patch(c.p23(f"{base}/{build['id']}"), json=body))
    return dict(ok(c.get(c.p23(f"/buckets/{bucket}/versions/{fingerprint}")))["version"])


def channel(c: ApiClient, bucket: str, slug: str, version: dict[str, Any], restricted: bool = False) -> str:
    body = {"name": slug, "version_fingerprint": version["fingerprint"], "restricted": restricted}
    return str(ok(c.post(c.p23(f"/buckets/{bucket}/channels"), json=body))["channel"]["id"])


def move(c: ApiClient, bucket: str, slug: str, version: dict[str, Any]) -> None:
    body = {"version_fingerprint": version["fingerprint"], "update_mask": "versionFingerprint"}
    ok(c.patch(c.p23(f"/buckets/{bucket}/channels/{slug}"), json=body))


def text(page: Any) -> str:
    """The page's text without tags or runs of whitespace, for reading what a person sees."""
    return re.sub(r"\s+", " ", unescape(re.sub(r"<[^>]+>", " ", page.text)))


@pytest.fixture
def admin(env: Env) -> Iterator[Browser]:
    make_user(env, "ada@example.com", Role.ADMIN)
    b = Browser(env)
    assert b.sign_in("ada@example.com").status_code == 303
    yield b
    b.close()


def viewer_of(env: Env, email: str = "val@example.com", project_id: str | None = None) -> Browser:
    make_user(env, email, Role.VIEWER, project_id=project_id)
    b = Browser(env)
    assert b.sign_in(email).status_code == 303
    return b


def base(env: Env) -> str:
    return f"/orgs/{env.init.organization_id}/projects/{env.init.project_id}"


def test_buckets_list_shows_latest_version_platforms_and_channels(env: Env, admin: Browser) -> None:
    c = env.client
    v1 = publish(
        c, "ubuntu", "fp-1", artifacts={"amazon-ebs.east": [("ami-1", "us-east-1")], "gce.eu": [("img-1", "")]}
    )
    channel(c, "ubuntu", "production", v1)
    publish(c, "ubuntu", "fp-2")
    page = admin.get(base(env))
    assert page.status_code == 200
    seen = text(page)
    assert "ubuntu" in seen
    row = seen[seen.index("ubuntu images") :]
    assert re.search(r"v2 Active aws", row), row[:200]  # latest v2, its platforms
    assert "production → v1" in row
    assert "latest → v2" in row
    assert '<label for="q">Search</label>' in page.text
    assert page.text.count("<h1>") == 1


def test_buckets_are_paged_fifty_at_a_time_both_ways(env: Env, admin: Browser) -> None:
    c = env.client
    for n in range(53):
        ok(c.put(c.p23("/buckets"), json={"name": f"b{n:02d}"}))
        env.advance(seconds=1)
    first = admin.get(base(env))
    names = re.findall(r"/buckets/(b\d\d)\"", first.text)
    assert names == [f"b{n:02d}" for n in range(52, 2, -1)]  # newest first, 50
    assert "Previous page" not in first.text
    after = re.search(r'href="\?after=([^"]+)"', first.text)
    assert after is not None
    second = admin.get(base(env) + "?after=" + after.group(1))
    assert re.findall(r"/buckets/(b\d\d)\"", second.text) == ["b02", "b01", "b00"]
    assert "Next page" not in second.text
    before = re.search(r'href="\?before=([^"]+)"', second.text)
    assert before is not None
    back = admin.get(base(env) + "?before=" + before.group(1))
    assert re.findall(r"/buckets/(b\d\d)\"", back.text) == names
    assert admin.get(base(env) + "?after=garbage").status_code == 400


def test_search_by_name_fingerprint_and_artifact_id(env: Env, admin: Browser) -> None:
    c = env.client
    v = publish(c, "web-frontend", "3f2a9c", artifacts={"amazon-ebs.east": [("ami-0abc1234def", "us-east-1")]})
    publish(c, "webhook", "77aa")
    publish(c, "db", "99bb")
    by_prefix = text(admin.get(base(env) + "/search?q=web"))
    assert "web-frontend" in by_prefix
    assert "webhook" in by_prefix
    assert " db " not in by_prefix
    by_substring = text(admin.get(base(env) + "/search?q=FRONT"))
    assert "web-frontend" in by_substring
    assert "webhook" not in by_substring
    by_fingerprint = admin.get(base(env) + "/search?q=3f2a9c")
    assert f"/buckets/web-frontend/versions/{v['id']}" in by_fingerprint.text
    assert "web-frontend v1" in text(by_fingerprint)
    by_ami = admin.get(base(env) + "/search?q=ami-0abc1234def")
    assert f"/buckets/web-frontend/versions/{v['id']}" in by_ami.text
    assert "No artifact has that external id" not in by_ami.text
    assert "amazon-ebs.east" in text(by_ami)
    nothing = text(admin.get(base(env) + "/search?q=ami-nope"))
    assert "No artifact has that external id" in nothing
    assert "No bucket name contains it" in nothing
    assert admin.get(base(env) + "/search?q=" + "x" * 300).status_code == 400
    nul = admin.get(base(env) + "/search?q=ami%00x")
    assert nul.status_code == 400
    assert "contains a NUL character" in nul.text
    odd = admin.get(base(env) + "/search?q=%25_%5C%E2%80%94%F0%9F%90%8D")  # LIKE's wildcards, a dash, a snake
    assert odd.status_code == 200
    assert "No bucket name contains it" in odd.text
    assert "web-frontend" in text(admin.get(base(env) + "/search?q=b-f"))


def test_bucket_page_versions_channels_and_activity(env: Env, admin: Browser) -> None:
    c = env.client
    v1 = publish(c, "ubuntu", "fp-1", artifacts={"amazon-ebs.east": [("ami-1", "us-east-1")], "gce.eu": [("i-1", "")]})
    env.advance(minutes=1)
    channel(c, "ubuntu", "production", v1)
    env.advance(minutes=1)
    v2 = publish(c, "ubuntu", "fp-2")
    env.advance(minutes=1)
    at = (START + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    ok(c.patch(c.p23("/buckets/ubuntu/versions/fp-2"), json={"revoke_at": at, "revocation_message": "cve-1"}))
    page = admin.get(base(env) + "/buckets/ubuntu")
    assert page.status_code == 200
    seen = text(page)
    versions = seen[seen.index("Versions Version Status") :]
    assert re.search(r"v2 fp-2 Scheduled revocation at 2\S+ \S+ UTC \S+ [^ ]+ .*aws: 1", versions)
    assert re.search(r"v1 fp-1 Active \S+ .* aws: 1, gce: 1", versions)
    assert f"/buckets/ubuntu/versions/{v2['id']}" in page.text
    channels = seen[seen.index("Channels Channel") : seen.index("Ancestry")]
    assert "production v1 Active" in channels
    assert "latest managed v2 Scheduled revocation" in channels
    activity = seen[seen.index("Recent activity") :]
    assert "v2 scheduled for revocation at" in activity
    assert "cve-1" in activity
    assert "channel production set to v1" in activity
    assert activity.index("v2 scheduled") < activity.index("channel production set to v1")  # newest first
    assert 'href="/static/console.css"' in page.text


def test_bucket_versions_are_paged(env: Env, admin: Browser) -> None:
    c = env.client
    ok(c.put(c.p23("/buckets"), json={"name": "many"}))
    for n in range(52):
        ok(c.post(c.p23("/buckets/many/versions"), json={"fingerprint": f"f{n:02d}"}))
        env.advance(seconds=1)
    first = admin.get(base(env) + "/buckets/many")
    fingerprints = re.findall(r">(f\d\d)<", first.text)
    assert fingerprints == [f"f{n:02d}" for n in range(51, 1, -1)]
    after = re.search(r'href="\?after=([^"]+)"', first.text)
    assert after is not None
    second = admin.get(base(env) + "/buckets/many?after=" + after.group(1))
    assert re.findall(r">(f\d\d)<", second.text) == ["f01", "f00"]
    assert "Previous page" in second.text


def test_version_page_builds_artifacts_metadata_and_sboms(env: Env, admin: Browser) -> None:
    c = env.client
    v = publish(
        c,
        "ubuntu",
        "fp-1",
        artifacts={
            "amazon-ebs.east": [("ami-east", "us-east-1"), ("ami-west", "us-west-2")],
            "gce.eu": [("img-eu", "")],
        },
        labels={"os": "ubuntu", "team": "platform"},
        metadata={"packer": PACKER, "vcs": VCS, "cicd": CICD},
    )
    build_id = v["builds"][0]["id"]
    add_sbom(env, build_id, "sbom-main")
    page = admin.get(base(env) + f"/buckets/ubuntu/versions/{v['id']}")
    assert page.status_code == 200
    seen = text(page)
    assert "ubuntu v1 Active" in seen
    assert "Fingerprint fp-1" in seen
    east = seen[seen.index("amazon-ebs.east DONE") :]
    assert "Platform aws" in east
    assert "Labels os=ubuntu team=platform" in east
    assert "Packer 1.11.2" in east
    assert "Plugins amazon 1.3.2" in east
    assert "commit abc1234 on main" in east
    assert "ami-east us-east-1" in east
    assert "ami-west us-west-2" in east
    assert "img-eu" in seen
    assert 'href="https://github.example/acme/images/actions/runs/4242"' in page.text
    assert "sbom-main (CYCLONEDX" in seen
    assert "Not revoked." in seen
    assert "No parent version in this project." in seen


def add_sbom(env: Env, build_id: str, name: str) -> None:
    """An SBOM on a build that is DONE (the API takes them only while it runs), straight into storage."""
    raw = b'{"bomFormat":"CycloneDX","specVersion":"1.5","components":[]}'

    def work(conn: Connection) -> None:
        conn.exec_driver_sql(
            "INSERT INTO sbom (id, build_id, project_id, name, format, size, content, created_at) "
            "VALUES (%(id)s, %(b)s, %(p)s, %(n)s, 'CYCLONEDX', %(s)s, %(c)s, 0)"
            if conn.dialect.name == "postgresql"
            else "INSERT INTO sbom (id, build_id, project_id, name, format, size, content, created_at) "
            "VALUES (:id, :b, :p, :n, 'CYCLONEDX', :s, :c, 0)",
            {
                "id": "01JSBOM0000000000000000000",
                "b": build_id,
                "p": env.init.project_id,
                "n": name,
                "s": len(raw),
                "c": zstandard.ZstdCompressor().compress(raw),
            },
        )

    env.db.run(work, write=True)


def test_version_page_revocation_state_and_its_history(env: Env, admin: Browser) -> None:
    c = env.client
    v = publish(c, "ubuntu", "fp-1")
    at = (START + timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M:%SZ")
    ok(c.patch(c.p23("/buckets/ubuntu/versions/fp-1"), json={"revoke_at": at, "revocation_message": "cve-9"}))
    scheduled = text(admin.get(base(env) + f"/buckets/ubuntu/versions/{v['id']}"))
    assert "ubuntu v1 Scheduled revocation" in scheduled
    assert "Revocation scheduled for 2024-05-01 14:00:00 UTC" in scheduled
    assert "Message cve-9" in scheduled
    assert "Scheduled revocations" in scheduled
    assert "pending" in scheduled
    env.advance(hours=3)
    revoked = text(admin.get(base(env) + f"/buckets/ubuntu/versions/{v['id']}"))
    assert "ubuntu v1 Revoked" in revoked
    assert "Revoked at" in revoked
    assert "revoked itself" in revoked


def test_channel_page_history_timeline_paged(env: Env, admin: Browser) -> None:
    c = env.client
    versions = [publish(c, "ubuntu", f"fp-{n}") for n in range(3)]
    channel(c, "ubuntu", "production", versions[0])
    for n in range(54):
        env.advance(minutes=1)
        move(c, "ubuntu", "production", versions[(n + 1) % 3])
    page = admin.get(base(env) + "/buckets/ubuntu/channels/production")
    assert page.status_code == 200
    seen = text(page)
    assert "Channel production" in seen
    assert "Assignments 55" in seen
    timeline = re.findall(r"set to v(\d)", seen)
    assert len(timeline) == 50
    assert timeline[0] == str((54 % 3) + 1)  # the newest move first: versions[54 % 3] is v(n+1)
    after = re.search(r'href="\?after=([^"]+)"', page.text)
    assert after is not None
    rest = text(admin.get(base(env) + "/buckets/ubuntu/channels/production?after=" + after.group(1)))
    assert len(re.findall(r"set to v(\d)", rest)) == 5


def test_channel_page_counts_a_long_history_only_so_far(
    env: Env, admin: Browser, monkeypatch: pytest.MonkeyPatch
) -> None:
    c = env.client
    versions = [publish(c, "ubuntu", f"fp-{n}") for n in range(2)]
    channel(c, "ubuntu", "production", versions[0])
    for n in range(5):
        env.advance(minutes=1)
        move(c, "ubuntu", "production", versions[(n + 1) % 2])
    monkeypatch.setattr(domain_browse, "HISTORY_COUNTED", 4)
    assert "Assignments more than 4" in text(admin.get(base(env) + "/buckets/ubuntu/channels/production"))
    monkeypatch.setattr(domain_browse, "HISTORY_COUNTED", 6)
    assert "Assignments 6" in text(admin.get(base(env) + "/buckets/ubuntu/channels/production"))


def test_restricted_channel_hidden_from_a_viewer(env: Env, admin: Browser) -> None:
    c = env.client
    v = publish(c, "ubuntu", "fp-1")
    channel(c, "ubuntu", "secret-rc", v, restricted=True)
    assert "secret-rc" in admin.get(base(env) + "/buckets/ubuntu").text
    assert admin.get(base(env) + "/buckets/ubuntu/channels/secret-rc").status_code == 200
    viewer = viewer_of(env)
    try:
        for path in ("", "/buckets/ubuntu", f"/buckets/ubuntu/versions/{v['id']}", "/search?q=ubuntu"):
            page = viewer.get(base(env) + path)
            assert page.status_code == 200, path
            assert "secret-rc" not in page.text, path
        refused = viewer.get(base(env) + "/buckets/ubuntu/channels/secret-rc")
        assert refused.status_code == 404  # as the API answers a viewer (lookup.channel), not 403
        assert "channel 'secret-rc' does not exist in bucket 'ubuntu'" in unescape(refused.text)
    finally:
        viewer.close()


def test_a_user_of_one_project_is_refused_another(env: Env) -> None:
    def add(conn: Connection) -> str:
        return tenants.create_project(SqlUnitOfWork(conn), env.init.organization_id, "other", env.clock.now()).id

    other = env.db.run(add, write=True)
    publish(env.client, "ubuntu", "fp-1")
    viewer = viewer_of(env, "scoped@example.com", project_id=env.init.project_id)
    try:
        assert viewer.get(base(env)).status_code == 200
        for path in ("", "/buckets/ubuntu", "/search?q=ubuntu"):
            refused = viewer.get(f"/orgs/{env.init.organization_id}/projects/{other}{path}")
            assert refused.status_code == 403, path
            assert "Not allowed" in refused.text
    finally:
        viewer.close()


def test_unknown_bucket_version_and_channel_are_404_pages(env: Env, admin: Browser) -> None:
    v = publish(env.client, "ubuntu", "fp-1")
    for path in (
        "/buckets/nope",
        "/buckets/not%20a%20slug",
        "/buckets/ubuntu/versions/01HZZZZZZZZZZZZZZZZZZZZZZZ",
        "/buckets/ubuntu/versions/not-an-id",
        f"/buckets/nope/versions/{v['id']}",
        "/buckets/ubuntu/channels/nope",
    ):
        page = admin.get(base(env) + path)
        assert page.status_code == 404, path
        assert "<h1>Not found</h1>" in page.text, path
        assert 'href="/static/console.css"' in page.text


def test_ancestry_graph_turns_out_of_date_when_the_parents_channel_moves(env: Env, admin: Browser) -> None:
    c = env.client
    base_v1 = publish(c, "base", "b-1")
    production = channel(c, "base", "production", base_v1)
    child = publish(c, "app", "a-1", parent=(base_v1["id"], production))
    page = admin.get(base(env) + "/buckets/app")
    svg = page.text[page.text.index("<svg") : page.text.index("</svg>")]
    assert ">UP_TO_DATE</text>" in svg
    assert f'href="{base(env)}/buckets/base/versions/{base_v1["id"]}"' in svg  # the parent node links
    assert "v1 via production" in svg
    parents_page = admin.get(base(env) + "/buckets/base")
    assert f'href="{base(env)}/buckets/app/versions/{child["id"]}"' in parents_page.text  # the child, from base
    assert ">UP_TO_DATE</text>" in parents_page.text

    base_v2 = publish(c, "base", "b-2")
    move(c, "base", "production", base_v2)
    moved = admin.get(base(env) + "/buckets/app")
    svg = moved.text[moved.text.index("<svg") : moved.text.index("</svg>")]
    assert ">OUT_OF_DATE</text>" in svg
    assert "UP_TO_DATE<" not in svg
    table = text(moved)
    assert "built from base v1 app v1 production (now v2) OUT_OF_DATE" in table
    version = text(admin.get(base(env) + f"/buckets/app/versions/{child['id']}"))
    assert "base v1 production (now v2) OUT_OF_DATE" in version


def test_user_supplied_labels_are_escaped(env: Env, admin: Browser) -> None:
    c = env.client
    script = "<script>alert(1)</script>"
    ok(c.put(c.p23("/buckets"), json={"name": "xss", "description": script, "labels": {"note": script}}))
    v = publish(c, "xss", "fp-1", labels={"note": script})
    for path in ("", "/buckets/xss", f"/buckets/xss/versions/{v['id']}", "/search?q=xss"):
        page = admin.get(base(env) + path)
        assert page.status_code == 200, path
        assert "<script>" not in page.text, path
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text, path


def test_pages_need_a_session(env: Env) -> None:
    v = publish(env.client, "ubuntu", "fp-1")
    anonymous = Browser(env)
    try:
        for path in ("/buckets/ubuntu", f"/buckets/ubuntu/versions/{v['id']}", "/buckets/ubuntu/channels/latest"):
            page = anonymous.get(base(env) + path)
            assert page.status_code == 303, path
            assert page.headers["location"].startswith("/sign-in?next=")
        token = {"Authorization": f"Bearer {env.client.token}"}
        assert anonymous.get(base(env) + "/buckets/ubuntu", headers=token).status_code == 303
    finally:
        anonymous.close()


def test_the_graph_draws_twelve_a_side_and_counts_the_rest() -> None:
    now = START

    def version(bucket: str, n: int) -> Iteration:
        return Iteration(f"id-{bucket}-{n}", "b", bucket, "p", f"fp{n}", now, now, incremental_version=n, complete=True)

    middle = version("app", 7)
    statuses = (AncestryStatus.UP_TO_DATE, AncestryStatus.OUT_OF_DATE)
    parents = [Relation("parent", statuses[n % 2], version(f"base{n}", 1), middle, None, None) for n in range(15)]
    drawn = graph.layout("app", middle, parents, [], lambda it: f"/v/{it.id}", "/b/app")
    assert len(drawn.nodes) == 13
    assert drawn.hidden == 3
    assert [e.status for e in drawn.edges[:2]] == ["UP_TO_DATE", "OUT_OF_DATE"]
    assert drawn.nodes[0].href == "/v/id-app-7"
    assert drawn.nodes[0].subtitle == "v7 (latest)"
    assert all(n.y >= 0 and n.y + graph.NODE_H <= drawn.height for n in drawn.nodes)
    assert len({n.y for n in drawn.nodes[1:]}) == 12  # one row each, none drawn over another
