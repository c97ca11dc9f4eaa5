"""What every end-to-end test needs: free ports for the whole stack and a scratch data directory."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tierflow.processes import free_port

SERVICES = ("ingest", "scoring", "engagement", "feedback", "console")


@pytest.fixture
def ports() -> dict[str, int]:
    return {name: free_port() for name in (*SERVICES, "postgres", "broker")}


@pytest.fixture
def data_dir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="tfe-", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def environment(ports: dict[str, int]) -> dict[str, str]:
    """A user's environment with nothing of TierFlow's set, except the ports to use."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("TIERFLOW_") and k not in ("DATABASE_URL", "KAFKA_BOOTSTRAP_SERVERS")
    }
    for service in SERVICES:
        env[f"TIERFLOW_{service.upper()}_PORT"] = str(ports[service])
    env["TIERFLOW_EMBEDDED_POSTGRES_PORT"] = str(ports["postgres"])
    env["TIERFLOW_EMBEDDED_BROKER_PORT"] = str(ports["broker"])
    return env


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def get_json(url: str, key: str, **params: str) -> Any:
    """The body of a GET made with the key, which must answer 200."""
    response = httpx.get(url, params=params, headers=bearer(key), timeout=30)
    assert response.status_code == 200, response.text
    return response.json()
