"""The rules every outreach obeys, whatever the playbook says. Pure functions, tested alone."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from services.engagement.domain.lifecycle import OPEN_STATES, ItemStatus
from services.engagement.domain.playbook import (
    Action,
    Cap,
    Category,
    ContactChannel,
    LabelSuppression,
    Playbook,
    QuietHours,
)
from shared.contracts.types import RiskProfile

CONSENT_KEYS = {
    ContactChannel.PHONE: "phone",
    ContactChannel.SMS: "sms",
    ContactChannel.EMAIL: "email",
    ContactChannel.APP: "app",
}
RISK_ORDER = tuple(RiskProfile)
# Outreach made or still to be made counts towards the caps; cancelled or expired did not reach
# anyone. A covered item counts: its member is contacted through their household's contact.
COUNTS_TOWARDS_CAPS = OPEN_STATES | {ItemStatus.COMPLETED, ItemStatus.COVERED}


@dataclass(frozen=True)
class Contact:
    """An outreach already made or planned (not cancelled), for frequency caps."""

    category: Category
    channel: ContactChannel | None
    at: datetime


def consented_channel(
    preferred: Iterable[ContactChannel], consents: Mapping[str, bool]
) -> tuple[ContactChannel | None, str]:
    """The first preferred channel the customer has not opted out of (explicit `false`)."""
    refused = []
    for channel in preferred:
        key = CONSENT_KEYS.get(channel)
        if key is None or consents.get(key) is not False:
            return channel, ""
        refused.append(channel.value)
    return None, f"no consented channel: opted out of {', '.join(refused)}"


def cap_window(playbook: Playbook) -> timedelta:
    """How far back contacts matter: the longest window of any cap in the playbook."""
    return timedelta(days=max((cap.days for cap in playbook.caps.values()), default=1))


def within_cap(
    category: Category, contacts: Iterable[Contact], caps: Mapping[Category, Cap], now: datetime
) -> bool:
    cap = caps.get(category)
    if cap is None:
        return True
    since = now - timedelta(days=cap.days)
    recent = sum(1 for c in contacts if c.category is category and c.at > since)
    return recent < cap.max_contacts


def suitable(action: Action, risk_profile: str | None) -> tuple[bool, str]:
    """A product is offered only within its risk range (appropriateness rules)."""
    if action.product is None or (action.min_risk is None and action.max_risk is None):
        return True, ""
    if risk_profile not in RISK_ORDER:
        return False, f"{action.product} needs a known risk profile"
    rank = RISK_ORDER.index(risk_profile)
    low = RISK_ORDER.index(action.min_risk) if action.min_risk else 0
    high = RISK_ORDER.index(action.max_risk) if action.max_risk else len(RISK_ORDER) - 1
    if low <= rank <= high:
        return True, ""
    return False, f"{action.product} does not suit risk profile {risk_profile}"


def marketing_suppressed(category: Category, open_high_complaints: int) -> bool:
    """An open high-severity complaint stops all marketing; service and retention still go out."""
    return category is Category.MARKETING and open_high_complaints > 0


def outside_quiet_hours(
    channel: ContactChannel | None, at: datetime, timezone: str, quiet: QuietHours
) -> datetime:
    """The earliest moment at or after `at` when this channel may reach the customer."""
    if channel not in quiet.channels:
        return at
    local = at.astimezone(ZoneInfo(timezone))
    clock = local.time()
    overnight = quiet.start > quiet.end
    quiet_now = (
        (clock >= quiet.start or clock < quiet.end) if overnight else (quiet.start <= clock < quiet.end)
    )
    if not quiet_now:
        return at
    end_day = local.date() + timedelta(days=1) if overnight and clock >= quiet.start else local.date()
    resume = datetime.combine(end_day, quiet.end, tzinfo=local.tzinfo)
    return resume.astimezone(at.tzinfo)


def label_allowed_channels(
    action: Action, labels: Collection[str], suppressions: list[LabelSuppression]
) -> tuple[list[ContactChannel], str]:
    """The action's channels a held label does not rule out, and why any were ruled out."""
    refused = {
        channel: rule.label
        for rule in suppressions
        if rule.category is action.category and rule.label in labels
        for channel in rule.channels
    }
    allowed = [channel for channel in action.channels if channel not in refused]
    if allowed or not refused:
        return allowed, ""
    held = sorted(set(refused.values()))
    channels = ", ".join(channel.value for channel in action.channels)
    return [], f"{' and '.join(held)} customers get no {action.category.value} by {channels}"
