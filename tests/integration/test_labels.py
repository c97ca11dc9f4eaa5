"""Customer labels end to end: a stream moves a customer in and out of labels, and the published
changes, the ops API and the outreach all agree."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from tests import factories
from tests.infra import OPS_KEY, Infra, ServiceProcess, wait_until
from tests.integration.scoring_support import ScoringSandbox
from tests.kafka_reader import read_messages

pytestmark = pytest.mark.integration
START = datetime(2025, 2, 3, 10, 0, tzinfo=UTC)
# Phone only: digital marketing is refused by consent, so the frequency caps stay out of the way.
PHONE_ONLY = {"phone": True, "sms": False, "email": False, "app": False}


@pytest.fixture
def sandbox(infra: Infra) -> Iterator[ScoringSandbox]:
    box = ScoringSandbox(infra)
    yield box
    box.stop_all()


def at(event: dict[str, Any], moment: datetime) -> dict[str, Any]:
    return factories.with_envelope(event, time=moment.isoformat())


def get(service: ServiceProcess, path: str, **params: str) -> Any:
    response = httpx.get(
        f"{service.base_url}{path}", params=params, headers={"authorization": f"Bearer {OPS_KEY}"}, timeout=30
    )
    assert response.status_code == 200, response.text
    return response.json()


def test_a_stream_moves_a_customer_in_and_out_of_labels_and_events_api_and_outreach_agree(
    sandbox: ScoringSandbox,
) -> None:
    scoring = sandbox.start(TIERFLOW_SCORING_CLOCK="event")
    engagement = sandbox.start("engagement")
    profile = {"rm_id": "RM-9", "branch_id": "B9", "risk_profile": "C4", "consents": PHONE_ONLY}
    minute = timedelta(minutes=1)
    first = [
        at(factories.customer("C-LBL", **profile), START),
        at(
            factories.balance("C-LBL", aum="80000.00", as_of=(START - timedelta(days=100)).isoformat()), START
        ),
        *(at(factories.interaction("C-LBL"), START + n * minute) for n in range(1, 6)),
        *(at(factories.interaction("C-LBL", "login_failed"), START + n * minute) for n in range(10, 13)),
        at(factories.transaction("C-LBL", amount="20000.00", category="investment"), START + 20 * minute),
        # A branch-reliant customer becoming a VIP: no digital welcome, whatever the consents.
        at(factories.customer("C-BRANCH", rm_id="RM-9", branch_id="B9"), START),
        *(
            at(factories.interaction("C-BRANCH", "branch_visit", channel="branch"), START + n * minute)
            for n in range(1, 6)
        ),
        at(
            factories.balance("C-BRANCH", aum="80000.00", as_of=(START - timedelta(days=100)).isoformat()),
            START + 10 * minute,
        ),
    ]
    sandbox.produce(first)
    wait_until(lambda: sandbox.applied() == len(first), 60, "the first day's events")

    view = get(scoring, "/v1/customers/C-LBL")
    assert view["tier"] == "vip"
    held = {label["name"]: label for label in view["labels"]}
    assert set(held) == {"digital_first", "digital_difficulty", "investment_intent"}
    assert held["digital_difficulty"]["reason"] == {
        "rule": "label.digital_difficulty",
        "detail": "login_failures_30d 3 >= 3; digital_share 100 > 0",
        "conditions": [
            {"feature": "login_failures_30d", "operator": "gte", "value": "3", "threshold": "3"},
            {"feature": "digital_share", "operator": "gt", "value": "100", "threshold": "0"},
        ],
    }
    assert held["investment_intent"]["dimension"] == "needs"

    def planned(customer_id: str) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = get(engagement, "/v1/outreach", customer_id=customer_id)
        return found

    def by_action(customer_id: str, action: str) -> list[dict[str, Any]]:
        return [item for item in planned(customer_id) if item["action"] == action]

    wait_until(
        lambda: bool(by_action("C-LBL", "digital_coaching") and by_action("C-LBL", "offer")),
        60,
        "the outreach",
    )
    coaching = by_action("C-LBL", "digital_coaching")[0]
    assert (coaching["status"], coaching["channel"]) == ("queued", "branch")  # the app is not consented
    assert "entered digital_difficulty" in coaching["reason"]
    consultation = by_action("C-LBL", "offer")[0]
    assert consultation["status"] in ("queued", "assigned")
    assert consultation["channel"] == "phone"
    assert consultation["reason"].startswith("investment-consultation:")
    guardrail = "guardrail: branch_reliant customers get no marketing by app, sms, email"
    wait_until(
        lambda: any(item["cancel_reason"] == guardrail for item in by_action("C-BRANCH", "app_push")),
        60,
        "the VIP welcome's decision",
    )
    # Tier changes arriving one by one may first plan a welcome the next one supersedes: none
    # is ever sent, and the one for the customer's latest change is refused by the guardrail.
    assert all(item["status"] == "cancelled" for item in by_action("C-BRANCH", "app_push"))

    # A month on the failed logins are out of the 30-day window; 14 days later the label goes.
    later = [
        at(factories.balance("C-LBL", aum="80000.00"), START + timedelta(days=35)),
        at(factories.balance("C-LBL", aum="80000.00"), START + timedelta(days=55)),
    ]
    sandbox.produce(later[:1])
    wait_until(lambda: sandbox.applied() == len(first) + 1, 60, "the day-35 balance")
    sandbox.produce(later[1:])
    wait_until(lambda: sandbox.applied() == len(first) + 2, 60, "the day-55 balance")

    view = get(scoring, "/v1/customers/C-LBL")
    assert {label["name"] for label in view["labels"]} == {"digital_first", "investment_intent"}

    # The published changes tell the same story, in order.
    messages = read_messages(sandbox.infra.bootstrap_servers, sandbox.tier_changes_topic())
    published = [json.loads(m.value)["data"] for m in messages if m.key == b"C-LBL"]
    flows = [
        (c["labels_entered"], c["labels_left"]) for c in published if c["labels_entered"] or c["labels_left"]
    ]
    assert flows == [
        (["digital_first"], []),
        (["digital_difficulty"], []),
        (["investment_intent"], []),
        ([], ["digital_difficulty"]),
    ]
    left = published[-1]
    assert (left["direction"], left["caused_by"], left["labels"]) == (
        "labels",
        "review",
        ["investment_intent", "digital_first"],
    )
    left_at = START + timedelta(days=35 + 14)
    history = get(scoring, "/v1/customers/C-LBL/tier-history")
    assert history[0]["labels_left"] == ["digital_difficulty"]
    assert datetime.fromisoformat(history[0]["at"]) == left_at

    # Lists, distribution and flows read the same labels.
    holders = get(scoring, "/v1/customers", label="digital_first")["items"]
    assert [c["customer_id"] for c in holders] == ["C-LBL"]
    assert get(scoring, "/v1/customers", label="digital_difficulty")["items"] == []
    distribution = get(scoring, "/v1/tiers/distribution")
    assert distribution["by_label"] == {"digital_first": 1, "investment_intent": 1, "branch_reliant": 1}
    between = {
        flow["label"]: flow
        for flow in get(
            scoring,
            "/v1/tiers/migrations",
            **{
                "from": (START + timedelta(days=1)).isoformat(),
                "to": (START + timedelta(days=60)).isoformat(),
            },
        )["label_flows"]
    }
    assert {name: (f["entered"], f["left"], f["held"]) for name, f in between.items()} == {
        "digital_difficulty": (0, 1, 0),
        "digital_first": (0, 0, 1),
        "investment_intent": (0, 0, 1),
        "branch_reliant": (0, 0, 1),
    }
