"""Signing in and out in a real browser: the form, a wrong password, a one-time link, sign-out, a forged
form token refused, and a locked-out attacker who does not lock out the account's owner; the sign-in and
set-password pages pass axe-core."""

from __future__ import annotations

from playwright.sync_api import Page, expect

from tests.browser.conftest import NewContext
from tests.browser.support import (
    ADMIN,
    CONTRIBUTOR,
    NEWCOMER,
    PASSWORD,
    VIEWER,
    WAIT_MS,
    Served,
    check_accessibility,
    sign_in,
)


def post_status(page: Page, click: str) -> int:
    """Click the button named `click` and return the status of the form post it makes."""
    with page.expect_response(lambda r: r.request.method == "POST", timeout=WAIT_MS) as answer:
        page.get_by_role("button", name=click).click(timeout=WAIT_MS)
    return answer.value.status


def test_sign_in_lands_on_the_buckets_and_sign_out_ends_it(served: Served, new_context: NewContext) -> None:
    page = new_context().new_page()
    page.goto(served.url + served.project, timeout=WAIT_MS)
    expect(page).to_have_url(
        f"{served.url}/sign-in?next=%2Forgs%2F{served.api.org_id}%2Fprojects%2F{served.api.project_id}", timeout=WAIT_MS
    )
    expect(page.get_by_role("heading", level=1)).to_have_text("Sign in", timeout=WAIT_MS)
    check_accessibility(page, "the sign-in page")

    page.get_by_label("Email").fill(CONTRIBUTOR, timeout=WAIT_MS)
    page.get_by_label("Password").fill(PASSWORD, timeout=WAIT_MS)
    page.get_by_role("button", name="Sign in").click(timeout=WAIT_MS)
    expect(page).to_have_url(served.url + served.project, timeout=WAIT_MS)  # back where it was going
    expect(page.get_by_role("heading", level=1)).to_have_text("Buckets", timeout=WAIT_MS)
    expect(page.get_by_role("navigation", name="Account")).to_contain_text(CONTRIBUTOR, timeout=WAIT_MS)
    cookies = {c["name"]: c for c in page.context.cookies()}
    assert cookies["packyard_session"]["httpOnly"] is True
    assert cookies["packyard_session"]["sameSite"] == "Lax"

    page.get_by_role("button", name="Sign out").click(timeout=WAIT_MS)
    expect(page.get_by_role("heading", level=1)).to_have_text("Sign in", timeout=WAIT_MS)
    assert "packyard_session" not in {c["name"] for c in page.context.cookies()}
    page.goto(served.url + served.project, timeout=WAIT_MS)
    expect(page.get_by_role("heading", level=1)).to_have_text("Sign in", timeout=WAIT_MS)


def test_a_wrong_password_is_refused_with_the_form_kept(served: Served, new_context: NewContext) -> None:
    page = new_context().new_page()
    page.goto(f"{served.url}/sign-in", timeout=WAIT_MS)
    page.get_by_label("Email").fill(VIEWER, timeout=WAIT_MS)
    page.get_by_label("Password").fill("not the password at all", timeout=WAIT_MS)
    assert post_status(page, "Sign in") == 401
    expect(page.get_by_role("alert")).to_have_text("wrong email or password", timeout=WAIT_MS)
    expect(page.get_by_label("Email")).to_have_value(VIEWER, timeout=WAIT_MS)
    assert "packyard_session" not in {c["name"] for c in page.context.cookies()}
    check_accessibility(page, "the sign-in page with an error")


def test_a_one_time_link_sets_the_password_once(served: Served, new_context: NewContext) -> None:
    page = new_context().new_page()
    link = f"{served.url}/set-password/{served.links[NEWCOMER]}"
    page.goto(link, timeout=WAIT_MS)
    expect(page.get_by_role("heading", level=1)).to_have_text("Set your password", timeout=WAIT_MS)
    check_accessibility(page, "the set-password page")
    page.get_by_label("New password").fill(PASSWORD, timeout=WAIT_MS)
    page.get_by_label("The same again").fill(PASSWORD + " but different", timeout=WAIT_MS)
    assert post_status(page, "Set password") == 400
    expect(page.get_by_role("alert")).to_have_text("the two passwords differ", timeout=WAIT_MS)
    check_accessibility(page, "the set-password page with an error")
    page.get_by_label("New password").fill(PASSWORD, timeout=WAIT_MS)
    page.get_by_label("The same again").fill(PASSWORD, timeout=WAIT_MS)
    page.get_by_role("button", name="Set password").click(timeout=WAIT_MS)
    expect(page.get_by_role("status")).to_have_text("Your password is set. Sign in with it.", timeout=WAIT_MS)
    sign_in(page, served, NEWCOMER)
    again = page.goto(link, timeout=WAIT_MS)
    assert again is not None
    assert again.status == 401
    expect(page.get_by_role("alert")).to_contain_text("used or expired", timeout=WAIT_MS)


def test_a_form_with_a_forged_token_is_refused_and_changes_nothing(served: Served, new_context: NewContext) -> None:
    page = new_context().new_page()
    sign_in(page, served, ADMIN)
    page.goto(served.url + served.project, timeout=WAIT_MS)
    # Another site can make the browser post the form, but not know the session's token: edit the hidden
    # field in the page, as such a forged post would carry a wrong one.
    field = page.locator('form[action="/sign-out"] input[name="csrf_token"]')
    real = field.get_attribute("value", timeout=WAIT_MS)
    assert real
    field.evaluate("input => { input.value = 'forged-' + input.value.slice(7); }")
    assert post_status(page, "Sign out") == 403
    expect(page.get_by_role("heading", level=1)).to_have_text("Not allowed", timeout=WAIT_MS)
    expect(page.get_by_role("alert")).to_contain_text("token is missing or wrong", timeout=WAIT_MS)
    check_accessibility(page, "the refusal page")
    # The same post with no token at all, from the page's own origin and cookies.
    refused = page.request.post(f"{served.url}/sign-out", form={"csrf_token": ""}, timeout=WAIT_MS, max_redirects=0)
    assert refused.status == 403
    page.goto(served.url + served.project, timeout=WAIT_MS)
    expect(page.get_by_role("heading", level=1)).to_have_text("Buckets", timeout=WAIT_MS)  # still signed in
    # A login CSRF: the sign-in form's own token must match its cookie.
    forged = page.request.post(
        f"{served.url}/sign-in",
        form={"email": VIEWER, "password": PASSWORD, "form_token": "guess"},
        timeout=WAIT_MS,
        max_redirects=0,
    )
    assert forged.status == 403
    expect(page.get_by_role("navigation", name="Account")).to_contain_text(ADMIN, timeout=WAIT_MS)


def test_a_locked_out_attacker_does_not_lock_out_the_owner(served: Served, new_context: NewContext) -> None:
    # The server believes X-Forwarded-For from 127.0.0.1 (as `packyard serve --forwarded-allow-ips`), so
    # each context arrives from an address of its own, as through a reverse proxy.
    attacker = new_context(extra_http_headers={"X-Forwarded-For": "203.0.113.9"}).new_page()
    owner = new_context(extra_http_headers={"X-Forwarded-For": "198.51.100.7"}).new_page()
    attacker.goto(f"{served.url}/sign-in", timeout=WAIT_MS)
    statuses = []
    for n in range(11):
        attacker.get_by_label("Email").fill(CONTRIBUTOR, timeout=WAIT_MS)
        attacker.get_by_label("Password").fill(f"guess number {n:04d}", timeout=WAIT_MS)
        statuses.append(post_status(attacker, "Sign in"))
    assert statuses == [401] * 10 + [429]
    expect(attacker.get_by_role("alert")).to_contain_text("too many failed sign-ins", timeout=WAIT_MS)
    # Locked out for that account from that address: the right password too.
    attacker.get_by_label("Password").fill(PASSWORD, timeout=WAIT_MS)
    assert post_status(attacker, "Sign in") == 429
    assert "packyard_session" not in {c["name"] for c in attacker.context.cookies()}
    # The owner, from elsewhere, signs in at once.
    sign_in(owner, served, CONTRIBUTOR)
    expect(owner.get_by_role("navigation", name="Account")).to_contain_text(CONTRIBUTOR, timeout=WAIT_MS)
