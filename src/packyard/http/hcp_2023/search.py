"""SearchExternalArtifact: which bucket, version and build produced an artifact (an AMI id, say)."""

from __future__ import annotations

from packyard.domain import steps
from packyard.domain.commands import ArtifactQuery
from packyard.domain.models import Permission
from packyard.domain.pagination import Page
from packyard.domain.search import Found
from packyard.http import wire as shared
from packyard.http.hcp_2023 import wire
from packyard.http.hcp_2023.bodies import SearchExternalArtifactBody
from packyard.http.hcp_2023.common import page, route
from packyard.http.request import Request
from packyard.http.routing import Route
from packyard.pipeline.operations import Operation, Place


class ExternalArtifactBucket(shared.Base, kw_only=True):
    id: str = ""
    name: str = ""
    labels: dict[str, str] = {}  # noqa: RUF012 - msgspec copies defaults


class ExternalArtifactVersion(shared.Base, kw_only=True):
    id: str = ""
    name: str = ""
    status: str
    author_id: str = ""
    fingerprint: str = ""
    revoke_at: str = ""
    revocation_message: str = ""
    revocation_author: str = ""
    revocation_type: str = ""


class ExternalArtifact(shared.Base, kw_only=True):
    bucket: ExternalArtifactBucket
    version: ExternalArtifactVersion
    build: wire.Build


class SearchExternalArtifactResponse(shared.Base, kw_only=True):
    artifacts: list[ExternalArtifact]
    pagination: shared.Pagination | None = None


def _decode(request: Request) -> ArtifactQuery:
    body = request.json(SearchExternalArtifactBody)
    return ArtifactQuery(body.external_identifier or "", body.platform or "", body.region or "", page(request))


def _artifact(found: Found) -> ExternalArtifact:
    v = wire.version(found.iteration, "", with_builds=False)
    return ExternalArtifact(
        bucket=ExternalArtifactBucket(id=found.bucket.id, name=found.bucket.slug, labels=found.bucket.labels),
        version=ExternalArtifactVersion(
            id=v.id,
            name=v.name,
            status=v.status,
            author_id=v.author_id,
            fingerprint=v.fingerprint,
            revoke_at=v.revoke_at,
            revocation_message=v.revocation_message,
            revocation_author=v.revocation_author,
            revocation_type=v.revocation_type,
        ),
        build=wire.build(found.build),
    )


def _response(place: Place, found: Page[Found]) -> SearchExternalArtifactResponse:
    return SearchExternalArtifactResponse(
        artifacts=[_artifact(f) for f in found.items],
        pagination=shared.pagination(found.next_token, found.previous_token),
    )


SEARCH = Operation(_decode, steps.search_artifacts, _response)

ROUTES: list[Route] = [
    # A POST that only reads (its question is in the body, so it is not a pure read of the path).
    route("POST", "/_search/external_artifact", SEARCH, "SearchExternalArtifact", Permission.READ, write=False),
]
