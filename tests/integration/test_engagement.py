"""Engagement on the real broker and database: outreach from tier changes, guardrails, RM work."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from aiokafka import ConsumerRecord

from services.engagement.domain.holdouts import in_control_group
from services.engagement.domain.playbook import default_playbook
from services.engagement.handlers import Engagement, change_decoder
from shared.consumer import Delivered
from shared.db import create_engine
from shared.topics import OUTREACH, TIER_CHANGES
from tests import factories
from tests.factories import tier_change
from tests.infra import (
    ADMIN_KEY,
    BOUND_RM_KEYS,
    INGEST_KEY,
    OPS_KEY,
    RM_KEY,
    Infra,
    ServiceProcess,
    fetch_rows,
    fresh_database,
    wait_until,
)
from tests.integration.scoring_support import ScoringSandbox, partition_neighbour
from tests.kafka_reader import read_messages

pytestmark = pytest.mark.integration
NOW = datetime.now(UTC)
CONSENTS = {"phone": True, "sms": True, "email": True, "app": True}


@pytest.fixture
def sandbox(infra: Infra) -> Iterator[ScoringSandbox]:
    box = ScoringSandbox(infra)
    yield box
    box.stop_all()


def items(service: ServiceProcess, customer_id: str) -> list[dict[str, Any]]:
    response = httpx.get(
        f"{service.base_url}/v1/outreach",
        params={"customer_id": customer_id},
        headers={"authorization": f"Bearer {OPS_KEY}"},
    )
    assert response.status_code == 200
    found: list[dict[str, Any]] = response.json()
    return found


def queued(found: list[dict[str, Any]]) -> list[str]:
    return sorted(i["action"] for i in found if i["status"] in ("queued", "assigned"))


def test_downgrading_a_wealth_customer_through_events_queues_one_retention_call_for_their_rm(
    sandbox: ScoringSandbox,
) -> None:
    sandbox.start()
    engagement = sandbox.start("engagement")
    sandbox.produce(
        [
            factories.customer("C-DOWN", rm_id="RM-7", branch_id="B1"),
            factories.balance("C-DOWN", aum="620000.00", as_of=(NOW - timedelta(days=100)).isoformat()),
        ]
    )
    wait_until(lambda: "rm_call" in queued(items(engagement, "C-DOWN")), 60, "the top-tier welcome")
    sandbox.produce(
        [factories.balance("C-DOWN", aum="1000.00", as_of=(NOW - timedelta(days=35)).isoformat())]
    )

    def retention() -> list[dict[str, Any]]:
        return [
            i
            for i in items(engagement, "C-DOWN")
            if i["reason"].startswith("top-tier-retention") and i["status"] == "assigned"
        ]

    wait_until(lambda: len(retention()) == 1, 60, "the retention call")
    call = retention()[0]
    assert (call["action"], call["priority"], call["assigned_to"], call["channel"]) == (
        "rm_call",
        "high",
        "RM-7",
        "phone",
    )
    welcome = [i for i in items(engagement, "C-DOWN") if i["reason"].startswith("top-tier-welcome")]
    assert len(welcome) == 2
    assert {(i["status"], i["cancel_reason"]) for i in welcome} == {
        ("cancelled", "superseded: the customer changed tier or stage again")
    }
    assert queued(items(engagement, "C-DOWN")) == ["rm_call"]


def test_guardrails_hold_on_the_real_queue(sandbox: ScoringSandbox) -> None:
    engagement = sandbox.start("engagement")
    opted_out = tier_change(
        "C-OPT",
        ("mass", "regular"),
        ("vip", "regular"),
        profile={"consents": {"app": False, "sms": False, "email": True}},
    )
    complaint = tier_change("C-COMPLAINT", ("mass", "regular"), ("vip", "at_risk"), complaints_open_high=1)
    churned = tier_change("C-CHURN", ("vip", "at_risk"), ("vip", "churned"))
    sandbox.produce([opted_out, complaint, churned, churned], topic=TIER_CHANGES)

    wait_until(lambda: len(items(engagement, "C-CHURN")) == 2, 60, "the win-back items")
    assert queued(items(engagement, "C-CHURN")) == ["offer", "return_visit_call"], (
        "a redelivered change adds nothing"
    )
    assert [i["channel"] for i in items(engagement, "C-OPT")] == ["email"]
    complaint_items = items(engagement, "C-COMPLAINT")
    assert queued(complaint_items) == ["rm_call"]
    assert all(i["category"] != "marketing" for i in complaint_items if i["status"] != "cancelled")
    assert any("complaint" in (i["cancel_reason"] or "") for i in complaint_items)


def test_the_same_change_id_from_two_sources_is_two_changes_and_a_resend_of_either_is_one(
    sandbox: ScoringSandbox,
) -> None:
    engagement = sandbox.start("engagement")

    def churn(customer_id: str, source: str, cause: dict[str, str], change_id: str) -> dict[str, Any]:
        change = tier_change(customer_id, ("vip", "at_risk"), ("vip", "churned"), caused_by=cause)
        return factories.with_envelope(change, source=source, id=change_id)

    # Two publishers whose ids coincide, and a cause whose id has a space (the envelope allows it).
    home = churn("C-SRC-HOME", "tierflow/scoring", {"source": "core-banking", "id": "1"}, "chg-1")
    abroad = churn("C-SRC-ABROAD", "tierflow/scoring-hk", {"source": "card-system", "id": "1"}, "chg-1")
    spaced = churn("C-SRC-SPACE", "tierflow/scoring", {"source": "core-banking", "id": "evt 1"}, "chg-2")
    sandbox.produce([home, abroad, home, spaced, abroad], topic=TIER_CHANGES)

    customers = ("C-SRC-HOME", "C-SRC-ABROAD", "C-SRC-SPACE")
    wait_until(lambda: all(len(items(engagement, c)) == 2 for c in customers), 60, "the win-back items")
    assert sandbox.query("SELECT count(*) FROM engagement.applied_events")[0][0] == 3
    ids = [i["id"] for c in ("C-SRC-HOME", "C-SRC-ABROAD") for i in items(engagement, c)]
    assert len(set(ids)) == 4
    dead = read_messages(sandbox.infra.bootstrap_servers, sandbox.topics.dlq(TIER_CHANGES))
    assert dead == []


def test_a_third_marketing_contact_inside_the_cap_window_is_not_queued(sandbox: ScoringSandbox) -> None:
    engagement = sandbox.start("engagement")
    admin = {"authorization": f"Bearer {ADMIN_KEY}", "X-RM-Id": "CAMPAIGN-TOOL"}

    def contact_made(change: dict[str, Any], expected_items: int) -> None:
        sandbox.produce([change], topic=TIER_CHANGES)
        wait_until(lambda: len(items(engagement, "C-CAP")) == expected_items, 60, "the marketing item")
        item = next(i for i in items(engagement, "C-CAP") if i["status"] == "queued")
        for step, body in (("claim", None), ("start", None), ("complete", {"outcome": "reached"})):
            response = httpx.post(
                f"{engagement.base_url}/v1/outreach/{item['id']}/{step}", json=body, headers=admin
            )
            assert response.status_code == 200, response.text

    contact_made(tier_change("C-CAP", (None, None), ("mass", "new")), 1)
    contact_made(tier_change("C-CAP", ("mass", "new"), ("vip", "new")), 2)
    sandbox.produce([tier_change("C-CAP", ("vip", "new"), ("vip", "regular"))], topic=TIER_CHANGES)
    wait_until(lambda: len(items(engagement, "C-CAP")) == 3, 60, "the third decision")
    third = next(i for i in items(engagement, "C-CAP") if i["status"] not in ("completed",))
    assert third["status"] == "cancelled"
    assert "frequency cap of 2 marketing contacts per 7 days" in third["cancel_reason"]


def test_an_rm_works_an_item_to_completed_and_each_step_is_on_the_stream(sandbox: ScoringSandbox) -> None:
    engagement = sandbox.start("engagement")
    sandbox.produce([tier_change("C-WORK", ("wealth", "core"), ("vip", "core"))], topic=TIER_CHANGES)
    wait_until(lambda: len(items(engagement, "C-WORK")) == 1, 60, "the retention call")
    item = items(engagement, "C-WORK")[0]
    base = f"{engagement.base_url}/v1/outreach/{item['id']}"

    def post(step: str, key: str, **body: Any) -> httpx.Response:
        # Every request names the holder, RM-7: only an admin key may act for an RM it names.
        headers = {"authorization": f"Bearer {key}", "X-RM-Id": "RM-7"}
        return httpx.post(f"{base}/{step}", json=body or None, headers=headers)

    rm7, rm9 = BOUND_RM_KEYS["RM-7"], BOUND_RM_KEYS["RM-9"]
    assert post("start", rm9).status_code == 409  # someone else's item, whoever the request names
    assert post("cancel", rm9, reason="not mine").status_code == 409
    assert post("complete", rm7, outcome="reached").status_code == 409  # not started yet
    assert post("start", OPS_KEY).status_code == 403
    unbound = post("start", RM_KEY)  # a key any RM could hold, naming whom it likes
    assert unbound.status_code == 403
    assert "not bound to an RM" in unbound.json()["detail"]
    stated = httpx.post(
        f"{base}/start",
        params={"at": (NOW - timedelta(days=3)).isoformat()},
        headers={"authorization": f"Bearer {rm7}"},
    )
    assert stated.status_code == 422, "live, on the wall clock, nobody says when an action happened"
    assert "event or fixed clock" in stated.json()["detail"]
    assert post("start", rm7).json()["status"] == "in_progress"
    done = post("complete", rm7, outcome="converted", note="moved savings into a fund")
    assert done.status_code == 200
    assert (done.json()["status"], done.json()["outcome"]) == ("completed", "converted")

    def on_stream() -> list[dict[str, Any]]:
        messages = read_messages(sandbox.infra.bootstrap_servers, sandbox.topics.name(OUTREACH))
        return [json.loads(m.value) for m in messages if m.key == b"C-WORK"]

    wait_until(lambda: len(on_stream()) == 4, 30, "every transition on the stream")
    types = [e["type"] for e in on_stream()]
    assert types == [
        "engagement.outreach_assigned.v1",
        "engagement.outreach_in_progress.v1",
        "engagement.outreach_completed.v1",
        "engagement.survey_requested.v1",
    ]
    stats = httpx.get(
        f"{engagement.base_url}/v1/outreach/stats",
        params={
            "from": (NOW - timedelta(days=1)).isoformat(),
            "to": (datetime.now(UTC) + timedelta(minutes=1)).isoformat(),
        },
        headers={"authorization": f"Bearer {OPS_KEY}"},
    ).json()
    row = next(s for s in stats if s["action"] == "rm_call")
    assert (row["completed"], row["converted"], row["conversion_rate"]) == (1, 1, 1.0)
    assert (row["first_contact_within_sla"], row["held_out"]) == (1, 0)


def test_without_a_customer_rm_the_least_loaded_rm_of_the_branch_with_room_gets_the_item(
    sandbox: ScoringSandbox,
) -> None:
    engagement = sandbox.start("engagement")
    admin = {"authorization": f"Bearer {ADMIN_KEY}"}
    for rm_id, capacity in (("RM-A", 1), ("RM-B", 5)):
        assert (
            httpx.put(
                f"{engagement.base_url}/v1/rms/{rm_id}",
                json={"branch_id": "B9", "capacity": capacity},
                headers=admin,
            ).status_code
            == 200
        )
    profile = {"branch_id": "B9", "consents": CONSENTS, "risk_profile": "C2"}
    sandbox.produce(
        [tier_change(f"C-POOL-{n}", ("wealth", "core"), ("vip", "core"), profile=profile) for n in range(3)],
        topic=TIER_CHANGES,
    )
    wait_until(lambda: all(items(engagement, f"C-POOL-{n}") for n in range(3)), 60, "three retention calls")
    holders = sorted(items(engagement, f"C-POOL-{n}")[0]["assigned_to"] for n in range(3))
    assert holders.count("RM-B") >= 2
    workload = {w["rm_id"]: w for w in httpx.get(f"{engagement.base_url}/v1/rms", headers=admin).json()}
    assert workload["RM-A"]["open_items"] <= 1
    assert workload["RM-A"]["open_items"] + workload["RM-B"]["open_items"] == 3
    other = {"branch_id": "B10", "capacity": 3}
    assert httpx.put(f"{engagement.base_url}/v1/rms/RM-C", json=other, headers=admin).status_code == 200
    branch = httpx.get(f"{engagement.base_url}/v1/rms", params={"branch_id": "B9"}, headers=admin).json()
    assert sorted(w["rm_id"] for w in branch) == ["RM-A", "RM-B"]


def test_an_engagement_worker_killed_mid_stream_loses_and_duplicates_nothing(sandbox: ScoringSandbox) -> None:
    import signal

    first = sandbox.start("engagement")
    changes = [tier_change(f"C-KILL-{n:04d}", ("wealth", "core"), ("vip", "core")) for n in range(400)]
    sandbox.produce(changes[:200], topic=TIER_CHANGES)

    def applied() -> int:
        return int(sandbox.query("SELECT count(*) FROM engagement.applied_events")[0][0])

    wait_until(lambda: applied() >= 50, 60, "the worker to get going")
    assert first.process is not None
    first.process.send_signal(signal.SIGKILL)
    first.process.wait(10)
    # The other half, and a hundred redelivered, arrive only after the kill.
    sandbox.produce(changes[200:] + changes[:100], topic=TIER_CHANGES)
    assert applied() < len(changes), "the kill must land mid-stream"
    sandbox.start("engagement")
    wait_until(lambda: applied() == len(changes), 120, "every change applied once")
    rows = sandbox.query("SELECT customer_id, count(*) FROM engagement.items GROUP BY customer_id")
    assert len(rows) == len(changes)
    assert {row[1] for row in rows} == {1}


def test_a_customer_going_silent_into_churned_gets_a_return_visit_call(sandbox: ScoringSandbox) -> None:
    sandbox.start(TIERFLOW_SCORING_CLOCK="event")
    engagement = sandbox.start("engagement")
    start = datetime(2025, 2, 3, 10, 0, tzinfo=UTC)
    sandbox.produce(
        [
            factories.with_envelope(
                factories.customer("C-GONE", rm_id="RM-3", branch_id="B3"), time=start.isoformat()
            ),
            factories.with_envelope(factories.transaction("C-GONE", amount="300.00"), time=start.isoformat()),
        ]
    )
    # C-GONE's partition's clock moves on with another customer's events; C-GONE stays silent.
    later = (start + timedelta(days=200)).isoformat()
    neighbour = factories.interaction(partition_neighbour("C-GONE"))
    sandbox.produce([factories.with_envelope(neighbour, time=later)])

    def return_visit() -> list[dict[str, Any]]:
        return [i for i in items(engagement, "C-GONE") if i["action"] == "return_visit_call"]

    wait_until(lambda: bool(return_visit()), 90, "the return-visit call")
    call = return_visit()[0]
    assert (call["status"], call["assigned_to"], call["stage"]) == ("assigned", "RM-3", "churned")


def test_playbooks_are_versioned_and_the_active_one_decides(sandbox: ScoringSandbox) -> None:
    import yaml

    from services.engagement.domain.playbook import default_playbook

    engagement = sandbox.start("engagement")
    admin = {"authorization": f"Bearer {ADMIN_KEY}"}
    wait_until(
        lambda: httpx.get(f"{engagement.base_url}/v1/playbooks", headers=admin).json() != [],
        30,
        "the default playbook",
    )
    listed = httpx.get(f"{engagement.base_url}/v1/playbooks", headers=admin).json()
    assert [(p["version"], p["active"]) for p in listed] == [(default_playbook().version, True)]

    playbook = default_playbook().model_dump(mode="json")
    playbook["version"] = "sms-retention-2"
    playbook["rules"] = [
        {
            "name": "sms-retention",
            "when": {"directions": ["downgrade"]},
            "actions": [
                {"kind": "sms", "category": "retention", "channels": ["sms"], "template": "we-miss-you"}
            ],
        }
    ]
    body = yaml.safe_dump(playbook)
    yaml_headers = {**admin, "content-type": "application/yaml"}
    created = httpx.post(f"{engagement.base_url}/v1/playbooks", content=body, headers=yaml_headers)
    assert created.status_code == 201, created.text
    assert (
        httpx.post(f"{engagement.base_url}/v1/playbooks", content=body, headers=yaml_headers).status_code
        == 409
    )
    broken = httpx.post(f"{engagement.base_url}/v1/playbooks", json={**playbook, "rules": []}, headers=admin)
    assert broken.status_code == 422
    assert httpx.post(f"{engagement.base_url}/v1/playbooks/nope/activate", headers=admin).status_code == 404
    assert httpx.post(f"{engagement.base_url}/v1/playbooks/sms-retention-2/activate", headers=admin).json()[
        "active"
    ]

    sandbox.produce([tier_change("C-PB", ("wealth", "core"), ("vip", "core"))], topic=TIER_CHANGES)
    wait_until(lambda: bool(items(engagement, "C-PB")), 60, "the item under the new playbook")
    assert [(i["action"], i["channel"]) for i in items(engagement, "C-PB")] == [("sms", "sms")]


def test_on_the_event_clock_a_tenth_of_the_vip_welcomes_is_held_out_visibly_rms_act_in_simulated_time_and_feedback_compares_the_groups(  # noqa: E501
    sandbox: ScoringSandbox,
) -> None:
    engagement = sandbox.start("engagement", TIERFLOW_SCORING_CLOCK="event")
    feedback = sandbox.start("feedback", TIERFLOW_SCORING_CLOCK="event")
    simulated = datetime(2026, 3, 2, 4, 0, tzinfo=UTC)  # noon in Shanghai, months before the wall clock
    customers = [f"C-HO-{number:02d}" for number in range(40)]
    welcome = next(rule.holdout for rule in default_playbook().rules if rule.name == "vip-welcome")
    assert welcome is not None
    expected_held = sorted(c for c in customers if in_control_group(c, welcome))
    assert 0 < len(expected_held) < 10
    sandbox.produce(
        [
            factories.with_envelope(
                tier_change(c, ("mass", "regular"), ("vip", "regular")),
                time=(simulated + timedelta(minutes=n)).isoformat(),
            )
            for n, c in enumerate(customers)
        ],
        topic=TIER_CHANGES,
    )
    ops = {"authorization": f"Bearer {OPS_KEY}"}

    def listed(**params: str) -> list[dict[str, Any]]:
        response = httpx.get(f"{engagement.base_url}/v1/outreach", params=params, headers=ops)
        assert response.status_code == 200
        found: list[dict[str, Any]] = response.json()
        return found

    wait_until(lambda: len(listed(action="app_push")) == len(customers), 60, "every welcome planned")
    held = listed(status="held_out")
    assert sorted(i["customer_id"] for i in held) == expected_held
    assert {(i["experiment"], i["closed_at"] is not None, i["assigned_to"]) for i in held} == {
        ("vip-welcome-holdout", True, None)
    }
    assert all(
        i["reason"].startswith("holdout: control group of experiment vip-welcome-holdout") for i in held
    )
    treated = listed(status="queued")
    assert len(treated) == len(customers) - len(expected_held)
    assert {i["experiment"] for i in treated} == {"vip-welcome-holdout"}
    # The event clock: each item was made at its change's time, not when it arrived.
    first = treated[0]
    offset = customers.index(first["customer_id"])
    assert datetime.fromisoformat(first["created_at"]) == simulated + timedelta(minutes=offset)

    stats = httpx.get(
        f"{engagement.base_url}/v1/outreach/stats",
        params={"from": simulated.isoformat(), "to": (simulated + timedelta(days=1)).isoformat()},
        headers=ops,
    ).json()
    row = next(s for s in stats if s["action"] == "app_push")
    assert (row["items"], row["held_out"]) == (len(treated), len(expected_held))

    def act(item_id: str, step: str, at: datetime, **body: Any) -> httpx.Response:
        return httpx.post(
            f"{engagement.base_url}/v1/outreach/{item_id}/{step}",
            params={"at": at.isoformat()},
            json=body or None,
            headers={"authorization": f"Bearer {BOUND_RM_KEYS['RM-7']}"},
        )

    assert act(held[0]["id"], "claim", simulated + timedelta(hours=1)).status_code == 409
    born = datetime.fromisoformat(first["created_at"])
    before_birth = act(first["id"], "claim", born - timedelta(seconds=1))
    assert before_birth.status_code == 422
    assert "cannot predate the item" in before_birth.json()["detail"]
    assert act(first["id"], "claim", simulated + timedelta(hours=1)).status_code == 200
    assert act(first["id"], "start", simulated + timedelta(minutes=59)).status_code == 422, "before the claim"
    started = act(first["id"], "start", simulated + timedelta(hours=2))
    assert datetime.fromisoformat(started.json()["first_contact_at"]) == simulated + timedelta(hours=2)
    done = act(first["id"], "complete", simulated + timedelta(hours=3), outcome="reached")
    assert datetime.fromisoformat(done.json()["closed_at"]) == simulated + timedelta(hours=3)

    # Feedback knows both groups from the outreach stream; a week on, every treated customer
    # has moved up to wealth and no held-out one has.
    later = simulated + timedelta(days=7)
    sandbox.produce(
        [
            factories.with_envelope(
                tier_change(c, ("vip", "regular"), ("wealth", "regular")), time=later.isoformat()
            )
            for c in customers
            if c not in expected_held
        ],
        topic=TIER_CHANGES,
    )
    period = {"from": simulated.isoformat(), "to": (simulated + timedelta(days=1)).isoformat(), "days": "30"}

    def comparison() -> dict[str, Any] | None:
        report = httpx.get(f"{feedback.base_url}/v1/reports/effectiveness", params=period, headers=ops).json()
        rows = [r for r in report["holdouts"] if r["experiment"] == "vip-welcome-holdout"]
        return rows[0] if rows and rows[0]["tier_up"]["treated"] == 1.0 else None

    wait_until(lambda: comparison() is not None, 60, "both groups and the later tiers in feedback")
    row = comparison()
    assert row is not None
    assert (row["tier"], row["action"], row["treated"], row["held_out"]) == (
        "vip",
        "app_push",
        len(treated),
        len(expected_held),
    )
    assert (row["tier_up"]["held_out"], row["tier_up"]["difference"]) == (0.0, 1.0)
    assert row["tier_up"]["conclusion"] == "too small to conclude", "fewer than 30 held out"
    assert row["nps_later"]["difference"] is None
    # Feedback's own now is on the same calendar: an answer without a time was given then.
    survey = {"customer_id": customers[0], "survey_id": "S-HO-1", "kind": "nps", "score": 9}
    ingest = {"authorization": f"Bearer {INGEST_KEY}"}
    assert httpx.post(f"{feedback.base_url}/v1/surveys", json=survey, headers=ingest).status_code == 202
    answered = sandbox.query("SELECT answered_at FROM feedback.surveys WHERE survey_id = 'S-HO-1'")[0][0]
    assert answered == later


def zone_at_local_hours(hours: range) -> str:
    """A fixed-offset time zone whose local hour is now within `hours`."""
    for offset in range(-12, 15):
        zone = f"Etc/GMT{-offset:+d}"  # Etc/GMT-5 is five hours ahead of UTC
        if datetime.now(ZoneInfo(zone)).hour in hours:
            return zone
    raise AssertionError(f"no zone at local hours {hours}")


def household_member_change(customer_id: str, household: str, change_id: str, zone: str) -> dict[str, Any]:
    """A member's upgrade into wealth that a household change caused: a named RM and a call."""
    profile = {
        "rm_id": "RM-7",
        "branch_id": "B1",
        "consents": CONSENTS,
        "risk_profile": "C2",
        "timezone": zone,
    }
    return tier_change(
        customer_id,
        ("vip", "core"),
        ("wealth", "core"),
        profile=profile,
        caused_by={"source": "tierflow.households", "id": change_id},
        household_id=household,
        household_role="spouse",
        household_tier="wealth",
        household_rm_id="RM-HOME",
        household_change=change_id,
    )


def test_the_members_changes_of_one_household_change_make_one_rm_contact_for_the_household_by_its_rm(
    sandbox: ScoringSandbox,
) -> None:
    engagement = sandbox.start("engagement")
    day, night = zone_at_local_hours(range(10, 18)), zone_at_local_hours(range(1, 6))
    sandbox.produce(
        [household_member_change(c, "HH-1", "hc-1", day) for c in ("HM-A", "HM-B")]
        # Another household's members, changed by two household changes: one contact each.
        + [household_member_change(c, "HH-2", f"hc-{c}", day) for c in ("HN-A", "HN-B")],
        topic=TIER_CHANGES,
    )
    everyone = ["HM-A", "HM-B", "HN-A", "HN-B"]
    wait_until(lambda: all(len(items(engagement, c)) == 2 for c in everyone), 60, "the members' RM items")
    # The member in quiet hours arrives once the household's contact is made: whichever member's
    # change comes first makes the contact, and a call due in one's morning would cover the
    # members reachable then.
    sandbox.produce([household_member_change("HM-C", "HH-1", "hc-1", night)], topic=TIER_CHANGES)
    wait_until(lambda: len(items(engagement, "HM-C")) == 2, 60, "the third member's RM items")

    def household_items(household: str, **filters: str) -> list[dict[str, Any]]:
        response = httpx.get(
            f"{engagement.base_url}/v1/outreach",
            params={"household_id": household, **filters},
            headers={"authorization": f"Bearer {OPS_KEY}"},
        )
        assert response.status_code == 200
        found: list[dict[str, Any]] = response.json()
        return found

    calls = {i["customer_id"]: i for i in household_items("HH-1", action="rm_call")}
    day_calls = [calls["HM-A"], calls["HM-B"]]
    (contact,) = [i for i in day_calls if i["status"] == "assigned"]
    (covered,) = [i for i in day_calls if i["status"] == "covered"]
    # One RM for the household, the primary's, over the member's own RM.
    assert contact["assigned_to"] == "RM-HOME"
    assert "household HH-1 contact" in contact["reason"]
    assert covered["covered_by"] == contact["id"]
    assert covered["assigned_to"] is None
    assert covered["reason"].startswith(f"household: covered by household HH-1's rm_call {contact['id']}")
    # The member in quiet hours is not covered: their own call, by the household's RM, in their morning.
    own = calls["HM-C"]
    assert (own["status"], own["covered_by"], own["assigned_to"]) == ("assigned", None, "RM-HOME")
    assert own["due_at"] > contact["due_at"]
    # Naming an RM is no call: it covers the member in quiet hours too.
    (named,) = [i for i in household_items("HH-1", action="assign_rm") if i["status"] == "assigned"]
    assert sorted(named["covered_members"]) == ["HM-A", "HM-B", "HM-C"]
    assert named["covered_members"][0] == named["customer_id"]
    assert contact["covered_members"] == [contact["customer_id"], covered["customer_id"]]
    assert len(household_items("HH-1", status="covered")) == 3

    other = household_items("HH-2")
    assert [i["status"] for i in other] == ["assigned"] * 4
    assert {i["household_change"] for i in other} == {"hc-HN-A", "hc-HN-B"}

    audit = sandbox.query(
        "SELECT to_status, note FROM engagement.item_audit WHERE item_id = $1::uuid ORDER BY id",
        contact["id"],
    )
    assert [tuple(row) for row in audit][-1] == ("assigned", "household HH-1: now covers 2 members")

    # An erased member leaves the household's contacts that listed them.
    sandbox.produce([factories.customer_erased(covered["customer_id"])], topic=TIER_CHANGES)
    wait_until(lambda: items(engagement, covered["customer_id"]) == [], 60, "the erasure")
    listed = {i["id"]: i["covered_members"] for i in household_items("HH-1")}
    assert listed[contact["id"]] == [contact["customer_id"]]
    assert covered["customer_id"] not in listed[named["id"]]


def test_members_of_a_household_change_applied_by_two_workers_at_once_share_one_contact(infra: Infra) -> None:
    database_url = fresh_database(infra, f"hhcontact_{uuid.uuid4().hex[:8]}")
    settings = infra.settings(DATABASE_URL=database_url)
    decode = change_decoder(settings)
    zone = zone_at_local_hours(range(10, 18))

    def delivered(customer_id: str, partition: int) -> list[Delivered[Any]]:
        value = json.dumps(household_member_change(customer_id, "HH-9", "hc-9", zone)).encode()
        key = customer_id.encode()
        record = ConsumerRecord(TIER_CHANGES, partition, 0, 0, 0, key, value, None, len(key), len(value), ())
        return [Delivered(decode(record), TIER_CHANGES, partition, 0)]

    async def two_workers() -> None:
        engines = [create_engine(settings), create_engine(settings)]
        try:
            workers = [Engagement(engine, "customer.outreach.v1") for engine in engines]
            await workers[0].ensure_playbook()
            batches = [delivered(f"HW-{n}", n) for n in range(2)]
            await asyncio.gather(*(w.apply_batch(b) for w, b in zip(workers, batches, strict=True)))
        finally:
            for engine in engines:
                await engine.dispose()

    asyncio.run(two_workers())
    rows = fetch_rows(
        database_url,
        "SELECT kind, status, covered_members FROM engagement.items WHERE household_change = 'hc-9' "
        "ORDER BY kind, status",
    )
    by_kind = {(row[0], row[1]): sorted(row[2]) for row in rows}
    assert len(rows) == 4
    for kind in ("assign_rm", "rm_call"):
        assert by_kind[(kind, "assigned")] == ["HW-0", "HW-1"]
        assert by_kind[(kind, "covered")] == []
