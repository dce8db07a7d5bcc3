"""The `packyard` command: a self-hosted registry of machine-image metadata that speaks HCP Packer's API."""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

from packyard import backup_commands, hcp_env, health
from packyard.auth import accounts
from packyard.auth.service import NewPrincipal, create_principal
from packyard.backup import upgrade as upgrade_after_backup
from packyard.bootstrap import InitResult, default_tenant, initialize
from packyard.clock import SystemClock
from packyard.config import Settings
from packyard.domain import tenants
from packyard.domain.errors import DomainError, NotFound
from packyard.domain.models import Role, User
from packyard.files import open_dir_warning
from packyard.ops.serve import add_arguments as ops_arguments
from packyard.startup import (
    Parser,
    Refusal,
    check_listen,
    check_tls_files,
    open_database,
    port_number,
    run,
    version,
    worker_count,
)
from packyard.storage import migrate
from packyard.storage.db import Database
from packyard.storage.unit_of_work import SqlUnitOfWork

T = TypeVar("T")


def _settings(args: argparse.Namespace) -> Settings:
    data_dir = getattr(args, "data_dir", None)
    return Settings.from_env(data_dir=Path(data_dir) if data_dir else None)


def _prepare(settings: Settings, *, migrate_postgres: bool, create: bool = True) -> Database:
    """The database, migrated to head on SQLite (and on PostgreSQL when asked); see startup.open_database."""
    db = open_database(settings, create=create)
    if db.is_sqlite or migrate_postgres:
        upgrade_after_backup(db, say=backup_commands.say_stderr)  # SQLite: copied first when migrations are due
    elif migrate.pending(db):
        db.dispose()
        raise Refusal(
            "the PostgreSQL schema is not at the current version: run `packyard db upgrade` "
            "(once, from one process), or start with `packyard serve --migrate` to apply it now"
        )
    return db


def _print_credentials(result: InitResult, as_json: bool) -> None:
    values = {
        "organization_id": result.organization_id,
        "project_id": result.project_id,
        "client_id": result.client_id,
        "client_secret": result.client_secret,
    }
    if as_json:
        print(json.dumps(values))
        return
    for key, value in values.items():
        print(f"{key}: {value}")
    print("\nThe client secret is shown only now; packyard stores only its hash.")


def cmd_init(args: argparse.Namespace) -> int:
    settings = _settings(args)
    db = _prepare(settings, migrate_postgres=True)
    try:
        result = initialize(db, SystemClock().now())
    finally:
        db.dispose()
    _print_credentials(result, args.json)
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn  # noqa: PLC0415 - only serve needs it

    from packyard.http.factory import create_app  # noqa: PLC0415
    from packyard.http.protocol import JoinedWritesProtocol, raise_fd_limit  # noqa: PLC0415
    from packyard.ops import serve as ops  # noqa: PLC0415 - logs and metrics (docs/operations.md)
    from packyard.tls_reload import prepare as prepare_tls  # noqa: PLC0415

    settings = ops.settings(args, _settings(args))
    names = hcp_env.hostnames(args.hostname)
    if bool(args.tls_cert) != bool(args.tls_key):
        raise Refusal("--tls-cert and --tls-key go together: give both, or neither for a generated certificate")
    tls = not args.no_tls
    port = args.port or (8443 if tls else 8080)
    # Before the database and the banner: a server that can't start prints no credentials.
    check_listen(args.host, port)
    if settings.ops.metrics_port is not None:
        check_listen(
            settings.ops.metrics_host, settings.ops.metrics_port, flag="--metrics-port", env="PACKYARD_METRICS_PORT"
        )
    if args.tls_cert:
        check_tls_files(Path(args.tls_cert), Path(args.tls_key))
    db = _prepare(settings, migrate_postgres=args.migrate)
    warning = open_dir_warning(settings.data_dir)
    if warning is not None:
        print(warning, file=sys.stderr, flush=True)
    served = None if args.no_tls else prepare_tls(settings.data_dir, args.tls_cert, args.tls_key, names, args.host)
    now = SystemClock().now()
    org_id, project_id, created = default_tenant(db, now)
    credentials = None
    if created:
        print("First start: created the default organization, project and registry.")
        result = initialize(db, now)
        _print_credentials(result, as_json=False)
        credentials = (result.client_id, result.client_secret)
        print()
    block = hcp_env.block(
        data_dir=settings.data_dir,
        listen_host=args.host,
        port=port,
        organization_id=org_id,
        project_id=project_id,
        names=names,
        tls=served is not None,
        ca_bundle=served.ca_bundle if served else None,
        credentials=credentials,
    )
    print(block, flush=True)
    options: dict[str, Any] = {
        "host": args.host,
        "port": port,
        "ssl_certfile": str(served.cert) if served else None,
        "ssl_keyfile": str(served.key) if served else None,
        # Renews the generated certificate and reloads given ones while serving, in every worker.
        "ssl_context_factory": served.factory if served else None,
        "log_level": args.log_level,
        **ops.uvicorn_options(settings.ops, args.log_level),  # packyard's request lines, json or plain
        "lifespan": "on",
        "server_header": False,
        # X-Forwarded-For/-Proto are believed only from these addresses (uvicorn's own default when None:
        # FORWARDED_ALLOW_IPS, else 127.0.0.1 and ::1); see docs/deploy.md.
        "proxy_headers": True,
        "forwarded_allow_ips": args.forwarded_allow_ips,
        "timeout_graceful_shutdown": 30,
        "http": JoinedWritesProtocol,  # uvicorn's httptools protocol, one socket write per answer
    }
    # uvicorn re-raises the signal that stopped it after its graceful shutdown; with SIGTERM's default
    # action that kills the process (exit -15) instead of returning, so a handled SIGTERM is a no-op.
    signal.signal(signal.SIGTERM, lambda _sig, _frame: None)
    # Every connection is a descriptor: take all the kernel allows (workers inherit it). Each worker keeps
    # its connections below it (PACKYARD_MAX_CONNECTIONS, see packyard/http/protocol.py).
    raise_fd_limit()
    if args.workers > 1:
        # Each worker process builds its own app from the environment, so the settings travel through it.
        db.dispose()
        os.environ["PACKYARD_DATA_DIR"] = str(settings.data_dir)
        if settings.database_url:
            os.environ["PACKYARD_DATABASE_URL"] = settings.database_url
        with ops.metrics(settings, workers=args.workers):
            uvicorn.run("packyard.http.factory:app_from_env", factory=True, workers=args.workers, **options)
        return 0
    app = create_app(settings, db=db)
    with ops.metrics(settings, workers=1, app=app):
        uvicorn.run(app, **options)
    return 0


def cmd_db(args: argparse.Namespace) -> int:
    settings = _settings(args)
    db = open_database(settings, create=False, schema_required=False)
    try:
        if args.db_command == "upgrade":
            upgrade_after_backup(db, args.revision, say=backup_commands.say_stderr)
            print(f"database at revision {migrate.current_revision(db)}")
        elif args.db_command == "downgrade":
            migrate.downgrade(db, args.revision)
            print(f"database at revision {migrate.current_revision(db)}")
        elif args.db_command == "current":
            print(migrate.current_revision(db) or "(empty)")
        elif args.db_command == "check":
            if migrate.pending(db):
                print(
                    f"database is at {migrate.current_revision(db)}, migrations end at {migrate.head_revision(db)}: "
                    "run `packyard db upgrade`",
                    file=sys.stderr,
                )
                return 1
            diffs = migrate.drift(db)
            if diffs:
                print("the models and the migrations disagree:", file=sys.stderr)
                for diff in diffs:
                    print(f"  {diff}", file=sys.stderr)
                return 1
            print("models and migrations agree")
    finally:
        db.dispose()
    return 0


def _admin(args: argparse.Namespace, work: Callable[[SqlUnitOfWork, datetime], T]) -> T:
    """Run one administrative change in one transaction against the configured database."""
    settings = _settings(args)
    db = _prepare(settings, migrate_postgres=False, create=False)
    try:
        return db.run(lambda conn: work(SqlUnitOfWork(conn), SystemClock().now()), write=True)
    except DomainError as exc:
        raise Refusal(exc.message) from None
    finally:
        db.dispose()


def _emit(values: dict[str, str | None], as_json: bool) -> None:
    if as_json:
        print(json.dumps(values))
    else:
        for key, value in values.items():
            print(f"{key}: {value if value is not None else '-'}")


def cmd_org(args: argparse.Namespace) -> int:
    if args.org_command == "create":
        org = _admin(args, lambda uow, now: tenants.create_organization(uow, args.name, now))
        _emit({"id": org.id, "name": org.name}, args.json)
    else:
        for org in _admin(args, lambda uow, now: uow.tenants.list_organizations()):
            print(f"{org.id}  {org.name}")
    return 0


def cmd_project(args: argparse.Namespace) -> int:
    if args.project_command == "create":
        project = _admin(args, lambda uow, now: tenants.create_project(uow, args.org, args.name, now))
        _emit({"id": project.id, "organization_id": project.organization_id, "name": project.name}, args.json)
    else:
        for project in _admin(args, lambda uow, now: uow.tenants.list_projects(args.org)):
            print(f"{project.id}  {project.name}")
    return 0


def cmd_principal(args: argparse.Namespace) -> int:
    if args.principal_command == "create":

        def create(uow: SqlUnitOfWork, now: datetime) -> NewPrincipal:
            name = args.name or f"{args.role}-{now.strftime('%Y%m%d%H%M%S')}"
            return create_principal(
                uow,
                organization_id=args.org,
                project_id=args.project,
                role=Role(args.role),
                name=name,
                now=now,
            )

        new = _admin(args, create)
        p = new.principal
        values = {
            "client_id": p.client_id,
            "client_secret": new.client_secret,
            "organization_id": p.organization_id,
            "project_id": p.project_id,
            "role": p.role.value,
            "name": p.name,
        }
        _emit(values, args.json)
        if not args.json:
            print("\nThe client secret is shown only now; packyard stores only its hash.")
    elif args.principal_command == "list":
        for p in _admin(args, lambda uow, now: uow.principals.all()):
            scope = f"project {p.project_id}" if p.project_id else "organization"
            print(f"{p.client_id}  {p.role.value:<11}  org {p.organization_id}  {scope}  {p.name}")
    else:

        def delete(uow: SqlUnitOfWork, now: datetime) -> None:
            principal = uow.principals.get_by_client_id(args.client_id)
            if principal is None:
                raise NotFound(f"no principal has client id {args.client_id}")
            uow.principals.delete(principal.id)

        _admin(args, delete)
        print(f"deleted {args.client_id}; its tokens stop working now")
    return 0


def _link(args: argparse.Namespace, secret: str) -> str:
    base = (args.url or _settings(args).public_url or "https://localhost:8443").rstrip("/")
    return f"{base}/set-password/{secret}"


def cmd_user(args: argparse.Namespace) -> int:
    """People who sign in to the web console (auth/accounts.py)."""
    if args.user_command == "create":

        def create(uow: SqlUnitOfWork, now: datetime) -> accounts.NewUser:
            org_id = args.org or default_organization(uow)
            return accounts.create_user(
                uow, email=args.email, role=Role(args.role), organization_id=org_id, project_id=args.project, now=now
            )

        new = _admin(args, create)
        u = new.user
        values = {
            "email": u.email,
            "role": u.role.value,
            "organization_id": u.organization_id,
            "project_id": u.project_id,
            "set_password_link": _link(args, new.link_secret),
        }
        _emit(values, args.json)
        if not args.json:
            print(
                f"\nThe link works once, for {accounts.LINK_LIFETIME.total_seconds() / 3600:.0f} hours; "
                "send it to its owner."
            )
    elif args.user_command == "list":
        for u in _admin(
            args, lambda uow, now: [x for o in uow.tenants.list_organizations() for x in uow.users.list_(o.id)]
        ):
            scope = f"project {u.project_id}" if u.project_id else "organization"
            state = "password set" if u.password_hash else "single sign-on" if u.sso_subject else "no password yet"
            print(f"{u.email}  {u.role.value:<11}  org {u.organization_id}  {scope}  {state}")
    elif args.user_command == "link":

        def link(uow: SqlUnitOfWork, now: datetime) -> str:
            return accounts.new_link(uow, _user_by_email(uow, args.email), now)

        print(_link(args, _admin(args, link)))
    else:

        def delete(uow: SqlUnitOfWork, now: datetime) -> None:
            uow.users.delete(_user_by_email(uow, args.email).id)

        _admin(args, delete)
        print(f"deleted {args.email}; the sessions of that user end now")
    return 0


def _user_by_email(uow: SqlUnitOfWork, email: str) -> User:
    user = uow.users.get_by_email(accounts.normalize_email(email))
    if user is None:
        raise NotFound(f"no user has the email {email}")
    return user


def default_organization(uow: SqlUnitOfWork) -> str:
    orgs = uow.tenants.list_organizations()
    if len(orgs) != 1:
        raise NotFound(f"there are {len(orgs)} organizations: say which with --org")
    return orgs[0].id


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="packyard", description=__doc__)
    parser.add_argument("--version", action="version", version=f"packyard {version()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    data_help = (
        "where the SQLite database, the server secret and the TLS files live "
        "(PACKYARD_DATA_DIR; default $XDG_DATA_HOME/packyard, i.e. ~/.local/share/packyard)"
    )

    def data_dir_arg(p: argparse.ArgumentParser, existing: bool = True) -> None:
        more = "; must hold a registry made by `packyard init` or `serve`" if existing else ""
        p.add_argument("--data-dir", metavar="DIR", help=data_help + more)

    def json_arg(p: argparse.ArgumentParser) -> None:
        p.add_argument("--json", action="store_true", help="print one JSON object instead of lines of text")

    p_init = sub.add_parser(
        "init",
        help="create the registry if there is none (default organization and project), and a new admin principal",
        description="Create the data directory and the registry in it if there is none (a default organization "
        "and project), then a new admin principal; prints its client id and secret, once.",
    )
    data_dir_arg(p_init, existing=False)
    json_arg(p_init)
    p_init.set_defaults(func=cmd_init)

    p_serve = sub.add_parser(
        "serve",
        help="serve the HCP Packer API and the token endpoint (creates the registry on first start)",
        description="Serve the HCP Packer API (2021-04-30 and 2023-01-01) and the OAuth2 token endpoint. The "
        "first start creates the data directory and the registry and prints an admin principal's credentials.",
    )
    data_dir_arg(p_serve, existing=False)
    p_serve.add_argument(
        "--host",
        default=os.environ.get("PACKYARD_HOST", "127.0.0.1"),
        help="address to listen on (PACKYARD_HOST; default 127.0.0.1; 0.0.0.0 for every IPv4 interface)",
    )
    p_serve.add_argument(
        "--port",
        type=port_number,
        default=os.environ.get("PACKYARD_PORT", "0"),
        help="port to listen on (PACKYARD_PORT; default 8443 with TLS, 8080 with --no-tls)",
    )
    p_serve.add_argument("--no-tls", action="store_true", help="plain HTTP, for use behind a TLS-terminating proxy")
    p_serve.add_argument(
        "--tls-cert",
        metavar="FILE",
        help="PEM certificate (chain) to serve instead of the generated one; re-read when it or the key changes "
        "(every PACKYARD_TLS_RELOAD_SECONDS)",
    )
    p_serve.add_argument("--tls-key", metavar="FILE", help="PEM private key of --tls-cert")
    p_serve.add_argument(
        "--hostname",
        action="append",
        metavar="NAME",
        help="a DNS name or IP address clients reach this server by, named in the generated certificate and the "
        "printed HCP_* block (the first one there); repeatable (PACKYARD_HOSTNAMES, comma-separated)",
    )
    p_serve.add_argument(
        "--migrate",
        action="store_true",
        help="apply pending migrations on start on PostgreSQL (SQLite is migrated on start always)",
    )
    p_serve.add_argument(
        "--workers",
        type=worker_count,
        default=os.environ.get("PACKYARD_WORKERS", "1"),
        help="worker processes sharing the port (PACKYARD_WORKERS; default 1)",
    )
    p_serve.add_argument(
        "--forwarded-allow-ips",
        metavar="IPS",
        default=os.environ.get("PACKYARD_FORWARDED_ALLOW_IPS"),
        help="comma-separated proxy addresses (or networks, or *) whose X-Forwarded-For/-Proto are believed "
        "(PACKYARD_FORWARDED_ALLOW_IPS; default 127.0.0.1,::1)",
    )
    p_serve.add_argument(
        "--log-level",
        default=os.environ.get("PACKYARD_LOG_LEVEL", "info"),
        choices=["critical", "error", "warning", "info", "debug"],
        help="the server log's level; info logs a line per request (PACKYARD_LOG_LEVEL; default info)",
    )
    ops_arguments(p_serve)
    p_serve.set_defaults(func=cmd_serve)

    p_db = sub.add_parser(
        "db",
        help="schema migrations (upgrade, downgrade, current, check) and copies between databases (copy)",
        description="Schema migrations of the configured database (PACKYARD_DATABASE_URL, or the SQLite "
        "database in the data directory, which must exist: `packyard init` makes it).",
    )
    data_dir_arg(p_db)
    db_sub = p_db.add_subparsers(dest="db_command", required=True, metavar="COMMAND")
    p_up = db_sub.add_parser("upgrade", help="apply migrations (once, from one process, on PostgreSQL)")
    p_up.add_argument("revision", nargs="?", default="head", help="the revision to reach (default head, the latest)")
    p_down = db_sub.add_parser("downgrade", help="revert migrations")
    p_down.add_argument("revision", help="the revision to go back to (`base` removes every table)")
    p_current = db_sub.add_parser("current", help="print the database's revision ((empty) when it has no tables)")
    p_check = db_sub.add_parser("check", help="fail when migrations are pending or disagree with the models")
    for p in (p_up, p_down, p_current, p_check):  # `db check --data-dir D` as well as `db --data-dir D check`
        p.add_argument("--data-dir", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    p_db.set_defaults(func=cmd_db)
    backup_commands.add_parsers(sub, db_sub, data_dir_arg)

    p_org = sub.add_parser("org", help="organizations: create, list")
    org_sub = p_org.add_subparsers(dest="org_command", required=True, metavar="COMMAND")
    p_org_create = org_sub.add_parser("create", help="create an organization (with no project)")
    p_org_create.add_argument("--name", required=True, help="its name")
    json_arg(p_org_create)
    p_org_list = org_sub.add_parser("list", help="list organizations: id and name")
    for p in (p_org_create, p_org_list):
        data_dir_arg(p)
    p_org.set_defaults(func=cmd_org)

    p_project = sub.add_parser("project", help="projects (each has its own registry): create, list")
    project_sub = p_project.add_subparsers(dest="project_command", required=True, metavar="COMMAND")
    p_project_create = project_sub.add_parser("create", help="create a project and its registry")
    p_project_create.add_argument("--org", required=True, metavar="ORG_ID", help="organization id")
    p_project_create.add_argument("--name", required=True, help="its name")
    json_arg(p_project_create)
    p_project_list = project_sub.add_parser("list", help="list the projects of an organization: id and name")
    p_project_list.add_argument("--org", required=True, metavar="ORG_ID", help="organization id")
    for p in (p_project_create, p_project_list):
        data_dir_arg(p)
    p_project.set_defaults(func=cmd_project)

    p_principal = sub.add_parser("principal", help="service principals (API credentials): create, list, delete")
    principal_sub = p_principal.add_subparsers(dest="principal_command", required=True, metavar="COMMAND")
    p_pc = principal_sub.add_parser("create", help="create a principal; prints its client secret, once")
    p_pc.add_argument("--org", required=True, metavar="ORG_ID", help="organization id")
    p_pc.add_argument("--project", metavar="PROJECT_ID", help="limit it to one project of the organization")
    p_pc.add_argument(
        "--role",
        required=True,
        choices=[r.value for r in Role],
        help="viewer reads; contributor also writes; admin also manages the registry and the run-task key",
    )
    p_pc.add_argument("--name", help="a name to recognise it by (shown as revocation_author)")
    json_arg(p_pc)
    p_pl = principal_sub.add_parser("list", help="list principals: client id, role, organization, scope, name")
    p_pd = principal_sub.add_parser("delete", help="delete a principal; its tokens stop working at once")
    p_pd.add_argument("client_id", help="the principal's client id")
    for p in (p_pc, p_pl, p_pd):
        data_dir_arg(p)
    p_principal.set_defaults(func=cmd_principal)

    p_user = sub.add_parser("user", help="people who sign in to the web console: create, list, link, delete")
    user_sub = p_user.add_subparsers(dest="user_command", required=True, metavar="COMMAND")
    p_uc = user_sub.add_parser("create", help="create a user; prints a one-time link that sets the password")
    p_uc.add_argument("--email", required=True, help="the address the user signs in with")
    p_uc.add_argument(
        "--role",
        required=True,
        choices=[r.value for r in Role],
        help="viewer reads; contributor also revokes, restores and assigns channels; admin also manages users",
    )
    p_uc.add_argument("--org", metavar="ORG_ID", help="organization id (default: the only one there is)")
    p_uc.add_argument("--project", metavar="PROJECT_ID", help="limit the user to one project of the organization")
    json_arg(p_uc)
    p_ul = user_sub.add_parser("list", help="list users: email, role, organization, scope, whether a password is set")
    p_uk = user_sub.add_parser("link", help="print a new one-time link that sets (resets) a user's password")
    p_uk.add_argument("email", help="the user's email address")
    p_ud = user_sub.add_parser("delete", help="delete a user; the user's sessions end at once")
    p_ud.add_argument("email", help="the user's email address")
    for p in (p_uc, p_uk):
        p.add_argument(
            "--url", help="the console's address in the link (PACKYARD_PUBLIC_URL; default https://localhost:8443)"
        )
    for p in (p_uc, p_ul, p_uk, p_ud):
        data_dir_arg(p)
    p_user.set_defaults(func=cmd_user)

    health.add_parser(sub, data_dir_arg)
    p_version = sub.add_parser("version", help="print packyard's version (as --version does)")
    p_version.set_defaults(func=cmd_version)
    return parser


def cmd_version(args: argparse.Namespace) -> int:
    print(f"packyard {version()}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return run(args.func, args)
