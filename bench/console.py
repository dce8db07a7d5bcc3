"""The web console's pages under load: a person signed in, made directly in the seeded database through
auth/accounts.py (a user and a session, as signing in makes them), whose session cookie wrk sends."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from bench import servers, verify
from bench.seed import SeedResult
from packyard.auth import accounts
from packyard.domain.models import Role
from packyard.storage.unit_of_work import SqlUnitOfWork
from packyard.storage.urls import normalize_url

EMAIL = "bench@example.com"
COOKIE = "packyard_session"  # the cookie's name without TLS (bench serves --no-tls)


def paths(org_id: str, project_id: str, seeded: SeedResult) -> dict[str, str]:
    """The pages measured: the hot bucket's (its ~90 % of the versions behind the first page of 50) and
    the version half-way down it."""
    assert seeded.hot.middle is not None
    bucket = f"/orgs/{org_id}/projects/{project_id}/buckets/{seeded.hot.slug}"
    return {
        "console_bucket": bucket,
        "console_version": f"{bucket}/versions/{seeded.hot.middle.id}",
        "console_channel": f"{bucket}/channels/latest",
    }


def session_cookie(url: str, org_id: str) -> str:
    """A viewer of the organization with a session of 12 hours; returns the Cookie header's value."""
    engine = sa.create_engine(normalize_url(url), poolclass=sa.pool.NullPool)
    now = datetime.now(UTC)
    try:
        with engine.begin() as conn:
            uow = SqlUnitOfWork(conn)
            user = uow.users.get_by_email(EMAIL)
            if user is None:
                made = accounts.create_user(
                    uow, email=EMAIL, role=Role.VIEWER, organization_id=org_id, project_id=None, now=now
                )
                user = made.user
            value, _ = accounts.start_session(uow, user, now, timedelta(hours=12))
    finally:
        engine.dispose()
    return f"{COOKIE}={value}"


def check_pages(port: int, cookie: str, found: dict[str, str], seeded: SeedResult) -> None:
    """Each console page answers the session with the seeded values (not a sign-in redirect)."""
    assert seeded.hot.middle is not None
    assert seeded.hot.latest is not None
    expect = {
        "console_bucket": [seeded.hot.slug, seeded.hot.latest.fingerprint[:20], f">v{seeded.hot.latest.version}<"],
        "console_version": [seeded.hot.middle.fingerprint, *(b[2][0] for b in seeded.hot.middle.builds)],
        "console_channel": [f">v{seeded.hot.latest.version}<"],
    }
    for key, wanted in expect.items():
        status, body = servers.request(port, "GET", found[key], headers={"Cookie": cookie}, timeout=600)
        if status != 200 or not isinstance(body, str):
            raise verify.SeedMismatch(f"console page {found[key]}: HTTP {status} {str(body)[:300]}")
        missing = [w for w in wanted if w not in body]
        if missing:
            raise verify.SeedMismatch(f"console page {found[key]} lacks {missing}")
