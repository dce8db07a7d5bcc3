"""own revocation kept aside

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-25 05:29:22.076701
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("iteration", schema=None) as batch_op:
        batch_op.add_column(sa.Column("own_revoke_at", sa.BigInteger(), nullable=True))
        batch_op.add_column(
            sa.Column(
                "own_revocation_message",
                sa.String().with_variant(sa.String(collation="C"), "postgresql"),
                server_default="",
                nullable=False,
            )
        )
        batch_op.add_column(
            sa.Column(
                "own_revocation_author",
                sa.String().with_variant(sa.String(collation="C"), "postgresql"),
                server_default="",
                nullable=False,
            )
        )


def downgrade() -> None:
    with op.batch_alter_table("iteration", schema=None) as batch_op:
        batch_op.drop_column("own_revocation_author")
        batch_op.drop_column("own_revocation_message")
        batch_op.drop_column("own_revoke_at")
