"""The tables. Times are integer microseconds since the epoch (UTC), identical on SQLite and PostgreSQL."""

from __future__ import annotations

import sqlalchemy as sa

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
metadata = sa.MetaData(naming_convention=NAMING)

# Byte-order comparison on both databases, so keyset pages agree (PostgreSQL would otherwise use the locale).
Text = sa.String().with_variant(sa.String(collation="C"), "postgresql")
Id = sa.String(36)
Time = sa.BigInteger


def _id(name: str = "id", **kw: object) -> sa.Column[str]:
    return sa.Column(name, Id, primary_key=True, **kw)  # type: ignore[arg-type]


organization = sa.Table(
    "organization",
    metadata,
    _id(),
    sa.Column("name", Text, nullable=False),
    sa.Column("created_at", Time, nullable=False),
)

project = sa.Table(
    "project",
    metadata,
    _id(),
    sa.Column("organization_id", Id, sa.ForeignKey("organization.id", ondelete="CASCADE"), nullable=False),
    sa.Column("name", Text, nullable=False),
    sa.Column("created_at", Time, nullable=False),
    # Bumped by every transaction that changes the project's data (storage/db.py bump_stamps), so that a
    # process can tell with one read whether what it cached for the project still holds (pipeline/cache.py).
    sa.Column("change_stamp", sa.BigInteger, nullable=False, server_default="0"),
    sa.Index("ix_project_organization", "organization_id", "created_at"),
)

principal = sa.Table(
    "principal",
    metadata,
    _id(),
    sa.Column("client_id", Text, nullable=False, unique=True),
    sa.Column("name", Text, nullable=False),
    sa.Column("organization_id", Id, sa.ForeignKey("organization.id", ondelete="CASCADE"), nullable=False),
    sa.Column("project_id", Id, sa.ForeignKey("project.id", ondelete="CASCADE"), nullable=True),
    sa.Column("role", sa.String(16), nullable=False),
    sa.Column("secret_hash", Text, nullable=False),
    sa.Column("created_at", Time, nullable=False),
)

signing_key = sa.Table(
    "signing_key",
    metadata,
    _id(),
    sa.Column("secret", sa.LargeBinary, nullable=False),
    sa.Column("created_at", Time, nullable=False),
)

registry = sa.Table(
    "registry",
    metadata,
    _id(),
    sa.Column("organization_id", Id, nullable=False),
    sa.Column("project_id", Id, sa.ForeignKey("project.id", ondelete="CASCADE"), nullable=False, unique=True),
    sa.Column("feature_tier", sa.String(16), nullable=False),
    sa.Column("activated", sa.Boolean, nullable=False),
    sa.Column("deactivated_at", Time, nullable=True),
    sa.Column("run_task_api_id", Id, nullable=False),
    sa.Column("hmac_key", Text, nullable=True),
    # The run task's on_untracked_image: "" (unset), FAIL or WARN.
    sa.Column("run_task_on_untracked", sa.String(16), nullable=False, server_default=""),
    sa.Column("created_at", Time, nullable=False),
    sa.Column("updated_at", Time, nullable=False),
    sa.Index("ix_registry_run_task_api_id", "run_task_api_id"),
)

bucket = sa.Table(
    "bucket",
    metadata,
    _id(),
    sa.Column("project_id", Id, sa.ForeignKey("project.id", ondelete="CASCADE"), nullable=False),
    sa.Column("slug", Text, nullable=False),
    sa.Column("description", Text, nullable=False, server_default=""),
    sa.Column("labels", sa.JSON, nullable=False),
    sa.Column("platforms", sa.JSON, nullable=False),
    sa.Column("latest_iteration_id", Id, nullable=True),
    sa.Column("latest_version", sa.Integer, nullable=False, server_default="0"),
    sa.Column("iteration_count", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("version_counter", sa.Integer, nullable=False, server_default="0"),
    sa.Column("created_at", Time, nullable=False),
    sa.Column("updated_at", Time, nullable=False),
    sa.UniqueConstraint("project_id", "slug", name="uq_bucket_project_slug"),
    sa.Index("ix_bucket_project_created", "project_id", "created_at", "id"),
    sa.Index("ix_bucket_project_updated", "project_id", "updated_at", "id"),
)

iteration = sa.Table(
    "iteration",
    metadata,
    _id(),
    sa.Column("bucket_id", Id, sa.ForeignKey("bucket.id", ondelete="CASCADE"), nullable=False),
    sa.Column("project_id", Id, nullable=False),
    sa.Column("fingerprint", Text, nullable=False),
    sa.Column("incremental_version", sa.Integer, nullable=False, server_default="0"),
    sa.Column("complete", sa.Boolean, nullable=False),
    sa.Column("author_id", Text, nullable=False, server_default=""),
    sa.Column("template_type", sa.String(24), nullable=False),
    sa.Column("revoke_at", Time, nullable=True),
    sa.Column("revocation_message", Text, nullable=False, server_default=""),
    sa.Column("revocation_author", Text, nullable=False, server_default=""),
    sa.Column("revocation_type", sa.String(16), nullable=False, server_default="UNSET"),
    sa.Column("revocation_inherited_from", Id, nullable=True),
    sa.Column("created_at", Time, nullable=False),
    sa.Column("updated_at", Time, nullable=False),
    # An iteration's own scheduled revocation, kept aside while an ancestor's earlier one overrides it.
    sa.Column("own_revoke_at", Time, nullable=True),
    sa.Column("own_revocation_message", Text, nullable=False, server_default=""),
    sa.Column("own_revocation_author", Text, nullable=False, server_default=""),
    sa.UniqueConstraint("bucket_id", "fingerprint", name="uq_iteration_bucket_fingerprint"),
    sa.Index(
        "uq_iteration_bucket_version",
        "bucket_id",
        "incremental_version",
        unique=True,
        sqlite_where=sa.text("incremental_version > 0"),
        postgresql_where=sa.text("incremental_version > 0"),
    ),
    sa.Index("ix_iteration_bucket_created", "bucket_id", "created_at", "id"),
    sa.Index("ix_iteration_bucket_updated", "bucket_id", "updated_at", "id"),
    sa.Index("ix_iteration_bucket_version_id", "bucket_id", "incremental_version", "id"),
    sa.Index("ix_iteration_project", "project_id", "id"),
)

build = sa.Table(
    "build",
    metadata,
    _id(),
    sa.Column("iteration_id", Id, sa.ForeignKey("iteration.id", ondelete="CASCADE"), nullable=False),
    sa.Column("bucket_id", Id, nullable=False),
    sa.Column("project_id", Id, nullable=False),
    sa.Column("component_type", Text, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("packer_run_uuid", Text, nullable=False, server_default=""),
    sa.Column("cloud_provider", Text, nullable=False, server_default=""),
    sa.Column("source_image_id", Text, nullable=False, server_default=""),
    sa.Column("source_iteration_id", Id, nullable=False, server_default=""),
    sa.Column("source_channel_id", Text, nullable=False, server_default=""),
    sa.Column("source_build_ulid", Id, nullable=False, server_default=""),
    sa.Column("labels", sa.JSON, nullable=False),
    sa.Column("created_at", Time, nullable=False),
    sa.Column("updated_at", Time, nullable=False),
    sa.Column("heartbeat_at", Time, nullable=False),
    # What the client said about the run (2023-01-01's build metadata), as it came; read only where
    # an answer shows it, never with the build's other columns.
    sa.Column("metadata", sa.JSON, nullable=True),
    sa.UniqueConstraint("iteration_id", "component_type", name="uq_build_iteration_component"),
    sa.Index("ix_build_project", "project_id", "id"),
    # Descendants are found by source and always within one project; both columns, so the planner uses it.
    sa.Index("ix_build_source_iteration_project", "source_iteration_id", "project_id"),
)

sbom = sa.Table(
    "sbom",
    metadata,
    _id(),
    sa.Column("build_id", Id, sa.ForeignKey("build.id", ondelete="CASCADE"), nullable=False),
    sa.Column("project_id", Id, nullable=False),
    sa.Column("name", Text, nullable=False),
    sa.Column("format", sa.String(16), nullable=False),
    sa.Column("size", sa.BigInteger, nullable=False),
    # The document as it came: zstd-compressed SPDX or CycloneDX JSON.
    sa.Column("content", sa.LargeBinary, nullable=False),
    sa.Column("created_at", Time, nullable=False),
    sa.UniqueConstraint("build_id", "name", name="uq_sbom_build_name"),
)

image = sa.Table(
    "image",
    metadata,
    _id(),
    sa.Column("build_id", Id, sa.ForeignKey("build.id", ondelete="CASCADE"), nullable=False),
    sa.Column("position", sa.Integer, nullable=False),
    sa.Column("image_id", Text, nullable=False),
    sa.Column("region", Text, nullable=False, server_default=""),
    sa.Column("created_at", Time, nullable=False),
    sa.Index("ix_image_build", "build_id", "position"),
    # SearchExternalArtifact (2023-01-01) finds builds by an artifact's external id, such as an AMI id.
    sa.Index("ix_image_image_id", "image_id"),
)

channel = sa.Table(
    "channel",
    metadata,
    _id(),
    sa.Column("bucket_id", Id, sa.ForeignKey("bucket.id", ondelete="CASCADE"), nullable=False),
    sa.Column("project_id", Id, nullable=False),
    sa.Column("slug", Text, nullable=False),
    sa.Column("managed", sa.Boolean, nullable=False),
    sa.Column("restricted", sa.Boolean, nullable=False),
    sa.Column("iteration_id", Id, sa.ForeignKey("iteration.id", ondelete="SET NULL"), nullable=True),
    sa.Column("author_id", Text, nullable=False, server_default=""),
    sa.Column("assigned_by", Text, nullable=False, server_default=""),
    sa.Column("assigned_at", Time, nullable=True),
    sa.Column("created_at", Time, nullable=False),
    sa.Column("updated_at", Time, nullable=False),
    sa.UniqueConstraint("bucket_id", "slug", name="uq_channel_bucket_slug"),
    sa.Index("ix_channel_iteration", "iteration_id"),
)

channel_assignment = sa.Table(
    "channel_assignment",
    metadata,
    _id(),
    sa.Column("channel_id", Id, sa.ForeignKey("channel.id", ondelete="CASCADE"), nullable=False),
    sa.Column("iteration_id", Id, nullable=True),
    sa.Column("iteration_fingerprint", Text, nullable=False, server_default=""),
    sa.Column("iteration_version", sa.Integer, nullable=False, server_default="0"),
    sa.Column("author_id", Text, nullable=False, server_default=""),
    sa.Column("created_at", Time, nullable=False),
    sa.Index("ix_channel_assignment_channel", "channel_id", "created_at", "id"),
)

# Work that must happen once at a given time (a scheduled revocation falling due), claimed from the
# database so that exactly one of several server processes does it.
job = sa.Table(
    "job",
    metadata,
    _id(),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("project_id", Id, nullable=False),
    sa.Column("organization_id", Id, nullable=False),
    sa.Column("iteration_id", Id, nullable=False),
    sa.Column("author_id", Text, nullable=False, server_default=""),
    sa.Column("rollback_channels", sa.Boolean, nullable=False),
    sa.Column("skip_descendants", sa.Boolean, nullable=False),
    sa.Column("run_at", Time, nullable=False),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("done_at", Time, nullable=True),
    sa.Column("created_at", Time, nullable=False),
    sa.Index("ix_job_state_run_at", "state", "run_at"),
    sa.Index("ix_job_iteration", "iteration_id"),
)

# Failed client authentications at the token endpoint, counted per (source address, client id) and per
# source address (client_id ""), shared by every process on the database (auth/service.py,
# FailureThrottle). A row is dead from expires_at on and is deleted by the next failure's sweep.
token_failure = sa.Table(
    "token_failure",
    metadata,
    sa.Column("address", sa.String(64), primary_key=True),
    sa.Column("client_id", sa.String(64), primary_key=True),
    sa.Column("failures", sa.Integer, nullable=False),
    sa.Column("first_at", Time, nullable=False),
    sa.Column("locked_until", Time, nullable=False),
    sa.Column("expires_at", Time, nullable=False),
    sa.Index("ix_token_failure_expires_at", "expires_at"),
)

# The web console's people (console/): human accounts, separate from the API's service principals. A user
# acts in the domain as a Principal of its role and scope (console/actor.py); its password is an argon2id
# hash, or empty until the one-time link from `packyard user create` sets it (or for single sign-on only).
console_user = sa.Table(
    "console_user",
    metadata,
    _id(),
    sa.Column("email", Text, nullable=False, unique=True),
    sa.Column("organization_id", Id, sa.ForeignKey("organization.id", ondelete="CASCADE"), nullable=False),
    sa.Column("project_id", Id, sa.ForeignKey("project.id", ondelete="CASCADE"), nullable=True),
    sa.Column("role", sa.String(16), nullable=False),
    sa.Column("password_hash", Text, nullable=False, server_default=""),
    sa.Column("created_at", Time, nullable=False),
    # The `sub` of the single sign-on provider's ID token, once the user has signed in through it
    # (console/sso.py): the account follows the subject even if the provider's email for it changes.
    sa.Column("sso_subject", Text, nullable=True, unique=True),
)

# A signed-in browser: the SHA-256 of its cookie's random value (the value itself is never stored), its
# form token (CSRF) and when it ends. Deleted at sign-out, with its user, and when expired.
console_session = sa.Table(
    "console_session",
    metadata,
    sa.Column("id_hash", sa.String(64), primary_key=True),
    sa.Column("user_id", Id, sa.ForeignKey("console_user.id", ondelete="CASCADE"), nullable=False),
    sa.Column("csrf_token", sa.String(64), nullable=False),
    sa.Column("created_at", Time, nullable=False),
    sa.Column("expires_at", Time, nullable=False),
    sa.Index("ix_console_session_user", "user_id"),
    sa.Index("ix_console_session_expires_at", "expires_at"),
)

# One-time links that set a user's password: the SHA-256 of the link's secret, used once, until expires_at.
console_link = sa.Table(
    "console_link",
    metadata,
    sa.Column("id_hash", sa.String(64), primary_key=True),
    sa.Column("user_id", Id, sa.ForeignKey("console_user.id", ondelete="CASCADE"), nullable=False),
    sa.Column("expires_at", Time, nullable=False),
    sa.Index("ix_console_link_user", "user_id"),
)
