"""The rules an incoming event is held to, from settings: ingest checks them at the door and
scoring again on the topic (producers may write to it directly)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta

from pydantic import BaseModel

from shared.contracts.envelope import ValidationRules
from shared.settings import Settings


def validation_rules(
    settings: Settings, data_models: Mapping[str, type[BaseModel]], now: datetime
) -> ValidationRules:
    return ValidationRules(
        now=now,
        max_future_skew=timedelta(seconds=settings.max_future_skew_s),
        accepts_currency=settings.accepts_currency,
        data_models=data_models,
    )
