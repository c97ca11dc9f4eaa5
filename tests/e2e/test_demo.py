"""`tierflow demo` as a new user runs it: the stack comes up, a simulated year goes through it,
the summary is printed, and every number in it is what the APIs answer afterwards."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from shared.contracts.outbound import COMPLAINT, SURVEY
from shared.contracts.types import Tier
from tests.e2e.conftest import environment, get_json
from tests.infra import REPO
from tierflow.simulate import GATES, Bank, branches, events, records

pytestmark = pytest.mark.e2e
CUSTOMERS = 250
END = datetime(2026, 11, 1, tzinfo=UTC)
DEMO_TIMEOUT_S = 420


def run_demo(data_dir: Path, ports: dict[str, int]) -> tuple[subprocess.Popen[str], str]:
    process = subprocess.Popen(
        [sys.executable, "-m", "tierflow.cli", "demo", "--data-dir", str(data_dir),
         "--customers", str(CUSTOMERS), "--end", END.isoformat(), "--duration", "30"],
        cwd=REPO, env={**environment(ports), "COLUMNS": "200"},
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    output: list[str] = []
    assert process.stdout is not None
    deadline = time.monotonic() + DEMO_TIMEOUT_S
    for line in process.stdout:
        output.append(line)
        if "Press Ctrl-C to stop." in line or time.monotonic() > deadline:
            break
    return process, "".join(output)


def test_the_demo_summary_agrees_with_the_apis(data_dir: Path, ports: dict[str, int]) -> None:
    process, output = run_demo(data_dir, ports)
    try:
        assert "Press Ctrl-C to stop." in output, output
        summary = json.loads((data_dir / "demo-summary.json").read_text())
        key = (data_dir / "api-key").read_text().strip()

        def get(service: str, path: str, **params: str) -> Any:
            return get_json(f"http://127.0.0.1:{ports[service]}{path}", key, **params)

        bank = Bank(CUSTOMERS, 40, start=END - timedelta(days=365), cohort=CUSTOMERS)
        stream = list(records(bank))
        assert summary["records_sent"] == {
            "events": sum(1 for _ in events(bank)),
            "surveys": sum(1 for r in stream if r["type"] == SURVEY),
            "complaint_updates": sum(1 for r in stream if r["type"] == COMPLAINT),
        }

        # Every simulated customer was scored, and each branch's cells are the API's.
        assert sum(b["total"] for b in summary["branches"]) == CUSTOMERS
        assert [b["branch_id"] for b in summary["branches"]] == [b.branch_id for b in branches(bank)]
        for branch in summary["branches"]:
            cells = get("scoring", "/v1/tiers/distribution", branch_id=branch["branch_id"])
            assert {k: branch[k] for k in cells} == cells
        migrations = get("scoring", "/v1/tiers/migrations", **summary["migration_window"])
        assert summary["migrations"] == migrations["moves"]
        assert sum(m["count"] for m in summary["migrations"]) == CUSTOMERS

        assert len(summary["examples"]) >= 3
        for example in summary["examples"]:
            assert example["history"] == get(
                "scoring", f"/v1/customers/{example['customer_id']}/tier-history", limit="20"
            )
            view = get("scoring", f"/v1/customers/{example['customer_id']}")
            assert (example["tier"], example["stage"]) == (view["tier"], view["stage"])
            assert example["customer_id"] in output

        # RMs work the queue through the year, so what is still open at its end may be nothing.
        # Label counts per tier and one customer's label history are the API's too; the
        # personas express the needs: the student digital first, the retiree branch reliant,
        # the affluent investor's investment intent, some customers' digital difficulty.
        held = get("scoring", "/v1/tiers/distribution")["by_label"]
        assert set(summary["labels_by_tier"]) == set(held)
        for label, by_tier in summary["labels_by_tier"].items():
            counted = get("scoring", "/v1/tiers/distribution", label=label)
            assert by_tier == counted["by_tier"]
            assert sum(by_tier.values()) == held[label] == counted["by_label"][label]
        assert {"digital_first", "branch_reliant", "investment_intent", "digital_difficulty"} <= set(held)
        example = summary["label_example"]
        history = get("scoring", f"/v1/customers/{example['customer_id']}/tier-history", limit="1000")
        assert example["history"] == [c for c in history if c["labels_entered"] or c["labels_left"]]
        assert example["history"], "the example customer entered a label at some point"
        view = get("scoring", f"/v1/customers/{example['customer_id']}")
        assert [label["name"] for label in example["labels"]] == [label["name"] for label in view["labels"]]
        assert f"Label history of {example['customer_id']}" in output

        # A household that reaches a tier only together: no member's own 30-day average AUM
        # passes the gate, the household's does; each member's tier and reasons are their view's.
        family = summary["household_example"]
        household = family["household"]
        assert household == get("scoring", f"/v1/households/{household['household_id']}")
        gate = Decimal(GATES[Tier(family["together"])])
        assert Decimal(family["gate"]) == gate
        assert Decimal(household["aum_avg_30d"]) >= gate
        assert all(Decimal(member["aum_avg_30d"]) < gate for member in household["members"])
        assert [m["customer_id"] for m in family["members"]] == [
            m["customer_id"] for m in household["members"]
        ]
        for member in family["members"]:
            view = get("scoring", f"/v1/customers/{member['customer_id']}")
            assert (member["tier"], member["reasons"]) == (view["tier"], view["reasons"])
            assert view["household"]["household_id"] == household["household_id"]
        assert f"reaches {family['together']} only together: {household['household_id']}" in output

        assert summary["outreach_queue"] == get("engagement", "/v1/outreach/queue")
        rms = {rm.rm_id for b in branches(bank) for rm in b.rms}
        assert {rm["rm_id"] for rm in summary["rms"]} >= rms
        assert summary["nps_by_tier"] == get("feedback", "/v1/reports/satisfaction", **summary["nps_window"])
        answers = sum(row["nps_responses"] + row["csat_responses"] for row in summary["nps_by_tier"])
        work = summary["rm_work"]
        assert answers == summary["records_sent"]["surveys"] + work["surveys_answered"]

        # RMs worked their queues in simulated time: every completion is theirs, and the SLA
        # they met is what engagement measured.
        stats_window = {"from": summary["window"]["from"], "to": summary["effectiveness_window"]["to"]}
        assert summary["outreach_stats"] == get("engagement", "/v1/outreach/stats", **stats_window)
        assert work["worked"] > 0
        assert sum(row["completed"] for row in summary["outreach_stats"]) == work["worked"]
        assert sum(row["reached"] for row in summary["outreach_stats"]) == work["surveys_requested"]
        met = sum(row["first_contact_within_sla"] for row in summary["outreach_stats"])
        assert met > 0
        assert f"Items worked by RMs: {work['worked']:,}, SLA met on {met:,}" in output
        assert sum(row["held_out"] for row in summary["outreach_stats"]) > 0

        # The effectiveness report with its holdout comparison, as feedback answers it.
        assert summary["effectiveness"] == get(
            "feedback", "/v1/reports/effectiveness", **summary["effectiveness_window"]
        )
        holdouts = summary["effectiveness"]["holdouts"]
        assert sum(row["held_out"] for row in holdouts) > 0
        assert (
            sum(row["contacted"] for row in summary["effectiveness"]["contacted"])
            == work["surveys_requested"]
        )

        # One customer's loop: the call, its outcome, the answered survey, the tiers around it.
        loop = summary["loop"]
        assert loop["item"] == get("engagement", f"/v1/outreach/{loop['item']['id']}")
        assert (loop["item"]["status"], loop["item"]["customer_id"]) == ("completed", loop["customer_id"])
        assert loop["survey"]["outreach_id"] == loop["item"]["id"]
        assert loop["history"] == get(
            "scoring", f"/v1/customers/{loop['customer_id']}/tier-history", limit="20"
        )
        assert loop["tier_after"] == get("scoring", f"/v1/customers/{loop['customer_id']}")["tier"]

        for heading in ("Tier and stage by branch", "Tier migration", "Open outreach by action",
                        "Open outreach by RM", "Satisfaction by tier", "RMs at work",
                        "Holdout comparison by tier", "One customer's loop",
                        "Customer labels by tier"):  # fmt: skip
            assert heading in output
    finally:
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=90) == 0
