"""docker-compose.yml cannot run here; it is kept correct by reading it against the code."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from shared.settings import Settings
from tests.settings_env import setting_env_names
from tierflow.stack import PROCESSES

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    return loaded


def test_every_tierflow_service_runs_one_of_our_services_with_a_health_check(compose: dict[str, Any]) -> None:
    services = compose["services"]
    for name in PROCESSES:
        service = services[name]
        assert service["command"] == ["tierflow", "serve", name]
        port = Settings().port_of(name)
        assert service["ports"] == [f"{port}:{port}"]
        assert f"127.0.0.1:{port}/readyz" in " ".join(service["healthcheck"]["test"])
        assert service["depends_on"]["init"]["condition"] == "service_completed_successfully"


def test_every_environment_variable_is_a_setting(compose: dict[str, Any]) -> None:
    known = setting_env_names()
    for name, service in compose["services"].items():
        if name in ("kafka", "postgres"):
            continue
        unknown = set(service.get("environment", {})) - known
        assert not unknown, f"{name} sets variables no setting reads: {unknown}"


def test_every_setting_value_in_compose_parses(
    compose: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    environment = dict(compose["services"]["ingest"]["environment"])
    environment["TIERFLOW_API_KEYS"] = "compose-key=admin"
    for key, value in environment.items():
        monkeypatch.setenv(key, str(value))
    settings = Settings()
    assert settings.kafka_bootstrap_servers == "kafka:9092"
    assert settings.kafka_enable_idempotence


def test_the_init_step_creates_topics_and_migrates_before_services_start(compose: dict[str, Any]) -> None:
    init = compose["services"]["init"]
    assert "tierflow topics" in init["command"][-1]
    assert "tierflow migrate" in init["command"][-1]
    assert init["depends_on"]["kafka"]["condition"] == "service_healthy"
    assert init["depends_on"]["postgres"]["condition"] == "service_healthy"


def test_real_apache_kafka_runs_in_kraft_mode(compose: dict[str, Any]) -> None:
    kafka = compose["services"]["kafka"]
    assert kafka["image"].startswith("apache/kafka:")
    assert "controller" in kafka["environment"]["KAFKA_PROCESS_ROLES"]
    assert kafka["environment"]["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"
    assert "healthcheck" in kafka
    assert "healthcheck" in compose["services"]["postgres"]


def test_the_image_installs_the_package_and_runs_unprivileged() -> None:
    dockerfile = (REPO / "Dockerfile").read_text()
    assert re.search(r"^RUN pip install \.", dockerfile, re.M)
    assert re.search(r"^USER tierflow$", dockerfile, re.M)
    for folder in ("shared", "services", "tierflow"):
        assert f"COPY {folder} ./{folder}" in dockerfile
