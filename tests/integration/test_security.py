"""Security over real HTTP against all four services: the authorisation matrix (every endpoint
with no key, a bad key and each kind of key: only the contract's get through), keys bound to an
RM or scoped to branches (who acts, what each sees), rate limits and throttled guessing,
injection in every filter, oversized and deeply nested bodies, and no personal data in any log."""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from tests.infra import (
    ADMIN_KEY,
    B2_OPS_KEY,
    BOUND_RM_KEYS,
    INGEST_KEY,
    OPS_KEY,
    RM_KEY,
    Infra,
    ServiceProcess,
    all_services,
    fetch_rows,
    start_service,
    wait_until,
)

pytestmark = pytest.mark.integration
# `rm` is a plain rm key; `bound_rm` one bound to RM-7 of branch B1; `branch_ops` ops of branch B2.
KEYS = {
    "ingest": INGEST_KEY,
    "ops": OPS_KEY,
    "branch_ops": B2_OPS_KEY,
    "rm": RM_KEY,
    "bound_rm": BOUND_RM_KEYS["RM-7"],
    "admin": ADMIN_KEY,
}
OPEN = {"/healthz", "/readyz", "/metrics", "/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc"}
OPS = frozenset({"ops", "branch_ops"})
READ = OPS | {"rm", "bound_rm"}
CUSTOMERS = OPS | {"bound_rm"}  # customer data: ops and RMs bound to a branch
ACT = frozenset({"bound_rm"})  # moving items: an RM the key is bound to
EVERYONE = frozenset(KEYS)

# Who may call what, besides admin (who may call everything).
ALLOWED: dict[tuple[str, str, str], frozenset[str]] = {
    ("ingest", "POST", "/v1/events"): frozenset({"ingest"}),
    ("ingest", "PUT", "/v1/customers/{customer_id}/profile"): frozenset({"ingest"}),
    ("ingest", "GET", "/v1/me"): EVERYONE,
    ("scoring", "GET", "/v1/me"): EVERYONE,
    ("scoring", "GET", "/v1/customers/{customer_id}"): CUSTOMERS,
    ("scoring", "DELETE", "/v1/customers/{customer_id}"): frozenset(),
    ("scoring", "GET", "/v1/customers/{customer_id}/tier-history"): CUSTOMERS,
    ("scoring", "GET", "/v1/households/{household_id}"): CUSTOMERS,
    ("scoring", "GET", "/v1/customers"): CUSTOMERS,
    ("scoring", "GET", "/v1/tiers/distribution"): CUSTOMERS,
    ("scoring", "GET", "/v1/tiers/migrations"): OPS,
    ("scoring", "GET", "/v1/policies"): OPS,
    ("scoring", "GET", "/v1/policies/{version}"): OPS,
    ("scoring", "POST", "/v1/policies"): frozenset(),
    ("scoring", "POST", "/v1/policies/simulate"): frozenset(),
    ("scoring", "POST", "/v1/policies/{version}/simulate"): frozenset(),
    ("scoring", "POST", "/v1/policies/{version}/activate"): frozenset(),
    ("scoring", "PUT", "/v1/customers/{customer_id}/override"): frozenset(),
    ("scoring", "DELETE", "/v1/customers/{customer_id}/override"): frozenset(),
    ("engagement", "GET", "/v1/me"): EVERYONE,
    ("engagement", "GET", "/v1/outreach"): READ,
    ("engagement", "GET", "/v1/outreach/stats"): READ,
    ("engagement", "GET", "/v1/outreach/queue"): READ,
    ("engagement", "GET", "/v1/outreach/{item_id}"): READ,
    ("engagement", "POST", "/v1/outreach/{item_id}/claim"): ACT,
    ("engagement", "POST", "/v1/outreach/{item_id}/start"): ACT,
    ("engagement", "POST", "/v1/outreach/{item_id}/complete"): ACT,
    ("engagement", "POST", "/v1/outreach/{item_id}/cancel"): ACT,
    ("engagement", "POST", "/v1/outreach/{item_id}/reassign"): frozenset(),
    ("engagement", "PUT", "/v1/rms/{rm_id}"): frozenset(),
    ("engagement", "GET", "/v1/rms"): READ,
    ("engagement", "GET", "/v1/playbooks"): READ,
    ("engagement", "GET", "/v1/playbooks/{version}"): READ,
    ("engagement", "POST", "/v1/playbooks"): frozenset(),
    ("engagement", "POST", "/v1/playbooks/{version}/activate"): frozenset(),
    ("feedback", "GET", "/v1/me"): EVERYONE,
    ("feedback", "POST", "/v1/surveys"): frozenset({"ingest"}),
    ("feedback", "POST", "/v1/complaints"): frozenset({"ingest"}),
    ("feedback", "PATCH", "/v1/complaints/{complaint_id}"): frozenset({"ingest"}),
    ("feedback", "GET", "/v1/complaints/{complaint_id}"): CUSTOMERS,
    ("feedback", "GET", "/v1/reports/satisfaction"): OPS,
    ("feedback", "GET", "/v1/reports/complaints"): OPS,
    ("feedback", "GET", "/v1/reports/effectiveness"): frozenset({"ops"}),  # it compares across the bank
    ("feedback", "GET", "/v1/customers/{customer_id}/feedback"): CUSTOMERS,
    ("scoring", "GET", "/v1/tiers/changes-per-day"): OPS,
    **{(name, "GET", "/v1/worker/status"): READ for name in ("scoring", "engagement", "feedback")},
}


@pytest.fixture(scope="module")
def services(infra: Infra) -> Iterator[dict[str, ServiceProcess]]:
    with all_services(infra, "authz") as started:
        yield started


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


INJECTIONS = [
    "' OR '1'='1",
    "x'; DROP TABLE scoring.customers; --",
    "1) OR (1=1",
    "%' --",
    "\\x00",
    "ü' || pg_sleep(5) --",
]
FILTERS: dict[str, dict[str, list[str]]] = {
    "scoring": {
        "/v1/customers": ["tier", "stage", "branch_id", "segment", "region", "after"],
        "/v1/tiers/distribution": ["branch_id", "segment", "region"],
    },
    "engagement": {
        "/v1/outreach": ["customer_id", "status", "branch_id", "assigned_to", "priority", "action"],
        "/v1/outreach/queue": ["branch_id"],
        "/v1/rms": ["branch_id"],
    },
    "feedback": {"/v1/reports/satisfaction": ["by"]},
}
PERSONAL = ["13812345678", "110105199003071234", "zhang.san@example.cn"]


def get(service: ServiceProcess, path: str, **params: str) -> httpx.Response:
    headers = {"authorization": f"Bearer {ADMIN_KEY}"}
    return httpx.get(f"{service.base_url}{path}", params=params, headers=headers, timeout=30)


def test_injection_in_every_filter_is_harmless(services: dict[str, ServiceProcess]) -> None:
    window = {"from": "2026-01-01T00:00:00+00:00", "to": "2026-02-01T00:00:00+00:00"}
    tried = 0
    for name, paths in FILTERS.items():
        for path, params in paths.items():
            extra = window if path.startswith("/v1/reports") else {}
            for param in params:
                for attempt in INJECTIONS:
                    started = time.monotonic()
                    response = get(services[name], path, **extra, **{param: attempt})
                    assert response.status_code in (200, 422), (path, param, attempt, response.text)
                    assert time.monotonic() - started < 4, "an injected pg_sleep ran"
                    if response.status_code == 200 and param != "after":  # a cursor, not a match
                        assert response.json() in ([], {"items": [], "next_after": None}) or _empty_counts(
                            response.json()
                        ), (path, param, attempt)
                    tried += 1
    assert tried == len(INJECTIONS) * sum(len(p) for paths in FILTERS.values() for p in paths.values())
    # The tables are all still there and answer.
    assert get(services["scoring"], "/v1/customers").status_code == 200
    assert get(services["engagement"], "/v1/outreach").status_code == 200


def _refusals(services: dict[str, ServiceProcess]) -> tuple[int, int]:
    """The 422s ingest's and feedback's access logs show for events and surveys."""
    return (
        services["ingest"].logs().count('"POST /v1/events HTTP/1.1\\" 422'),
        services["feedback"].logs().count('"POST /v1/surveys HTTP/1.1\\" 422'),
    )


def _empty_counts(body: Any) -> bool:
    return isinstance(body, dict) and body.get("total") == 0


def _nested(depth: int) -> bytes:
    return b'{"a":' * depth + b"1" + b"}" * depth


WRITE_ENDPOINTS = [
    ("ingest", "/v1/events"),
    ("feedback", "/v1/surveys"),
    ("feedback", "/v1/complaints"),
    ("scoring", "/v1/policies"),
    ("engagement", "/v1/playbooks"),
]


def test_deeply_nested_and_oversized_bodies_are_refused_cheaply(services: dict[str, ServiceProcess]) -> None:
    headers = {"authorization": f"Bearer {ADMIN_KEY}", "content-type": "application/json"}
    for name, path in WRITE_ENDPOINTS:
        url = services[name].base_url + path
        started = time.monotonic()
        nested = httpx.post(url, content=_nested(100_000), headers=headers, timeout=30)
        assert nested.status_code in (400, 413, 422), (path, nested.status_code, nested.text[:200])
        oversized = httpx.post(
            url, content=b"[" + b" " * (11 * 1024 * 1024) + b"]", headers=headers, timeout=60
        )
        assert oversized.status_code == 413, (path, oversized.status_code)
        assert time.monotonic() - started < 10, path
    for service in services.values():
        assert httpx.get(f"{service.base_url}/healthz", timeout=5).status_code == 200


def test_personal_data_never_reaches_the_logs(services: dict[str, ServiceProcess]) -> None:
    ingest_headers = {"authorization": f"Bearer {INGEST_KEY}"}
    refused_before = _refusals(services)
    comment = f"Please call {PERSONAL[0]}, my ID is {PERSONAL[1]}, mail {PERSONAL[2]}"
    survey = {"customer_id": "C-PII-1", "survey_id": "S-PII-1", "kind": "nps", "score": 3, "comment": comment}
    accepted = httpx.post(f"{services['feedback'].base_url}/v1/surveys", json=survey, headers=ingest_headers)
    assert accepted.status_code == 202, accepted.text
    refused = httpx.post(
        f"{services['feedback'].base_url}/v1/surveys", json={**survey, "score": 99}, headers=ingest_headers
    )
    assert refused.status_code == 422
    event = {
        "specversion": "1.0", "id": "evt-pii-1", "source": "core", "type": "bank.customer.v1",
        "time": "2026-11-01T09:00:00+08:00",
        "data": {"customer_id": "C-PII-1", "branch_id": PERSONAL[0], "phone": PERSONAL[0]},
    }  # fmt: skip
    invalid = httpx.post(f"{services['ingest'].base_url}/v1/events", json=event, headers=ingest_headers)
    assert invalid.status_code == 422

    def everything_logged() -> bool:
        # Each refusal is in its service's access log, and the survey went through the feedback
        # relay to the scoring worker, which applied it: all they log about it is written by then.
        logged = all(now > before for now, before in zip(_refusals(services), refused_before, strict=True))
        return logged and get(services["scoring"], "/v1/customers/C-PII-1").status_code == 200

    wait_until(everything_logged, 60, "the refusals logged and the survey applied by scoring")
    logs = {name: service.logs() for name, service in services.items()}
    assert any(logs.values())
    for name, text in logs.items():
        for personal in PERSONAL:
            assert personal not in text, f"{personal} in the {name} log"
        for line in text.splitlines():
            if line.startswith("{"):
                json.loads(line)  # every line is structured, so masking saw it whole


def _as(key: str, **headers: str) -> dict[str, str]:
    return {"authorization": f"Bearer {key}", **headers}


def _seed_two_branches(services: dict[str, ServiceProcess]) -> dict[str, dict[str, Any]]:
    """A wealthy customer in branch B1 (RM-7) and one in B2 (RM-21), each with the welcome call
    engagement plans for them and a complaint feedback recorded against their branch."""
    from tests import factories

    ninety_days_ago = (datetime.now(UTC) - timedelta(days=100)).isoformat()
    events = [
        event
        for customer_id, rm_id, branch in (("C-AZ-B1", "RM-7", "B1"), ("C-AZ-B2", "RM-21", "B2"))
        for event in (
            factories.customer(customer_id, rm_id=rm_id, branch_id=branch),
            factories.balance(customer_id, aum="620000.00", as_of=ninety_days_ago),
        )
    ]
    posted = httpx.post(f"{services['ingest'].base_url}/v1/events", json=events, headers=_as(INGEST_KEY))
    assert posted.status_code == 202, posted.text

    def items() -> dict[str, dict[str, Any]]:
        found = httpx.get(f"{services['engagement'].base_url}/v1/outreach", headers=_as(ADMIN_KEY)).json()
        return {
            i["customer_id"]: i
            for i in found
            if i["customer_id"].startswith("C-AZ-") and i["action"] == "rm_call"
        }

    wait_until(lambda: len(items()) == 2, 90, "a welcome call in each branch")
    database = services["feedback"].env["DATABASE_URL"]
    wait_until(
        lambda: (
            len(fetch_rows(database, "SELECT 1 FROM feedback.customers WHERE customer_id LIKE 'C-AZ-%'")) == 2
        ),
        60,
        "feedback to know both customers' branches",
    )
    complaints = [
        {
            "customer_id": f"C-AZ-{b}",
            "complaint_id": f"CMP-AZ-{b}",
            "severity": "low",
            "category": "fees",
            "status": "open",
        }
        for b in ("B1", "B2")
    ]
    posted = httpx.post(
        f"{services['feedback'].base_url}/v1/complaints", json=complaints, headers=_as(INGEST_KEY)
    )
    assert posted.status_code == 202, posted.text
    return items()


def test_keys_bound_to_people_act_as_them_and_see_their_branches_only(
    services: dict[str, ServiceProcess],
) -> None:
    seeded = _seed_two_branches(services)
    b1_item, b2_item = seeded["C-AZ-B1"], seeded["C-AZ-B2"]
    assert (b1_item["assigned_to"], b1_item["branch_id"]) == ("RM-7", "B1")
    rm7, rm9, rm21 = (BOUND_RM_KEYS[rm] for rm in ("RM-7", "RM-9", "RM-21"))
    scoring, engagement, feedback = (services[n].base_url for n in ("scoring", "engagement", "feedback"))

    # Scoring: a bound RM and a branch-scoped ops key read their branch; another branch is not found.
    def customer_status(key: str, customer_id: str, tail: str = "") -> int:
        return httpx.get(f"{scoring}/v1/customers/{customer_id}{tail}", headers=_as(key)).status_code

    assert [customer_status(rm7, c) for c in ("C-AZ-B1", "C-AZ-B2")] == [200, 404]
    assert [customer_status(rm7, c, "/tier-history") for c in ("C-AZ-B1", "C-AZ-B2")] == [200, 404]
    assert [customer_status(B2_OPS_KEY, c) for c in ("C-AZ-B1", "C-AZ-B2")] == [404, 200]
    unbound = httpx.get(f"{scoring}/v1/customers/C-AZ-B1", headers=_as(RM_KEY))
    assert unbound.status_code == 403
    assert "bound" in unbound.json()["detail"]

    def listed(key: str, **params: str) -> set[str]:
        page = httpx.get(f"{scoring}/v1/customers", params=params, headers=_as(key)).json()
        return {row["branch_id"] for row in page["items"]}

    assert listed(rm7) == {"B1"}
    assert listed(rm7, branch_id="B2") == set()
    assert listed(B2_OPS_KEY) == {"B2"}
    assert {"B1", "B2"} <= listed(ADMIN_KEY)

    def total(key: str, **params: str) -> int:
        body = httpx.get(f"{scoring}/v1/tiers/distribution", params=params, headers=_as(key)).json()
        return int(body["total"])

    assert total(rm7) == total(ADMIN_KEY, branch_id="B1") >= 1
    assert total(rm7, branch_id="B2") == 0

    def changes(key: str) -> int:
        span = {"from": "2000-01-01T00:00:00+00:00", "to": "2100-01-01T00:00:00+00:00"}
        days = httpx.get(f"{scoring}/v1/tiers/changes-per-day", params=span, headers=_as(key)).json()
        return sum(sum(day["changes"].values()) for day in days)

    assert 1 <= changes(B2_OPS_KEY) < changes(ADMIN_KEY), "a scoped key counts its branches' changes"

    # Engagement: each key sees its branch's queue; other branches' items are not there for it.
    def outreach(key: str) -> set[str]:
        return {i["branch_id"] for i in httpx.get(f"{engagement}/v1/outreach", headers=_as(key)).json()}

    assert outreach(rm7) == {"B1"}
    assert outreach(B2_OPS_KEY) == {"B2"}
    queue = httpx.get(f"{engagement}/v1/outreach/queue", headers=_as(rm7)).json()
    assert (
        queue
        == httpx.get(
            f"{engagement}/v1/outreach/queue", params={"branch_id": "B1"}, headers=_as(ADMIN_KEY)
        ).json()
    )
    rms = httpx.get(f"{engagement}/v1/rms", headers=_as(B2_OPS_KEY)).json()
    assert {r["branch_id"] for r in rms} <= {"B2"}

    def step(
        item: dict[str, Any], name: str, key: str, body: dict[str, str] | None = None, naming: str = ""
    ) -> httpx.Response:
        url = f"{engagement}/v1/outreach/{item['id']}/{name}"
        named = {"X-RM-Id": naming} if naming else {}
        return httpx.post(url, json=body, headers=_as(key, **named))

    assert httpx.get(f"{engagement}/v1/outreach/{b2_item['id']}", headers=_as(rm7)).status_code == 404
    assert step(b2_item, "claim", rm7).status_code == 404
    assert step(b1_item, "cancel", rm21, {"reason": "not my branch"}).status_code == 404
    # RM-9 works in B1 too, but cannot take, start or cancel RM-7's item, whoever the request names.
    assert step(b1_item, "cancel", rm9, {"reason": "tidy up"}, naming="RM-7").status_code == 409
    assert step(b1_item, "start", rm9, naming="RM-7").status_code == 409
    refused = step(b1_item, "start", RM_KEY, naming="RM-7")
    assert refused.status_code == 403
    assert "not bound to an RM" in refused.json()["detail"]
    # Admin acting for RM-9 has RM-9's rights: RM-7's item is not RM-9's, short of a reassignment.
    for_rm9 = step(b1_item, "cancel", ADMIN_KEY, {"reason": "tidy up"}, naming="RM-9")
    assert for_rm9.status_code == 409
    assert "held by RM-7, not RM-9" in for_rm9.json()["detail"]
    assert step(b1_item, "start", ADMIN_KEY, naming="RM-9").status_code == 409
    for malformed in ("RM 7", "RM-7;x", "R" * 129):
        assert step(b1_item, "start", ADMIN_KEY, naming=malformed).status_code == 422
    # Admin acts for RM-7, audited as itself for RM-7; RM-7 acts as RM-7 whatever it names.
    assert step(b1_item, "start", ADMIN_KEY, naming="RM-7").json()["status"] == "in_progress"
    done = step(b1_item, "complete", rm7, {"outcome": "reached"}, naming="RM-9")
    assert (done.status_code, done.json()["status"]) == (200, "completed")
    audit = fetch_rows(
        services["engagement"].env["DATABASE_URL"],
        "SELECT to_status, actor FROM engagement.item_audit WHERE item_id = $1::uuid ORDER BY id",
        b1_item["id"],
    )
    admin_id = hashlib.sha256(ADMIN_KEY.encode()).hexdigest()[:8]
    assert [(row["to_status"], row["actor"]) for row in audit][-2:] == [
        ("in_progress", f"{admin_id} for RM-7"),
        ("completed", "RM-7"),
    ]

    # Feedback: complaints by branch, reports narrowed to a scoped key's branches.
    def complaint_status(key: str, complaint_id: str) -> int:
        return httpx.get(f"{feedback}/v1/complaints/{complaint_id}", headers=_as(key)).status_code

    assert [complaint_status(rm7, c) for c in ("CMP-AZ-B1", "CMP-AZ-B2")] == [200, 404]
    assert [complaint_status(B2_OPS_KEY, c) for c in ("CMP-AZ-B1", "CMP-AZ-B2")] == [404, 200]
    period = {"from": "2020-01-01T00:00:00+00:00", "to": (datetime.now(UTC) + timedelta(hours=1)).isoformat()}

    def complaints_counted(key: str) -> int:
        rows = httpx.get(f"{feedback}/v1/reports/complaints", params=period, headers=_as(key)).json()
        return sum(int(row["complaints"]) for row in rows)

    assert complaints_counted(B2_OPS_KEY) == 1
    assert complaints_counted(ADMIN_KEY) >= 2
    effectiveness = httpx.get(f"{feedback}/v1/reports/effectiveness", params=period, headers=_as(B2_OPS_KEY))
    assert effectiveness.status_code == 403


def test_every_service_says_who_a_key_is(services: dict[str, ServiceProcess]) -> None:
    def me(service: str, key: str) -> Any:
        response = httpx.get(f"{services[service].base_url}/v1/me", headers=_as(key))
        assert response.status_code == 200, response.text
        return response.json()

    rm7 = BOUND_RM_KEYS["RM-7"]
    expected = {
        "key_id": hashlib.sha256(rm7.encode()).hexdigest()[:8],
        "roles": ["rm"],
        "rm_id": "RM-7",
        "branches": ["B1"],
    }
    assert [me(name, rm7) for name in services] == [expected] * len(services)
    assert me("scoring", B2_OPS_KEY) | {"key_id": None} == {
        "key_id": None, "roles": ["ops"], "rm_id": None, "branches": ["B2"],
    }  # fmt: skip
    assert me("ingest", ADMIN_KEY)["branches"] is None
    assert httpx.get(f"{services['ingest'].base_url}/v1/me").status_code == 401


def test_intake_is_limited_per_key_and_guessing_keys_is_throttled_per_address(infra: Infra) -> None:
    ingest = start_service(
        infra,
        "ingest",
        TIERFLOW_TOPIC_PREFIX="authz.",
        TIERFLOW_INGEST_KEY_RATE_PER_S="0.2",
        TIERFLOW_INGEST_KEY_BURST="2",
        TIERFLOW_AUTH_FAILURE_LIMIT="3",
    )
    try:
        events = f"{ingest.base_url}/v1/events"
        # Empty batches are refused, but each still spends a request of the key's allowance.
        answers = [httpx.post(events, json=[], headers=_as(INGEST_KEY)) for _ in range(3)]
        assert [a.status_code for a in answers[:2]] != [429, 429]
        assert answers[2].status_code == 429
        assert 1 <= int(answers[2].headers["retry-after"]) <= 5
        assert "request rate" in answers[2].json()["detail"]
        assert httpx.post(events, json=[], headers=_as(ADMIN_KEY)).status_code != 429  # its own allowance

        guesses = [httpx.get(f"{ingest.base_url}/v1/me", headers=_as(f"guess-{n}")) for n in range(3)]
        assert [g.status_code for g in guesses] == [401, 401, 401]
        throttled = httpx.get(f"{ingest.base_url}/v1/me", headers=_as("guess-again"))
        assert throttled.status_code == 429, "the address guesses no more keys this window"
        assert 50 <= int(throttled.headers["retry-after"]) <= 60
        # Nor does a forwarded-for header make the guesses come from elsewhere.
        spoofed = httpx.get(
            f"{ingest.base_url}/v1/me", headers={**_as("guess-4"), "X-Forwarded-For": "203.0.113.9"}
        )
        assert spoofed.status_code == 429
        # Others behind the same address (a proxy, the console, NAT) keep working with their keys.
        assert httpx.get(f"{ingest.base_url}/v1/me", headers=_as(ADMIN_KEY)).status_code == 200
        metrics = httpx.get(f"{ingest.base_url}/metrics").text
        assert 'tierflow_auth_failures_total{reason="invalid"} 3.0' in metrics
        assert 'tierflow_auth_failures_total{reason="throttled"} 2.0' in metrics
        assert httpx.get(f"{ingest.base_url}/readyz").status_code in (200, 503)  # probes stay open
    finally:
        ingest.stop()
