"""`tierflow dlq`: dead letters listed with their reasons, re-injected after a fix, applied once."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Iterator

import pytest

from shared.kafka import group_lag
from shared.settings import Settings
from shared.topics import BANK_EVENTS
from tests import factories
from tests.infra import Infra, wait_until
from tests.integration.scoring_support import ScoringSandbox, view
from tierflow.dlq import DeadLetter, read_dead_letters

pytestmark = pytest.mark.integration


@pytest.fixture
def sandbox(infra: Infra) -> Iterator[ScoringSandbox]:
    box = ScoringSandbox(infra)
    yield box
    box.stop_all()


def test_a_dead_letter_re_injected_after_the_fix_is_applied_once_however_often(
    sandbox: ScoringSandbox,
) -> None:
    settings = sandbox.infra.settings(**sandbox.env())
    scoring = sandbox.start()
    in_dollars = factories.transaction("C-DLQ", amount="5.00", currency="USD")
    sandbox.produce(
        [
            factories.transaction("C-DLQ", amount="10.00"),
            in_dollars,  # no exchange rate for USD yet: dead-lettered
            factories.transaction("C-DLQ", amount="20.00"),
        ]
    )
    wait_until(lambda: sandbox.applied() == 2, 60, "the two yuan transactions applied")
    wait_until(lambda: len(_dead_letters(settings)) == 1, 30, "the dollar transaction dead-lettered")
    [letter] = _dead_letters(settings)
    assert letter.event_id == in_dollars["id"]
    assert "USD" in letter.header("tierflow-error")

    listed = _cli(sandbox, "dlq", "list", "--topic", BANK_EVENTS)
    row = next(line for line in listed.splitlines() if f"│ {letter.id} " in line)
    assert "PoisonMessage" in row
    assert "USD" in row

    # The fix: scoring learns the rate. Then the dead letter goes back, by its id.
    scoring.stop()
    scoring = sandbox.start(TIERFLOW_FX_RATES='{"USD": "7.10"}')
    assert _cli(sandbox, "dlq", "reinject", BANK_EVENTS, letter.id).startswith("re-injected 1 ")
    wait_until(lambda: sandbox.applied() == 3, 60, "the re-injected transaction applied")
    assert view(scoring, "C-DLQ").json()["features"]["txn_amount"] == "65.50"

    # Re-injected again, all of them this time: consumed, recognised, not applied twice.
    assert _cli(sandbox, "dlq", "reinject", BANK_EVENTS, "--all").startswith("re-injected 1 ")
    wait_until(lambda: _unprocessed(sandbox) == 0, 60, "scoring caught up with the topic")
    assert sandbox.applied() == 3
    assert view(scoring, "C-DLQ").json()["features"]["txn_amount"] == "65.50"
    assert len(_dead_letters(settings)) == 1


def test_asking_for_a_dead_letter_that_is_not_there_changes_nothing(sandbox: ScoringSandbox) -> None:
    failed = subprocess.run(
        [sys.executable, "-m", "tierflow.cli", "dlq", "reinject", BANK_EVENTS, "0:99"],
        env=sandbox.infra.env(**sandbox.env()), capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert failed.returncode == 2
    assert "no dead letter 0:99" in failed.stderr


def _dead_letters(settings: Settings) -> list[DeadLetter]:
    return asyncio.run(read_dead_letters(settings, BANK_EVENTS))


def _unprocessed(sandbox: ScoringSandbox) -> int:
    settings = sandbox.infra.settings(**sandbox.env())
    lag = asyncio.run(group_lag(settings, sandbox.group, [sandbox.topics.bank_events]))
    return sum(lag.values())


def _cli(sandbox: ScoringSandbox, *args: str) -> str:
    return subprocess.run(
        [sys.executable, "-m", "tierflow.cli", *args],
        env={**sandbox.infra.env(**sandbox.env()), "COLUMNS": "250"},
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
