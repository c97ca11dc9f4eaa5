"""API keys and roles, as `TIERFLOW_API_KEYS` gives them.

`k1=admin;k2=ingest;k3=ops,rm` gives keys roles; `k4=rm:BR014-RM1@BR014` binds a key to one RM of
one branch (it acts only as that RM and reads only that branch); `k5=ops@BR014+BR015` is an ops
key that reads only those branches. Keys without a branch read the whole bank.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from enum import StrEnum


class Role(StrEnum):
    INGEST = "ingest"
    OPS = "ops"
    RM = "rm"
    ADMIN = "admin"


class ApiKeyError(ValueError):
    pass


# The identifier rule of the contract (shared.contracts.types.Identifier), less `@` and `+`,
# which separate the parts of a bound key.
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:/-]{0,127}$")
_BOUND_RM = "rm:"


def _digest(key: str) -> str:
    # Keys are looked up by digest so the raw secret never sits in a dict or a log line.
    return hashlib.sha256(key.encode()).hexdigest()


@dataclass(frozen=True)
class Principal:
    """Who a key is: its roles, the RM it is bound to and the branches it sees (None: the bank)."""

    key_id: str
    roles: frozenset[Role]
    rm_id: str | None = None
    branches: frozenset[str] | None = None

    def may(self, role: Role) -> bool:
        return Role.ADMIN in self.roles or role in self.roles

    @property
    def is_admin(self) -> bool:
        return Role.ADMIN in self.roles

    def sees(self, branch_id: str | None) -> bool:
        """Whether a record of this branch is visible; one without a branch is the bank's."""
        return self.branches is None or branch_id in self.branches

    def branch_scope(self, asked: str | None) -> frozenset[str] | None:
        """The branches a read asking for `asked` (None: any) covers for this key; None means no
        restriction, an empty set means nothing this key may see."""
        if self.branches is None:
            return None if asked is None else frozenset({asked})
        if asked is None:
            return self.branches
        return self.branches & {asked}


@dataclass(frozen=True)
class ApiKeyring:
    principals_by_digest: dict[str, Principal] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.principals_by_digest)

    def authenticate(self, key: str) -> Principal | None:
        return self.principals_by_digest.get(_digest(key))


def parse_api_keys(raw: str) -> ApiKeyring:
    """Parse `key=role[,role]`, `key=rm:RM_ID@BRANCH` and `key=ops@BRANCH[+BRANCH…]` entries
    separated by `;`; whitespace around parts is ignored."""
    principals: dict[str, Principal] = {}
    for position, entry in enumerate(part.strip() for part in raw.split(";")):
        if not entry:
            continue
        where = f"API key entry {position + 1}"
        key, sep, grant = entry.partition("=")
        key, grant = key.strip(), grant.strip()
        if not sep or not key:
            raise ApiKeyError(
                f"{where} must look like KEY=ROLE[,ROLE], KEY=rm:RM_ID@BRANCH or KEY=ops@BRANCH"
            )
        digest = _digest(key)
        if digest in principals:
            raise ApiKeyError(f"{where} repeats a key given earlier")
        principals[digest] = _principal(digest[:8], grant, where)
    return ApiKeyring(principals)


def _principal(key_id: str, grant: str, where: str) -> Principal:
    if grant.startswith(_BOUND_RM):
        rm_id, at, branch = grant.removeprefix(_BOUND_RM).rpartition("@")
        if not at or not rm_id or not branch:
            raise ApiKeyError(f"{where}: a bound RM key must look like KEY=rm:RM_ID@BRANCH")
        if "+" in branch:
            raise ApiKeyError(f"{where}: an RM belongs to one branch (KEY=rm:RM_ID@BRANCH)")
        return Principal(key_id, frozenset({Role.RM}), _name(rm_id, "RM id", where), _branches(branch, where))
    role_list, at, branch_list = grant.partition("@")
    roles = _roles(role_list, where)
    if not at:
        return Principal(key_id, roles)
    if roles != {Role.OPS}:
        raise ApiKeyError(
            f"{where}: only an ops key takes branches (KEY=ops@BRANCH[+BRANCH]);"
            " bind an RM as KEY=rm:RM_ID@BRANCH"
        )
    return Principal(key_id, roles, branches=_branches(branch_list, where))


def _roles(role_list: str, where: str) -> frozenset[Role]:
    names = [name.strip() for name in role_list.split(",") if name.strip()]
    if not names:
        raise ApiKeyError(f"{where} has no role")
    unknown = sorted({name for name in names if name not in Role.__members__.values()})
    if unknown:
        allowed = ", ".join(r.value for r in Role)
        raise ApiKeyError(f"{where}: unknown role {unknown[0]!r} ({allowed} allowed)")
    return frozenset(Role(name) for name in names)


def _branches(branch_list: str, where: str) -> frozenset[str]:
    names = [name.strip() for name in branch_list.split("+")]
    return frozenset(_name(name, "branch id", where) for name in names)


def _name(value: str, what: str, where: str) -> str:
    value = value.strip()
    if not _NAME.fullmatch(value):
        raise ApiKeyError(
            f"{where}: {what} {value!r} must be 1 to 128 letters, digits or . _ : / -,"
            " starting with a letter or digit"
        )
    return value
