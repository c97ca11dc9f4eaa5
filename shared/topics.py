"""Topic names of the contract, with the optional deployment prefix applied."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from shared.settings import Settings

BANK_EVENTS = "bank.events.v1"
TIER_CHANGES = "customer.tier-changes.v1"
OUTREACH = "engagement.outreach.v1"
FEEDBACK_EVENTS = "feedback.events.v1"
# Scoring's own: each household member's contribution, keyed by household, for the household stage.
HOUSEHOLD_CONTRIBUTIONS = "household.contributions.v1"
DLQ_SUFFIX = ".dlq"

# Topics consumed by a TierFlow worker get a dead-letter companion.
CONSUMED = (BANK_EVENTS, TIER_CHANGES, FEEDBACK_EVENTS, OUTREACH, HOUSEHOLD_CONTRIBUTIONS)
CONSUMED_BY = {
    "scoring": (BANK_EVENTS, FEEDBACK_EVENTS),
    # Scoring's household stage: a loop of the scoring process with a consumer group of its own.
    "households": (HOUSEHOLD_CONTRIBUTIONS,),
    "engagement": (TIER_CHANGES,),
    "feedback": (TIER_CHANGES, OUTREACH),
}


# How long each topic keeps its records (`cleanup.policy: delete`): why, in deploy/README.md
# (topic retention); deploy/kubernetes/base/topics.yaml states the same. Bank events are
# TierFlow's input, kept a week for consumers to catch up after an outage; what TierFlow
# publishes is kept a month for subscribers; dead letters a month, to be mended and resent.
RETENTION = {
    BANK_EVENTS: timedelta(days=7),
    TIER_CHANGES: timedelta(days=30),
    OUTREACH: timedelta(days=30),
    FEEDBACK_EVENTS: timedelta(days=30),
    HOUSEHOLD_CONTRIBUTIONS: timedelta(days=7),
}
DLQ_RETENTION = timedelta(days=30)


@dataclass(frozen=True)
class Topics:
    prefix: str = ""

    @classmethod
    def from_settings(cls, settings: Settings) -> Topics:
        return cls(prefix=settings.topic_prefix)

    def name(self, base: str) -> str:
        return f"{self.prefix}{base}"

    def consumed_by(self, service: str) -> list[str]:
        return [self.name(t) for t in CONSUMED_BY[service]]

    def dlq(self, base: str) -> str:
        return self.name(base + DLQ_SUFFIX)

    def dead_letter_of(self, topic: str) -> str:
        """The dead-letter companion of a consumed topic given by its full name, as records carry it."""
        companions = {self.name(base): self.dlq(base) for base in CONSUMED}
        return companions[topic]

    @property
    def bank_events(self) -> str:
        return self.name(BANK_EVENTS)

    @property
    def household_contributions(self) -> str:
        return self.name(HOUSEHOLD_CONTRIBUTIONS)

    def config_of(self, topic: str) -> dict[str, str]:
        """The configuration a topic given by its full name is created with (none for another topic)."""
        retention = {self.name(base): kept for base, kept in RETENTION.items()}
        retention |= {self.dlq(base): DLQ_RETENTION for base in CONSUMED}
        if topic not in retention:
            return {}
        milliseconds = int(retention[topic].total_seconds() * 1000)
        return {"cleanup.policy": "delete", "retention.ms": str(milliseconds)}

    def all(self) -> list[str]:
        main = [BANK_EVENTS, TIER_CHANGES, OUTREACH, FEEDBACK_EVENTS, HOUSEHOLD_CONTRIBUTIONS]
        return [self.name(t) for t in main] + [self.dlq(t) for t in CONSUMED]
