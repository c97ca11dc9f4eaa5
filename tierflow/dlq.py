"""`tierflow dlq`: the dead letters of each consumed topic with their reasons, and re-injection.

A dead letter's id is its place on the dead-letter topic, `partition:offset`. Re-injecting one
produces its key, value and own headers again on the topic it came from, so it keeps its
partition and its event id; the workers recognise an event they have already applied by that
id, so a record re-injected twice, or one applied after all, still takes effect once.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Collection, Sequence
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.errors import KafkaError
from rich.console import Console
from rich.table import Table

from shared.consumer import (
    DEAD_LETTER_HEADERS,
    ERROR_CLASS_HEADER,
    ERROR_HEADER,
    FAILED_AT_HEADER,
    SOURCE_OFFSET_HEADER,
    SOURCE_PARTITION_HEADER,
    SOURCE_TOPIC_HEADER,
)
from shared.kafka import LazyProducer, Record, client_options
from shared.settings import Settings
from shared.topics import CONSUMED, DLQ_SUFFIX, Topics
from tierflow.stack import data_dir_option, operator_settings

REINJECTED_FROM_HEADER = "tierflow-reinjected-from"


class UnknownDeadLetters(Exception):
    """Ids asked for that the dead-letter topic does not hold."""


@dataclass(frozen=True)
class DeadLetter:
    topic: str  # the dead-letter topic that holds it
    partition: int
    offset: int
    key: bytes | None
    value: bytes
    headers: tuple[tuple[str, bytes], ...]

    @classmethod
    def of(cls, record: ConsumerRecord[bytes, bytes]) -> DeadLetter:
        return cls(
            record.topic,
            record.partition,
            record.offset,
            record.key,
            record.value or b"",
            tuple(record.headers or ()),
        )

    @property
    def id(self) -> str:
        return f"{self.partition}:{self.offset}"

    def header(self, name: str) -> str:
        return next((value.decode(errors="replace") for key, value in self.headers if key == name), "")

    @property
    def origin(self) -> str:
        """The topic the record failed on: its header says; else the dead-letter topic's name does."""
        return self.header(SOURCE_TOPIC_HEADER) or self.topic.removesuffix(DLQ_SUFFIX)

    @property
    def event_id(self) -> str:
        """The CloudEvent id, when the record is a JSON object that has one."""
        return self._envelope_field("id")

    @property
    def event_key(self) -> tuple[str, ...]:
        """What makes two dead letters the same record failing again: its CloudEvent source and id,
        or, for a record that has none, its own place on the dead-letter topic."""
        source, event_id = self._envelope_field("source"), self.event_id
        return (source, event_id) if source and event_id else (self.id,)

    def _envelope_field(self, name: str) -> str:
        try:
            event = json.loads(self.value)
        except (ValueError, RecursionError):
            return ""
        value = event.get(name) if isinstance(event, dict) else None
        return value if isinstance(value, str) else ""

    def reinjection(self) -> Record:
        """The record as it was first produced, marked with where it was brought back from."""
        own = [(k, v) for k, v in self.headers if k not in DEAD_LETTER_HEADERS | {REINJECTED_FROM_HEADER}]
        marker = (REINJECTED_FROM_HEADER, f"{self.topic}:{self.id}".encode())
        return Record(self.origin, self.key, self.value, [*own, marker])


async def read_dead_letters(settings: Settings, topic: str, timeout_s: float = 30) -> list[DeadLetter]:
    """Every dead letter of the consumed topic `topic` (its contract name), oldest first per partition."""
    dlq = Topics.from_settings(settings).dlq(topic)
    reader = AIOKafkaConsumer(**client_options(settings), group_id=None, enable_auto_commit=False)
    try:
        await reader.start()
        await reader.topics()
        partitions = [TopicPartition(dlq, p) for p in sorted(reader.partitions_for_topic(dlq) or ())]
        if not partitions:
            return []
        reader.assign(partitions)
        await reader.seek_to_beginning(*partitions)
        letters: list[DeadLetter] = []
        async with asyncio.timeout(timeout_s):
            # Read to the high watermark each fetch reports: some Kafka-protocol brokers answer
            # ListOffsets short of the true end.
            while not await _at_end(reader, partitions):
                fetched = await reader.getmany(timeout_ms=200)
                letters += [DeadLetter.of(record) for records in fetched.values() for record in records]
        return sorted(letters, key=lambda letter: (letter.partition, letter.offset))
    finally:
        await reader.stop()


async def _at_end(reader: AIOKafkaConsumer, partitions: Sequence[TopicPartition]) -> bool:
    for partition in partitions:
        highwater = reader.highwater(partition)
        if highwater is None or await reader.position(partition) < highwater:
            return False
    return True


def newest_of_each_record(letters: Sequence[DeadLetter]) -> list[DeadLetter]:
    """One dead letter per record: a record re-injected that failed again is dead-lettered again,
    and re-injecting every copy would double the topic with each `--all`."""
    newest: dict[tuple[str, ...], DeadLetter] = {}
    for letter in sorted(letters, key=lambda each: each.header(FAILED_AT_HEADER)):
        newest[letter.event_key] = letter
    return sorted(newest.values(), key=lambda letter: (letter.partition, letter.offset))


async def reinject(settings: Settings, topic: str, ids: Collection[str] | None) -> list[DeadLetter]:
    """Produces the chosen dead letters (when `ids` is None, the newest of each record) again onto the
    topic they came from."""
    letters = await read_dead_letters(settings, topic)
    if ids is None:
        letters = newest_of_each_record(letters)
    else:
        unknown = set(ids) - {letter.id for letter in letters}
        if unknown:
            raise UnknownDeadLetters(f"no dead letter {', '.join(sorted(unknown))} on {topic}{DLQ_SUFFIX}")
        letters = [letter for letter in letters if letter.id in ids]
    producer = LazyProducer(settings)
    try:
        await producer.publish([letter.reinjection() for letter in letters])
    finally:
        await producer.close()
    return letters


def dead_letters_table(topic: str, letters: Sequence[DeadLetter]) -> Table:
    table = Table(title=f"Dead letters of {topic} ({len(letters)})")
    for column in ("id", "event id", "error", "reason", "failed on", "failed at", "re-injected from"):
        table.add_column(column, overflow="fold")
    for letter in letters:
        failed_on = (
            f"{letter.origin}[{letter.header(SOURCE_PARTITION_HEADER)}]@{letter.header(SOURCE_OFFSET_HEADER)}"
        )
        table.add_row(
            letter.id,
            letter.event_id,
            letter.header(ERROR_CLASS_HEADER),
            letter.header(ERROR_HEADER),
            failed_on,
            letter.header(FAILED_AT_HEADER),
            letter.header(REINJECTED_FROM_HEADER),
        )
    return table


def add_dlq_command(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    dlq = commands.add_parser(
        "dlq", help="list dead letters with their reasons; re-inject chosen ones after a fix"
    )
    actions = dlq.add_subparsers(dest="dlq_action", required=True)
    listing = actions.add_parser("list", help="the dead letters of each consumed topic, with reasons")
    listing.add_argument(
        "--topic", action="append", choices=CONSUMED, help="only this topic (repeatable; default: all)"
    )
    again = actions.add_parser("reinject", help="produce dead letters again onto the topic they came from")
    again.add_argument("topic", choices=CONSUMED, help="the consumed topic whose dead letters to re-inject")
    again.add_argument("ids", nargs="*", metavar="ID", help="dead letter ids (partition:offset) from `list`")
    again.add_argument(
        "--all",
        action="store_true",
        help="every record dead-lettered on the topic, once each (the newest copy of one that failed again)",
    )
    for command in (listing, again):
        data_dir_option(command)
    dlq.set_defaults(handler=run_dlq)


def run_dlq(args: argparse.Namespace) -> int:
    settings = operator_settings(args.data_dir.resolve())
    try:
        return _run_dlq(args, settings)
    except (KafkaError, OSError) as exc:
        print(
            f"tierflow dlq: the broker at {settings.kafka_bootstrap_servers} did not answer ({exc});"
            " set KAFKA_BOOTSTRAP_SERVERS to reach it",
            file=sys.stderr,
        )
        return 1


def _run_dlq(args: argparse.Namespace, settings: Settings) -> int:
    if args.dlq_action == "list":
        topics: list[str] = args.topic or list(CONSUMED)
        Console().print(*[dead_letters_table(t, asyncio.run(read_dead_letters(settings, t))) for t in topics])
        return 0
    if bool(args.ids) == args.all:
        print("tierflow dlq reinject: give dead letter ids, or --all", file=sys.stderr)
        return 2
    try:
        letters = asyncio.run(reinject(settings, args.topic, None if args.all else args.ids))
    except UnknownDeadLetters as exc:
        print(f"tierflow dlq reinject: {exc}", file=sys.stderr)
        return 2
    print(f"re-injected {len(letters)} dead letter(s) onto {Topics.from_settings(settings).name(args.topic)}")
    return 0
