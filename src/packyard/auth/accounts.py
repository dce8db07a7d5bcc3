"""The web console's accounts: people (domain.models.User), their passwords (argon2id, argon2-cffi), the
one-time links that set them, sign-in with the token endpoint's failure throttle, and sessions.

- A password is hashed with argon2id at OWASP's recommended parameters (19 MiB of memory, two passes,
  one lane: about 20 ms of one core here); a hash made with other parameters is rehashed at the next
  sign-in. Hashing never runs on the event loop or inside a transaction: `hash_off_loop` runs it on a
  pool of two threads of its own (argon2's C code releases the GIL), which also bounds the memory that
  concurrent sign-ins can take to 2 x 19 MiB.
- A session's cookie holds 32 random bytes; the database keeps their SHA-256 only, with the session's
  form token (CSRF) and its end. A link's secret is kept the same way and works once.
- Sign-in failures count in the token endpoint's table, per (client address, account) and per client
  address (auth/service.py FailureThrottle): an attacker's guesses lock out the attacker's address, never
  the account from elsewhere. Unknown and known emails are counted and answered alike.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import re
import secrets
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import ParamSpec, TypeVar

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from packyard.auth.service import FailureThrottle
from packyard.domain.errors import InvalidArgument, NotFound, Unauthenticated
from packyard.domain.models import Role, User, UserSession
from packyard.domain.ports import FailureStore, UnitOfWork
from packyard.ids import new_ulid

LINK_LIFETIME = timedelta(hours=72)
MIN_PASSWORD = 12
MAX_PASSWORD = 1024  # argon2 hashes any length; a bound keeps one request's work bounded
MAX_EMAIL = 254  # RFC 5321's path limit less its angle brackets
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+$")

_hasher = PasswordHasher(time_cost=2, memory_cost=19 * 1024, parallelism=1)  # argon2id, OWASP's profile
_hashing = ThreadPoolExecutor(max_workers=2, thread_name_prefix="packyard-argon2")
P = ParamSpec("P")
T = TypeVar("T")


async def hash_off_loop(fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """fn (hash_password, check_password) on the hashing threads, so the event loop keeps serving."""
    return await asyncio.get_running_loop().run_in_executor(_hashing, functools.partial(fn, *args, **kwargs))


@functools.cache
def _dummy_hash() -> str:
    """A hash of nothing anyone knows: an unknown email costs the same verification as a known one."""
    return _hasher.hash(secrets.token_urlsafe(16))


def hash_password(password: str) -> str:
    check_password_rules(password)
    return _hasher.hash(password)


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def normalize_email(email: str) -> str:
    value = email.strip().lower()
    if not value or len(value) > MAX_EMAIL or not _EMAIL.match(value):
        raise InvalidArgument(f"{email!r} is not an email address")
    return value


def throttle_key(email: str) -> str:
    """The failure table's key of an account (its client id column holds 64 characters at most)."""
    return "user:" + digest(email.strip().lower())[:59]


def check_password_rules(password: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise InvalidArgument(f"a password needs at least {MIN_PASSWORD} characters")
    if len(password) > MAX_PASSWORD:
        raise InvalidArgument(f"a password has at most {MAX_PASSWORD} characters")


@dataclass(frozen=True, slots=True)
class NewUser:
    user: User
    link_secret: str  # the one-time link's secret, shown once (`packyard user create` prints the link)


def create_user(
    uow: UnitOfWork, *, email: str, role: Role, organization_id: str, project_id: str | None, now: datetime
) -> NewUser:
    if uow.tenants.get_organization(organization_id) is None:
        raise NotFound(f"organization {organization_id} does not exist")
    if project_id is not None and uow.tenants.get_project(organization_id, project_id) is None:
        raise NotFound(f"project {project_id} does not exist in organization {organization_id}")
    user = User(new_ulid(), normalize_email(email), organization_id, project_id, role, "", now)
    uow.users.add(user)
    return NewUser(user, new_link(uow, user, now))


def new_link(uow: UnitOfWork, user: User, now: datetime) -> str:
    """A one-time link secret that sets the user's password (a reset: the user's other links stay)."""
    secret = secrets.token_urlsafe(32)
    uow.users.add_link(digest(secret), user.id, now + LINK_LIFETIME)
    return secret


def link_user(uow: UnitOfWork, secret: str, now: datetime) -> User:
    user = uow.users.link_user(digest(secret), now) if secret else None
    if user is None:
        raise Unauthenticated("this link is unknown, used or expired; ask an admin for a new one")
    return user


def set_password_by_link(uow: UnitOfWork, secret: str, password_hash: str, now: datetime) -> User:
    """Set the password of the link's user to a hash_password() made beforehand and spend the link; the
    user's sessions end."""
    user = uow.users.take_link(digest(secret), now) if secret else None
    if user is None:
        raise Unauthenticated("this link is unknown, used or expired; ask an admin for a new one")
    uow.users.set_password(user.id, password_hash)
    uow.users.delete_sessions_of(user.id)
    return user


@dataclass(frozen=True, slots=True)
class Candidate:
    """Who a sign-in claims to be, read before its password is checked (outside the transaction)."""

    user: User | None
    clear_failures: bool  # the (address, account) pair had failures: a success clears them


@dataclass(frozen=True, slots=True)
class SignIn:
    user: User
    rehash: str | None  # a new hash for the password, when the stored one was made with other parameters
    clear_failures: bool


def sign_in_candidate(
    uow: UnitOfWork, failures: FailureStore, throttle: FailureThrottle, email: str, source: str, now: datetime
) -> Candidate:
    """The account an email names, if any; raises auth.service.Throttled while the (address, account)
    pair or the address is locked out."""
    had_failures = throttle.check(failures, throttle_key(email), source, now)
    user = uow.users.get_by_email(email.strip().lower()) if len(email) <= MAX_EMAIL else None
    return Candidate(user, had_failures)


def check_password(candidate: Candidate, password: str) -> SignIn:
    """The signed-in user when the password is the candidate's; Unauthenticated for anything wrong, with
    one message, after the same work for an unknown account as for a known one. Runs argon2: call it
    through hash_off_loop."""
    wrong = Unauthenticated("wrong email or password")
    if len(password) > MAX_PASSWORD:
        raise wrong
    user = candidate.user
    stored = user.password_hash if user is not None and user.password_hash else _dummy_hash()
    try:
        _hasher.verify(stored, password)
    except (VerificationError, InvalidHashError):
        raise wrong from None
    if user is None or not user.password_hash:
        raise wrong
    rehash = _hasher.hash(password) if _hasher.check_needs_rehash(stored) else None
    return SignIn(user, rehash, candidate.clear_failures)


def start_session(uow: UnitOfWork, user: User, now: datetime, lifetime: timedelta) -> tuple[str, UserSession]:
    """A new session for the user: the cookie's value (shown to the browser only) and the session."""
    uow.users.sweep_sessions(now)
    cookie = secrets.token_urlsafe(32)
    csrf = secrets.token_urlsafe(32)
    expires = now + lifetime
    uow.users.add_session(digest(cookie), user.id, csrf, now, expires)
    return cookie, UserSession(user, csrf, expires)


def session_for(uow: UnitOfWork, cookie: str, now: datetime) -> UserSession | None:
    if not cookie or len(cookie) > 128:
        return None
    return uow.users.session(digest(cookie), now)


def end_session(uow: UnitOfWork, cookie: str) -> None:
    if cookie and len(cookie) <= 128:
        uow.users.delete_session(digest(cookie))
