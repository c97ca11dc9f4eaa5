"""Instances of scoring and engagement share their groups' partitions; joining or leaving
mid-stream changes nothing."""

from __future__ import annotations

import pytest

from tests.faults.system import EndState, Stream, System, assert_same_end_state, running_system
from tests.infra import Infra, wait_until

pytestmark = pytest.mark.faults


def test_instances_joining_and_leaving_mid_stream_share_the_work_and_change_nothing(
    infra: Infra, stream: Stream, undisturbed: EndState
) -> None:
    def scored(system: System, share: float) -> None:
        wait_until(
            lambda: system.count("scoring.applied_events") >= len(stream.bank) * share, 120, f"{share}"
        )

    def reshape(system: System) -> None:
        scored(system, 0.2)
        system.start("scoring")  # a third scoring instance joins
        scored(system, 0.5)
        system.running["engagement"][1].stop()  # an engagement instance leaves

    with running_system(infra) as system:
        system.start("scoring")
        system.start("engagement")
        end = system.drive(stream, during_bank=reshape)
        applied = [system.metric("scoring", "tierflow_events_applied_total", n) for n in range(3)]
        changes = [system.metric("engagement", "tierflow_engagement_changes_applied_total", 0)]

    assert sum(1 for count in applied if count > 0) >= 2, f"scoring instances applied {applied}"
    assert changes[0] > 0
    assert_same_end_state(end, undisturbed)
