"""The whole of TierFlow on one machine: database, broker, topics, migrations, four services, console."""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

import httpx

from shared.kafka import ensure_topics
from shared.migrations import upgrade_all
from shared.settings import Settings
from shared.topics import Topics
from tierflow.embedded import EmbeddedBroker, EmbeddedPostgres
from tierflow.processes import port_is_open, spawn, stop
from tierflow.simulate import Bank, Rm, branches

SERVICES = ("ingest", "scoring", "engagement", "feedback")
# The web console runs beside the services and reaches them only over their HTTP APIs.
CONSOLE = "console"
PROCESSES = (*SERVICES, CONSOLE)
RM_KEYS_FILE = "rm-keys"
DATABASE_ENV = ("DATABASE_URL", "TIERFLOW_DATABASE_URL")
KAFKA_ENV = ("KAFKA_BOOTSTRAP_SERVERS", "TIERFLOW_KAFKA_BOOTSTRAP_SERVERS")
DEFAULT_EMBEDDED_POSTGRES_PORT = 55432
DEFAULT_BROKER_PORT = 9092


class StackError(RuntimeError):
    pass


def settings_from(env: dict[str, str]) -> Settings:
    """Settings read from `env` as if it were the whole environment."""
    saved = dict(os.environ)
    try:
        os.environ.clear()
        os.environ.update(env)
        return Settings()
    finally:
        os.environ.clear()
        os.environ.update(saved)


def data_dir_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=Path(os.environ.get("TIERFLOW_DATA_DIR", ".tierflow")),
        help="where the database, logs and API key live (default: ./.tierflow)",
    )


def operator_settings(data_dir: Path) -> Settings:
    """Settings for an operator command run beside `tierflow up` with the same data directory.

    `tierflow up` makes the embedded database's password and picks its ports from the
    environment; a command run next to it must reach the same database and broker without the
    operator copying the password. A database or broker named in the environment still wins.
    """
    env = dict(os.environ)
    postgres_port = int(env.get("TIERFLOW_EMBEDDED_POSTGRES_PORT", DEFAULT_EMBEDDED_POSTGRES_PORT))
    postgres = EmbeddedPostgres(data_dir, postgres_port, data_dir / "logs" / "postgres.log")
    if not any(name in env for name in DATABASE_ENV) and postgres.password_file.exists():
        env["DATABASE_URL"] = postgres.url()
    if not any(name in env for name in KAFKA_ENV):
        broker_port = int(env.get("TIERFLOW_EMBEDDED_BROKER_PORT", DEFAULT_BROKER_PORT))
        broker = EmbeddedBroker(broker_port, data_dir / "logs" / "broker.log")
        env["KAFKA_BOOTSTRAP_SERVERS"] = broker.bootstrap_servers
    return settings_from(env)


@dataclass
class Stack:
    data_dir: Path
    env: dict[str, str] = field(default_factory=lambda: dict(os.environ))
    postgres: EmbeddedPostgres | None = None
    broker: EmbeddedBroker | None = None
    services: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    api_key_file: Path | None = None
    # The RMs of the simulated bank the demo registers; each gets a key bound to them.
    rms: tuple[Rm, ...] = field(default_factory=lambda: demo_rms(Bank(0, 0)))
    rm_key_file: Path | None = None

    @property
    def logs(self) -> Path:
        return self.data_dir / "logs"

    def start(self) -> Settings:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._start_database()
        self._start_broker()
        self._configure_api_key()
        settings = self.settings()
        asyncio.run(self._prepare(settings))
        self._start_services(settings)
        return settings

    def settings(self) -> Settings:
        return settings_from(self.env)

    def stop(self) -> None:
        for process in reversed(list(self.services.values())):
            stop(process)
        self.services.clear()
        if self.broker is not None:
            self.broker.stop()
        if self.postgres is not None:
            self.postgres.stop()

    def exited_service(self) -> str | None:
        return next((name for name, p in self.services.items() if p.poll() is not None), None)

    def _start_database(self) -> None:
        if any(name in self.env for name in DATABASE_ENV):
            return
        port = int(self.env.get("TIERFLOW_EMBEDDED_POSTGRES_PORT", DEFAULT_EMBEDDED_POSTGRES_PORT))
        self.postgres = EmbeddedPostgres(self.data_dir, port, self.logs / "postgres.log")
        self.postgres.start()
        self.env["DATABASE_URL"] = self.postgres.url()

    def _start_broker(self) -> None:
        if any(name in self.env for name in KAFKA_ENV):
            return
        port = int(self.env.get("TIERFLOW_EMBEDDED_BROKER_PORT", DEFAULT_BROKER_PORT))
        self.broker = EmbeddedBroker(port, self.logs / "broker.log")
        self.broker.start()
        self.env["KAFKA_BOOTSTRAP_SERVERS"] = self.broker.bootstrap_servers

    def _configure_api_key(self) -> None:
        if self.env.get("TIERFLOW_API_KEYS", "").strip():
            return
        # Nothing is ever open: with no keys configured, one admin key is made and kept.
        self.api_key_file = self.data_dir / "api-key"
        if not self.api_key_file.exists():
            self.api_key_file.write_text(secrets.token_urlsafe(32) + "\n")
        self.api_key_file.chmod(0o600)
        entries = [f"{self.api_key_file.read_text().strip()}=admin"]
        self.rm_key_file = self.data_dir / RM_KEYS_FILE
        entries += rm_key_entries(self.rm_key_file, self.rms)
        self.env["TIERFLOW_API_KEYS"] = ";".join(entries)

    async def _prepare(self, settings: Settings) -> None:
        await ensure_topics(settings, Topics.from_settings(settings).all())
        await upgrade_all(settings)

    def _start_services(self, settings: Settings) -> None:
        for name in PROCESSES:
            port = settings.port_of(name)
            if port_is_open(settings.host, port):
                raise StackError(f"port {port} for {name} is taken; set TIERFLOW_{name.upper()}_PORT")
        for name in PROCESSES:
            self.services[name] = spawn(
                [sys.executable, "-m", f"services.{name}"], log_file=self.logs / f"{name}.log", env=self.env
            )
        for name in PROCESSES:
            self._wait_healthy(name, f"http://{settings.host}:{settings.port_of(name)}/healthz")

    def _wait_healthy(self, name: str, url: str, timeout_s: float = 60) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.services[name].poll() is not None:
                raise StackError(f"{name} exited during start-up; see {self.logs / (name + '.log')}")
            try:
                if httpx.get(url, timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        raise StackError(f"{name} did not answer {url} within {timeout_s:.0f}s")


def demo_rms(bank: Bank) -> tuple[Rm, ...]:
    return tuple(rm for branch in branches(bank) for rm in branch.rms)


def rm_key_entries(path: Path, rms: tuple[Rm, ...]) -> list[str]:
    """`KEY=rm:RM_ID@BRANCH` for each RM, kept in `path` (mode 0600): a key made once stays."""
    kept: dict[str, str] = {}
    if path.exists():
        for line in path.read_text().splitlines():
            key, _, binding = line.strip().partition("=")
            if key and binding:
                kept[binding] = key
    entries = [f"{kept.get(binding) or secrets.token_urlsafe(32)}={binding}" for binding in _bindings(rms)]
    path.write_text("".join(entry + "\n" for entry in entries))
    path.chmod(0o600)
    return entries


def _bindings(rms: tuple[Rm, ...]) -> list[str]:
    return [f"rm:{rm.rm_id}@{rm.branch_id}" for rm in rms]


class Stopping:
    """Set by Ctrl-C or SIGTERM; the foreground commands poll it."""

    requested = False

    def __call__(self, signum: int, _frame: FrameType | None) -> None:
        self.requested = True

    @classmethod
    def install(cls) -> Stopping:
        stopping = cls()
        signal.signal(signal.SIGINT, stopping)
        signal.signal(signal.SIGTERM, stopping)
        return stopping


def hold(stack: Stack, stopping: Stopping) -> int:
    """Keep the stack up until asked to stop; 1 if a service died on its own."""
    while not stopping.requested:
        exited = stack.exited_service()
        if exited:
            print(f"{exited} stopped unexpectedly; see {stack.logs / (exited + '.log')}", file=sys.stderr)
            return 1
        time.sleep(0.3)
    return 0


def sign_in_lines(stack: Stack, settings: Settings) -> list[str]:
    url = f"http://{settings.host}:{settings.port_of(CONSOLE)}/"
    lines = [f"  Console     {url}"]
    if stack.api_key_file is not None:
        lines.append(f"              as admin: sign in with the key in {stack.api_key_file}")
    if stack.rm_key_file is not None and stack.rms:
        first = stack.rms[0]
        lines.append(
            f"              as RM {first.rm_id} ({first.branch_id}): the key before"
            f" '=rm:{first.rm_id}@{first.branch_id}' in {stack.rm_key_file}"
        )
    return lines


def describe(stack: Stack, settings: Settings) -> str:
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
    lines += ["", *sign_in_lines(stack, settings)]
    lines += [f"  Logs        {stack.logs}/", "", "Press Ctrl-C to stop.", ""]
    return "\n".join(lines)
