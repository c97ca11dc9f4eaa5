"""Console sessions: the signed-in user's key held server-side, behind an opaque cookie.

The key is kept only here, in memory, so it never reaches a page, a URL or a log; a
restart signs everyone out. Times are passed in: nothing here reads the clock.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from hmac import compare_digest
from typing import Any

# Sessions one console process holds at most; the oldest go first beyond it.
MAX_SESSIONS = 10_000


@dataclass(frozen=True)
class Identity:
    """Who a key acts as, as the services' `GET /v1/me` answers."""

    key_id: str
    roles: frozenset[str]
    rm_id: str | None
    branches: tuple[str, ...] | None

    @classmethod
    def from_me(cls, body: dict[str, Any]) -> Identity:
        branches = body.get("branches")
        return cls(
            key_id=str(body["key_id"]),
            roles=frozenset(str(role) for role in body["roles"]),
            rm_id=body.get("rm_id"),
            branches=None if branches is None else tuple(str(b) for b in branches),
        )

    @property
    def is_admin(self) -> bool:
        return "admin" in self.roles

    @property
    def reads_operations(self) -> bool:
        return self.is_admin or "ops" in self.roles

    @property
    def is_rm(self) -> bool:
        return "rm" in self.roles


@dataclass(frozen=True)
class Session:
    session_id: str
    api_key: str
    identity: Identity
    csrf_token: str
    signed_in_at: datetime
    last_seen_at: datetime

    def __repr__(self) -> str:
        # Never print the key, whatever logs or tracebacks do with a session.
        return f"Session(key_id={self.identity.key_id!r})"

    def csrf_matches(self, presented: str | None) -> bool:
        return presented is not None and compare_digest(presented, self.csrf_token)


@dataclass(frozen=True)
class Expiry:
    idle: timedelta
    absolute: timedelta

    def expired(self, session: Session, now: datetime) -> bool:
        return now - session.last_seen_at > self.idle or now - session.signed_in_at > self.absolute


class SessionStore:
    def __init__(self, expiry: Expiry) -> None:
        self._expiry = expiry
        self._sessions: dict[str, Session] = {}

    def open(self, api_key: str, identity: Identity, now: datetime) -> Session:
        self._drop_expired(now)
        while len(self._sessions) >= MAX_SESSIONS:
            del self._sessions[next(iter(self._sessions))]
        session = Session(
            session_id=secrets.token_urlsafe(32),
            api_key=api_key,
            identity=identity,
            csrf_token=secrets.token_urlsafe(32),
            signed_in_at=now,
            last_seen_at=now,
        )
        self._sessions[session.session_id] = session
        return session

    def touch(self, session_id: str | None, now: datetime) -> Session | None:
        """The live session behind the cookie, its idle clock restarted; None once expired."""
        session = self._sessions.get(session_id or "")
        if session is None:
            return None
        if self._expiry.expired(session, now):
            del self._sessions[session.session_id]
            return None
        touched = replace(session, last_seen_at=now)
        self._sessions[session.session_id] = touched
        return touched

    def close(self, session_id: str) -> None:
        self._sessions.pop(session_id, None)

    def _drop_expired(self, now: datetime) -> None:
        for session in [s for s in self._sessions.values() if self._expiry.expired(s, now)]:
            del self._sessions[session.session_id]
