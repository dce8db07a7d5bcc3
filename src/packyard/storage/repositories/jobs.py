"""Background work claimed from the database: scheduled revocations falling due."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from packyard.domain.models import Job
from packyard.storage.codecs import from_us, to_us
from packyard.storage.repositories import Repository

_JOB_COLUMNS = (
    "id, kind, organization_id, project_id, iteration_id, author_id, rollback_channels, skip_descendants, "
    "run_at, state, created_at"
)


def _job(r: Any) -> Job:
    return Job(
        id=r.id,
        kind=r.kind,
        organization_id=r.organization_id,
        project_id=r.project_id,
        iteration_id=r.iteration_id,
        author_id=r.author_id,
        rollback_channels=bool(r.rollback_channels),
        skip_descendants=bool(r.skip_descendants),
        run_at=from_us(r.run_at),
        created_at=from_us(r.created_at),
        state=r.state,
    )


class SqlJobs(Repository):
    def add(self, job: Job) -> None:
        self.raw.insert(
            "job",
            {
                "id": job.id,
                "kind": job.kind,
                "organization_id": job.organization_id,
                "project_id": job.project_id,
                "iteration_id": job.iteration_id,
                "author_id": job.author_id,
                "rollback_channels": job.rollback_channels,
                "skip_descendants": job.skip_descendants,
                "run_at": to_us(job.run_at),
                "state": job.state,
                "created_at": to_us(job.created_at),
            },
        )

    def cancel_for(self, iteration_id: str, now: datetime) -> None:
        self.raw.execute(
            "UPDATE job SET state = 'cancelled', done_at = ? WHERE iteration_id = ? AND state = 'pending'",
            (to_us(now), iteration_id),
        )

    def for_iteration(self, iteration_id: str, limit: int) -> list[Job]:
        rows = self.raw.rows(
            f"SELECT {_JOB_COLUMNS} FROM job WHERE iteration_id = ? ORDER BY created_at DESC, id DESC LIMIT ?",
            (iteration_id, limit),
        )
        return [_job(r) for r in rows]

    def due(self, now: datetime, limit: int) -> list[Job]:
        rows = self.raw.rows(
            f"SELECT {_JOB_COLUMNS} FROM job WHERE state = 'pending' AND run_at <= ? ORDER BY run_at, id LIMIT ?",
            (to_us(now), limit),
        )
        return [_job(r) for r in rows]

    def claim(self, job_id: str, now: datetime) -> bool:
        # The row lock (PostgreSQL) or the write lock (SQLite) makes exactly one claimant see rowcount 1;
        # a second one waits for the first to commit and then finds the job no longer pending.
        changed = self.raw.execute(
            "UPDATE job SET state = 'done', done_at = ? WHERE id = ? AND state = 'pending'", (to_us(now), job_id)
        )
        return changed == 1
