"""How the 2021-04-30 API words the domain's terms in error messages (domain/errors.py): iterations
and images, its body fields, and the operations a message points a client to."""

from __future__ import annotations

from packyard.domain.errors import Term

WORDS: dict[Term, str] = {
    Term.BUCKET: "bucket",
    Term.BUILD: "build",
    Term.CHANNEL: "channel",
    Term.REGISTRY: "registry",
    Term.ITERATION: "iteration",
    Term.ITERATIONS: "iterations",
    Term.VERSION: "incremental version",
    Term.IMAGE: "image",
    Term.IMAGES: "images",
    Term.BUCKET_SLUG: "bucket_slug",
    Term.ITERATION_ID: "iteration_id",
    Term.VERSION_FIELD: "incremental_version",
    Term.SOURCE_ITERATION_ID: "source_iteration_id",
    Term.IMAGES_FIELD: "images",
    Term.IMAGE_ID: "image_id",
    Term.COMPONENT_TYPE: "build.component_type",
    Term.CLOUD_PROVIDER: "cloud_provider",
    Term.CREATE_REGISTRY: "PUT .../registry",
    Term.ACTIVATE_REGISTRY: "UpdateRegistry (activate: true)",
    Term.REGENERATE_HMAC_KEY: "PATCH .../runtasks/hmac",
}
