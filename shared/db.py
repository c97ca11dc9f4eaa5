"""The async SQLAlchemy engine and sessions; one engine per process, made at start-up."""

from __future__ import annotations

import asyncio
import re
import ssl
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy import event, text
from sqlalchemy.engine import ExceptionContext
from sqlalchemy.engine.interfaces import DBAPIConnection
from sqlalchemy.exc import (
    DBAPIError,
    DisconnectionError,
    InterfaceError,
    OperationalError,
    SQLAlchemyError,
)
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.pool import ConnectionPoolEntry, PoolProxiedConnection

from shared.errors import TierFlowError
from shared.settings import Settings


class DatabaseUnavailable(TierFlowError):
    """The database cannot be reached now: the consumer retries the batch."""

    retriable = True


class DatabaseRefused(TierFlowError):
    """The database rejected the batch: the consumer isolates and dead-letters the bad record."""


# SQLSTATE classes that mean "not now" rather than "never": connection exception, transaction
# rollback (serialization failure, deadlock), insufficient resources, operator intervention
# (admin shutdown, "the database system is starting up"), system error; lock not available; and
# a read-only transaction, what a standby answers to writes after a failover ("not here").
_READ_ONLY = "25006"
_TRANSIENT_CLASSES = ("08", "40", "53", "57", "58")
_TRANSIENT_STATES = frozenset({"55P03", _READ_ONLY})


def sqlstate(exc: DBAPIError) -> str | None:
    cause = getattr(exc.orig, "__cause__", None)
    state = getattr(exc.orig, "sqlstate", None) or getattr(cause, "sqlstate", None)
    return state if isinstance(state, str) else None


def is_transient(exc: DBAPIError) -> bool:
    """Whether the same statement may succeed later: a restart or failover, not bad input."""
    if isinstance(exc, OperationalError | InterfaceError) or exc.connection_invalidated:
        return True
    state = sqlstate(exc)
    return state is not None and (state[:2] in _TRANSIENT_CLASSES or state in _TRANSIENT_STATES)


def is_unreachable(exc: BaseException) -> bool:
    """Whether a failure means the database cannot serve now, so the work is retried, never refused.

    The network, a pool with no free connection within its timeout, or a transient SQLSTATE.
    """
    if isinstance(exc, OSError | PoolTimeout | DisconnectionError):
        return True
    return isinstance(exc, DBAPIError) and is_transient(exc)


_CANCELLED_BY_TIMEOUT = "57014"


def ran_too_long(exc: BaseException | None) -> bool:
    """Whether a statement was cut off by a timeout (the driver's or the server's): an outage, or
    the one record that always takes too long; the consumer tells which by asking the database."""
    while exc is not None:
        if isinstance(exc, TimeoutError) and not isinstance(exc, PoolTimeout):
            return True
        if isinstance(exc, DBAPIError) and sqlstate(exc) == _CANCELLED_BY_TIMEOUT:
            return True
        exc = exc.__cause__
    return False


def is_data_error(exc: DBAPIError) -> bool:
    """SQLSTATE class 22: values the database cannot store (a NUL character, a bad byte sequence)."""
    state = sqlstate(exc)
    return state is not None and state.startswith("22")


def create_engine(settings: Settings) -> AsyncEngine:
    connect_args: dict[str, object] = {"command_timeout": 60}
    if settings.database_ssl:
        connect_args["ssl"] = ssl.create_default_context()
    engine = create_async_engine(
        settings.database_url.get_secret_value(),
        pool_size=settings.database_pool_size,
        max_overflow=settings.database_pool_size,
        pool_timeout=settings.database_pool_timeout_s,
        connect_args=connect_args,
    )
    event.listen(engine.sync_engine, "handle_error", _read_only_is_a_lost_server)
    _ping_after_idle(engine)
    return engine


# A pooled connection back from use less than this long ago is handed out without a ping. The
# ping (three round trips with asyncpg) would double the round trips of a small micro-batch;
# a server lost in the meantime fails the first statement instead, which callers already take
# for an unreachable database (retried, and the pool reconnects).
PING_AFTER_IDLE_S = 1.0


def _ping_after_idle(engine: AsyncEngine) -> None:
    """Ping a connection on checkout only if it sat in the pool for `PING_AFTER_IDLE_S` or more;
    one that does not answer is replaced before it is used. A connection just made is not pinged
    (as SQLAlchemy's pre-ping does not): were its ping to fail too, the pool would give up with an
    error no caller takes for an unreachable database."""
    dialect = engine.sync_engine.dialect

    def returned(_connection: DBAPIConnection | None, entry: ConnectionPoolEntry) -> None:
        entry.info["returned_at"] = time.monotonic()

    def made(_connection: DBAPIConnection, entry: ConnectionPoolEntry) -> None:
        entry.info["fresh"] = True

    def taken(connection: DBAPIConnection, entry: ConnectionPoolEntry, _proxy: PoolProxiedConnection) -> None:
        if entry.info.pop("fresh", False):
            return
        returned_at = entry.info.get("returned_at")
        if returned_at is not None and time.monotonic() - returned_at < PING_AFTER_IDLE_S:
            return
        try:
            dialect.do_ping(connection)
        except Exception as exc:  # whatever the ping meets, a fresh connection is tried
            raise DisconnectionError(
                f"pooled connection did not answer a ping: {type(exc).__name__}"
            ) from exc

    event.listen(engine.sync_engine, "connect", made)
    event.listen(engine.sync_engine, "checkin", returned)
    event.listen(engine.sync_engine, "checkout", taken)


def _read_only_is_a_lost_server(context: ExceptionContext) -> None:
    """A server that refuses writes is a standby now: drop the pool, so the retry connects afresh.

    Sessions keep the server they connected to; the address may lead to the new primary by now.
    """
    failure = context.sqlalchemy_exception
    if isinstance(failure, DBAPIError) and sqlstate(failure) == _READ_ONLY:
        context.is_disconnect = True


def session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


@asynccontextmanager
async def transaction(sessions: async_sessionmaker[AsyncSession]) -> AsyncIterator[AsyncSession]:
    """One unit of work: commits when the block ends, rolls back if it raises."""
    async with sessions() as session, session.begin():
        yield session


@asynccontextmanager
async def consumer_transaction(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """One transaction for a consumer's micro-batch, with failures sorted into retry or dead-letter."""
    try:
        async with engine.begin() as connection:
            yield connection
    except (OSError, PoolTimeout, DisconnectionError) as exc:
        raise DatabaseUnavailable(f"database unavailable: {exc.__class__.__name__}") from exc
    except DBAPIError as exc:
        if ran_too_long(exc):
            raise DatabaseUnavailable(f"statement timed out: {refusal(exc)}") from exc
        if is_transient(exc):
            raise DatabaseUnavailable(f"database unavailable: {refusal(exc)}") from exc
        raise DatabaseRefused(f"database refused the batch: {refusal(exc)}") from exc


_QUOTED = re.compile(r'"[^"]*"|\'[^\']*\'|\([^)]*\)=\([^)]*\)')


def refusal(exc: DBAPIError) -> str:
    """What the database said, fit for logs and dead-letter headers: its SQLSTATE, the constraint, and
    the primary message with quoted values left out (they may be a customer's personal data)."""
    cause = exc.orig.__cause__ if exc.orig is not None else None
    message = str(getattr(cause, "message", None) or type(cause or exc).__name__)
    constraint = getattr(cause, "constraint_name", None)
    detail = f" (constraint {constraint})" if constraint else ""
    return f"SQLSTATE {sqlstate(exc) or '?'}{detail}: {_QUOTED.sub('…', message)}"


async def is_reachable(engine: AsyncEngine, timeout_s: float = 2.0) -> bool:
    try:
        async with asyncio.timeout(timeout_s), engine.connect() as connection:
            await connection.execute(text("SELECT 1"))
    except (SQLAlchemyError, OSError, TimeoutError):
        return False
    return True


def in_branches(column: str = "branch_id") -> str:
    """A condition holding for rows of the branches bound as `:branches` (see `branch_list`);
    a NULL list is the whole bank, an empty one nothing."""
    return f"(CAST(:branches AS text[]) IS NULL OR {column} = ANY(:branches))"


def branch_list(branches: frozenset[str] | None) -> list[str] | None:
    """The `:branches` parameter of `in_branches` for a key's branch scope."""
    return None if branches is None else sorted(branches)
