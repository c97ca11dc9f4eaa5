"""The reasons engagement writes on an outreach item, as patterns the console words anew.

Engagement records why it planned, held out or stopped an item as one English sentence; the
console matches each known sentence and says it again in the reader's language, with action
kinds, categories, channels and labels in words. A sentence it does not know is shown as it is.
"""

import re
from dataclasses import dataclass

# How the console words a part of a sentence: as a label with this prefix, or a list of such
# labels (the prefix, how engagement separates them, the text that joins them in the reader's
# language); `until` as a time and `planned` as a planned reason of its own.
LABELLED = {"kind": "action", "category": "category"}
LISTED = {"channels": ("channel", ", ", "list.separator"), "labels": ("label", " and ", "list.and")}


@dataclass(frozen=True)
class ReasonPattern:
    key: str
    pattern: re.Pattern[str]


def _pattern(key: str, sentence: str) -> ReasonPattern:
    return ReasonPattern(key, re.compile(sentence))


PATTERNS = (
    _pattern("outreach.duplicate_open", r"duplicate: an open (?P<kind>\w+) item exists"),
    _pattern(
        "outreach.duplicate_change", r"duplicate: covered by the (?P<rule>.+) (?P<kind>\w+) of this change"
    ),
    _pattern("outreach.complaint", r"guardrail: open high-severity complaint suppresses marketing"),
    _pattern("outreach.risk_unknown", r"guardrail: (?P<product>.+) needs a known risk profile"),
    _pattern(
        "outreach.risk_unsuited", r"guardrail: (?P<product>.+) does not suit risk profile (?P<risk>\S+)"
    ),
    _pattern(
        "outreach.label_channels",
        r"guardrail: (?P<labels>\w+(?: and \w+)*) customers get no (?P<category>\w+)"
        r" by (?P<channels>\w+(?:, \w+)*)",
    ),
    _pattern(
        "outreach.cap",
        r"guardrail: frequency cap of (?P<count>\d+) (?P<category>\w+) contacts per (?P<days>\d+) days",
    ),
    _pattern(
        "outreach.no_channel", r"guardrail: no consented channel: opted out of (?P<channels>\w+(?:, \w+)*)"
    ),
    _pattern(
        "outreach.drawn",
        r"holdout: control group of experiment (?P<experiment>.+) \((?P<share>[\d.]+)% held out\)",
    ),
    _pattern(
        "outreach.held",
        r"holdout: held out of (?P<kind>\w+) by experiment (?P<experiment>.+) until (?P<until>\S+),"
        r" whatever rule triggers it",
    ),
    _pattern(
        "outreach.covered",
        r"household: covered by household (?P<household>.+)'s (?P<kind>\w+) (?P<item>\S+)"
        r" for household change (?P<change>\S+)",
    ),
    _pattern("outreach.household_contact", r"(?P<planned>.+) \(household (?P<household>\S+) contact\)"),
)


def match(reason: str) -> tuple[str, dict[str, str]] | None:
    """The text key of a known reason and its parts, or None for a sentence the console does not know."""
    for known in PATTERNS:
        found = known.pattern.fullmatch(reason)
        if found is not None:
            return known.key, found.groupdict()
    return None
