"""Limits and timings that the rules depend on; configured at the edge, enforced in the domain."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Limits:
    """Input limits. Each is documented in docs/limits.md and enforced with a code 3 error."""

    max_body_bytes: int = 1024 * 1024
    default_page_size: int = 100
    max_page_size: int = 1000
    max_labels: int = 100
    max_label_key_length: int = 255
    max_label_value_length: int = 1024
    max_images_per_build: int = 1000
    max_description_length: int = 1024
    max_field_length: int = 1024  # component_type, cloud_provider, image_id, region, source ids
    max_metadata_bytes: int = 64 * 1024  # a build's metadata (Packer, OS, VCS, CI), as compact JSON
    max_sbom_bytes: int = 16 * 1024 * 1024  # an SBOM, decompressed
    max_sbom_body_bytes: int = 24 * 1024 * 1024  # UploadSbom's request body (base64 of the compressed SBOM)


@dataclass(frozen=True)
class Rules:
    limits: Limits = field(default_factory=Limits)
    heartbeat_grace_seconds: int = 600
