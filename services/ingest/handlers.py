"""Ingest's service layer: validate against the contract, publish, count. No state of its own."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from services.ingest.domain.intake import BatchTooLarge, accept_batch, profile_event
from services.ingest.metrics import EVENTS_ACCEPTED, REQUESTS_REJECTED
from services.ingest.outbound import to_records
from shared.batches import BatchRefused
from shared.contracts.envelope import ValidationRules, ValidEvent
from shared.contracts.inbound import INBOUND_DATA_MODELS
from shared.event_rules import validation_rules
from shared.kafka import LazyProducer
from shared.settings import Settings


@dataclass
class Ingest:
    settings: Settings
    producer: LazyProducer
    topic: str

    async def publish_events(self, body: object) -> list[ValidEvent]:
        """Every event of the batch on the topic once the broker acknowledged them, or none accepted."""
        try:
            events = accept_batch(body, self._rules(), self.settings.max_batch_events)
        except BatchRefused as exc:
            reason = "batch_too_large" if isinstance(exc, BatchTooLarge) else "invalid_event"
            REQUESTS_REJECTED.labels(reason=reason).inc()
            raise
        await self._publish(events)
        return events

    async def publish_profile(self, customer_id: str, profile: object) -> list[ValidEvent]:
        """A profile as a `bank.customer.v1` event of its own, validated like any other."""
        event = profile_event(customer_id, profile, f"profile-{uuid.uuid4()}", datetime.now(UTC))
        events = accept_batch(event, self._rules(), 1)
        await self._publish(events)
        return events

    def _rules(self) -> ValidationRules:
        return validation_rules(self.settings, INBOUND_DATA_MODELS, datetime.now(UTC))

    async def _publish(self, events: list[ValidEvent]) -> None:
        await self.producer.publish(to_records(events, self.topic))
        for event in events:
            EVENTS_ACCEPTED.labels(type=event.envelope.type).inc()
