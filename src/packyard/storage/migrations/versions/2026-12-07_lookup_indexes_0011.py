"""lookup indexes: images by external id, registries by run-task id

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-07 07:10:00
"""

from __future__ import annotations

from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("image", schema=None) as batch_op:
        batch_op.create_index("ix_image_image_id", ["image_id"], unique=False)
    with op.batch_alter_table("registry", schema=None) as batch_op:
        batch_op.create_index("ix_registry_run_task_api_id", ["run_task_api_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("registry", schema=None) as batch_op:
        batch_op.drop_index("ix_registry_run_task_api_id")
    with op.batch_alter_table("image", schema=None) as batch_op:
        batch_op.drop_index("ix_image_image_id")
