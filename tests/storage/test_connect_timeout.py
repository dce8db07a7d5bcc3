"""A PostgreSQL connection attempt is bounded (libpq's connect_timeout): a server that drops packets fails
it in seconds, not after the kernel's TCP timeout. A connect_timeout in the URL wins."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from packyard.storage.db import CONNECT_TIMEOUT_S, create_engine
from packyard.storage.green import connect_arguments
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


def test_the_request_paths_connections_have_the_same_timeout() -> None:
    """PostgreSQL's request path (asyncpg, storage/green.py) is bounded the same way, and its DSN keeps
    libpq's other parameters for asyncpg to read, but not connect_timeout, which asyncpg would send to
    the server as a setting."""
    url = "postgresql+psycopg://packyard:secret@db.example:5433/registry?sslmode=require"
    dsn, options = connect_arguments(url, CONNECT_TIMEOUT_S)
    assert options["timeout"] == CONNECT_TIMEOUT_S
    assert options["server_settings"] == {"default_transaction_isolation": "read committed"}
    parsed = sa.make_url(dsn)
    assert (parsed.drivername, parsed.host, parsed.port, parsed.database) == (
        "postgresql",
        "db.example",
        5433,
        "registry",
    )
    assert (parsed.username, parsed.password) == ("packyard", "secret")
    assert dict(parsed.query) == {"sslmode": "require"}
    dsn, options = connect_arguments(url + "&connect_timeout=3", CONNECT_TIMEOUT_S)
    assert options["timeout"] == 3.0
    assert "connect_timeout" not in dict(sa.make_url(dsn).query)
