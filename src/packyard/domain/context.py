"""What every domain operation is given: the unit of work, the time, the rules and who is acting where."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from packyard.domain.models import Principal
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

    @property
    def author_id(self) -> str:
        return self.actor.client_id if self.actor else (self.on_behalf_of or "packyard")

    @property
    def author_name(self) -> str:
        return self.actor.name if self.actor else (self.on_behalf_of or "packyard")
