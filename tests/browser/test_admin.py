"""The admin pages in a real browser: a user made there sets a password through the link shown once and
signs in; a service principal made there gets an API token with the secret shown once; both deleted
behind their confirmations; people who are not admins see no way in and are refused. Every page passes
axe-core."""

from __future__ import annotations

from pathlib import Path

import httpx
from playwright.sync_api import expect

from packyard.domain import tenants
from packyard.storage.db import Database
from packyard.storage.unit_of_work import SqlUnitOfWork
from tests.browser.conftest import NewContext
from tests.browser.support import (
    ADMIN,
    CONTRIBUTOR,
    PASSWORD,
    WAIT_MS,
    Served,
    check_accessibility,
    screenshot,
    sign_in,
)

NEW_USER = "operator@example.com"


def admin_page(served: Served, what: str) -> str:
    return f"{served.url}/orgs/{served.api.org_id}/admin/{what}"


def test_an_admin_makes_a_user_who_signs_in_and_then_deletes_them(
    served: Served, new_context: NewContext, screenshot_dir: Path
) -> None:
    page = new_context().new_page()
    sign_in(page, served, ADMIN)
    page.get_by_role("link", name="Admin", exact=True).click(timeout=WAIT_MS)
    expect(page).to_have_url(admin_page(served, "users"), timeout=WAIT_MS)
    expect(page.get_by_role("heading", level=1)).to_have_text("Users", timeout=WAIT_MS)
    check_accessibility(page, "the users page")

    page.get_by_label("Email").fill(NEW_USER, timeout=WAIT_MS)
    page.get_by_label("Role").select_option("contributor", timeout=WAIT_MS)
    page.get_by_role("button", name="Create user").click(timeout=WAIT_MS)
    link = page.locator("#set-password-link").inner_text(timeout=WAIT_MS)
    assert "/set-password/" in link
    expect(page.get_by_role("table")).to_contain_text(NEW_USER, timeout=WAIT_MS)
    check_accessibility(page, "the users page with a new user's link")
    screenshot(page, "admin-users", screenshot_dir)
    page.reload(timeout=WAIT_MS)
    expect(page.locator("#set-password-link")).to_have_count(0, timeout=WAIT_MS)  # shown once

    newcomer = new_context().new_page()
    newcomer.goto(served.url + link[link.index("/set-password/") :], timeout=WAIT_MS)
    newcomer.get_by_label("New password").fill(PASSWORD, timeout=WAIT_MS)
    newcomer.get_by_label("The same again").fill(PASSWORD, timeout=WAIT_MS)
    newcomer.get_by_role("button", name="Set password").click(timeout=WAIT_MS)
    sign_in(newcomer, served, NEW_USER)
    expect(newcomer.get_by_role("navigation", name="Account")).to_contain_text("contributor", timeout=WAIT_MS)

    row = page.get_by_role("row").filter(has_text=NEW_USER)
    row.get_by_role("link", name=f"Delete {NEW_USER}").click(timeout=WAIT_MS)
    expect(page.get_by_role("heading", level=1)).to_have_text(f"Delete {NEW_USER}?", timeout=WAIT_MS)
    check_accessibility(page, "a user's delete confirmation")
    page.get_by_role("button", name="Delete user").click(timeout=WAIT_MS)
    expect(page.get_by_role("table")).not_to_contain_text(NEW_USER, timeout=WAIT_MS)
    newcomer.reload(timeout=WAIT_MS)  # their session ended with the account
    expect(newcomer.get_by_role("heading", level=1)).to_have_text("Sign in", timeout=WAIT_MS)


def test_an_admin_makes_a_service_principal_whose_secret_gets_a_token(served: Served, new_context: NewContext) -> None:
    page = new_context().new_page()
    sign_in(page, served, ADMIN)
    page.goto(admin_page(served, "principals"), timeout=WAIT_MS)
    expect(page.get_by_role("heading", level=1)).to_have_text("Service principals", timeout=WAIT_MS)
    check_accessibility(page, "the service principals page")
    page.get_by_label("Name").fill("ci-pipeline", timeout=WAIT_MS)
    page.get_by_label("Role").select_option("contributor", timeout=WAIT_MS)
    page.get_by_role("button", name="Create principal").click(timeout=WAIT_MS)
    client_id = page.locator("#client-id").inner_text(timeout=WAIT_MS)
    secret = page.locator("#client-secret").inner_text(timeout=WAIT_MS)
    check_accessibility(page, "the service principals page with a new secret")
    body = {"grant_type": "client_credentials", "client_id": client_id, "client_secret": secret}
    assert httpx.post(f"{served.url}/oauth2/token", data=body, timeout=5.0).status_code == 200

    row = page.get_by_role("row").filter(has_text="ci-pipeline")
    row.get_by_role("link", name="Delete ci-pipeline").click(timeout=WAIT_MS)
    check_accessibility(page, "a service principal's delete confirmation")
    page.get_by_role("button", name="Delete principal").click(timeout=WAIT_MS)
    expect(page.get_by_role("table")).not_to_contain_text("ci-pipeline", timeout=WAIT_MS)
    assert httpx.post(f"{served.url}/oauth2/token", data=body, timeout=5.0).status_code == 401


def test_people_who_are_not_admins_see_no_way_in_and_are_refused(served: Served, new_context: NewContext) -> None:
    page = new_context().new_page()
    sign_in(page, served, CONTRIBUTOR)
    expect(page.get_by_role("link", name="Admin", exact=True)).to_have_count(0, timeout=WAIT_MS)
    refused = page.goto(admin_page(served, "users"), timeout=WAIT_MS)
    assert refused is not None
    assert refused.status == 403
    expect(page.get_by_role("heading", level=1)).to_have_text("Not allowed", timeout=WAIT_MS)
    check_accessibility(page, "the admin pages' refusal")


def test_the_home_page_lists_the_projects_an_organization_admin_reaches(
    served: Served, new_context: NewContext
) -> None:
    # A second project, made as `packyard project create` makes it, while the server runs. (Last in this
    # module: from now on signing in lands on the list instead of the one project's buckets.)
    db = Database(served.database_url)
    try:
        org_id, now = served.api.org_id, served.clock.now()
        db.run(lambda conn: tenants.create_project(SqlUnitOfWork(conn), org_id, "desktop-images", now), write=True)
    finally:
        db.dispose()
    page = new_context().new_page()
    sign_in(page, served, ADMIN)
    expect(page).to_have_url(served.url + "/", timeout=WAIT_MS)
    expect(page.get_by_role("heading", level=1)).to_have_text("Projects", timeout=WAIT_MS)
    expect(page.get_by_role("link", name="desktop-images")).to_be_visible(timeout=WAIT_MS)
    check_accessibility(page, "the list of projects")
    page.locator(f'a[href="{served.project}"]').click(timeout=WAIT_MS)
    expect(page.get_by_role("heading", level=1)).to_have_text("Buckets", timeout=WAIT_MS)
