"""API keys and roles, as `TIERFLOW_API_KEYS` gives them (`k1=admin;k2=ingest;k3=ops,rm`)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from enum import StrEnum


class Role(StrEnum):
    INGEST = "ingest"
    OPS = "ops"
    RM = "rm"
    ADMIN = "admin"


class ApiKeyError(ValueError):
    pass


def _digest(key: str) -> str:
    # Keys are looked up by digest so the raw secret never sits in a dict or a log line.
    return hashlib.sha256(key.encode()).hexdigest()


@dataclass(frozen=True)
class Principal:
    key_id: str
    roles: frozenset[Role]

    def may(self, role: Role) -> bool:
        return Role.ADMIN in self.roles or role in self.roles


@dataclass(frozen=True)
class ApiKeyring:
    principals_by_digest: dict[str, Principal] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.principals_by_digest)

    def authenticate(self, key: str) -> Principal | None:
        return self.principals_by_digest.get(_digest(key))


def parse_api_keys(raw: str) -> ApiKeyring:
    """Parse `key=role[,role];key=role`; whitespace around parts is ignored."""
    principals: dict[str, Principal] = {}
    for position, entry in enumerate(part.strip() for part in raw.split(";")):
        if not entry:
            continue
        key, sep, role_list = entry.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ApiKeyError(f"API key entry {position + 1} must look like KEY=ROLE[,ROLE]")
        try:
            roles = frozenset(Role(r.strip()) for r in role_list.split(",") if r.strip())
        except ValueError as exc:
            allowed = ", ".join(r.value for r in Role)
            raise ApiKeyError(f"API key entry {position + 1}: unknown role ({allowed} allowed)") from exc
        if not roles:
            raise ApiKeyError(f"API key entry {position + 1} has no role")
        digest = _digest(key)
        principals[digest] = Principal(key_id=digest[:8], roles=roles)
    return ApiKeyring(principals)
