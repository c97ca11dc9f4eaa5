"""Typed request and response bodies of the engagement API."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, Field

from shared.contracts.outbound import OutreachOutcome
from shared.contracts.types import Identifier, NoteText, ReasonText


class OutreachItemPublic(BaseModel):
    id: str
    customer_id: str
    branch_id: str | None
    action: str
    category: str
    channel: str | None
    priority: str
    status: str
    due_at: datetime
    sla_due_at: datetime
    expires_at: datetime
    trigger_event_id: str
    assigned_to: str | None
    reason: str
    template: str
    product: str | None
    outcome: str | None
    cancel_reason: str | None
    tier: str
    stage: str
    first_contact_at: datetime | None
    closed_at: datetime | None
    created_at: datetime
    # The experiment whose holdout draw decided the item (`held_out`: its control group).
    experiment: str | None = None
    # An RM item of a household change: the household's contact lists the members it covers
    # (its own customer first); a member's item it covers is `covered` and names it.
    household_id: str | None = None
    household_change: str | None = None
    covered_by: str | None = None
    covered_members: list[str] = Field(default_factory=list)

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> OutreachItemPublic:
        """An `engagement.items` row under the API's names (`action` is stored as `kind`)."""
        renamed = {
            "id": str(row["id"]),
            "covered_by": None if row.get("covered_by") is None else str(row["covered_by"]),
            "action": row["kind"],
            "tier": row["context_tier"],
            "stage": row["context_stage"],
        }
        return cls.model_validate({**row, **renamed})


class PlaybookSummary(BaseModel):
    version: str
    created_at: datetime
    created_by: str
    active: bool


class CompletionCreate(BaseModel):
    outcome: OutreachOutcome
    note: NoteText | None = None
    request_survey: bool = True


class CancellationCreate(BaseModel):
    reason: ReasonText


class ReassignmentCreate(BaseModel):
    rm_id: Identifier


class RmUpdate(BaseModel):
    branch_id: Identifier
    capacity: Annotated[int, Field(ge=0, le=10_000)]
    active: bool = True


class RmWorkload(BaseModel):
    rm_id: str
    branch_id: str
    capacity: int
    active: bool
    open_items: int
    overdue_items: int
    as_of: datetime = Field(description="engagement's now, at which overdue items are judged")


class QueueCell(BaseModel):
    action: str
    assigned_to: str | None
    status: str
    items: int


class OutcomeStats(BaseModel):
    tier: str
    action: str
    channel: str | None
    items: int
    # Items an experiment held out: planned, never made, counted apart from `items`.
    held_out: int = 0
    completed: int
    reached: int
    converted: int
    reach_rate: float | None
    conversion_rate: float | None
    avg_hours_to_first_contact: float | None
    first_contact_within_sla_rate: float | None
    # Items whose first contact came within their SLA: the count behind the rate.
    first_contact_within_sla: int = 0
