"""Background work claimed from the database: scheduled revocations falling due.

Any number of server processes may run this loop against one database; each job's side effects and
its 'done' mark commit in one transaction, so exactly one process performs them.
"""

from __future__ import annotations

from sqlalchemy.engine import Connection

from packyard.clock import Clock
from packyard.domain import revocation
from packyard.domain.context import Ctx
from packyard.domain.models import Job
from packyard.domain.rules import Rules
from packyard.storage.db import Database
from packyard.storage.unit_of_work import SqlUnitOfWork


def run_due_jobs(db: Database, clock: Clock, rules: Rules, *, limit: int = 100) -> int:
    """Run the jobs due by now; returns how many this caller ran (others may have run the rest)."""
    now = clock.now()
    due = db.run(lambda conn: SqlUnitOfWork(conn).jobs.due(now, limit), write=False)
    ran = 0
    for job in due:

        def work(conn: Connection, job: Job = job) -> bool:
            ctx = Ctx(
                SqlUnitOfWork(conn),
                rules,
                clock.now(),
                job.organization_id,
                job.project_id,
                None,
                on_behalf_of=job.author_id,
            )
            return revocation.run_job(ctx, job)

        if db.run_write(work, job.project_id):  # storage marks the project changed (the read cache sees it)
            ran += 1
    return ran
