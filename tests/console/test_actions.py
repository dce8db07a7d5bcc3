"""The console's write actions: each confirmation page says what the action will affect (read with the
domain), each post does it through the domain's services for a user who may write, and the result is
the same object the API serves. Viewers, missing form tokens and users of another project are refused
with nothing changed; bad input gets the form again with a 4xx and changes nothing."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy.engine import Connection

from packyard.auth import accounts
from packyard.console.web import Console
from packyard.domain import buckets, steps
from packyard.domain.commands import BucketName, ChannelName, IterationQuery
from packyard.domain.context import Ctx
from packyard.domain.models import Organization, Project, Role, UserSession
from packyard.storage.unit_of_work import SqlUnitOfWork
from tests.api.hcp_2023.test_publish import publish_2023
from tests.conftest import START, Env
from tests.console.support import PASSWORD, Browser, make_user
from tests.support.client import error, ok

CONTRIBUTOR = "carol@example.com"
VIEWER = "vic@example.com"


@pytest.fixture
def browser(env: Env) -> Iterator[Browser]:
    b = Browser(env)
    yield b
    b.close()


def sign_in(env: Env, browser: Browser, email: str, role: Role, project_id: str | None = None) -> None:
    make_user(env, email, role, project_id)
    assert browser.sign_in(email).status_code == 303


def project(env: Env) -> str:
    return f"/orgs/{env.init.organization_id}/projects/{env.init.project_id}"


def version_path(env: Env, bucket: str, version_id: str) -> str:
    return f"{project(env)}/buckets/{bucket}/versions/{version_id}"


def channel_path(env: Env, bucket: str, channel: str) -> str:
    return f"{project(env)}/buckets/{bucket}/channels/{channel}"


def child_of(env: Env, bucket: str, fingerprint: str, parent_id: str) -> dict[str, Any]:
    """A complete version whose build's source is `parent_id` (a descendant, as Packer reports one)."""
    c = env.client
    ok(c.put(c.p23("/buckets"), json={"name": bucket}))
    ok(c.post(c.p23(f"/buckets/{bucket}/versions"), json={"fingerprint": fingerprint}))
    base = f"/buckets/{bucket}/versions/{fingerprint}/builds"
    build = ok(c.post(c.p23(base), json={"component_type": "amazon-ebs.a", "status": "BUILD_RUNNING"}))["build"]
    done = {
        "status": "BUILD_DONE",
        "platform": "aws",
        "artifacts": [{"external_identifier": f"ami-{fingerprint}", "region": "us-east-1"}],
        "parent_version_id": parent_id,
    }
    ok(c.patch(c.p23(f"{base}/{build['id']}"), json=done))
    return dict(ok(c.get(c.p23(f"/buckets/{bucket}/versions/{fingerprint}")))["version"])


def api_version(env: Env, bucket: str, fingerprint: str) -> dict[str, Any]:
    return dict(ok(env.client.get(env.client.p23(f"/buckets/{bucket}/versions/{fingerprint}")))["version"])


def api_channel(env: Env, bucket: str, name: str) -> dict[str, Any]:
    return dict(ok(env.client.get(env.client.p23(f"/buckets/{bucket}/channels/{name}")))["channel"])


def section(page: str, label: str) -> str:
    """The list or table of a confirmation page named by its aria-label."""
    found = re.search(rf'aria-label="{re.escape(label)}">(.*?)</(ul|table)>', page, re.S)
    assert found, f"no {label!r} on the page"
    return found.group(1)


def revocation_setup(env: Env) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """base v1 and v2, `prod` moved from v1 to v2, and app v1 built on base v2 (then its grandchild)."""
    c = env.client
    v1 = publish_2023(c, "base", "f1")
    v2 = publish_2023(c, "base", "f2")
    ok(c.post(c.p23("/buckets/base/channels"), json={"name": "prod", "version_fingerprint": "f1"}))
    move = {"update_mask": "versionFingerprint", "version_fingerprint": "f2"}
    ok(c.patch(c.p23("/buckets/base/channels/prod"), json=move))
    child = child_of(env, "app", "c1", v2["id"])
    ok(c.post(c.p23("/buckets/app/channels"), json={"name": "stable", "version_fingerprint": "c1"}))
    child_of(env, "svc", "g1", child["id"])
    return v1, v2, child


# ---- versions


def test_a_revocation_now_lists_what_it_takes_down_and_reads_revoked_through_the_api(
    env: Env, browser: Browser
) -> None:
    v1, v2, child = revocation_setup(env)
    sign_in(env, browser, CONTRIBUTOR, Role.CONTRIBUTOR)
    url = version_path(env, "base", v2["id"]) + "/revoke"
    page = browser.get(url)
    assert page.status_code == 200
    assert "base v2" in page.text
    assert v2["fingerprint"] in page.text
    inheritors = section(page.text, "Versions that inherit the revocation")
    assert "app v1" in inheritors
    assert "svc v1" in inheritors
    assert "base v1" not in inheritors
    moves = section(page.text, "Channels that roll back")
    rows = re.findall(r"<tr>(.*?)</tr>", moves.split("<tbody>")[1], re.S)
    assert len(rows) == 2  # prod goes back to v1; stable (on the child) has nowhere to go
    prod = next(r for r in rows if ">prod<" in r)
    assert "base v2" in prod
    assert f"/versions/{v1['id']}" in prod
    stable = next(r for r in rows if ">stable<" in r)
    assert "unassigned" in stable
    assert 'name="when" value="now"' in page.text
    assert "UTC unless you change it" in page.text

    done = browser.submit(url, url, {"when": "now", "message": "CVE-2024-1"})
    assert done.status_code == 303
    assert done.headers["location"] == version_path(env, "base", v2["id"]) + "?done=revoked"
    version = api_version(env, "base", "f2")
    assert version["id"] == v2["id"]
    assert version["status"] == "VERSION_REVOKED"
    assert version["revoke_at"] == START.strftime("%Y-%m-%dT%H:%M:%S.000Z")
    assert version["revocation_author"] == CONTRIBUTOR
    assert version["revocation_message"] == "CVE-2024-1"
    inherited = api_version(env, "app", "c1")
    assert inherited["status"] == "VERSION_REVOKED"
    assert inherited["revocation_inherited_from"]["version_id"] == v2["id"]
    assert api_channel(env, "base", "prod")["version"]["id"] == v1["id"]
    assert "version" not in api_channel(env, "app", "stable")
    assert child["id"] == inherited["id"]
    # Revoked now: its page offers restore, and revoking again is refused.
    again = browser.get(url)
    assert again.status_code == 400
    assert "restore it before revoking it again" in again.text


def test_a_scheduled_revocation_in_the_users_zone_shows_and_is_cancelled_then_falls_due_and_is_restored(
    env: Env, browser: Browser
) -> None:
    c = env.client
    publish_2023(c, "base", "f1")
    v2 = publish_2023(c, "base", "f2")
    child_of(env, "app", "c1", v2["id"])
    sign_in(env, browser, CONTRIBUTOR, Role.CONTRIBUTOR)
    base = version_path(env, "base", v2["id"])
    # 16:00 in Berlin on 1 May 2024 (CEST, UTC+2) is 14:00 UTC, two hours after the test clock's start.
    fields = {"when": "at", "at": "2024-05-01T16:00", "zone": "Europe/Berlin", "message": "end of life"}
    done = browser.submit(base + "/revoke", base + "/revoke", fields)
    assert done.status_code == 303
    assert done.headers["location"].endswith("?done=revocation-scheduled")
    version = api_version(env, "base", "f2")
    assert version["status"] == "VERSION_REVOCATION_SCHEDULED"
    assert version["revoke_at"] == "2024-05-01T14:00:00.000Z"
    assert version["revocation_author"] == CONTRIBUTOR
    assert api_version(env, "app", "c1")["revoke_at"] == "2024-05-01T14:00:00.000Z"

    cancel = browser.get(base + "/cancel-revocation")
    assert cancel.status_code == 200
    assert "2024-05-01 14:00 UTC" in cancel.text
    assert "Scheduled revocation" in cancel.text  # the badge
    assert "app v1" in section(cancel.text, "Versions whose inherited revocation is cancelled")
    assert browser.get(base + "/restore").status_code == 400  # not revoked yet: nothing to restore
    cancelled = browser.submit(base + "/cancel-revocation", base + "/cancel-revocation", {})
    assert cancelled.status_code == 303
    assert cancelled.headers["location"] == base + "?done=revocation-cancelled"
    version = api_version(env, "base", "f2")
    assert version["status"] == "VERSION_ACTIVE"
    assert "revoke_at" not in version
    assert api_version(env, "app", "c1")["status"] == "VERSION_ACTIVE"
    assert browser.get(base + "/cancel-revocation").status_code == 400  # nothing scheduled now

    # Scheduled again in UTC (the default zone), then the clock passes it.
    utc = {"when": "at", "at": "2024-05-01T13:30", "message": "again"}
    assert browser.submit(base + "/revoke", base + "/revoke", utc).status_code == 303
    assert api_version(env, "base", "f2")["revoke_at"] == "2024-05-01T13:30:00.000Z"
    env.advance(hours=2)
    assert api_version(env, "base", "f2")["status"] == "VERSION_REVOKED"
    restore = browser.get(base + "/restore")
    assert restore.status_code == 200
    assert "Revoked" in restore.text
    assert "app v1" in section(restore.text, "Versions restored with it")
    restored = browser.submit(base + "/restore", base + "/restore", {})
    assert restored.status_code == 303
    assert restored.headers["location"] == base + "?done=restored"
    assert api_version(env, "base", "f2")["status"] == "VERSION_ACTIVE"
    assert api_version(env, "app", "c1")["status"] == "VERSION_ACTIVE"


def test_bad_revocation_input_gets_the_form_again_and_changes_nothing(env: Env, browser: Browser) -> None:
    v1 = publish_2023(env.client, "base", "f1")
    sign_in(env, browser, CONTRIBUTOR, Role.CONTRIBUTOR)
    url = version_path(env, "base", v1["id"]) + "/revoke"
    cases = [
        ({"when": "at", "at": "2024-05-01T11:59", "zone": "UTC"}, "2024-05-01 11:59 UTC has passed"),
        ({"when": "at", "at": "2024-05-01T13:00", "zone": "Mars/Olympus"}, "is not a time zone"),
        ({"when": "at", "at": "2024-05-01T13:00", "zone": "../../etc/passwd"}, "is not a time zone"),
        ({"when": "at", "at": "tomorrow"}, "is not a date and time"),
        ({"when": "at", "at": ""}, "choose the date and time"),
        ({"when": "at", "at": "9999-12-31T23:59", "zone": "Pacific/Kiritimati"}, "more than a hundred years"),
        ({"when": "now", "message": "x" * 5000}, "revocation_message"),
    ]
    for fields, message in cases:
        answer = browser.submit(url, url, fields)
        assert answer.status_code == 400, (fields, answer.text)
        assert message in answer.text, (fields, answer.text)
        assert 'role="alert"' in answer.text
        assert f'value="{fields.get("at", "")}"' in answer.text, "the form keeps what was typed"
    assert api_version(env, "base", "f1")["status"] == "VERSION_ACTIVE"
    # An unknown version, or a bucket it isn't in: 404, on the confirmation and on the post.
    for bad in (version_path(env, "base", "01J00000000000000000000000"), version_path(env, "nope", v1["id"])):
        assert browser.get(bad + "/revoke").status_code == 404
        assert browser.submit(url, bad + "/revoke", {"when": "now"}).status_code == 404
    assert browser.get(version_path(env, "base", "not-an-id") + "/revoke").status_code in (400, 404)
    assert api_version(env, "base", "f1")["status"] == "VERSION_ACTIVE"


# ---- channels


def test_channel_actions_are_the_apis_channel_changes(env: Env, browser: Browser) -> None:
    c = env.client
    v1 = publish_2023(c, "base", "f1")
    v2 = publish_2023(c, "base", "f2")
    sign_in(env, browser, CONTRIBUTOR, Role.CONTRIBUTOR)
    new = f"{project(env)}/buckets/base/channels/new"
    form = browser.get(new)
    assert form.status_code == 200
    assert f'<option value="{v2["id"]}"' in form.text
    assert f'<option value="{v1["id"]}"' in form.text
    created = browser.submit(new, new, {"name": "prod", "number": "1", "restricted": "yes"})
    assert created.status_code == 303
    assert created.headers["location"] == channel_path(env, "base", "prod") + "?done=channel-created"
    channel = api_channel(env, "base", "prod")
    assert channel["version"]["id"] == v1["id"]
    assert channel["restricted"] is True
    assert channel["author_id"] == CONTRIBUTOR

    prod = channel_path(env, "base", "prod")
    assign = browser.get(prod + "/assign")
    assert assign.status_code == 200
    assert "Restricted" in assign.text
    assigned = browser.submit(prod + "/assign", prod + "/assign", {"version": v2["id"]})
    assert assigned.status_code == 303
    assert assigned.headers["location"] == prod + "?done=assigned"
    assert api_channel(env, "base", "prod")["version"]["id"] == v2["id"]

    rollback = browser.get(prod + "/rollback")
    assert rollback.status_code == 200
    assert f'name="to" value="{v1["id"]}"' in rollback.text
    assert "base v1" in rollback.text
    rolled = browser.submit(prod + "/rollback", prod + "/rollback", {"to": v1["id"]})
    assert rolled.status_code == 303
    assert rolled.headers["location"] == prod + "?done=rolled-back"
    assert api_channel(env, "base", "prod")["version"]["id"] == v1["id"]
    history = ok(c.get(c.p23("/buckets/base/channels/prod/history")))
    assert [h["version"]["id"] for h in history["history"]] == [v1["id"], v2["id"], v1["id"]]

    # A rollback confirmed against where the channel went before it moved again is refused.
    stale = browser.get(prod + "/rollback")
    target = re.findall(r'name="to" value="([^"]+)"', stale.text)
    assert target == [v2["id"]]
    move = {"update_mask": "versionFingerprint", "version_fingerprint": "f2"}
    ok(c.patch(c.p23("/buckets/base/channels/prod"), json=move))  # now it would go back to v1
    refused = browser.post(prod + "/rollback", {**browser.tokens(stale), "to": target[0]})
    assert refused.status_code == 409
    assert "changed since this page was shown" in refused.text
    assert api_channel(env, "base", "prod")["version"]["id"] == v2["id"]

    assert browser.submit(prod + "/unrestrict", prod + "/unrestrict", {}).headers["location"] == (
        prod + "?done=unrestricted"
    )
    assert "restricted" not in api_channel(env, "base", "prod")
    assert browser.submit(prod + "/restrict", prod + "/restrict", {}).status_code == 303
    assert api_channel(env, "base", "prod")["restricted"] is True

    delete = browser.get(prod + "/delete")
    assert delete.status_code == 200
    assert "4 assignments" in delete.text
    deleted = browser.submit(prod + "/delete", prod + "/delete", {})
    assert deleted.status_code == 303
    assert deleted.headers["location"] == f"{project(env)}/buckets/base?done=channel-deleted"
    error(c.get(c.p23("/buckets/base/channels/prod")), 5, 404)


def test_bad_channel_input_is_refused_with_a_clear_message_and_changes_nothing(env: Env, browser: Browser) -> None:
    c = env.client
    publish_2023(c, "base", "f1")
    ok(c.post(c.p23("/buckets/base/versions"), json={"fingerprint": "open"}))
    ok(c.post(c.p23("/buckets/base/channels"), json={"name": "prod", "version_fingerprint": "f1"}))
    sign_in(env, browser, CONTRIBUTOR, Role.CONTRIBUTOR)
    new = f"{project(env)}/buckets/base/channels/new"
    for fields, status, message in [
        ({"name": "Bad Name!"}, 400, "channel slug"),
        ({"name": "prod"}, 409, "already has a channel"),
        ({"name": "latest"}, 409, "managed by packyard"),
        ({"name": "qa", "number": "7"}, 404, "has no version with version number 7"),
        ({"name": "qa", "number": "seven"}, 400, "is not a version number"),
        ({"name": "qa", "number": "99999999999999999999"}, 400, "is not a version number"),
    ]:
        answer = browser.submit(new, new, fields)
        assert answer.status_code == status, (fields, answer.text)
        assert message in answer.text, (fields, re.findall(r'role="alert">(.*?)<', answer.text))
    listed = ok(c.get(c.p23("/buckets/base/channels")))["channels"]
    assert sorted(ch["name"] for ch in listed) == ["latest", "prod"]

    prod = channel_path(env, "base", "prod")
    open_id = api_version(env, "base", "open")["id"]
    for fields, status, message in [
        ({"number": "7"}, 404, "has no version with version number 7"),
        ({"version": open_id}, 400, "is not complete"),
        ({}, 400, "choose a version"),
    ]:
        answer = browser.submit(prod + "/assign", prod + "/assign", fields)
        assert answer.status_code == status, (fields, answer.text)
        assert message in answer.text
    assert api_channel(env, "base", "prod")["version"]["fingerprint"] == "f1"
    # The managed `latest` follows its bucket: no assign, rollback or delete; an unknown channel is 404.
    latest = channel_path(env, "base", "latest")
    for verb in ("assign", "rollback", "delete"):
        assert browser.get(f"{latest}/{verb}").status_code == 400
        assert browser.submit(f"{latest}/restrict", f"{latest}/{verb}", {"number": "1"}).status_code == 400
    assert browser.get(channel_path(env, "base", "nope") + "/assign").status_code == 404
    # Nothing earlier to roll back to: the page says so and offers no button.
    rollback = browser.get(prod + "/rollback")
    assert rollback.status_code == 200
    assert "nothing to roll back to" in rollback.text
    assert "<button" not in rollback.text.split("Sign out")[1]
    assert browser.submit(prod + "/restrict", prod + "/rollback", {}).status_code == 400
    assert api_channel(env, "base", "latest")["version"]["fingerprint"] == "f1"


# ---- buckets


def test_buckets_are_created_and_deleted_with_what_goes_with_them(env: Env, browser: Browser) -> None:
    c = env.client
    publish_2023(c, "base", "f1")
    publish_2023(c, "base", "f2")
    ok(c.post(c.p23("/buckets/base/channels"), json={"name": "prod", "version_fingerprint": "f1"}))
    sign_in(env, browser, CONTRIBUTOR, Role.CONTRIBUTOR)
    new = f"{project(env)}/buckets/new"
    created = browser.submit(new, new, {"name": "fresh", "description": "made by hand"})
    assert created.status_code == 303
    assert created.headers["location"] == f"{project(env)}/buckets/fresh?done=bucket-created"
    bucket = ok(c.get(c.p23("/buckets/fresh")))["bucket"]
    assert bucket["description"] == "made by hand"
    again = browser.submit(new, new, {"name": "fresh"})
    assert again.status_code == 409
    assert "already exists" in again.text
    bad = browser.submit(new, new, {"name": "no spaces please"})
    assert bad.status_code == 400
    assert 'value="no spaces please"' in bad.text

    delete = f"{project(env)}/buckets/base/delete"
    page = browser.get(delete)
    assert page.status_code == 200
    assert "<strong>2 versions</strong>" in page.text
    assert "<strong>2 channels</strong>" in page.text
    assert "prod → v1" in section(page.text, "Channels deleted with the bucket")
    deleted = browser.submit(delete, delete, {})
    assert deleted.status_code == 303
    assert deleted.headers["location"] == f"{project(env)}?done=bucket-deleted"
    error(c.get(c.p23("/buckets/base")), 5, 404)
    # The bucket list shows the notice the redirect names, and only that fixed text.
    listing = browser.get(deleted.headers["location"])
    assert 'role="status">The bucket is deleted, with its versions and channels.</p>' in listing.text
    assert 'role="status"' not in browser.get(f"{project(env)}?done=<b>owned</b>").text
    assert browser.get(delete).status_code == 404


# ---- who may


def everything(env: Env, version_id: str) -> list[tuple[str, dict[str, str]]]:
    """Every action's URL with fields that would succeed for a contributor."""
    prod = channel_path(env, "base", "prod")
    v = version_path(env, "base", version_id)
    return [
        (v + "/revoke", {"when": "now"}),
        (prod + "/assign", {"number": "1"}),
        (prod + "/restrict", {}),
        (prod + "/delete", {}),
        (f"{project(env)}/buckets/base/channels/new", {"name": "qa"}),
        (f"{project(env)}/buckets/new", {"name": "other"}),
        (f"{project(env)}/buckets/base/delete", {}),
    ]


def snapshot(env: Env) -> Any:
    c = env.client
    return (
        ok(c.get(c.p23("/buckets")))["buckets"],
        ok(c.get(c.p23("/buckets/base/versions")))["versions"],
        ok(c.get(c.p23("/buckets/base/channels")))["channels"],
    )


def test_a_viewer_sees_no_write_control_and_is_refused_when_posting_anyway(env: Env, browser: Browser) -> None:
    c = env.client
    v1 = publish_2023(c, "base", "f1")
    publish_2023(c, "base", "f2")
    ok(c.post(c.p23("/buckets/base/channels"), json={"name": "prod", "version_fingerprint": "f2"}))
    before = snapshot(env)
    sign_in(env, browser, VIEWER, Role.VIEWER)
    token = session_of(env, browser).csrf_token  # the viewer's own, valid form token
    for url, fields in everything(env, v1["id"]):
        shown = browser.get(url)
        assert shown.status_code == 403, url
        assert "does not allow this" in shown.text
        assert re.findall(r'<form[^>]*action="([^"]+)"', shown.text) == ["/sign-out"], "no form but signing out"
        assert VIEWER in shown.text, "the refusal still shows who is signed in"
        posted = browser.post(url, {"csrf_token": token, **fields})
        assert posted.status_code == 403, url
    assert snapshot(env) == before


def test_a_missing_or_wrong_form_token_is_refused_and_changes_nothing(env: Env, browser: Browser) -> None:
    c = env.client
    v1 = publish_2023(c, "base", "f1")
    publish_2023(c, "base", "f2")
    ok(c.post(c.p23("/buckets/base/channels"), json={"name": "prod", "version_fingerprint": "f2"}))
    before = snapshot(env)
    sign_in(env, browser, CONTRIBUTOR, Role.CONTRIBUTOR)
    for url, fields in everything(env, v1["id"]):
        assert browser.get(url).status_code == 200, url
        for token in ({}, {"csrf_token": ""}, {"csrf_token": "x" * 43}):
            refused = browser.post(url, {**token, **fields})
            assert refused.status_code == 403, (url, token)
            assert "token is missing or wrong" in refused.text
    assert snapshot(env) == before
    # Signed out, a post is sent to sign in.
    assert browser.post("/sign-out", browser.tokens(browser.get(project(env)))).status_code == 303
    gone = browser.post(everything(env, v1["id"])[0][0], {"when": "now"})
    assert gone.status_code == 303
    assert gone.headers["location"].startswith("/sign-in")
    assert snapshot(env) == before


@pytest.mark.parametrize("where", ["another project", "another organization"])
def test_a_user_of_another_project_or_organization_is_refused(env: Env, browser: Browser, where: str) -> None:
    c = env.client
    v1 = publish_2023(c, "base", "f1")
    publish_2023(c, "base", "f2")
    ok(c.post(c.p23("/buckets/base/channels"), json={"name": "prod", "version_fingerprint": "f2"}))
    now = env.clock.now()
    other = Organization(str(uuid.uuid4()), "other", now) if where == "another organization" else None
    org_id = other.id if other else env.init.organization_id
    second = Project(str(uuid.uuid4()), org_id, "second", now)

    def add(conn: Connection) -> str:
        uow = SqlUnitOfWork(conn)
        if other:
            uow.tenants.add_organization(other)
        uow.tenants.add_project(second)
        scope = None if other else second.id  # an organization-wide admin of the other organization
        new = accounts.create_user(
            uow, email="eve@example.com", role=Role.ADMIN, organization_id=org_id, project_id=scope, now=now
        )
        return new.link_secret

    link = f"/set-password/{env.db.run(add, write=True)}"
    assert browser.submit(link, link, {"password": PASSWORD, "confirm": PASSWORD}).status_code == 303
    assert browser.sign_in("eve@example.com").status_code == 303
    before = snapshot(env)
    token = session_of(env, browser).csrf_token
    for url, fields in everything(env, v1["id"]):
        assert browser.get(url).status_code == 403, url
        assert browser.post(url, {"csrf_token": token, **fields}).status_code == 403, url
    assert snapshot(env) == before


# ---- the hook partials the read pages include


def render_partials(env: Env, session: UserSession) -> dict[str, str]:
    """Each hook partial rendered as the read pages do, with the domain's own objects."""
    console = Console(env.app.services)
    org, project_id = env.init.organization_id, env.init.project_id

    def objects(conn: Connection) -> dict[str, Any]:
        ctx = Ctx(SqlUnitOfWork(conn), env.app.services.rules, env.clock.now(), org, project_id, session.user.actor())
        return {
            "bucket": buckets.require(ctx, "base"),
            "version": steps.get_iteration(ctx, IterationQuery("base", fingerprint="f2")),
            "channel": steps.get_channel(ctx, ChannelName("base", "prod")),
            "latest": steps.get_channel(ctx, ChannelName("base", "latest")),
            "bucket_view": steps.get_bucket(ctx, BucketName("base")),
        }

    found = env.db.run(objects, write=False)
    values = {"session": session, "org_id": org, "project_id": project_id, **found}
    out = {}
    for name in ("bucket_list", "bucket", "version", "channel"):
        out[name] = console.jinja.get_template(f"_actions_{name}.html").render(values)
    out["latest"] = console.jinja.get_template("_actions_channel.html").render({**values, "channel": found["latest"]})
    out["bucket_view"] = console.jinja.get_template("_actions_bucket.html").render(
        {**values, "bucket": found["bucket_view"]}
    )
    return out


def session_of(env: Env, browser: Browser) -> UserSession:
    def read(conn: Connection) -> UserSession:
        cookie = browser.http.cookies["packyard_session"]
        found = accounts.session_for(SqlUnitOfWork(conn), cookie, env.clock.now())
        assert found is not None
        return found

    return env.db.run(read, write=False)


def links(html: str) -> dict[str, str]:
    return {text: href for href, text in re.findall(r'<a class="button[^"]*" href="([^"]+)">([^<]+)</a>', html)}


def test_the_hook_partials_link_each_control_to_its_confirmation(env: Env, browser: Browser) -> None:
    c = env.client
    publish_2023(c, "base", "f1")
    v2 = publish_2023(c, "base", "f2")
    ok(c.post(c.p23("/buckets/base/channels"), json={"name": "prod", "version_fingerprint": "f1"}))
    move = {"update_mask": "versionFingerprint", "version_fingerprint": "f2"}
    ok(c.patch(c.p23("/buckets/base/channels/prod"), json=move))  # so it has somewhere to roll back to
    sign_in(env, browser, CONTRIBUTOR, Role.CONTRIBUTOR)
    rendered = render_partials(env, session_of(env, browser))
    assert set(links(rendered["bucket_list"])) == {"Create bucket"}
    assert set(links(rendered["bucket"])) == {"Create channel", "Delete bucket"}
    assert set(links(rendered["version"])) == {"Revoke"}
    assert set(links(rendered["channel"])) == {"Assign", "Roll back", "Restrict", "Delete channel"}
    assert set(links(rendered["latest"])) == {"Restrict"}, "latest only changes its restriction"
    assert links(rendered["bucket_view"]) == links(rendered["bucket"]), "a BucketView links the same"
    buttons = {
        "Create bucket": "Create bucket",
        "Create channel": "Create channel",
        "Delete bucket": "Delete bucket",
        "Revoke": "Revoke",
        "Assign": "Assign",
        "Roll back": "Roll back",
        "Restrict": "Restrict",
        "Delete channel": "Delete channel",
    }
    for name in ("bucket_list", "bucket", "version", "channel"):
        for text, href in links(rendered[name]).items():
            page = browser.get(href)
            assert page.status_code == 200, (text, href, page.text)
            assert f">{buttons[text]}</button>" in page.text, (text, href)
            actions = re.findall(r'<form method="post" action="([^"]+)"', page.text)
            assert actions == ["/sign-out", href], "the confirmation posts to its own URL"
            assert page.text.count("<h1>") == 1
            for control in re.findall(r'<(?:input|select|textarea)[^>]*\bid="([^"]+)"', page.text):
                assert f'<label for="{control}">' in page.text, (href, control)

    # The state decides the version's controls: scheduled → cancel (or revoke again); revoked → restore.
    version = version_path(env, "base", v2["id"])
    browser.submit(version + "/revoke", version + "/revoke", {"when": "at", "at": "2024-05-01T13:00"})
    scheduled = links(render_partials(env, session_of(env, browser))["version"])
    assert set(scheduled) == {"Cancel scheduled revocation", "Revoke"}
    env.advance(hours=2)
    restore = links(render_partials(env, session_of(env, browser))["version"])
    assert set(restore) == {"Restore"}
    assert ">Restore</button>" in browser.get(restore["Restore"]).text
    ok(c.patch(c.p23("/buckets/base/channels/prod"), json={"update_mask": "restricted", "restricted": True}))
    assert set(links(render_partials(env, session_of(env, browser))["channel"])) == {
        "Assign",
        "Roll back",
        "Unrestrict",
        "Delete channel",
    }


def test_the_hook_partials_render_nothing_for_a_viewer(env: Env, browser: Browser) -> None:
    c = env.client
    publish_2023(c, "base", "f1")
    publish_2023(c, "base", "f2")
    ok(c.post(c.p23("/buckets/base/channels"), json={"name": "prod", "version_fingerprint": "f1"}))
    sign_in(env, browser, VIEWER, Role.VIEWER)
    rendered = render_partials(env, session_of(env, browser))
    assert set(rendered) == {"bucket_list", "bucket", "version", "channel", "latest", "bucket_view"}
    for name, html in rendered.items():
        assert html.strip() == "", name
