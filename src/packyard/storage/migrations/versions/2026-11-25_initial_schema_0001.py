"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-25 05:00:04.702677
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "organization",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("name", sa.String().with_variant(sa.String(collation="C"), "postgresql"), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_organization")),
    )
    op.create_table(
        "signing_key",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("secret", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_signing_key")),
    )
    op.create_table(
        "project",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("organization_id", sa.String(length=36), nullable=False),
        sa.Column("name", sa.String().with_variant(sa.String(collation="C"), "postgresql"), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organization.id"],
            name=op.f("fk_project_organization_id_organization"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_project")),
    )
    with op.batch_alter_table("project", schema=None) as batch_op:
        batch_op.create_index("ix_project_organization", ["organization_id", "created_at"], unique=False)

    op.create_table(
        "bucket",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("project_id", sa.String(length=36), nullable=False),
        sa.Column("slug", sa.String().with_variant(sa.String(collation="C"), "postgresql"), nullable=False),
        sa.Column(
            "description",
            sa.String().with_variant(sa.String(collation="C"), "postgresql"),
            server_default="",
            nullable=False,
        ),
        sa.Column("labels", sa.JSON(), nullable=False),
        sa.Column("platforms", sa.JSON(), nullable=False),
        sa.Column("latest_iteration_id", sa.String(length=36), nullable=True),
        sa.Column("latest_version", sa.Integer(), server_default="0", nullable=False),
        sa.Column("iteration_count", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("version_counter", sa.Integer(), server_default="0", nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["project_id"], ["project.id"], name=op.f("fk_bucket_project_id_project"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_bucket")),
        sa.UniqueConstraint("project_id", "slug", name="uq_bucket_project_slug"),
    )
    with op.batch_alter_table("bucket", schema=None) as batch_op:
        batch_op.create_index("ix_bucket_project_created", ["project_id", "created_at", "id"], unique=False)
        batch_op.create_index("ix_bucket_project_updated", ["project_id", "updated_at", "id"], unique=False)

    op.create_table(
        "principal",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("client_id", sa.String().with_variant(sa.String(collation="C"), "postgresql"), nullable=False),
        sa.Column("name", sa.String().with_variant(sa.String(collation="C"), "postgresql"), nullable=False),
        sa.Column("organization_id", sa.String(length=36), nullable=False),
        sa.Column("project_id", sa.String(length=36), nullable=True),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("secret_hash", sa.String().with_variant(sa.String(collation="C"), "postgresql"), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organization.id"],
            name=op.f("fk_principal_organization_id_organization"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["project_id"], ["project.id"], name=op.f("fk_principal_project_id_project"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_principal")),
        sa.UniqueConstraint("client_id", name=op.f("uq_principal_client_id")),
    )
    op.create_table(
        "registry",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("organization_id", sa.String(length=36), nullable=False),
        sa.Column("project_id", sa.String(length=36), nullable=False),
        sa.Column("feature_tier", sa.String(length=16), nullable=False),
        sa.Column("activated", sa.Boolean(), nullable=False),
        sa.Column("deactivated_at", sa.BigInteger(), nullable=True),
        sa.Column("run_task_api_id", sa.String(length=36), nullable=False),
        sa.Column("hmac_key", sa.String().with_variant(sa.String(collation="C"), "postgresql"), nullable=True),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["project_id"], ["project.id"], name=op.f("fk_registry_project_id_project"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_registry")),
        sa.UniqueConstraint("project_id", name=op.f("uq_registry_project_id")),
    )
    op.create_table(
        "iteration",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("bucket_id", sa.String(length=36), nullable=False),
        sa.Column("project_id", sa.String(length=36), nullable=False),
        sa.Column("fingerprint", sa.String().with_variant(sa.String(collation="C"), "postgresql"), nullable=False),
        sa.Column("incremental_version", sa.Integer(), server_default="0", nullable=False),
        sa.Column("complete", sa.Boolean(), nullable=False),
        sa.Column(
            "author_id",
            sa.String().with_variant(sa.String(collation="C"), "postgresql"),
            server_default="",
            nullable=False,
        ),
        sa.Column("template_type", sa.String(length=24), nullable=False),
        sa.Column("revoke_at", sa.BigInteger(), nullable=True),
        sa.Column(
            "revocation_message",
            sa.String().with_variant(sa.String(collation="C"), "postgresql"),
            server_default="",
            nullable=False,
        ),
        sa.Column(
            "revocation_author",
            sa.String().with_variant(sa.String(collation="C"), "postgresql"),
            server_default="",
            nullable=False,
        ),
        sa.Column("revocation_type", sa.String(length=16), server_default="UNSET", nullable=False),
        sa.Column("revocation_inherited_from", sa.String(length=36), nullable=True),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["bucket_id"], ["bucket.id"], name=op.f("fk_iteration_bucket_id_bucket"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_iteration")),
        sa.UniqueConstraint("bucket_id", "fingerprint", name="uq_iteration_bucket_fingerprint"),
    )
    with op.batch_alter_table("iteration", schema=None) as batch_op:
        batch_op.create_index("ix_iteration_bucket_created", ["bucket_id", "created_at", "id"], unique=False)
        batch_op.create_index("ix_iteration_bucket_updated", ["bucket_id", "updated_at", "id"], unique=False)
        batch_op.create_index(
            "ix_iteration_bucket_version_id", ["bucket_id", "incremental_version", "id"], unique=False
        )
        batch_op.create_index("ix_iteration_project", ["project_id", "id"], unique=False)
        batch_op.create_index(
            "uq_iteration_bucket_version",
            ["bucket_id", "incremental_version"],
            unique=True,
            sqlite_where=sa.text("incremental_version > 0"),
            postgresql_where=sa.text("incremental_version > 0"),
        )

    op.create_table(
        "build",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("iteration_id", sa.String(length=36), nullable=False),
        sa.Column("bucket_id", sa.String(length=36), nullable=False),
        sa.Column("project_id", sa.String(length=36), nullable=False),
        sa.Column("component_type", sa.String().with_variant(sa.String(collation="C"), "postgresql"), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column(
            "packer_run_uuid",
            sa.String().with_variant(sa.String(collation="C"), "postgresql"),
            server_default="",
            nullable=False,
        ),
        sa.Column(
            "cloud_provider",
            sa.String().with_variant(sa.String(collation="C"), "postgresql"),
            server_default="",
            nullable=False,
        ),
        sa.Column(
            "source_image_id",
            sa.String().with_variant(sa.String(collation="C"), "postgresql"),
            server_default="",
            nullable=False,
        ),
        sa.Column("source_iteration_id", sa.String(length=36), server_default="", nullable=False),
        sa.Column(
            "source_channel_id",
            sa.String().with_variant(sa.String(collation="C"), "postgresql"),
            server_default="",
            nullable=False,
        ),
        sa.Column("source_build_ulid", sa.String(length=36), server_default="", nullable=False),
        sa.Column("labels", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.BigInteger(), nullable=False),
        sa.Column("heartbeat_at", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["iteration_id"],
            ["iteration.id"],
            name=op.f("fk_build_iteration_id_iteration"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_build")),
        sa.UniqueConstraint("iteration_id", "component_type", name="uq_build_iteration_component"),
    )
    with op.batch_alter_table("build", schema=None) as batch_op:
        batch_op.create_index("ix_build_project", ["project_id", "id"], unique=False)
        batch_op.create_index("ix_build_source_iteration", ["source_iteration_id"], unique=False)

    op.create_table(
        "image",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("build_id", sa.String(length=36), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("image_id", sa.String().with_variant(sa.String(collation="C"), "postgresql"), nullable=False),
        sa.Column(
            "region",
            sa.String().with_variant(sa.String(collation="C"), "postgresql"),
            server_default="",
            nullable=False,
        ),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["build_id"], ["build.id"], name=op.f("fk_image_build_id_build"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_image")),
    )
    with op.batch_alter_table("image", schema=None) as batch_op:
        batch_op.create_index("ix_image_build", ["build_id", "position"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("image", schema=None) as batch_op:
        batch_op.drop_index("ix_image_build")

    op.drop_table("image")
    with op.batch_alter_table("build", schema=None) as batch_op:
        batch_op.drop_index("ix_build_source_iteration")
        batch_op.drop_index("ix_build_project")

    op.drop_table("build")
    with op.batch_alter_table("iteration", schema=None) as batch_op:
        batch_op.drop_index(
            "uq_iteration_bucket_version",
            sqlite_where=sa.text("incremental_version > 0"),
            postgresql_where=sa.text("incremental_version > 0"),
        )
        batch_op.drop_index("ix_iteration_project")
        batch_op.drop_index("ix_iteration_bucket_version_id")
        batch_op.drop_index("ix_iteration_bucket_updated")
        batch_op.drop_index("ix_iteration_bucket_created")

    op.drop_table("iteration")
    op.drop_table("registry")
    op.drop_table("principal")
    with op.batch_alter_table("bucket", schema=None) as batch_op:
        batch_op.drop_index("ix_bucket_project_updated")
        batch_op.drop_index("ix_bucket_project_created")

    op.drop_table("bucket")
    with op.batch_alter_table("project", schema=None) as batch_op:
        batch_op.drop_index("ix_project_organization")

    op.drop_table("project")
    op.drop_table("signing_key")
    op.drop_table("organization")
