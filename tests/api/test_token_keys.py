"""Token-signing keys can't be read from the database, and tokens are verified strictly.

The attack that worked before: the signing key sat in the `signing_key` table in clear, so anyone with a
copy of the database (a stolen SQLite file, a pg_dump) could mint a token for any principal. Now the
table holds a salt, and the key is derived from it and the server secret.
"""

from __future__ import annotations

import base64
import secrets
import shutil
from datetime import timedelta
from pathlib import Path

import sqlalchemy as sa

from packyard.auth import tokens
from packyard.clock import ManualClock
from packyard.config import Settings
from packyard.http.factory import create_app
from packyard.storage import schema
from packyard.storage.db import Database
from tests.api.test_auth import assert_unauthenticated_everywhere, b64, jwt_parts
from tests.conftest import START, Backend, Env
from tests.contract.validator import SwaggerContract
from tests.support.client import ApiClient, error, ok


def stored_keys(db: Database) -> list[tuple[str, bytes]]:
    with db.engine.connect() as conn:
        rows = conn.execute(sa.select(schema.signing_key.c.id, schema.signing_key.c.secret)).all()
    return [(row.id, bytes(row.secret)) for row in rows]


def test_a_token_forged_from_a_copy_of_the_database_is_refused(env: Env, tmp_path: Path, backend: Backend) -> None:
    """Everything the database holds about the signing key, used as the key: refused everywhere."""
    if backend.name == "sqlite":  # the copy an attacker would take of the file
        source = Path(env.settings.effective_database_url.removeprefix("sqlite:///"))
        copy = tmp_path / "stolen.db"
        shutil.copyfile(source, copy)
        keys = stored_keys(Database(f"sqlite:///{copy}"))
    else:
        keys = stored_keys(env.db)
    assert keys, "a token was issued, so a signing key row exists"
    principal_id = jwt_parts(env.client.token or "")[1]["sub"]
    kid = jwt_parts(env.client.token or "")[0]["kid"]
    assert kid in {key_id for key_id, _ in keys}
    now = env.clock.now()
    for key_id, stored in keys:
        forged = tokens.issue(key_id, stored, principal_id, now, env.settings.token_ttl_seconds)
        assert_unauthenticated_everywhere(env, token=forged)
    # The real token is accepted: the refusals were the key, not the test.
    assert ok(env.client.get(env.client.p("/registry")))["registry"]


def test_replicas_need_the_same_server_secret(env: Env, contracts: list[SwaggerContract]) -> None:
    """Another server on the same database with another secret accepts none of this one's tokens; with the
    same secret it accepts them (the README: give every replica the same PACKYARD_SECRET_KEY)."""
    url = env.settings.effective_database_url
    for secret, accepted in ((secrets.token_hex(32), False), (env.app.services.settings.secret_key, True)):
        settings = Settings(data_dir=env.settings.data_dir, database_url=url, secret_key=secret)
        db = Database(url)
        app = create_app(settings, db=db, clock=ManualClock(START))
        other = ApiClient(app, contracts, env.client.loop, env.init.organization_id, env.init.project_id)
        other.token = env.client.token
        try:
            response = other.get(other.p("/registry"))
            if accepted:
                assert ok(response)["registry"]
            else:
                assert "not valid" in error(response, 16, 401)
        finally:
            other.close()
            env.client.loop.run_until_complete(app.aclose())
            db.dispose()


def mint(env: Env, *, iat_offset: int = 0, lifetime: int | None = None) -> str:
    """A token signed with the server's real key (as only the server can), with the lifetime given."""
    svc = env.app.services
    kid = jwt_parts(env.client.token or "")[0]["kid"]
    key = svc.tokens._keys[kid]
    principal_id = jwt_parts(env.client.token or "")[1]["sub"]
    now = env.clock.now() + timedelta(seconds=iat_offset)
    return tokens.issue(kid, key, principal_id, now, lifetime or env.settings.token_ttl_seconds)


def test_lifetime_is_capped_at_the_configured_ttl(env: Env) -> None:
    ttl = env.settings.token_ttl_seconds
    assert ok(env.client.get(env.client.p("/registry"), token=mint(env, lifetime=ttl)))["registry"]
    assert_unauthenticated_everywhere(env, token=mint(env, lifetime=ttl + 1))
    assert_unauthenticated_everywhere(env, token=mint(env, lifetime=10 * 365 * 86400))


def test_only_the_canonical_signature_encoding_is_accepted(env: Env) -> None:
    token = env.client.token or ""
    header, payload, signature = token.split(".")
    raw = base64.urlsafe_b64decode(signature + "=" * (-len(signature) % 4))
    assert b64(raw) == signature
    # 32 bytes take 43 characters whose last carries 2 unused bits: flipping them decodes to the same bytes.
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    last = alphabet.index(signature[-1])
    twins = [signature[:-1] + alphabet[(last & ~0b11) | low] for low in range(4)]
    variants = [
        *(t for t in twins if t != signature),
        signature + "=",  # padding
        signature[:10] + "!" + signature[10:],  # a character outside the alphabet, skipped by the decoder
        signature[:10] + "\n" + signature[10:],
    ]
    for variant in variants:
        assert base64.urlsafe_b64decode(variant.replace("!", "").replace("\n", "") + "==") == raw
        assert_unauthenticated_everywhere(env, token=f"{header}.{payload}.{variant}")
    assert ok(env.client.get(env.client.p("/registry"), token=token))["registry"]
