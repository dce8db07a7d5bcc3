"""index builds by source and project

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-25 06:28:45.285560
"""

from __future__ import annotations

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("build", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_build_source_iteration"))
        batch_op.create_index("ix_build_source_iteration_project", ["source_iteration_id", "project_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("build", schema=None) as batch_op:
        batch_op.drop_index("ix_build_source_iteration_project")
        batch_op.create_index(batch_op.f("ix_build_source_iteration"), ["source_iteration_id"], unique=False)
