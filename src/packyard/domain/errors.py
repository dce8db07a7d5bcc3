"""Domain errors. Each carries the gRPC status code that HCP's clients branch on."""

from __future__ import annotations


class DomainError(Exception):
    code: int = 2  # UNKNOWN

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidArgument(DomainError):
    code = 3


class NotFound(DomainError):
    code = 5


class AlreadyExists(DomainError):
    code = 6


class PermissionDenied(DomainError):
    code = 7


class FailedPrecondition(DomainError):
    code = 9


class Aborted(DomainError):
    code = 10


class Unauthenticated(DomainError):
    code = 16
