"""Writing in a real browser, each action behind its confirmation page: a revocation scheduled for a time
that comes due (the server's clock moves), restored; a scheduled revocation cancelled; a version promoted to
`production` through the channel page; every other action done once; a viewer who sees no write control
and whose post of the form is refused; a forged form token refused. Every confirmation page passes
axe-core, and what each action did is read back through the API."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path
from typing import Any

from playwright.sync_api import Page, expect

from tests.browser.conftest import NewContext
from tests.browser.seed import APP, BASE, DB, publish
from tests.browser.support import (
    ADMIN,
    CONTRIBUTOR,
    VIEWER,
    WAIT_MS,
    Served,
    check_accessibility,
    screenshot,
    sign_in,
)
from tests.support.client import ok

V1 = "ubuntu-2404-20240501"
V2 = "ubuntu-2404-20240508"
APP_V1 = "web-app-1f3c9e2"


def api_version(served: Served, bucket: str, fingerprint: str) -> dict[str, Any]:
    c = served.api
    return dict(ok(c.get(c.p23(f"/buckets/{bucket}/versions/{fingerprint}")))["version"])


def api_channel(served: Served, bucket: str, name: str) -> dict[str, Any]:
    c = served.api
    return dict(ok(c.get(c.p23(f"/buckets/{bucket}/channels/{name}")))["channel"])


def h1(page: Page) -> Any:
    return expect(page.get_by_role("heading", level=1))


def notice(page: Page, text: str) -> None:
    expect(page.get_by_role("status")).to_have_text(text, timeout=WAIT_MS)


def test_a_revocation_scheduled_for_a_time_comes_due_and_is_restored(
    served: Served, new_context: NewContext, screenshot_dir: Path
) -> None:
    page = new_context().new_page()
    sign_in(page, served, CONTRIBUTOR)
    page.goto(served.url + served.version(BASE, V1), timeout=WAIT_MS)
    page.get_by_role("navigation", name="Version actions").get_by_role("link", name="Revoke").click(timeout=WAIT_MS)
    expect(page).to_have_url(served.url + served.version(BASE, V1) + "/revoke", timeout=WAIT_MS)
    h1(page).to_have_text(f"Revoke {BASE} v1", timeout=WAIT_MS)
    # What it will take down: web-app v1 was built on it and inherits the revocation; the channels on
    # either roll back.
    expect(page.get_by_role("list", name="Versions that inherit the revocation")).to_contain_text(
        f"{APP} v1", timeout=WAIT_MS
    )
    moves = page.get_by_role("table", name="Channels that roll back")
    expect(moves.get_by_role("row").filter(has_text=BASE)).to_contain_text("production", timeout=WAIT_MS)
    check_accessibility(page, "the revoke confirmation")
    screenshot(page, "revoke", screenshot_dir)

    due = served.clock.now() + timedelta(hours=1)
    page.get_by_role("radio", name="At the time below").check(timeout=WAIT_MS)
    page.get_by_label(re.compile("^Date and time")).fill(due.strftime("%Y-%m-%dT%H:%M"), timeout=WAIT_MS)
    page.get_by_label(re.compile("^Message")).fill("CVE-2024-6387 in openssh-server", timeout=WAIT_MS)
    page.get_by_role("button", name="Revoke").click(timeout=WAIT_MS)
    expect(page).to_have_url(re.compile(re.escape(served.version(BASE, V1)) + r"\?done="), timeout=WAIT_MS)
    notice(page, "The revocation is scheduled.")
    h1(page).to_contain_text("Scheduled revocation", timeout=WAIT_MS)
    revocation = page.get_by_role("region", name="Revocation")
    expect(revocation).to_contain_text("CVE-2024-6387 in openssh-server", timeout=WAIT_MS)
    expect(revocation).to_contain_text(due.strftime("%Y-%m-%d %H:%M"), timeout=WAIT_MS)
    assert api_version(served, BASE, V1)["revoke_at"].startswith(due.strftime("%Y-%m-%dT%H:%M"))
    check_accessibility(page, "a version with a scheduled revocation")
    # The bucket's list says so too, and the version still serves until then.
    page.goto(served.url + served.bucket(BASE), timeout=WAIT_MS)
    row = page.get_by_role("region", name="Versions").get_by_role("row").filter(has_text=V1)
    expect(row).to_contain_text("Scheduled revocation", timeout=WAIT_MS)
    assert api_channel(served, BASE, "production")["version"]["fingerprint"] == V1

    served.advance(hours=2)  # the time passes: revoked at read time, no sleeping
    page.goto(served.url + served.version(BASE, V1), timeout=WAIT_MS)
    h1(page).to_contain_text("Revoked", timeout=WAIT_MS)
    page.goto(served.url + served.version(APP, APP_V1), timeout=WAIT_MS)
    h1(page).to_contain_text("Revoked", timeout=WAIT_MS)  # inherited
    assert api_version(served, BASE, V1)["status"] == "VERSION_REVOKED"

    page.goto(served.url + served.version(BASE, V1), timeout=WAIT_MS)
    page.get_by_role("navigation", name="Version actions").get_by_role("link", name="Restore").click(timeout=WAIT_MS)
    h1(page).to_have_text(f"Restore {BASE} v1", timeout=WAIT_MS)
    expect(page.get_by_role("list", name="Versions restored with it")).to_contain_text(f"{APP} v1", timeout=WAIT_MS)
    check_accessibility(page, "the restore confirmation")
    page.get_by_role("button", name="Restore").click(timeout=WAIT_MS)
    notice(page, "The version is restored.")
    h1(page).to_contain_text("Active", timeout=WAIT_MS)
    assert api_version(served, BASE, V1)["status"] == "VERSION_ACTIVE"
    assert api_version(served, APP, APP_V1)["status"] == "VERSION_ACTIVE"


def test_a_scheduled_revocation_is_cancelled(served: Served, new_context: NewContext) -> None:
    page = new_context().new_page()
    sign_in(page, served, CONTRIBUTOR)
    page.goto(served.url + served.version(BASE, V2) + "/revoke", timeout=WAIT_MS)
    due = served.clock.now() + timedelta(days=1)
    page.get_by_role("radio", name="At the time below").check(timeout=WAIT_MS)
    page.get_by_label(re.compile("^Date and time")).fill(due.strftime("%Y-%m-%dT%H:%M"), timeout=WAIT_MS)
    page.get_by_role("button", name="Revoke").click(timeout=WAIT_MS)
    h1(page).to_contain_text("Scheduled revocation", timeout=WAIT_MS)
    page.get_by_role("link", name="Cancel scheduled revocation").click(timeout=WAIT_MS)
    h1(page).to_have_text(f"Cancel the scheduled revocation of {BASE} v2", timeout=WAIT_MS)
    check_accessibility(page, "the cancel-revocation confirmation")
    page.get_by_role("button", name="Cancel scheduled revocation").click(timeout=WAIT_MS)
    notice(page, "The scheduled revocation is cancelled.")
    h1(page).to_contain_text("Active", timeout=WAIT_MS)
    assert "revoke_at" not in api_version(served, BASE, V2)


def test_a_version_is_promoted_to_production_through_the_channel_page(
    served: Served, new_context: NewContext, screenshot_dir: Path
) -> None:
    page = new_context().new_page()
    sign_in(page, served, CONTRIBUTOR)
    page.goto(served.url + served.channel(DB, "production"), timeout=WAIT_MS)
    page.get_by_role("navigation", name="Channel actions").get_by_role("link", name="Assign").click(timeout=WAIT_MS)
    h1(page).to_have_text(f"Assign a version to {DB} / production", timeout=WAIT_MS)
    check_accessibility(page, "the assign confirmation")
    page.get_by_label("Version", exact=True).select_option(label="v2 · postgres-16-4 · Active", timeout=WAIT_MS)
    screenshot(page, "assign", screenshot_dir)
    page.get_by_role("button", name="Assign").click(timeout=WAIT_MS)
    expect(page).to_have_url(re.compile(re.escape(served.channel(DB, "production")) + r"\?done="), timeout=WAIT_MS)
    notice(page, "The channel points to the version you chose.")
    history = page.get_by_role("region", name="Assignment history").get_by_role("listitem")
    expect(history).to_have_count(2, timeout=WAIT_MS)
    expect(history.first).to_contain_text("set to v2", timeout=WAIT_MS)
    assert api_channel(served, DB, "production")["version"]["fingerprint"] == "postgres-16-4"


def test_a_viewer_sees_no_write_control_and_a_posted_form_is_refused(served: Served, new_context: NewContext) -> None:
    viewer = new_context().new_page()
    sign_in(viewer, served, VIEWER)
    for path in (
        served.project,
        served.bucket(DB),
        served.version(DB, "postgres-16-3"),
        served.channel(DB, "production"),
    ):
        viewer.goto(served.url + path, timeout=WAIT_MS)
        h1(viewer).to_be_visible(timeout=WAIT_MS)
        for name in ("Revoke", "Restore", "Assign", "Roll back", "Restrict", "Create channel", "Create bucket"):
            expect(viewer.get_by_role("link", name=name)).to_have_count(0, timeout=WAIT_MS)
            expect(viewer.get_by_role("button", name=name)).to_have_count(0, timeout=WAIT_MS)
        expect(viewer.get_by_role("navigation", name=re.compile("actions$"))).to_have_count(0, timeout=WAIT_MS)
    refused = viewer.goto(served.url + served.version(DB, "postgres-16-3") + "/revoke", timeout=WAIT_MS)
    assert refused is not None
    assert refused.status == 403
    check_accessibility(viewer, "a viewer refused a confirmation page")

    # The contributor's revoke form, field for field, posted from the viewer's browser with the viewer's
    # own form token: the server refuses the role, not only the token.
    contributor = new_context().new_page()
    sign_in(contributor, served, CONTRIBUTOR)
    contributor.goto(served.url + served.version(DB, "postgres-16-3") + "/revoke", timeout=WAIT_MS)
    form = contributor.locator("form", has=contributor.get_by_role("button", name="Revoke"))
    action = form.get_attribute("action", timeout=WAIT_MS)
    fields: dict[str, str] = form.evaluate("f => Object.fromEntries(new FormData(f))")
    assert action
    assert fields["csrf_token"]
    viewer.goto(served.url + served.project, timeout=WAIT_MS)
    own = viewer.locator('form[action="/sign-out"] input[name="csrf_token"]').get_attribute("value", timeout=WAIT_MS)
    assert own
    assert own != fields["csrf_token"]
    answer = viewer.request.post(
        served.url + action, form={**fields, "csrf_token": own}, timeout=WAIT_MS, max_redirects=0
    )
    assert answer.status == 403
    assert "does not allow this" in answer.text()
    assert api_version(served, DB, "postgres-16-3")["status"] == "VERSION_ACTIVE"


def test_a_write_form_with_a_forged_token_is_refused_and_changes_nothing(
    served: Served, new_context: NewContext
) -> None:
    page = new_context().new_page()
    sign_in(page, served, CONTRIBUTOR)
    page.goto(served.url + served.channel(APP, "production") + "/restrict", timeout=WAIT_MS)
    h1(page).to_have_text(f"Restrict {APP} / production", timeout=WAIT_MS)
    check_accessibility(page, "the restrict confirmation")
    page.locator('input[name="csrf_token"]').last.evaluate("input => { input.value = 'forged'; }")
    with page.expect_response(lambda r: r.request.method == "POST", timeout=WAIT_MS) as answer:
        page.get_by_role("button", name="Restrict").click(timeout=WAIT_MS)
    assert answer.value.status == 403
    h1(page).to_have_text("Not allowed", timeout=WAIT_MS)
    assert "restricted" not in api_channel(served, APP, "production")


def test_every_other_action_through_its_confirmation(served: Served, new_context: NewContext) -> None:
    """Create a bucket; create, restrict, unrestrict, roll back and delete a channel; delete the bucket:
    each confirmation page checked by axe-core, each change read back through the API."""
    page = new_context().new_page()
    sign_in(page, served, ADMIN)
    page.goto(served.url + served.project, timeout=WAIT_MS)
    page.get_by_role("link", name="Create bucket").click(timeout=WAIT_MS)
    h1(page).to_have_text("New bucket", timeout=WAIT_MS)
    check_accessibility(page, "the new bucket confirmation")
    page.get_by_label("Name").fill("scratch-images", timeout=WAIT_MS)
    page.get_by_label("Description").fill("made in the console", timeout=WAIT_MS)
    page.get_by_role("button", name="Create bucket").click(timeout=WAIT_MS)
    notice(page, "The bucket is created.")
    h1(page).to_have_text("scratch-images", timeout=WAIT_MS)
    c = served.api
    assert ok(c.get(c.p23("/buckets/scratch-images")))["bucket"]["description"] == "made in the console"
    made = [
        publish(c, "scratch-images", f"scratch-{n}", ("us-east-1",), ami=f"ami-0123456789abcdef{n}") for n in (1, 2)
    ]

    page.reload(timeout=WAIT_MS)
    page.get_by_role("link", name="Create channel").click(timeout=WAIT_MS)
    h1(page).to_have_text("New channel in scratch-images", timeout=WAIT_MS)
    check_accessibility(page, "the new channel confirmation")
    page.get_by_label("Name").fill("canary", timeout=WAIT_MS)
    page.get_by_role("button", name="Create channel").click(timeout=WAIT_MS)
    notice(page, "The channel is created.")
    channel = served.channel("scratch-images", "canary")
    for version in made:
        page.goto(served.url + channel + "/assign", timeout=WAIT_MS)
        page.get_by_label("Version", exact=True).select_option(version["id"], timeout=WAIT_MS)
        page.get_by_role("button", name="Assign").click(timeout=WAIT_MS)
        notice(page, "The channel points to the version you chose.")

    for verb, done in (("Restrict", "restricted"), ("Unrestrict", "unrestricted")):
        page.get_by_role("navigation", name="Channel actions").get_by_role("link", name=verb).click(timeout=WAIT_MS)
        h1(page).to_have_text(f"{verb} scratch-images / canary", timeout=WAIT_MS)
        check_accessibility(page, f"the {verb.lower()} confirmation")
        page.get_by_role("button", name=verb).click(timeout=WAIT_MS)
        expect(page.get_by_role("status")).to_contain_text(f"The channel is {done}", timeout=WAIT_MS)
        assert api_channel(served, "scratch-images", "canary").get("restricted", False) is (verb == "Restrict")

    page.get_by_role("navigation", name="Channel actions").get_by_role("link", name="Roll back").click(timeout=WAIT_MS)
    h1(page).to_have_text("Roll back scratch-images / canary", timeout=WAIT_MS)
    check_accessibility(page, "the roll back confirmation")
    page.get_by_role("button", name="Roll back").click(timeout=WAIT_MS)
    notice(page, "The channel is rolled back.")
    assert api_channel(served, "scratch-images", "canary")["version"]["fingerprint"] == "scratch-1"

    page.get_by_role("navigation", name="Channel actions").get_by_role("link", name="Delete channel").click(
        timeout=WAIT_MS
    )
    h1(page).to_have_text("Delete channel scratch-images / canary", timeout=WAIT_MS)
    check_accessibility(page, "the delete channel confirmation")
    page.get_by_role("button", name="Delete channel").click(timeout=WAIT_MS)
    notice(page, "The channel is deleted.")
    assert c.get(c.p23("/buckets/scratch-images/channels/canary")).status_code == 404

    page.goto(served.url + served.bucket("scratch-images"), timeout=WAIT_MS)
    page.get_by_role("link", name="Delete bucket").click(timeout=WAIT_MS)
    h1(page).to_have_text("Delete bucket scratch-images", timeout=WAIT_MS)
    check_accessibility(page, "the delete bucket confirmation")
    page.get_by_role("button", name="Delete bucket").click(timeout=WAIT_MS)
    notice(page, "The bucket is deleted, with its versions and channels.")
    assert c.get(c.p23("/buckets/scratch-images")).status_code == 404
