"""`tierflow`: run the whole stack, one service, or the set-up steps a deployment needs."""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import FrameType

from shared.kafka import ensure_topics
from shared.migrations import upgrade_all
from shared.settings import Settings
from shared.topics import Topics
from tierflow.stack import SERVICES, Stack, StackError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="tierflow", description="Real-time customer tiering for banks.")
    commands = parser.add_subparsers(dest="command", required=True)
    up = commands.add_parser("up", help="run everything on this machine, in the foreground")
    up.add_argument(
        "--data-dir",
        type=Path,
        default=Path(os.environ.get("TIERFLOW_DATA_DIR", ".tierflow")),
        help="where the database, logs and API key live (default: ./.tierflow)",
    )
    serve = commands.add_parser("serve", help="run one service (as containers do)")
    serve.add_argument("service", choices=SERVICES)
    simulate = commands.add_parser("simulate", help="generate a synthetic bank's events, deterministically")
    simulate.add_argument("--customers", type=int, default=1000)
    simulate.add_argument("--events-per-customer", type=float, default=20)
    simulate.add_argument("--days", type=int, default=365, help="length of the simulated history")
    simulate.add_argument(
        "--end", type=_aware, default=None, help="when the history ends (ISO time; default: today 00:00 UTC)"
    )
    simulate.add_argument("--seed", type=int, default=42)
    simulate.add_argument("--invalid-rate", type=float, default=0.0, help="share of extra invalid events")
    simulate.add_argument("--duplicate-rate", type=float, default=0.0, help="share of events sent twice")
    target = simulate.add_mutually_exclusive_group(required=True)
    target.add_argument("--out", type=Path, help="write JSON lines to this file")
    target.add_argument("--to-topic", action="store_true", help="produce straight to bank.events.v1")
    target.add_argument("--to-ingest", metavar="URL", help="POST batches to ingest at URL")
    simulate.add_argument("--key", default=os.environ.get("TIERFLOW_KEY", ""), help="API key for --to-ingest")
    simulate.add_argument("--rate", type=float, default=0, help="events per second (0: as fast as possible)")
    simulate.add_argument("--batch", type=int, default=1000)
    commands.add_parser("migrate", help="apply every service's database migrations")
    commands.add_parser("topics", help="create the contract's topics if missing")
    commands.add_parser(
        "replay", help="rebuild scoring state from the topics (stop the scoring workers first)"
    )
    args = parser.parse_args(argv)

    if args.command == "up":
        return run_up(args.data_dir.resolve())
    if args.command == "serve":
        return run_service(args.service)
    if args.command == "simulate":
        return run_simulation(args)
    if args.command == "migrate":
        asyncio.run(upgrade_all(Settings()))
        print("migrations applied")
        return 0
    if args.command == "replay":
        from services.scoring.replay import replay

        print(f"replay prepared: {asyncio.run(replay(Settings()))}; start scoring to rebuild")
        return 0
    settings = Settings()
    created = asyncio.run(ensure_topics(settings, Topics.from_settings(settings).all()))
    print(f"topics created: {', '.join(created) or 'none (all existed)'}")
    return 0


def run_simulation(args: argparse.Namespace) -> int:
    from tierflow import sinks
    from tierflow.simulate import Bank, events, with_faults

    bank = Bank(
        customers=args.customers,
        events_per_customer=args.events_per_customer,
        seed=args.seed,
        start=(args.end or _today()) - timedelta(days=args.days),
        days=args.days,
    )
    stream = with_faults(events(bank), args.invalid_rate, args.duplicate_rate, args.seed)
    if args.out is not None:
        with sinks.open_output(args.out) as out:
            tally = sinks.to_file(stream, out)
    elif args.to_topic:
        tally = asyncio.run(sinks.to_topic(stream, Settings(), args.rate, args.batch))
    else:
        tally = sinks.to_ingest(stream, args.to_ingest, args.key, args.rate, args.batch)
    print(f"sent {tally.sent:,} events ({tally.refused:,} refused) at {tally.rate():,.0f} events/s")
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


class _Stopping:
    requested = False

    def __call__(self, signum: int, _frame: FrameType | None) -> None:
        self.requested = True


def run_up(data_dir: Path) -> int:
    stopping = _Stopping()
    signal.signal(signal.SIGINT, stopping)
    signal.signal(signal.SIGTERM, stopping)
    stack = Stack(data_dir)
    try:
        print(f"Starting TierFlow (data in {data_dir}) ...", flush=True)
        settings = stack.start()
        _print_summary(stack, settings)
        while not stopping.requested:
            exited = stack.exited_service()
            if exited:
                print(f"{exited} stopped unexpectedly; see {stack.logs / (exited + '.log')}", file=sys.stderr)
                return 1
            time.sleep(0.3)
        return 0
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


def _print_summary(stack: Stack, settings: Settings) -> None:
    lines = ["", "TierFlow is up.", ""]
    for name in SERVICES:
        url = f"http://{settings.host}:{settings.port_of(name)}"
        lines.append(f"  {name:<11} {url}   (API docs: {url}/docs)")
    lines.append("")
    if stack.postgres is not None:
        lines.append(f"  PostgreSQL  embedded, port {stack.postgres.port}, data in {stack.postgres.pgdata}")
    else:
        lines.append("  PostgreSQL  from DATABASE_URL")
    if stack.broker is not None:
        lines.append(
            f"  Kafka       embedded broker at {stack.broker.bootstrap_servers} "
            "(memory only: topics start empty on each run)"
        )
    else:
        lines.append(f"  Kafka       {settings.kafka_bootstrap_servers}")
    if stack.api_key_file is not None:
        lines.append(f"  API key     {stack.api_key_file} (role admin)")
        lines.append(f'              curl -H "Authorization: Bearer $(cat {stack.api_key_file})" ...')
    else:
        lines.append("  API keys    from TIERFLOW_API_KEYS")
    lines += [f"  Logs        {stack.logs}/", "", "Press Ctrl-C to stop.", ""]
    print("\n".join(lines), flush=True)


if __name__ == "__main__":
    raise SystemExit(main())
