"""Topic names of the contract, with the optional deployment prefix applied."""

from __future__ import annotations

from dataclasses import dataclass

from shared.settings import Settings

BANK_EVENTS = "bank.events.v1"
TIER_CHANGES = "customer.tier-changes.v1"
OUTREACH = "engagement.outreach.v1"
FEEDBACK_EVENTS = "feedback.events.v1"
DLQ_SUFFIX = ".dlq"

# Topics consumed by a TierFlow worker get a dead-letter companion.
CONSUMED = (BANK_EVENTS, TIER_CHANGES, FEEDBACK_EVENTS, OUTREACH)
CONSUMED_BY = {
    "scoring": (BANK_EVENTS, FEEDBACK_EVENTS),
    "engagement": (TIER_CHANGES,),
    "feedback": (TIER_CHANGES, OUTREACH),
}


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

    def all(self) -> list[str]:
        main = [BANK_EVENTS, TIER_CHANGES, OUTREACH, FEEDBACK_EVENTS]
        return [self.name(t) for t in main] + [self.dlq(t) for t in CONSUMED]
