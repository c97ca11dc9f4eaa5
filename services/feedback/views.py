"""Read models for the feedback API: evaluation reports straight from indexed tables.

The queries count; the figures made of the counts (NPS, hours) come from the domain, and
the categories counted (promoters, reached outcomes, tier order) from the contract.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import bindparam, text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.types import Text

from services.feedback.domain.complaints import in_hours
from services.feedback.domain.effects import Comparison, Sample, Share, compare_means, compare_shares
from services.feedback.domain.events import Arm
from services.feedback.domain.surveys import nps
from shared.contracts.outbound import (
    PASSIVE_MIN,
    PROMOTER_MIN,
    REACHED_OUTCOMES,
    TIERS_LOW_TO_HIGH,
    ComplaintStatus,
    OutreachOutcome,
    SurveyKind,
)
from shared.db import branch_list, in_branches

GROUPS = {"tier": "tier", "stage": "stage", "branch": "branch_id", "channel": "channel"}
# A tier's rank is its place in the contract's order; an unknown tier has none.
_RANK = "array_position(:tier_order, {col})"
_TIER_ORDER = bindparam("tier_order", [tier.value for tier in TIERS_LOW_TO_HIGH], type_=ARRAY(Text))
_REACHED = sorted(outcome.value for outcome in REACHED_OUTCOMES)
_CENT = Decimal("0.01")


async def complaint(db: AsyncConnection, complaint_id: str) -> dict[str, Any] | None:
    row = (
        await db.execute(
            text("SELECT * FROM feedback.complaints WHERE complaint_id = :id"), {"id": complaint_id}
        )
    ).first()
    return None if row is None else dict(row._mapping)


async def customer_surveys(db: AsyncConnection, customer_id: str, limit: int) -> list[dict[str, Any]]:
    rows = await db.execute(
        text(
            "SELECT survey_id, kind, score, comment, outreach_id, answered_at, tier, stage, channel "
            "FROM feedback.surveys WHERE customer_id = :id ORDER BY answered_at DESC LIMIT :limit"
        ),
        {"id": customer_id, "limit": limit},
    )
    return [dict(row._mapping) for row in rows]


async def customer_complaints(db: AsyncConnection, customer_id: str, limit: int) -> list[dict[str, Any]]:
    rows = await db.execute(
        text(
            "SELECT * FROM feedback.complaints WHERE customer_id = :id ORDER BY opened_at DESC LIMIT :limit"
        ),
        {"id": customer_id, "limit": limit},
    )
    return [dict(row._mapping) for row in rows]


async def customer_branch(db: AsyncConnection, customer_id: str) -> str | None:
    """The branch feedback last saw the customer in (from their tier changes), if any."""
    branch: str | None = await db.scalar(
        text("SELECT branch_id FROM feedback.customers WHERE customer_id = :id"), {"id": customer_id}
    )
    return branch


async def satisfaction(
    db: AsyncConnection, start: datetime, end: datetime, by: str, branches: frozenset[str] | None = None
) -> list[dict[str, Any]]:
    """Survey answers of `branches` (None: the bank) in [start, end) grouped by `by`."""
    column = GROUPS[by]
    rows = await db.execute(
        text(
            f"""
            SELECT coalesce({column}, 'unknown') AS grp,
                count(*) FILTER (WHERE kind = :nps) AS nps_responses,
                count(*) FILTER (WHERE kind = :nps AND score >= :promoter_min) AS promoters,
                count(*) FILTER (WHERE kind = :nps AND score < :passive_min) AS detractors,
                count(*) FILTER (WHERE kind = :csat) AS csat_responses,
                round(avg(score) FILTER (WHERE kind = :csat), 2) AS csat_avg
            FROM feedback.surveys WHERE answered_at >= :start AND answered_at < :end AND {in_branches()}
            GROUP BY 1 ORDER BY 1
            """  # noqa: S608 - the column comes from a fixed mapping
        ),
        {
            "branches": branch_list(branches),
            "start": start,
            "end": end,
            "nps": SurveyKind.NPS.value,
            "csat": SurveyKind.CSAT.value,
            "promoter_min": PROMOTER_MIN,
            "passive_min": PASSIVE_MIN,
        },
    )
    return [
        {
            "grp": row.grp,
            "nps_responses": row.nps_responses,
            "nps": nps(row.promoters, row.detractors, row.nps_responses),
            "csat_responses": row.csat_responses,
            "csat_avg": row.csat_avg,
        }
        for row in rows
    ]


async def complaints(
    db: AsyncConnection, start: datetime, end: datetime, branches: frozenset[str] | None = None
) -> list[dict[str, Any]]:
    """Complaints of `branches` (None: the bank) opened in [start, end), by tier and severity."""
    rows = await db.execute(
        text(
            f"""
            SELECT coalesce(tier, 'unknown') AS tier, severity, count(*) AS complaints,
                count(*) FILTER (WHERE status <> :resolved) AS open,
                avg(resolved_at - opened_at) AS resolution_time
            FROM feedback.complaints WHERE opened_at >= :start AND opened_at < :end AND {in_branches()}
            GROUP BY 1, 2 ORDER BY 1, 2
            """  # noqa: S608 - only a fixed condition is interpolated
        ),
        {
            "start": start,
            "end": end,
            "resolved": ComplaintStatus.RESOLVED.value,
            "branches": branch_list(branches),
        },
    )
    return [
        {
            "tier": row.tier,
            "severity": row.severity,
            "complaints": row.complaints,
            "open": row.open,
            "avg_resolution_hours": None if row.resolution_time is None else in_hours(row.resolution_time),
        }
        for row in rows
    ]


async def effectiveness(db: AsyncConnection, start: datetime, end: datetime, days: int) -> dict[str, Any]:
    """Contacted customers against comparable ones who were not contacted in the period.

    Treatment: each follow-up invitation (a completed contact) in the period, with its outcome,
    the linked survey, and the customer's tier `days` after the contact against the tier at it.
    Control: customers in the same tier at the start of the period with no contact in it, their
    tier `days` after the start against the tier at the start.
    """
    window = timedelta(days=days)
    tier_at = (
        "(SELECT h.tier FROM feedback.tier_history h WHERE h.customer_id = {who} AND h.at <= {when} "
        "ORDER BY h.at DESC, h.id DESC LIMIT 1)"
    )
    after = tier_at.format(who="i.customer_id", when="i.requested_at + :window")
    treated = await db.execute(
        text(
            f"""
            WITH contacted AS (
                SELECT i.action, coalesce(i.tier, 'unknown') AS tier, i.outcome, s.kind, s.score,
                    {_RANK.format(col="i.tier")} AS rank_before, {_RANK.format(col=after)} AS rank_after
                FROM feedback.invitations i LEFT JOIN feedback.surveys s ON s.survey_id = i.survey_id
                WHERE i.requested_at >= :start AND i.requested_at < :end AND NOT i.held_out
            )
            SELECT action, tier, count(*) AS contacted,
                count(*) FILTER (WHERE outcome = ANY(:reached)) AS reached,
                count(*) FILTER (WHERE outcome = :converted) AS converted,
                count(score) AS surveys,
                round(avg(score) FILTER (WHERE kind = :nps), 2) AS nps_avg_after_contact,
                round(avg(score) FILTER (WHERE kind = :csat), 2) AS csat_avg_after_contact,
                count(*) FILTER (WHERE rank_after > rank_before) AS moved_up,
                count(*) FILTER (WHERE rank_after = rank_before) AS held,
                count(*) FILTER (WHERE rank_after < rank_before) AS moved_down
            FROM contacted GROUP BY 1, 2 ORDER BY 1, 2
            """  # noqa: S608 - fixed SQL fragments only
        ).bindparams(_TIER_ORDER),
        {
            "start": start,
            "end": end,
            "window": window,
            "reached": _REACHED,
            "converted": OutreachOutcome.CONVERTED.value,
            "nps": SurveyKind.NPS.value,
            "csat": SurveyKind.CSAT.value,
        },
    )
    at_start = tier_at.format(who="c.customer_id", when=":start")
    later = tier_at.format(who="c.customer_id", when=":start + :window")
    later_rank, then_rank = _RANK.format(col="tier_later"), _RANK.format(col="tier_then")
    control = await db.execute(
        text(
            f"""
            WITH base AS (
                SELECT {at_start} AS tier_then, {later} AS tier_later FROM feedback.customers c
                WHERE NOT EXISTS (
                    SELECT 1 FROM feedback.invitations i
                    WHERE i.customer_id = c.customer_id AND i.requested_at >= :start AND i.requested_at < :end
                        AND NOT i.held_out
                )
            )
            SELECT tier_then AS tier, count(*) AS customers,
                count(*) FILTER (WHERE {later_rank} > {then_rank}) AS moved_up,
                count(*) FILTER (WHERE {later_rank} = {then_rank}) AS held,
                count(*) FILTER (WHERE {later_rank} < {then_rank}) AS moved_down
            FROM base WHERE tier_then IS NOT NULL GROUP BY 1 ORDER BY 1
            """  # noqa: S608 - fixed SQL fragments only
        ).bindparams(_TIER_ORDER),
        {"start": start, "end": end, "window": window},
    )
    return {
        "days": days,
        "contacted": [dict(row._mapping) for row in treated],
        "not_contacted": [dict(row._mapping) for row in control],
        "observational": OBSERVATIONAL,
        "holdouts": await holdout_comparison(db, start, end, window),
    }


OBSERVATIONAL = (
    "contacted and not_contacted are an observational comparison: who was contacted was not"
    " random, so their difference mixes the effect of the contact with the difference between"
    " the customers; holdouts compares randomised groups"
)


async def holdout_comparison(
    db: AsyncConnection, start: datetime, end: datetime, window: timedelta
) -> list[dict[str, Any]]:
    """Per experiment, tier and action: the customers a holdout draw treated against those it
    held out in the period, on outcomes measurable in both groups `window` after the draw.

    Customers are counted, not items: a customer drawn several times in one experiment counts
    once, in the group, tier and action of their first draw (the earliest item, ties by id),
    and their outcomes are measured from that draw. AUM and products held are the latest
    holdings scoring sent with a tier change at or before the draw and at or before the end of
    the window; a customer with no holdings known at the draw is left out of those two outcomes.
    """
    holdings = (
        "LEFT JOIN LATERAL (SELECT h.aum, h.products_held FROM feedback.tier_history h "
        "WHERE h.customer_id = m.customer_id AND h.aum IS NOT NULL AND h.at <= {when} "
        "ORDER BY h.at DESC, h.id DESC LIMIT 1) {name} ON true"
    )
    later = (
        "(SELECT h.tier FROM feedback.tier_history h WHERE h.customer_id = m.customer_id "
        "AND h.at <= m.enrolled_at + :window ORDER BY h.at DESC, h.id DESC LIMIT 1)"
    )
    rows = await db.execute(
        text(
            f"""
            WITH first_draws AS (
                SELECT DISTINCT ON (experiment, customer_id) *
                FROM feedback.experiment_members
                WHERE enrolled_at >= :start AND enrolled_at < :end
                ORDER BY experiment, customer_id, enrolled_at, outreach_id
            ), members AS (
                SELECT m.experiment, coalesce(m.tier, 'unknown') AS tier, m.action, m.arm, i.outcome,
                    {_RANK.format(col="m.tier")} AS rank_before, {_RANK.format(col=later)} AS rank_after,
                    (SELECT s.score FROM feedback.surveys s
                     WHERE s.customer_id = m.customer_id AND s.kind = :nps
                        AND s.answered_at > m.enrolled_at AND s.answered_at <= m.enrolled_at + :window
                     ORDER BY s.answered_at DESC LIMIT 1) AS nps_later,
                    after.aum - before.aum AS aum_change,
                    after.products_held - before.products_held AS products_change
                FROM first_draws m
                LEFT JOIN feedback.invitations i ON i.outreach_id = m.outreach_id
                {holdings.format(when="m.enrolled_at", name="before")}
                {holdings.format(when="m.enrolled_at + :window", name="after")}
            )
            SELECT experiment, tier, action, arm, count(*) AS customers,
                count(*) FILTER (WHERE rank_after > rank_before) AS moved_up,
                count(*) FILTER (WHERE rank_after < rank_before) AS moved_down,
                count(nps_later) AS nps_answers,
                coalesce(sum(nps_later), 0) AS nps_total,
                coalesce(sum(nps_later * nps_later), 0) AS nps_squares,
                count(aum_change) AS aum_answers,
                coalesce(sum(aum_change), 0) AS aum_total,
                coalesce(sum(aum_change * aum_change), 0) AS aum_squares,
                count(products_change) AS products_answers,
                coalesce(sum(products_change), 0) AS products_total,
                coalesce(sum(products_change * products_change), 0) AS products_squares,
                count(*) FILTER (WHERE outcome = ANY(:reached)) AS reached,
                count(*) FILTER (WHERE outcome = :converted) AS converted
            FROM members GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4
            """  # noqa: S608 - fixed SQL fragments only
        ).bindparams(_TIER_ORDER),
        {
            "start": start,
            "end": end,
            "window": window,
            "nps": SurveyKind.NPS.value,
            "reached": _REACHED,
            "converted": OutreachOutcome.CONVERTED.value,
        },
    )
    groups: dict[tuple[str, str, str], dict[str, Any]] = {}
    for row in rows:
        groups.setdefault((row.experiment, row.tier, row.action), {})[row.arm] = row
    return [
        _compared(key, arms.get(Arm.TREATED.value), arms.get(Arm.HELD_OUT.value))
        for key, arms in groups.items()
    ]


def _compared(key: tuple[str, str, str], treated: Any, held_out: Any) -> dict[str, Any]:
    def share(row: Any, hits: str) -> Share:
        return Share(0, 0) if row is None else Share(int(getattr(row, hits)), int(row.customers))

    def sample(row: Any, outcome: str) -> Sample:
        if row is None:
            return Sample(0, 0.0, 0.0)
        parts = ("answers", "total", "squares")
        count, total, squares = (getattr(row, f"{outcome}_{part}") for part in parts)
        return Sample(int(count), float(total), float(squares))

    def means(outcome: str) -> Comparison:
        return compare_means(sample(treated, outcome), sample(held_out, outcome))

    experiment, tier, action = key
    return {
        "experiment": experiment,
        "tier": tier,
        "action": action,
        "treated": share(treated, "customers").customers,
        "held_out": share(held_out, "customers").customers,
        # The treated group's own reach and conversion: the held-out group was never contacted.
        "treated_reached": 0 if treated is None else int(treated.reached),
        "treated_converted": 0 if treated is None else int(treated.converted),
        "tier_up": _public(compare_shares(share(treated, "moved_up"), share(held_out, "moved_up"))),
        "tier_down": _public(compare_shares(share(treated, "moved_down"), share(held_out, "moved_down"))),
        "nps_later": _public(means("nps")),
        "aum_change": _money(_public(means("aum"))),
        "products_held_change": _public(means("products")),
    }


def _money(figures: dict[str, Any]) -> dict[str, Any]:
    """A comparison of amounts as decimal strings to the cent, in the base currency."""

    def cents(value: float | None) -> str | None:
        return None if value is None else str(Decimal(repr(value)).quantize(_CENT))

    money = {name: cents(figures[name]) for name in ("treated", "held_out", "difference")}
    ci95 = figures["ci95"]
    return {**figures, **money, "ci95": None if ci95 is None else [cents(bound) for bound in ci95]}


def _public(comparison: Comparison) -> dict[str, Any]:
    return {
        "treated": comparison.treated,
        "held_out": comparison.held_out,
        "treated_n": comparison.treated_n,
        "held_out_n": comparison.held_out_n,
        "difference": comparison.difference,
        "ci95": None if comparison.ci_low is None else [comparison.ci_low, comparison.ci_high],
        "conclusion": comparison.conclusion.value,
    }
