"""The parsed request handed to handlers, and helpers that turn its parts into typed values."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import TypeVar
from urllib.parse import parse_qs

import msgspec

from packyard.domain.errors import InvalidArgument
from packyard.domain.rules import Limits

S = TypeVar("S")
T = TypeVar("T")


DEFAULT_LIMITS = Limits()  # made once: a Limits per request would cost every request its construction


class Request:
    __slots__ = (
        "_query",
        "body",
        "client_host",
        "headers",
        "limits",
        "method",
        "params",
        "path",
        "principal_id",
        "public_url",
        "query_string",
        "scheme",
    )

    def __init__(
        self,
        method: str,
        path: str,
        query_string: bytes,
        headers: list[tuple[bytes, bytes]],
        params: dict[str, str],
    ) -> None:
        self.method = method
        self.path = path
        self.limits = DEFAULT_LIMITS  # the server's, set by the app: decode steps check sizes against them
        self.query_string = query_string
        self.headers = headers
        self.params = params
        self.body = b""
        self.client_host = ""  # the peer's address (ASGI scope "client"; a trusted proxy's X-Forwarded-For)
        self.scheme = "http"
        self.public_url = ""
        self._query: dict[str, list[str]] | None = None
        self.principal_id = ""  # set by the runner once a token's principal is known (the request log's)

    def header(self, name: bytes) -> str:
        for key, value in self.headers:
            if key == name:
                return value.decode("latin-1")
        return ""

    @property
    def query(self) -> dict[str, list[str]]:
        if self._query is None:
            self._query = parse_qs(self.query_string.decode("utf-8", "replace"), keep_blank_values=True)
        return self._query

    def query_str(self, name: str) -> str:
        values = self.query.get(name)
        return values[-1] if values else ""

    def query_all(self, name: str) -> list[str]:
        return self.query.get(name, [])

    def query_int(self, name: str, *, bits: int = 64) -> int:
        raw = self.query_str(name)
        if raw == "":
            return 0
        try:
            value = int(raw)
        except ValueError:
            raise InvalidArgument(f"query parameter {name} must be an integer, not {raw[:40]!r}") from None
        if not -(2 ** (bits - 1)) <= value < 2 ** (bits - 1):
            raise InvalidArgument(f"query parameter {name} is out of range for int{bits}")
        return value

    def query_bool(self, name: str) -> bool:
        raw = self.query_str(name).lower()
        if raw in ("", "false", "0"):
            return False
        if raw in ("true", "1"):
            return True
        raise InvalidArgument(f"query parameter {name} must be true or false, not {raw[:40]!r}")

    def json(self, kind: type[S]) -> S:
        body = self.body.strip() or b"{}"
        try:
            return msgspec.json.decode(body, type=kind)
        except msgspec.ValidationError as exc:
            raise InvalidArgument(f"invalid request body: {exc}") from None
        except msgspec.DecodeError as exc:
            raise InvalidArgument(f"request body is not valid JSON: {exc}") from None
        except UnicodeDecodeError:
            raise InvalidArgument("request body is not valid UTF-8") from None
        except RecursionError:
            raise InvalidArgument("request body is nested too deeply") from None


def wire_choice(table: Mapping[str, T], value: str | int | None, field: str) -> T | None:
    """A value of a wire enum, through the API tree's table (its names, in the enum's order, to the
    domain's values): by name, or by number as grpc-gateway also accepts. None means not given."""
    if value is None:
        return None
    names = list(table)
    if isinstance(value, int):
        if 0 <= value < len(names):
            return table[names[value]]
    elif value in table:
        return table[value]
    raise InvalidArgument(f"{field} {str(value)[:40]!r} is not one of: {', '.join(names)}")


def parse_time(value: str, field: str) -> datetime | None:
    """RFC 3339; Go's zero time (year 1), which HCP's clients always send, means unset."""
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("z", "Z").replace("Z", "+00:00"))
    except ValueError:
        raise InvalidArgument(f"{field} {value[:40]!r} is not an RFC 3339 time") from None
    if parsed.tzinfo is None:
        raise InvalidArgument(f"{field} {value[:40]!r} needs a time zone (for example a trailing Z)")
    if parsed.year <= 1:
        return None
    try:
        return parsed.astimezone(UTC)
    except OverflowError:  # 9999-12-31T23:59:59-10:00 is past the last representable UTC time
        raise InvalidArgument(f"{field} {value[:40]!r} is out of range") from None


def base_url(request: Request) -> str:
    """Where clients reach this server: PACKYARD_PUBLIC_URL, or the scheme and Host of the request. The
    scheme is the connection's, or X-Forwarded-Proto when uvicorn believed it (the peer is a trusted proxy,
    `serve --forwarded-allow-ips`): the header itself is not read here, so no client can choose it."""
    if request.public_url:
        return request.public_url.rstrip("/")
    host = request.header(b"host") or "localhost"
    return f"{request.scheme}://{host}"
