"""UploadSbom, ListSboms, GetSbom; and the download their links point to (packyard's own route, behind
the same token as the rest: HCP signs a storage URL instead)."""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass

from packyard import sbom as documents
from packyard.domain import sboms as service
from packyard.domain.commands import BuildRef, NewSbom, SbomName, VersionRef
from packyard.domain.context import Ctx
from packyard.domain.errors import InvalidArgument
from packyard.domain.models import Permission, Sbom, SbomFormat
from packyard.http import wire as shared
from packyard.http.hcp_2023.bodies import UploadSbomBody
from packyard.http.hcp_2023.common import PREFIX, route
from packyard.http.request import Request, base_url, wire_choice
from packyard.http.routing import Route
from packyard.pipeline.operations import Operation, Place

# SbomFormat, in HashiCorp's order (CYCLONEDX is the enum's zero value).
SBOM_FORMAT = {"CYCLONEDX": SbomFormat.CYCLONEDX, "SPDX": SbomFormat.SPDX}
SBOM_FORMAT_TEXT = {v: k for k, v in SBOM_FORMAT.items()}


class SbomWire(shared.Base, kw_only=True):
    id: str = ""
    name: str = ""
    format: str  # CYCLONEDX is the zero value and a real answer


class UploadSbomResponse(shared.Base, kw_only=True):
    sbom: SbomWire


class ListSbomsResponse(shared.Base, kw_only=True):
    sboms: list[SbomWire]


class GetSbomResponse(shared.Base, kw_only=True):
    download_url: str = ""


def _wire(s: Sbom) -> SbomWire:
    return SbomWire(id=s.id, name=s.name, format=SBOM_FORMAT_TEXT[s.format])


def _build(request: Request) -> BuildRef:
    version = VersionRef(request.params["bucket_name"], request.params["fingerprint"])
    return BuildRef(version, request.params["build_id"])


def _decode_upload(request: Request) -> NewSbom:
    """The document is read here, before any transaction: base64, zstd within the size limit, then the
    JSON of the format named (domain/rules.py Limits.max_sbom_bytes)."""
    body = request.json(UploadSbomBody)
    kind = wire_choice(SBOM_FORMAT, body.format, "format")
    if kind is None:
        raise InvalidArgument("format is required: SPDX or CYCLONEDX")
    if not body.compressed_sbom:
        raise InvalidArgument("compressed_sbom is required: the SBOM's JSON, zstd-compressed, in base64")
    try:
        content = base64.b64decode(body.compressed_sbom, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidArgument("compressed_sbom is not base64") from None
    document = documents.decompress(content, request.limits.max_sbom_bytes)
    documents.packages(document, kind)
    return NewSbom(_build(request), body.name or "", kind, content, len(document))


def _upload_response(place: Place, s: Sbom) -> UploadSbomResponse:
    return UploadSbomResponse(sbom=_wire(s))


def _decode_build(request: Request) -> SbomName:
    return SbomName(_build(request), "")


def _list_response(place: Place, sboms: list[Sbom]) -> ListSbomsResponse:
    return ListSbomsResponse(sboms=[_wire(s) for s in sboms])


@dataclass(frozen=True, slots=True)
class SbomLink:
    ref: SbomName
    base_url: str


def _decode_get(request: Request) -> SbomLink:
    return SbomLink(SbomName(_build(request), request.params["sbom_name"]), base_url(request))


def _get(ctx: Ctx, link: SbomLink) -> str:
    """A call of the wire's own, not a domain step: the link it answers is this tree's path."""
    found = service.get(ctx, link.ref)
    build, version = link.ref.build, link.ref.build.version
    path = PREFIX.format(org=ctx.organization_id, project=ctx.project_id)
    return (
        f"{link.base_url}{path}/buckets/{version.bucket_slug}/versions/{version.fingerprint}"
        f"/builds/{build.build_id}/sboms/{found.name}/download"
    )


def _get_response(place: Place, url: str) -> GetSbomResponse:
    return GetSbomResponse(download_url=url)


def _decode_download(request: Request) -> SbomName:
    return SbomName(_build(request), request.params["sbom_name"])


def _document(place: Place, found: Sbom) -> bytes:
    """The document as it was uploaded (its JSON), not as it is kept (zstd-compressed)."""
    return documents.decompress(found.content, max(found.size, 1))


UPLOAD = Operation(_decode_upload, service.upload, _upload_response)
LIST = Operation(_decode_build, service.list_, _list_response)
GET = Operation(_decode_get, _get, _get_response)
DOWNLOAD = Operation(_decode_download, service.get, _document)

SBOMS = "/buckets/{bucket_name}/versions/{fingerprint}/builds/{build_id}/sboms"
ROUTES: list[Route] = [
    route("PUT", SBOMS, UPLOAD, "UploadSbom", Permission.WRITE, body_limit="max_sbom_body_bytes"),
    route("GET", SBOMS, LIST, "ListSboms", Permission.READ, pure=True),
    route("GET", SBOMS + "/{sbom_name}", GET, "GetSbom", Permission.READ),
    # packyard's own: the document GetSbom's download_url names (not in HashiCorp's document).
    route("GET", SBOMS + "/{sbom_name}/download", DOWNLOAD, "DownloadSbom", Permission.READ),
]
