"""Crash safety: `bench/crash.py`'s machinery for a few seconds on this lane's database.

Concurrent clients publish, move channels, revoke and restore while the server is killed with SIGKILL
and restarted; every write answered 200 must be there afterwards, nothing may answer 5xx, and the
database must pass its integrity checks. The checker itself is then shown a lost write.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
import sqlalchemy as sa
from bench import crash

from packyard.storage import schema as t
from packyard.storage.db import Database
from tests.conftest import Backend

pytestmark = pytest.mark.slow


def test_acknowledged_writes_survive_sigkill(tmp_path: Path, backend: Backend) -> None:
    url = backend.new_url(tmp_path)
    init = backend.init
    creds = crash.Credentials(init.organization_id, init.project_id, init.client_id, init.client_secret)
    try:
        report = crash.run(url, creds, tmp_path, seconds=6, clients=6, kill_interval=(1.0, 2.0), min_kills=2)
        print(report.render())
        assert report.kills >= 3, "two kills under load and the final one"
        assert report.restarts == report.kills
        assert report.acknowledged > 100
        assert report.ledger.acked["build DONE"] > 10
        assert report.ledger.acked["channel move"] > 0
        assert report.ledger.acked["revoke"] > 0
        assert report.verdict.missing == []
        assert report.verdict.found >= report.acknowledged
        assert report.ledger.server_errors == []
        assert report.ledger.anomalies == []
        assert report.integrity_ok, report.integrity
        assert report.exit_code == 0
        assert report.ok

        # The checker notices lost writes: take away one acknowledged channel move's history entry and
        # the images of one acknowledged DONE build, then look again.
        move = report.ledger.moves[0]
        done = next(b for it in report.ledger.iterations.values() for b in it.builds if b.acked == crash.DONE)
        db = Database(url)
        try:
            with db.engine.begin() as conn:
                conn.execute(
                    sa.delete(t.channel_assignment).where(t.channel_assignment.c.iteration_id == move.iteration_id)
                )
                conn.execute(sa.delete(t.image).where(t.image.c.build_id == done.id))
        finally:
            db.dispose()
        server = crash.Server(url, tmp_path, crash.free_port())
        try:
            server.start()
            verdict, _ = asyncio.run(crash.check(server.url, creds, report.ledger))
        finally:
            server.kill()
        assert any(move.iteration_id in m and "history" in m for m in verdict.missing), verdict.missing
        assert any(done.id in m and "DONE acknowledged" in m for m in verdict.missing), verdict.missing
    finally:
        backend.release(url)
