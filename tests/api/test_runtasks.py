"""GetRegistryTFCRunTaskAPI and RegenerateTFCRunTaskHmacKey: URL on this server, HMAC key stored encrypted."""

from __future__ import annotations

import sqlalchemy as sa

from packyard.storage import schema as t
from tests.conftest import Env
from tests.support.client import error, ok


def stored_key(env: Env) -> str:
    with env.db.engine.connect() as conn:
        value = conn.execute(
            sa.select(t.registry.c.hmac_key).where(t.registry.c.project_id == env.init.project_id)
        ).scalar_one()
    return str(value)


def test_run_task_url_and_key_are_stable_until_regenerated(env: Env) -> None:
    c = env.client
    first = ok(c.get(c.p("/runtasks/validation")))
    registry = ok(c.get(c.p("/registry")))["registry"]
    api_id = registry["config"]["tfc_run_task_config"]["api_id"]
    assert first["api_url"] == f"http://packyard.test/packer/2021-04-30/runtask/{api_id}/validation"
    assert len(first["hmac_key"]) >= 32
    assert ok(c.get(c.p("/runtasks/validation"))) == first
    # GetRegistry does not hand out the key.
    assert "hmac_key" not in registry["config"]["tfc_run_task_config"]

    sealed = stored_key(env)
    assert sealed.startswith("v1:")
    assert first["hmac_key"] not in sealed

    new = ok(c.patch(c.p("/runtasks/hmac"), json={}))["hmac_key"]
    assert new != first["hmac_key"]
    after = ok(c.get(c.p("/runtasks/validation")))
    assert after["hmac_key"] == new
    assert after["api_url"] == first["api_url"]
    assert stored_key(env) != sealed


def test_other_task_types_are_not_found(env: Env) -> None:
    c = env.client
    for task in ("plan", "VALIDATION", "x" * 50):
        assert "run task" in error(c.get(c.p(f"/runtasks/{task}")), 5, 404)


def test_key_sealed_with_another_secret_is_refused_clearly(env: Env) -> None:
    c = env.client
    ok(c.get(c.p("/runtasks/validation")))
    with env.db.engine.begin() as conn:
        conn.execute(
            t.registry.update().where(t.registry.c.project_id == env.init.project_id).values(hmac_key="v1:AAAA")
        )
    assert "regenerate" in error(c.get(c.p("/runtasks/validation")), 9, 400)
    fresh = ok(c.patch(c.p("/runtasks/hmac"), json={}))["hmac_key"]
    assert ok(c.get(c.p("/runtasks/validation")))["hmac_key"] == fresh


def test_regenerate_refused_while_deactivated(env: Env) -> None:
    c = env.client
    before = ok(c.get(c.p("/runtasks/validation")))["hmac_key"]
    ok(c.delete(c.p("/registry")))
    assert "deactivated" in error(c.patch(c.p("/runtasks/hmac"), json={}), 9, 400)
    assert ok(c.get(c.p("/runtasks/validation")))["hmac_key"] == before
