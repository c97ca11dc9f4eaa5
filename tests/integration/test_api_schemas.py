"""Every service's OpenAPI, fuzzed by schemathesis over real HTTP with an admin key: valid and
invalid input alike, no response is a 5xx and every response matches its documented schema."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.infra import ADMIN_KEY, Infra, ServiceProcess, all_services
from tierflow.stack import SERVICES

pytestmark = pytest.mark.integration
CHECKS = "not_a_server_error,response_schema_conformance,content_type_conformance"


@pytest.fixture(scope="module")
def services(infra: Infra) -> Iterator[dict[str, ServiceProcess]]:
    with all_services(infra, "fuzz") as started:
        yield started


@pytest.mark.parametrize("name", SERVICES)
def test_no_input_makes_a_service_fail_or_break_its_schema(
    services: dict[str, ServiceProcess], name: str, tmp_path: Path
) -> None:
    service = services[name]
    result = subprocess.run(
        [sys.executable, "-m", "schemathesis.cli", "--no-color", "run", f"{service.base_url}/openapi.json",
         "--checks", CHECKS, "--phases", "examples,coverage,fuzzing", "--max-examples", "25",
         "--seed", "7", "--workers", "1", "--request-timeout", "20",
         "--header", f"Authorization: Bearer {ADMIN_KEY}", "--report-dir", str(tmp_path)],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    failures = result.stdout[result.stdout.find("FAILURES") :]
    assert result.returncode == 0, failures[:12000] + result.stderr[-2000:]
    assert "No issues found" in result.stdout or "passed" in result.stdout.lower(), result.stdout[-3000:]
