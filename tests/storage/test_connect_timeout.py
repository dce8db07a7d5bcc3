"""A PostgreSQL connection attempt is bounded (libpq's connect_timeout): a server that drops packets fails
it in seconds, not after the kernel's TCP timeout. A connect_timeout in the URL wins."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from packyard.storage.db import CONNECT_TIMEOUT_S, create_engine
from tests.conftest import Env


def _timeout_of(url: str) -> str | None:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            driver = conn.connection.driver_connection
            assert driver is not None
            parameters: dict[str, str] = driver.info.get_parameters()
            return parameters.get("connect_timeout")
    finally:
        engine.dispose()


def test_postgresql_connections_have_a_connect_timeout(env: Env) -> None:
    url = env.settings.effective_database_url
    if not url.startswith("postgres"):
        pytest.skip("SQLite opens a file: there is no connection to time out")
    assert _timeout_of(url) == str(CONNECT_TIMEOUT_S)
    own = sa.make_url(url).update_query_dict({"connect_timeout": "3"}).render_as_string(hide_password=False)
    assert _timeout_of(own) == "3"
