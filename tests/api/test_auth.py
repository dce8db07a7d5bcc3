"""The token endpoint as golang.org/x/oauth2 clientcredentials calls it, and the bearer check on every
project route (client-compatibility.md section A)."""

from __future__ import annotations

import base64
import json
import re
import uuid
from typing import Any
from urllib.parse import quote_plus

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from packyard.auth import tokens
from packyard.auth.credentials import hash_secret
from packyard.auth.service import create_principal
from packyard.domain.models import Principal, Project, Role
from packyard.http.routing import Access, Route
from packyard.ids import new_ulid
from packyard.storage import schema
from packyard.storage.unit_of_work import SqlUnitOfWork
from tests.conftest import Env
from tests.support.client import ApiClient, error, ok

FORM = {"Content-Type": "application/x-www-form-urlencoded"}
GO_FORM = b"grant_type=client_credentials&audience=https%3A%2F%2Fapi.hashicorp.cloud"
TOKEN_PATHS = ["/oauth2/token", "/oauth/token"]
ULID = "01HZZZZZZZZZZZZZZZZZZZZZZZ"
PARAM_VALUES = {
    "bucket_slug": "b",
    "slug": "b",
    "iteration_id": ULID,
    "build_id": ULID,
    "task_type": "validation",
    # 2023-01-01
    "bucket_name": "b",
    "fingerprint": "f",
    "channel_name": "b",
    "sbom_name": "s",
}


def go_basic(client_id: str, client_secret: str) -> str:
    """What x/oauth2 puts in Authorization for AuthStyleInHeader: query-escaped parts, then base64."""
    raw = f"{quote_plus(client_id)}:{quote_plus(client_secret)}".encode()
    return "Basic " + base64.b64encode(raw).decode()


def token_request(
    client: ApiClient, path: str, *, basic: tuple[str, str] | None = None, form: bytes = GO_FORM
) -> httpx.Response:
    headers = dict(FORM)
    if basic is not None:
        headers["Authorization"] = go_basic(*basic)
    return client.post(path, content=form, headers=headers, token="")


def form_with_credentials(client_id: str, client_secret: str) -> bytes:
    return GO_FORM + f"&client_id={quote_plus(client_id)}&client_secret={quote_plus(client_secret)}".encode()


def assert_token_response(response: httpx.Response, env: Env) -> str:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert set(body) == {"access_token", "token_type", "expires_in"}
    assert isinstance(body["access_token"], str)
    assert body["access_token"]
    assert body["token_type"] == "Bearer"
    assert type(body["expires_in"]) is int
    assert body["expires_in"] == env.settings.token_ttl_seconds
    return str(body["access_token"])


def assert_oauth_error(response: httpx.Response, status: int, error_code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert body["error"] == error_code
    assert isinstance(body.get("error_description"), str)
    assert body["error_description"]
    return dict(body)


def add_principal(
    env: Env, *, project_id: str | None = None, role: Role = Role.ADMIN, secret: str | None = None
) -> tuple[Principal, str]:
    """A new principal in the default organization; with `secret`, stored directly with that secret."""

    def work(conn: Connection) -> tuple[Principal, str]:
        uow = SqlUnitOfWork(conn)
        new = create_principal(
            uow,
            organization_id=env.init.organization_id,
            project_id=project_id,
            role=role,
            name="test",
            now=env.clock.now(),
        )
        if secret is None:
            return new.principal, new.client_secret
        uow.principals.delete(new.principal.id)
        principal = Principal(
            id=new.principal.id,
            client_id=new.principal.client_id,
            name="test",
            organization_id=env.init.organization_id,
            project_id=project_id,
            role=role,
            secret_hash=hash_secret(secret),
            created_at=env.clock.now(),
        )
        uow.principals.add(principal)
        return principal, secret

    return env.db.run(work, write=True)


def principal_row(env: Env, client_id: str) -> Any:
    def work(conn: Connection) -> Any:
        return conn.execute(sa.select(schema.principal).where(schema.principal.c.client_id == client_id)).one()

    return env.db.run(work, write=False)


def jwt_parts(token: str) -> tuple[dict[str, Any], dict[str, Any], bytes]:
    def unb64(part: str) -> bytes:
        return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))

    header, payload, signature = token.split(".")
    return json.loads(unb64(header)), json.loads(unb64(payload)), unb64(signature)


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def project_routes(env: Env) -> list[Route]:
    routes = [r for r in env.app.router.routes if r.access is Access.PROJECT]
    assert len(routes) >= 19, [r.template for r in routes]
    return routes


def concrete_path(route: Route, org_id: str, project_id: str) -> str:
    values = {"org": org_id, "project": project_id, **PARAM_VALUES}

    def fill(match: re.Match[str]) -> str:
        name = match.group(1)
        assert name in values, f"no test value for path parameter {name} in {route.template}"
        return values[name]

    return re.sub(r"\{([^}]+)\}", fill, route.template)


def call(env: Env, route: Route, *, org_id: str | None = None, project_id: str | None = None, **kwargs: Any) -> Any:
    path = concrete_path(route, org_id or env.init.organization_id, project_id or env.init.project_id)
    body = b"{}" if route.method in ("POST", "PUT", "PATCH") else None
    headers = dict(kwargs.pop("headers", {}) or {})
    if body is not None:
        headers.setdefault("Content-Type", "application/json")
    return env.client.request(route.method, path, content=body, headers=headers, **kwargs)


def assert_unauthenticated_everywhere(env: Env, **kwargs: Any) -> list[str]:
    messages = []
    for route in project_routes(env):
        response = call(env, route, **kwargs)
        assert response.status_code == 401, f"{route.method} {route.template}: {response.status_code} {response.text}"
        messages.append(error(response, 16, 401))
    return messages


# --------------------------------------------------------------------------- token endpoint


@pytest.mark.parametrize("path", TOKEN_PATHS)
def test_token_with_go_basic_auth(env: Env, path: str) -> None:
    response = token_request(env.client, path, basic=(env.init.client_id, env.init.client_secret))
    token = assert_token_response(response, env)
    assert ok(env.client.get(env.client.p("/registry"), token=token))["registry"]["id"]


@pytest.mark.parametrize("path", TOKEN_PATHS)
def test_token_with_credentials_in_form(env: Env, path: str) -> None:
    form = form_with_credentials(env.init.client_id, env.init.client_secret)
    token = assert_token_response(token_request(env.client, path, form=form), env)
    assert ok(env.client.get(env.client.p("/registry"), token=token))["registry"]["id"]


@pytest.mark.parametrize("path", TOKEN_PATHS)
def test_basic_then_form_retry_sequence(env: Env, path: str) -> None:
    # x/oauth2 probes Basic first; a non-2xx or an `error` field makes it retry with form credentials.
    first = token_request(env.client, path, basic=(env.init.client_id, env.init.client_secret + "x"))
    assert_oauth_error(first, 401, "invalid_client")
    assert "access_token" not in first.json()
    second = token_request(env.client, path, form=form_with_credentials(env.init.client_id, env.init.client_secret))
    token = assert_token_response(second, env)
    assert ok(env.client.get(env.client.p("/registry"), token=token))["registry"]


def test_query_escaped_basic_credentials_with_special_characters(env: Env) -> None:
    # Secrets the server generates are alphanumeric, but the decoding must match Go's QueryEscape anyway.
    principal, secret = add_principal(env, secret="a b+c/d:e%f&g=h")
    response = token_request(env.client, "/oauth2/token", basic=(principal.client_id, secret))
    token = assert_token_response(response, env)
    assert ok(env.client.get(env.client.p("/registry"), token=token))["registry"]
    in_form = token_request(env.client, "/oauth2/token", form=form_with_credentials(principal.client_id, secret))
    assert_token_response(in_form, env)
    # The unescaped form of the same secret is a different secret.
    raw = "Basic " + base64.b64encode(f"{principal.client_id}:a b+c/d:e%f&g=h".encode()).decode()
    wrong = env.client.post("/oauth2/token", content=GO_FORM, headers={**FORM, "Authorization": raw}, token="")
    assert_oauth_error(wrong, 401, "invalid_client")


@pytest.mark.parametrize("path", TOKEN_PATHS)
def test_unknown_client_and_wrong_secret_answer_identically(env: Env, path: str) -> None:
    wrong_secret = token_request(env.client, path, basic=(env.init.client_id, "not-the-secret"))
    unknown = token_request(env.client, path, basic=("no-such-client", "not-the-secret"))
    assert_oauth_error(wrong_secret, 401, "invalid_client")
    assert unknown.status_code == wrong_secret.status_code
    assert unknown.content == wrong_secret.content
    assert unknown.headers.get("www-authenticate") == wrong_secret.headers.get("www-authenticate")
    # The same through form credentials.
    form_wrong = token_request(env.client, path, form=form_with_credentials(env.init.client_id, "nope"))
    form_unknown = token_request(env.client, path, form=form_with_credentials("no-such-client", "nope"))
    assert (form_wrong.status_code, form_wrong.content) == (form_unknown.status_code, form_unknown.content)
    assert (form_wrong.status_code, form_wrong.content) == (wrong_secret.status_code, wrong_secret.content)


@pytest.mark.parametrize("path", TOKEN_PATHS)
def test_no_credentials_is_invalid_client(env: Env, path: str) -> None:
    assert_oauth_error(token_request(env.client, path), 401, "invalid_client")


@pytest.mark.parametrize("path", TOKEN_PATHS)
@pytest.mark.parametrize(
    "form",
    [
        b"audience=https%3A%2F%2Fapi.hashicorp.cloud",
        b"",
        b"grant_type=&audience=x",
        b"grant_type=password&username=a&password=b",
        b"grant_type=authorization_code&code=abc",
        b"grant_type=refresh_token&refresh_token=abc",
    ],
)
def test_missing_or_other_grant_type(env: Env, path: str, form: bytes) -> None:
    response = token_request(env.client, path, basic=(env.init.client_id, env.init.client_secret), form=form)
    assert_oauth_error(response, 400, "unsupported_grant_type")
    assert "access_token" not in response.json()


def test_secrets_are_stored_hashed(env: Env) -> None:
    principal, secret = add_principal(env)
    for client_id, client_secret in ((env.init.client_id, env.init.client_secret), (principal.client_id, secret)):
        assert len(client_secret) >= 32
        row = principal_row(env, client_id)
        assert row.secret_hash
        assert row.secret_hash != client_secret
        assert client_secret not in row.secret_hash
        assert client_secret[:16] not in row.secret_hash
    # The digest is salted: the same secret never hashes the same way twice.
    assert hash_secret(secret) != principal_row(env, principal.client_id).secret_hash


def test_health_routes_need_no_token(env: Env) -> None:
    for path, status in (("/healthz", "ok"), ("/readyz", "ready")):
        response = env.client.get(path, token="")
        assert response.status_code == 200, response.text
        assert response.json()["status"] == status


# --------------------------------------------------------------------------- bearer check on every project route


def test_a_valid_token_passes_the_check_on_every_project_route(env: Env) -> None:
    # Guards the negative tests below: each route really is reachable with a good token.
    for route in project_routes(env):
        response = call(env, route)
        assert response.status_code not in (401, 403), f"{route.method} {route.template}: {response.text}"


def test_no_authorization_header(env: Env) -> None:
    messages = assert_unauthenticated_everywhere(env, token="")
    assert all("Bearer" in m for m in messages)


@pytest.mark.parametrize(
    "header",
    [
        "Bearer garbage",
        "Bearer ",
        "Bearer a.b.c",
        "Bearer ..",
        "garbage",
        "Token abc",
    ],
)
def test_garbage_authorization(env: Env, header: str) -> None:
    assert_unauthenticated_everywhere(env, headers={"Authorization": header})


def test_basic_authorization_on_api_routes(env: Env) -> None:
    basic = go_basic(env.init.client_id, env.init.client_secret)
    assert_unauthenticated_everywhere(env, headers={"Authorization": basic})


def test_forged_signature(env: Env) -> None:
    token = env.client.token
    header, payload, signature = token.split(".")
    raw = bytearray(base64.urlsafe_b64decode(signature + "=" * (-len(signature) % 4)))
    for index in (0, len(raw) // 2, len(raw) - 1):
        flipped = bytearray(raw)
        flipped[index] ^= 0xFF
        forged = f"{header}.{payload}.{b64(bytes(flipped))}"
        assert forged != token
        assert_unauthenticated_everywhere(env, token=forged)
    # The real token still works: the failures above were the signature, not the test.
    assert ok(env.client.get(env.client.p("/registry")))["registry"]


def test_tampered_payload_with_original_signature(env: Env) -> None:
    header, payload, signature = env.client.token.split(".")
    _, claims, _ = jwt_parts(env.client.token)
    longer = {**claims, "exp": claims["exp"] + 10 * 365 * 86400}
    forged = f"{header}.{b64(json.dumps(longer, separators=(',', ':')).encode())}.{signature}"
    assert_unauthenticated_everywhere(env, token=forged)
    # alg "none" with no signature is not a token either.
    none_header = b64(json.dumps({"alg": "none", "typ": "JWT", "kid": jwt_parts(env.client.token)[0]["kid"]}).encode())
    assert_unauthenticated_everywhere(env, token=f"{none_header}.{payload}.")


def test_token_signed_with_another_key(env: Env) -> None:
    kid = jwt_parts(env.client.token)[0]["kid"]
    principal_id = jwt_parts(env.client.token)[1]["sub"]
    now = env.clock.now()
    ttl = env.settings.token_ttl_seconds
    other_kid = tokens.issue(new_ulid(), tokens.new_signing_salt(), principal_id, now, ttl)
    assert jwt_parts(other_kid)[0]["kid"] != kid
    assert_unauthenticated_everywhere(env, token=other_kid)
    same_kid_other_secret = tokens.issue(kid, tokens.new_signing_salt(), principal_id, now, ttl)
    assert_unauthenticated_everywhere(env, token=same_kid_other_secret)


def test_expired_token(env: Env) -> None:
    token = env.client.token
    ttl = env.settings.token_ttl_seconds
    env.clock.advance(ttl - 1)
    assert ok(env.client.get(env.client.p("/registry"), token=token))["registry"]
    env.clock.advance(1)
    messages = assert_unauthenticated_everywhere(env, token=token)
    assert all("expired" in m for m in messages), messages
    env.clock.advance(86400)
    assert "expired" in error(env.client.get(env.client.p("/registry"), token=token), 16, 401)
    # A fresh token works again.
    fresh = env.token_for(env.init.client_id, env.init.client_secret)
    assert ok(env.client.get(env.client.p("/registry"), token=fresh))["registry"]


def test_token_of_deleted_principal_stops_working_at_once(env: Env) -> None:
    principal, secret = add_principal(env)
    token = env.token_for(principal.client_id, secret)
    assert jwt_parts(token)[1]["sub"] == principal.id
    assert ok(env.client.get(env.client.p("/registry"), token=token))["registry"]

    env.db.run(lambda conn: SqlUnitOfWork(conn).principals.delete(principal.id), write=True)

    assert_unauthenticated_everywhere(env, token=token)
    # Its credentials no longer get a token, and other principals are unaffected.
    assert_oauth_error(
        token_request(env.client, "/oauth2/token", basic=(principal.client_id, secret)), 401, "invalid_client"
    )
    assert ok(env.client.get(env.client.p("/registry")))["registry"]


# --------------------------------------------------------------------------- authorization


def test_other_organization_in_path_is_denied(env: Env) -> None:
    other_org = str(uuid.uuid4())
    for route in project_routes(env):
        for project_id in (env.init.project_id, str(uuid.uuid4())):
            response = call(env, route, org_id=other_org, project_id=project_id)
            error(response, 7, 403)


def test_project_scoped_principal_in_another_project_is_denied(env: Env) -> None:
    second = Project(str(uuid.uuid4()), env.init.organization_id, "second", env.clock.now())

    def add_project(conn: Connection) -> None:
        SqlUnitOfWork(conn).tenants.add_project(second)

    env.db.run(add_project, write=True)
    principal, secret = add_principal(env, project_id=env.init.project_id, role=Role.ADMIN)
    token = env.token_for(principal.client_id, secret)
    assert ok(env.client.get(env.client.p("/registry"), token=token))["registry"]

    for route in project_routes(env):
        # Another project of its organization, existing or not, and another organization: the same 403.
        for org_id, project_id in (
            (env.init.organization_id, second.id),
            (env.init.organization_id, str(uuid.uuid4())),
            (str(uuid.uuid4()), env.init.project_id),
        ):
            response = call(env, route, org_id=org_id, project_id=project_id, token=token)
            error(response, 7, 403)


def test_denial_does_not_reveal_whether_the_project_exists(env: Env) -> None:
    principal, secret = add_principal(env, project_id=env.init.project_id)
    token = env.token_for(principal.client_id, secret)
    other_org = str(uuid.uuid4())
    route_path = "/packer/2021-04-30/organizations/{org}/projects/{project}/registry"
    existing = env.client.get(route_path.format(org=env.init.organization_id, project=env.init.project_id), token=token)
    assert existing.status_code == 200
    a = env.client.get(route_path.format(org=other_org, project=env.init.project_id), token=token)
    b = env.client.get(route_path.format(org=other_org, project=str(uuid.uuid4())), token=token)
    assert (a.status_code, a.content) == (b.status_code, b.content)
    error(a, 7, 403)
