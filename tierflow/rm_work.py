"""RMs at work in the simulated bank: each works their branch's queue in business hours in the
branch's time zone, claims, calls and completes items with outcomes that depend on the
customer's persona and the action, and asks for follow-up surveys that customers answer or not.
Customers an experiment held out are asked too, when their contact would have been due, as
feedback invites them, so the later NPS is there to compare in both groups.

An RM gets through a fixed number of items a working day, so a branch over capacity leaves
items waiting past their SLA. Every action states its simulated time (`at`): engagement runs
on the event clock in the demo. Decisions are drawn from a seeded stream, so the same bank
works the same way; what there is to work depends on how far the services have caught up.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx

from services.feedback.domain.surveys import held_out_invitation
from shared.contracts.outbound import REACHED_OUTCOMES, OutreachOutcome
from tierflow.simulate import Bank, Branch, Persona, Rm, branches, persona_of

BRANCH_TIMEZONES = {"urban": "Asia/Shanghai", "rural": "Asia/Shanghai", "overseas": "Asia/Hong_Kong"}
DAY_STARTS, DAY_ENDS = time(9, 0), time(17, 30)
ITEM_MINUTES = 25
# Items one RM works in a day: the senior RM of a branch has other duties too.
ITEMS_PER_DAY = 6
# Reached on a call: a drifting customer often is not; an RM's own clients usually are.
REACH_RATE = {"drifting": 0.35, "student": 0.55, "one_off": 0.6, "affluent": 0.85, "private": 0.9}
DEFAULT_REACH_RATE = 0.7
# Converted when reached, by action; an affluent customer converts more often on an upgrade call.
CONVERSION_RATE = {"rm_call": 0.25, "offer": 0.15, "return_visit_call": 0.1, "assign_rm": 0.0}
DEFAULT_CONVERSION_RATE = 0.08
AFFLUENT_CALL_LIFT = 2.0
SURVEY_ANSWER_RATE = {"drifting": 0.2, "student": 0.3}
DEFAULT_SURVEY_ANSWER_RATE = 0.5
RESULT_LIMIT = 1000


def rm_headers(rm: Rm) -> dict[str, str]:
    """How an RM identifies themselves to engagement: the one place to change for per-RM keys."""
    return {"X-RM-Id": rm.rm_id}


def business_slots(day: date, zone: str, count: int) -> list[datetime]:
    """When an RM starts each of `count` items on `day`, in business hours in `zone`; none at
    weekends."""
    if day.weekday() >= 5:
        return []
    tz = ZoneInfo(zone)
    opening = datetime.combine(day, DAY_STARTS, tz)
    closing = datetime.combine(day, DAY_ENDS, tz)
    slots = [opening + timedelta(minutes=ITEM_MINUTES * n) for n in range(count)]
    return [slot for slot in slots if slot + timedelta(minutes=ITEM_MINUTES) <= closing]


def outcome(rng: random.Random, persona: Persona, action: str) -> OutreachOutcome:
    if rng.random() >= REACH_RATE.get(persona.name, DEFAULT_REACH_RATE):
        return OutreachOutcome.NOT_REACHED
    conversion = CONVERSION_RATE.get(action, DEFAULT_CONVERSION_RATE)
    if action == "rm_call" and persona.name in ("affluent", "private"):
        conversion *= AFFLUENT_CALL_LIFT
    return OutreachOutcome.CONVERTED if rng.random() < conversion else OutreachOutcome.REACHED


def survey_answer(
    rng: random.Random,
    persona: Persona,
    result: OutreachOutcome,
    outreach_id: str,
    customer_id: str,
    at: datetime,
) -> dict[str, Any] | None:
    """The customer's NPS answer to the follow-up survey a day or two on, or None if they ignore it."""
    if rng.random() >= SURVEY_ANSWER_RATE.get(persona.name, DEFAULT_SURVEY_ANSWER_RATE):
        return None
    lift = 1.0 if result is OutreachOutcome.CONVERTED else 0.0
    score = min(10, max(0, round(rng.gauss(persona.nps_base + lift, 1.5))))
    answered = at + timedelta(hours=rng.uniform(4, 48))
    return {"customer_id": customer_id, "survey_id": f"FU-{outreach_id}", "outreach_id": outreach_id,
            "kind": "nps", "score": score, "answered_at": answered.isoformat()}  # fmt: skip


def held_out_answer(rng: random.Random, persona: Persona, item: dict[str, Any]) -> dict[str, Any] | None:
    """A held-out customer's answer to the survey they are invited to when the contact they were
    held out of was due: answered as often, and scored as, by a customer nobody reached."""
    due = datetime.fromisoformat(item["sla_due_at"])
    return survey_answer(rng, persona, OutreachOutcome.NOT_REACHED, item["id"], item["customer_id"], due)


@dataclass
class RmWork:
    """What the RMs did: items worked, outcomes, surveys requested and answered (the SLA they
    kept is engagement's figure)."""

    worked: int = 0
    outcomes: dict[str, int] = field(default_factory=dict)
    surveys_requested: int = 0
    surveys_answered: int = 0
    worked_until: str | None = None
    # One customer's whole loop starts here: the first item worked whose survey was answered.
    loop: dict[str, Any] = field(default_factory=dict)


@dataclass
class Rms:
    """The bank's RMs working engagement's queue day by day as the simulated year goes by."""

    bank: Bank
    engagement: httpx.Client
    feedback: httpx.Client
    personas: Callable[[str], Persona]
    work: RmWork = field(default_factory=RmWork)
    _next_day: date | None = None
    _rng: random.Random = field(init=False)
    # Held-out items already surveyed (or skipped), and when each customer was invited, which
    # survey fatigue counts as feedback does.
    _held_out_done: set[str] = field(default_factory=set)
    _invited_at: dict[str, list[datetime]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.bank.seed * 7 + 11)
        self._branches = {branch.branch_id: branch for branch in branches(self.bank)}

    def until(self, reached: datetime) -> None:
        """Work every day that has fully passed by simulated time `reached`."""
        day = self._next_day or self.bank.start.date()
        while day < reached.date():
            self.work_day(day)
            day += timedelta(days=1)
        self._next_day = day

    def work_day(self, day: date) -> None:
        queue = self._open_items()
        answers: list[dict[str, Any]] = []
        for branch in self._branches.values():
            mine = [i for i in queue if i["branch_id"] == branch.branch_id]
            for rm, slot, item in _assignments(branch, mine, day):
                answer = self._work_item(rm, item, slot)
                if answer is not None:
                    answers.append(answer)
        after_calls = _already_given(answers)
        answers = after_calls + _already_given(self._held_out_answers(day))
        if answers:
            self.feedback.post("/v1/surveys", json=answers).raise_for_status()
            self.work.surveys_answered += len(answers)
            # The loop shown is a contact's: the first answer after an RM's call, not a held-out one.
            if not self.work.loop and after_calls:
                first = after_calls[0]
                self.work.loop = {"customer_id": first["customer_id"], "outreach_id": first["outreach_id"],
                                  "survey": first}  # fmt: skip
        self.work.worked_until = day.isoformat()

    def _held_out_answers(self, day: date) -> list[dict[str, Any]]:
        """Answers of the held-out customers whose contact was due by the end of `day`."""
        end = datetime.combine(day + timedelta(days=1), time(0), UTC)
        response = self.engagement.get(
            "/v1/outreach",
            params={"status": "held_out", "due_before": end.isoformat(), "limit": RESULT_LIMIT},
        )
        response.raise_for_status()
        answers: list[dict[str, Any]] = []
        for item in response.json():
            due = datetime.fromisoformat(item["sla_due_at"])
            if item["id"] in self._held_out_done or due >= end:
                continue
            self._held_out_done.add(item["id"])
            invited = self._invited_at.setdefault(item["customer_id"], [])
            if held_out_invitation(due, invited) is None:
                continue  # survey fatigue: feedback does not invite them
            invited.append(due)
            answer = held_out_answer(self._rng, self.personas(item["customer_id"]), item)
            if answer is not None:
                answers.append(answer)
        return answers

    def _open_items(self) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        for status in ("assigned", "queued"):
            response = self.engagement.get("/v1/outreach", params={"status": status, "limit": RESULT_LIMIT})
            response.raise_for_status()
            found += response.json()
        return found

    def _work_item(self, rm: Rm, item: dict[str, Any], slot: datetime) -> dict[str, Any] | None:
        base = f"/v1/outreach/{item['id']}"
        headers = rm_headers(rm)
        for step, at in (("claim", slot), ("start", slot + timedelta(minutes=5))):
            if self.engagement.post(
                f"{base}/{step}", params={"at": at.isoformat()}, headers=headers
            ).is_error:
                return None  # taken or closed meanwhile (superseded, expired): the next one
        persona = self.personas(item["customer_id"])
        result = outcome(self._rng, persona, item["action"])
        done_at = slot + timedelta(minutes=ITEM_MINUTES - 1)
        ask = result in REACHED_OUTCOMES
        body = {"outcome": result.value, "request_survey": ask}
        done = self.engagement.post(
            f"{base}/complete", params={"at": done_at.isoformat()}, json=body, headers=headers
        )
        if done.is_error:
            return None
        self.work.worked += 1
        self.work.outcomes[result.value] = self.work.outcomes.get(result.value, 0) + 1
        if not ask:
            return None
        self.work.surveys_requested += 1
        self._invited_at.setdefault(item["customer_id"], []).append(done_at)
        return survey_answer(self._rng, persona, result, item["id"], item["customer_id"], done_at)


def _already_given(answers: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """An answer is given when it is given: none from the simulated future of the wall clock."""
    return [a for a in answers if datetime.fromisoformat(a["answered_at"]) <= datetime.now(UTC)]


def _assignments(
    branch: Branch, items: list[dict[str, Any]], day: date
) -> Iterator[tuple[Rm, datetime, dict[str, Any]]]:
    """Each RM's items for the day: their own first, then unassigned ones of the branch, most
    urgent (soonest SLA) first, as many as their day holds."""
    zone = BRANCH_TIMEZONES.get(branch.kind, "Asia/Shanghai")
    due_by = lambda item: (item["priority"] != "high", item["sla_due_at"])  # noqa: E731
    unassigned = sorted((i for i in items if i["assigned_to"] is None), key=due_by)
    for rm in branch.rms:
        own = sorted((i for i in items if i["assigned_to"] == rm.rm_id), key=due_by)
        slots = business_slots(day, zone, ITEMS_PER_DAY)
        while slots and (own or unassigned):
            item = own.pop(0) if own else unassigned.pop(0)
            if datetime.fromisoformat(item["due_at"]) > slots[0]:
                continue  # scheduled for later (quiet hours): not yet
            yield rm, slots.pop(0), item


def persona_lookup(bank: Bank) -> Callable[[str], Persona]:
    """A customer's persona from their id (`C` and the index)."""
    return lambda customer_id: persona_of(bank, int(customer_id[1:]))
