"""`tierflow lag`: what each worker's consumer group has yet to process, as the broker sees it.

Unlike the members' `tierflow_consumer_lag` gauges, this also counts partitions that no
member holds at the moment (a rebalance in progress, a departed member not yet expired).
It also counts the outbox records each service set aside because the broker refused them.
"""

from __future__ import annotations

from dataclasses import dataclass

from rich.table import Table
from sqlalchemy import text

from services.scoring.replay import current_generation, group_id
from shared.db import create_engine
from shared.kafka import group_lag
from shared.migrations import SERVICES_WITH_SCHEMA
from shared.settings import Settings
from shared.topics import Topics


@dataclass(frozen=True)
class GroupLag:
    service: str
    group: str
    topic: str
    records: int  # produced but not yet committed by the group


async def lag_report(settings: Settings) -> list[Table]:
    return [lag_table(await worker_lag(settings)), set_aside_table(await outbox_set_aside(settings))]


async def worker_lag(settings: Settings) -> list[GroupLag]:
    topics = Topics.from_settings(settings)
    rows: list[GroupLag] = []
    for service, group in (await worker_groups(settings)).items():
        by_partition = await group_lag(settings, group, topics.consumed_by(service))
        for topic in topics.consumed_by(service):
            records = sum(lag for partition, lag in by_partition.items() if partition.topic == topic)
            rows.append(GroupLag(service, group, topic, records))
    return rows


async def worker_groups(settings: Settings) -> dict[str, str]:
    """The consumer group each worker consumes as; scoring's moves on with every replay."""
    engine = create_engine(settings)
    try:
        generation = await current_generation(engine)
    finally:
        await engine.dispose()
    return {
        "scoring": group_id(settings.scoring_group, generation),
        "engagement": settings.engagement_group,
        "feedback": settings.feedback_group,
        "households": settings.household_group,
    }


def lag_table(rows: list[GroupLag]) -> Table:
    table = Table(title="Records not yet processed, by consumer group")
    for column in ("service", "group", "topic"):
        table.add_column(column)
    table.add_column("lag", justify="right")
    for row in rows:
        table.add_row(row.service, row.group, row.topic, f"{row.records:,}")
    return table


async def outbox_set_aside(settings: Settings) -> dict[str, int]:
    """Outbox records each service set aside (`<schema>.outbox_rejected`): never published."""
    engine = create_engine(settings)
    try:
        async with engine.connect() as connection:
            counts = {}
            for schema in SERVICES_WITH_SCHEMA:
                count = await connection.scalar(text(f"SELECT count(*) FROM {schema}.outbox_rejected"))  # noqa: S608
                counts[schema] = int(count or 0)
            return counts
    finally:
        await engine.dispose()


def set_aside_table(counts: dict[str, int]) -> Table:
    table = Table(title="Outbox records the broker refused for good, set aside (see docs/dead-letters.md)")
    table.add_column("service")
    table.add_column("set aside", justify="right")
    for service, count in counts.items():
        table.add_row(service, f"{count:,}")
    return table
