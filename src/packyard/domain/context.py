"""What every domain operation is given: the unit of work, the time, the rules and who is acting where."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from packyard.domain.models import Principal, Registry
from packyard.domain.ports import UnitOfWork
from packyard.domain.rules import Rules


@dataclass(slots=True)
class Ctx:
    uow: UnitOfWork
    rules: Rules
    now: datetime
    organization_id: str
    project_id: str
    actor: Principal | None = None
    # Who background work acts for (the principal that scheduled it), when there is no actor.
    on_behalf_of: str = ""
    # The first instant after `now` at which something this operation derived from the clock flips (a
    # scheduled revocation falling due, a silent RUNNING build turning FAILED); None when nothing it read
    # depends on the clock. What was read stays true until then unless the data changes.
    valid_until: datetime | None = None
    # The project's registry as the unit of work read it with the actor, before the operation (the
    # runner passes it: storage/freshness.py); None: not read yet, domain.registry.get asks storage.
    # domain/registry.py, the only writer of registries, keeps it the registry it wrote.
    registry: Registry | None = None

    def changes_at(self, when: datetime) -> None:
        """Note that a result derived from the clock turns at `when` (ignored unless still ahead)."""
        if when > self.now and (self.valid_until is None or when < self.valid_until):
            self.valid_until = when

    @property
    def author_id(self) -> str:
        return self.actor.client_id if self.actor else (self.on_behalf_of or "packyard")

    @property
    def author_name(self) -> str:
        return self.actor.name if self.actor else (self.on_behalf_of or "packyard")
