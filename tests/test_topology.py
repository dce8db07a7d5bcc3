"""deploy/compose.yaml's topology, run for real on this machine without containers: Debian's nginx on the shipped
deploy/nginx.conf (tests/support/nginx.py changes only addresses and paths) terminating TLS in front of two
`packyard serve --no-tls` replicas on one PostgreSQL database, the replicas knowing of each other only
through that database.

Packer's publish sequences (2021-04-30: tests/support/packer.py; 2023-01-01: publish_2023) run from several
threads at once through nginx for a bounded time and count, each client validating every answer against
HashiCorp's documents. In the middle, one replica is killed with SIGKILL. Afterwards every publish is read
back through nginx and through the surviving replica, and nothing is lost.

What a client sees when its replica dies, and what this test holds the stack to:
- A request that had not reached the dead replica (its connection refused) is sent to the other one by
  nginx, whatever its method: the client never notices.
- A GET in flight on the dead replica is resent by nginx too (`proxy_next_upstream error timeout`).
- A POST, PUT or PATCH in flight is not resent (nginx can't know whether it took effect): the client gets
  502. Packer does not retry a call (hcp-sdk-go has no retry), so that `packer build` fails and prints
  `HCP_PACKER_BUILD_FINGERPRINT`; running it again with that fingerprint resumes the same version. Whether
  or not the lost call had committed, the resume finds the state it left (the version by fingerprint, the
  builds by component, DONE builds skipped) and finishes the publish. That is what the clients here do.
So the test asserts that the only failures any client saw were nginx's 502s for writes in flight at the
kill (no 5xx from packyard, no broken connection to nginx), that every publish was completed by at most a
few resumes, and that every completed publish is present, complete and numbered without gaps or twins.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import ssl
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from packyard.tls import ensure_local_tls
from tests.api.hcp_2023.test_publish import publish_2023
from tests.conftest import Backend
from tests.contract.validator import SwaggerContract
from tests.support import nginx
from tests.support.client import ApiClient, ok
from tests.support.packer import publish as publish_2021
from tests.support.server import ServerProcess, free_port, serving

pytestmark = pytest.mark.slow

PUBLISHERS = 6  # threads, each one `packer build` after another
BUCKETS = ("base", "web", "db")
COMPONENTS_2021 = ["amazon-ebs.east", "googlecompute.eu"]
KILL_AFTER = 12  # completed publishes before replica 0 is killed
MAX_PUBLISHES = 48  # no publish starts after this many have started ...
LOAD_SECONDS = 20.0  # ... or after this long
MAX_RESUMES = 4  # `packer build` re-runs with the same fingerprint before a publish counts as lost


class Unavailable(Exception):
    """A 5xx answer: where `packer build` stops (Packer does not retry a call)."""

    def __init__(self, response: httpx.Response) -> None:
        self.status = response.status_code
        self.from_nginx = "text/html" in response.headers.get("content-type", "")
        super().__init__(f"{response.status_code} from {'nginx' if self.from_nginx else 'packyard'}")


class Through(ApiClient):
    """The suite's validating client, over real HTTPS to nginx, with an event loop of its own (one per thread)."""

    def __init__(self, base_url: str, ca: Path, contracts: list[SwaggerContract], org: str, project: str) -> None:
        super().__init__(None, contracts, asyncio.new_event_loop(), org, project)
        self.close()  # the in-process transport ApiClient made, replaced by a real one
        self.http = httpx.AsyncClient(
            base_url=base_url, verify=ssl.create_default_context(cafile=ca), timeout=30.0, trust_env=False
        )
        # Every 5xx answer, including those of calls sent side by side with the one whose failure stopped
        # the publish (Packer's concurrent CreateBuild and UpdateBuild calls).
        self.unavailable: list[str] = []

    def validate(self, method: str, path: str, response: httpx.Response) -> None:
        if response.status_code >= 500:
            failure = Unavailable(response)
            self.unavailable.append(str(failure))
            raise failure
        super().validate(method, path, response)

    def shut(self) -> None:
        self.close()
        self.loop.close()


@dataclass
class Publish:
    bucket: str
    fingerprint: str
    tree: str
    failures: list[str] = field(default_factory=list)
    final: dict[str, Any] | None = None  # the completed version, as the client's last call read it


def completed(c: ApiClient, p: Publish) -> dict[str, Any] | None:
    """The version of a fingerprint when it is already complete (a resume after a lost final answer: Packer
    would stop with "the version ... is complete"), in the publish's own tree."""
    if p.tree == "2023":
        r = c.get(c.p23(f"/buckets/{p.bucket}/versions/{p.fingerprint}"))
        done = r.status_code == 200 and r.json()["version"]["name"] != "v0"
        return dict(r.json()["version"]) if done else None
    r = c.get(c.p(f"/images/{p.bucket}/iteration"), params={"fingerprint": p.fingerprint})
    return dict(r.json()["iteration"]) if r.status_code == 200 and r.json()["iteration"].get("complete") else None


def run_publish(c: ApiClient, p: Publish) -> None:
    for attempt in range(1 + MAX_RESUMES):
        try:
            final = completed(c, p) if attempt else None
            if final is None:
                if p.tree == "2023":
                    final = publish_2023(c, p.bucket, p.fingerprint)
                else:
                    final = publish_2021(c, p.bucket, p.fingerprint, COMPONENTS_2021)
            p.final = final
            return
        except (Unavailable, httpx.TransportError) as exc:
            p.failures.append(f"{type(exc).__name__}: {exc}")


class Load:
    def __init__(self, make_client: Any, kill: Any) -> None:
        self.make_client = make_client
        self.kill = kill
        self.lock = threading.Lock()
        self.publishes: list[Publish] = []
        self.done = 0
        self.killed_at_done: int | None = None
        self.errors: list[BaseException] = []
        self.unavailable: list[str] = []  # every 5xx any client received
        self.stop_at = time.monotonic() + LOAD_SECONDS

    def next(self, n: int) -> Publish | None:
        with self.lock:
            if len(self.publishes) >= MAX_PUBLISHES or time.monotonic() > self.stop_at:
                return None
            k = len(self.publishes)
            p = Publish(BUCKETS[k % len(BUCKETS)], f"fp-{n}-{k}-{uuid.uuid4().hex[:6]}", ("2023", "2021")[k % 2])
            self.publishes.append(p)
            return p

    def finished(self) -> None:
        with self.lock:
            self.done += 1
            if self.done == KILL_AFTER:
                self.killed_at_done = self.done
                self.kill()  # while the other publishers are in the middle of theirs

    def worker(self, n: int) -> None:
        client = self.make_client()
        try:
            while (p := self.next(n)) is not None:
                run_publish(client, p)
                self.finished()
        except BaseException as exc:  # an assertion in a publish: reported by the test, not lost in a thread
            self.errors.append(exc)
        finally:
            with self.lock:
                self.unavailable += client.unavailable
            client.shut()

    def run(self) -> None:
        threads = [threading.Thread(target=self.worker, args=(n,), daemon=True) for n in range(PUBLISHERS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(LOAD_SECONDS + 60)  # a publish under way finishes; bounded all the same
        assert not [t for t in threads if t.is_alive()], "a publisher is stuck"


def token(base_url: str, ca: Path, client_id: str, secret: str) -> str:
    with httpx.Client(base_url=base_url, verify=ssl.create_default_context(cafile=ca), trust_env=False) as c:
        r = c.post("/oauth2/token", auth=(client_id, secret), data={"grant_type": "client_credentials"})
    assert r.status_code == 200, r.text
    return str(r.json()["access_token"])


def channel_moves_are_seen_by_the_other_replica_at_once(replicas: list[ServerProcess], bearer: str, p23: str) -> None:
    """A channel assigned through one replica is what the other serves on its very next read, although
    that replica has the channel's previous answer in its read cache: the replicas share only the database."""
    a, b = (httpx.Client(base_url=s.url, headers={"Authorization": f"Bearer {bearer}"}) for s in replicas)
    with a, b:
        ok(a.put(f"{p23}/buckets", json={"name": "cache"}))
        fingerprints = []
        for n in range(3):
            fp = f"cache-{n}"
            version = f"{p23}/buckets/cache/versions/{fp}"
            ok(a.post(f"{p23}/buckets/cache/versions", json={"fingerprint": fp}))
            build = ok(a.post(f"{version}/builds", json={"component_type": "c.x"}))["build"]
            done = {
                "status": "BUILD_DONE",
                "platform": "aws",
                "artifacts": [{"external_identifier": fp, "region": "r"}],
            }
            ok(a.patch(f"{version}/builds/{build['id']}", json={"status": "BUILD_RUNNING"}))
            ok(a.patch(f"{version}/builds/{build['id']}", json=done))
            fingerprints.append(fp)
        ok(a.post(f"{p23}/buckets/cache/channels", json={"name": "prod"}))
        channel = f"{p23}/buckets/cache/channels/prod"
        for n, fp in enumerate(fingerprints * 2):
            writer, reader = (a, b) if n % 2 == 0 else (b, a)
            for _ in range(2):  # the reader's answer is now in its read cache
                ok(reader.get(channel))
            moved = {"update_mask": "versionFingerprint", "version_fingerprint": fp}
            assert ok(writer.patch(channel, json=moved))["channel"]["version"]["fingerprint"] == fp
            assert ok(reader.get(channel))["channel"]["version"]["fingerprint"] == fp


UPSTREAM = re.compile(r" (\d{3}) \d+ [\d.]+ upstream=(\S+(?:, \S+)*) upstream_status=")


def test_nginx_two_replicas_one_postgresql_one_replica_killed_nothing_lost(
    tmp_path: Path, backend: Backend, contracts: list[SwaggerContract]
) -> None:
    if backend.name != "postgresql":
        pytest.skip("replicas share a PostgreSQL database: set PACKYARD_TEST_POSTGRES_URL (scripts/test does)")
    binary = nginx.nginx_binary()
    if binary is None:
        if os.environ.get("CI"):
            pytest.fail("nginx is missing although scripts/test installs it")
        pytest.skip("nginx is not installed: apt-get install nginx (scripts/test does)")
    started = time.monotonic()
    url = backend.new_url(tmp_path)
    init = backend.init
    tls = ensure_local_tls(tmp_path / "nginx-tls")  # the certificate nginx serves, made by this test
    (tmp_path / "nginx").mkdir()
    try:
        with serving(tmp_path, url, count=2) as replicas:
            port = free_port()
            conf = nginx.adapted(
                tmp_path / "nginx",
                port=port,
                upstreams=[s.url.removeprefix("http://") for s in replicas],
                cert=tls.cert,
                key=tls.key,
            )
            front = f"https://127.0.0.1:{port}"
            with nginx.running(binary, conf, port) as proxy:
                bearer = token(front, tls.ca_cert, init.client_id, init.client_secret)
                p23 = f"/packer/2023-01-01/organizations/{init.organization_id}/projects/{init.project_id}"

                def make_client() -> Through:
                    c = Through(front, tls.ca_cert, contracts, init.organization_id, init.project_id)
                    c.token = bearer
                    return c

                # The buckets exist before the load: two `packer build`s creating one bucket at once would
                # fail one of them (Packer aborts on code 6 there), which is not what this test is about.
                setup = make_client()
                try:
                    for bucket in BUCKETS:
                        ok(setup.put(setup.p23("/buckets"), json={"name": bucket}))
                    # Behind nginx, the run-task URL packyard hands out is the one the client used.
                    api_url = ok(setup.get(setup.p23("/runtasks/validation")))["api_url"]
                    assert api_url.startswith(f"{front}/packer/2023-01-01/runtask/")
                finally:
                    setup.shut()
                channel_moves_are_seen_by_the_other_replica_at_once(replicas, bearer, p23)

                victim, survivor = replicas

                def kill() -> None:
                    victim.process.send_signal(signal.SIGKILL)

                load = Load(make_client, kill)
                load.run()
                assert not load.errors, load.errors
                assert load.killed_at_done == KILL_AFTER, "the replica was killed in the middle of the load"
                assert victim.process.wait(10) == -signal.SIGKILL
                assert survivor.process.poll() is None

                # No publish lost: each one completed, by at most a few resumes.
                publishes = load.publishes
                lost = [p for p in publishes if p.final is None]
                assert not lost, [(p.fingerprint, p.failures) for p in lost]
                assert len(publishes) > KILL_AFTER + PUBLISHERS, "load went on after the kill"
                # The only failures: nginx's 502 for a write that was in flight on the killed replica.
                failures = [f for p in publishes for f in p.failures]
                assert all(f == "Unavailable: 502 from nginx" for f in failures), failures
                assert all(f == "502 from nginx" for f in load.unavailable), load.unavailable
                assert len(failures) <= len(load.unavailable) <= PUBLISHERS * 3, "at most the calls in flight"

                # Read back through nginx and through the survivor directly: present, complete, the same.
                reader = make_client()
                direct = httpx.Client(base_url=survivor.url, headers={"Authorization": f"Bearer {bearer}"})
                try:
                    for p in publishes:
                        assert p.final is not None
                        path = f"/buckets/{p.bucket}/versions/{p.fingerprint}"
                        version = ok(reader.get(reader.p23(path)))["version"]
                        assert ok(direct.get(p23 + path))["version"] == version
                        name = p.final["name"] if p.tree == "2023" else f"v{p.final['incremental_version']}"
                        assert version["name"] == name
                        assert version["status"] == "VERSION_ACTIVE"
                        components = COMPONENTS_2021 if p.tree == "2021" else ["amazon-ebs.east", "amazon-ebs.west"]
                        assert {b["component_type"] for b in version["builds"]} >= set(components)
                        assert all(b["status"] == "BUILD_DONE" and b["artifacts"] for b in version["builds"])
                    # Per bucket: v1..vN, no gaps, no twins (setup's buckets began empty).
                    for bucket in BUCKETS:
                        mine = [p for p in publishes if p.bucket == bucket]
                        names = {
                            ok(reader.get(reader.p23(f"/buckets/{bucket}/versions/{p.fingerprint}")))["version"]["name"]
                            for p in mine
                        }
                        assert names == {f"v{n}" for n in range(1, len(mine) + 1)}
                        got = ok(direct.get(f"{p23}/buckets/{bucket}"))["bucket"]
                        assert got["latest_version"]["name"] == f"v{len(mine)}"
                        assert got["version_count"] == str(len(mine))
                finally:
                    reader.shut()
                    direct.close()

                # nginx's log: both replicas served before the kill, only the survivor at the end, and the
                # number of 502s is the number the clients received.
                lines = [m.groups() for line in proxy.access_log() if (m := UPSTREAM.search(line))]
                served = Counter(addresses.split(", ")[-1] for status, addresses in lines if status != "502")
                victim_address, survivor_address = (s.url.removeprefix("http://") for s in replicas)
                assert served[victim_address] > 0
                assert served[survivor_address] > 0
                assert all(addresses.split(", ")[-1] == survivor_address for _, addresses in lines[-20:])
                assert sum(1 for status, _ in lines if status == "502") == len(load.unavailable)
                resent = sum(1 for _, addresses in lines if ", " in addresses)  # refused by the victim, sent on
                assert resent + len(load.unavailable) >= 1, "the kill met live traffic"
                print(
                    f"{len(publishes)} publishes, {len(load.unavailable)} calls answered 502, "
                    f"{len(failures)} failed packer builds resumed, "
                    f"{resent} requests nginx resent to the survivor, "
                    f"{time.monotonic() - started:.1f}s"
                )
            logs = survivor.output()
            assert "Traceback" not in logs, logs[-3000:]
    finally:
        with contextlib.suppress(Exception):
            backend.release(url)
