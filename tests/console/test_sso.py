"""Single sign-on with an OpenID Connect provider: the whole authorization code flow (state, nonce, PKCE)
against a real provider on 127.0.0.1 (tests/console/oidc_provider.py), driven with the console's
Browser; the claim mapped to a role, refusals shown as pages, the provider's failures bounded."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote, urlsplit

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from packyard.auth.oidc_settings import OidcSettings, parse_roles
from packyard.domain.models import Role
from tests.conftest import Backend, Env, close_env, make_env
from tests.console.oidc_provider import CLIENT_ID, CLIENT_SECRET, Person, Provider, running
from tests.console.support import Browser, make_user
from tests.contract.validator import SwaggerContract

ROLES = "packer-admins=admin,packer-devs=contributor,everyone=viewer"


def settings_for(issuer: str, **extra: object) -> OidcSettings:
    values: dict[str, object] = {
        "issuer": issuer,
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
        "roles": parse_roles(ROLES),
        "name": "Stand-in ID",
        **extra,
    }
    return OidcSettings(**values)  # type: ignore[arg-type]


@pytest.fixture
def sso(tmp_path: Path, backend: Backend, contracts: list[SwaggerContract]) -> Iterator[tuple[Env, Provider]]:
    with running(lambda: 0) as provider:
        environment = make_env(tmp_path, backend, contracts, oidc=settings_for(provider.issuer))
        provider.now = lambda: int(environment.clock.now().timestamp())
        try:
            yield environment, provider
        finally:
            close_env(environment, backend)


@pytest.fixture
def browser(sso: tuple[Env, Provider]) -> Iterator[Browser]:
    b = Browser(sso[0])
    yield b
    b.close()


def to_provider(browser: Browser, provider: Provider, person: Person, next_path: str = "/") -> httpx.Response:
    """Click "Sign in with ..." and let the provider sign `person` in: its redirect back, not yet followed."""
    provider.person = person
    page = browser.get(f"/sign-in?next={quote(next_path, safe='')}")
    assert "Sign in with Stand-in ID" in page.text
    start = browser.get(f"/sign-in/oidc?next={quote(next_path, safe='')}")
    assert start.status_code == 303, start.text
    location = start.headers["location"]
    assert location.startswith(f"{provider.issuer}/authorize?")
    assert "code_challenge=" in location
    assert "nonce=" in location
    assert "packyard_oidc=" in start.headers["set-cookie"]
    assert "HttpOnly" in start.headers["set-cookie"]
    answer = httpx.get(location, follow_redirects=False, timeout=5)  # real HTTP to the provider
    assert answer.status_code == 302
    return answer


def back_from(browser: Browser, answer: httpx.Response, **replace: str) -> httpx.Response:
    """Follow the provider's redirect to the console's callback (with query values replaced)."""
    target = urlsplit(answer.headers["location"])
    assert target.netloc == "packyard.test"
    assert target.path == "/sign-in/oidc/callback"
    query = dict(part.split("=", 1) for part in target.query.split("&"))
    query.update(replace)
    return browser.get(target.path + "?" + "&".join(f"{k}={v}" for k, v in query.items()))


def sign_in_through(browser: Browser, provider: Provider, person: Person, next_path: str = "/") -> httpx.Response:
    return back_from(browser, to_provider(browser, provider, person, next_path))


def user_row(env: Env, email: str) -> tuple[str, str, str | None, str | None] | None:
    def read(conn: Connection) -> tuple[str, str, str | None, str | None] | None:
        query = "SELECT role, password_hash, project_id, sso_subject FROM console_user WHERE email = :email"
        row = conn.execute(sa.text(query), {"email": email}).first()
        return None if row is None else (row[0], row[1], row[2], row[3])

    return env.db.run(read, write=False)


def project_path(env: Env) -> str:
    return f"/orgs/{env.init.organization_id}/projects/{env.init.project_id}"


def test_a_mapped_admin_signs_in_and_gets_an_account(sso: tuple[Env, Provider], browser: Browser) -> None:
    env, provider = sso
    person = Person("sub-ada", "Ada@Example.com", ["packer-admins", "everyone"])
    done = sign_in_through(browser, provider, person, project_path(env))
    assert done.status_code == 303, done.text
    assert done.headers["location"] == project_path(env)
    cookies = done.headers.get_list("set-cookie")
    assert any(c.startswith("packyard_session=") and "HttpOnly" in c for c in cookies)
    assert any(c.startswith("packyard_oidc=") and "Max-Age=0" in c for c in cookies)  # the flow is spent
    page = browser.get(project_path(env))
    assert page.status_code == 200
    assert "ada@example.com" in page.text
    assert f"/orgs/{env.init.organization_id}/admin/users" in page.text  # an admin
    assert user_row(env, "ada@example.com") == ("admin", "", None, f"{provider.issuer} sub-ada")
    listing = browser.get(f"/orgs/{env.init.organization_id}/admin/users")
    assert "single sign-on" in listing.text


def test_a_mapped_viewer_signs_in_and_the_role_follows_the_provider(
    sso: tuple[Env, Provider], browser: Browser
) -> None:
    env, provider = sso
    person = Person("sub-bob", "bob@example.com", ["everyone"])
    assert sign_in_through(browser, provider, person).status_code == 303
    page = browser.get(project_path(env))
    assert page.status_code == 200
    assert "viewer" in page.text
    assert "/admin/users" not in page.text
    assert browser.get(f"/orgs/{env.init.organization_id}/admin/users").status_code == 403
    assert user_row(env, "bob@example.com") == ("viewer", "", None, f"{provider.issuer} sub-bob")

    person.groups = ["everyone", "packer-devs"]  # the highest mapped role counts
    person.email = "robert@example.com"  # the account follows the subject, not the email
    assert sign_in_through(browser, provider, person).status_code == 303
    assert user_row(env, "bob@example.com") is None
    assert user_row(env, "robert@example.com") == ("contributor", "", None, f"{provider.issuer} sub-bob")


def test_an_unmapped_user_is_refused_and_gets_no_account(sso: tuple[Env, Provider], browser: Browser) -> None:
    env, provider = sso
    done = sign_in_through(browser, provider, Person("sub-eve", "eve@example.com", ["strangers"]))
    assert done.status_code == 403
    assert "is not given a role in packyard" in done.text
    assert "groups" in done.text
    assert "packyard_session" not in done.headers.get("set-cookie", "")
    assert user_row(env, "eve@example.com") is None
    assert browser.get(project_path(env)).status_code == 303  # still signed out


def test_an_unverified_email_is_refused(sso: tuple[Env, Provider], browser: Browser) -> None:
    env, provider = sso
    person = Person("sub-ivy", "ivy@example.com", ["packer-admins"], email_verified=False)
    done = sign_in_through(browser, provider, person)
    assert done.status_code == 403
    assert "not verified" in done.text
    assert user_row(env, "ivy@example.com") is None


def test_a_forged_state_or_a_missing_flow_cookie_is_refused(sso: tuple[Env, Provider], browser: Browser) -> None:
    env, provider = sso
    person = Person("sub-mal", "mal@example.com", ["packer-admins"])
    forged = back_from(browser, to_provider(browser, provider, person), state="forged-state")
    assert forged.status_code == 400
    assert "did not start here or has expired" in forged.text
    assert provider.token_requests == 0  # refused before the code is spent

    answer = to_provider(browser, provider, person)
    other = Browser(env)  # the provider's answer, replayed in a browser that did not start the flow
    try:
        replayed = back_from(other, answer)
        assert replayed.status_code == 400
        assert "did not start here" in replayed.text
    finally:
        other.close()
    assert user_row(env, "mal@example.com") is None


def test_an_expired_flow_is_refused(sso: tuple[Env, Provider], browser: Browser) -> None:
    env, provider = sso
    answer = to_provider(browser, provider, Person("sub-old", "old@example.com", ["everyone"]))
    env.clock.advance(minutes=10, seconds=1)
    late = back_from(browser, answer)
    assert late.status_code == 400
    assert user_row(env, "old@example.com") is None


def test_an_id_token_for_another_audience_or_nonce_is_refused(sso: tuple[Env, Provider], browser: Browser) -> None:
    env, provider = sso
    person = Person("sub-zed", "zed@example.com", ["packer-admins"])
    provider.audience = "some-other-client"
    wrong_audience = sign_in_through(browser, provider, person)
    assert wrong_audience.status_code == 401
    assert "ID token was refused" in wrong_audience.text
    assert "aud" in wrong_audience.text

    provider.audience = CLIENT_ID
    provider.nonce = "not-the-nonce-we-sent"
    wrong_nonce = sign_in_through(browser, provider, person)
    assert wrong_nonce.status_code == 401
    assert "nonce" in wrong_nonce.text
    assert user_row(env, "zed@example.com") is None

    provider.nonce = None  # the same provider, answering right, signs in
    assert sign_in_through(browser, provider, person).status_code == 303


def test_an_existing_password_user_is_bound_to_the_provider(sso: tuple[Env, Provider], browser: Browser) -> None:
    env, provider = sso
    make_user(env, "kim@example.com", Role.VIEWER)
    assert sign_in_through(browser, provider, Person("sub-kim", "kim@example.com", ["packer-devs"])).status_code == 303
    role, password_hash, _, subject = user_row(env, "kim@example.com") or ("", "", None, None)
    assert role == "contributor"
    assert password_hash.startswith("$argon2id$")  # the password still works too
    assert subject == f"{provider.issuer} sub-kim"
    impostor = sign_in_through(browser, provider, Person("sub-other", "kim@example.com", ["packer-admins"]))
    assert impostor.status_code == 409
    assert "another single sign-on account" in impostor.text
    assert user_row(env, "kim@example.com") == ("contributor", password_hash, None, f"{provider.issuer} sub-kim")


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_a_provider_that_is_down_or_silent_gets_a_clear_page(
    tmp_path: Path, backend: Backend, contracts: list[SwaggerContract]
) -> None:
    (tmp_path / "down").mkdir()
    (tmp_path / "silent").mkdir()
    down = make_env(tmp_path / "down", backend, contracts, oidc=settings_for(f"http://127.0.0.1:{_closed_port()}"))
    try:
        b = Browser(down)
        page = b.get("/sign-in/oidc")
        assert page.status_code == 502
        assert "could not be reached" in page.text
        assert "Back to sign-in" in page.text
        b.close()
    finally:
        close_env(down, backend)

    with socket.socket() as silent:  # accepts connections, never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        issuer = f"http://127.0.0.1:{silent.getsockname()[1]}"
        slow = make_env(tmp_path / "silent", backend, contracts, oidc=settings_for(issuer, timeout_seconds=0.3))
        try:
            b = Browser(slow)
            page = b.get("/sign-in/oidc")
            assert page.status_code == 502
            assert "no answer within 0.3 s" in page.text
            b.close()
        finally:
            close_env(slow, backend)


def test_without_single_sign_on_there_is_no_button_and_no_flow(env: Env) -> None:
    b = Browser(env)
    try:
        assert "Sign in with" not in b.get("/sign-in").text
        assert b.get("/sign-in/oidc").status_code == 404
        assert b.get("/sign-in/oidc/callback?code=x&state=y").status_code == 404
    finally:
        b.close()


def test_settings_from_the_environment() -> None:
    base = {
        "PACKYARD_OIDC_ISSUER": "https://id.example.com/realms/ops",
        "PACKYARD_OIDC_CLIENT_ID": "packyard",
        "PACKYARD_OIDC_CLIENT_SECRET": "s3cret",
        "PACKYARD_OIDC_ROLES": ROLES,
    }
    settings = OidcSettings.from_env(base)
    assert settings is not None
    assert settings.claim == "groups"
    assert settings.roles == (
        ("packer-admins", Role.ADMIN),
        ("packer-devs", Role.CONTRIBUTOR),
        ("everyone", Role.VIEWER),
    )
    assert settings.role_for({"groups": ["everyone", "packer-admins"]}) is Role.ADMIN
    assert settings.role_for({"groups": "packer-devs"}) is Role.CONTRIBUTOR
    assert settings.role_for({"groups": ["nobody"]}) is None
    assert settings.role_for({}) is None
    nested = OidcSettings.from_env(
        {**base, "PACKYARD_OIDC_CLAIM": "realm_access.roles", "PACKYARD_OIDC_ROLES": '{"cn=ops,ou=g": "admin"}'}
    )
    assert nested is not None
    assert nested.role_for({"realm_access": {"roles": ["cn=ops,ou=g"]}}) is Role.ADMIN
    assert OidcSettings.from_env({}) is None
    for broken, says in (
        ({**base, "PACKYARD_OIDC_ISSUER": "http://id.example.com"}, "https"),
        ({**base, "PACKYARD_OIDC_ROLES": "packer-admins=owner"}, "not a role"),
        ({**base, "PACKYARD_OIDC_ROLES": ""}, "maps no claim value"),
        ({k: v for k, v in base.items() if k != "PACKYARD_OIDC_CLIENT_SECRET"}, "PACKYARD_OIDC_CLIENT_SECRET"),
        ({"PACKYARD_OIDC_CLIENT_ID": "x"}, "PACKYARD_OIDC_ISSUER"),
        ({**base, "PACKYARD_OIDC_TIMEOUT_SECONDS": "forever"}, "PACKYARD_OIDC_TIMEOUT_SECONDS"),
    ):
        with pytest.raises(SystemExit, match=says):
            OidcSettings.from_env(broken)


def test_discovery_and_keys_are_fetched_when_needed_and_kept(sso: tuple[Env, Provider], browser: Browser) -> None:
    env, provider = sso
    assert provider.hits == {}  # nothing asked of the provider before someone signs in
    person = Person("sub-joy", "joy@example.com", ["everyone"])
    assert sign_in_through(browser, provider, person).status_code == 303
    assert sign_in_through(browser, provider, person).status_code == 303
    assert provider.hits["/.well-known/openid-configuration"] == 1
    assert provider.hits["/jwks"] == 1

    provider.rotate()  # a token signed with a key packyard doesn't know yet: the keys are fetched again
    env.clock.advance(seconds=61)
    assert sign_in_through(browser, provider, person).status_code == 303
    assert provider.hits["/jwks"] == 2
    assert provider.hits["/.well-known/openid-configuration"] == 1
    env.clock.advance(hours=1)
    assert sign_in_through(browser, provider, person).status_code == 303
    assert provider.hits["/.well-known/openid-configuration"] == 2
