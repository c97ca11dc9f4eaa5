"""Instances of scoring and engagement share their groups' partitions; joining or leaving
mid-stream changes nothing."""

from __future__ import annotations

import pytest

from shared.topics import BANK_EVENTS
from tests.faults.system import BANK, EndState, Stream, System, assert_same_end_state, running_system
from tests.infra import Infra, wait_until
from tests.integration.scoring_support import partition_of
from tierflow.simulate import customer_id, households

pytestmark = pytest.mark.faults


def test_instances_joining_and_leaving_mid_stream_share_the_work_and_change_nothing(
    infra: Infra, stream: Stream, undisturbed: EndState
) -> None:
    def scoring_joins(system: System) -> None:
        system.start("scoring")
        # The rest of the stream is sent only once the newcomer holds bank partitions of its own.
        bank = system.topic(BANK_EVENTS)
        wait_until(
            lambda: any(p.startswith(f"{bank}[") for p in system.held_partitions("scoring", 2)),
            120,
            "the third scoring instance to be given bank partitions",
        )

    def engagement_leaves(system: System) -> None:
        system.running["engagement"][1].stop()

    with running_system(infra) as system:
        system.start_instances("scoring", "engagement")
        end = system.drive(stream, bank={0.2: scoring_joins, 0.5: engagement_leaves})
        applied = [system.metric("scoring", "tierflow_events_applied_total", n) for n in range(3)]
        changes = [system.metric("engagement", "tierflow_engagement_changes_applied_total", 0)]
        bank = system.topic(BANK_EVENTS)
        holder = {
            int(held[len(bank) + 1 : -1]): n
            for n in range(3)
            for held in system.held_partitions("scoring", n)
            if held.startswith(f"{bank}[")
        }

    assert applied[2] > 0, f"the instance that joined applied nothing: {applied}"
    assert sum(1 for count in applied if count > 0) >= 2, f"scoring instances applied {applied}"
    assert changes[0] > 0
    # Members of one household were scored by different instances, each publishing its member's
    # contribution to the one household.
    instances = [{holder[partition_of(customer_id(m.index))] for m in h.members} for h in households(BANK)]
    assert any(len(apart) > 1 for apart in instances), f"partitions held by {holder}"
    assert_same_end_state(end, undisturbed)
