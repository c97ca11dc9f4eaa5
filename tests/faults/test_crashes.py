"""Workers, relays and the database crash mid-stream; the end state is the undisturbed run's."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from tests.faults.system import EndState, Stream, System, assert_same_end_state, running_system
from tests.infra import Infra, wait_until
from tierflow.embedded import EmbeddedPostgres
from tierflow.processes import free_port

pytestmark = pytest.mark.faults


HOUSEHOLD_FOLDS = "tierflow_household_contributions_total"


def folded_sequences(system: System) -> int:
    """How far the household stage has folded: the sum of its member rows' sequences."""
    return int(system.query("SELECT coalesce(sum(sequence), 0) FROM scoring.household_members")[0][0])


@dataclass
class KillWhen:
    """A fault for `System.drive`: SIGKILL `service` once `table` has `at_least` rows; the rest of
    the stream is sent while it is down, and it is restarted a second later.

    Scoring's household stage is a loop of the scoring process: scoring is killed only once its
    stage has folded contributions, so the stage dies mid-stream with it."""

    table: str
    at_least: int
    service: str
    killed_at: int = -1
    households_folded_at: int = -1

    def __call__(self, system: System) -> Iterator[None]:
        system.wait_for_rows(self.table, self.at_least)
        if self.service == "scoring":
            wait_until(
                lambda: system.metric("scoring", HOUSEHOLD_FOLDS) > 0,
                60,
                "the household stage of the scoring process to fold contributions",
            )
        system.kill(self.service)
        self.killed_at = system.count(self.table)
        self.households_folded_at = folded_sequences(system)
        yield
        time.sleep(1)
        system.restart(self.service)


@pytest.mark.parametrize(
    ("service", "table", "share"),
    [
        ("scoring", "scoring.applied_events", 0.3),
        ("engagement", "engagement.applied_events", 0.2),
    ],
)
def test_a_worker_killed_mid_stream_ends_like_the_undisturbed_run(
    infra: Infra, stream: Stream, undisturbed: EndState, service: str, table: str, share: float
) -> None:
    expected = len(stream.bank) if service == "scoring" else len(undisturbed.tier_changes)
    # Half the bank's events applied bring more than `share` of the rows; the other half is
    # sent only once the worker is dead.
    fault = KillWhen(table, int(expected * share), service)
    with running_system(infra) as system:
        end = system.drive(stream, bank={0.5: fault})
        households_folded = folded_sequences(system)
    assert fault.killed_at < expected, f"the kill must land mid-stream ({fault.killed_at} of {expected})"
    if service == "scoring":
        assert fault.households_folded_at < households_folded, "the household stage had work after the kill"
    assert_same_end_state(end, undisturbed)


def test_feedback_killed_while_surveys_and_complaints_arrive_ends_like_the_undisturbed_run(
    infra: Infra, stream: Stream, undisturbed: EndState
) -> None:
    expected = len(undisturbed.surveys)
    fault = KillWhen("feedback.surveys", expected // 3, "feedback")
    with running_system(infra) as system:
        end = system.drive(stream, feedback={0.5: fault})
    assert fault.killed_at < expected, "the kill must land while feedback arrives"
    assert_same_end_state(end, undisturbed)


def test_outbox_relays_killed_mid_stream_publish_everything_once_restarted(
    infra: Infra, stream: Stream, undisturbed: EndState
) -> None:
    def kill_relays(system: System) -> Iterator[None]:
        system.wait_for_rows("scoring.applied_events", len(stream.bank) // 8)
        system.kill("scoring-relay")
        system.kill("engagement-relay")
        yield
        # With no relay, the changes the rest of the stream brings wait in the outbox.
        wait_until(lambda: system.count("scoring.outbox") > 0, 60, "tier changes waiting in the outbox")
        time.sleep(2)
        system.restart("scoring-relay")
        system.restart("engagement-relay")

    with running_system(infra, relays_apart=True) as system:
        end = system.drive(stream, bank={0.25: kill_relays})
    assert_same_end_state(end, undisturbed)


@pytest.fixture
def own_postgres(infra: Infra) -> Iterator[tuple[EmbeddedPostgres, Infra]]:
    server = EmbeddedPostgres(infra.workdir / "pg-restart", free_port(), infra.workdir / "pg-restart.log")
    server.start()
    yield server, Infra(server.url(), infra.bootstrap_servers, infra.workdir)
    server.stop()


def test_a_postgresql_restart_mid_stream_ends_like_the_undisturbed_run(
    own_postgres: tuple[EmbeddedPostgres, Infra], stream: Stream, undisturbed: EndState
) -> None:
    server, infra = own_postgres
    stopped_at: list[int] = []

    def restart_database(system: System) -> Iterator[None]:
        system.wait_for_rows("scoring.applied_events", len(stream.bank) // 3)
        stopped_at.append(system.count("scoring.applied_events"))
        server.stop()
        yield
        time.sleep(3)
        server.start()

    with running_system(infra) as system:
        end = system.drive(stream, bank={0.5: restart_database})
    assert stopped_at[0] < len(stream.bank), "the restart must land mid-stream"
    assert_same_end_state(end, undisturbed)
