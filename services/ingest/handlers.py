"""Ingest's service layer: validate against the contract, publish, count. No state of its own.

A decoded body costs up to `Settings.DECODED_BYTES_PER_BODY_BYTE` times its text and validated
events about ten times the records made from them, so each is let go as soon as the next form
exists: the memory budget admission charges holds only while nothing outlives its use.
"""

from __future__ import annotations

import uuid
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime

from services.ingest.domain.intake import BatchTooLarge, accept_batch, profile_event
from services.ingest.metrics import EVENTS_ACCEPTED, REQUESTS_REJECTED
from services.ingest.outbound import to_records
from shared.batches import BatchRefused
from shared.contracts.envelope import ValidationRules, ValidEvent
from shared.contracts.inbound import INBOUND_DATA_MODELS
from shared.event_rules import validation_rules
from shared.kafka import LazyProducer, Record
from shared.settings import Settings


@dataclass(frozen=True)
class Outgoing:
    """A batch ready for the broker: its records, and what is answered and counted once acked."""

    records: list[Record]
    ids: list[str]
    per_type: Counter[str]


@dataclass
class Ingest:
    settings: Settings
    producer: LazyProducer
    topic: str

    async def publish_events(self, body: object) -> list[str]:
        """Every event of the batch on the topic once the broker acknowledged them (their ids),
        or none accepted: `BatchRefused`, raised once the decoded body is let go."""
        accepted = self._accept(body, self.settings.max_batch_events)
        del body
        if isinstance(accepted, BatchRefused):
            raise accepted
        outgoing = self._encode(accepted)
        del accepted
        return await self._publish(outgoing)

    async def publish_profile(self, customer_id: str, profile: object) -> list[str]:
        """A profile as a `bank.customer.v1` event of its own, validated like any other."""
        event = profile_event(customer_id, profile, f"profile-{uuid.uuid4()}", datetime.now(UTC))
        accepted = self._accept(event, 1)
        if isinstance(accepted, BatchRefused):
            raise accepted
        return await self._publish(self._encode(accepted))

    def _accept(self, body: object, max_events: int) -> list[ValidEvent] | BatchRefused:
        """The batch's events, or its refusal without a traceback: the frames of a traceback
        would keep the decoded body alive while the refusal is answered."""
        try:
            return accept_batch(body, self._rules(), max_events)
        except BatchRefused as exc:
            reason = "batch_too_large" if isinstance(exc, BatchTooLarge) else "invalid_event"
            REQUESTS_REJECTED.labels(reason=reason).inc()
            return exc.with_traceback(None)

    def _rules(self) -> ValidationRules:
        return validation_rules(self.settings, INBOUND_DATA_MODELS, datetime.now(UTC))

    def _encode(self, events: list[ValidEvent]) -> Outgoing:
        return Outgoing(
            records=to_records(events, self.topic),
            ids=[event.envelope.id for event in events],
            per_type=Counter(event.envelope.type for event in events),
        )

    async def _publish(self, outgoing: Outgoing) -> list[str]:
        await self.producer.publish(outgoing.records)
        for event_type, count in outgoing.per_type.items():
            EVENTS_ACCEPTED.labels(type=event_type).inc(count)
        return outgoing.ids
