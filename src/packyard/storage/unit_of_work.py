"""SqlUnitOfWork: the repositories of one transaction (domain/ports.py UnitOfWork)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Generic, TypeVar, overload

from packyard.domain.ports import Sealer
from packyard.ids import is_uuid
from packyard.storage import freshness
from packyard.storage.freshness import PrincipalWithProject
from packyard.storage.raw import Conn, Raw
from packyard.storage.repositories.buckets import SqlBuckets
from packyard.storage.repositories.builds import SqlBuilds
from packyard.storage.repositories.channels import SqlChannels
from packyard.storage.repositories.iterations import SqlIterations
from packyard.storage.repositories.jobs import SqlJobs
from packyard.storage.repositories.principals import SqlPrincipals
from packyard.storage.repositories.registries import SqlRegistries
from packyard.storage.repositories.sboms import SqlSboms
from packyard.storage.repositories.signing_keys import SqlSigningKeys
from packyard.storage.repositories.tenants import SqlTenants
from packyard.storage.repositories.users import SqlUsers

T = TypeVar("T")


class _once(Generic[T]):  # noqa: N801 - used as a decorator, like functools.cached_property
    """functools.cached_property without its lock (Python 3.11 takes one on every first access, which
    costs more here than building the repository): the value goes in the instance's __dict__, which
    attribute lookup then finds first."""

    def __init__(self, make: Callable[[Any], T]) -> None:
        self.make = make
        self.name = make.__name__

    @overload
    def __get__(self, instance: None, owner: type[Any]) -> _once[T]: ...
    @overload
    def __get__(self, instance: object, owner: type[Any]) -> T: ...
    def __get__(self, instance: object | None, owner: type[Any]) -> T | _once[T]:
        if instance is None:
            return self
        value = instance.__dict__[self.name] = self.make(instance)
        return value


class SqlUnitOfWork:
    """The repositories of one transaction, each made when first used (a request uses three or four)."""

    def __init__(self, conn: Conn, sealer: Sealer | None = None) -> None:
        """sealer: what seals the secrets the registries keep (the server's Vault); a unit of work that
        reads or writes no run-task HMAC key needs none."""
        self.conn = conn
        self._sealer = sealer
        self._raw = Raw(conn)

    def principal_with_project(self, principal_id: str, project_id: str) -> PrincipalWithProject | None:
        """A token's principal and, read with it in one statement, the project the request names: whether
        it is there inside the principal's organization, its change stamp and its registry. None when the
        principal doesn't exist. Every project-scoped request asks for this first (pipeline/runner.py)."""
        if is_uuid(project_id):  # only a well-formed id is looked up; tenancy refuses the others
            return freshness.principal_with_project(self._raw, principal_id, project_id)
        return freshness.principal_alone(self._raw, principal_id)

    @_once
    def tenants(self) -> SqlTenants:
        return SqlTenants(self.conn, self._raw)

    @_once
    def principals(self) -> SqlPrincipals:
        return SqlPrincipals(self.conn, self._raw)

    @_once
    def signing_keys(self) -> SqlSigningKeys:
        return SqlSigningKeys(self.conn, self._raw)

    @_once
    def registries(self) -> SqlRegistries:
        return SqlRegistries(self.conn, self._sealer, self._raw)

    @_once
    def buckets(self) -> SqlBuckets:
        return SqlBuckets(self.conn, self._raw)

    @_once
    def iterations(self) -> SqlIterations:
        return SqlIterations(self.conn, self._raw)

    @_once
    def builds(self) -> SqlBuilds:
        return SqlBuilds(self.conn, self._raw)

    @_once
    def channels(self) -> SqlChannels:
        return SqlChannels(self.conn, self._raw)

    @_once
    def jobs(self) -> SqlJobs:
        return SqlJobs(self.conn, self._raw)

    @_once
    def sboms(self) -> SqlSboms:
        return SqlSboms(self.conn, self._raw)

    @_once
    def users(self) -> SqlUsers:
        return SqlUsers(self.conn, self._raw)
