"""The rules an incoming event is held to, from settings: ingest checks them at the door and
every consumer again on the topic (producers may write to it directly)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta

from aiokafka import ConsumerRecord
from pydantic import BaseModel

from shared.consumer import Decoder, PoisonMessage
from shared.contracts.envelope import EventReader, InvalidEvent, ValidationRules, ValidEvent
from shared.contracts.internal import decode_internal_event
from shared.contracts.types import TimeBounds
from shared.settings import Settings


def validation_rules(
    settings: Settings, data_models: Mapping[str, type[BaseModel]], now: datetime
) -> ValidationRules:
    """The rules at the door, against the accepting host's clock."""
    return _rules(settings, data_models, now, settings.max_future_skew)


def consumed_event_reader(
    settings: Settings,
    data_models: Mapping[str, type[BaseModel]],
    on_read_in_full: Callable[[], None] = lambda: None,
) -> EventReader:
    """The reader of the events a consumer re-checks: its host's clock may run behind the one that
    accepted the event, so the future-skew bound is widened by the stated clock tolerance."""
    return EventReader(
        data_models, settings.consumer_max_future_skew, settings.accepts_currency, on_read_in_full
    )


def _rules(
    settings: Settings, data_models: Mapping[str, type[BaseModel]], now: datetime, skew: timedelta
) -> ValidationRules:
    return ValidationRules(
        now=now,
        max_future_skew=skew,
        accepts_currency=settings.accepts_currency,
        data_models=data_models,
    )


def internal_event_decoder(
    settings: Settings, data_models: Mapping[str, type[BaseModel]]
) -> Decoder[ValidEvent | None]:
    """The one validating decoder of a consumer of other services' events: the envelope and the
    typed data of the types it reads, under the consumer's future-skew bound; None for a type it
    does not read. Anything wrong is a `PoisonMessage` naming every field, for the dead letter."""

    def decode(record: ConsumerRecord[bytes, bytes]) -> ValidEvent | None:
        now = datetime.now(UTC)
        bounds = TimeBounds(now, settings.consumer_max_future_skew)
        try:
            event = decode_internal_event(record.value or b"", data_models, bounds)
        except InvalidEvent as exc:
            raise PoisonMessage(f"invalid event: {exc}") from None
        if event is not None:
            refuse_beyond_horizon(event.envelope.time, settings, now)
        return event

    return decode


def refuse_beyond_horizon(event_time: datetime, settings: Settings, now: datetime) -> None:
    """An event older than the duplicate-marker horizon is refused: its marker, if it was applied
    before, may already be dropped, so applying it could count it twice."""
    earliest = now - settings.applied_events_horizon
    if event_time < earliest:
        raise PoisonMessage(
            f"event time {event_time.isoformat()} is before the duplicate horizon"
            f" ({settings.applied_events_horizon.days} days, earliest {earliest.isoformat()}):"
            " a resend could no longer be recognised"
        )
