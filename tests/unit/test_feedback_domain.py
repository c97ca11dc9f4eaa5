from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from services.feedback.domain.complaints import Complaint, ComplaintRefused, move
from services.feedback.domain.surveys import FATIGUE_GAP, held_out_invitation, nps
from shared.contracts.outbound import ComplaintStatus

OPENED = datetime(2026, 5, 1, 9, tzinfo=UTC)


def test_complaints_move_forward_only_and_record_resolution_time() -> None:
    complaint = Complaint("K1", ComplaintStatus.OPEN, OPENED)
    working = move(complaint, ComplaintStatus.IN_PROGRESS, OPENED + timedelta(hours=1))
    resolved = move(working, ComplaintStatus.RESOLVED, OPENED + timedelta(hours=30))
    assert resolved.resolution_hours == 30
    with pytest.raises(ComplaintRefused, match="from resolved to open"):
        move(resolved, ComplaintStatus.OPEN, OPENED)
    with pytest.raises(ComplaintRefused, match="from in_progress to open"):
        move(working, ComplaintStatus.OPEN, OPENED)


def test_nps_is_promoters_minus_detractors_in_percent() -> None:
    assert nps(promoters=2, detractors=2, responses=6) == pytest.approx(0.0)
    assert nps(promoters=2, detractors=1, responses=3) == pytest.approx(33.3)
    assert nps(promoters=1, detractors=0, responses=16) == pytest.approx(6.3)
    assert nps(promoters=0, detractors=0, responses=0) is None


def test_a_held_out_customer_is_invited_when_the_contact_was_due_unless_surveyed_within_the_fatigue_gap() -> (
    None
):
    due = OPENED + timedelta(hours=48)
    assert held_out_invitation(due, []) == due
    assert held_out_invitation(due, [due - FATIGUE_GAP]) == due
    assert held_out_invitation(due, [due - FATIGUE_GAP + timedelta(hours=1)]) is None
    assert held_out_invitation(due, [due + timedelta(days=3)]) is None, "an invitation already planned later"
    assert held_out_invitation(None, []) is None
