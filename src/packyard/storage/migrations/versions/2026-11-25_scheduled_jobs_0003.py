"""scheduled jobs

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25 05:09:52.039138
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "job",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("project_id", sa.String(length=36), nullable=False),
        sa.Column("organization_id", sa.String(length=36), nullable=False),
        sa.Column("iteration_id", sa.String(length=36), nullable=False),
        sa.Column(
            "author_id",
            sa.String().with_variant(sa.String(collation="C"), "postgresql"),
            server_default="",
            nullable=False,
        ),
        sa.Column("rollback_channels", sa.Boolean(), nullable=False),
        sa.Column("skip_descendants", sa.Boolean(), nullable=False),
        sa.Column("run_at", sa.BigInteger(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("done_at", sa.BigInteger(), nullable=True),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_job")),
    )
    with op.batch_alter_table("job", schema=None) as batch_op:
        batch_op.create_index("ix_job_iteration", ["iteration_id"], unique=False)
        batch_op.create_index("ix_job_state_run_at", ["state", "run_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("job", schema=None) as batch_op:
        batch_op.drop_index("ix_job_state_run_at")
        batch_op.drop_index("ix_job_iteration")

    op.drop_table("job")
