"""What each page shows, gathered from the services' APIs and shaped for its template."""

from __future__ import annotations

import asyncio
import difflib
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

import yaml

from services.console import charts
from services.console.client import UpstreamError, UserClient
from services.console.i18n import Formatter
from shared.contracts.outbound import TIERS_LOW_TO_HIGH
from shared.contracts.types import Stage

TIERS = [tier.value for tier in reversed(TIERS_LOW_TO_HIGH)]
STAGES = [stage.value for stage in Stage]
WORKERS = ("scoring", "engagement", "feedback")
# Each direction's palette colour: up green, down red, a stage change in the neutral blue.
DIRECTIONS = {"upgrade": 3, "downgrade": 5, "stage": 2}
PAGE_SIZE = 50


async def _maybe(call: Any) -> Any:
    """A panel's data, or the error that kept it away: one failing service leaves the page up."""
    try:
        return await call
    except UpstreamError as exc:
        return exc


def window(start: str | None, end: str | None, now: datetime, days: int = 30) -> tuple[datetime, datetime]:
    """The period a page covers: the dates given, else the `days` up to now (end day included)."""
    last = date.fromisoformat(end) if end else now.date()
    first = date.fromisoformat(start) if start else last - timedelta(days=days - 1)
    if first > last:
        first, last = last, first
    return (
        datetime.combine(first, datetime.min.time(), UTC),
        datetime.combine(last + timedelta(days=1), datetime.min.time(), UTC),
    )


async def overview(
    user: UserClient, fmt: Formatter, start: datetime, end: datetime, branch: str | None
) -> dict[str, Any]:
    span = {"from": start.isoformat(), "to": end.isoformat()}
    distribution, migrations, per_day, queue, rms, *workers = await asyncio.gather(
        _maybe(user.get("scoring", "/v1/tiers/distribution", branch_id=branch)),
        _maybe(user.get("scoring", "/v1/tiers/migrations", **span)),
        _maybe(user.get("scoring", "/v1/tiers/changes-per-day", **span)),
        _maybe(user.get("engagement", "/v1/outreach/queue", branch_id=branch)),
        _maybe(user.get("engagement", "/v1/rms", branch_id=branch)),
        *(_maybe(user.get(name, "/v1/worker/status")) for name in WORKERS),
    )
    page: dict[str, Any] = {
        "distribution": distribution, "migrations": migrations, "per_day": per_day, "tiers": TIERS,
        "stages": STAGES,
    }  # fmt: skip
    stages = [charts.Series(s, fmt.label("stage", s)) for s in STAGES]
    tiers = [(t, fmt.label("tier", t)) for t in TIERS]
    if not isinstance(distribution, UpstreamError):
        page["distribution_chart"] = charts.stacked_bars(
            fmt.text("overview.distribution"), tiers, stages, distribution["by_tier_and_stage"],
            fmt.text("customers"),
        )  # fmt: skip
    if not isinstance(migrations, UpstreamError):
        counts = {(m["from_tier"], m["to_tier"]): m["count"] for m in migrations["moves"]}
        page["migration_chart"] = charts.heat_map(
            fmt.text("overview.migrations"), [*tiers, ("none", fmt.label("tier", "none"))], tiers, counts,
            fmt.text("from") + " ↓", fmt.text("to") + " →",
        )  # fmt: skip
    if not isinstance(per_day, UpstreamError):
        days = _every_day(start, end)
        by_day = {row["day"]: row["changes"] for row in per_day}
        page["changes_chart"] = charts.stacked_columns(
            fmt.text("overview.changes"), [fmt.short_day(d) for d in days],
            [charts.Series(d, fmt.label("direction", d), colour) for d, colour in DIRECTIONS.items()],
            [by_day.get(d, {}) for d in days], fmt.text("changes"),
        )  # fmt: skip
        page["changes_total"] = sum(sum(row["changes"].values()) for row in per_day)
    page["queue"] = queue if isinstance(queue, UpstreamError) else _queue_table(queue)
    page["rms"] = rms
    page["workers"] = [(name, status) for name, status in zip(WORKERS, workers, strict=True)]
    return page


def _every_day(start: datetime, end: datetime) -> list[str]:
    count = (end.date() - start.date()).days
    return [(start.date() + timedelta(days=offset)).isoformat() for offset in range(count)]


def _queue_table(cells: list[dict[str, Any]]) -> dict[str, Any]:
    actions = sorted({c["action"] for c in cells})
    rms = sorted({c["assigned_to"] or "" for c in cells})
    counts: dict[tuple[str, str], int] = {}
    for c in cells:
        key = (c["assigned_to"] or "", c["action"])
        counts[key] = counts.get(key, 0) + c["items"]
    return {"actions": actions, "rms": rms, "counts": counts, "total": sum(counts.values())}


async def customer(user: UserClient, fmt: Formatter, customer_id: str) -> dict[str, Any]:
    view = await user.get("scoring", f"/v1/customers/{customer_id}")
    history, outreach, feedback, policy = await asyncio.gather(
        _maybe(user.get("scoring", f"/v1/customers/{customer_id}/tier-history", limit=50)),
        _maybe(user.get("engagement", "/v1/outreach", customer_id=customer_id, limit=50)),
        _maybe(user.get("feedback", f"/v1/customers/{customer_id}/feedback", limit=50)),
        _maybe(user.get("scoring", f"/v1/policies/{view['policy_version']}")),
    )
    page: dict[str, Any] = {"view": view, "history": history, "outreach": outreach, "feedback": feedback}
    if not isinstance(history, UpstreamError) and history:
        page["timeline"] = _timeline(fmt, history)
    if not isinstance(policy, UpstreamError):
        page["gates"] = _aum_gates(fmt, policy, view["features"]["aum"])
    return page


def _timeline(fmt: Formatter, history: list[dict[str, Any]]) -> list[dict[str, str]]:
    """The tier and stage over time, oldest first, as the steps a reader follows left to right."""
    return [
        {"when": fmt.when(row["at"]), "tier": fmt.label("tier", row["tier"]),
         "stage": fmt.label("stage", row["stage"]), "direction": row["direction"]}
        for row in reversed(history)
    ]  # fmt: skip


def _aum_gates(fmt: Formatter, policy: dict[str, Any], aum: str) -> list[dict[str, Any]]:
    """Each tier's AUM threshold from the policy, and whether the customer's AUM reaches it."""
    gates = []
    for tier in policy.get("tiers", []):
        for condition in _conditions(tier):
            if condition.get("feature") in ("aum", "aum_avg_30d", "aum_avg_90d") and "value" in condition:
                threshold = float(condition["value"])
                gates.append({
                    "tier": fmt.label("tier", str(tier.get("tier", tier.get("name")))),
                    "feature": condition["feature"], "threshold": fmt.money(str(condition["value"])),
                    "reached": float(aum) >= threshold,
                    "share": min(100, round(100 * float(aum) / threshold)) if threshold else 100,
                })  # fmt: skip
    return gates


def _conditions(node: Any) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    if isinstance(node, dict):
        if "feature" in node:
            found.append(node)
        for value in node.values():
            found += _conditions(value)
    elif isinstance(node, list):
        for item in node:
            found += _conditions(item)
    return found


async def customers(user: UserClient, filters: dict[str, str | None], after: str | None) -> dict[str, Any]:
    page = await user.get("scoring", "/v1/customers", **filters, after=after, limit=PAGE_SIZE)
    return {"items": page["items"], "next_after": page["next_after"]}


async def queue(user: UserClient, rm_id: str, now: datetime) -> dict[str, Any]:
    items, rms = await asyncio.gather(
        user.get("engagement", "/v1/outreach", assigned_to=rm_id, limit=200),
        _maybe(user.get("engagement", "/v1/rms")),
    )
    open_items = [i for i in items if i["status"] in ("assigned", "in_progress")]
    me = None if isinstance(rms, UpstreamError) else next((r for r in rms if r["rm_id"] == rm_id), None)
    if me is not None:
        now = datetime.fromisoformat(me["as_of"])  # engagement's clock, as its overdue count
    for item in open_items:
        item["sla_left_h"] = (datetime.fromisoformat(item["sla_due_at"]) - now).total_seconds() / 3600
    branch = None if me is None else me["branch_id"]
    unassigned = await _maybe(
        user.get("engagement", "/v1/outreach", status="queued", branch_id=branch, limit=20)
    )
    return {"items": sorted(open_items, key=lambda i: i["due_at"]), "me": me, "unassigned": unassigned}


async def policies(user: UserClient) -> list[dict[str, Any]]:
    listed: list[dict[str, Any]] = await user.get("scoring", "/v1/policies")
    return listed


async def document_yaml(user: UserClient, service: str, path: str) -> str:
    document = await user.get(service, path)
    return yaml.safe_dump(document, sort_keys=False, allow_unicode=True)


async def diff(user: UserClient, service: str, kind: str, older: str, newer: str) -> list[tuple[str, str]]:
    """Unified diff of two versions' YAML, each line with its kind (add, remove, hunk, same)."""
    a, b = await asyncio.gather(
        document_yaml(user, service, f"/v1/{kind}/{older}"),
        document_yaml(user, service, f"/v1/{kind}/{newer}"),
    )
    lines = difflib.unified_diff(a.splitlines(), b.splitlines(), older, newer, lineterm="")
    return [(_line_kind(line), line) for line in lines]


def _line_kind(line: str) -> str:
    if line.startswith(("+++", "---")):
        return "file"
    return {"+": "add", "-": "remove", "@": "hunk"}.get(line[:1], "same")


def simulation(fmt: Formatter, result: dict[str, Any]) -> dict[str, Any]:
    tiers = [(t, fmt.label("tier", t)) for t in TIERS]
    counts = {(m["from_tier"], m["to_tier"]): m["count"] for m in result["tier_migration"]}
    samples = [m for m in result["tier_migration"] if m["from_tier"] != m["to_tier"] and m.get("sample")]
    return {
        "result": result,
        "matrix": charts.heat_map(
            fmt.text("policies.simulation"), [*tiers, ("none", fmt.label("tier", "none"))], tiers, counts,
            fmt.text("policies.current") + " ↓", fmt.text("policies.candidate") + " →",
        ),
        "samples": samples,
        "tier_counts": [(t, result["tiers"].get(t, 0)) for t in TIERS],
    }  # fmt: skip


async def reports(user: UserClient, start: datetime, end: datetime, by: str) -> dict[str, Any]:
    span = {"from": start.isoformat(), "to": end.isoformat()}
    satisfaction, complaints, effectiveness = await asyncio.gather(
        _maybe(user.get("feedback", "/v1/reports/satisfaction", **span, by=by)),
        _maybe(user.get("feedback", "/v1/reports/complaints", **span)),
        _maybe(user.get("feedback", "/v1/reports/effectiveness", **span)),
    )
    if not isinstance(effectiveness, UpstreamError):
        for side in ("contacted", "not_contacted"):
            effectiveness[side] = _numbers(effectiveness[side])
    return {
        "satisfaction": satisfaction if isinstance(satisfaction, UpstreamError) else _numbers(satisfaction),
        "complaints": complaints if isinstance(complaints, UpstreamError) else _numbers(complaints),
        "effectiveness": effectiveness,
        "naming_columns": NAMING_COLUMNS,
    }


# Report columns that name something (the rest are counts and averages).
NAMING_COLUMNS = frozenset({"grp", "tier", "stage", "severity", "action", "channel", "experiment", "arm"})


def _numbers(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Report rows with averages the API sends as decimal strings turned into numbers."""
    return [
        {key: _number(value) if key not in NAMING_COLUMNS else value for key, value in row.items()}
        for row in rows
    ]


def _number(value: Any) -> Any:
    if not isinstance(value, str):
        return value
    try:
        return Decimal(value)
    except InvalidOperation:
        return value
