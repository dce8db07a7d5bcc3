"""The shell lines `packyard serve` prints: the HCP_* variables that point Packer and Terraform at it.

The block is meant to be pasted into a shell as it is, so every line is either an ``export`` whose value
is quoted for the shell (``shlex.quote``: a data directory with a space in it stays one word) or a
comment. The client id and secret are real values on a first start, when they were just made; otherwise
the lines are commented out and say where the values come from. With packyard's own CA,
``SSL_CERT_FILE`` points at the CA bundle (the system's roots followed by packyard's CA, see
packyard/tls.py), so other tools in that shell still trust everyone else.
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Mapping, Sequence
from pathlib import Path

from packyard.tls import canonical_host

__all__ = ["HOSTNAMES_ENV", "block", "hostnames"]

HOSTNAMES_ENV = "PACKYARD_HOSTNAMES"
_WILDCARDS = ("0.0.0.0", "::", "")  # noqa: S104 - compared with, never bound to


def hostnames(flags: Sequence[str] | None, environ: Mapping[str, str] | None = None) -> tuple[str, ...]:
    """The ``--hostname`` values, or else PACKYARD_HOSTNAMES split at commas; canonical and without repeats.

    Exits with one line naming a value that is not a DNS name or an IP address."""
    env = os.environ if environ is None else environ
    if flags:
        given, where = list(flags), "--hostname"
    else:
        given, where = [name for name in env.get(HOSTNAMES_ENV, "").split(",") if name.strip()], HOSTNAMES_ENV
    names: list[str] = []
    for raw in given:
        try:
            name = canonical_host(raw)
        except ValueError:
            raise SystemExit(
                f"packyard: {where} {raw!r} is not a DNS name or an IP address: give names like "
                "packyard.example.com or 192.0.2.10, without a scheme or port"
            ) from None
        if name not in names:
            names.append(name)
    return tuple(names)


def authority(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def block(
    *,
    data_dir: Path,
    listen_host: str,
    port: int,
    organization_id: str,
    project_id: str,
    names: Sequence[str] = (),
    tls: bool = True,
    ca_bundle: Path | None = None,
    credentials: tuple[str, str] | None = None,
) -> str:
    """The block; ``names`` are the ``--hostname``s (the first is the one clients are told to use),
    ``credentials`` the client id and secret when they were made just now."""
    host = names[0] if names else ("127.0.0.1" if listen_host in _WILDCARDS else listen_host.strip("[]"))
    address = authority(host, port)
    q = shlex.quote
    lines = [
        f"# packyard serves the HCP Packer API on {'https' if tls else 'http'}://{address}",
        "# Paste these lines into the shell that runs Packer or Terraform:",
        f"export HCP_API_HOST={q(address)}",
        f"export HCP_AUTH_URL={q('https://' + address)}",
        f"export HCP_ORGANIZATION_ID={q(organization_id)}",
        f"export HCP_PROJECT_ID={q(project_id)}",
    ]
    if credentials is not None:
        client_id, client_secret = credentials
        lines += [f"export HCP_CLIENT_ID={q(client_id)}", f"export HCP_CLIENT_SECRET={q(client_secret)}"]
    else:
        lines += [
            "# export HCP_CLIENT_ID=...       (printed once by `packyard init` or `packyard principal create`)",
            "# export HCP_CLIENT_SECRET=...",
        ]
    if tls and ca_bundle is not None:
        lines += [
            f"export SSL_CERT_FILE={q(str(ca_bundle))}",
            "# ^ the system's trusted roots plus packyard's CA; on another machine, see docs/clients.md",
        ]
    if not tls:
        lines += [
            "export HCP_API_TLS=disabled",
            "# HCP_AUTH_URL must be https for every HCP SDK: serve the token endpoint behind a TLS proxy.",
        ]
    if len(names) > 1:
        lines.append(f"# Also reachable as: {', '.join(names[1:])}")
    scheme = "https" if tls else "http"
    lines += [
        f"# Web console: {scheme}://{address}/ (people sign in there; make an account with",
        f"#   packyard user create --data-dir {q(str(data_dir))} --url {scheme}://{address}",
        "#   --email EMAIL --role admin)",
        f"# Data directory: {q(str(data_dir))}",
    ]
    return "\n".join(lines)
