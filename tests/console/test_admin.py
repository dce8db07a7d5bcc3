"""The admin pages: users and service principals created (the link or the secret shown once) and
deleted, by organization-wide admins only, every form checked for its token."""

from __future__ import annotations

import re
from collections.abc import Iterator

import httpx
import pytest

from packyard.domain.models import Role
from tests.conftest import Env
from tests.console.support import PASSWORD, Browser, make_user


@pytest.fixture
def admin(env: Env) -> Iterator[Browser]:
    make_user(env, "root@example.com", Role.ADMIN)
    b = Browser(env)
    assert b.sign_in("root@example.com").status_code == 303
    yield b
    b.close()


def users(env: Env) -> str:
    return f"/orgs/{env.init.organization_id}/admin/users"


def principals(env: Env) -> str:
    return f"/orgs/{env.init.organization_id}/admin/principals"


COUNTS = {"console_user": "SELECT count(*) FROM console_user", "principal": "SELECT count(*) FROM principal"}


def count(env: Env, table: str) -> int:
    found = env.db.run(lambda conn: conn.exec_driver_sql(COUNTS[table]).scalar(), write=False)
    assert isinstance(found, int)
    return found


def code_of(page: httpx.Response, element_id: str) -> str:
    found = re.search(rf'id="{element_id}">([^<]+)<', page.text)
    assert found, page.text
    return found.group(1)


def test_a_created_user_gets_a_link_shown_once_that_sets_a_password(env: Env, admin: Browser) -> None:
    page = admin.get(users(env))
    assert page.status_code == 200
    assert "root@example.com" in page.text
    assert f'href="{users(env)}">Admin</a>' in page.text
    created = admin.submit(
        users(env),
        users(env) + "/new",
        {"email": "New.Person@example.com", "role": "contributor", "project": env.init.project_id},
    )
    assert created.status_code == 200, created.text
    link = code_of(created, "set-password-link")
    assert link.startswith("http://packyard.test/set-password/")
    listing = admin.get(users(env))
    assert "new.person@example.com" in listing.text
    assert link not in listing.text  # shown once
    assert "no password yet" in listing.text

    person = Browser(env)
    try:
        path = link.removeprefix("http://packyard.test")
        assert person.submit(path, path, {"password": PASSWORD, "confirm": PASSWORD}).status_code == 303
        assert person.sign_in("new.person@example.com").status_code == 303
        project = person.get(f"/orgs/{env.init.organization_id}/projects/{env.init.project_id}")
        assert project.status_code == 200
        assert "contributor" in project.text
        assert "/admin/users" not in project.text  # no link to the admin pages for a contributor
    finally:
        person.close()
    assert "password set" in admin.get(users(env)).text


def test_bad_or_duplicate_users_are_refused_with_the_form_shown_again(env: Env, admin: Browser) -> None:
    before = count(env, "console_user")
    duplicate = admin.submit(users(env), users(env) + "/new", {"email": "root@example.com", "role": "viewer"})
    assert duplicate.status_code == 409
    assert "already exists" in duplicate.text
    bad = admin.submit(users(env), users(env) + "/new", {"email": "not an email", "role": "viewer"})
    assert bad.status_code == 400
    assert "is not an email address" in bad.text
    no_role = admin.submit(users(env), users(env) + "/new", {"email": "x@example.com", "role": "owner"})
    assert no_role.status_code == 400
    elsewhere = admin.submit(
        users(env), users(env) + "/new", {"email": "y@example.com", "role": "viewer", "project": "01NOSUCHPROJECT"}
    )
    assert elsewhere.status_code == 400
    assert count(env, "console_user") == before


def test_a_deleted_users_sessions_end_at_once(env: Env, admin: Browser) -> None:
    make_user(env, "leaving@example.com", Role.VIEWER)
    leaving = Browser(env)
    try:
        assert leaving.sign_in("leaving@example.com").status_code == 303
        project = f"/orgs/{env.init.organization_id}/projects/{env.init.project_id}"
        assert leaving.get(project).status_code == 200
        listing = admin.get(users(env)).text
        user_id = re.search(r'/admin/users/([0-9A-Z]+)/delete">Delete<span class="visually-hidden"> leaving@', listing)
        assert user_id, listing
        confirm = users(env) + f"/{user_id.group(1)}/delete"
        page = admin.get(confirm)
        assert page.status_code == 200
        assert "every session" in page.text
        done = admin.post(confirm, Browser.tokens(page))
        assert done.status_code == 303
        assert "is deleted" in admin.get(done.headers["location"]).text
        assert leaving.get(project).status_code == 303  # signed out: back to sign-in
        assert leaving.sign_in("leaving@example.com").status_code == 401
        assert "leaving@example.com" not in admin.get(users(env)).text
    finally:
        leaving.close()


def test_an_admin_cant_delete_their_own_account(env: Env, admin: Browser) -> None:
    own_id = env.db.run(
        lambda conn: conn.exec_driver_sql("SELECT id FROM console_user WHERE email = 'root@example.com'").scalar(),
        write=False,
    )
    confirm = users(env) + f"/{own_id}/delete"
    page = admin.get(confirm)
    assert page.status_code == 200
    assert "your own account" in page.text
    assert "Delete user" not in page.text
    refused = admin.post(confirm, Browser.tokens(admin.get(users(env))))
    assert refused.status_code == 400
    assert "your own account" in refused.text
    assert count(env, "console_user") == 1


def test_a_created_principals_secret_gets_a_token_and_deleting_it_stops_its_tokens(env: Env, admin: Browser) -> None:
    created = admin.submit(principals(env), principals(env) + "/new", {"name": "ci-pipeline", "role": "contributor"})
    assert created.status_code == 200, created.text
    client_id, secret = code_of(created, "client-id"), code_of(created, "client-secret")
    listing = admin.get(principals(env))
    assert "ci-pipeline" in listing.text
    assert client_id in listing.text
    assert secret not in listing.text  # shown once

    token = env.token_for(client_id, secret)
    buckets = env.client.p23("/buckets")
    assert env.client.get(buckets, token=token).status_code == 200

    found = re.search(r'principals/([0-9A-Z]+)/delete">Delete<span class="visually-hidden"> ci-pipeline', listing.text)
    assert found, listing.text
    confirm = principals(env) + f"/{found.group(1)}/delete"
    page = admin.get(confirm)
    assert client_id in page.text
    assert admin.post(confirm, Browser.tokens(page)).status_code == 303
    refused = env.client.get(buckets, token=token)
    assert refused.status_code == 401
    assert client_id not in admin.get(principals(env)).text


def test_contributors_and_viewers_are_refused_and_see_no_admin_link(env: Env) -> None:
    before_users, before_principals = count(env, "console_user"), count(env, "principal")
    for email, role in (("c@example.com", Role.CONTRIBUTOR), ("v@example.com", Role.VIEWER)):
        make_user(env, email, role)
        b = Browser(env)
        try:
            assert b.sign_in(email).status_code == 303
            project = b.get(f"/orgs/{env.init.organization_id}/projects/{env.init.project_id}")
            assert "/admin/" not in project.text
            for path in (users(env), principals(env)):
                page = b.get(path)
                assert page.status_code == 403
                assert "does not allow this" in page.text
            csrf = Browser.tokens(project)
            made = b.post(users(env) + "/new", {**csrf, "email": "sneaky@example.com", "role": "admin"})
            assert made.status_code == 403
            made = b.post(principals(env) + "/new", {**csrf, "name": "sneaky", "role": "admin"})
            assert made.status_code == 403
        finally:
            b.close()
    assert count(env, "console_user") == before_users + 2
    assert count(env, "principal") == before_principals


def test_a_project_scoped_admin_is_refused(env: Env) -> None:
    make_user(env, "proj-admin@example.com", Role.ADMIN, project_id=env.init.project_id)
    b = Browser(env)
    try:
        assert b.sign_in("proj-admin@example.com").status_code == 303
        page = b.get(users(env))
        assert page.status_code == 403
        assert "whole organization" in page.text
    finally:
        b.close()


def test_forms_without_the_session_token_are_refused(env: Env, admin: Browser) -> None:
    before_users, before_principals = count(env, "console_user"), count(env, "principal")
    for token in ({}, {"csrf_token": "forged"}):
        refused = admin.post(users(env) + "/new", {**token, "email": "csrf@example.com", "role": "admin"})
        assert refused.status_code == 403
        assert "token is missing or wrong" in refused.text
        refused = admin.post(principals(env) + "/new", {**token, "name": "csrf", "role": "admin"})
        assert refused.status_code == 403
    listing = admin.get(principals(env)).text
    found = re.search(r"/admin/principals/([0-9A-Z]+)/delete", listing)
    assert found, listing
    refused = admin.post(principals(env) + f"/{found.group(1)}/delete", {"csrf_token": "forged"})
    assert refused.status_code == 403
    assert count(env, "console_user") == before_users
    assert count(env, "principal") == before_principals


def test_signed_out_visitors_are_sent_to_sign_in(env: Env) -> None:
    b = Browser(env)
    try:
        page = b.get(users(env))
        assert page.status_code == 303
        assert page.headers["location"].startswith("/sign-in?next=")
    finally:
        b.close()
