"""Each project's registry, and its run-task HMAC key, sealed by the Sealer (domain/ports.py) the unit of
work was given."""

from __future__ import annotations

from typing import Any

from packyard.domain.errors import AlreadyExists, Term
from packyard.domain.models import Registry, RunTaskBehaviour, Tier
from packyard.domain.ports import Sealer
from packyard.storage.codecs import from_us, insert_new, opt_from_us, opt_to_us, to_us
from packyard.storage.raw import Conn, Raw
from packyard.storage.repositories import Repository

REGISTRY_COLUMNS = (
    "id, organization_id, project_id, feature_tier, activated, deactivated_at, run_task_api_id, created_at, updated_at"
)


def registry_from(row: tuple[Any, ...]) -> Registry:
    """The Registry of a row of REGISTRY_COLUMNS."""
    id_, org_id, project_id, tier, activated, deactivated_at, run_task_api_id, created_at, updated_at = row
    return Registry(
        id=id_,
        organization_id=org_id,
        project_id=project_id,
        feature_tier=Tier(tier),
        activated=bool(activated),
        created_at=from_us(created_at),
        updated_at=from_us(updated_at),
        run_task_api_id=run_task_api_id,
        deactivated_at=opt_from_us(deactivated_at),
    )


def _values(registry: Registry) -> dict[str, Any]:
    return {
        "feature_tier": registry.feature_tier.value,
        "activated": registry.activated,
        "deactivated_at": opt_to_us(registry.deactivated_at),
        "updated_at": to_us(registry.updated_at),
    }


class SqlRegistries(Repository):
    def __init__(
        self,
        conn: Conn,
        sealer: Sealer | None = None,
        raw: Raw | None = None,
    ) -> None:
        super().__init__(conn, raw)
        self.sealer = sealer

    def _sealer(self) -> Sealer:
        if self.sealer is None:
            raise RuntimeError("this unit of work was opened without the server's vault")
        return self.sealer

    def hmac_key(self, project_id: str) -> str | None:
        row = self.raw.first("SELECT hmac_key FROM registry WHERE project_id = ?", (project_id,))
        sealed = row.hmac_key if row is not None else None
        if not sealed:
            return None
        return self._sealer().open(sealed)  # SealError: the domain words the refusal

    def set_hmac_key(self, project_id: str, key: str) -> None:
        self.raw.update("registry", {"hmac_key": self._sealer().seal(key)}, "project_id", project_id)

    def for_run_task(self, run_task_api_id: str) -> Registry | None:
        row = self.raw.first(f"SELECT {REGISTRY_COLUMNS} FROM registry WHERE run_task_api_id = ?", (run_task_api_id,))
        return registry_from(tuple(row)) if row is not None else None

    def run_task_behaviour(self, project_id: str) -> RunTaskBehaviour:
        row = self.raw.first("SELECT run_task_on_untracked FROM registry WHERE project_id = ?", (project_id,))
        return RunTaskBehaviour(row.run_task_on_untracked) if row is not None else RunTaskBehaviour.UNSET

    def set_run_task_behaviour(self, project_id: str, behaviour: RunTaskBehaviour) -> None:
        self.raw.execute(
            "UPDATE registry SET run_task_on_untracked = ? WHERE project_id = ?", (behaviour.value, project_id)
        )

    def get(self, project_id: str) -> Registry | None:
        row = self.raw.first(f"SELECT {REGISTRY_COLUMNS} FROM registry WHERE project_id = ?", (project_id,))
        return registry_from(tuple(row)) if row is not None else None

    def add(self, registry: Registry) -> None:
        insert_new(
            self.raw,
            "registry",
            {
                "id": registry.id,
                "organization_id": registry.organization_id,
                "project_id": registry.project_id,
                "run_task_api_id": registry.run_task_api_id,
                "created_at": to_us(registry.created_at),
                **_values(registry),
            },
            lambda: AlreadyExists(
                "project {project} already has a registry", subject=Term.REGISTRY, project=registry.project_id
            ),
        )

    def save(self, registry: Registry) -> None:
        self.raw.update("registry", _values(registry), "id", registry.id)

    def purge(self, project_id: str) -> None:
        # The bucket rows' foreign keys cascade to their iterations, builds, images and channels.
        self.raw.execute("DELETE FROM bucket WHERE project_id = ?", (project_id,))
        self.raw.execute("DELETE FROM registry WHERE project_id = ?", (project_id,))
