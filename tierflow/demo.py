"""`tierflow demo`: the stack on embedded defaults, a simulated bank's year through it, a summary.

Everything the summary shows is read back from TierFlow's own APIs, so what a person sees
here is what they will find when they explore the APIs afterwards.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from shared.contracts.outbound import COMPLAINT, SURVEY, TIER_RANK
from shared.settings import Settings
from tierflow import report, sinks
from tierflow.processes import port_is_open
from tierflow.rm_work import Rms, persona_lookup
from tierflow.simulate import GATES, Bank, branches, customer_id, households, persona_of, records
from tierflow.stack import SERVICES, Stack, StackError, Stopping, demo_rms, describe, hold
from tierflow.summary import Summary

SUMMARY_FILE = "demo-summary.json"
EXAMPLE_PERSONAS = ("private", "one_off", "drifting", "affluent")
# Whose label history the summary shows: someone struggling with digital banking, if anyone is.
LABEL_EXAMPLES = ("digital_difficulty", "investment_intent", "branch_reliant", "digital_first")
DRAIN_TIMEOUT_S = 900
QUIET_POLLS = 3
MIGRATION_FROM = timedelta(days=31)
# The effectiveness report looks this many days past each contact or holdout draw.
EFFECT_DAYS = 30


@dataclass
class Endpoints:
    urls: dict[str, str]
    key: str

    def client(self, service: str) -> httpx.Client:
        return sinks.api_client(self.urls[service], self.key)


def run_demo(args: argparse.Namespace, bank: Bank) -> int:
    console = Console()
    stopping = Stopping.install()
    data_dir: Path = args.data_dir.resolve()
    stack: Stack | None = None
    try:
        endpoints = running_stack(data_dir)
        if endpoints is None:
            stack = Stack(data_dir, rms=demo_rms(bank))
            # A simulated year is judged by its own calendar, not by today's.
            stack.env.setdefault("TIERFLOW_SCORING_CLOCK", "event")
            with console.status(
                "Starting TierFlow: PostgreSQL, broker, topics, migrations, four services, console ..."
            ):
                settings = stack.start()
            endpoints = Endpoints(_urls(settings), _key_of(stack))
            console.print(f"TierFlow is up (data in {data_dir}).")
        else:
            console.print("Using the TierFlow already running here.")
        summary = simulate_and_summarise(console, endpoints, bank, args.duration, stopping)
        (data_dir / SUMMARY_FILE).write_text(json.dumps(asdict(summary), indent=2, default=str))
        report.render(console, summary)
        console.print(f"\nThe summary as JSON: {data_dir / SUMMARY_FILE}")
        if stack is None or args.exit:
            return 0
        console.print(describe(stack, stack.settings()))
        return hold(stack, stopping)
    except (StackError, DemoError) as exc:
        console.print(f"[red]tierflow demo failed:[/red] {exc}")
        return 1
    finally:
        if stack is not None:
            console.print("Stopping TierFlow ...")
            stack.stop()


class DemoError(RuntimeError):
    pass


def running_stack(data_dir: Path) -> Endpoints | None:
    """The stack this machine already runs (ingest answers on its port), if any."""
    settings = Settings()
    if not port_is_open(settings.host, settings.port_of("ingest")):
        return None
    key = os.environ.get("TIERFLOW_KEY", "").strip()
    key_file = data_dir / "api-key"
    if not key and key_file.exists():
        key = key_file.read_text().strip()
    if not key:
        raise DemoError(f"TierFlow is running but no admin key was found: set TIERFLOW_KEY or {key_file}")
    return Endpoints(_urls(settings), key)


def _urls(settings: Settings) -> dict[str, str]:
    return {name: f"http://{settings.host}:{settings.port_of(name)}" for name in SERVICES}


def _key_of(stack: Stack) -> str:
    if stack.api_key_file is not None:
        return stack.api_key_file.read_text().strip()
    key = os.environ.get("TIERFLOW_KEY", "").strip()
    if not key:
        raise DemoError("TIERFLOW_API_KEYS is set: give the demo an admin key in TIERFLOW_KEY")
    return key


def simulate_and_summarise(
    console: Console, endpoints: Endpoints, bank: Bank, duration_s: float, stopping: Stopping
) -> Summary:
    register_rms(endpoints, bank)
    with console.status(f"Generating a year of a bank with {bank.customers:,} customers ..."):
        stream = list(records(bank))
    with endpoints.client("engagement") as engagement, endpoints.client("feedback") as feedback:
        rms = Rms(bank, engagement, feedback, persona_lookup(bank))
        sent = send(console, endpoints, bank, stream, duration_s, stopping, rms)
        wait_until_processed(console, endpoints, stopping)
        with console.status("RMs working the last days of the year ..."):
            rms.until(bank.end)
        wait_until_processed(console, endpoints, stopping)
    return collect(endpoints, bank, sent, rms)


def register_rms(endpoints: Endpoints, bank: Bank) -> None:
    with endpoints.client("engagement") as engagement:
        for branch in branches(bank):
            for rm in branch.rms:
                body = {"branch_id": rm.branch_id, "capacity": rm.capacity, "active": True}
                engagement.put(f"/v1/rms/{rm.rm_id}", json=body).raise_for_status()


def send(
    console: Console,
    endpoints: Endpoints,
    bank: Bank,
    stream: list[dict[str, Any]],
    duration_s: float,
    stopping: Stopping,
    rms: Rms,
) -> dict[str, int]:
    compression = bank.days * 86_400 / duration_s if duration_s > 0 else 0
    pacer = sinks.Pacer(0, compression, bank.start)
    checkpoints = _quarters(bank)
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("simulated {task.fields[day]}"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console) as progress, endpoints.client("scoring") as scoring:
        task = progress.add_task("Sending the year", total=len(stream), day=bank.start.date())

        def advance(count: int, reached: datetime) -> None:
            if stopping.requested:
                raise DemoError("interrupted")
            progress.update(task, advance=count, day=reached.date())
            rms.until(reached)
            while checkpoints and reached >= checkpoints[0]:
                progress.console.print(report.snapshot_line(checkpoints.pop(0), _distribution(scoring)))

        feedback = sinks.FeedbackClient(endpoints.urls["feedback"], endpoints.key)
        with sinks.api_client(endpoints.urls["ingest"], endpoints.key) as ingest:
            tally = sinks.to_ingest(iter(stream), ingest, pacer, 500, feedback, advance)
    return {
        "events": tally.sent,
        "surveys": sum(1 for r in stream if r["type"] == SURVEY),
        "complaint_updates": sum(1 for r in stream if r["type"] == COMPLAINT),
    }


def _quarters(bank: Bank) -> list[datetime]:
    return [bank.start + timedelta(days=d) for d in range(91, bank.days, 91)]


def _distribution(scoring: httpx.Client, **filters: str) -> dict[str, Any]:
    response = scoring.get("/v1/tiers/distribution", params=filters)
    response.raise_for_status()
    result: dict[str, Any] = response.json()
    return result


def wait_until_processed(console: Console, endpoints: Endpoints, stopping: Stopping) -> None:
    """Until every worker has processed everything on its partitions and every outbox is empty,
    several polls in a row: then the APIs show the final state."""
    deadline = time.monotonic() + DRAIN_TIMEOUT_S
    quiet = 0
    with Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), console=console
    ) as progress:
        task = progress.add_task("Scoring, engagement and feedback catching up", total=None)
        most = 0
        while quiet < QUIET_POLLS:
            if stopping.requested:
                raise DemoError("interrupted")
            if time.monotonic() > deadline:
                raise DemoError(f"the pipeline did not settle within {DRAIN_TIMEOUT_S} s; see the logs")
            pending = sum(pending_work(endpoints.urls[name]) for name in WORKERS)
            most = max(most, pending)
            progress.update(task, total=max(most, 1), completed=most - pending)
            quiet = quiet + 1 if pending == 0 else 0
            time.sleep(1)


WORKERS = ("scoring", "engagement", "feedback")


def pending_work(url: str) -> int:
    """Unprocessed records plus unrelayed outbox rows a service reports; -1 never counts as done."""
    text = httpx.get(f"{url}/metrics", timeout=10).text
    pending = 0
    lags_seen = False
    for family in text_string_to_metric_families(text):
        if family.name in ("tierflow_consumer_lag", "tierflow_outbox_backlog"):
            for sample in family.samples:
                pending += int(sample.value)
                lags_seen = lags_seen or family.name == "tierflow_consumer_lag"
    return pending if lags_seen else 1


def collect(endpoints: Endpoints, bank: Bank, sent: dict[str, int], rms: Rms) -> Summary:
    window = {"from": bank.start.isoformat(), "to": bank.end.isoformat()}
    summary = Summary(window=window, customers=bank.customers, records_sent=sent)
    with (
        endpoints.client("scoring") as scoring,
        endpoints.client("engagement") as engagement,
        endpoints.client("feedback") as feedback,
    ):
        for branch in branches(bank):
            cells = _distribution(scoring, branch_id=branch.branch_id)
            summary.branches.append({"branch_id": branch.branch_id, "kind": branch.kind, **cells})
        # From a month in, once the customers already at the bank have all been seen.
        summary.migration_window = {"from": (bank.start + MIGRATION_FROM).isoformat(), "to": window["to"]}
        summary.migrations = _get(scoring, "/v1/tiers/migrations", summary.migration_window)["moves"]
        summary.examples = [_example(scoring, bank, index, persona) for index, persona in _examples(bank)]
        held = _distribution(scoring)["by_label"]
        summary.labels_by_tier = {
            name: _distribution(scoring, label=name)["by_tier"] for name in sorted(held)
        }
        summary.label_example = _label_example(scoring, held)
        summary.household_example = _household_example(scoring, bank)
        summary.outreach_queue = _get(engagement, "/v1/outreach/queue")
        summary.rms = _get(engagement, "/v1/rms")
        until = (bank.end + timedelta(days=1)).isoformat()
        summary.nps_window = {"from": window["from"], "to": until, "by": "tier"}
        summary.nps_by_tier = _get(feedback, "/v1/reports/satisfaction", summary.nps_window)
        summary.rm_work = asdict(rms.work)
        summary.outreach_stats = _get(engagement, "/v1/outreach/stats", {"from": window["from"], "to": until})
        summary.effectiveness_window = {"from": window["from"], "to": until, "days": str(EFFECT_DAYS)}
        summary.effectiveness = _get(feedback, "/v1/reports/effectiveness", summary.effectiveness_window)
        summary.loop = _loop(scoring, engagement, rms.work.loop)
    return summary


def _loop(scoring: httpx.Client, engagement: httpx.Client, start: dict[str, Any]) -> dict[str, Any]:
    """One customer's whole loop, from the APIs: the tier changes, the item (the call and its
    outcome), the survey they answered, and their tier now."""
    if not start:
        return {}
    customer = start["customer_id"]
    return {
        "customer_id": customer,
        "history": _get(scoring, f"/v1/customers/{customer}/tier-history", {"limit": "20"}),
        "item": _get(engagement, f"/v1/outreach/{start['outreach_id']}"),
        "survey": start["survey"],
        "tier_after": _get(scoring, f"/v1/customers/{customer}")["tier"],
    }


def _get(client: httpx.Client, path: str, params: dict[str, str] | None = None) -> Any:
    response = client.get(path, params=params)
    response.raise_for_status()
    return response.json()


def _examples(bank: Bank) -> list[tuple[int, str]]:
    """The first customer of each example persona: a private client, a one-off windfall, a
    customer drifting away, an affluent one."""
    found: dict[str, int] = {}
    for index in range(bank.customers):
        name = persona_of(bank, index).name
        if name in EXAMPLE_PERSONAS and name not in found:
            found[name] = index
        if len(found) == len(EXAMPLE_PERSONAS):
            break
    return [(found[name], name) for name in EXAMPLE_PERSONAS if name in found]


def _label_example(scoring: httpx.Client, held: dict[str, int]) -> dict[str, Any]:
    """The first customer holding the first of LABEL_EXAMPLES anyone holds: their label changes."""
    label = next((name for name in LABEL_EXAMPLES if held.get(name)), None)
    if label is None:
        return {}
    cid = _get(scoring, "/v1/customers", {"label": label, "limit": "1"})["items"][0]["customer_id"]
    view = _get(scoring, f"/v1/customers/{cid}")
    history = _get(scoring, f"/v1/customers/{cid}/tier-history", {"limit": "1000"})
    return {
        "customer_id": cid,
        "labels": [
            {"name": held_label["name"], "reason": held_label["reason"]} for held_label in view["labels"]
        ],
        "history": [change for change in history if change["labels_entered"] or change["labels_left"]],
    }


def _example(scoring: httpx.Client, bank: Bank, index: int, persona: str) -> dict[str, Any]:
    cid = customer_id(index)
    view = _get(scoring, f"/v1/customers/{cid}")
    history = _get(scoring, f"/v1/customers/{cid}/tier-history", {"limit": "20"})
    return {
        "customer_id": cid,
        "persona": persona,
        "tier": view["tier"],
        "stage": view["stage"],
        "history": history,
    }


def _household_example(scoring: httpx.Client, bank: Bank) -> dict[str, Any]:
    """A household whose 30-day average AUM passes a gate that none of its members' own does
    (the highest such gate first): the household as the API answers it, and each member's tier
    and reasons as their customer view gives them, whatever rule produced them."""
    joint = [(h.household_id, h.together) for h in households(bank) if h.together is not None]
    for household_id, together in sorted(joint, key=lambda plan: -TIER_RANK[plan[1]]):
        response = scoring.get(f"/v1/households/{household_id}")
        if response.status_code == 404:
            continue  # every member left it
        response.raise_for_status()
        household = response.json()
        gate = Decimal(str(GATES[together]))
        own = [Decimal(member["aum_avg_30d"]) for member in household["members"]]
        if len(own) < 2 or max(own) >= gate or Decimal(household["aum_avg_30d"]) < gate:
            continue
        return {
            "together": together.value,
            "gate": str(gate),
            "household": household,
            "members": [_household_member(scoring, member) for member in household["members"]],
        }
    return {}


def _household_member(scoring: httpx.Client, member: dict[str, Any]) -> dict[str, Any]:
    view = _get(scoring, f"/v1/customers/{member['customer_id']}")
    return {
        "customer_id": member["customer_id"],
        "role": member["role"],
        "aum_avg_30d": member["aum_avg_30d"],
        "tier": view["tier"],
        "reasons": view["reasons"],
    }
