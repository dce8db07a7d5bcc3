"""What every request's trip is given besides the request: settings, database, clock, rules, tokens and
the vault. One per app (per worker process)."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any

from packyard.auth.service import TokenService
from packyard.auth.vault import Vault, load_or_create_secret
from packyard.clock import Clock
from packyard.config import Settings
from packyard.domain.rules import Rules
from packyard.ops.readiness import Health
from packyard.storage.db import Database

if TYPE_CHECKING:
    from prometheus_client.registry import CollectorRegistry

    from packyard.ops.metrics import Metrics


class Services:
    def __init__(self, settings: Settings, db: Database, clock: Clock) -> None:
        self.settings = settings
        self.db = db
        self.clock = clock
        self.rules = Rules(limits=settings.limits, heartbeat_grace_seconds=settings.heartbeat_grace_seconds)
        self.vault = Vault(settings.secret_key or load_or_create_secret(settings.data_dir))
        self.tokens = TokenService(settings.token_ttl_seconds, self.vault)
        # Work a request started and doesn't wait for (the run task's check), held until it ends.
        self.background: set[asyncio.Task[None]] = set()
        self.health = Health()  # what /readyz reads besides the database (ops/readiness.py)
        self.metrics: Metrics | None = None  # set when metrics are on (ops/metrics.py attach)
        self.metrics_registry: CollectorRegistry | None = None

    def spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self.background.add(task)
        task.add_done_callback(self.background.discard)

    async def settle(self, timeout: float) -> None:
        """Let background work finish for up to `timeout` seconds, then cancel what is left."""
        if not self.background:
            return
        _, pending = await asyncio.wait(set(self.background), timeout=timeout)
        for task in pending:
            task.cancel()
