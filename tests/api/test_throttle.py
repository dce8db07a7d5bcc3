"""Failed client authentication is throttled per (client id, source address): ten failures within five
minutes lock that client id out of the token endpoint for a minute from that address, known and unknown
ids alike. Every request here comes from one address (the test client's); other addresses, the count per
address and the shared table are in test_token_endpoint.py. Time is the injected clock; nothing sleeps."""

from __future__ import annotations

import base64
from urllib.parse import quote_plus

import httpx
import pytest

from packyard.domain.models import Role
from tests.api.test_roles import new_principal
from tests.conftest import Env
from tests.support.client import ok

FORM = {"Content-Type": "application/x-www-form-urlencoded"}
LIMIT = 10
WINDOW_SECONDS = 300
LOCKOUT_SECONDS = 60


def attempt(env: Env, client_id: str, secret: str, path: str = "/oauth2/token") -> httpx.Response:
    body = f"grant_type=client_credentials&client_id={quote_plus(client_id)}&client_secret={quote_plus(secret)}"
    return env.client.post(path, content=body.encode(), headers=FORM, token="")


def assert_refused(response: httpx.Response) -> None:
    assert response.status_code == 401, response.text
    assert response.json()["error"] == "invalid_client"
    assert "retry-after" not in response.headers


def assert_granted(env: Env, response: httpx.Response) -> None:
    assert response.status_code == 200, response.text
    token = response.json()["access_token"]
    assert ok(env.client.get(env.client.p("/registry"), token=token))["registry"]


def assert_throttled(response: httpx.Response) -> int:
    assert response.status_code == 429, response.text
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert set(body) == {"error", "error_description"}
    assert isinstance(body["error"], str)
    assert body["error"]
    assert isinstance(body["error_description"], str)
    assert body["error_description"]
    assert "access_token" not in body
    retry_after = response.headers["retry-after"]
    assert retry_after.isdigit(), retry_after
    assert int(retry_after) > 0
    return int(retry_after)


def fail(env: Env, client_id: str, times: int, path: str = "/oauth2/token") -> None:
    for _ in range(times):
        assert_refused(attempt(env, client_id, "wrong-secret", path))


def test_eleventh_attempt_is_throttled_even_with_the_right_secret(env: Env) -> None:
    client_id, secret = env.init.client_id, env.init.client_secret
    fail(env, client_id, LIMIT - 1)
    fail(env, client_id, 1)  # the tenth failure is still an ordinary 401
    retry_after = assert_throttled(attempt(env, client_id, secret))
    assert retry_after <= LOCKOUT_SECONDS
    # A wrong secret while locked out is throttled the same way.
    assert_throttled(attempt(env, client_id, "wrong-secret"))
    # Both token paths share the count, and HTTP Basic is throttled like form credentials.
    assert_throttled(attempt(env, client_id, secret, "/oauth/token"))
    basic = "Basic " + base64.b64encode(f"{quote_plus(client_id)}:{quote_plus(secret)}".encode()).decode()
    response = env.client.post(
        "/oauth2/token",
        content=b"grant_type=client_credentials",
        headers={**FORM, "Authorization": basic},
        token="",
    )
    assert_throttled(response)
    # Tokens issued before the lockout keep working: the lockout is about issuing tokens.
    assert ok(env.client.get(env.client.p("/registry")))["registry"]


def test_retry_after_counts_down_with_the_clock(env: Env) -> None:
    client_id, secret = env.init.client_id, env.init.client_secret
    fail(env, client_id, LIMIT)
    assert assert_throttled(attempt(env, client_id, secret)) == LOCKOUT_SECONDS
    env.clock.advance(seconds=20)
    assert assert_throttled(attempt(env, client_id, secret)) == LOCKOUT_SECONDS - 20
    env.clock.advance(seconds=39)
    assert assert_throttled(attempt(env, client_id, secret)) == 1
    env.clock.advance(seconds=1)
    assert_granted(env, attempt(env, client_id, secret))


def test_unknown_client_id_is_throttled_identically(env: Env) -> None:
    known, unknown = env.init.client_id, "no-such-client-id"
    fail(env, known, LIMIT)
    fail(env, unknown, LIMIT)
    known_answer = attempt(env, known, env.init.client_secret)
    unknown_answer = attempt(env, unknown, "anything")
    assert_throttled(known_answer)
    assert_throttled(unknown_answer)
    assert unknown_answer.status_code == known_answer.status_code
    assert unknown_answer.json() == known_answer.json()
    assert unknown_answer.headers["retry-after"] == known_answer.headers["retry-after"]
    assert unknown_answer.headers["content-type"] == known_answer.headers["content-type"]
    # Nine failures of an unknown id are not yet a lockout, exactly as for a known one.
    fail(env, "another-unknown-id", LIMIT - 1)
    assert_refused(attempt(env, "another-unknown-id", "anything"))


def test_other_client_ids_are_unaffected(env: Env) -> None:
    other_id, other_secret = new_principal(env, Role.VIEWER, name="bystander")
    fail(env, env.init.client_id, LIMIT)
    assert_throttled(attempt(env, env.init.client_id, env.init.client_secret))
    assert_granted(env, attempt(env, other_id, other_secret))
    # The other id has its own count: one failure of its own is an ordinary 401.
    assert_refused(attempt(env, other_id, "wrong-secret"))
    assert_granted(env, attempt(env, other_id, other_secret))
    assert_throttled(attempt(env, env.init.client_id, env.init.client_secret))


def test_lockout_ends_and_success_resets_the_count(env: Env) -> None:
    client_id, secret = env.init.client_id, env.init.client_secret
    fail(env, client_id, LIMIT)
    assert_throttled(attempt(env, client_id, secret))
    env.clock.advance(seconds=LOCKOUT_SECONDS + 1)
    assert_granted(env, attempt(env, client_id, secret))
    # The ten failures are still inside the window, but the success cleared them: it takes ten new ones.
    fail(env, client_id, LIMIT - 1)
    assert_granted(env, attempt(env, client_id, secret))
    fail(env, client_id, LIMIT)
    assert_throttled(attempt(env, client_id, secret))


def test_failures_older_than_the_window_do_not_count(env: Env) -> None:
    client_id, secret = env.init.client_id, env.init.client_secret
    fail(env, client_id, LIMIT - 1)
    env.clock.advance(seconds=WINDOW_SECONDS + 1)
    fail(env, client_id, LIMIT - 1)
    # Eighteen failures in all, but only nine within the last five minutes.
    assert_granted(env, attempt(env, client_id, secret))


@pytest.mark.parametrize("unknown", [False, True], ids=["known", "unknown"])
def test_failures_inside_the_window_add_up_and_the_lockout_lasts_as_announced(env: Env, unknown: bool) -> None:
    client_id = "no-such-client-id" if unknown else env.init.client_id
    secret = "anything" if unknown else env.init.client_secret
    fail(env, client_id, LIMIT - 1)
    env.clock.advance(seconds=WINDOW_SECONDS - 1)
    fail(env, client_id, 1)
    assert assert_throttled(attempt(env, client_id, secret)) == LOCKOUT_SECONDS
    # The first nine failures leave the window a second later; the lockout still runs the minute it announced.
    env.clock.advance(seconds=1)
    assert assert_throttled(attempt(env, client_id, secret)) == LOCKOUT_SECONDS - 1
    env.clock.advance(seconds=LOCKOUT_SECONDS - 2)
    assert assert_throttled(attempt(env, client_id, secret)) == 1
    env.clock.advance(seconds=1)
    response = attempt(env, client_id, secret)
    if unknown:
        assert_refused(response)
    else:
        assert_granted(env, response)
