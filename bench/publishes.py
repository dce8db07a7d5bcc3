"""`python -m bench.publishes`: Packer publishes on SQLite and PostgreSQL, one worker each, side by side.

The full benchmark (`python -m bench`) seeds two datasets and takes half an hour; this measures only
the publish figure that issue 16 bars (PostgreSQL at >= 50 % of SQLite, one worker), on empty registries,
alternating the two databases run by run so that both see the same machine. With `--count N` it also
counts what N publishes cost PostgreSQL, statement by statement, when the server has the
pg_stat_statements extension loaded (`shared_preload_libraries=pg_stat_statements`).

    PACKYARD_DATABASE_URL=postgresql://user@host/db python -m bench.publishes [--runs 3] [--seconds 8]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

import sqlalchemy as sa

from bench import publish, servers
from bench.run import PREFIX, PREFIX_2023
from packyard.storage.urls import normalize_url

SLUGS = [f"bucket-{n}" for n in range(100)]


def _fresh(url: str) -> sa.Engine:
    """An autocommit engine on the server's `postgres` database, after (re)creating url's database."""
    target = sa.make_url(normalize_url(url))
    admin = sa.create_engine(target.set(database="postgres"), isolation_level="AUTOCOMMIT", poolclass=sa.NullPool)
    with admin.connect() as conn:
        conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{target.database}" WITH (FORCE)')
        conn.exec_driver_sql(f'CREATE DATABASE "{target.database}"')
    return admin


def _count_start(admin: sa.Engine) -> None:
    with admin.connect() as conn:
        conn.exec_driver_sql("SELECT pg_stat_statements_reset()")


def _count_report(admin: sa.Engine, publishes: int) -> None:
    with admin.connect() as conn:
        rows = conn.exec_driver_sql(
            "SELECT calls, left(regexp_replace(query, '\\s+', ' ', 'g'), 100) FROM pg_stat_statements "
            "WHERE query NOT LIKE '%%pg_stat%%' ORDER BY calls DESC"
        ).all()

    def per_publish(prefix: str) -> float:
        return float(sum(calls for calls, query in rows if query.startswith(prefix))) / publishes

    checks = per_publish("SELECT $2 FROM ONLY")  # run by the server itself, no round trip
    total = per_publish("")
    print(
        f"  per publish: {total:.1f} statements, {total - checks:.1f} sent by packyard ({checks:.1f} are the "
        f"server's own foreign-key checks); BEGIN {per_publish('BEGIN'):.1f}, COMMIT {per_publish('COMMIT'):.1f}, "
        f"ROLLBACK {per_publish('ROLLBACK'):.1f}"
    )
    for calls, query in rows[:25]:
        print(f"  {calls / publishes:7.2f}  {query}")


def _run(database_url: str | None, seconds: float, api: str, count: int) -> float:
    admin = _fresh(database_url) if database_url else None
    with tempfile.TemporaryDirectory(prefix="packyard-publishes-") as tmp:
        data = Path(tmp)
        creds = servers.packyard_init(data, database_url)
        prefix = (PREFIX if api == "2021-04-30" else PREFIX_2023).format(
            org=creds["organization_id"], project=creds["project_id"]
        )
        with servers.packyard(data, database_url, data / "packyard.log") as server:
            token = servers.token(server.port, creds["client_id"], creds["client_secret"])
            if admin is not None and count:
                _count_start(admin)
            result = publish.run(
                server.port, token, prefix, SLUGS, seconds=seconds, api=api, max_publishes=count or 1_000_000
            )
            if result.errors:
                raise SystemExit(f"{len(result.errors)} publishes failed, first: {result.errors[0]}")
            if admin is not None and count:
                _count_report(admin, result.complete)
    if admin is not None:
        admin.dispose()
    return result.per_second


def main() -> int:
    p = argparse.ArgumentParser(prog="python -m bench.publishes", description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", type=int, default=3, help="runs per database, alternating (default 3)")
    p.add_argument("--seconds", type=float, default=8.0, help="seconds per run (default 8)")
    p.add_argument("--api", choices=["2021-04-30", "2023-01-01"], default="2021-04-30")
    p.add_argument("--count", type=int, default=0, help="count what N publishes cost PostgreSQL, then stop")
    args = p.parse_args()
    url = os.environ.get("PACKYARD_DATABASE_URL")
    if not url or url.startswith("sqlite"):
        print("set PACKYARD_DATABASE_URL to a PostgreSQL database this may drop and create", file=sys.stderr)
        return 2
    if args.count:
        _run(url, 600.0, args.api, args.count)
        return 0
    figures: dict[str, list[float]] = {"SQLite": [], "PostgreSQL": []}
    for n in range(args.runs):
        for name, database_url in (("SQLite", None), ("PostgreSQL", url)):
            rate = _run(database_url, args.seconds, args.api, 0)
            figures[name].append(rate)
            print(f"run {n + 1}: {name:10} {rate:7.1f} complete publishes/s ({args.api}, one worker)", flush=True)
    best = {name: max(rates) for name, rates in figures.items()}
    print(
        f"best of {args.runs}: PostgreSQL {best['PostgreSQL']:.1f} / SQLite {best['SQLite']:.1f} publishes/s = "
        f"{100 * best['PostgreSQL'] / best['SQLite']:.1f} % (issue 16's bar: >= 50 %); load average "
        f"{os.getloadavg()[0]:.2f}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
