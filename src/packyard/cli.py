"""The `packyard` command: init, serve, db."""

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

from packyard.auth.service import NewPrincipal, create_principal
from packyard.bootstrap import InitResult, default_tenant, initialize
from packyard.clock import SystemClock
from packyard.config import Settings
from packyard.domain import tenants
from packyard.domain.errors import DomainError, NotFound
from packyard.domain.models import Role
from packyard.files import open_dir_warning, private_data_dir
from packyard.ops.serve import add_arguments as ops_arguments
from packyard.storage import migrate
from packyard.storage.db import Database
from packyard.storage.unit_of_work import SqlUnitOfWork

T = TypeVar("T")


def _settings(args: argparse.Namespace) -> Settings:
    data_dir = getattr(args, "data_dir", None)
    return Settings.from_env(data_dir=Path(data_dir) if data_dir else None)


def _private_data_dir(settings: Settings) -> None:
    try:
        private_data_dir(settings.data_dir)
    except OSError as exc:
        raise SystemExit(f"packyard: can't make the data directory {settings.data_dir}: {exc.strerror}") from None


def _prepare(settings: Settings, *, migrate_postgres: bool) -> Database:
    _private_data_dir(settings)
    db = Database(settings.effective_database_url)
    if db.is_sqlite or migrate_postgres:
        migrate.upgrade(db)
    elif migrate.pending(db):
        db.dispose()
        raise SystemExit(
            "packyard: the PostgreSQL schema is not at the current version. Run `packyard db upgrade` "
            "(once, from one process), or start with `packyard serve --migrate` to apply it now."
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


def _hcp_block(
    settings: Settings, host: str, port: int, org_id: str, project_id: str, tls: bool, ca_file: Path | None
) -> str:
    shown = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host  # noqa: S104 - display only
    address = f"{shown}:{port}"
    lines = [
        f"packyard serves the HCP Packer API on {'https' if tls else 'http'}://{address}",
        "",
        "Point Packer and Terraform at it with:",
        f"  export HCP_API_HOST={address}",
        f"  export HCP_AUTH_URL=https://{address}",
        f"  export HCP_ORGANIZATION_ID={org_id}",
        f"  export HCP_PROJECT_ID={project_id}",
        "  export HCP_CLIENT_ID=<client_id from `packyard init`>",
        "  export HCP_CLIENT_SECRET=<client_secret from `packyard init`>",
    ]
    if tls and ca_file is not None:
        lines.append(f"  export SSL_CERT_FILE={ca_file}   # trust packyard's local CA")
    if not tls:
        lines += [
            "  export HCP_API_TLS=disabled",
            "  # HCP_AUTH_URL must be https for every HCP SDK: serve the token endpoint behind a TLS proxy.",
        ]
    lines.append(f"Data directory: {settings.data_dir}")
    return "\n".join(lines)


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn  # noqa: PLC0415 - only serve needs it

    from packyard.http.factory import create_app  # noqa: PLC0415
    from packyard.http.protocol import JoinedWritesProtocol, raise_fd_limit  # noqa: PLC0415
    from packyard.ops import serve as ops  # noqa: PLC0415 - logs and metrics (docs/operations.md)
    from packyard.tls import ensure_local_tls  # noqa: PLC0415

    settings = ops.settings(args, _settings(args))
    if bool(args.tls_cert) != bool(args.tls_key):
        raise SystemExit("packyard: --tls-cert and --tls-key go together")
    db = _prepare(settings, migrate_postgres=args.migrate)
    warning = open_dir_warning(settings.data_dir)
    if warning is not None:
        print(warning, file=sys.stderr, flush=True)
    now = SystemClock().now()
    org_id, project_id, created = default_tenant(db, now)
    if created:
        print("First start: created the default organization, project and registry.")
        _print_credentials(initialize(db, now), as_json=False)
        print()
    tls = not args.no_tls
    cert = key = ca = None
    if tls:
        if args.tls_cert:
            cert, key = Path(args.tls_cert), Path(args.tls_key)
        else:
            files = ensure_local_tls(settings.data_dir)
            cert, key, ca = files.cert, files.key, files.ca_cert
    port = args.port or (8443 if tls else 8080)
    print(_hcp_block(settings, args.host, port, org_id, project_id, tls, ca), flush=True)
    options: dict[str, Any] = {
        "host": args.host,
        "port": port,
        "ssl_certfile": str(cert) if cert else None,
        "ssl_keyfile": str(key) if key else None,
        "log_level": args.log_level,
        **ops.uvicorn_options(settings.ops, args.log_level),  # packyard's request lines, json or plain
        "lifespan": "on",
        "server_header": False,
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
    if settings.database_url is None:
        _private_data_dir(settings)
    db = Database(settings.effective_database_url)
    try:
        if args.db_command == "upgrade":
            migrate.upgrade(db, args.revision)
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
    db = _prepare(settings, migrate_postgres=False)
    try:
        return db.run(lambda conn: work(SqlUnitOfWork(conn), SystemClock().now()), write=True)
    except DomainError as exc:
        raise SystemExit(f"packyard: {exc.message}") from None
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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="packyard", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    def data_dir_arg(p: argparse.ArgumentParser) -> None:
        p.add_argument("--data-dir", help="where the SQLite file, TLS files and secrets live (PACKYARD_DATA_DIR)")

    p_init = sub.add_parser("init", help="create the default organization and project, and a new admin principal")
    data_dir_arg(p_init)
    p_init.add_argument("--json", action="store_true", help="print one JSON object")
    p_init.set_defaults(func=cmd_init)

    p_serve = sub.add_parser("serve", help="serve the HCP Packer API and the token endpoint")
    data_dir_arg(p_serve)
    p_serve.add_argument("--host", default=os.environ.get("PACKYARD_HOST", "127.0.0.1"))
    p_serve.add_argument("--port", type=int, default=int(os.environ.get("PACKYARD_PORT", "0")))
    p_serve.add_argument("--no-tls", action="store_true", help="plain HTTP, for use behind a TLS-terminating proxy")
    p_serve.add_argument("--tls-cert", help="PEM certificate (chain) to serve instead of the generated one")
    p_serve.add_argument("--tls-key", help="PEM private key for --tls-cert")
    p_serve.add_argument("--migrate", action="store_true", help="apply pending PostgreSQL migrations on start")
    p_serve.add_argument(
        "--workers", type=int, default=int(os.environ.get("PACKYARD_WORKERS", "1")), help="worker processes"
    )
    p_serve.add_argument(
        "--log-level",
        default=os.environ.get("PACKYARD_LOG_LEVEL", "info"),
        choices=["critical", "error", "warning", "info", "debug"],
        help="info logs a line per request (PACKYARD_LOG_LEVEL)",
    )
    ops_arguments(p_serve)
    p_serve.set_defaults(func=cmd_serve)

    p_db = sub.add_parser("db", help="schema migrations")
    data_dir_arg(p_db)
    db_sub = p_db.add_subparsers(dest="db_command", required=True)
    p_up = db_sub.add_parser("upgrade", help="apply migrations")
    p_up.add_argument("revision", nargs="?", default="head")
    p_down = db_sub.add_parser("downgrade", help="revert migrations")
    p_down.add_argument("revision")
    p_current = db_sub.add_parser("current", help="print the database's revision")
    p_check = db_sub.add_parser("check", help="fail when migrations are pending or disagree with the models")
    for p in (p_up, p_down, p_current, p_check):  # `db check --data-dir D` as well as `db --data-dir D check`
        p.add_argument("--data-dir", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    p_db.set_defaults(func=cmd_db)

    p_org = sub.add_parser("org", help="organizations")
    org_sub = p_org.add_subparsers(dest="org_command", required=True)
    p_org_create = org_sub.add_parser("create", help="create an organization")
    p_org_create.add_argument("--name", required=True)
    p_org_create.add_argument("--json", action="store_true")
    p_org_list = org_sub.add_parser("list", help="list organizations")
    for p in (p_org_create, p_org_list):
        data_dir_arg(p)
    p_org.set_defaults(func=cmd_org)

    p_project = sub.add_parser("project", help="projects (each has its own registry)")
    project_sub = p_project.add_subparsers(dest="project_command", required=True)
    p_project_create = project_sub.add_parser("create", help="create a project and its registry")
    p_project_create.add_argument("--org", required=True, help="organization id")
    p_project_create.add_argument("--name", required=True)
    p_project_create.add_argument("--json", action="store_true")
    p_project_list = project_sub.add_parser("list", help="list the projects of an organization")
    p_project_list.add_argument("--org", required=True, help="organization id")
    for p in (p_project_create, p_project_list):
        data_dir_arg(p)
    p_project.set_defaults(func=cmd_project)

    p_principal = sub.add_parser("principal", help="service principals")
    principal_sub = p_principal.add_subparsers(dest="principal_command", required=True)
    p_pc = principal_sub.add_parser("create", help="create a principal; prints its client secret once")
    p_pc.add_argument("--org", required=True, help="organization id")
    p_pc.add_argument("--project", help="limit it to one project of the organization")
    p_pc.add_argument("--role", required=True, choices=[r.value for r in Role])
    p_pc.add_argument("--name", help="a name to recognise it by (shown as revocation_author)")
    p_pc.add_argument("--json", action="store_true")
    p_pl = principal_sub.add_parser("list", help="list principals")
    p_pd = principal_sub.add_parser("delete", help="delete a principal; its tokens stop working at once")
    p_pd.add_argument("client_id")
    for p in (p_pc, p_pl, p_pd):
        data_dir_arg(p)
    p_principal.set_defaults(func=cmd_principal)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args))
