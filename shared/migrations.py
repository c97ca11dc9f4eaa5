"""Alembic, one schema per service: each service's `migrations/` owns its tables."""

from __future__ import annotations

import asyncio
from pathlib import Path

from alembic import command, context, op
from alembic.config import Config
from sqlalchemy import MetaData, text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from shared.db import create_engine
from shared.retention import maintain_all_markers
from shared.settings import Settings

SERVICES_ROOT = Path(__file__).resolve().parent.parent / "services"
# Services that keep state in PostgreSQL; ingest only publishes.
SERVICES_WITH_SCHEMA = ("scoring", "engagement", "feedback")


def alembic_config(service: str, settings: Settings) -> Config:
    config = Config()
    config.set_main_option("script_location", str(SERVICES_ROOT / service / "migrations"))
    # ConfigParser treats % as interpolation; a password may contain it.
    url = settings.database_url.get_secret_value().replace("%", "%%")
    config.set_main_option("sqlalchemy.url", url)
    config.attributes["schema"] = service
    return config


def upgrade(service: str, settings: Settings, revision: str = "head") -> None:
    """Blocking: run from a thread when an event loop is already running."""
    command.upgrade(alembic_config(service, settings), revision)


async def upgrade_all(settings: Settings) -> None:
    """Every service's migrations, then the duplicate-marker partitions the settings call for."""
    for service in SERVICES_WITH_SCHEMA:
        await asyncio.to_thread(upgrade, service, settings)
    engine = create_engine(settings)
    try:
        await maintain_all_markers(engine, SERVICES_WITH_SCHEMA, settings)
    finally:
        await engine.dispose()


def run_env(target_metadata: MetaData | None = None) -> None:
    """Body of every service's `migrations/env.py`."""
    schema: str = context.config.attributes["schema"]
    url = context.config.get_main_option("sqlalchemy.url")
    assert url is not None

    def migrate(connection: Connection) -> None:
        connection.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            version_table_schema=schema,
            include_schemas=True,
        )
        with context.begin_transaction():
            context.run_migrations()

    async def run() -> None:
        engine = create_async_engine(url)
        try:
            async with engine.begin() as connection:
                await connection.run_sync(migrate)
        finally:
            await engine.dispose()

    asyncio.run(run())


def execute_script(script: str) -> None:
    """Run a migration's SQL one statement at a time (asyncpg prepares one statement per call)."""
    for statement in script.split(";"):
        if statement.strip():
            op.execute(statement)


def create_outbox_rejected(schema: str) -> None:
    """The table where a service's relay sets aside outbox records the broker refuses for good."""
    op.execute(
        f"""
        CREATE TABLE {schema}.outbox_rejected (
            id           bigint PRIMARY KEY,
            topic        text NOT NULL,
            key          bytea NOT NULL,
            value        bytea NOT NULL,
            created_at   timestamptz NOT NULL,
            rejected_at  timestamptz NOT NULL DEFAULT now(),
            attempts     integer NOT NULL,
            reason       text NOT NULL
        )
        """
    )


def drop_outbox_rejected(schema: str) -> None:
    op.execute(f"DROP TABLE IF EXISTS {schema}.outbox_rejected")


def create_erasures(schema: str) -> None:
    """A service's tombstone list and erasure records (see `shared.erasure`), and the salt of the
    customer references, drawn once here from PostgreSQL's strong random source."""
    execute_script(
        f"""
        CREATE TABLE {schema}.erasure_salt (
            id    smallint PRIMARY KEY DEFAULT 1 CHECK (id = 1),
            salt  bytea NOT NULL CHECK (length(salt) = 32)
        );
        INSERT INTO {schema}.erasure_salt (salt)
            VALUES (uuid_send(gen_random_uuid()) || uuid_send(gen_random_uuid()));
        CREATE TABLE {schema}.erasures (
            customer_ref  bytea PRIMARY KEY,
            erased_at     timestamptz NOT NULL,
            recorded_at   timestamptz NOT NULL DEFAULT now(),
            actor         text NOT NULL,
            reason        text NOT NULL,
            event_id      text NOT NULL,
            removed       jsonb NOT NULL
        )
        """  # noqa: S608 - a service's own schema name
    )


def drop_erasures(schema: str) -> None:
    op.execute(f"DROP TABLE IF EXISTS {schema}.erasures")
    op.execute(f"DROP TABLE IF EXISTS {schema}.erasure_salt")


def create_clock(schema: str) -> None:
    """The one-row table of a service's event-time clock: the latest event time it applied."""
    op.execute(
        f"""
        CREATE TABLE IF NOT EXISTS {schema}.clock (
            id         smallint PRIMARY KEY DEFAULT 1 CHECK (id = 1),
            watermark  timestamptz NOT NULL
        )
        """
    )


def drop_clock(schema: str) -> None:
    op.execute(f"DROP TABLE IF EXISTS {schema}.clock")


def key_by_event_source(table: str, *, primary: bool) -> None:
    """Key `table` on (source, event_id) instead of event_id alone: CloudEvents identity.

    Rows written before get the empty source, which no CloudEvent has (its source is at
    least one character); the inbox reads such a marker as its id from any source.
    """
    by_id, by_source, kind = _event_keys(table, primary)
    execute_script(
        f"""
        ALTER TABLE {table} ADD COLUMN source text NOT NULL DEFAULT '';
        ALTER TABLE {table} ALTER COLUMN source DROP DEFAULT;
        ALTER TABLE {table} DROP CONSTRAINT {by_id};
        ALTER TABLE {table} ADD CONSTRAINT {by_source} {kind} (source, event_id)
        """
    )


def key_by_event_id(table: str, *, primary: bool) -> None:
    """Undo `key_by_event_source`: of the same id from several sources, one row is kept."""
    by_id, by_source, kind = _event_keys(table, primary)
    execute_script(
        f"""
        DELETE FROM {table} AS later USING {table} AS earlier
            WHERE later.event_id = earlier.event_id AND later.source > earlier.source;
        ALTER TABLE {table} DROP CONSTRAINT {by_source};
        ALTER TABLE {table} ADD CONSTRAINT {by_id} {kind} (event_id);
        ALTER TABLE {table} DROP COLUMN source
        """  # noqa: S608 - a migration's own table name
    )


def _event_keys(table: str, primary: bool) -> tuple[str, str, str]:
    """The constraint names PostgreSQL gives these keys by default, and the kind of key."""
    name = table.rpartition(".")[2]
    if primary:
        return f"{name}_pkey", f"{name}_pkey", "PRIMARY KEY"
    return f"{name}_event_id_key", f"{name}_source_event_id_key", "UNIQUE"


def partition_markers(schema: str, columns: str) -> None:
    """Make `<schema>.applied_events` a table range-partitioned by the event's `time`.

    The markers already there record no event time: the table is renamed
    `applied_events_legacy` (no rows are copied) and the claim looks there too until the
    maintenance loop empties it, once even its latest marker lies before the horizon. The
    partitions themselves are created by the maintenance loop and by `upgrade_all`, which know
    the configured horizon and width. `columns` are the table's columns besides the key.
    """
    execute_script(
        f"""
        ALTER TABLE {schema}.applied_events RENAME TO applied_events_legacy;
        ALTER INDEX {schema}.applied_events_pkey RENAME TO applied_events_legacy_pkey;
        CREATE TABLE {schema}.applied_events (
            source      text NOT NULL,
            event_id    text NOT NULL,
            event_time  timestamptz NOT NULL,
            {columns},
            PRIMARY KEY (source, event_id, event_time)
        ) PARTITION BY RANGE (event_time)
        """
    )


def unpartition_markers(schema: str, columns: str) -> None:
    """Undo `partition_markers`: markers written since go back into one table keyed by source and id."""
    execute_script(
        f"""
        INSERT INTO {schema}.applied_events_legacy (source, event_id, {columns})
            SELECT source, event_id, {columns} FROM {schema}.applied_events ON CONFLICT DO NOTHING;
        DROP TABLE {schema}.applied_events;
        ALTER TABLE {schema}.applied_events_legacy RENAME TO applied_events;
        ALTER INDEX {schema}.applied_events_legacy_pkey RENAME TO applied_events_pkey
        """  # noqa: S608 - a migration's own table names
    )
