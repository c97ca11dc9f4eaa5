"""Households end to end inside scoring: members' contributions published with their states,
folded by the household stage exactly once whatever the order and the resends."""

from __future__ import annotations

import asyncio
import json
import random
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from services.scoring.domain.household import Published
from services.scoring.handlers import Scoring
from services.scoring.household_messages import decode_contribution
from services.scoring.household_stage import HouseholdStage
from services.scoring.household_store import HouseholdStore
from shared.clock import ClockMode
from shared.db import create_engine
from shared.topics import HOUSEHOLD_CONTRIBUTIONS
from tests import factories
from tests.infra import (
    B2_OPS_KEY,
    BOUND_RM_KEYS,
    OPS_KEY,
    Infra,
    ServiceProcess,
    fetch_rows,
    fresh_database,
    wait_until,
)
from tests.integration.scoring_support import HouseholdSums, ScoringSandbox, as_delivered, household_sums

pytestmark = pytest.mark.integration
AS_OF = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
TIERS = ["mass", "vip", "wealth", "private"]


def at(event: dict[str, Any], moment: datetime) -> dict[str, Any]:
    return factories.with_envelope(event, time=moment.isoformat())


def member(customer_id: str, household: str, role: str, aum: str, moment: datetime) -> list[dict[str, Any]]:
    return [
        at(factories.customer(customer_id, household_id=household, household_role=role), moment),
        at(factories.balance(customer_id, aum=aum, as_of=(moment - timedelta(days=40)).isoformat()), moment),
    ]


def stream() -> list[list[dict[str, Any]]]:
    """Batches as scoring's consumer takes them: a household of three forms, one member moves to
    another household, a second primary is declared, and one batch is sent twice."""
    t = AS_OF - timedelta(days=5)
    first = member("HA", "H1", "primary", "3000000.00", t) + member("HB", "H1", "spouse", "2500000.00", t)
    second = member("HC", "H1", "child", "400000.00", t) + member("HD", "H2", "primary", "900000.00", t)
    moved = [at(factories.customer("HC", household_id="H2"), t + timedelta(days=1))]
    promoted = [at(factories.customer("HB", household_role="primary"), t + timedelta(days=2))]
    grown = [at(factories.balance("HA", aum="3500000.00", as_of=(t + timedelta(days=3)).isoformat()), t)]
    return [first, second, first, moved, promoted, grown]


async def run_scoring(database_url: str, infra: Infra) -> None:
    settings = infra.settings(DATABASE_URL=database_url)
    engine = create_engine(settings)
    try:
        scoring = Scoring(engine, settings, "customer.tier-changes.v1", ClockMode.FIXED, AS_OF)
        await scoring.ensure_policy()
        for batch in stream():
            await scoring.apply_batch(as_delivered(settings, batch))
    finally:
        await engine.dispose()


def contributions(database_url: str) -> list[Published]:
    rows = fetch_rows(
        database_url,
        "SELECT key, value FROM scoring.outbox WHERE topic = $1 ORDER BY id",
        HOUSEHOLD_CONTRIBUTIONS,
    )
    return [decode_contribution(bytes(row["value"]), bytes(row["key"])) for row in rows]


async def run_stage(database_url: str, infra: Infra, batches: list[list[Published]]) -> int:
    engine = create_engine(infra.settings(DATABASE_URL=database_url))
    folded = 0
    try:
        for batch in batches:
            async with engine.begin() as connection:
                folded += await HouseholdStage.fold_messages(HouseholdStore(connection), batch)
    finally:
        await engine.dispose()
    return folded


def households(database_url: str) -> dict[str, tuple[Any, ...]]:
    rows = fetch_rows(
        database_url,
        "SELECT household_id, members, aum, aum_avg_30d, aum_avg_90d, products, tier, primary_id, rm_id"
        " FROM scoring.households ORDER BY household_id",
    )
    return {row[0]: tuple(row[1:]) for row in rows}


def recomputed_from_states(database_url: str) -> dict[str, HouseholdSums]:
    """Each household's count and sums, from its members' current scoring states alone."""
    rows = fetch_rows(database_url, "SELECT customer_id, state::text FROM scoring.customers")
    return household_sums((row[0], json.loads(row[1])) for row in rows)


def test_contributions_fold_once_into_households_equal_to_their_members_sums(infra: Infra) -> None:
    database_url = fresh_database(infra, f"households_{uuid.uuid4().hex[:6]}")
    asyncio.run(run_scoring(database_url, infra))
    published = contributions(database_url)
    # The resent batch published nothing new: one contribution per member change.
    assert len({(p.member_id, p.sequence) for p in published}) == len(published)
    assert [(p.household_id, p.contribution is None) for p in published if p.member_id == "HC"][-2:] == [
        ("H1", True),
        ("H2", False),
    ]

    in_order = asyncio.run(run_stage(database_url, infra, [published]))
    undisturbed = households(database_url)
    # Delivered again, shuffled across households and in small batches: nothing changes.
    again = published + random.Random(7).sample(published, len(published))
    random.Random(3).shuffle(again)
    assert (
        asyncio.run(run_stage(database_url, infra, [again[i : i + 3] for i in range(0, len(again), 3)])) == 0
    )
    assert households(database_url) == undisturbed
    assert in_order == len(published)

    for household_id, (count, aum, avg_30d, avg_90d) in recomputed_from_states(database_url).items():
        assert undisturbed[household_id][:4] == (count, aum, avg_30d, avg_90d)
    h1, h2 = undisturbed["H1"], undisturbed["H2"]
    assert h1[0] == 2  # HC moved out
    assert h2[0] == 2
    assert h1[6] == "HB"  # the later primary; HA demoted to other, audited
    audit = fetch_rows(
        database_url, "SELECT household_id, member_id, from_role, to_role FROM scoring.household_audit"
    )
    assert [tuple(row) for row in audit] == [("H1", "HA", "primary", "other")]
    tiers = dict(fetch_rows(database_url, "SELECT customer_id, tier FROM scoring.customers"))
    ranks = ["mass", "vip", "wealth", "private"]
    assert h1[5] == max((tiers["HA"], tiers["HB"]), key=ranks.index)
    assert h2[5] == max((tiers["HC"], tiers["HD"]), key=ranks.index)


def test_a_household_folded_from_shuffled_messages_equals_the_one_folded_in_order(infra: Infra) -> None:
    database_url = fresh_database(infra, f"households_{uuid.uuid4().hex[:6]}")
    asyncio.run(run_scoring(database_url, infra))
    published = contributions(database_url)
    shuffled = random.Random(11).sample(published, len(published))
    asyncio.run(run_stage(database_url, infra, [shuffled[i : i + 2] for i in range(0, len(shuffled), 2)]))
    from_shuffled = households(database_url)
    ordered_url = fresh_database(infra, f"households_{uuid.uuid4().hex[:6]}")
    asyncio.run(run_scoring(ordered_url, infra))
    asyncio.run(run_stage(ordered_url, infra, [contributions(ordered_url)]))
    assert from_shuffled == households(ordered_url)


def read(service: ServiceProcess, path: str, key: str = OPS_KEY) -> httpx.Response:
    return httpx.get(f"{service.base_url}{path}", headers={"authorization": f"Bearer {key}"}, timeout=30)


def test_the_running_stage_folds_a_household_that_the_api_serves_to_keys_of_the_primarys_branch(
    infra: Infra,
) -> None:
    sandbox = ScoringSandbox(infra)
    try:
        scoring = sandbox.start(TIERFLOW_SCORING_CLOCK="fixed", TIERFLOW_SCORING_AS_OF=AS_OF.isoformat())
        t = AS_OF - timedelta(days=5)
        sandbox.produce(
            [
                *member("HX1", "HX", "primary", "3500000.00", t),
                *member("HX2", "HX", "spouse", "2710000.00", t),
                at(factories.customer("HX1", branch_id="B2", rm_id="RM-21"), t + timedelta(hours=1)),
            ]
        )

        def folded() -> bool:
            response = read(scoring, "/v1/households/HX")
            return response.status_code == 200 and response.json()["branch_id"] == "B2"

        wait_until(folded, 60, "the household folded by the stage")
        household = read(scoring, "/v1/households/HX").json()
        assert household["aum"] == "6210000.00"
        assert household["primary_id"] == "HX1"
        assert household["rm_id"] == "RM-21"
        assert {m["customer_id"]: m["role"] for m in household["members"]} == {
            "HX1": "primary",
            "HX2": "spouse",
        }
        assert read(scoring, "/v1/households/HX", B2_OPS_KEY).status_code == 200
        assert read(scoring, "/v1/households/HX", BOUND_RM_KEYS["RM-1"]).status_code == 404
        assert read(scoring, "/v1/households/NOPE").status_code == 404
        view = read(scoring, "/v1/customers/HX2").json()
        assert view["household"] == {"household_id": "HX", "role": "spouse"}

        # Lists and the distribution filter by the household's tier, its highest member tier.
        tier = household["tier"]
        assert tier == max((m["tier"] for m in household["members"]), key=TIERS.index)
        listed = read(scoring, f"/v1/customers?household_tier={tier}").json()["items"]
        assert [row["customer_id"] for row in listed] == ["HX1", "HX2"]
        other = next(name for name in TIERS if name != tier)
        assert read(scoring, f"/v1/customers?household_tier={other}").json()["items"] == []
        distribution = read(scoring, f"/v1/tiers/distribution?household_tier={tier}").json()
        assert distribution["total"] == 2
        assert read(scoring, f"/v1/tiers/distribution?household_tier={other}").json()["total"] == 0
        assert read(scoring, "/v1/customers?household_tier=gold").status_code == 422
    finally:
        sandbox.stop_all()


def test_an_erased_member_takes_their_contribution_out_of_the_household(infra: Infra) -> None:
    database_url = fresh_database(infra, f"households_{uuid.uuid4().hex[:6]}")
    asyncio.run(run_scoring(database_url, infra))
    erase_in(database_url, infra, "HD")
    asyncio.run(run_stage(database_url, infra, [contributions(database_url)]))
    assert households(database_url)["H2"][0] == 1
    assert households(database_url)["H2"][6] is None  # the primary was erased
    assert (
        fetch_rows(database_url, "SELECT 1 FROM scoring.household_memberships WHERE customer_id = 'HD'") == []
    )


AUDITED_HA = "SELECT household_id, from_role, to_role FROM scoring.household_audit WHERE member_id = 'HA'"


def erase_in(database_url: str, infra: Infra, customer_id: str) -> None:
    async def erase() -> None:
        settings = infra.settings(DATABASE_URL=database_url)
        engine = create_engine(settings)
        try:
            await Scoring(engine, settings, "customer.tier-changes.v1").erase(customer_id, "asked", "admin")
        finally:
            await engine.dispose()

    asyncio.run(erase())


@pytest.mark.parametrize("folded_before_erasure", [True, False], ids=["folded", "still-on-the-topic"])
def test_an_erased_members_role_history_goes_with_them(infra: Infra, folded_before_erasure: bool) -> None:
    database_url = fresh_database(infra, f"households_{uuid.uuid4().hex[:6]}")
    asyncio.run(run_scoring(database_url, infra))
    if folded_before_erasure:
        asyncio.run(run_stage(database_url, infra, [contributions(database_url)]))
        assert [tuple(row) for row in fetch_rows(database_url, AUDITED_HA)] == [("H1", "primary", "other")]
    # HA's demotion by HB is still to be folded when erased, or was folded already.
    erase_in(database_url, infra, "HA")
    asyncio.run(run_stage(database_url, infra, [contributions(database_url)]))
    assert households(database_url)["H1"][0] == 1
    # Which household they were in and the role they held there is theirs, as their profile was.
    assert fetch_rows(database_url, AUDITED_HA) == []
