"""The demo's summary as tables a person reads in a terminal."""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import datetime
from decimal import Decimal
from typing import Any

from rich.console import Console
from rich.table import Table

from services.engagement.domain import lifecycle
from services.engagement.domain.lifecycle import ItemStatus
from shared.contracts.types import Stage, Tier
from tierflow.summary import Summary

TIERS = tuple(tier.value for tier in Tier)
STAGES = tuple(stage.value for stage in Stage)
# the queue's order, as its lifecycle runs
OPEN_STATES = tuple(status.value for status in ItemStatus if status in lifecycle.OPEN_STATES)
TOP_RMS = 10


def snapshot_line(at: datetime, distribution: dict[str, Any]) -> str:
    by_tier = distribution.get("by_tier", {})
    tiers = " · ".join(f"{tier} {by_tier.get(tier, 0):,}" for tier in TIERS)
    return f"  {at:%Y-%m-%d}  scored so far: {distribution.get('total', 0):,} customers ({tiers})"


def render(console: Console, summary: Summary) -> None:
    sent = summary.records_sent
    console.rule("TierFlow demo: a year of a simulated bank")
    console.print(
        f"{summary.customers:,} customers, {sent['events']:,} core-banking events, "
        f"{sent['surveys']:,} survey answers, {sent['complaint_updates']:,} complaint updates, "
        f"{summary.window['from'][:10]} to {summary.window['to'][:10]}"
    )
    console.print(_branches(summary))
    console.print(_migrations(summary))
    for example in summary.examples:
        console.print(_example(example))
    console.print(_labels(summary))
    if summary.label_example:
        console.print(_label_history(summary.label_example))
    if summary.household_example:
        console.print(_household(summary.household_example))
    console.print(_queue(summary))
    console.print(_rms(summary))
    console.print(_nps(summary))
    console.print(_rm_work(summary))
    console.print(_rm_work_line(summary))
    console.print(_holdouts(summary))
    if summary.loop:
        console.print(_loop(summary.loop))


def _rm_work(summary: Summary) -> Table:
    table = Table(title="RMs at work: the outreach statistics")
    for name in (
        "tier",
        "action",
        "items",
        "held out",
        "completed",
        "reached",
        "converted",
        "first contact within SLA",
    ):
        table.add_column(name, justify="left" if name in ("tier", "action") else "right")
    for row in summary.outreach_stats:
        within = row["first_contact_within_sla_rate"]
        table.add_row(
            row["tier"], row["action"], f"{row['items']:,}", f"{row['held_out']:,}", f"{row['completed']:,}",
            f"{row['reached']:,}", f"{row['converted']:,}", "-" if within is None else f"{within:.0%}",
        )  # fmt: skip
    return table


def _rm_work_line(summary: Summary) -> str:
    work = summary.rm_work
    requested, answered = work.get("surveys_requested", 0), work.get("surveys_answered", 0)
    worked = sum(row["completed"] for row in summary.outreach_stats)
    met = sum(row["first_contact_within_sla"] for row in summary.outreach_stats)
    return (
        f"Items worked by RMs: {worked:,}, SLA met on {met:,} (first contact within it); "
        f"surveys requested {requested:,}, answered {answered:,}"
    )


def _holdouts(summary: Summary) -> Table:
    days = summary.effectiveness_window.get("days", "?")
    table = Table(title=f"Holdout comparison by tier, {days} days on")
    columns = (
        "experiment",
        "tier",
        "action",
        "treated",
        "held out",
        "moved up: difference [95%]",
        "NPS later",
        "AUM change",
        "products held",
    )
    for name in columns:
        table.add_column(name)
    for row in summary.effectiveness.get("holdouts", []):
        table.add_row(
            row["experiment"], row["tier"], row["action"], f"{row['treated']:,}", f"{row['held_out']:,}",
            _difference(row["tier_up"]), _difference(row["nps_later"]),
            # Reports from before AUM and products were compared lack them.
            _difference(row["aum_change"]) if "aum_change" in row else "-",
            _difference(row["products_held_change"]) if "products_held_change" in row else "-",
        )  # fmt: skip
    table.caption = summary.effectiveness.get("observational", "")
    return table


def _difference(comparison: dict[str, Any]) -> str:
    if comparison["difference"] is None:
        return str(comparison["conclusion"])
    low, high = comparison["ci95"]
    if isinstance(comparison["difference"], str):  # an amount, to the cent
        return f"{comparison['difference']} [{low}, {high}] {comparison['conclusion']}"
    return f"{comparison['difference']:+.3f} [{low:+.3f}, {high:+.3f}] {comparison['conclusion']}"


def _loop(loop: dict[str, Any]) -> Table:
    item, survey = loop["item"], loop["survey"]
    table = Table(title=f"One customer's loop: {loop['customer_id']}", title_justify="left")
    table.add_column("when")
    table.add_column("what")
    planned = datetime.fromisoformat(item["created_at"])
    for change in reversed(loop["history"]):
        if datetime.fromisoformat(change["at"]) <= planned:
            stages = f"{change['previous_stage'] or '-'} -> {change['stage']}"
            table.add_row(
                change["at"][:16], f"tier {change['previous_tier'] or '-'} -> {change['tier']}, {stages}"
            )
    table.add_row(item["created_at"][:16], f"{item['action']} planned: {item['reason']}")
    contact = item["first_contact_at"] or item["closed_at"] or ""
    table.add_row(contact[:16], f"{item['assigned_to']} works it: {item['outcome']}")
    table.add_row(survey["answered_at"][:16], f"survey answered: NPS {survey['score']}")
    for change in reversed(loop["history"]):
        if datetime.fromisoformat(change["at"]) > planned:
            table.add_row(change["at"][:16], f"tier {change['previous_tier'] or '-'} -> {change['tier']}")
    table.add_row("now", f"tier {loop['tier_after']}")
    return table


def _branches(summary: Summary) -> Table:
    table = Table(title="Tier and stage by branch", show_footer=True)
    totals: Counter[str] = Counter()
    table.add_column("branch", footer="all")
    table.add_column("kind")
    for name in (*TIERS, *STAGES):
        table.add_column(name, justify="right")
    table.add_column("customers", justify="right")
    for branch in summary.branches:
        cells = [branch["by_tier"].get(t, 0) for t in TIERS] + [branch["by_stage"].get(s, 0) for s in STAGES]
        totals.update(dict(zip((*TIERS, *STAGES, "total"), [*cells, branch["total"]], strict=True)))
        table.add_row(branch["branch_id"], branch["kind"], *(f"{n:,}" for n in cells), f"{branch['total']:,}")
    for column, name in zip(table.columns[2:], (*TIERS, *STAGES, "total"), strict=True):
        column.footer = f"{totals[name]:,}"
    return table


def _migrations(summary: Summary) -> Table:
    window = summary.migration_window
    table = Table(title=f"Tier migration, {window['from'][:10]} to {window['to'][:10]}")
    counts = {(m["from_tier"], m["to_tier"]): m["count"] for m in summary.migrations}
    sources = [t for t in ("none", *TIERS) if any(f == t for f, _ in counts)]
    table.add_column("from \\ to")
    for tier in TIERS:
        table.add_column(tier, justify="right")
    for source in sources:
        table.add_row(source, *(f"{counts.get((source, tier), 0):,}" for tier in TIERS))
    return table


def _example(example: dict[str, Any]) -> Table:
    title = (
        f"{example['customer_id']} ({example['persona'].replace('_', '-')} persona): "
        f"now {example['tier']}, {example['stage']}"
    )
    table = Table(title=title, title_justify="left")
    for name in ("when", "tier", "stage", "why"):
        table.add_column(name)
    for change in reversed(example["history"]):
        reasons = "; ".join(dict.fromkeys(r["detail"] for r in change["reasons"]))
        table.add_row(
            change["at"][:10],
            f"{change['previous_tier'] or '-'} -> {change['tier']}",
            f"{change['previous_stage'] or '-'} -> {change['stage']}",
            reasons,
        )
    return table


def _household(example: dict[str, Any]) -> Table:
    household = example["household"]
    title = f"A household that reaches {example['together']} only together: {household['household_id']}"
    caption = (
        f"30-day average AUM {_amount(household['aum_avg_30d'])} together, the gate "
        f"{_amount(example['gate'])} (no member's alone); household tier {household['tier'] or '-'}; "
        f"{household['members_count']} members, AUM {_amount(household['aum'])}, 90-day average "
        f"{_amount(household['aum_avg_90d'])}, products {', '.join(household['products']) or '-'}, "
        f"primary {household['primary_id'] or '-'}, RM {household['rm_id'] or '-'}"
    )
    table = Table(title=title, caption=caption, title_justify="left", caption_justify="left")
    for name in ("member", "role", "30-day average AUM", "tier", "why"):
        table.add_column(name, justify="right" if name == "30-day average AUM" else "left")
    for member in example["members"]:
        reasons = "; ".join(dict.fromkeys(r["detail"] for r in member["reasons"]))
        table.add_row(
            member["customer_id"], member["role"], _amount(member["aum_avg_30d"]), member["tier"], reasons
        )
    return table


def _amount(value: str) -> str:
    return f"{Decimal(value):,.0f}"


def _labels(summary: Summary) -> Table:
    table = Table(title="Customer labels by tier (a customer may hold several)")
    table.add_column("label")
    for tier in TIERS:
        table.add_column(tier, justify="right")
    table.add_column("customers", justify="right")
    for name, by_tier in summary.labels_by_tier.items():
        cells = [by_tier.get(tier, 0) for tier in TIERS]
        table.add_row(name, *(f"{n:,}" for n in cells), f"{sum(by_tier.values()):,}")
    return table


def _label_history(example: dict[str, Any]) -> Table:
    now = ", ".join(label["name"] for label in example["labels"]) or "none"
    table = Table(title=f"Label history of {example['customer_id']}: now {now}", title_justify="left")
    for name in ("when", "entered", "left", "why"):
        table.add_column(name)
    for change in reversed(example["history"]):
        entered = set(change["labels_entered"])
        reasons = "; ".join(
            r["detail"] for r in change["reasons"] if r["rule"].removeprefix("label.") in entered
        )
        table.add_row(
            change["at"][:10], ", ".join(change["labels_entered"]), ", ".join(change["labels_left"]), reasons
        )
    return table


def _queue(summary: Summary) -> Table:
    table = Table(title="Open outreach by action", show_footer=True)
    by_action: dict[str, Counter[str]] = defaultdict(Counter)
    for cell in summary.outreach_queue:
        by_action[cell["action"]][cell["status"]] += cell["items"]
    table.add_column("action", footer="all")
    for state in OPEN_STATES:
        total = sum(c["items"] for c in summary.outreach_queue if c["status"] == state)
        table.add_column(state, justify="right", footer=f"{total:,}")
    for action, counts in sorted(by_action.items()):
        table.add_row(action, *(f"{counts[state]:,}" for state in OPEN_STATES))
    return table


def _rms(summary: Summary) -> Table:
    busiest = sorted(summary.rms, key=lambda rm: (-rm["open_items"], rm["rm_id"]))[:TOP_RMS]
    by_rm: dict[str, Counter[str]] = defaultdict(Counter)
    for cell in summary.outreach_queue:
        if cell["assigned_to"]:
            by_rm[cell["assigned_to"]][cell["action"]] += cell["items"]
    table = Table(title=f"Open outreach by RM (busiest {len(busiest)} of {len(summary.rms)})")
    for name in ("rm", "branch", "open / capacity", "actions"):
        table.add_column(name)
    for rm in busiest:
        actions = ", ".join(f"{a} {n}" for a, n in by_rm[rm["rm_id"]].most_common())
        table.add_row(rm["rm_id"], rm["branch_id"], f"{rm['open_items']} / {rm['capacity']}", actions)
    return table


def _nps(summary: Summary) -> Table:
    table = Table(title="Satisfaction by tier (tier when the answer arrived)")
    for name in ("tier", "NPS answers", "NPS", "CSAT answers", "CSAT"):
        table.add_column(name, justify="right" if name != "tier" else "left")
    for row in summary.nps_by_tier:
        table.add_row(
            row["grp"],
            f"{row['nps_responses']:,}",
            "-" if row["nps"] is None else f"{float(row['nps']):+.1f}",
            f"{row['csat_responses']:,}",
            "-" if row["csat_avg"] is None else f"{float(row['csat_avg']):.2f}",
        )
    return table
