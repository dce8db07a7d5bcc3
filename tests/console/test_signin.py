"""Signing in to the console: one-time links, argon2id hashes, sessions, form tokens, and the wall
between the console's cookies and the API's bearer tokens."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
from argon2 import PasswordHasher

from packyard.auth import accounts
from packyard.domain.models import Role
from tests.conftest import Env
from tests.console.support import PASSWORD, Browser, make_user


@pytest.fixture
def browser(env: Env) -> Iterator[Browser]:
    b = Browser(env)
    yield b
    b.close()


def test_a_link_sets_the_password_once_and_the_user_signs_in(env: Env, browser: Browser) -> None:
    secret = make_user(env, "Ada@Example.com", Role.CONTRIBUTOR)
    query = "SELECT password_hash FROM console_user"
    stored = env.db.run(lambda conn: conn.exec_driver_sql(query).scalar(), write=False)
    assert str(stored).startswith("$argon2id$")
    assert PASSWORD not in str(stored)
    again = browser.get(f"/set-password/{secret}")
    assert again.status_code == 401
    assert "used or expired" in again.text

    signed = browser.sign_in("ada@example.com")
    assert signed.status_code == 303
    assert signed.headers["location"] == "/"
    cookie = signed.headers["set-cookie"]
    assert "HttpOnly" in cookie
    assert "SameSite=lax" in cookie
    home = browser.get("/")
    assert home.status_code == 303  # one project: straight to its buckets
    page = browser.get(home.headers["location"])
    assert page.status_code == 200
    assert "ada@example.com" in page.text
    assert page.headers["content-security-policy"].startswith("default-src 'self'")


def test_wrong_passwords_and_unknown_emails_are_answered_alike(env: Env, browser: Browser) -> None:
    make_user(env, "bob@example.com")
    wrong = browser.sign_in("bob@example.com", "not the password at all")
    unknown = browser.sign_in("nobody@example.com", "not the password at all")
    assert wrong.status_code == unknown.status_code == 401
    assert "wrong email or password" in wrong.text
    assert "wrong email or password" in unknown.text
    assert browser.get("/").status_code == 303
    assert browser.get("/").headers["location"].startswith("/sign-in")


def test_pages_send_the_signed_out_to_sign_in(env: Env, browser: Browser) -> None:
    org, project = env.init.organization_id, env.init.project_id
    page = browser.get(f"/orgs/{org}/projects/{project}")
    assert page.status_code == 303
    assert page.headers["location"] == f"/sign-in?next=%2Forgs%2F{org}%2Fprojects%2F{project}"


def test_sign_in_needs_the_form_token_of_its_own_cookie(env: Env, browser: Browser) -> None:
    make_user(env, "carol@example.com")
    forged = browser.post("/sign-in", {"email": "carol@example.com", "password": PASSWORD, "form_token": "guess"})
    assert forged.status_code == 403
    assert "set-cookie" not in forged.headers or "packyard_session" not in forged.headers["set-cookie"]


def test_sign_out_needs_the_session_token_and_ends_the_session(env: Env, browser: Browser) -> None:
    make_user(env, "dan@example.com")
    browser.sign_in("dan@example.com")
    page = browser.get(f"/orgs/{env.init.organization_id}/projects/{env.init.project_id}")
    refused = browser.post("/sign-out", {"csrf_token": "not-it"})
    assert refused.status_code == 403
    assert browser.get(f"/orgs/{env.init.organization_id}/projects/{env.init.project_id}").status_code == 200
    out = browser.post("/sign-out", Browser.tokens(page))
    assert out.status_code == 303
    assert browser.get(f"/orgs/{env.init.organization_id}/projects/{env.init.project_id}").status_code == 303


def test_sessions_end_when_they_expire(env: Env, browser: Browser) -> None:
    make_user(env, "erin@example.com")
    browser.sign_in("erin@example.com")
    path = f"/orgs/{env.init.organization_id}/projects/{env.init.project_id}"
    assert browser.get(path).status_code == 200
    env.clock.advance(hours=12, seconds=1)
    assert browser.get(path).status_code == 303


def test_the_api_takes_no_cookie_and_the_console_no_bearer_token(env: Env, browser: Browser) -> None:
    make_user(env, "fay@example.com")
    browser.sign_in("fay@example.com")
    org, project = env.init.organization_id, env.init.project_id
    api = browser.get(f"/packer/2023-01-01/organizations/{org}/projects/{project}/buckets")
    assert api.status_code == 401
    assert api.json()["code"] == 16
    bearer = Browser(env)
    try:
        page = bearer.get(
            f"/orgs/{env.init.organization_id}/projects/{env.init.project_id}",
            headers={"Authorization": f"Bearer {env.client.token}"},
        )
        assert page.status_code == 303
        assert page.headers["location"].startswith("/sign-in")
    finally:
        bearer.close()


def test_failed_sign_ins_lock_out_the_address_not_the_account(env: Env) -> None:
    make_user(env, "gus@example.com")
    attacker = Browser(env, client_host="203.0.113.9")
    owner = Browser(env, client_host="198.51.100.7")
    try:
        answers = [attacker.sign_in("gus@example.com", f"guess number {n:04d}").status_code for n in range(11)]
        assert answers[:10] == [401] * 10
        assert answers[10] == 429
        assert attacker.sign_in("gus@example.com").status_code == 429  # even the right password, from there
        assert owner.sign_in("gus@example.com").status_code == 303
    finally:
        attacker.close()
        owner.close()


def test_passwords_are_hashed_off_the_event_loop_with_owasps_argon2id_profile(env: Env, browser: Browser) -> None:
    worker = env.client.loop.run_until_complete(accounts.hash_off_loop(threading.current_thread))
    assert worker.name.startswith("packyard-argon2")
    assert worker is not threading.current_thread()
    make_user(env, "hal@example.com")
    query = "SELECT password_hash FROM console_user WHERE email = 'hal@example.com'"
    stored = str(env.db.run(lambda conn: conn.exec_driver_sql(query).scalar(), write=False))
    assert stored.startswith("$argon2id$v=19$m=19456,t=2,p=1$")


def test_a_hash_made_with_other_parameters_is_remade_at_the_next_sign_in(env: Env, browser: Browser) -> None:
    make_user(env, "ivy@example.com")
    old = PasswordHasher(time_cost=1, memory_cost=8 * 1024, parallelism=1).hash(PASSWORD)
    update = "UPDATE console_user SET password_hash = ? WHERE email = 'ivy@example.com'"
    env.db.run(
        lambda conn: conn.exec_driver_sql(update.replace("?", "%s" if not env.db.is_sqlite else "?"), (old,)),
        write=True,
    )
    assert browser.sign_in("ivy@example.com").status_code == 303
    query = "SELECT password_hash FROM console_user WHERE email = 'ivy@example.com'"
    stored = str(env.db.run(lambda conn: conn.exec_driver_sql(query).scalar(), write=False))
    assert stored != old
    assert stored.startswith("$argon2id$v=19$m=19456,t=2,p=1$")
    browser.post(
        "/sign-out", Browser.tokens(browser.get(f"/orgs/{env.init.organization_id}/projects/{env.init.project_id}"))
    )
    assert browser.sign_in("ivy@example.com").status_code == 303, "the new hash holds the same password"
