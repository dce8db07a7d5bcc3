"""How the 2023-01-01 API words the domain's terms in error messages (domain/errors.py): versions and
artifacts, its body fields, and the operations a message points a client to."""

from __future__ import annotations

from packyard.domain.errors import Term

WORDS: dict[Term, str] = {
    Term.BUCKET: "bucket",
    Term.BUILD: "build",
    Term.CHANNEL: "channel",
    Term.REGISTRY: "registry",
    Term.ITERATION: "version",
    Term.ITERATIONS: "versions",
    Term.VERSION: "version number",
    Term.IMAGE: "artifact",
    Term.IMAGES: "artifacts",
    Term.BUCKET_SLUG: "bucket_name",
    Term.ITERATION_ID: "version_id",
    Term.VERSION_FIELD: "version number",
    Term.SOURCE_ITERATION_ID: "parent_version_id",
    Term.IMAGES_FIELD: "artifacts",
    Term.IMAGE_ID: "external_identifier",
    Term.COMPONENT_TYPE: "component_type",
    Term.CLOUD_PROVIDER: "platform",
    Term.CREATE_REGISTRY: "PUT .../registry",
    Term.ACTIVATE_REGISTRY: "UpdateRegistry (activated: true)",
}
