"""Feedback's service layer: intake, complaint lifecycle, invitations and tier tracking."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from aiokafka import ConsumerRecord
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from services.feedback.domain.complaints import move, receive
from services.feedback.domain.events import (
    Arm,
    BranchObserved,
    ExperimentEnrolled,
    FeedbackEvent,
    SurveyRequested,
    TierObserved,
    event_time,
)
from services.feedback.domain.surveys import answer, held_out_invitation, invitation_expires
from services.feedback.store import SCHEMA, FeedbackStore, complaint_of
from shared.batches import MAX_LISTED_ERRORS, BatchRejected, ItemError
from shared.clock import Clock, advance_watermark, service_now
from shared.consumer import Decoder, Delivered, PoisonMessage
from shared.contracts.internal import (
    INTERNAL_DATA_MODELS,
    OUTREACH_PLANNED_TYPES,
    ErasureNotice,
    OutreachPlanned,
    ProfileChanged,
    TierChanged,
)
from shared.contracts.internal import SurveyRequested as SurveyRequestData
from shared.contracts.outbound import (
    ComplaintData,
    ComplaintStatus,
    CustomerErasedData,
    SurveyData,
)
from shared.db import consumer_transaction
from shared.erasure import CustomerErased, guard_against_erasure
from shared.errors import TierFlowError
from shared.event_rules import internal_event_decoder
from shared.metrics import ERASURES
from shared.settings import Settings


class UnknownComplaint(TierFlowError):
    pass


def event_decoder(settings: Settings) -> Decoder[FeedbackEvent | None]:
    """Feedback's one decoder: tier changes and survey requests with every field checked, or a
    dead letter naming what is wrong; None for the other events on its topics, to skip."""
    # Feedback reads every internal event type and the births of outreach items (to know each
    # experiment's groups); the rest of the outreach lifecycle it skips.
    planned = dict.fromkeys(OUTREACH_PLANNED_TYPES, OutreachPlanned)
    decode_event = internal_event_decoder(settings, {**INTERNAL_DATA_MODELS, **planned})

    def decode(record: ConsumerRecord[bytes, bytes]) -> FeedbackEvent | None:
        event = decode_event(record)
        if event is None:
            return None
        envelope, data = event.envelope, event.data
        if isinstance(data, CustomerErasedData):
            return ErasureNotice(envelope.source, envelope.id, data.customer_id, data.erased_at)
        if isinstance(data, TierChanged):
            return TierObserved(
                source=envelope.source,
                event_id=envelope.id,
                customer_id=data.customer_id,
                at=envelope.time,
                tier=data.tier.value,
                stage=data.stage.value,
                branch_id=data.profile.branch_id,
                aum=data.aum,
                products_held=data.products_held,
            )
        if isinstance(data, ProfileChanged):
            return BranchObserved(
                source=envelope.source,
                event_id=envelope.id,
                customer_id=data.customer_id,
                at=envelope.time,
                branch_id=data.profile.branch_id,
            )
        if isinstance(data, SurveyRequestData):
            return SurveyRequested(
                source=envelope.source,
                event_id=envelope.id,
                outreach_id=data.outreach_id,
                customer_id=data.customer_id,
                action=data.action or "unknown",
                tier=None if data.tier is None else data.tier.value,
                channel=data.channel,
                outcome=data.outcome,
                requested_at=envelope.time,
            )
        if isinstance(data, OutreachPlanned):
            if data.experiment is None:
                return None
            return ExperimentEnrolled(
                source=envelope.source,
                event_id=envelope.id,
                outreach_id=data.outreach_id,
                customer_id=data.customer_id,
                experiment=data.experiment,
                arm=Arm.HELD_OUT if data.status == Arm.HELD_OUT.value else Arm.TREATED,
                action=data.action,
                tier=None if data.tier is None else data.tier.value,
                at=envelope.time,
                contact_due_at=data.sla_due_at,
            )
        raise PoisonMessage(f"no reading of {envelope.type} events")

    return decode


@dataclass
class Feedback:
    engine: AsyncEngine
    topic: str
    clock: Clock = field(default_factory=Clock)

    def store(self, connection: AsyncConnection) -> FeedbackStore:
        return FeedbackStore(connection, self.topic)

    async def apply_batch(self, batch: Sequence[Delivered[FeedbackEvent | None]]) -> None:
        erased = 0
        async with consumer_transaction(self.engine) as db:
            store = self.store(db)
            applied: datetime | None = None
            for delivered in batch:
                event = delivered.value
                if event is None:
                    continue
                if not isinstance(event, ErasureNotice) and await store.erased_among([event.customer_id]):
                    raise CustomerErased
                if not await store.claim_event(event.source, event.event_id, event_time(event)):
                    continue
                if isinstance(event, ErasureNotice):
                    erased += await store.erase(event)
                elif isinstance(event, TierObserved):
                    await store.follow_branch(event.customer_id, event.branch_id)
                    await store.remember_tier(event)
                elif isinstance(event, BranchObserved):
                    await store.follow_branch(event.customer_id, event.branch_id)
                elif isinstance(event, ExperimentEnrolled):
                    await store.enrol(event)
                    if event.arm is Arm.HELD_OUT:
                        await self._invite_held_out(store, event)
                else:
                    await store.invite(event, invitation_expires(event.requested_at))
                moment = event_time(event)
                applied = moment if applied is None else max(applied, moment)
            if applied is not None and self.clock.follows_events:
                await advance_watermark(db, SCHEMA, applied)
        ERASURES.labels(service="feedback").inc(erased)

    async def _invite_held_out(self, store: FeedbackStore, enrolled: ExperimentEnrolled) -> None:
        """Invite a held-out customer to the survey a treated one gets after the contact, so the
        later NPS is measured in both groups; survey fatigue may skip it."""
        invited = await store.invitation_times(enrolled.customer_id)
        at = held_out_invitation(enrolled.contact_due_at, invited)
        if at is None:
            return
        request = SurveyRequested(
            source=enrolled.source,
            event_id=enrolled.event_id,
            outreach_id=enrolled.outreach_id,
            customer_id=enrolled.customer_id,
            action=enrolled.action,
            tier=enrolled.tier,
            channel=None,
            outcome=None,
            requested_at=at,
        )
        await store.invite(request, invitation_expires(at), held_out=True)

    async def _refuse_erased(self, store: FeedbackStore, customer_ids: Sequence[str]) -> None:
        """All or nothing, like validation: any item for an erased customer refuses the batch.
        The guard keeps an erasure from committing between this check and the writes."""
        await guard_against_erasure(store.connection, customer_ids)
        erased = await store.erased_among(customer_ids)
        if erased:
            errors = [
                ItemError(index, "customer_id", "the customer was erased; nothing about them is accepted")
                for index, customer_id in enumerate(customer_ids)
                if customer_id in erased
            ]
            raise BatchRejected(errors[:MAX_LISTED_ERRORS], len(errors))

    async def now(self, db: AsyncConnection) -> datetime:
        return await service_now(db, SCHEMA, self.clock)

    async def record_surveys(self, surveys: Sequence[SurveyData]) -> int:
        async with self.engine.begin() as db:
            store = self.store(db)
            await self._refuse_erased(store, [survey.customer_id for survey in surveys])
            now = await self.now(db)
            new = 0
            for survey in surveys:
                unanswered = (
                    [] if survey.outreach_id else await store.unanswered_invitations(survey.customer_id)
                )
                new += await store.add_survey(survey, answer(survey, now, unanswered))
            return new

    async def record_complaints(self, complaints: Sequence[ComplaintData], actor: str) -> int:
        async with self.engine.begin() as db:
            store = self.store(db)
            await self._refuse_erased(store, [complaint.customer_id for complaint in complaints])
            now = await self.now(db)
            return sum([await self._receive(store, complaint, actor, now) for complaint in complaints])

    async def update_complaint(self, complaint_id: str, to: ComplaintStatus, actor: str) -> None:
        async with self.engine.begin() as db:
            store = self.store(db)
            known = await store.complaint(complaint_id)
            if known is None:
                raise UnknownComplaint(complaint_id)
            now = await self.now(db)
            moved = move(complaint_of(known), to, now)
            reported = ComplaintData(
                customer_id=known["customer_id"],
                complaint_id=complaint_id,
                severity=known["severity"],
                category=known["category"],
                status=moved.status,
                opened_at=moved.opened_at,
                resolved_at=moved.resolved_at,
            )
            await self._receive(store, reported, actor, now)

    async def _receive(
        self, store: FeedbackStore, reported: ComplaintData, actor: str, now: datetime
    ) -> bool:
        """Record a complaint as reported; False when it changes nothing (a resend)."""
        known = await store.complaint(reported.complaint_id)
        change = receive(None if known is None else complaint_of(known), reported, now)
        if change is None:
            return False
        await store.put_complaint(reported, change, actor, now)
        return True
