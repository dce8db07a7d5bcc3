"""channels and their history

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25 05:06:32.643419
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "channel",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("bucket_id", sa.String(length=36), nullable=False),
        sa.Column("project_id", sa.String(length=36), nullable=False),
        sa.Column("slug", sa.String().with_variant(sa.String(collation="C"), "postgresql"), nullable=False),
        sa.Column("managed", sa.Boolean(), nullable=False),
        sa.Column("restricted", sa.Boolean(), nullable=False),
        sa.Column("iteration_id", sa.String(length=36), nullable=True),
        sa.Column(
            "author_id",
            sa.String().with_variant(sa.String(collation="C"), "postgresql"),
            server_default="",
            nullable=False,
        ),
        sa.Column(
            "assigned_by",
            sa.String().with_variant(sa.String(collation="C"), "postgresql"),
            server_default="",
            nullable=False,
        ),
        sa.Column("assigned_at", sa.BigInteger(), nullable=True),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["bucket_id"], ["bucket.id"], name=op.f("fk_channel_bucket_id_bucket"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["iteration_id"], ["iteration.id"], name=op.f("fk_channel_iteration_id_iteration"), ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_channel")),
        sa.UniqueConstraint("bucket_id", "slug", name="uq_channel_bucket_slug"),
    )
    with op.batch_alter_table("channel", schema=None) as batch_op:
        batch_op.create_index("ix_channel_iteration", ["iteration_id"], unique=False)

    op.create_table(
        "channel_assignment",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("channel_id", sa.String(length=36), nullable=False),
        sa.Column("iteration_id", sa.String(length=36), nullable=True),
        sa.Column(
            "iteration_fingerprint",
            sa.String().with_variant(sa.String(collation="C"), "postgresql"),
            server_default="",
            nullable=False,
        ),
        sa.Column("iteration_version", sa.Integer(), server_default="0", nullable=False),
        sa.Column(
            "author_id",
            sa.String().with_variant(sa.String(collation="C"), "postgresql"),
            server_default="",
            nullable=False,
        ),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["channel_id"], ["channel.id"], name=op.f("fk_channel_assignment_channel_id_channel"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_channel_assignment")),
    )
    with op.batch_alter_table("channel_assignment", schema=None) as batch_op:
        batch_op.create_index("ix_channel_assignment_channel", ["channel_id", "created_at", "id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("channel_assignment", schema=None) as batch_op:
        batch_op.drop_index("ix_channel_assignment_channel")

    op.drop_table("channel_assignment")
    with op.batch_alter_table("channel", schema=None) as batch_op:
        batch_op.drop_index("ix_channel_iteration")

    op.drop_table("channel")
