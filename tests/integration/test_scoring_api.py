"""The scoring ops API over real HTTP: views, distribution, policies, simulation, overrides."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import yaml

from services.scoring.domain.policy import default_policy
from shared.erasure import ERASED_REASON
from shared.topics import BANK_EVENTS
from tests import factories
from tests.infra import ADMIN_KEY, INGEST_KEY, OPS_KEY, Infra, ServiceProcess, wait_until
from tests.integration.scoring_support import ScoringSandbox
from tests.kafka_reader import read_messages

pytestmark = pytest.mark.integration
NOW = datetime.now(UTC)
FORTY_DAYS_AGO = (NOW - timedelta(days=40)).isoformat()
BANK = {
    "C-API-A": ("B1", "620000.00"),  # wealth
    "C-API-B": ("B1", "100.00"),  # mass
    "C-API-C": ("B2", "8000000.00"),  # private
    "C-API-D": ("B2", "80000.00"),  # vip
}


@pytest.fixture(scope="module")
def scoring(infra: Infra) -> Iterator[tuple[ScoringSandbox, ServiceProcess]]:
    box = ScoringSandbox(infra)
    service = box.start()
    events = []
    for customer_id, (branch, aum) in BANK.items():
        events.append(factories.customer(customer_id, branch_id=branch))
        events.append(factories.balance(customer_id, aum=aum, as_of=FORTY_DAYS_AGO))
        events.append(factories.transaction(customer_id, amount="50.00"))
    box.produce(events)
    wait_until(lambda: box.applied() == len(events), 60, "the seed events")
    yield box, service
    box.stop_all()


def call(
    service: ServiceProcess, method: str, path: str, key: str | None = OPS_KEY, **kwargs: Any
) -> httpx.Response:
    headers = {**kwargs.pop("headers", {}), **({"authorization": f"Bearer {key}"} if key else {})}
    return httpx.request(method, f"{service.base_url}{path}", headers=headers, timeout=30, **kwargs)


def tier_of(service: ServiceProcess, customer_id: str) -> str:
    tier: str = call(service, "GET", f"/v1/customers/{customer_id}").json()["tier"]
    return tier


def test_the_distribution_counts_every_customer_and_filters_by_branch(
    scoring: tuple[ScoringSandbox, ServiceProcess],
) -> None:
    _, service = scoring
    everyone = call(service, "GET", "/v1/tiers/distribution").json()
    assert everyone["total"] == 4
    assert everyone["by_tier"] == {"wealth": 1, "mass": 1, "private": 1, "vip": 1}
    branch = call(service, "GET", "/v1/tiers/distribution", params={"branch_id": "B2"}).json()
    assert branch["by_tier"] == {"private": 1, "vip": 1}


def test_customers_are_listed_by_tier_and_paged(scoring: tuple[ScoringSandbox, ServiceProcess]) -> None:
    _, service = scoring
    first = call(service, "GET", "/v1/customers", params={"limit": 2}).json()
    assert [c["customer_id"] for c in first["items"]] == ["C-API-A", "C-API-B"]
    rest = call(service, "GET", "/v1/customers", params={"limit": 2, "after": first["next_after"]}).json()
    assert [c["customer_id"] for c in rest["items"]] == ["C-API-C", "C-API-D"]
    wealth = call(service, "GET", "/v1/customers", params={"tier": "wealth"}).json()["items"]
    assert [c["customer_id"] for c in wealth] == ["C-API-A"]
    assert call(service, "GET", "/v1/customers", params={"tier": "gold"}).status_code == 422


def test_unknown_customers_are_404_and_reads_need_the_ops_role(
    scoring: tuple[ScoringSandbox, ServiceProcess],
) -> None:
    _, service = scoring
    assert call(service, "GET", "/v1/customers/NOPE").status_code == 404
    assert call(service, "GET", "/v1/customers/NOPE/tier-history").status_code == 404
    assert call(service, "GET", "/v1/customers/C-API-A", key=None).status_code == 401
    assert call(service, "GET", "/v1/customers/C-API-A", key=INGEST_KEY).status_code == 403
    assert call(service, "GET", "/v1/customers/C-API-A", key=ADMIN_KEY).status_code == 200


def test_the_migration_matrix_shows_where_customers_came_from(
    scoring: tuple[ScoringSandbox, ServiceProcess],
) -> None:
    _, service = scoring
    params = {"from": (NOW - timedelta(days=1)).isoformat(), "to": datetime.now(UTC).isoformat()}
    moves = call(service, "GET", "/v1/tiers/migrations", params=params).json()["moves"]
    assert sum(m["count"] for m in moves) == 4
    assert all(m["from_tier"] == "none" for m in moves)
    for report in ("/v1/tiers/migrations", "/v1/tiers/changes-per-day"):
        backwards = call(service, "GET", report, params={"from": params["to"], "to": params["from"]})
        assert (backwards.status_code, backwards.json()["detail"]) == (422, "to must not be before from")
        naive = call(service, "GET", report, params={**params, "from": "2026-01-01T00:00:00"})
        assert naive.status_code == 422
        assert [e["field"] for e in naive.json()["errors"]] == ["query.from"]


def test_an_override_wins_is_audited_and_can_be_cleared(
    scoring: tuple[ScoringSandbox, ServiceProcess],
) -> None:
    box, service = scoring
    body = {
        "tier": "wealth",
        "reason": "retention exception approved by branch head",
        "expires_at": (NOW + timedelta(days=30)).isoformat(),
    }
    assert call(service, "PUT", "/v1/customers/C-API-B/override", json=body).status_code == 403
    past = {**body, "expires_at": (NOW - timedelta(days=1)).isoformat()}
    assert call(service, "PUT", "/v1/customers/C-API-B/override", key=ADMIN_KEY, json=past).status_code == 422

    overridden = call(service, "PUT", "/v1/customers/C-API-B/override", key=ADMIN_KEY, json=body).json()
    assert overridden["tier"] == "wealth"
    assert overridden["override"]["active"] is True
    assert overridden["reasons"][0]["rule"] == "override"
    history = call(service, "GET", "/v1/customers/C-API-B/tier-history").json()
    assert (history[0]["tier"], history[0]["trigger"], history[0]["caused_by"]) == (
        "wealth",
        "override",
        "override",
    )

    def published() -> list[dict[str, Any]]:
        messages = read_messages(box.infra.bootstrap_servers, box.tier_changes_topic())
        events = [json.loads(m.value) for m in messages if m.key == b"C-API-B"]
        return [e["data"] for e in events if e["data"]["trigger"] == "override"]

    wait_until(lambda: len(published()) == 1, 30, "the override's change on the stream")
    assert (published()[0]["tier"], published()[0]["caused_by"]) == ("wealth", "override")

    cleared = call(service, "DELETE", "/v1/customers/C-API-B/override", key=ADMIN_KEY).json()
    assert cleared["tier"] == "mass"
    assert cleared["override"] is None
    audit = box.query(
        "SELECT action, tier, actor FROM scoring.override_audit WHERE customer_id = 'C-API-B' ORDER BY id"
    )
    assert [(row["action"], row["tier"]) for row in audit] == [("set", "wealth"), ("clear", None)]
    assert all(row["actor"] for row in audit)


def candidate_policy() -> dict[str, Any]:
    policy = default_policy().model_dump(mode="json")
    policy["version"] = "lower-gates-2"
    policy["tiers"][1]["any_of"][0][0]["value"] = "75000"  # wealth from 75k
    policy["labels"].append(
        {
            "name": "large_balance",
            "dimension": "behaviour",
            "any_of": [[{"feature": "aum", "op": "gte", "value": "500000"}]],
        }
    )
    return policy


def test_policies_are_validated_versioned_and_immutable(
    scoring: tuple[ScoringSandbox, ServiceProcess],
) -> None:
    _, service = scoring
    listed = call(service, "GET", "/v1/policies").json()
    assert [(p["version"], p["active"]) for p in listed] == [(default_policy().version, True)]
    broken = {**candidate_policy(), "version": "broken-1", "tiers": []}
    refused = call(service, "POST", "/v1/policies", key=ADMIN_KEY, json=broken)
    assert refused.status_code == 422
    assert "tiers" in {e["field"] for e in refused.json()["errors"]}
    as_yaml = yaml.safe_dump(candidate_policy())
    created = call(
        service,
        "POST",
        "/v1/policies",
        key=ADMIN_KEY,
        content=as_yaml,
        headers={"content-type": "application/yaml"},
    )
    assert created.status_code == 201, created.text
    assert created.json()["active"] is False
    again = call(service, "POST", "/v1/policies", key=ADMIN_KEY, json=candidate_policy())
    assert again.status_code == 409
    assert call(service, "POST", "/v1/policies", key=OPS_KEY, json=candidate_policy()).status_code == 403


def test_simulation_shows_who_would_move_without_changing_anyone(
    scoring: tuple[ScoringSandbox, ServiceProcess],
) -> None:
    _, service = scoring
    result = call(service, "POST", "/v1/policies/lower-gates-2/simulate", key=ADMIN_KEY).json()
    assert result["customers"] == 4
    assert result["tiers"] == {"wealth": 2, "mass": 1, "private": 1}
    move = next(m for m in result["tier_migration"] if m["from_tier"] != m["to_tier"])
    assert (move["from_tier"], move["to_tier"], move["count"], move["sample"]) == (
        "vip",
        "wealth",
        1,
        ["C-API-D"],
    )
    assert tier_of(service, "C-API-D") == "vip"
    assert result["labels"] == {"large_balance": 2}
    assert result["label_changes"] == [
        {
            "label": "large_balance",
            "entered": 2,
            "left": 0,
            "sample_entered": ["C-API-A", "C-API-C"],
            "sample_left": [],
        }
    ]
    posted = call(service, "POST", "/v1/policies/simulate", key=ADMIN_KEY, json=candidate_policy()).json()
    assert posted["tiers"] == result["tiers"]


def test_activating_a_policy_re_evaluates_every_customer(
    scoring: tuple[ScoringSandbox, ServiceProcess],
) -> None:
    _, service = scoring
    assert call(service, "POST", "/v1/policies/lower-gates-2/activate", key=ADMIN_KEY).status_code == 200
    wait_until(lambda: tier_of(service, "C-API-D") == "wealth", 30, "the re-evaluation")
    view = call(service, "GET", "/v1/customers/C-API-D").json()
    assert view["policy_version"] == "lower-gates-2"
    change = call(service, "GET", "/v1/customers/C-API-D/tier-history").json()[0]
    assert (change["previous_tier"], change["tier"], change["trigger"]) == (
        "vip",
        "wealth",
        "policy_activation",
    )
    gate = next(reason for reason in change["reasons"] if reason["rule"] == "tier.wealth")
    shown = next(reason for reason in view["reasons"] if reason["rule"] == "tier.wealth")
    assert gate["conditions"] == shown["conditions"] != []
    assert tier_of(service, "C-API-C") == "private"
    # The activation enters the new label as the simulation said: a change of labels alone.
    wait_until(
        lambda: call(service, "GET", "/v1/customers/C-API-A").json()["policy_version"] == "lower-gates-2",
        30,
        "C-API-A's re-evaluation",
    )
    labelled = call(service, "GET", "/v1/customers/C-API-A").json()["labels"]
    assert [(label["name"], label["reason"]["detail"]) for label in labelled] == [
        ("large_balance", "aum 620000 >= 500000")
    ]
    assert labelled[0]["reason"]["conditions"] == [
        {"feature": "aum", "operator": "gte", "value": "620000", "threshold": "500000"}
    ]
    change = call(service, "GET", "/v1/customers/C-API-A/tier-history").json()[0]
    assert (change["direction"], change["labels_entered"], change["labels"]) == (
        "labels",
        ["large_balance"],
        ["large_balance"],
    )
    holders = call(service, "GET", "/v1/customers", params={"label": "large_balance"}).json()["items"]
    assert [(c["customer_id"], c["labels"]) for c in holders] == [
        ("C-API-A", ["large_balance"]),
        ("C-API-C", ["large_balance"]),
    ]
    counted = call(service, "GET", "/v1/tiers/distribution", params={"label": "large_balance"}).json()
    assert (counted["total"], counted["by_tier"], counted["by_label"]) == (
        2,
        {"wealth": 1, "private": 1},
        {"large_balance": 2},
    )
    refused = call(service, "GET", "/v1/customers", params={"label": "Large Balance"})
    assert refused.status_code == 422
    flows = call(
        service,
        "GET",
        "/v1/tiers/migrations",
        params={"from": (NOW - timedelta(days=1)).isoformat(), "to": datetime.now(UTC).isoformat()},
    ).json()["label_flows"]
    assert flows == [{"label": "large_balance", "entered": 2, "left": 0, "held": 0}]


def test_a_customer_scoring_never_decided_can_be_erased_and_their_events_are_refused_after(
    scoring: tuple[ScoringSandbox, ServiceProcess],
) -> None:
    box, service = scoring
    never_seen = "C-API-NEVER-SEEN"
    url = f"/v1/customers/{never_seen}"
    request: dict[str, Any] = {"json": {"reason": "data subject request DSR-2026-118"}, "key": ADMIN_KEY}
    erased = call(service, "DELETE", url, **request)
    assert erased.status_code == 202, erased.text
    assert (erased.json()["customer_id"], erased.json()["scoring_held_data"]) == (never_seen, False)
    (record,) = box.query("SELECT removed FROM scoring.erasures")
    assert set(json.loads(record["removed"]).values()) == {0}, "nothing was held, nothing is counted"
    assert call(service, "DELETE", url, **request).status_code == 404

    applied = box.applied()
    box.produce([factories.customer(never_seen), factories.transaction(never_seen, "10.00")])

    def refused() -> list[str]:
        letters = read_messages(box.infra.bootstrap_servers, box.topics.dlq(BANK_EVENTS))
        return [m.headers["tierflow-error"].decode() for m in letters if m.key == never_seen.encode()]

    wait_until(lambda: len(refused()) == 2, 60, "both events dead-lettered")
    assert all(ERASED_REASON in reason for reason in refused())
    assert box.applied() == applied
    assert call(service, "GET", url).status_code == 404
