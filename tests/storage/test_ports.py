"""Port conformance: every method of every Protocol in domain/ports.py, through the real unit of work on
the test's database (SQLite, or PostgreSQL with PACKYARD_TEST_POSTGRES_URL), each call in a transaction
of its own: round trips, not-found answers, duplicate refusals and keyset paging's edges.

Each test names the methods it holds to their contract (@covers); test_every_port_method_is_covered
fails when a port gains a method that no test here exercises."""

from __future__ import annotations

import inspect
import threading
from collections.abc import Callable
from dataclasses import replace
from datetime import timedelta
from functools import partial
from typing import Any, TypeVar

import pytest

from packyard.auth.vault import Vault
from packyard.domain import ports
from packyard.domain.errors import AlreadyExists, DomainError, Term
from packyard.domain.models import (
    BuildStatus,
    ChannelAssignment,
    FailureCount,
    Image,
    Job,
    Organization,
    Principal,
    Project,
    Registry,
    RevocationType,
    Role,
    RunTaskBehaviour,
    Sbom,
    SbomFormat,
    TemplateType,
    Tier,
    User,
    UserSession,
)
from packyard.domain.pagination import PageRequest, SortField
from packyard.domain.ports import SealError
from packyard.http.hcp_2021.words import WORDS
from packyard.ids import new_ulid, new_uuid
from packyard.storage.codecs import EPOCH
from packyard.storage.freshness import PrincipalWithProject
from packyard.storage.repositories.token_failures import SqlTokenFailures
from packyard.storage.unit_of_work import SqlUnitOfWork
from tests.storage.conftest import Store, at

F = TypeVar("F", bound=Callable[..., Any])
COVERED: set[str] = set()
# What a 2023-01-01 tree says instead of 2021's words (the terms that differ).
WORDS_2023 = {Term.ITERATION: "version", Term.ITERATIONS: "versions"}


def covers(*methods: str) -> Callable[[F], F]:
    """The port methods ("Buckets.page") a test holds to their contract."""
    COVERED.update(methods)
    return lambda test: test


def refused(call: Callable[[], object]) -> DomainError:
    with pytest.raises(AlreadyExists) as caught:
        call()
    return caught.value


def page(size: int, *order: SortField, cursor: tuple[object, ...] | None = None, back: bool = False) -> PageRequest:
    return PageRequest(size, order, cursor, back)


ASC = (SortField("created_at"), SortField("id"))


def test_every_port_method_is_covered() -> None:
    declared = {
        f"{name}.{member}"
        for name, port in vars(ports).items()
        if inspect.isclass(port) and port.__module__ == ports.__name__ and getattr(port, "_is_protocol", False)
        for member, value in vars(port).items()
        if not member.startswith("_") and (inspect.isfunction(value) or isinstance(value, property))
    }
    assert "Buckets.page" in declared
    assert "UnitOfWork.buckets" in declared
    assert declared - COVERED == set(), "port methods without a conformance test"
    assert COVERED - declared == set(), "tests that name methods no port has"


# ---------------------------------------------------------------------------------------------- unit of work


@covers(
    "UnitOfWork.tenants",
    "UnitOfWork.principals",
    "UnitOfWork.signing_keys",
    "UnitOfWork.registries",
    "UnitOfWork.buckets",
    "UnitOfWork.iterations",
    "UnitOfWork.builds",
    "UnitOfWork.channels",
    "UnitOfWork.jobs",
    "UnitOfWork.sboms",
    "UnitOfWork.users",
)
def test_a_unit_of_work_makes_each_repository_once(store: Store) -> None:
    names = [name for name, value in vars(ports.UnitOfWork).items() if isinstance(value, property)]
    assert len(names) == 11

    def check(uow: SqlUnitOfWork) -> None:
        for name in names:
            first = getattr(uow, name)
            assert getattr(uow, name) is first
            assert first.raw is uow.buckets.raw, "one Raw for all the repositories of a unit of work"

    store(check, write=False)


# ---------------------------------------------------------------------------------------------- tenants


@covers(
    "Tenants.add_organization",
    "Tenants.get_organization",
    "Tenants.list_organizations",
    "Tenants.add_project",
    "Tenants.get_project",
    "Tenants.list_projects",
)
def test_organizations_and_projects_round_trip(store: Store) -> None:
    org = Organization(new_uuid(), "second", at(10))
    first, second = Project(new_uuid(), org.id, "b", at(11)), Project(new_uuid(), org.id, "a", at(12))
    store(lambda uow: uow.tenants.add_organization(org))
    store(lambda uow: uow.tenants.add_project(second))
    store(lambda uow: uow.tenants.add_project(first))  # added last, made first: listed by creation
    assert store(lambda uow: uow.tenants.get_organization(org.id)) == org
    assert store(lambda uow: uow.tenants.get_organization(new_uuid())) is None
    assert [o.id for o in store(lambda uow: uow.tenants.list_organizations())] == [store.organization_id, org.id]
    assert store(lambda uow: uow.tenants.get_project(org.id, first.id)) == first
    assert store(lambda uow: uow.tenants.get_project(store.organization_id, first.id)) is None, "another org's"
    assert store(lambda uow: uow.tenants.list_projects(org.id)) == [first, second]
    assert store(lambda uow: uow.tenants.list_projects(new_uuid())) == []
    refused(lambda: store(lambda uow: uow.tenants.add_organization(replace(org, name="again"))))
    refused(lambda: store(lambda uow: uow.tenants.add_project(replace(first, name="again"))))
    assert store(lambda uow: uow.tenants.get_project(org.id, first.id)) == first, "the refusal changed nothing"


@covers("Tenants.hold_setup")
def test_holding_the_setup_keeps_another_setup_waiting_until_the_commit(store: Store) -> None:
    """While one transaction holds the default tenant's setup, another that asks for it waits, and gets
    it once the first has committed (PostgreSQL: an advisory lock; SQLite: the write lock)."""
    held, release, second_held = threading.Event(), threading.Event(), threading.Event()

    def first(uow: SqlUnitOfWork) -> None:
        uow.tenants.hold_setup()
        held.set()
        assert release.wait(30), "the test never let the first setup go"

    def second(uow: SqlUnitOfWork) -> None:
        uow.tenants.hold_setup()
        second_held.set()

    one = threading.Thread(target=store, args=(first,))
    one.start()
    assert held.wait(30)
    two = threading.Thread(target=store, args=(second,))
    two.start()
    try:
        # Bounded: were the second not kept waiting, it would be through well within this.
        assert not second_held.wait(0.3), "the second setup went ahead while the first held it"
    finally:
        release.set()
        one.join(30)
        two.join(30)
    assert second_held.is_set(), "the second setup got it once the first committed"


# ---------------------------------------------------------------------------------------------- principals


def _principal(store: Store, name: str, *, project_id: str | None = None, created: float = 5) -> Principal:
    return Principal(
        id=new_ulid(),
        client_id=f"client-{name}",
        name=name,
        organization_id=store.organization_id,
        project_id=project_id,
        role=Role.VIEWER,
        secret_hash=f"hash-{name}",
        created_at=at(created),
    )


@covers("Principals.add", "Principals.get", "Principals.get_by_client_id", "Principals.all", "Principals.delete")
def test_principals_round_trip(store: Store) -> None:
    scoped = _principal(store, "scoped", project_id=store.project_id)
    plain = _principal(store, "plain", created=6)
    store(lambda uow: uow.principals.add(plain))
    store(lambda uow: uow.principals.add(scoped))
    assert store(lambda uow: uow.principals.get(scoped.id)) == scoped
    assert store(lambda uow: uow.principals.get_by_client_id("client-plain")) == plain
    assert store(lambda uow: uow.principals.get(new_ulid())) is None
    assert store(lambda uow: uow.principals.get_by_client_id("nobody")) is None
    everyone = store(lambda uow: uow.principals.all())
    assert [p.client_id for p in everyone] == [store.principal_client_id, "client-scoped", "client-plain"]
    duplicate = refused(lambda: store(lambda uow: uow.principals.add(replace(plain, id=new_ulid()))))
    assert "client-plain" in duplicate.message
    store(lambda uow: uow.principals.delete(scoped.id))
    store(lambda uow: uow.principals.delete(scoped.id))  # deleting what is gone is no error
    assert store(lambda uow: uow.principals.get(scoped.id)) is None


def _with_project(uow: SqlUnitOfWork, *, principal_id: str, project_id: str) -> PrincipalWithProject | None:
    return uow.principal_with_project(principal_id, project_id)


def test_the_principal_with_its_project_in_one_read(store: Store) -> None:
    """Not a port of the domain, but what every project-scoped request reads first (storage/freshness.py):
    the principal, and inside its own organization the project's stamp and registry."""
    other_org = Organization(new_uuid(), "other", at(1))
    elsewhere = Project(new_uuid(), other_org.id, "elsewhere", at(1))
    bare = Project(new_uuid(), store.organization_id, "no registry", at(1))
    principal = _principal(store, "reader")

    def setup(uow: SqlUnitOfWork) -> None:
        uow.tenants.add_organization(other_org)
        uow.tenants.add_project(elsewhere)
        uow.tenants.add_project(bare)
        uow.principals.add(principal)

    store(setup)
    found = store(lambda uow: uow.principal_with_project(principal.id, store.project_id), write=False)
    assert found is not None
    assert found.principal == principal
    assert found.project_found
    assert found.stamp is not None
    assert found.registry == store(lambda uow: uow.registries.get(store.project_id))
    for project_id in (bare.id, elsewhere.id, new_uuid(), "not an id"):
        read = store(partial(_with_project, principal_id=principal.id, project_id=project_id), write=False)
        assert read is not None
        assert read.principal == principal
        assert read.project_found is (project_id == bare.id), "found only inside the principal's organization"
        assert read.registry is None
    assert store(lambda uow: uow.principal_with_project(new_ulid(), store.project_id), write=False) is None
    assert store(lambda uow: uow.principal_with_project(new_ulid(), "x"), write=False) is None


# ---------------------------------------------------------------------------------------------- signing keys


@covers("SigningKeys.current", "SigningKeys.get", "SigningKeys.add")
def test_signing_keys_round_trip(store: Store) -> None:
    first = store(lambda uow: uow.signing_keys.current())
    assert first is not None, "initialize() made one"
    salt = bytes(range(256))  # every byte value, NUL and non-UTF-8 included
    store(lambda uow: uow.signing_keys.add("zzzz-newest", salt))
    assert store(lambda uow: uow.signing_keys.current()) == ("zzzz-newest", salt)
    assert store(lambda uow: uow.signing_keys.get(first[0])) == first[1]
    assert store(lambda uow: uow.signing_keys.get("no-such-key")) is None


# ---------------------------------------------------------------------------------------------- registries


@covers("Registries.get", "Registries.add", "Registries.save", "Registries.purge")
def test_registries_round_trip_and_purge(store: Store) -> None:
    project = Project(new_uuid(), store.organization_id, "second", at(1))
    store(lambda uow: uow.tenants.add_project(project))
    assert store(lambda uow: uow.registries.get(project.id)) is None
    made = Registry(new_ulid(), store.organization_id, project.id, Tier.STANDARD, True, at(2), at(2), new_ulid())
    store(lambda uow: uow.registries.add(made))
    assert store(lambda uow: uow.registries.get(project.id)) == made
    duplicate = refused(lambda: store(lambda uow: uow.registries.add(replace(made, id=new_ulid()))))
    assert duplicate.render(WORDS) == f"project {project.id} already has a registry"
    changed = replace(made, feature_tier=Tier.PLUS, activated=False, deactivated_at=at(3), updated_at=at(3))
    store(lambda uow: uow.registries.save(changed))
    assert store(lambda uow: uow.registries.get(project.id)) == changed

    bucket = store.bucket("doomed", project_id=project.id)
    iteration = store.iteration(bucket, "f1")
    store.build(iteration, "a.b", images=2)
    store.bucket("spared")  # another project's
    store(lambda uow: uow.registries.purge(project.id))
    assert store(lambda uow: uow.registries.get(project.id)) is None
    assert store(lambda uow: uow.buckets.get(project.id, "doomed")) is None
    assert store(lambda uow: uow.iterations.get_in_project(project.id, iteration.id)) is None
    assert store(lambda uow: uow.buckets.get(store.project_id, "spared")) is not None
    assert store(lambda uow: uow.registries.get(store.project_id)) is not None


@covers("Registries.hmac_key", "Registries.set_hmac_key", "Sealer.seal", "Sealer.open")
def test_the_run_task_key_is_kept_sealed(store: Store) -> None:
    assert store(lambda uow: uow.registries.hmac_key(store.project_id)) is None
    store(lambda uow: uow.registries.set_hmac_key(store.project_id, "the clear key"))
    assert store(lambda uow: uow.registries.hmac_key(store.project_id)) == "the clear key"
    sealed: Any = store(
        lambda uow: uow.registries.raw.first("SELECT hmac_key FROM registry WHERE project_id = ?", (store.project_id,))
    )
    assert sealed is not None
    assert "the clear key" not in sealed.hmac_key
    assert store.sealer.open(sealed.hmac_key) == "the clear key"
    store.sealer = Vault("another secret")
    with pytest.raises(SealError):
        store(lambda uow: uow.registries.hmac_key(store.project_id))
    store(lambda uow: uow.registries.set_hmac_key(store.project_id, "a new key"))  # regenerated
    assert store(lambda uow: uow.registries.hmac_key(store.project_id)) == "a new key"


@covers("Registries.for_run_task", "Registries.run_task_behaviour", "Registries.set_run_task_behaviour")
def test_the_run_task_of_a_registry(store: Store) -> None:
    registry = store(lambda uow: uow.registries.get(store.project_id))
    assert registry is not None
    assert store(lambda uow: uow.registries.for_run_task(registry.run_task_api_id)) == registry
    assert store(lambda uow: uow.registries.for_run_task(new_ulid())) is None
    assert store(lambda uow: uow.registries.run_task_behaviour(store.project_id)) is RunTaskBehaviour.UNSET
    store(lambda uow: uow.registries.set_run_task_behaviour(store.project_id, RunTaskBehaviour.WARN))
    assert store(lambda uow: uow.registries.run_task_behaviour(store.project_id)) is RunTaskBehaviour.WARN
    assert store(lambda uow: uow.registries.run_task_behaviour(new_uuid())) is RunTaskBehaviour.UNSET, "no registry"
    assert store(lambda uow: uow.registries.get(store.project_id)) == registry, "read apart, written apart"


# ---------------------------------------------------------------------------------------------- buckets


@covers(
    "Buckets.get",
    "Buckets.get_by_id",
    "Buckets.add",
    "Buckets.save",
    "Buckets.set_latest",
    "Buckets.delete",
    "Buckets.next_version",
    "Buckets.adjust_iteration_count",
)
def test_buckets_round_trip(store: Store) -> None:
    bucket = store.bucket("web", created=1)
    assert store(lambda uow: uow.buckets.get(store.project_id, "web")) == bucket
    assert store(lambda uow: uow.buckets.get(store.project_id, "web", for_update=True)) == bucket
    assert store(lambda uow: uow.buckets.get_by_id(store.project_id, bucket.id)) == bucket
    assert store(lambda uow: uow.buckets.get(new_uuid(), "web")) is None, "found only in its project"
    assert store(lambda uow: uow.buckets.get_by_id(new_uuid(), bucket.id)) is None
    duplicate = refused(lambda: store.bucket("web"))
    assert duplicate.render(WORDS) == "bucket 'web' already exists"

    changed = replace(
        bucket, description="d", labels={"a": "b", "ü": "{x}"}, platforms=["aws", "gce"], updated_at=at(2)
    )
    changed.latest_version = 7  # save() writes neither the counters nor latest_*
    store(lambda uow: uow.buckets.save(changed))
    assert store(lambda uow: uow.buckets.get(store.project_id, "web")) == replace(changed, latest_version=0)
    iteration = store.iteration(bucket, "f1", version=1)
    latest = replace(changed, latest_iteration_id=iteration.id, latest_version=1, platforms=["azure"], updated_at=at(3))
    latest.description = "not written by set_latest"
    store(lambda uow: uow.buckets.set_latest(latest))
    assert store(lambda uow: uow.buckets.get(store.project_id, "web")) == replace(latest, description="d")

    assert [store(lambda uow: uow.buckets.next_version(bucket.id)) for _ in range(3)] == [1, 2, 3]
    store(lambda uow: uow.buckets.adjust_iteration_count(bucket.id, 2))
    store(lambda uow: uow.buckets.adjust_iteration_count(bucket.id, -1))
    found = store(lambda uow: uow.buckets.get(store.project_id, "web"))
    assert found is not None
    assert found.iteration_count == 1
    store(lambda uow: uow.buckets.delete(bucket.id))
    assert store(lambda uow: uow.buckets.get(store.project_id, "web")) is None
    assert store(lambda uow: uow.iterations.get(bucket.id, iteration_id=iteration.id)) is None, "cascaded"


@covers("Buckets.page")
def test_a_page_of_buckets_at_its_edges(store: Store) -> None:
    assert store(lambda uow: uow.buckets.page(store.project_id, page(2, *ASC))) == [], "an empty first page"
    # created: 1, 2, 2, 3, 4 (a tie at 2, broken by id)
    made = [store.bucket(f"b{n}", created=c, updated=10 - n) for n, c in enumerate((1, 2, 2, 3, 4))]
    ids = [b.id for b in made]

    def slugs(request: PageRequest) -> list[str]:
        return [b.slug for b in store(lambda uow: uow.buckets.page(store.project_id, request))]

    def key(n: int) -> tuple[object, ...]:
        return (made[n].created_at, ids[n])

    assert slugs(page(2, *ASC)) == ["b0", "b1", "b2"], "one row more than the page: there is a next page"
    assert slugs(page(2, *ASC, cursor=key(1))) == ["b2", "b3", "b4"], "after the tie's first row: its second"
    assert slugs(page(2, *ASC, cursor=key(2))) == ["b3", "b4"], "exactly a page left: no row more"
    assert slugs(page(2, *ASC, cursor=key(4))) == [], "after the last row"
    assert slugs(page(2, *ASC, cursor=key(3), back=True)) == ["b2", "b1", "b0"], "backwards, nearest first"
    assert slugs(page(2, *ASC, cursor=key(0), back=True)) == [], "before the first row"
    assert slugs(page(5, *ASC)) == ["b0", "b1", "b2", "b3", "b4"], "the page holds them all"
    # Mixed directions (no single row comparison): updated_at descending, then slug ascending.
    mixed = (SortField("updated_at", descending=True), SortField("slug"), SortField("id"))
    assert slugs(page(2, *mixed)) == ["b0", "b1", "b2"]
    assert slugs(page(2, *mixed, cursor=(made[1].updated_at, "b1", ids[1]))) == ["b2", "b3", "b4"]
    assert slugs(page(2, *mixed, cursor=(made[3].updated_at, "b3", ids[3]), back=True)) == ["b2", "b1", "b0"]
    by_slug = (SortField("slug", descending=True), SortField("id", descending=True))
    assert slugs(page(3, *by_slug, cursor=("b3", ids[3]))) == ["b2", "b1", "b0"]
    assert store(lambda uow: uow.buckets.page(new_uuid(), page(2, *ASC))) == [], "only the project's buckets"


# ---------------------------------------------------------------------------------------------- iterations


@covers(
    "Iterations.get",
    "Iterations.get_in_project",
    "Iterations.in_bucket",
    "Iterations.of_build",
    "Iterations.get_many",
    "Iterations.add",
    "Iterations.save",
    "Iterations.delete",
)
def test_iterations_round_trip(store: Store) -> None:
    bucket = store.bucket("web")
    iteration = store.iteration(bucket, "f1", version=3)
    draft = store.iteration(bucket, "f2")
    build = store.build(iteration, "amazon-ebs.a")
    other = Project(new_uuid(), store.organization_id, "other", at(0))
    store(lambda uow: uow.tenants.add_project(other))
    foreign = store.iteration(store.bucket("web", project_id=other.id), "f1")

    def get(**by: Any) -> Any:
        return store(lambda uow: uow.iterations.get(bucket.id, **by))

    assert get(iteration_id=iteration.id) == iteration
    assert get(fingerprint="f1") == iteration
    assert get(version=3) == iteration
    assert get(version=3, for_update=True) == iteration
    assert get(version=0) is None, "an incomplete iteration has no version"
    assert get(fingerprint="nope") is None
    assert get(iteration_id=foreign.id) is None, "another bucket's"
    with pytest.raises(ValueError, match="identifier"):
        get()
    assert store(lambda uow: uow.iterations.get_in_project(store.project_id, draft.id)) == draft
    assert store(lambda uow: uow.iterations.get_in_project(store.project_id, foreign.id)) is None
    assert store(lambda uow: uow.iterations.in_bucket(store.project_id, "web", fingerprint="f1")) == iteration
    assert store(lambda uow: uow.iterations.in_bucket(other.id, "web", iteration_id=foreign.id)) == foreign
    assert store(lambda uow: uow.iterations.in_bucket(store.project_id, "web", iteration_id=foreign.id)) is None
    assert store(lambda uow: uow.iterations.in_bucket(store.project_id, "api", fingerprint="f1")) is None
    assert store(lambda uow: uow.iterations.of_build(store.project_id, build.id, for_update=True)) == iteration
    assert store(lambda uow: uow.iterations.of_build(other.id, build.id)) is None
    many = store(lambda uow: uow.iterations.get_many(store.project_id, [iteration.id, draft.id, foreign.id]))
    assert many == {iteration.id: iteration, draft.id: draft}
    assert store(lambda uow: uow.iterations.get_many(store.project_id, [])) == {}

    duplicate = refused(lambda: store.iteration(bucket, "f1"))
    assert duplicate.render(WORDS) == "iteration fingerprint 'f1' already exists in bucket 'web'"
    assert duplicate.render(WORDS_2023) == "version fingerprint 'f1' already exists in bucket 'web'"
    changed = replace(
        draft,
        incremental_version=4,
        complete=True,
        author_id="someone",
        template_type=TemplateType.HCL2,
        revoke_at=at(50),
        revocation_message="m",
        revocation_author="a",
        revocation_type=RevocationType.INHERITED,
        revocation_inherited_from=iteration.id,
        own_revoke_at=at(60),
        own_revocation_message="own",
        own_revocation_author="me",
        updated_at=at(7),
    )
    store(lambda uow: uow.iterations.save(changed))
    assert get(iteration_id=draft.id) == changed
    store(lambda uow: uow.iterations.delete(draft.id))
    assert get(iteration_id=draft.id) is None


@covers("Iterations.latest_complete")
def test_the_latest_complete_iteration(store: Store) -> None:
    bucket = store.bucket("web")
    assert store(lambda uow: uow.iterations.latest_complete(bucket.id)) is None
    v1 = store.iteration(bucket, "f1", version=1)
    v2 = store.iteration(bucket, "f2", version=2)
    store.iteration(bucket, "f3")  # incomplete: no version
    assert store(lambda uow: uow.iterations.latest_complete(bucket.id)) == v2
    revoked = replace(v2, revoke_at=at(100))
    store(lambda uow: uow.iterations.save(revoked))
    assert store(lambda uow: uow.iterations.latest_complete(bucket.id, valid_at=at(99))) == revoked
    assert store(lambda uow: uow.iterations.latest_complete(bucket.id, valid_at=at(100))) == v1
    assert store(lambda uow: uow.iterations.latest_complete(bucket.id)) == revoked


@covers("Iterations.page")
def test_a_page_of_iterations(store: Store) -> None:
    bucket = store.bucket("web")
    assert store(lambda uow: uow.iterations.page(bucket.id, page(2, *ASC))) == []
    made = [store.iteration(bucket, f"f{n}", created=n, version=n + 1) for n in range(4)]
    store.iteration(store.bucket("api"), "f9")  # another bucket's
    newest = (SortField("incremental_version", descending=True), SortField("id", descending=True))

    def fingerprints(request: PageRequest) -> list[str]:
        return [i.fingerprint for i in store(lambda uow: uow.iterations.page(bucket.id, request))]

    assert fingerprints(page(2, *newest)) == ["f3", "f2", "f1"]
    assert fingerprints(page(2, *newest, cursor=(3, made[2].id))) == ["f1", "f0"]
    assert fingerprints(page(2, *newest, cursor=(2, made[1].id), back=True)) == ["f2", "f3"]
    by_fingerprint = (SortField("fingerprint"), SortField("id"))
    assert fingerprints(page(4, *by_fingerprint)) == ["f0", "f1", "f2", "f3"]
    assert fingerprints(page(1, SortField("updated_at"), SortField("id"), cursor=(at(2), made[2].id))) == ["f3"]


@covers("Iterations.children", "Iterations.with_descendants", "Iterations.inherited_from", "Iterations.build_states")
def test_ancestry_and_build_states(store: Store) -> None:
    base = store.bucket("base")
    app = store.bucket("app")
    parent = store.iteration(base, "p", version=1)
    lonely = store.iteration(base, "l", version=2)
    child = store.iteration(app, "c")
    first = store.build(child, "a.one", created=1, source=parent)
    store.build(child, "a.two", created=2, source=parent)
    assert store(lambda uow: uow.iterations.children(store.project_id, [parent.id, lonely.id])) == [child]
    assert store(lambda uow: uow.iterations.children(store.project_id, [])) == []
    assert store(lambda uow: uow.iterations.children(new_uuid(), [parent.id])) == [], "within the project"
    assert store(lambda uow: uow.iterations.with_descendants(store.project_id, [parent.id, lonely.id])) == {parent.id}
    assert store(lambda uow: uow.iterations.with_descendants(store.project_id, [])) == set()

    inherited = replace(child, revocation_type=RevocationType.INHERITED, revocation_inherited_from=parent.id)
    store(lambda uow: uow.iterations.save(inherited))
    store(lambda uow: uow.iterations.save(replace(lonely, revocation_inherited_from=parent.id)))  # not INHERITED
    assert store(lambda uow: uow.iterations.inherited_from(store.project_id, parent.id)) == [inherited]
    assert store(lambda uow: uow.iterations.inherited_from(store.project_id, lonely.id)) == []

    done = replace(first, status=BuildStatus.DONE, heartbeat_at=at(9))
    store(lambda uow: uow.builds.save(done, images_changed=False))
    states = store(lambda uow: uow.iterations.build_states([child.id, parent.id]))
    assert states == {child.id: [("a.one", BuildStatus.DONE, at(9)), ("a.two", BuildStatus.RUNNING, at(2))]}


# ---------------------------------------------------------------------------------------------- builds


@covers(
    "Builds.add",
    "Builds.get",
    "Builds.for_change",
    "Builds.save",
    "Builds.delete",
    "Builds.for_iterations",
    "Builds.cloud_providers",
)
def test_builds_round_trip(store: Store) -> None:
    bucket = store.bucket("web")
    iteration = store.iteration(bucket, "f1")
    other = store.iteration(bucket, "f2")
    build = store.build(iteration, "amazon-ebs.a", created=1, cloud="aws", images=2)
    second = store.build(iteration, "azure-arm.b", created=2, cloud="azure")
    store.build(iteration, "null.c", created=3)
    assert store(lambda uow: uow.builds.get(store.project_id, build.id)) == build
    assert store(lambda uow: uow.builds.get(store.project_id, build.id, for_update=True)) == build
    assert store(lambda uow: uow.builds.get(new_uuid(), build.id)) is None, "found only in its project"
    assert store(lambda uow: uow.builds.for_change(store.project_id, build.id)) == (iteration, build)
    assert store(lambda uow: uow.builds.for_change(store.project_id, new_ulid())) is None
    duplicate = refused(lambda: store.build(iteration, "amazon-ebs.a"))
    assert duplicate.render(WORDS) == f"iteration {iteration.id} already has a build for component_type 'amazon-ebs.a'"
    assert duplicate.render(WORDS_2023).startswith(f"version {iteration.id} already has a build")
    assert store(lambda uow: uow.builds.cloud_providers(iteration.id)) == {"aws", "azure"}
    assert store(lambda uow: uow.builds.cloud_providers(other.id)) == set()

    image = Image(new_ulid(), second.id, "img-new", "westeurope", at(4))
    changed = replace(
        second,
        status=BuildStatus.DONE,
        packer_run_uuid="run",
        source_image_id="src-img",
        source_channel_id="chan",
        source_build_ulid=new_ulid(),
        labels={"os": "windows"},
        updated_at=at(4),
        heartbeat_at=at(4),
        images=[image],
    )
    store(lambda uow: uow.builds.save(changed, images_changed=True, had_images=False))
    assert store(lambda uow: uow.builds.get(store.project_id, second.id)) == changed
    relabelled = replace(changed, labels={}, images=[])  # images not changed: the stored ones stay
    store(lambda uow: uow.builds.save(relabelled, images_changed=False))
    assert store(lambda uow: uow.builds.get(store.project_id, second.id)) == replace(relabelled, images=[image])
    replaced = replace(build, images=[replace(build.images[1], id=new_ulid()), replace(build.images[0], id=new_ulid())])
    store(lambda uow: uow.builds.save(replaced, images_changed=True))
    assert store(lambda uow: uow.builds.get(store.project_id, build.id)) == replaced, "images in their new order"

    every = store(lambda uow: uow.builds.for_iterations([iteration.id, other.id]))
    assert list(every) == [iteration.id]
    assert [b.component_type for b in every[iteration.id]] == ["amazon-ebs.a", "azure-arm.b", "null.c"]
    assert every[iteration.id][0] == replaced
    assert store(lambda uow: uow.builds.for_iterations([])) == {}
    store(lambda uow: uow.builds.delete(build.id))
    assert store(lambda uow: uow.builds.get(store.project_id, build.id)) is None
    assert store(lambda uow: uow.builds.for_change(store.project_id, build.id)) is None


@covers("Builds.for_iteration")
def test_a_page_of_builds(store: Store) -> None:
    iteration = store.iteration(store.bucket("web"), "f1")
    assert store(lambda uow: uow.builds.for_iteration(iteration.id, page(2, *ASC))) == []
    assert store(lambda uow: uow.builds.for_iteration(iteration.id)) == []
    made = [store.build(iteration, f"c.{n}", created=10 - n, images=n % 2) for n in range(3)]

    def components(request: PageRequest | None) -> list[str]:
        return [b.component_type for b in store(lambda uow: uow.builds.for_iteration(iteration.id, request))]

    assert components(None) == ["c.2", "c.1", "c.0"], "all of them, in creation order"
    assert components(page(2, *ASC)) == ["c.2", "c.1", "c.0"]
    assert components(page(2, *ASC, cursor=(made[1].created_at, made[1].id))) == ["c.0"]
    by_component = (SortField("component_type"), SortField("id"))
    assert components(page(2, *by_component, cursor=("c.2", made[2].id), back=True)) == ["c.1", "c.0"]
    paged = store(lambda uow: uow.builds.for_iteration(iteration.id, page(3, *by_component)))
    assert paged == made, "with their images"


@covers("Builds.derived_from_bucket")
def test_builds_derived_from_a_bucket(store: Store) -> None:
    base, app, other = store.bucket("base"), store.bucket("app"), store.bucket("other")
    parent = store.iteration(base, "p", version=1)
    child = store.iteration(app, "c", version=1)
    old_child = store.iteration(app, "old", version=2)
    derived = store.build(child, "a.b", source=parent)
    store.build(old_child, "a.b", source=parent)  # not its bucket's latest iteration
    store.build(store.iteration(other, "o", version=1), "a.b")  # no source
    store(lambda uow: uow.buckets.set_latest(replace(app, latest_iteration_id=child.id)))
    assert store(lambda uow: uow.builds.derived_from_bucket(store.project_id, base.id)) == [replace(derived, images=[])]
    assert store(lambda uow: uow.builds.derived_from_bucket(store.project_id, app.id)) == []


@covers("Builds.with_artifact", "Builds.metadata")
def test_builds_by_artifact_and_their_metadata(store: Store) -> None:
    iteration = store.iteration(store.bucket("web"), "f1")
    aws = store.build(iteration, "a.aws", created=1, cloud="aws", images=2)  # ami-0 in region-0, ami-1 in region-1
    gce = store.build(iteration, "a.gce", created=2, cloud="gce", images=1)  # ami-0 in region-0
    store.build(store.iteration(store.bucket("api"), "f1"), "a.aws", cloud="aws")  # no image
    other = Project(new_uuid(), store.organization_id, "other", at(0))
    store(lambda uow: uow.tenants.add_project(other))
    store.build(store.iteration(store.bucket("web", project_id=other.id), "f1"), "a.aws", cloud="aws", images=1)

    def found(image_id: str, platform: str = "", region: str = "", request: PageRequest | None = None) -> list[str]:
        wanted = request or page(10, *ASC)
        builds = store(lambda uow: uow.builds.with_artifact(store.project_id, image_id, platform, region, wanted))
        return [b.component_type for b in builds]

    assert found("ami-0") == ["a.aws", "a.gce"], "only the project's"
    assert found("ami-0", platform="gce") == ["a.gce"]
    assert found("ami-0", region="region-1") == []
    assert found("ami-1", region="region-1") == ["a.aws"]
    assert found("ami-9") == []
    assert found("ami-0", request=page(1, *ASC)) == ["a.aws", "a.gce"], "one row more than the page"
    assert found("ami-0", request=page(1, *ASC, cursor=(aws.created_at, aws.id))) == ["a.gce"]
    with_images = store(lambda uow: uow.builds.with_artifact(store.project_id, "ami-1", "", "", page(5, *ASC)))
    assert with_images == [aws], "with all their images"

    assert store(lambda uow: uow.builds.metadata([aws.id, gce.id])) == {}
    told = {"packer": {"version": "1.11.0"}, "vcs": {"dirty": False}, "plugins": [{"name": "amazon"}]}
    store(lambda uow: uow.builds.save(replace(gce, metadata=told), images_changed=False))
    assert store(lambda uow: uow.builds.metadata([aws.id, gce.id])) == {gce.id: told}
    store(lambda uow: uow.builds.save(replace(gce, labels={"x": "y"}), images_changed=False))  # metadata None
    assert store(lambda uow: uow.builds.metadata([gce.id])) == {gce.id: told}, "None leaves what is stored"
    assert store(lambda uow: uow.builds.metadata([])) == {}


# ---------------------------------------------------------------------------------------------- SBOMs


@covers("Sboms.add", "Sboms.for_build", "Sboms.get", "Sboms.get_by_id")
def test_sboms_round_trip(store: Store) -> None:
    build = store.build(store.iteration(store.bucket("web"), "f1"), "a.b")
    assert store(lambda uow: uow.sboms.for_build(build.id)) == []

    def sbom(name: str, created: float) -> Sbom:
        content = bytes([0x28, 0xB5, 0x2F, 0xFD, 0, len(name)])  # stored as it came, NUL included
        return Sbom(new_ulid(), build.id, store.project_id, name, SbomFormat.SPDX, 1234, at(created), content)

    second, first = sbom("second", 2), sbom("first", 1)
    store(lambda uow: uow.sboms.add(second))
    store(lambda uow: uow.sboms.add(first))
    assert store(lambda uow: uow.sboms.for_build(build.id)) == [
        replace(first, content=b""),
        replace(second, content=b""),
    ], "oldest first, without their content"
    assert store(lambda uow: uow.sboms.get(build.id, "first")) == first
    assert store(lambda uow: uow.sboms.get(build.id, "third")) is None
    assert store(lambda uow: uow.sboms.get_by_id(second.id)) == second
    assert store(lambda uow: uow.sboms.get_by_id(new_ulid())) is None
    duplicate = refused(lambda: store(lambda uow: uow.sboms.add(replace(first, id=new_ulid()))))
    assert duplicate.render(WORDS) == f"build {build.id} already has an SBOM named 'first'"


# ---------------------------------------------------------------------------------------------- channels


@covers(
    "Channels.get",
    "Channels.get_by_id",
    "Channels.for_bucket",
    "Channels.pointing_at",
    "Channels.add",
    "Channels.save",
    "Channels.delete",
)
def test_channels_round_trip(store: Store) -> None:
    bucket = store.bucket("web")
    iteration = store.iteration(bucket, "f1", version=1)
    latest = store.channel(bucket, "latest", created=1, iteration=iteration)
    prod = store.channel(bucket, "prod", created=2)
    assert store(lambda uow: uow.channels.get(bucket.id, "latest")) == latest
    assert store(lambda uow: uow.channels.get(bucket.id, "latest", for_update=True)) == latest
    assert store(lambda uow: uow.channels.get(bucket.id, "nope")) is None
    assert store(lambda uow: uow.channels.get_by_id(store.project_id, prod.id)) == prod
    assert store(lambda uow: uow.channels.get_by_id(new_uuid(), prod.id)) is None, "found only in its project"
    assert store(lambda uow: uow.channels.for_bucket(bucket.id)) == [latest, prod]
    assert store(lambda uow: uow.channels.pointing_at(iteration.id)) == [latest]
    duplicate = refused(lambda: store.channel(bucket, "prod"))
    assert duplicate.render(WORDS) == "bucket 'web' already has a channel 'prod'"

    moved = replace(
        prod,
        restricted=True,
        iteration_id=iteration.id,
        author_id="a",
        assigned_by="b",
        assigned_at=at(3),
        updated_at=at(3),
        managed=True,  # not written by save(): a channel is managed or not from its creation
    )
    store(lambda uow: uow.channels.save(moved))
    assert store(lambda uow: uow.channels.get(bucket.id, "prod")) == replace(moved, managed=False)
    assert store(lambda uow: uow.channels.pointing_at(iteration.id)) == [latest, replace(moved, managed=False)]
    store(lambda uow: uow.channels.delete(prod.id))
    assert store(lambda uow: uow.channels.get(bucket.id, "prod")) is None
    store(lambda uow: uow.iterations.delete(iteration.id))
    cleared = store(lambda uow: uow.channels.get(bucket.id, "latest"))
    assert cleared is not None
    assert cleared.iteration_id is None, "a deleted iteration leaves its channels pointing at nothing"


def _add_assignment(uow: SqlUnitOfWork, *, assignment: ChannelAssignment) -> None:
    uow.channels.add_assignment(assignment)


@covers("Channels.add_assignment", "Channels.history", "Channels.history_count")
def test_a_channels_history_in_pages(store: Store) -> None:
    channel = store.channel(store.bucket("web"), "prod")
    assert store(lambda uow: uow.channels.history(channel.id, page(2, *ASC))) == []
    assert store(lambda uow: uow.channels.history_count(channel.id)) == 0
    made = [
        ChannelAssignment(new_ulid(), channel.id, at(n), f"it-{n}" if n else None, f"f{n}", n, "author")
        for n in range(4)
    ]
    for assignment in made:
        store(partial(_add_assignment, assignment=assignment))
    newest = (SortField("created_at", descending=True), SortField("id", descending=True))

    def versions(request: PageRequest) -> list[int]:
        return [a.iteration_version for a in store(lambda uow: uow.channels.history(channel.id, request))]

    assert versions(page(2, *newest)) == [3, 2, 1]
    assert versions(page(2, *newest, cursor=(at(2), made[2].id))) == [1, 0]
    assert versions(page(2, *newest, cursor=(at(1), made[1].id), back=True)) == [2, 3]
    assert store(lambda uow: uow.channels.history(channel.id, page(4, *ASC))) == made
    assert store(lambda uow: uow.channels.history_count(channel.id)) == 4
    assert store(lambda uow: uow.channels.history_count(channel.id, 2)) == 2, "counted up to the limit"
    assert store(lambda uow: uow.channels.history_count(channel.id, 10)) == 4


@covers("Buckets.matching")
def test_buckets_matching_a_text_prefix_first(store: Store) -> None:
    for slug in ("api-web", "web-api", "web", "other", "a_b", "axb", "WebApp"):
        store.bucket(slug)
    other = Project(new_uuid(), store.organization_id, "other", at(0))
    store(lambda uow: uow.tenants.add_project(other))
    store.bucket("web-elsewhere", project_id=other.id)

    def matching(text: str, limit: int = 10) -> list[str]:
        return [b.slug for b in store(lambda uow: uow.buckets.matching(store.project_id, text, limit))]

    # Those starting with the text first, then the rest, each by slug (byte order: upper case first).
    assert matching("web") == ["WebApp", "web", "web-api", "api-web"]
    assert matching("WEB") == ["WebApp", "web", "web-api", "api-web"], "any case"
    assert matching("web", 2) == ["WebApp", "web"]
    assert matching("a_b") == ["a_b"], "an underscore is itself, not LIKE's wildcard"
    assert matching("%") == [], "nor is a percent sign"
    assert matching("nothing") == []


@covers("Iterations.with_fingerprint")
def test_iterations_with_a_fingerprint_across_buckets(store: Store) -> None:
    web, api, db = store.bucket("web"), store.bucket("api"), store.bucket("db")
    in_web, in_api = store.iteration(web, "f1", version=1), store.iteration(api, "f1")
    store.iteration(db, "f2")
    other = Project(new_uuid(), store.organization_id, "other", at(0))
    store(lambda uow: uow.tenants.add_project(other))
    store.iteration(store.bucket("aaa", project_id=other.id), "f1")

    def found(fingerprint: str, limit: int = 10) -> list[str]:
        return [i.id for i in store(lambda uow: uow.iterations.with_fingerprint(store.project_id, fingerprint, limit))]

    assert found("f1") == [in_api.id, in_web.id], "by bucket slug, only this project's"
    assert found("f1", 1) == [in_api.id]
    assert found("nope") == []


# ---------------------------------------------------------------------------------------------- jobs


def _add_job(uow: SqlUnitOfWork, *, job: Job) -> None:
    uow.jobs.add(job)


@covers("Jobs.add", "Jobs.due", "Jobs.claim", "Jobs.cancel_for")
def test_jobs_fall_due_are_claimed_once_and_can_be_cancelled(store: Store) -> None:
    def job(iteration_id: str, run_at: float, *, rollback: bool = False, skip: bool = False) -> Job:
        return Job(
            id=new_ulid(),
            kind="revoke",
            organization_id=store.organization_id,
            project_id=store.project_id,
            iteration_id=iteration_id,
            run_at=at(run_at),
            created_at=at(0),
            author_id="someone",
            rollback_channels=rollback,
            skip_descendants=skip,
        )

    later, sooner = job("it-1", 20, rollback=True), job("it-2", 10, skip=True)
    cancelled = job("it-3", 5)
    for made in (later, sooner, cancelled):
        store(partial(_add_job, job=made))
    assert store(lambda uow: uow.jobs.due(at(4), 10)) == []
    store(lambda uow: uow.jobs.cancel_for("it-3", at(1)))
    assert store(lambda uow: uow.jobs.due(at(30), 10)) == [sooner, later], "the cancelled one is not due"
    assert store(lambda uow: uow.jobs.due(at(30), 1)) == [sooner]
    assert store(lambda uow: uow.jobs.claim(sooner.id, at(30))) is True
    assert store(lambda uow: uow.jobs.claim(sooner.id, at(31))) is False, "exactly one claimant"
    assert store(lambda uow: uow.jobs.claim(cancelled.id, at(31))) is False
    assert store(lambda uow: uow.jobs.due(at(30), 10)) == [later]


@covers("Jobs.for_iteration")
def test_an_iterations_jobs_newest_first_whatever_their_state(store: Store) -> None:
    def job(created: float, iteration_id: str = "it-1") -> Job:
        return Job(new_ulid(), "revoke", store.organization_id, store.project_id, iteration_id, at(50), at(created))

    first, second, third = job(1), job(2), job(3)
    for made in (second, first, job(4, "it-2"), third):
        store(partial(_add_job, job=made))
    store(lambda uow: uow.jobs.cancel_for("it-1", at(5)))
    found = store(lambda uow: uow.jobs.for_iteration("it-1", 10))
    assert [j.id for j in found] == [third.id, second.id, first.id]
    assert {j.state for j in found} == {"cancelled"}, "cancelled ones are listed too"
    assert [j.id for j in store(lambda uow: uow.jobs.for_iteration("it-1", 2))] == [third.id, second.id]
    assert store(lambda uow: uow.jobs.for_iteration("it-9", 10)) == []


# ---------------------------------------------------------------------------------------------- token failures


@covers("FailureStore.read", "FailureStore.add_failure", "FailureStore.clear", "FailureStore.sweep")
def test_failure_counts(store: Store) -> None:
    def failures(work: Callable[[SqlTokenFailures], Any], *, write: bool = True) -> Any:
        return store.db.run(lambda conn: work(SqlTokenFailures(conn)), write=write)

    def fail(client_id: str, seconds: float) -> None:
        failures(
            lambda f: f.add_failure(
                "10.0.0.1",
                client_id,
                at(seconds),
                limit=3,
                window=timedelta(seconds=60),
                lockout=timedelta(seconds=30),
                keep=timedelta(seconds=600),
            )
        )

    assert failures(lambda f: f.read("10.0.0.1", "c1"), write=False) == {}
    fail("c1", 0)
    fail("c1", 1)
    fail("", 1)

    def read(client_id: str, source: str = "10.0.0.1") -> dict[str, FailureCount]:
        found: dict[str, FailureCount] = failures(lambda f: f.read(source, client_id), write=False)
        return found

    assert read("c1") == {"c1": FailureCount(2, at(0), EPOCH), "": FailureCount(1, at(1), EPOCH)}
    assert read("c2") == {"": FailureCount(1, at(1), EPOCH)}, "the source's own count, whatever the id"
    assert read("c1", source="10.0.0.2") == {}
    fail("c1", 2)  # the third within the window from the first: locked for 30 s
    assert read("c1")["c1"] == FailureCount(3, at(0), at(32))
    fail("c1", 70)  # the window from the first failure has passed: the count starts again
    assert read("c1")["c1"] == FailureCount(1, at(70), at(32))
    failures(
        lambda f: f.add_failure(
            "10.0.0.1", "c9", at(80), limit=1, window=timedelta(60), lockout=timedelta(seconds=5), keep=timedelta(1)
        )
    )
    assert read("c9")["c9"] == FailureCount(1, at(80), at(85)), "a limit of one locks at the first failure"
    failures(lambda f: f.clear("10.0.0.1", "c1"))
    assert read("c1") == {"": FailureCount(1, at(1), EPOCH)}, "only the pair's count is cleared"
    failures(lambda f: f.sweep(at(601)))  # the source's count was kept until 1 + 600
    assert read("c1") == {}
    assert read("c9")["c9"].failures == 1, "kept for a day"


# ---------------------------------------------------------------------------------------------- console users


@covers(
    "Users.add",
    "Users.get",
    "Users.get_by_email",
    "Users.list_",
    "Users.set_password",
    "Users.delete",
)
def test_users_round_trip(store: Store) -> None:
    ada = User(new_ulid(), "ada@example.com", store.organization_id, None, Role.ADMIN, "", at(1))
    bob = User(new_ulid(), "bob@example.com", store.organization_id, store.project_id, Role.VIEWER, "h", at(2))
    store(lambda uow: uow.users.add(bob))
    store(lambda uow: uow.users.add(ada))
    assert store(lambda uow: uow.users.get(ada.id)) == ada
    assert store(lambda uow: uow.users.get_by_email("bob@example.com")) == bob
    assert store(lambda uow: uow.users.get(new_ulid())) is None
    assert store(lambda uow: uow.users.get_by_email("nobody@example.com")) is None
    assert store(lambda uow: uow.users.list_(store.organization_id)) == [ada, bob], "by email"
    assert store(lambda uow: uow.users.list_(new_uuid())) == []
    duplicate = refused(lambda: store(lambda uow: uow.users.add(replace(ada, id=new_ulid()))))
    assert "ada@example.com" in duplicate.message
    store(lambda uow: uow.users.set_password(ada.id, "$argon2id$new"))
    assert store(lambda uow: uow.users.get(ada.id)) == replace(ada, password_hash="$argon2id$new")
    store(lambda uow: uow.users.delete(bob.id))
    store(lambda uow: uow.users.delete(bob.id))  # deleting what is gone is no error
    assert store(lambda uow: uow.users.get(bob.id)) is None


@covers("Users.get_by_sso_subject", "Users.set_sso")
def test_users_are_found_by_and_bound_to_a_single_sign_on_subject(store: Store) -> None:
    dee = User(new_ulid(), "dee@example.com", store.organization_id, None, Role.VIEWER, "h", at(1))
    made = User(new_ulid(), "eve@example.com", store.organization_id, None, Role.ADMIN, "", at(2), "iss sub-eve")
    store(lambda uow: uow.users.add(dee))
    store(lambda uow: uow.users.add(made))
    assert store(lambda uow: uow.users.get_by_sso_subject("iss sub-eve")) == made
    assert store(lambda uow: uow.users.get_by_sso_subject("iss sub-dee")) is None
    store(
        lambda uow: uow.users.set_sso(
            dee.id, subject="iss sub-dee", email="dee@corp.example", role=Role.CONTRIBUTOR, project_id=store.project_id
        )
    )
    bound = replace(
        dee, email="dee@corp.example", role=Role.CONTRIBUTOR, project_id=store.project_id, sso_subject="iss sub-dee"
    )
    assert store(lambda uow: uow.users.get_by_sso_subject("iss sub-dee")) == bound
    assert store(lambda uow: uow.users.get(dee.id)) == bound, "the password hash stays"
    taken = refused(lambda: store(lambda uow: uow.users.add(replace(bound, id=new_ulid(), email="x@example.com"))))
    assert taken.code == 6, "a subject belongs to one user"


@covers(
    "Users.add_session",
    "Users.session",
    "Users.delete_session",
    "Users.delete_sessions_of",
    "Users.sweep_sessions",
    "Users.add_link",
    "Users.link_user",
    "Users.take_link",
)
def test_sessions_and_links_end_when_they_expire_are_used_or_are_ended(store: Store) -> None:
    user = User(new_ulid(), "cy@example.com", store.organization_id, None, Role.CONTRIBUTOR, "", at(1))
    store(lambda uow: uow.users.add(user))
    store(lambda uow: uow.users.add_session("s1", user.id, "csrf1", at(10), at(100)))
    store(lambda uow: uow.users.add_session("s2", user.id, "csrf2", at(10), at(50)))
    assert store(lambda uow: uow.users.session("s1", at(99))) == UserSession(user, "csrf1", at(100))
    assert store(lambda uow: uow.users.session("s1", at(100))) is None, "ended at expires_at"
    assert store(lambda uow: uow.users.session("nope", at(11))) is None
    store(lambda uow: uow.users.sweep_sessions(at(60)))  # s2 has ended: gone; s1 stays
    assert store(lambda uow: uow.users.session("s2", at(11))) is None
    assert store(lambda uow: uow.users.session("s1", at(61))) is not None
    store(lambda uow: uow.users.delete_session("s1"))
    assert store(lambda uow: uow.users.session("s1", at(61))) is None
    store(lambda uow: uow.users.add_session("s3", user.id, "csrf3", at(10), at(100)))
    store(lambda uow: uow.users.add_session("s4", user.id, "csrf4", at(10), at(100)))
    store(lambda uow: uow.users.delete_sessions_of(user.id))
    assert store(lambda uow: [uow.users.session(s, at(11)) for s in ("s3", "s4")]) == [None, None]

    store(lambda uow: uow.users.add_link("l1", user.id, at(100)))
    assert store(lambda uow: uow.users.link_user("l1", at(50))) == user
    assert store(lambda uow: uow.users.link_user("l1", at(50))) == user, "looking leaves the link"
    assert store(lambda uow: uow.users.take_link("l1", at(100))) is None, "ended at expires_at"
    assert store(lambda uow: uow.users.take_link("l1", at(50))) is None, "an ended link is deleted when tried"
    store(lambda uow: uow.users.add_link("l2", user.id, at(100)))
    assert store(lambda uow: uow.users.take_link("l2", at(50))) == user
    assert store(lambda uow: uow.users.take_link("l2", at(50))) is None, "used once"
    store(lambda uow: uow.users.add_link("l3", user.id, at(100)))
    store(lambda uow: uow.users.sweep_sessions(at(100)))
    assert store(lambda uow: uow.users.link_user("l3", at(10))) is None, "swept with the sessions"
    store(lambda uow: uow.users.add_session("s5", user.id, "csrf5", at(10), at(100)))
    store(lambda uow: uow.users.delete(user.id))
    assert store(lambda uow: uow.users.session("s5", at(11))) is None, "a user's sessions go with it"
