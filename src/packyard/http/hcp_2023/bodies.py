"""Request bodies of the 2023-01-01 API. Unknown fields (location, duplicated path values) are ignored;
null means absent (Packer sends `artifacts: null` and `platforms: null` for "unchanged"). Enums are typed
str | int: names, or grpc-gateway's numbers."""

from __future__ import annotations

from typing import Any

import msgspec


class Body(msgspec.Struct, kw_only=True):
    pass


class CreateRegistryBody(Body, kw_only=True):
    feature_tier: str | int | None = None


class UpdateRegistryBody(Body, kw_only=True):
    feature_tier: str | int | None = None
    activated: bool | None = None
    update_mask: str | None = None


class UpdateRunTaskConfigBody(Body, kw_only=True):
    on_untracked_image: str | int | None = None


class CreateBucketBody(Body, kw_only=True):
    name: str | None = None
    description: str | None = None
    labels: dict[str, str] | None = None


class UpdateBucketBody(Body, kw_only=True):
    description: str | None = None
    labels: dict[str, str] | None = None
    platforms: list[str] | None = None


class CreateVersionBody(Body, kw_only=True):
    fingerprint: str | None = None
    template_type: str | int | None = None


class UpdateVersionBody(Body, kw_only=True):
    complete: bool | None = None
    revocation_message: str | None = None
    revoke_at: str | None = None
    revoke_in: str | None = None
    restore: bool | None = None
    skip_descendants_revocation: bool | None = None
    disable_rollback_channels: bool | None = None


class ArtifactBody(Body, kw_only=True):
    external_identifier: str | None = None
    region: str | None = None


class BuildMetadataBody(Body, kw_only=True):
    packer: dict[str, Any] | None = None
    cicd: dict[str, Any] | None = None
    vcs: dict[str, Any] | None = None


class BuildBody(Body, kw_only=True):
    """CreateBuildBody and UpdateBuildBody: the same fields, CreateBuild's component_type aside."""

    component_type: str | None = None
    packer_run_uuid: str | None = None
    artifacts: list[ArtifactBody] | None = None
    platform: str | None = None
    status: str | int | None = None
    source_external_identifier: str | None = None
    parent_version_id: str | None = None
    parent_channel_id: str | None = None
    labels: dict[str, str] | None = None
    metadata: BuildMetadataBody | None = None


class UploadSbomBody(Body, kw_only=True):
    compressed_sbom: str | None = None
    format: str | int | None = None
    name: str | None = None


class CreateChannelBody(Body, kw_only=True):
    name: str | None = None
    version_fingerprint: str | None = None
    restricted: bool | None = None


class UpdateChannelBody(Body, kw_only=True):
    version_fingerprint: str | None = None
    restricted: bool | None = None
    update_mask: str | None = None


class AssignChannelVersionBody(Body, kw_only=True):
    source_channel: str | None = None
    target_channel: str | None = None


class SearchExternalArtifactBody(Body, kw_only=True):
    external_identifier: str | None = None
    platform: str | None = None
    region: str | None = None
