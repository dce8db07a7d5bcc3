"""UploadSbom, ListSboms, GetSbom and the download (client-compatibility-2023.md B.2, J.7): zstd-compressed
SPDX or CycloneDX JSON in base64, taken only while the build runs, stored on both databases."""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path
from typing import Any

import pytest
import zstandard

from packyard.domain.rules import Limits
from tests.conftest import Backend, Env, close_env, make_env
from tests.contract.validator import SwaggerContract
from tests.support.client import error, ok

SPDX: dict[str, Any] = {
    "spdxVersion": "SPDX-2.3",
    "dataLicense": "CC0-1.0",
    "SPDXID": "SPDXRef-DOCUMENT",
    "name": "ubuntu-image",
    "documentNamespace": "https://example.com/ubuntu-image-1",
    "creationInfo": {"created": "2024-05-01T12:00:00Z", "creators": ["Tool: syft-1.0.0"]},
    "packages": [
        {"SPDXID": "SPDXRef-Package-openssl", "name": "openssl", "versionInfo": "3.0.2", "downloadLocation": "NONE"},
        {"SPDXID": "SPDXRef-Package-bash", "name": "bash", "versionInfo": "5.1", "downloadLocation": "NONE"},
    ],
}
CYCLONEDX: dict[str, Any] = {
    "bomFormat": "CycloneDX",
    "specVersion": "1.5",
    "version": 1,
    "components": [{"type": "library", "name": "openssl", "version": "3.0.2", "purl": "pkg:deb/ubuntu/openssl@3.0.2"}],
}


def packed(document: Any) -> str:
    raw = document if isinstance(document, bytes) else json.dumps(document).encode()
    return base64.b64encode(zstandard.ZstdCompressor().compress(raw)).decode()


def running_build(env: Env, bucket: str = "base", fingerprint: str = "f1") -> str:
    c = env.client
    ok(c.put(c.p23("/buckets"), json={"name": bucket}))
    ok(c.post(c.p23(f"/buckets/{bucket}/versions"), json={"fingerprint": fingerprint}))
    builds = f"/buckets/{bucket}/versions/{fingerprint}/builds"
    build = ok(c.post(c.p23(builds), json={"component_type": "amazon-ebs.a", "status": "BUILD_RUNNING"}))["build"]
    return f"{builds}/{build['id']}"


def test_upload_list_get_and_download(env: Env) -> None:
    c = env.client
    build = running_build(env)
    named = ok(
        c.put(c.p23(build + "/sboms"), json={"compressed_sbom": packed(SPDX), "format": "SPDX", "name": "os-pkgs"})
    )
    assert named["sbom"]["name"] == "os-pkgs"
    assert named["sbom"]["format"] == "SPDX"
    unnamed = ok(c.put(c.p23(build + "/sboms"), json={"compressed_sbom": packed(CYCLONEDX), "format": "CYCLONEDX"}))
    assert len(unnamed["sbom"]["name"]) == 26, "an unnamed SBOM is given a fresh ULID"
    assert unnamed["sbom"]["format"] == "CYCLONEDX"
    error(
        c.put(c.p23(build + "/sboms"), json={"compressed_sbom": packed(SPDX), "format": "SPDX", "name": "os-pkgs"}), 6
    )
    listed = ok(c.get(c.p23(build + "/sboms")))["sboms"]
    assert [s["name"] for s in listed] == ["os-pkgs", unnamed["sbom"]["name"]]
    url = ok(c.get(c.p23(build + "/sboms/os-pkgs")))["download_url"]
    assert url.startswith("http://packyard.test/packer/2023-01-01/")
    document = c.get(url.removeprefix("http://packyard.test"))
    assert document.status_code == 200
    assert document.json() == SPDX
    error(c.get(c.p23(build + "/sboms/nope")), 5, 404)
    # Once the build is DONE it takes no more (HCP: code 3), and what it has stays.
    done = {"status": "BUILD_DONE", "platform": "aws", "artifacts": [{"external_identifier": "ami-1", "region": "r"}]}
    ok(c.patch(c.p23(build), json=done))
    late = c.put(c.p23(build + "/sboms"), json={"compressed_sbom": packed(SPDX), "format": "SPDX", "name": "late"})
    assert "not running" in error(late, 3, 400)
    assert len(ok(c.get(c.p23(build + "/sboms")))["sboms"]) == 2
    # Stored with the build: the 2021 tree's DeleteBucket takes them with it.
    ok(c.delete(c.p("/images/base")))
    error(c.get(c.p23(build + "/sboms/os-pkgs/download")), 5, 404)


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ({"compressed_sbom": packed(SPDX), "format": "CYCLONEDX"}, "not CYCLONEDX JSON"),
        ({"compressed_sbom": packed(CYCLONEDX), "format": "SPDX"}, "not SPDX JSON"),
        ({"compressed_sbom": packed({**SPDX, "packages": []}), "format": "SPDX"}, "no packages"),
        ({"compressed_sbom": packed({**CYCLONEDX, "components": []}), "format": "CYCLONEDX"}, "no packages"),
        ({"compressed_sbom": packed({**SPDX, "spdxVersion": "SPDX-3.0"}), "format": "SPDX"}, "SPDX 2.x"),
        ({"compressed_sbom": packed(b"SPDXVersion: SPDX-2.3\n"), "format": "SPDX"}, "not SPDX JSON"),
        ({"compressed_sbom": packed(b""), "format": "SPDX"}, "empty"),
        ({"compressed_sbom": base64.b64encode(json.dumps(SPDX).encode()).decode(), "format": "SPDX"}, "not zstd"),
        ({"compressed_sbom": "%%%", "format": "SPDX"}, "not base64"),
        ({"format": "SPDX"}, "required"),
        ({"compressed_sbom": packed(SPDX)}, "format is required"),
        ({"compressed_sbom": packed(SPDX), "format": "SWID"}, "format"),
        ({"compressed_sbom": packed(SPDX), "format": "SPDX", "name": "a b"}, "not valid"),
        ({"compressed_sbom": packed(SPDX), "format": "SPDX", "name": "x" * 37}, "not valid"),
    ],
)
def test_a_bad_sbom_is_refused_and_nothing_is_stored(env: Env, body: dict[str, Any], words: str) -> None:
    c = env.client
    build = running_build(env)
    assert words in error(c.put(c.p23(build + "/sboms"), json=body), 3, 400)
    assert ok(c.get(c.p23(build + "/sboms")))["sboms"] == []


def test_size_limits(tmp_path: Path, backend: Backend, contracts: list[SwaggerContract]) -> None:
    """The route takes bodies far above the general limit, and refuses a document above its own
    decompressed limit however small it is compressed."""
    limits = Limits(max_body_bytes=64 * 1024, max_sbom_bytes=4 * 1024 * 1024, max_sbom_body_bytes=8 * 1024 * 1024)
    env = make_env(tmp_path, backend, contracts, limits=limits)
    try:
        c = env.client
        build = running_build(env)
        # Random names, so that the compressed document (and the body) is far above the general limit.
        many = {
            **SPDX,
            "packages": [
                {"SPDXID": f"SPDXRef-{n}", "name": os.urandom(16).hex(), "versionInfo": str(n), "downloadLocation": "N"}
                for n in range(20_000)
            ],
        }
        raw = json.dumps(many).encode()
        assert len(raw) < 4 * 1024 * 1024
        body = {"compressed_sbom": packed(raw), "format": "SPDX", "name": "large"}
        assert len(json.dumps(body)) > 4 * 64 * 1024
        stored = ok(c.put(c.p23(build + "/sboms"), json=body))
        assert stored["sbom"]["name"] == "large"
        assert c.get(c.p23(build + "/sboms/large/download")).json() == many
        # A zstd bomb: 5 MiB of spaces compress to a few hundred bytes, and are refused unread.
        bomb = zstandard.ZstdCompressor().compress(b" " * (5 * 1024 * 1024))
        assert len(bomb) < 4096
        refused = c.put(
            c.p23(build + "/sboms"), json={"compressed_sbom": base64.b64encode(bomb).decode(), "format": "SPDX"}
        )
        assert "larger than 4194304 bytes decompressed" in error(refused, 3, 400)
        # Other routes keep the general limit.
        big = c.patch(c.p23("/buckets/base"), json={"description": "x" * 70_000})
        assert "larger than the limit of 65536" in error(big, 3, 400)
        assert len(ok(c.get(c.p23(build + "/sboms")))["sboms"]) == 1
    finally:
        close_env(env, backend)
