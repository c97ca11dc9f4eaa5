"""The rules an incoming event is held to, from settings: ingest checks them at the door and
every consumer again on the topic (producers may write to it directly)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta

from pydantic import BaseModel

from shared.contracts.envelope import ValidationRules
from shared.settings import Settings


def validation_rules(
    settings: Settings, data_models: Mapping[str, type[BaseModel]], now: datetime
) -> ValidationRules:
    """The rules at the door, against the accepting host's clock."""
    return _rules(settings, data_models, now, settings.max_future_skew)


def consumed_event_rules(
    settings: Settings, data_models: Mapping[str, type[BaseModel]], now: datetime
) -> ValidationRules:
    """The rules a consumer re-checks: its host's clock may run behind the one that accepted
    the event, so the future-skew bound is widened by the stated clock tolerance."""
    return _rules(settings, data_models, now, settings.consumer_max_future_skew)


def _rules(
    settings: Settings, data_models: Mapping[str, type[BaseModel]], now: datetime, skew: timedelta
) -> ValidationRules:
    return ValidationRules(
        now=now,
        max_future_skew=skew,
        accepts_currency=settings.accepts_currency,
        data_models=data_models,
    )
