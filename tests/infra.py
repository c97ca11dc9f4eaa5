"""Real PostgreSQL and a real Kafka-protocol broker for tests.

Chosen in this order: the ones named by DATABASE_URL / KAFKA_BOOTSTRAP_SERVERS; else
containers, when a Docker engine answers; else the embedded servers `tierflow up` uses.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx

from shared.kafka import ensure_topics
from shared.settings import Settings
from shared.topics import Topics
from tierflow.embedded import EmbeddedBroker, EmbeddedPostgres
from tierflow.processes import free_port, spawn, stop

ADMIN_KEY = "test-admin-key-0001"
INGEST_KEY = "test-ingest-key-0002"
OPS_KEY = "test-ops-key-0003"
RM_KEY = "test-rm-key-0004"
# RMs with keys bound to them, by the branch they work in; and an ops key that sees branch B2 only.
RM_BRANCHES = {"RM-1": "B1", "RM-7": "B1", "RM-9": "B1", "RM-21": "B2"}
BOUND_RM_KEYS = {rm_id: f"test-bound-key-{rm_id.lower()}" for rm_id in RM_BRANCHES}
B2_OPS_KEY = "test-ops-b2-key-0005"
API_KEYS = ";".join(
    [
        f"{ADMIN_KEY}=admin;{INGEST_KEY}=ingest;{OPS_KEY}=ops;{RM_KEY}=rm;{B2_OPS_KEY}=ops@B2",
        *(f"{BOUND_RM_KEYS[rm_id]}=rm:{rm_id}@{branch}" for rm_id, branch in RM_BRANCHES.items()),
    ]
)
REPO = Path(__file__).resolve().parent.parent
# How long a service may take to answer /healthz once spawned: a few seconds alone, over
# half a minute on a machine busy with other runs.
STARTUP_TIMEOUT_S = 60


@dataclass
class Infra:
    database_url: str
    bootstrap_servers: str
    workdir: Path
    broker: EmbeddedBroker | None = None

    def env(self, **overrides: str) -> dict[str, str]:
        env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith("TIERFLOW_") and key not in ("DATABASE_URL", "KAFKA_BOOTSTRAP_SERVERS")
        }
        env.update(
            DATABASE_URL=self.database_url,
            KAFKA_BOOTSTRAP_SERVERS=self.bootstrap_servers,
            TIERFLOW_API_KEYS=API_KEYS,
            TIERFLOW_LOG_LEVEL="INFO",
            # The simulated streams reach back to 2025: accept (and deduplicate) ten years.
            TIERFLOW_APPLIED_EVENTS_HORIZON="P3650D",
            TIERFLOW_APPLIED_EVENTS_PARTITION="P365D",
        )
        env.update(overrides)
        return env

    def settings(self, **overrides: str) -> Settings:
        with patched_environ(self.env(**overrides)):
            return Settings()


@contextmanager
def patched_environ(env: dict[str, str]) -> Iterator[None]:
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(env)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def docker_engine_reachable() -> bool:
    if shutil.which("docker") is None:
        return False
    try:
        return subprocess.run(["docker", "info"], capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


@contextmanager
def provide_infra() -> Iterator[Infra]:
    workdir = Path(tempfile.mkdtemp(prefix="tft-", dir="/tmp"))
    with ExitStack() as cleanup:
        cleanup.callback(shutil.rmtree, workdir, True)
        database_url = os.environ.get("DATABASE_URL")
        bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
        broker = None
        use_docker = (database_url is None or bootstrap is None) and docker_engine_reachable()
        if database_url is None:
            database_url = cleanup.enter_context(_postgres(workdir, use_docker))
        if bootstrap is None:
            bootstrap, broker = cleanup.enter_context(_broker(workdir, use_docker))
        yield Infra(database_url, bootstrap, workdir, broker)


@contextmanager
def _postgres(workdir: Path, use_docker: bool) -> Iterator[str]:
    if use_docker:
        from testcontainers.postgres import PostgresContainer

        with PostgresContainer("postgres:17", driver="asyncpg") as container:
            yield container.get_connection_url()
        return
    server = EmbeddedPostgres(workdir, free_port(), workdir / "postgres.log")
    server.start()
    try:
        yield server.url()
    finally:
        server.stop()


@contextmanager
def _broker(workdir: Path, use_docker: bool) -> Iterator[tuple[str, EmbeddedBroker | None]]:
    if use_docker:
        from testcontainers.kafka import KafkaContainer

        with KafkaContainer().with_kraft() as container:
            yield container.get_bootstrap_server(), None
        return
    broker = EmbeddedBroker(free_port(), workdir / "broker.log")
    broker.start()
    try:
        yield broker.bootstrap_servers, broker
    finally:
        broker.stop()


def create_topics(settings: Settings) -> None:
    asyncio.run(ensure_topics(settings, Topics.from_settings(settings).all(), partitions=4))


@dataclass
class ServiceProcess:
    """A TierFlow service running as its own process, reached over real HTTP."""

    name: str
    base_url: str
    log_file: Path
    env: dict[str, str]
    process: subprocess.Popen[bytes] | None = field(default=None)

    def start(self, timeout_s: float = STARTUP_TIMEOUT_S) -> None:
        self.spawn()
        self.wait_healthy(timeout_s)

    def spawn(self) -> None:
        self.process = spawn(
            [sys.executable, "-m", f"services.{self.name}"], log_file=self.log_file, env=self.env, cwd=REPO
        )

    def wait_healthy(self, timeout_s: float) -> None:
        assert self.process is not None, f"{self.name} was not spawned"
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited: {self.log_file.read_text()[-3000:]}")
            try:
                if httpx.get(f"{self.base_url}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                time.sleep(0.1)
        raise RuntimeError(f"{self.name} did not become healthy: {self.log_file.read_text()[-3000:]}")

    def stop(self) -> None:
        if self.process is not None:
            stop(self.process)
            self.process = None

    def logs(self) -> str:
        return self.log_file.read_text(errors="replace")


def start_service(infra: Infra, name: str, **overrides: str) -> ServiceProcess:
    (service,) = start_services(infra, [(name, overrides)])
    return service


def start_services(infra: Infra, services: Sequence[tuple[str, Mapping[str, str]]]) -> list[ServiceProcess]:
    """Each (service, environment overrides) as a process of its own, all started at once, as
    `tierflow up` starts them: their start-ups overlap instead of adding up."""
    started: list[ServiceProcess] = []
    for name, overrides in services:
        port = free_port()
        env = infra.env(**{f"TIERFLOW_{name.upper()}_PORT": str(port), **overrides})
        started.append(
            ServiceProcess(name, f"http://127.0.0.1:{port}", infra.workdir / f"{name}-{port}.log", env)
        )
    try:
        for service in started:
            service.spawn()
        # Each is given the time of one start-up per service starting alongside it.
        for service in started:
            service.wait_healthy(STARTUP_TIMEOUT_S * len(started))
    except BaseException:
        stop_services(started)
        raise
    return started


def stop_services(services: Iterable[ServiceProcess]) -> None:
    """Stops every one at once: each has its grace period to shut down, not the sum of theirs."""
    running = [service for service in services if service.process is not None]
    with ThreadPoolExecutor(max(len(running), 1)) as pool:
        list(pool.map(ServiceProcess.stop, running))


@contextmanager
def all_services(infra: Infra, name: str, **overrides: str) -> Iterator[dict[str, ServiceProcess]]:
    """The four services as processes on a database and topics of their own, named `name`."""
    from tierflow.stack import SERVICES

    prefix = f"{name}."
    create_topics(infra.settings(TIERFLOW_TOPIC_PREFIX=prefix))
    database = fresh_database(infra, f"tierflow_{name}")
    environment = {"TIERFLOW_TOPIC_PREFIX": prefix, "DATABASE_URL": database, **overrides}
    started = dict(zip(SERVICES, start_services(infra, [(s, environment) for s in SERVICES]), strict=True))
    try:
        yield started
    finally:
        stop_services(started.values())


def fresh_database(infra: Infra, name: str) -> str:
    """A new, migrated database on the same server: one per run that must not share state."""
    from sqlalchemy.engine import make_url

    from shared.migrations import upgrade_all

    url = make_url(infra.database_url)

    async def create() -> None:
        import asyncpg

        connection = await asyncpg.connect(
            host=url.host, port=url.port, user=url.username, password=url.password, database=url.database
        )
        try:
            await connection.execute(f'CREATE DATABASE "{name}"')
        finally:
            await connection.close()

    asyncio.run(create())
    database_url = url.set(database=name).render_as_string(hide_password=False)
    settings = Infra(database_url, infra.bootstrap_servers, infra.workdir).settings()
    asyncio.run(upgrade_all(settings))
    return database_url


def wait_until(predicate: Callable[[], bool], timeout_s: float, what: str, interval_s: float = 0.1) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval_s)
    raise AssertionError(f"timed out after {timeout_s:.0f}s waiting for {what}")


def fetch_rows(database_url: str, sql: str, *args: Any) -> list[asyncpg.Record]:
    """Rows of one query, on a connection of its own: tests look at the database as it is."""
    from sqlalchemy.engine import make_url

    async def fetch() -> list[asyncpg.Record]:
        url = make_url(database_url)
        connection = await asyncpg.connect(
            host=url.host, port=url.port, user=url.username, password=url.password, database=url.database
        )
        try:
            return list(await connection.fetch(sql, *args))
        finally:
            await connection.close()

    return asyncio.run(fetch())
