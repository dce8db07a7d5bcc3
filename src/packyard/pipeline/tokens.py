"""The token endpoint's trip: check the throttle and the client's credentials in a read-only
transaction, issue a token, and write only what a failure (or a success with failures to clear) must
count. The OAuth2 wire (form, Basic, error shape) is http/oauth.py's."""

from __future__ import annotations

from packyard.auth.service import source_key
from packyard.domain.errors import Unauthenticated
from packyard.pipeline.services import Services
from packyard.storage.raw import Conn
from packyard.storage.repositories.token_failures import SqlTokenFailures
from packyard.storage.unit_of_work import SqlUnitOfWork


async def issue(svc: Services, client_id: str, client_secret: str, client_host: str) -> str:
    """A bearer token for the client; raises Unauthenticated for wrong credentials and
    auth.service.Throttled while the client id or the source address is locked out."""
    source = source_key(client_host)
    throttle = svc.tokens.throttle
    now = svc.clock.now()

    def work(conn: Conn) -> tuple[str, bool] | None:
        uow = SqlUnitOfWork(conn)
        try:
            found = svc.tokens.authenticate_client(uow, SqlTokenFailures(conn), client_id, client_secret, source, now)
        except Unauthenticated:
            return None
        return svc.tokens.issue(uow, found.principal, now), found.clear_failures

    def count_failure(conn: Conn) -> None:
        throttle.failed(SqlTokenFailures(conn), client_id, source, now)

    def clear_failures(conn: Conn) -> None:
        throttle.succeeded(SqlTokenFailures(conn), client_id, source)

    # The check and the lookup read; only a failure, or a success with failures to clear, writes (on
    # SQLite a write takes the writer lock, which a plain token issue never waits for).
    answer = await svc.db.read(work)
    if answer is None:
        await svc.db.write_alone(count_failure)
        raise Unauthenticated("invalid client credentials")
    token, clear = answer
    if clear:
        await svc.db.write_alone(clear_failures)
    return token
