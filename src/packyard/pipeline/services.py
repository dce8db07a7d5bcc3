"""What every request's trip is given besides the request: settings, database, clock, rules, tokens and
the vault. One per app (per worker process)."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any

from packyard.auth.service import TokenService
from packyard.auth.vault import Vault, load_or_create_secret
from packyard.clock import Clock
from packyard.config import Settings
from packyard.domain.rules import Rules
from packyard.storage.db import Database


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
