"""The web console's people, sessions and one-time links (domain/ports.py Users)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from packyard.domain.errors import AlreadyExists
from packyard.domain.models import Role, User, UserSession
from packyard.storage.codecs import from_us, insert_new, to_us
from packyard.storage.repositories import Repository

_COLUMNS = "u.id, u.email, u.organization_id, u.project_id, u.role, u.password_hash, u.created_at, u.sso_subject"


def _user(row: Any) -> User:
    return User(
        id=row.id,
        email=row.email,
        organization_id=row.organization_id,
        project_id=row.project_id,
        role=Role(row.role),
        password_hash=row.password_hash,
        created_at=from_us(row.created_at),
        sso_subject=row.sso_subject,
    )


class SqlUsers(Repository):
    def add(self, user: User) -> None:
        insert_new(
            self.raw,
            "console_user",
            {
                "id": user.id,
                "email": user.email,
                "organization_id": user.organization_id,
                "project_id": user.project_id,
                "role": user.role.value,
                "password_hash": user.password_hash,
                "created_at": to_us(user.created_at),
                "sso_subject": user.sso_subject,
            },
            lambda: AlreadyExists(f"a user with the email {user.email} already exists"),
        )

    def get(self, user_id: str) -> User | None:
        row = self.raw.first(f"SELECT {_COLUMNS} FROM console_user u WHERE u.id = ?", (user_id,))
        return _user(row) if row else None

    def get_by_email(self, email: str) -> User | None:
        row = self.raw.first(f"SELECT {_COLUMNS} FROM console_user u WHERE u.email = ?", (email,))
        return _user(row) if row else None

    def get_by_sso_subject(self, subject: str) -> User | None:
        row = self.raw.first(f"SELECT {_COLUMNS} FROM console_user u WHERE u.sso_subject = ?", (subject,))
        return _user(row) if row else None

    def set_sso(self, user_id: str, *, subject: str, email: str, role: Role, project_id: str | None) -> None:
        self.raw.execute(
            "UPDATE console_user SET sso_subject = ?, email = ?, role = ?, project_id = ? WHERE id = ?",
            (subject, email, role.value, project_id, user_id),
        )

    def list_(self, organization_id: str) -> list[User]:
        rows = self.raw.rows(
            f"SELECT {_COLUMNS} FROM console_user u WHERE u.organization_id = ? ORDER BY u.email", (organization_id,)
        )
        return [_user(r) for r in rows]

    def set_password(self, user_id: str, password_hash: str) -> None:
        self.raw.execute("UPDATE console_user SET password_hash = ? WHERE id = ?", (password_hash, user_id))

    def delete(self, user_id: str) -> None:
        # Sessions and links go with the user (ON DELETE CASCADE); deleted here too for SQLite
        # connections without foreign keys enforced.
        self.raw.execute("DELETE FROM console_session WHERE user_id = ?", (user_id,))
        self.raw.execute("DELETE FROM console_link WHERE user_id = ?", (user_id,))
        self.raw.execute("DELETE FROM console_user WHERE id = ?", (user_id,))

    def add_session(
        self, id_hash: str, user_id: str, csrf_token: str, created_at: datetime, expires_at: datetime
    ) -> None:
        self.raw.execute(
            "INSERT INTO console_session (id_hash, user_id, csrf_token, created_at, expires_at) VALUES (?, ?, ?, ?, ?)",
            (id_hash, user_id, csrf_token, to_us(created_at), to_us(expires_at)),
        )

    def session(self, id_hash: str, now: datetime) -> UserSession | None:
        row = self.raw.first(
            f"SELECT {_COLUMNS}, s.csrf_token, s.expires_at AS session_expires_at FROM console_session s "
            "JOIN console_user u ON u.id = s.user_id WHERE s.id_hash = ? AND s.expires_at > ?",
            (id_hash, to_us(now)),
        )
        if row is None:
            return None
        return UserSession(_user(row), row.csrf_token, from_us(row.session_expires_at))

    def delete_session(self, id_hash: str) -> None:
        self.raw.execute("DELETE FROM console_session WHERE id_hash = ?", (id_hash,))

    def delete_sessions_of(self, user_id: str) -> None:
        self.raw.execute("DELETE FROM console_session WHERE user_id = ?", (user_id,))

    def sweep_sessions(self, now: datetime) -> None:
        at = to_us(now)
        self.raw.execute("DELETE FROM console_session WHERE expires_at <= ?", (at,))
        self.raw.execute("DELETE FROM console_link WHERE expires_at <= ?", (at,))

    def add_link(self, id_hash: str, user_id: str, expires_at: datetime) -> None:
        self.raw.execute(
            "INSERT INTO console_link (id_hash, user_id, expires_at) VALUES (?, ?, ?)",
            (id_hash, user_id, to_us(expires_at)),
        )

    def link_user(self, id_hash: str, now: datetime) -> User | None:
        row = self.raw.first(
            f"SELECT {_COLUMNS} FROM console_link l JOIN console_user u ON u.id = l.user_id "
            "WHERE l.id_hash = ? AND l.expires_at > ?",
            (id_hash, to_us(now)),
        )
        return _user(row) if row else None

    def take_link(self, id_hash: str, now: datetime) -> User | None:
        user = self.link_user(id_hash, now)
        self.raw.execute("DELETE FROM console_link WHERE id_hash = ?", (id_hash,))
        return user
