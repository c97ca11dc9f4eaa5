"""What `tierflow demo` found, as TierFlow's APIs answer it: written as JSON, rendered as tables."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class Summary:
    """What the demo found, as the APIs answer it."""

    window: dict[str, str]
    customers: int
    records_sent: dict[str, int]
    migration_window: dict[str, str] = field(default_factory=dict)
    nps_window: dict[str, str] = field(default_factory=dict)
    branches: list[dict[str, Any]] = field(default_factory=list)
    migrations: list[dict[str, Any]] = field(default_factory=list)
    examples: list[dict[str, Any]] = field(default_factory=list)
    outreach_queue: list[dict[str, Any]] = field(default_factory=list)
    rms: list[dict[str, Any]] = field(default_factory=list)
    nps_by_tier: list[dict[str, Any]] = field(default_factory=list)
    # RMs at work: what they did (as the simulator counts it) and the engagement stats of it.
    rm_work: dict[str, Any] = field(default_factory=dict)
    outreach_stats: list[dict[str, Any]] = field(default_factory=list)
    effectiveness_window: dict[str, str] = field(default_factory=dict)
    effectiveness: dict[str, Any] = field(default_factory=dict)
    # One customer's loop: the tier change, the call, its outcome, the survey, the tier after.
    loop: dict[str, Any] = field(default_factory=dict)
    # Per label, how many holders sit in each tier; and one customer's labels over the year.
    labels_by_tier: dict[str, dict[str, int]] = field(default_factory=dict)
    label_example: dict[str, Any] = field(default_factory=dict)
    # A household that passes a gate only together: the household, its members' tiers and reasons.
    household_example: dict[str, Any] = field(default_factory=dict)
