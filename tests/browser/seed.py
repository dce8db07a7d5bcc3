"""What the browser tests find in the registry: buckets, versions with builds and artifacts, channels and a
child image built on a parent, published through the real HCP Packer API (2023-01-01) over real HTTP, as
Packer and the Terraform provider would. Names and image ids are fixed so that pages and screenshots show
the same things on every run."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tests.support.client import ApiClient, ok

BASE = "ubuntu-base"
APP = "web-app"
DB = "postgres-db"

# One fixed AMI id per (bucket, fingerprint, region): what the search box finds.
AMIS = {
    (BASE, "ubuntu-2404-20240501", "us-east-1"): "ami-0c55b159cbfafe1f0",
    (BASE, "ubuntu-2404-20240501", "eu-west-1"): "ami-0d71ea30463e0ff8d",
    (BASE, "ubuntu-2404-20240508", "us-east-1"): "ami-0e2f8a4c6b1d3579a",
    (BASE, "ubuntu-2404-20240508", "eu-west-1"): "ami-0f3a9b5d7c2e4680b",
    (APP, "web-app-1f3c9e2", "us-east-1"): "ami-04b7e2d91c3a5f608",
    (DB, "postgres-16-3", "us-east-1"): "ami-09a1c3e5f7b2d4068",
    (DB, "postgres-16-4", "us-east-1"): "ami-0a2b4c6d8e1f3a5b7",
}

METADATA = {
    "packer": {
        "version": "1.11.2",
        "plugins": [{"name": "amazon", "version": "1.3.2"}],
        "options": {"debug": False, "force": False, "only": [], "except": [], "var-files": [], "path": ".", "vars": []},
        "os": {"type": "linux", "details": {"arch": "amd64", "version": "6.1"}},
    },
    "vcs": {
        "type": "git",
        "details": {"ref": "main", "commit": "4f9c2d1", "author": "ci", "has_uncommitted_changes": False},
    },
}


@dataclass
class Seeded:
    """The ids the tests navigate by: versions by (bucket, fingerprint), channels by (bucket, name)."""

    versions: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    channels: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)

    def version_id(self, bucket: str, fingerprint: str) -> str:
        return str(self.versions[(bucket, fingerprint)]["id"])


def publish(
    c: ApiClient,
    bucket: str,
    fingerprint: str,
    regions: tuple[str, ...] = ("us-east-1", "eu-west-1"),
    parent: tuple[str, str] | None = None,
    ami: str = "",
) -> dict[str, Any]:
    """One `packer build` of bucket: a version, one amazon-ebs build per region with its AMI (AMIS's, or
    ami), all done. parent: (version id, channel id) the build's source came from, as Packer reports it."""
    run = str(uuid.uuid4())
    if c.get(c.p23(f"/buckets/{bucket}")).status_code == 404:
        ok(c.put(c.p23("/buckets"), json={"name": bucket, "description": f"{bucket} images", "labels": {"team": "a"}}))
    ok(c.post(c.p23(f"/buckets/{bucket}/versions"), json={"fingerprint": fingerprint, "template_type": "HCL2"}))
    builds = f"/buckets/{bucket}/versions/{fingerprint}/builds"
    made = {}
    for region in regions:  # every build first: a version is complete once all of its builds are done
        body = {"component_type": f"amazon-ebs.{region}", "packer_run_uuid": run, "status": "BUILD_RUNNING"}
        made[region] = ok(c.post(c.p23(builds), json=body))["build"]
    for region, build in made.items():
        done: dict[str, Any] = {
            "status": "BUILD_DONE",
            "platform": "aws",
            "packer_run_uuid": run,
            "labels": {"os": "ubuntu", "release": "24.04"},
            "metadata": METADATA,
            "artifacts": [{"external_identifier": ami or AMIS[(bucket, fingerprint, region)], "region": region}],
        }
        if parent is not None:
            done |= {"parent_version_id": parent[0], "parent_channel_id": parent[1]}
        ok(c.patch(c.p23(f"{builds}/{build['id']}"), json=done))
    version: dict[str, Any] = ok(c.get(c.p23(f"/buckets/{bucket}/versions/{fingerprint}")))["version"]
    assert version["status"] == "VERSION_ACTIVE", version
    return version


def channel(c: ApiClient, bucket: str, name: str, fingerprint: str = "") -> dict[str, Any]:
    body = {"name": name, **({"version_fingerprint": fingerprint} if fingerprint else {})}
    return dict(ok(c.post(c.p23(f"/buckets/{bucket}/channels"), json=body))["channel"])


def assign(c: ApiClient, bucket: str, name: str, fingerprint: str) -> None:
    body = {"update_mask": "versionFingerprint", "version_fingerprint": fingerprint}
    ok(c.patch(c.p23(f"/buckets/{bucket}/channels/{name}"), json=body))


def seed(c: ApiClient, later: Callable[[], None]) -> Seeded:
    """ubuntu-base v1 (in `production`) and v2, with `staging` on v2; web-app built on ubuntu-base v1 through
    `production`; postgres-db v1 (in `production`) and v2, one region each. Every bucket has its managed
    `latest` too. later() moves the server's clock on between builds, as days pass between them."""
    s = Seeded()
    s.versions[(BASE, "ubuntu-2404-20240501")] = publish(c, BASE, "ubuntu-2404-20240501")
    later()
    production = channel(c, BASE, "production", "ubuntu-2404-20240501")
    s.channels[(BASE, "production")] = production
    later()
    s.versions[(BASE, "ubuntu-2404-20240508")] = publish(c, BASE, "ubuntu-2404-20240508")
    s.channels[(BASE, "staging")] = channel(c, BASE, "staging", "ubuntu-2404-20240508")
    later()
    parent = (s.version_id(BASE, "ubuntu-2404-20240501"), str(production["id"]))
    s.versions[(APP, "web-app-1f3c9e2")] = publish(c, APP, "web-app-1f3c9e2", ("us-east-1",), parent=parent)
    s.channels[(APP, "production")] = channel(c, APP, "production", "web-app-1f3c9e2")
    later()
    s.versions[(DB, "postgres-16-3")] = publish(c, DB, "postgres-16-3", ("us-east-1",))
    s.channels[(DB, "production")] = channel(c, DB, "production", "postgres-16-3")
    later()
    s.versions[(DB, "postgres-16-4")] = publish(c, DB, "postgres-16-4", ("us-east-1",))
    return s
