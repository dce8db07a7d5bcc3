"""Request bodies of the 2021-04-30 API. Unknown fields (location, duplicated path values) are ignored;
null means absent. Enums are typed str | int: names, or grpc-gateway's numbers."""

from __future__ import annotations

import msgspec


class Body(msgspec.Struct, kw_only=True):
    pass


class CreateRegistryBody(Body, kw_only=True):
    feature_tier: str | int | None = None


class UpdateRegistryBody(Body, kw_only=True):
    feature_tier: str | int | None = None
    activate: bool | None = None


class CreateBucketBody(Body, kw_only=True):
    bucket_slug: str | None = None
    description: str | None = None
    labels: dict[str, str] | None = None


class UpdateBucketBody(Body, kw_only=True):
    description: str | None = None
    labels: dict[str, str] | None = None
    platforms: list[str] | None = None


class CreateIterationBody(Body, kw_only=True):
    fingerprint: str | None = None
    template_type: str | int | None = None


class UpdateIterationBody(Body, kw_only=True):
    bucket_slug: str | None = None
    complete: bool | None = None
    revocation_message: str | None = None
    revoke_at: str | None = None
    revoke_in: str | None = None
    restore: bool | None = None
    skip_descendants_revocation: bool | None = None
    rollback_channels: bool | None = None


class ImageBody(Body, kw_only=True):
    image_id: str | None = None
    region: str | None = None


class BuildFields(Body, kw_only=True):
    component_type: str | None = None
    packer_run_uuid: str | None = None
    images: list[ImageBody] | None = None
    cloud_provider: str | None = None
    status: str | int | None = None
    source_image_id: str | None = None
    source_iteration_id: str | None = None
    source_channel_id: str | None = None
    labels: dict[str, str] | None = None


class CreateBuildBody(Body, kw_only=True):
    build: BuildFields | None = None
    fingerprint: str | None = None


class UpdateBuildBody(Body, kw_only=True):
    updates: BuildFields | None = None


class CreateChannelBody(Body, kw_only=True):
    slug: str | None = None
    incremental_version: int | None = None
    iteration_id: str | None = None
    fingerprint: str | None = None
    restriction: str | int | None = None


class UpdateChannelBody(Body, kw_only=True):
    incremental_version: int | None = None
    iteration_id: str | None = None
    fingerprint: str | None = None
    restriction: str | int | None = None
    mask: str | None = None
