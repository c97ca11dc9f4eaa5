"""`tierflow`: run the whole stack, one service, or the set-up steps a deployment needs."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TypeAlias

from shared.kafka import ensure_topics
from shared.migrations import upgrade_all
from shared.settings import Settings
from shared.topics import Topics
from tierflow.dlq import add_dlq_command
from tierflow.simulate import COHORT, Bank
from tierflow.stack import (
    PROCESSES,
    Stack,
    StackError,
    Stopping,
    data_dir_option,
    describe,
    hold,
    operator_settings,
)

# What `add_subparsers` returns; argparse gives it no public name.
Commands: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"
Handler: TypeAlias = Callable[[argparse.Namespace], int]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="tierflow", description="Real-time customer tiering for banks.")
    commands = parser.add_subparsers(dest="command", required=True)
    for add_command in (
        _add_up,
        _add_serve,
        _add_simulate,
        _add_demo,
        _add_migrate,
        _add_topics,
        _add_replay,
        _add_lag,
        add_dlq_command,
    ):
        add_command(commands)
    args = parser.parse_args(argv)
    handler: Handler = args.handler
    return handler(args)


def _add_up(commands: Commands) -> None:
    up = commands.add_parser("up", help="run everything on this machine, in the foreground")
    data_dir_option(up)
    up.set_defaults(handler=lambda args: run_up(args.data_dir.resolve()))


def _add_serve(commands: Commands) -> None:
    serve = commands.add_parser("serve", help="run one service (as containers do)")
    serve.add_argument("service", choices=PROCESSES)
    serve.set_defaults(handler=lambda args: run_service(args.service))


def _add_simulate(commands: Commands) -> None:
    simulate = commands.add_parser("simulate", help="generate a synthetic bank's events, deterministically")
    _bank_options(simulate, customers=1000, events_per_customer=20)
    simulate.add_argument("--invalid-rate", type=float, default=0.0, help="share of extra invalid events")
    simulate.add_argument("--duplicate-rate", type=float, default=0.0, help="share of records sent twice")
    target = simulate.add_mutually_exclusive_group(required=True)
    target.add_argument("--out", type=Path, help="write JSON lines to this file")
    target.add_argument("--to-topic", action="store_true", help="produce straight to bank.events.v1")
    target.add_argument("--to-ingest", metavar="URL", help="POST batches to ingest at URL")
    simulate.add_argument(
        "--feedback", metavar="URL", help="POST surveys and complaints to the feedback service at URL"
    )
    simulate.add_argument("--key", default=os.environ.get("TIERFLOW_KEY", ""), help="API key for the URLs")
    simulate.add_argument("--rate", type=float, default=0, help="records per second (0: as fast as possible)")
    simulate.add_argument(
        "--duration",
        type=float,
        default=0,
        help="compress the simulated history into this many seconds (the whole bank in one cohort)",
    )
    simulate.add_argument("--batch", type=int, default=1000)
    simulate.add_argument(
        "--cohort", type=int, default=COHORT, help="customers generated together (memory grows with it)"
    )
    simulate.set_defaults(handler=run_simulation)


def _add_demo(commands: Commands) -> None:
    demo = commands.add_parser("demo", help="bring TierFlow up, run a simulated bank's year through it")
    data_dir_option(demo)
    _bank_options(demo, customers=2000, events_per_customer=40)
    demo.add_argument(
        "--duration",
        type=float,
        default=120,
        help="compress the simulated year into this many seconds (0: as fast as it goes)",
    )
    demo.add_argument("--exit", action="store_true", help="stop after the summary instead of staying up")
    demo.set_defaults(handler=_demo)


def _add_migrate(commands: Commands) -> None:
    migrate = commands.add_parser("migrate", help="apply every service's database migrations")
    data_dir_option(migrate)
    migrate.set_defaults(handler=_migrate)


def _add_topics(commands: Commands) -> None:
    topics = commands.add_parser("topics", help="create the contract's topics if missing")
    data_dir_option(topics)
    topics.set_defaults(handler=_topics)


def _add_replay(commands: Commands) -> None:
    replay = commands.add_parser(
        "replay", help="rebuild scoring state from the topics (stop the scoring workers first)"
    )
    data_dir_option(replay)
    replay.set_defaults(handler=_replay)


def _add_lag(commands: Commands) -> None:
    lag = commands.add_parser(
        "lag", help="records each worker's consumer group has yet to process, as the broker sees it"
    )
    data_dir_option(lag)
    lag.set_defaults(handler=_lag)


def _demo(args: argparse.Namespace) -> int:
    from tierflow.demo import run_demo

    return run_demo(args, _bank(args, cohort=args.customers))


def _migrate(args: argparse.Namespace) -> int:
    asyncio.run(upgrade_all(operator_settings(args.data_dir.resolve())))
    print("migrations applied")
    return 0


def _topics(args: argparse.Namespace) -> int:
    settings = operator_settings(args.data_dir.resolve())
    created = asyncio.run(ensure_topics(settings, Topics.from_settings(settings).all()))
    print(f"topics created: {', '.join(created) or 'none (all existed)'}")
    return 0


def _replay(args: argparse.Namespace) -> int:
    from services.scoring.replay import ReplayRefused, replay

    try:
        prepared = asyncio.run(replay(operator_settings(args.data_dir.resolve())))
    except ReplayRefused as refused:
        print(refused, file=sys.stderr)
        return 2
    print(f"replay prepared: {prepared}; start scoring to rebuild")
    return 0


def _lag(args: argparse.Namespace) -> int:
    from rich.console import Console

    from tierflow.lag import lag_report

    Console().print(*asyncio.run(lag_report(operator_settings(args.data_dir.resolve()))))
    return 0


def _bank_options(parser: argparse.ArgumentParser, customers: int, events_per_customer: float) -> None:
    parser.add_argument("--customers", type=int, default=customers)
    parser.add_argument(
        "--events-per-customer", type=float, default=events_per_customer, help="a year's average"
    )
    parser.add_argument("--days", type=int, default=365, help="length of the simulated history")
    parser.add_argument(
        "--end", type=_aware, default=None, help="when the history ends (ISO time; default: today 00:00 UTC)"
    )
    parser.add_argument("--branches", type=int, default=20)
    parser.add_argument("--seed", type=int, default=42)


def _bank(args: argparse.Namespace, cohort: int) -> Bank:
    return Bank(
        customers=args.customers,
        events_per_customer=args.events_per_customer,
        seed=args.seed,
        start=(args.end or _today()) - timedelta(days=args.days),
        days=args.days,
        branches=args.branches,
        cohort=max(1, cohort),
    )


def run_simulation(args: argparse.Namespace) -> int:
    from tierflow import sinks
    from tierflow.simulate import records, with_faults

    # Compressed time needs one time order across the whole bank.
    bank = _bank(args, cohort=args.customers if args.duration > 0 else args.cohort)
    stream = with_faults(records(bank), args.invalid_rate, args.duplicate_rate, args.seed)
    compression = bank.days * 86_400 / args.duration if args.duration > 0 else 0
    pacer = sinks.Pacer(args.rate, compression, bank.start)
    feedback = sinks.FeedbackClient(args.feedback, args.key)
    if args.out is not None:
        with sinks.open_output(args.out) as out:
            tally = sinks.to_file(stream, out)
    elif args.to_topic:
        tally = asyncio.run(sinks.to_topic(stream, Settings(), pacer, args.batch, feedback))
    else:
        with sinks.api_client(args.to_ingest, args.key) as client:
            tally = sinks.to_ingest(stream, client, pacer, args.batch, feedback)
    print(tally.summary())
    return 0


def _aware(value: str) -> datetime:
    moment = datetime.fromisoformat(value)
    if moment.tzinfo is None:
        raise argparse.ArgumentTypeError("give a time zone offset, e.g. 2026-11-01T00:00:00+00:00")
    return moment


def _today() -> datetime:
    # A whole day as the default end: the same seed gives the same stream all day.
    return datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


def run_service(service: str) -> int:
    import runpy

    runpy.run_module(f"services.{service}", run_name="__main__")
    return 0


def run_up(data_dir: Path) -> int:
    stopping = Stopping.install()
    stack = Stack(data_dir)
    try:
        print(f"Starting TierFlow (data in {data_dir}) ...", flush=True)
        settings = stack.start()
        print(describe(stack, settings), flush=True)
        return hold(stack, stopping)
    except StackError as exc:
        print(f"tierflow up failed: {exc}", file=sys.stderr)
        return 1
    except RuntimeError as exc:
        print(f"tierflow up failed: {exc}", file=sys.stderr)
        return 1
    finally:
        print("Stopping TierFlow ...", flush=True)
        stack.stop()
        print("Stopped.", flush=True)


if __name__ == "__main__":
    raise SystemExit(main())
