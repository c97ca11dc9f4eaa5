"""Every endpoint of every service, called with no key, a bad key and each role's key over real
HTTP: only the contract's roles get through (`ingest` writes events and feedback, `ops`
reads, `rm` works the outreach queue, `admin` everything plus policies and overrides)."""

from __future__ import annotations

import re
from collections.abc import Iterator

import httpx
import pytest

from tests.infra import (
    ADMIN_KEY,
    INGEST_KEY,
    OPS_KEY,
    RM_KEY,
    Infra,
    ServiceProcess,
    create_topics,
    fresh_database,
    start_service,
)
from tierflow.stack import SERVICES

pytestmark = pytest.mark.integration
KEYS = {"ingest": INGEST_KEY, "ops": OPS_KEY, "rm": RM_KEY, "admin": ADMIN_KEY}
OPEN = {"/healthz", "/readyz", "/metrics", "/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc"}
READ = frozenset({"ops", "rm"})

# Who may call what, besides admin (who may call everything).
ALLOWED: dict[tuple[str, str, str], frozenset[str]] = {
    ("ingest", "POST", "/v1/events"): frozenset({"ingest"}),
    ("ingest", "PUT", "/v1/customers/{customer_id}/profile"): frozenset({"ingest"}),
    ("scoring", "GET", "/v1/customers/{customer_id}"): frozenset({"ops"}),
    ("scoring", "GET", "/v1/customers/{customer_id}/tier-history"): frozenset({"ops"}),
    ("scoring", "GET", "/v1/customers"): frozenset({"ops"}),
    ("scoring", "GET", "/v1/tiers/distribution"): frozenset({"ops"}),
    ("scoring", "GET", "/v1/tiers/migrations"): frozenset({"ops"}),
    ("scoring", "GET", "/v1/policies"): frozenset({"ops"}),
    ("scoring", "GET", "/v1/policies/{version}"): frozenset({"ops"}),
    ("scoring", "POST", "/v1/policies"): frozenset(),
    ("scoring", "POST", "/v1/policies/simulate"): frozenset(),
    ("scoring", "POST", "/v1/policies/{version}/simulate"): frozenset(),
    ("scoring", "POST", "/v1/policies/{version}/activate"): frozenset(),
    ("scoring", "PUT", "/v1/customers/{customer_id}/override"): frozenset(),
    ("scoring", "DELETE", "/v1/customers/{customer_id}/override"): frozenset(),
    ("engagement", "GET", "/v1/outreach"): READ,
    ("engagement", "GET", "/v1/outreach/stats"): READ,
    ("engagement", "GET", "/v1/outreach/queue"): READ,
    ("engagement", "GET", "/v1/outreach/{item_id}"): READ,
    ("engagement", "POST", "/v1/outreach/{item_id}/claim"): frozenset({"rm"}),
    ("engagement", "POST", "/v1/outreach/{item_id}/start"): frozenset({"rm"}),
    ("engagement", "POST", "/v1/outreach/{item_id}/complete"): frozenset({"rm"}),
    ("engagement", "POST", "/v1/outreach/{item_id}/cancel"): frozenset({"rm"}),
    ("engagement", "POST", "/v1/outreach/{item_id}/reassign"): frozenset(),
    ("engagement", "PUT", "/v1/rms/{rm_id}"): frozenset(),
    ("engagement", "GET", "/v1/rms"): READ,
    ("engagement", "GET", "/v1/playbooks"): READ,
    ("engagement", "GET", "/v1/playbooks/{version}"): READ,
    ("engagement", "POST", "/v1/playbooks"): frozenset(),
    ("engagement", "POST", "/v1/playbooks/{version}/activate"): frozenset(),
    ("feedback", "POST", "/v1/surveys"): frozenset({"ingest"}),
    ("feedback", "POST", "/v1/complaints"): frozenset({"ingest"}),
    ("feedback", "PATCH", "/v1/complaints/{complaint_id}"): frozenset({"ingest"}),
    ("feedback", "GET", "/v1/complaints/{complaint_id}"): frozenset({"ops"}),
    ("feedback", "GET", "/v1/reports/satisfaction"): frozenset({"ops"}),
    ("feedback", "GET", "/v1/reports/complaints"): frozenset({"ops"}),
    ("feedback", "GET", "/v1/reports/effectiveness"): frozenset({"ops"}),
}


@pytest.fixture(scope="module")
def services(infra: Infra) -> Iterator[dict[str, ServiceProcess]]:
    prefix = "authz."
    create_topics(infra.settings(TIERFLOW_TOPIC_PREFIX=prefix))
    database = fresh_database(infra, "tierflow_authz")
    started: dict[str, ServiceProcess] = {}
    try:
        for name in SERVICES:
            started[name] = start_service(infra, name, TIERFLOW_TOPIC_PREFIX=prefix, DATABASE_URL=database)
        yield started
    finally:
        for service in started.values():
            service.stop()


def operations(service: ServiceProcess) -> list[tuple[str, str]]:
    spec = httpx.get(f"{service.base_url}/openapi.json", timeout=10).json()
    return [
        (method.upper(), path)
        for path, methods in spec["paths"].items()
        if path not in OPEN
        for method in methods
    ]


def call(service: ServiceProcess, method: str, path: str, key: str | None) -> int:
    url = service.base_url + re.sub(r"\{[^}]+\}", "X-1", path)
    headers = {"authorization": f"Bearer {key}"} if key is not None else {}
    body: dict[str, str] | None = None if method in ("GET", "DELETE") else {}
    return httpx.request(method, url, json=body, headers=headers, timeout=30).status_code


def test_the_matrix_covers_every_endpoint(services: dict[str, ServiceProcess]) -> None:
    served = {
        (name, method, path) for name, service in services.items() for method, path in operations(service)
    }
    assert served == set(ALLOWED)


def test_only_the_contracts_roles_get_through(services: dict[str, ServiceProcess]) -> None:
    checked = 0
    for (name, method, path), allowed in ALLOWED.items():
        service = services[name]
        assert call(service, method, path, None) == 401, (method, path, "no key")
        assert call(service, method, path, "not-a-key-at-all-0000") == 401, (method, path, "unknown key")
        for role, key in KEYS.items():
            status = call(service, method, path, key)
            if role == "admin" or role in allowed:
                assert status not in (401, 403), (method, path, role, status)
            else:
                assert status == 403, (method, path, role, status)
            checked += 1
    assert checked == len(ALLOWED) * len(KEYS)
