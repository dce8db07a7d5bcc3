"""The one place where errors become HCP's google.rpc.Status bodies."""

from __future__ import annotations

import msgspec

# gRPC code -> HTTP status, as grpc-gateway maps them.
HTTP_STATUS = {
    1: 499,
    2: 500,
    3: 400,
    4: 504,
    5: 404,
    6: 409,
    7: 403,
    8: 429,
    9: 400,
    10: 409,
    11: 400,
    12: 501,
    13: 500,
    14: 503,
    15: 500,
    16: 401,
}


class Status(msgspec.Struct):
    code: int
    message: str
    details: list[dict[str, str]]
    error: str


_encoder = msgspec.json.Encoder()


def status_body(code: int, message: str) -> bytes:
    # `error` repeats the message for clients generated before Dec 2022 and older Terraform providers.
    return _encoder.encode(Status(code=code, message=message, details=[], error=message))


def http_status(code: int) -> int:
    return HTTP_STATUS.get(code, 500)
