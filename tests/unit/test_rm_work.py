"""The simulated RMs: business hours in the branch's zone, outcomes by persona and action."""

from __future__ import annotations

import random
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from shared.contracts.outbound import OutreachOutcome
from tierflow.rm_work import ITEM_MINUTES, business_slots, held_out_answer, outcome, survey_answer
from tierflow.simulate import PERSONAS

MONDAY = date(2026, 3, 2)
PERSONA = {persona.name: persona for persona in PERSONAS}


def test_rms_work_in_business_hours_of_their_branch_and_not_at_weekends() -> None:
    slots = business_slots(MONDAY, "Asia/Shanghai", 40)
    assert slots[0] == datetime(2026, 3, 2, 9, 0, tzinfo=ZoneInfo("Asia/Shanghai"))
    assert slots[0].utcoffset() == timedelta(hours=8)
    assert all(s + timedelta(minutes=ITEM_MINUTES) <= s.replace(hour=17, minute=30) for s in slots)
    assert len(slots) < 40, "a day holds only so many items"
    assert business_slots(MONDAY + timedelta(days=5), "Asia/Shanghai", 6) == []


def rates(persona: str, action: str, draws: int = 4000) -> dict[OutreachOutcome, float]:
    rng = random.Random(3)
    results = [outcome(rng, PERSONA[persona], action) for _ in range(draws)]
    return {kind: results.count(kind) / draws for kind in OutreachOutcome}


def test_a_drifting_customer_is_often_not_reached_and_an_affluent_one_converts_more_on_a_call() -> None:
    assert rates("drifting", "rm_call")[OutreachOutcome.NOT_REACHED] > 0.5
    assert rates("salaried", "rm_call")[OutreachOutcome.NOT_REACHED] < 0.4
    assert (
        rates("affluent", "rm_call")[OutreachOutcome.CONVERTED]
        > 1.5 * rates("salaried", "rm_call")[OutreachOutcome.CONVERTED]
    )


def test_some_customers_answer_the_follow_up_survey_after_the_contact_and_some_do_not() -> None:
    rng = random.Random(5)
    done = datetime(2026, 3, 2, 2, 0, tzinfo=ZoneInfo("UTC"))
    answers = [
        survey_answer(rng, PERSONA["retiree"], OutreachOutcome.REACHED, "O1", "C1", done) for _ in range(200)
    ]
    given = [a for a in answers if a is not None]
    assert 0.3 < len(given) / len(answers) < 0.7
    assert all(datetime.fromisoformat(a["answered_at"]) > done for a in given)
    assert {a["outreach_id"] for a in given} == {"O1"}
    assert all(0 <= a["score"] <= 10 for a in given)


def test_a_held_out_customer_answers_the_survey_after_their_contact_would_have_been_due_or_not() -> None:
    rng = random.Random(5)
    due = datetime(2026, 3, 4, 2, 0, tzinfo=ZoneInfo("UTC"))
    item = {"id": "O-HELD", "customer_id": "C2", "sla_due_at": due.isoformat()}
    answers = [held_out_answer(rng, PERSONA["retiree"], item) for _ in range(200)]
    given = [a for a in answers if a is not None]
    assert 0.3 < len(given) / len(answers) < 0.7
    assert all(datetime.fromisoformat(a["answered_at"]) > due for a in given)
    assert {(a["outreach_id"], a["customer_id"], a["kind"]) for a in given} == {("O-HELD", "C2", "nps")}
