from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import tracemalloc
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from statistics import mean, median
from typing import Any

import pytest

from services.scoring.domain.policy import Op, default_policy
from shared.contracts.envelope import InvalidEvent, ValidationRules, decode_json, validate_event
from shared.contracts.inbound import INBOUND_DATA_MODELS
from shared.contracts.outbound import COMPLAINT, SURVEY, ComplaintData, SurveyData
from shared.contracts.types import HouseholdRole, Tier
from tests.infra import REPO
from tierflow.simulate import (
    GATES,
    Bank,
    branches,
    customer_id,
    events,
    households,
    persona_of,
    records,
    with_faults,
)

END = "2026-11-01T00:00:00+00:00"


def simulate(tmp_path: Path, name: str, *extra: str) -> Path:
    out = tmp_path / name
    subprocess.run(
        [
            sys.executable,
            "-m",
            "tierflow.cli",
            "simulate",
            "--customers",
            "300",
            "--end",
            END,
            "--out",
            str(out),
            *extra,
        ],
        check=True,
        cwd=REPO,
        capture_output=True,
    )
    return out


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_the_same_seed_gives_the_same_bank_and_another_seed_another(tmp_path: Path) -> None:
    first = simulate(tmp_path, "a.jsonl", "--seed", "7")
    second = simulate(tmp_path, "b.jsonl", "--seed", "7")
    other = simulate(tmp_path, "c.jsonl", "--seed", "8")
    assert digest(first) == digest(second)
    assert digest(first) != digest(other)
    assert len(first.read_text().splitlines()) > 300


def test_every_simulated_event_is_valid_against_the_contract() -> None:
    rules = ValidationRules(datetime.now(UTC), timedelta(minutes=5), "CNY".__eq__, INBOUND_DATA_MODELS)
    bank = Bank(customers=200, events_per_customer=15, start=datetime(2025, 11, 1, tzinfo=UTC))
    produced = list(events(bank))
    for event in produced:
        validate_event(decode_json(json.dumps(event).encode()), rules)
    assert {e["type"] for e in produced} == set(INBOUND_DATA_MODELS)
    household_ids = [e["data"]["household_id"] for e in produced if "household_id" in e["data"]]
    # Members of many households, and leavers (an explicit null).
    assert None in household_ids
    assert len(set(household_ids)) > 10


def test_faults_add_invalid_events_and_resends_without_losing_good_ones() -> None:
    rules = ValidationRules(datetime.now(UTC), timedelta(minutes=5), "CNY".__eq__, INBOUND_DATA_MODELS)
    bank = Bank(customers=200, events_per_customer=15, start=datetime(2025, 11, 1, tzinfo=UTC))
    clean = list(events(bank))
    faulty = list(with_faults(iter(clean), invalid_rate=0.05, duplicate_rate=0.05, seed=1))
    invalid = [e for e in faulty if e["id"].endswith("-invalid")]
    for event in invalid:
        try:
            validate_event(decode_json(json.dumps(event).encode()), rules)
        except InvalidEvent:
            continue
        raise AssertionError(f"{event['id']} should be invalid")
    good = [e for e in faulty if not e["id"].endswith("-invalid")]
    assert {e["id"] for e in good} == {e["id"] for e in clean}
    assert len(good) > len(clean)  # some were sent twice
    assert 0.02 < len(invalid) / len(clean) < 0.08


BANK = Bank(customers=3000, events_per_customer=40, start=datetime(2025, 11, 1, tzinfo=UTC), cohort=3000)


@pytest.fixture(scope="module")
def year() -> list[dict[str, Any]]:
    return list(records(BANK))


def by_customer(stream: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    grouped: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for record in stream:
        grouped[record["data"]["customer_id"]].append(record)
    return grouped


def persona_customers(name: str) -> list[str]:
    return [customer_id(i) for i in range(BANK.customers) if persona_of(BANK, i).name == name]


def test_surveys_and_complaints_are_valid_bodies_for_the_feedback_api(year: list[dict[str, Any]]) -> None:
    surveys = [SurveyData.model_validate(r["data"]) for r in year if r["type"] == SURVEY]
    complaints = [ComplaintData.model_validate(r["data"]) for r in year if r["type"] == COMPLAINT]
    # Plausible rates: a survey answer for roughly one customer in five, complaints rarer.
    assert 0.1 < len(surveys) / BANK.customers < 0.8
    assert 0.02 < len({c.complaint_id for c in complaints}) / BANK.customers < len(surveys) / BANK.customers
    resolved = [c for c in complaints if c.status == "resolved"]
    assert resolved
    assert all(c.resolved_at and c.opened_at and c.resolved_at > c.opened_at for c in resolved)


def test_answers_after_a_bad_experience_score_lower(year: list[dict[str, Any]]) -> None:
    troubled: dict[str, list[datetime]] = defaultdict(list)
    for record in year:
        if record["type"] == "bank.interaction.v1" and record["data"]["kind"] == "inquiry":
            troubled[record["data"]["customer_id"]].append(datetime.fromisoformat(record["time"]))
    after_trouble: list[int] = []
    otherwise: list[int] = []
    for record in year:
        if record["type"] == SURVEY and record["data"]["kind"] == "nps":
            answered = datetime.fromisoformat(record["data"]["answered_at"])
            recent = any(
                timedelta(0) <= answered - t <= timedelta(days=60)
                for t in troubled[record["data"]["customer_id"]]
            )
            (after_trouble if recent else otherwise).append(record["data"]["score"])
    assert len(after_trouble) >= 10
    assert mean(after_trouble) < mean(otherwise) - 2


def test_branches_are_urban_rural_and_overseas_with_rms_of_limited_capacity(
    year: list[dict[str, Any]],
) -> None:
    made = branches(BANK)
    assert made == branches(BANK)
    assert {b.kind for b in made} == {"urban", "rural", "overseas"}
    rms = {rm.rm_id: rm for b in made for rm in b.rms}
    assert all(0 < rm.capacity <= 60 for rm in rms.values())
    # The profile each customer opens with (a later one may only move them between households).
    profiles = [r["data"] for r in year if r["type"] == "bank.customer.v1" and "branch_id" in r["data"]]
    assert len(profiles) == BANK.customers
    kinds = {b.branch_id: b.kind for b in made}
    assert all(p["region"] == kinds[p["branch_id"]] for p in profiles)
    assert all(rms[p["rm_id"]].branch_id == p["branch_id"] for p in profiles if "rm_id" in p)
    urban = sum(1 for p in profiles if p["region"] == "urban")
    assert urban > len(profiles) / 2


def test_assets_are_heavy_tailed_most_customers_mass_few_private(year: list[dict[str, Any]]) -> None:
    first_balance: dict[str, Decimal] = {}
    for record in year:
        if record["type"] == "bank.balance.v1":
            first_balance.setdefault(record["data"]["customer_id"], Decimal(record["data"]["aum"]))
    aum = sorted(first_balance.values())
    share_mass = sum(1 for a in aum if a < 50_000) / len(aum)
    share_private = sum(1 for a in aum if a >= 6_000_000) / len(aum)
    assert share_mass > 0.6
    assert 0.001 < share_private < 0.05
    top_percent = aum[-len(aum) // 100 :]
    assert sum(top_percent) > sum(aum) / 3  # the top 1% hold over a third of the assets


def test_a_one_off_windfall_arrives_and_leaves_within_weeks(year: list[dict[str, Any]]) -> None:
    grouped = by_customer(year)
    checked = 0
    for cid in persona_customers("one_off"):
        large = [
            r for r in grouped[cid]
            if r["type"] == "bank.transaction.v1" and Decimal(r["data"]["amount"]) >= 2_000_000
        ]  # fmt: skip
        if len(large) < 2:
            continue  # the windfall would have fallen after the year's end
        deposit, withdrawal = large[0], large[1]
        assert (deposit["data"]["direction"], withdrawal["data"]["direction"]) == ("credit", "debit")
        assert deposit["data"]["amount"] == withdrawal["data"]["amount"]
        gap = datetime.fromisoformat(withdrawal["time"]) - datetime.fromisoformat(deposit["time"])
        assert timedelta(days=3) <= gap <= timedelta(days=20)
        checked += 1
    assert checked >= 10


def test_drifting_customers_fade_while_salaried_ones_are_paid_monthly(year: list[dict[str, Any]]) -> None:
    grouped = by_customer(year)
    end = BANK.end
    activity = {"bank.transaction.v1", "bank.interaction.v1"}

    def late_share(persona: str) -> float:
        shares = [
            sum(1 for r in acts if datetime.fromisoformat(r["time"]) > end - timedelta(days=91)) / len(acts)
            for cid in persona_customers(persona)
            if (acts := [r for r in grouped[cid] if r["type"] in activity])
        ]
        return mean(shares)

    assert late_share("drifting") < 0.3 * late_share("salaried")
    salary = ("bank.transaction.v1", "transfer", "credit")
    salaries = [
        sum(
            1
            for r in grouped[cid]
            if (r["type"], r["data"].get("category"), r["data"].get("direction")) == salary
        )
        for cid in persona_customers("salaried")
    ]
    assert median(salaries) >= 9


def test_the_whole_bank_in_one_cohort_is_in_time_order(year: list[dict[str, Any]]) -> None:
    times = [datetime.fromisoformat(r["time"]) for r in year]
    assert times == sorted(times)
    assert BANK.start <= times[0]
    assert times[-1] < BANK.end


def test_memory_stays_flat_as_the_population_grows() -> None:
    def peak(customers: int) -> int:
        bank = Bank(customers, 10, start=datetime(2025, 11, 1, tzinfo=UTC), cohort=500)
        tracemalloc.start()
        try:
            for _ in records(bank):
                pass
            return tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()

    small, large = peak(500), peak(3_000)
    assert large < small * 1.5, (small, large)


def test_personas_express_their_needs_in_channels_investments_and_digital_trouble(
    year: list[dict[str, Any]],
) -> None:
    grouped = by_customer(year)
    assisted, digital = {"branch", "phone", "rm"}, {"mobile", "online"}

    def channel_share(persona: str, channels: set[str]) -> float:
        shares = []
        for cid in persona_customers(persona):
            used = [r["data"]["channel"] for r in grouped[cid] if r["data"].get("channel")]
            if used:
                shares.append(sum(1 for channel in used if channel in channels) / len(used))
        return mean(shares)

    assert channel_share("student", digital) > 0.8
    assert channel_share("retiree", assisted) > 0.6
    investors = [
        cid
        for cid in persona_customers("affluent")
        if any(r["data"].get("category") == "investment" for r in grouped[cid])
    ]
    assert len(investors) > 0.75 * len(persona_customers("affluent"))

    def struggling(persona: str) -> float:
        customers = persona_customers(persona)
        failed = [
            cid for cid in customers if any(r["data"].get("kind") == "login_failed" for r in grouped[cid])
        ]
        return len(failed) / len(customers)

    assert 0.15 < struggling("retiree") < 0.45
    assert 0 < struggling("salaried") < 0.08
    assert struggling("student") == 0
    kinds = {r["data"]["kind"] for r in year if r["type"] == "bank.interaction.v1"}
    assert {"login_failed", "support_call"} <= kinds


def opening_profiles(stream: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {
        r["data"]["customer_id"]: r["data"]
        for r in stream
        if r["type"] == "bank.customer.v1" and "branch_id" in r["data"]
    }


def test_households_are_couples_families_and_retirees_at_the_primarys_branch(
    year: list[dict[str, Any]],
) -> None:
    made = list(households(BANK))
    profiles = opening_profiles(year)
    in_households = {customer_id(m.index) for h in made for m in h.members}
    assert 0.15 < len(in_households) / BANK.customers < 0.4
    assert {h.kind for h in made} == {"couple", "family", "retirees"}
    for household in made:
        roles = [m.role for m in household.members]
        assert roles[0] is HouseholdRole.PRIMARY
        assert roles.count(HouseholdRole.PRIMARY) == 1
        members = [customer_id(m.index) for m in household.members]
        # Each member's profile names the household and their role, and they bank where the primary does.
        assert {profiles[m].get("household_id") for m in members} == {household.household_id}
        assert [profiles[m]["household_role"] for m in members] == [role.value for role in roles]
        assert len({profiles[m]["branch_id"] for m in members}) == 1
        personas = [persona_of(BANK, m.index).name for m in household.members]
        assert "business" not in personas
        if household.kind == "family":
            assert {p for p, r in zip(personas, roles, strict=True) if r is HouseholdRole.CHILD} == {
                "student"
            }
        if household.kind == "retirees":
            assert "retiree" in personas
            assert {HouseholdRole.CHILD, HouseholdRole.PARENT} & set(roles)
    outside = [p for cid, p in profiles.items() if cid not in in_households]
    assert outside
    assert not any("household_id" in p for p in outside)


def test_some_households_reach_wealth_or_private_only_together(year: list[dict[str, Any]]) -> None:
    balances: dict[str, list[Decimal]] = defaultdict(list)
    for record in year:
        if record["type"] == "bank.balance.v1":
            balances[record["data"]["customer_id"]].append(Decimal(record["data"]["aum"]))
    joint = [h for h in households(BANK) if h.together is not None]
    assert {h.together for h in joint} == {Tier.WEALTH, Tier.PRIVATE}
    assert 0.1 < len(joint) / len(list(households(BANK))) < 0.4
    alone_below_together_above = 0
    for household in joint:
        assert household.together is not None
        gate = Decimal(GATES[household.together])
        members = [customer_id(m.index) for m in household.members]
        # Through the whole year no member holds the gate's amount alone ...
        assert all(aum < gate for m in members for aum in balances[m]), household
        # ... and at its end the members hold it together (a bad year may take a household under).
        alone_below_together_above += sum(balances[m][-1] for m in members) >= gate
    assert alone_below_together_above >= 0.9 * len(joint)


def test_the_simulated_gates_are_the_default_policys() -> None:
    gates = {
        (gate.tier, condition.value)
        for gate in default_policy().tiers
        for group in gate.any_of
        for condition in group
        if condition.feature == "aum_avg_30d" and condition.op is Op.GTE
    }
    assert {(tier, Decimal(str(value))) for tier, value in GATES.items()} <= gates


def test_some_members_move_to_another_household_or_leave_theirs(year: list[dict[str, Any]]) -> None:
    profiles = opening_profiles(year)
    known = {h.household_id for h in households(BANK)}
    moves = [r for r in year if r["type"] == "bank.customer.v1" and "branch_id" not in r["data"]]
    joined = [r["data"] for r in moves if r["data"]["household_id"] is not None]
    left = [r["data"] for r in moves if r["data"]["household_id"] is None]
    assert len(joined) >= 5
    assert len(left) >= 5
    assert len(moves) < 0.1 * sum(1 for p in profiles.values() if "household_id" in p)
    for move in joined:
        assert move["household_id"] in known
        assert move["household_id"] != profiles[move["customer_id"]]["household_id"]
    # The primary stays; whoever goes had a household and goes once, after opening.
    movers = [m["customer_id"] for m in joined + left]
    assert len(set(movers)) == len(movers)
    assert all(profiles[m]["household_role"] != "primary" for m in movers)
    opened = {
        r["data"]["customer_id"]: datetime.fromisoformat(r["time"])
        for r in year
        if r["type"] == "bank.customer.v1" and "branch_id" in r["data"]
    }
    assert all(datetime.fromisoformat(r["time"]) > opened[r["data"]["customer_id"]] for r in moves)
    # Leaving is an explicit `"household_id": null` and nothing else.
    assert all(set(m) == {"customer_id", "household_id"} for m in left)


def test_a_customers_life_and_household_do_not_depend_on_the_cohort_or_on_customers_after_them() -> None:
    start = datetime(2025, 11, 1, tzinfo=UTC)
    small = Bank(customers=200, events_per_customer=15, start=start, cohort=50)
    large = Bank(customers=400, events_per_customer=15, start=start, cohort=400)
    assert list(households(small)) == [h for h in households(large) if h.members[-1].index < 200]
    first_200 = {customer_id(i) for i in range(200)}

    def by_id(record: dict[str, Any]) -> str:
        return str(record["id"])

    assert sorted(records(small), key=by_id) == sorted(
        (r for r in records(large) if r["data"]["customer_id"] in first_200), key=by_id
    )
    assert list(records(small)) != list(records(Bank(200, 15, seed=43, start=start, cohort=50)))
