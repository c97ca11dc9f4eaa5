"""`tierflow up` as a new user runs it: one command, the printed key, an event on the topic."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests import factories
from tests.e2e.conftest import bearer, environment
from tests.infra import REPO
from tests.kafka_reader import read_messages
from tierflow.processes import port_is_open

pytestmark = pytest.mark.e2e


@dataclass
class Up:
    process: subprocess.Popen[str]
    ports: dict[str, int]
    output: list[str]

    def url(self, service: str) -> str:
        return f"http://127.0.0.1:{self.ports[service]}"


def start_up(data_dir: Path, ports: dict[str, int]) -> Up:
    process = subprocess.Popen(
        [sys.executable, "-m", "tierflow.cli", "up", "--data-dir", str(data_dir)],
        cwd=REPO,
        env=environment(ports),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    output: list[str] = []
    assert process.stdout is not None
    deadline = time.monotonic() + 120
    for line in process.stdout:
        output.append(line)
        if "Press Ctrl-C to stop." in line or time.monotonic() > deadline:
            break
    assert "TierFlow is up." in "".join(output), "".join(output)
    return Up(process, ports, output)


def stop_up(up: Up) -> int:
    up.process.send_signal(signal.SIGINT)
    code = up.process.wait(timeout=90)
    return code


def test_one_command_runs_the_stack_and_a_posted_event_reaches_the_topic(
    data_dir: Path, ports: dict[str, int]
) -> None:
    up = start_up(data_dir, ports)
    try:
        key_file = data_dir / "api-key"
        assert str(key_file) in "".join(up.output)
        assert key_file.stat().st_mode & 0o777 == 0o600
        key = key_file.read_text().strip()
        rm_keys = data_dir / "rm-keys"
        assert rm_keys.stat().st_mode & 0o777 == 0o600
        bindings = rm_keys.read_text().splitlines()
        assert bindings
        assert all(re.fullmatch(r"[\w-]{20,}=rm:BR\d{3}-RM\d+@BR\d{3}", line) for line in bindings)
        assert f"http://127.0.0.1:{ports['console']}/" in "".join(up.output)

        for service in ("ingest", "scoring", "engagement", "feedback", "console"):
            assert httpx.get(f"{up.url(service)}/readyz", timeout=10).status_code == 200
            assert httpx.get(f"{up.url(service)}/openapi.json", timeout=10).status_code == 200

        event = factories.transaction("C-E2E-1", amount="99.90")
        assert httpx.post(f"{up.url('ingest')}/v1/events", json=event, timeout=10).status_code == 401
        accepted = httpx.post(f"{up.url('ingest')}/v1/events", json=event, headers=bearer(key), timeout=30)
        assert accepted.status_code == 202, accepted.text

        messages = read_messages(f"127.0.0.1:{ports['broker']}", "bank.events.v1", 1)
        assert len(messages) == 1
        assert messages[0].key == b"C-E2E-1"
        assert messages[0].headers["content-type"] == b"application/cloudevents+json"
        published = json.loads(messages[0].value)
        assert published["id"] == event["id"]
        assert published["data"]["amount"] == "99.90"
    finally:
        assert stop_up(up) == 0

    for port in ports.values():
        assert not port_is_open("127.0.0.1", port), f"port {port} still open after stop"


def test_the_database_and_key_survive_a_restart_with_the_same_data_dir(
    data_dir: Path, ports: dict[str, int]
) -> None:
    up = start_up(data_dir, ports)
    key = (data_dir / "api-key").read_text()
    rm_keys = (data_dir / "rm-keys").read_text()
    psql = _psql(data_dir, ports["postgres"])
    subprocess.run(
        [
            *psql,
            "-c",
            "CREATE TABLE scoring.restart_marker (note text);"
            "INSERT INTO scoring.restart_marker VALUES ('kept')",
        ],
        check=True,
        capture_output=True,
    )
    assert stop_up(up) == 0

    again = start_up(data_dir, ports)
    try:
        assert (data_dir / "api-key").read_text() == key
        assert (data_dir / "rm-keys").read_text() == rm_keys
        marker = subprocess.run(
            [*psql, "-Atc", "SELECT note FROM scoring.restart_marker"],
            check=True,
            capture_output=True,
            text=True,
        )
        assert marker.stdout.strip() == "kept"
        _operator_commands_reach_the_running_stack(data_dir, ports)
    finally:
        assert stop_up(again) == 0


def _operator_commands_reach_the_running_stack(data_dir: Path, ports: dict[str, int]) -> None:
    """Run beside `tierflow up`, with nothing but the same data dir and ports in the environment."""
    for command in (["lag"], ["dlq", "list"], ["migrate"]):
        done = subprocess.run(
            [sys.executable, "-m", "tierflow.cli", *command, "--data-dir", str(data_dir)],
            cwd=REPO,
            env=environment(ports),
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, (command, done.stdout, done.stderr)
        if command == ["lag"]:
            assert "scoring" in done.stdout, done.stdout
            assert "bank.events.v1" in done.stdout, done.stdout


def _psql(data_dir: Path, port: int) -> list[str]:
    from tierflow.embedded import _postgres_bin

    password = (data_dir / "postgres-password").read_text().strip()
    url = f"postgresql://tierflow:{password}@127.0.0.1:{port}/tierflow"
    return [str(_postgres_bin() / "psql"), url]
