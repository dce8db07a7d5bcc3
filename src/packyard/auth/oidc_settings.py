"""Single sign-on's settings: the OpenID Connect provider the console lets people sign in with, and how
the provider's claim becomes a packyard role. Read from PACKYARD_OIDC_* (docs/console.md); without
PACKYARD_OIDC_ISSUER there is no single sign-on.

- PACKYARD_OIDC_ISSUER: the provider's issuer URL; its discovery document is at
  <issuer>/.well-known/openid-configuration. https, or http to a loopback address only.
- PACKYARD_OIDC_CLIENT_ID, PACKYARD_OIDC_CLIENT_SECRET: the console's registration at the provider.
- PACKYARD_OIDC_CLAIM: the ID token's claim that says who is what (default `groups`); a dotted path
  reaches into objects (`realm_access.roles`). A string or a list of strings.
- PACKYARD_OIDC_ROLES: claim value=role pairs, comma-separated
  (`packer-admins=admin,packer-devs=contributor,everyone=viewer`), or a JSON object for values that
  hold commas (`{"cn=admins,ou=groups": "admin"}`). Someone whose claim holds several mapped values
  gets the highest of their roles; someone with none is refused.
- PACKYARD_OIDC_ORG: the organization accounts are made in (default: the only one there is).
- PACKYARD_OIDC_PROJECT: a project to scope them to (default: the whole organization).
- PACKYARD_OIDC_NAME: the provider's name on the sign-in button (default "single sign-on").
- PACKYARD_OIDC_SCOPES: the scopes asked for (default `openid email profile`).
- PACKYARD_OIDC_TIMEOUT_SECONDS: the bound on each call to the provider (default 10).
"""

from __future__ import annotations

import ipaddress
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from packyard.domain.models import Role

_RANK = {Role.VIEWER: 0, Role.CONTRIBUTOR: 1, Role.ADMIN: 2}


def _fail(message: str) -> SystemExit:
    return SystemExit(f"packyard: {message}")


def _secure(url: str) -> bool:
    """https, or http to a loopback host (a provider on the same machine, as in tests)."""
    parts = urlsplit(url)
    if not parts.hostname or parts.query or parts.fragment:
        return False
    if parts.scheme == "https":
        return True
    if parts.scheme != "http":
        return False
    if parts.hostname == "localhost":
        return True
    try:
        return ipaddress.ip_address(parts.hostname).is_loopback
    except ValueError:
        return False


def parse_roles(text: str) -> tuple[tuple[str, Role], ...]:
    """PACKYARD_OIDC_ROLES's pairs, in order; raises ValueError with what is wrong."""
    text = text.strip()
    pairs: list[tuple[str, str]]
    if text.startswith("{"):
        loaded = json.loads(text)
        if not isinstance(loaded, dict) or not all(isinstance(v, str) for v in loaded.values()):
            raise ValueError("a JSON mapping of claim values to roles is an object of strings")
        pairs = [(str(k), v) for k, v in loaded.items()]
    else:
        pairs = []
        for item in text.split(","):
            if not item.strip():
                continue
            value, sep, role = item.rpartition("=")
            if not sep or not value.strip():
                raise ValueError(f"{item.strip()!r} is not claim-value=role")
            pairs.append((value.strip(), role.strip()))
    found: list[tuple[str, Role]] = []
    for value, role in pairs:
        try:
            found.append((value, Role(role.lower())))
        except ValueError:
            raise ValueError(f"{role!r} is not a role (admin, contributor or viewer)") from None
    if not found:
        raise ValueError("it maps no claim value to a role")
    return tuple(found)


@dataclass(frozen=True)
class OidcSettings:
    issuer: str
    client_id: str
    client_secret: str
    roles: tuple[tuple[str, Role], ...]
    claim: str = "groups"
    name: str = "single sign-on"
    organization_id: str | None = None
    project_id: str | None = None
    scopes: str = "openid email profile"
    timeout_seconds: float = 10.0

    def role_for(self, claims: Mapping[str, object]) -> Role | None:
        """The highest role the claim's values map to; None when none is mapped."""
        value: object = claims
        for part in self.claim.split("."):
            value = value.get(part) if isinstance(value, Mapping) else None
        values = [value] if isinstance(value, str) else value if isinstance(value, list) else []
        held = {v for v in values if isinstance(v, str)}
        mapped = [role for claim_value, role in self.roles if claim_value in held]
        return max(mapped, key=_RANK.__getitem__) if mapped else None

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> OidcSettings | None:
        issuer = env.get("PACKYARD_OIDC_ISSUER", "").strip()
        if not issuer:
            others = sorted(k for k, v in env.items() if k.startswith("PACKYARD_OIDC_") and v)
            if others:
                raise _fail(f"{others[0]} is set but PACKYARD_OIDC_ISSUER is not; single sign-on needs the issuer URL")
            return None
        if not _secure(issuer):
            raise _fail(
                "PACKYARD_OIDC_ISSUER must be the provider's https URL without query or fragment "
                f"(http only to a loopback address), not {issuer!r}"
            )
        missing = [k for k in ("PACKYARD_OIDC_CLIENT_ID", "PACKYARD_OIDC_CLIENT_SECRET") if not env.get(k)]
        if missing:
            raise _fail(f"single sign-on needs {' and '.join(missing)}")
        try:
            roles = parse_roles(env.get("PACKYARD_OIDC_ROLES", ""))
        except ValueError as exc:
            raise _fail(
                f"PACKYARD_OIDC_ROLES must map claim values to roles, such as "
                f"'packer-admins=admin,packer-devs=contributor,everyone=viewer': {exc}"
            ) from None
        timeout = 10.0
        if env.get("PACKYARD_OIDC_TIMEOUT_SECONDS"):
            try:
                timeout = float(env["PACKYARD_OIDC_TIMEOUT_SECONDS"])
            except ValueError:
                timeout = math.nan
            if not 0 < timeout <= 120:
                raise _fail(
                    "PACKYARD_OIDC_TIMEOUT_SECONDS must be a number of seconds up to 120, "
                    f"not {env['PACKYARD_OIDC_TIMEOUT_SECONDS']!r}"
                )
        return cls(
            issuer=issuer,  # kept as written: ID tokens must name it exactly
            client_id=env["PACKYARD_OIDC_CLIENT_ID"],
            client_secret=env["PACKYARD_OIDC_CLIENT_SECRET"],
            roles=roles,
            claim=env.get("PACKYARD_OIDC_CLAIM", "").strip() or "groups",
            name=env.get("PACKYARD_OIDC_NAME", "").strip() or "single sign-on",
            organization_id=env.get("PACKYARD_OIDC_ORG", "").strip() or None,
            project_id=env.get("PACKYARD_OIDC_PROJECT", "").strip() or None,
            scopes=env.get("PACKYARD_OIDC_SCOPES", "").strip() or "openid email profile",
            timeout_seconds=timeout,
        )
