"""console users: the single sign-on provider's subject

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-07 17:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

Text = sa.String().with_variant(sa.String(collation="C"), "postgresql")


def upgrade() -> None:
    with op.batch_alter_table("console_user", schema=None) as batch_op:
        batch_op.add_column(sa.Column("sso_subject", Text, nullable=True))
        batch_op.create_unique_constraint(batch_op.f("uq_console_user_sso_subject"), ["sso_subject"])


def downgrade() -> None:
    with op.batch_alter_table("console_user", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("uq_console_user_sso_subject"), type_="unique")
        batch_op.drop_column("sso_subject")
