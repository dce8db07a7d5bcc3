"""token failures

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-07 09:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "token_failure",
        sa.Column("address", sa.String(length=64), nullable=False),
        sa.Column("client_id", sa.String(length=64), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("first_at", sa.BigInteger(), nullable=False),
        sa.Column("locked_until", sa.BigInteger(), nullable=False),
        sa.Column("expires_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("address", "client_id", name=op.f("pk_token_failure")),
    )
    with op.batch_alter_table("token_failure", schema=None) as batch_op:
        batch_op.create_index("ix_token_failure_expires_at", ["expires_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("token_failure", schema=None) as batch_op:
        batch_op.drop_index("ix_token_failure_expires_at")

    op.drop_table("token_failure")
