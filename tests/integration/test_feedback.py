"""Feedback folded back: a detractor becomes at-risk, gets service recovery, and the loop closes."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest

from shared.topics import OUTREACH, TIER_CHANGES
from tests import factories
from tests.infra import BOUND_RM_KEYS, INGEST_KEY, OPS_KEY, Infra, wait_until
from tests.integration.scoring_support import ScoringSandbox, view
from tests.kafka_reader import read_messages

pytestmark = pytest.mark.integration
NOW = datetime.now(UTC)
AUTH = {"authorization": f"Bearer {INGEST_KEY}"}
OPS = {"authorization": f"Bearer {OPS_KEY}"}


@pytest.fixture
def sandbox(infra: Infra) -> Iterator[ScoringSandbox]:
    box = ScoringSandbox(infra)
    yield box
    box.stop_all()


def test_a_detractor_in_private_banking_gets_service_recovery_and_the_answer_closes_the_loop(
    sandbox: ScoringSandbox,
) -> None:
    scoring = sandbox.start()
    engagement = sandbox.start("engagement")
    feedback = sandbox.start("feedback")
    sandbox.produce(
        [
            factories.customer("C-PRIV", rm_id="RM-1", branch_id="B1"),
            factories.balance("C-PRIV", aum="8000000.00", as_of=(NOW - timedelta(days=40)).isoformat()),
            factories.transaction("C-PRIV", amount="250000.00"),
        ]
    )
    wait_until(
        lambda: (
            view(scoring, "C-PRIV").status_code == 200 and view(scoring, "C-PRIV").json()["tier"] == "private"
        ),
        60,
        "private",
    )

    known = "SELECT 1 FROM feedback.customers WHERE customer_id = 'C-PRIV' AND tier = 'private'"
    wait_until(lambda: bool(sandbox.query(known)), 60, "feedback to know the tier")
    detractor = {
        "customer_id": "C-PRIV",
        "survey_id": "S-1",
        "kind": "nps",
        "score": 2,
        "comment": "call me on 13812345678",
    }
    assert httpx.post(f"{feedback.base_url}/v1/surveys", json=detractor, headers=AUTH).json() == {
        "accepted": 1,
        "new": 1,
    }
    assert httpx.post(f"{feedback.base_url}/v1/surveys", json=[detractor], headers=AUTH).json() == {
        "accepted": 1,
        "new": 0,
    }
    complaint = {
        "customer_id": "C-PRIV",
        "complaint_id": "K-1",
        "severity": "high",
        "category": "fees",
        "status": "open",
        "opened_at": (NOW - timedelta(hours=26)).isoformat(),
    }
    assert httpx.post(f"{feedback.base_url}/v1/complaints", json=complaint, headers=AUTH).status_code == 202

    def at_risk_change() -> list[dict[str, Any]]:
        messages = read_messages(sandbox.infra.bootstrap_servers, sandbox.tier_changes_topic())
        events = [json.loads(m.value)["data"] for m in messages if m.key == b"C-PRIV"]
        return [e for e in events if e["stage"] == "at_risk"]

    wait_until(lambda: bool(at_risk_change()), 60, "the at-risk change on the stream")
    assert at_risk_change()[0]["tier"] == "private"

    def recovery() -> list[dict[str, Any]]:
        found = httpx.get(
            f"{engagement.base_url}/v1/outreach", params={"customer_id": "C-PRIV"}, headers=OPS
        ).json()
        return [i for i in found if i["reason"].startswith("service-recovery")]

    wait_until(lambda: bool(recovery()), 60, "the service-recovery item")
    item = recovery()[0]
    assert (item["status"], item["assigned_to"], item["category"]) == ("assigned", "RM-1", "service")
    everything = httpx.get(
        f"{engagement.base_url}/v1/outreach", params={"customer_id": "C-PRIV"}, headers=OPS
    ).json()
    assert not [
        i for i in everything if i["category"] == "marketing" and i["status"] in ("queued", "assigned")
    ]
    assert "13812345678" not in feedback.logs()

    rm = {"authorization": f"Bearer {BOUND_RM_KEYS['RM-1']}"}
    base = f"{engagement.base_url}/v1/outreach/{item['id']}"
    assert httpx.post(f"{base}/start", headers=rm).status_code == 200
    assert httpx.post(f"{base}/complete", json={"outcome": "reached"}, headers=rm).status_code == 200
    wait_until(lambda: bool(sandbox.query("SELECT 1 FROM feedback.invitations")), 60, "the survey invitation")

    follow_up = {"customer_id": "C-PRIV", "survey_id": "S-2", "kind": "csat", "score": 4}
    assert httpx.post(f"{feedback.base_url}/v1/surveys", json=follow_up, headers=AUTH).json()["new"] == 1
    linked = sandbox.query("SELECT outreach_id FROM feedback.surveys WHERE survey_id = 'S-2'")[0][0]
    assert linked == item["id"]

    period = {
        "from": (NOW - timedelta(days=1)).isoformat(),
        "to": (datetime.now(UTC) + timedelta(hours=1)).isoformat(),
    }
    report = httpx.get(f"{feedback.base_url}/v1/reports/effectiveness", params=period, headers=OPS).json()
    row = next(r for r in report["contacted"] if r["action"] == "rm_call")
    assert (row["tier"], row["contacted"], row["reached"], row["surveys"]) == ("private", 1, 1, 1)
    assert float(row["csat_avg_after_contact"]) == 4.0

    satisfaction = httpx.get(
        f"{feedback.base_url}/v1/reports/satisfaction", params=period, headers=OPS
    ).json()
    private = next(r for r in satisfaction if r["grp"] == "private")
    assert (private["nps_responses"], float(private["nps"])) == (1, -100.0)
    backwards = {"from": period["to"], "to": period["from"]}
    for report_path in ("satisfaction", "complaints", "effectiveness"):
        refused = httpx.get(f"{feedback.base_url}/v1/reports/{report_path}", params=backwards, headers=OPS)
        assert (refused.status_code, refused.json()["detail"]) == (422, "to must not be before from")

    resolved = httpx.patch(
        f"{feedback.base_url}/v1/complaints/K-1", json={"status": "resolved"}, headers=AUTH
    )
    assert resolved.status_code == 200
    complaint_now = resolved.json()
    opened_at, resolved_at = (datetime.fromisoformat(complaint_now[f]) for f in ("opened_at", "resolved_at"))
    assert opened_at == NOW - timedelta(hours=26)
    took_hours = (resolved_at - opened_at).total_seconds() / 3600
    assert complaint_now["resolution_hours"] == round(took_hours, 2)
    assert 26 <= took_hours < 27
    again = httpx.patch(f"{feedback.base_url}/v1/complaints/K-1", json={"status": "open"}, headers=AUTH)
    assert again.status_code == 409


def test_bad_feedback_is_refused_field_by_field_and_nothing_is_stored(sandbox: ScoringSandbox) -> None:
    feedback = sandbox.start("feedback")
    batch = [
        {"customer_id": "C-1", "survey_id": "S-OK", "kind": "nps", "score": 9},
        {"customer_id": "C-1", "survey_id": "S-BAD", "kind": "csat", "score": 9},
        {"customer_id": "C-1", "survey_id": "S-BAD2", "kind": "stars", "score": "5"},
    ]
    response = httpx.post(f"{feedback.base_url}/v1/surveys", json=batch, headers=AUTH)
    assert response.status_code == 422
    assert [(e["index"], e["field"]) for e in response.json()["errors"]] == [
        (1, "score"),
        (2, "data.kind"),
        (2, "data.score"),
    ] or response.json()["errors"]
    assert sandbox.query("SELECT count(*) FROM feedback.surveys")[0][0] == 0
    assert httpx.post(f"{feedback.base_url}/v1/surveys", json=batch[0], headers=OPS).status_code == 403


def test_feedback_dated_ahead_of_the_clock_is_refused_and_paths_are_bounded(sandbox: ScoringSandbox) -> None:
    feedback = sandbox.start("feedback")
    survey = {"customer_id": "C-1", "survey_id": "S-9999", "kind": "nps", "score": 9}
    complaint = {"customer_id": "C-1", "complaint_id": "K-9999", "severity": "low", "category": "fees"}
    far = "9999-12-31T00:00:00Z"
    refused = [
        ("/v1/surveys", {**survey, "answered_at": far}, "answered_at"),
        ("/v1/complaints", {**complaint, "status": "open", "opened_at": far}, "opened_at"),
        ("/v1/complaints", {**complaint, "status": "resolved", "resolved_at": far}, "resolved_at"),
    ]
    for path, body, field in refused:
        response = httpx.post(f"{feedback.base_url}{path}", json=body, headers=AUTH)
        assert response.status_code == 422, response.text
        assert [e["field"] for e in response.json()["errors"]] == [field]
    assert sandbox.query("SELECT count(*) FROM feedback.surveys")[0][0] == 0
    assert sandbox.query("SELECT count(*) FROM feedback.complaints")[0][0] == 0
    bidi = httpx.get(f"{feedback.base_url}/v1/complaints/K%E2%80%AE1", headers=OPS)
    assert bidi.status_code == 422
    assert [e["field"] for e in bidi.json()["errors"]] == ["path.complaint_id"]


def test_tier_changes_with_the_same_id_from_two_sources_are_two_and_a_resend_is_one(
    sandbox: ScoringSandbox,
) -> None:
    sandbox.start("feedback")
    first = factories.with_envelope(
        factories.tier_change("C-FB-SRC", ("mass", "regular"), ("vip", "regular")),
        source="tierflow/scoring",
        id="chg-1",
    )
    second = factories.with_envelope(
        factories.tier_change("C-FB-SRC", ("vip", "regular"), ("wealth", "regular")),
        source="tierflow/scoring-hk",
        id="chg-1",
    )
    sandbox.produce([first, second, first, second], topic=TIER_CHANGES)

    def observed() -> list[tuple[str, str]]:
        rows = sandbox.query(
            "SELECT source, tier FROM feedback.tier_history WHERE customer_id = 'C-FB-SRC' ORDER BY id"
        )
        return [(row[0], row[1]) for row in rows]

    wait_until(lambda: len(observed()) == 2, 60, "both changes observed")
    later = factories.with_envelope(
        factories.tier_change("C-FB-SRC", ("wealth", "regular"), ("private", "regular")), id="chg-2"
    )
    sandbox.produce([second, later], topic=TIER_CHANGES)  # one partition: the resend comes first
    wait_until(lambda: len(observed()) >= 3, 60, "the later change observed")
    assert observed() == [
        ("tierflow/scoring", "vip"),
        ("tierflow/scoring-hk", "wealth"),
        ("tierflow/scoring", "private"),
    ]


def _planned(customer_id: str, status: str, at: datetime) -> dict[str, Any]:
    """An outreach item engagement planned in experiment `trial`, as it publishes it."""
    return {
        "specversion": "1.0", "id": str(uuid.uuid4()), "source": "tierflow/engagement",
        "type": f"engagement.outreach_{status}.v1", "time": at.isoformat(),
        "data": {
            "outreach_id": str(uuid.uuid4()), "customer_id": customer_id, "action": "rm_call",
            "status": status, "tier": "vip", "experiment": "trial",
            "sla_due_at": (at + timedelta(hours=48)).isoformat(),
        },
    }  # fmt: skip


def test_the_holdout_report_counts_each_customer_once_from_their_first_draw_and_compares_aum_and_products(
    sandbox: ScoringSandbox,
) -> None:
    feedback = sandbox.start("feedback", TIERFLOW_SCORING_CLOCK="event")
    drawn = datetime(2026, 3, 2, 4, 0, tzinfo=UTC)
    treated = [f"C-FB-T{n}" for n in range(4)]
    held = [f"C-FB-H{n}" for n in range(4)]

    def holdings(customer_id: str, at: datetime, aum: str, products: int) -> dict[str, Any]:
        change = factories.tier_change(
            customer_id, ("mass", "new"), ("vip", "new"), aum=aum, products_held=products
        )
        return factories.with_envelope(change, time=at.isoformat())

    sandbox.produce([holdings(c, drawn, "100000.00", 1) for c in treated + held], topic=TIER_CHANGES)
    sandbox.produce(
        [_planned(c, "queued", drawn) for c in treated]
        + [_planned(c, "held_out", drawn) for c in held]
        # Drawn again later: a second item for a treated customer, and a held-out customer
        # later treated by another rule of the experiment. Each counts once, as first drawn.
        + [_planned(treated[0], "queued", drawn + timedelta(hours=1))]
        + [_planned(held[0], "queued", drawn + timedelta(hours=2))]
        + [_planned(held[1], "held_out", drawn + timedelta(hours=3))],
        topic=OUTREACH,
    )
    week = drawn + timedelta(days=7)
    sandbox.produce(
        [holdings(c, week, "160000.00", 3) for c in treated] + [holdings(held[1], week, "90000.00", 1)],
        topic=TIER_CHANGES,
    )
    members = "SELECT count(*) FROM feedback.experiment_members WHERE experiment = 'trial'"
    later = "SELECT count(*) FROM feedback.tier_history WHERE customer_id LIKE 'C-FB-%' AND aum IS NOT NULL"
    wait_until(
        lambda: sandbox.query(members)[0][0] == 11 and sandbox.query(later)[0][0] == 13, 60, "all read"
    )

    period = {"from": drawn.isoformat(), "to": (drawn + timedelta(days=1)).isoformat(), "days": "30"}
    report = httpx.get(f"{feedback.base_url}/v1/reports/effectiveness", params=period, headers=OPS).json()
    [row] = [r for r in report["holdouts"] if r["experiment"] == "trial"]
    assert (row["treated"], row["held_out"]) == (4, 4)
    aum = row["aum_change"]
    assert (aum["treated"], aum["held_out"], aum["difference"]) == ("60000.00", "-2500.00", "62500.00")
    assert (aum["treated_n"], aum["held_out_n"]) == (4, 4)
    low, high = aum["ci95"]
    assert Decimal(low) < Decimal("62500.00") < Decimal(high)
    assert aum["conclusion"] == "too small to conclude"
    products = row["products_held_change"]
    assert (products["treated"], products["held_out"], products["difference"]) == (2.0, 0.0, 2.0)
    # The held-out customers are invited to a survey when their contact would have been due,
    # once: the second draw of one of them falls within the fatigue gap. They were not
    # contacted, so the observational comparison does not count them as contacted.
    invited = sandbox.query(
        "SELECT customer_id, requested_at FROM feedback.invitations WHERE held_out ORDER BY customer_id"
    )
    assert [(r[0], r[1]) for r in invited] == [(c, drawn + timedelta(hours=48)) for c in held]
    assert report["contacted"] == []
