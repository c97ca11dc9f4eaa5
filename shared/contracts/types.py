"""Bounded field types shared by every wire contract."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Context, Decimal, DivisionByZero, InvalidOperation, Overflow
from enum import StrEnum
from typing import Annotated, Any
from zoneinfo import available_timezones

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BeforeValidator,
    Field,
    StringConstraints,
    ValidationInfo,
    WithJsonSchema,
)

MONEY_MAX_DIGITS = 22
MONEY_DECIMAL_PLACES = 4
# Money is summed (lifetime totals, windows) and weighted by seconds (time-weighted average
# balances) in this context, never in the thread's default one (28 digits, silently rounding).
# An amount has at most 22 significant digits and 4 places; converted at a configured rate it
# stays under 10^30. A sum of a billion such amounts, or an amount times the seconds since 1900
# summed over a year of balance points, stays under 10^46 at 4 places: 50 digits, so every
# sum is exact. Overflow and invalid operations raise rather than round.
MONEY_SUM_PRECISION = 60
MONEY_CONTEXT = Context(
    prec=MONEY_SUM_PRECISION,
    rounding=ROUND_HALF_EVEN,
    traps=[InvalidOperation, DivisionByZero, Overflow],
)
# The text of an amount: an optional minus sign, ASCII digits, at most one dot with digits on both
# sides. Python's Decimal would also take "5_000", "1E+21", " 12 ", Arabic-Indic or full-width
# digits; none of those is how a bank writes an amount, and each is a likely mistake upstream.
MONEY_TEXT_PATTERN = r"^-?[0-9]{1,40}(\.[0-9]{1,40})?$"
_MONEY_TEXT = re.compile(MONEY_TEXT_PATTERN, re.ASCII)

# Characters no identifier may hold anywhere: C0 and C1 controls (NUL among them), the
# bidirectional controls that make text display as something it is not, invisible format
# characters and the line and paragraph separators.
_HIDDEN = r"\x00-\x1f\x7f-\x9f\ud800-\udfff\u061c\u200b-\u200f\u2028-\u202e\u2060\u2066-\u2069\ufeff"
# ...and whitespace, which an identifier may hold inside but not at either end.
_SPACE = r" \xa0\u1680\u2000-\u200a\u202f\u205f\u3000"
PRINTABLE_PATTERN = rf"^[^{_HIDDEN}{_SPACE}](?:[^{_HIDDEN}]*[^{_HIDDEN}{_SPACE}])?$"
_PRINTABLE = re.compile(PRINTABLE_PATTERN)
# Free text (a comment, a note, a reason) may break lines and indent with tabs, but holds none of
# the other hidden characters: NUL, which PostgreSQL cannot store, least of all.
_FREE_TEXT_HIDDEN = _HIDDEN.replace(r"\x00-\x1f", r"\x00-\x08\x0b\x0c\x0e-\x1f")
FREE_TEXT_PATTERN = rf"^[^{_FREE_TEXT_HIDDEN}]*$"
_FREE_TEXT = re.compile(FREE_TEXT_PATTERN)

EVENT_ID_MAX_LENGTH = 128
EVENT_SOURCE_MAX_LENGTH = 256
# The earliest instants accepted: events happen in the Unix era; payload times (an account
# opened, a balance dated) may reach back further, but not to a year that is a typing mistake.
EARLIEST_EVENT_TIME = datetime(1970, 1, 1, tzinfo=UTC)
EARLIEST_PAYLOAD_TIME = datetime(1900, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class TimeBounds:
    """The clock a validation runs against, passed to pydantic as validation context.

    A time later than `now + max_future_skew` is refused wherever it stands, in the envelope
    or in the payload. Without bounds in the context (a model built in code from stored rows)
    only the earliest-time rule applies.
    """

    now: datetime
    max_future_skew: timedelta

    @property
    def latest(self) -> datetime:
        return self.now + self.max_future_skew

    def context(self) -> dict[str, Any]:
        return {_TIME_BOUNDS: self}


_TIME_BOUNDS = "tierflow_time_bounds"


def _in_bounds(earliest: datetime) -> AfterValidator:
    """Not before `earliest`, nor later than the clock in the validation context allows."""

    def check(value: datetime, info: ValidationInfo) -> datetime:
        if value < earliest:
            raise ValueError(f"must not be before {earliest.date().isoformat()}")
        bounds = info.context.get(_TIME_BOUNDS) if isinstance(info.context, dict) else None
        if isinstance(bounds, TimeBounds) and value > bounds.latest:
            raise ValueError(f"is more than {_duration(bounds.max_future_skew)} in the future")
        return value

    # One validator for both rules: each is a call from pydantic-core into Python.
    return AfterValidator(check)


def _duration(span: timedelta) -> str:
    seconds = int(span.total_seconds())
    if seconds % 60 == 0:
        return f"{seconds // 60} minutes"
    return f"{seconds} seconds"


def _exact_money(value: object) -> object:
    # A JSON number arrives as Decimal (parsed with parse_float=Decimal); a Python float here
    # means precision was already lost upstream, and bool is an int in disguise.
    if isinstance(value, bool | float):
        raise ValueError("must be a decimal string or an exact JSON number, not a binary float")
    if isinstance(value, str) and not _MONEY_TEXT.fullmatch(value):
        raise ValueError(
            "must be a plain decimal: an optional minus sign, ASCII digits and at most one dot"
            " (no spaces, exponents or digit separators)"
        )
    return value


def _plain_decimal(value: Decimal) -> Decimal:
    # The value is published as text, which must pass this rule again downstream: never "-0",
    # never the exponent form a JSON number such as 1e2 or 0.0000000 turns into.
    if value.is_zero():
        return Decimal(0) if "E" in str(value) else value.copy_abs()
    exponent = value.as_tuple().exponent
    if isinstance(exponent, int) and exponent > 0:
        return value.quantize(Decimal(1), context=MONEY_CONTEXT)
    return value


NOT_PRINTABLE = (
    "must not hold control, NUL, bidirectional or invisible characters, nor begin or end with whitespace"
)


def is_printable(value: str) -> bool:
    """Whether `value` follows the identifier rule of events: no hidden characters, no edge spaces."""
    return _PRINTABLE.fullmatch(value) is not None


def _printable(value: str) -> str:
    if not is_printable(value):
        raise ValueError(NOT_PRINTABLE)
    return value


NOT_FREE_TEXT = (
    "must not hold NUL, control (other than tab and line breaks), bidirectional or invisible characters"
)


def _free_text(value: str) -> str:
    if _FREE_TEXT.fullmatch(value) is None:
        raise ValueError(NOT_FREE_TEXT)
    return value


def _known_timezone(value: str) -> str:
    if value not in _TIMEZONES:
        raise ValueError(f"unknown IANA time zone {value!r}")
    return value


_TIMEZONES = frozenset(available_timezones())

_PRINTABLE_CHECK = AfterValidator(_printable)
_PRINTABLE_SCHEMA = Field(json_schema_extra={"pattern": PRINTABLE_PATTERN})
_FREE_TEXT_CHECK = AfterValidator(_free_text)
_FREE_TEXT_SCHEMA = Field(json_schema_extra={"pattern": FREE_TEXT_PATTERN})

CustomerId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._:@-]{0,63}$")]
Identifier = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._:@/-]{0,127}$")]
VersionName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")]
ShortText = Annotated[
    str, StringConstraints(min_length=1, max_length=64), _PRINTABLE_CHECK, _PRINTABLE_SCHEMA
]
LongText = Annotated[str, StringConstraints(max_length=2000), _FREE_TEXT_CHECK, _FREE_TEXT_SCHEMA]
# Why someone acted (an override, a cancellation) and what they noted: free text, bounded.
ReasonText = Annotated[
    str, StringConstraints(min_length=3, max_length=500), _FREE_TEXT_CHECK, _FREE_TEXT_SCHEMA
]
NoteText = Annotated[str, StringConstraints(max_length=1000), _FREE_TEXT_CHECK, _FREE_TEXT_SCHEMA]
DetailText = Annotated[str, StringConstraints(max_length=500), _FREE_TEXT_CHECK, _FREE_TEXT_SCHEMA]
# A customer label's name, as a policy declares it (`investment_intent`, `digital_first`).
LabelName = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,47}$")]
CurrencyCode = Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")]
TimeZoneName = Annotated[str, StringConstraints(max_length=64), AfterValidator(_known_timezone)]

# Path parameters name what a body holds, with the same bounds: a path can only reach what a
# body could have created, and anything else is a 422 naming the parameter, not a lookup.
CustomerIdPath = CustomerId
IdentifierPath = Identifier
VersionPath = VersionName

# One rule for everything that names an event: the envelope's `id` and `source`, and a tier
# change's `caused_by`, which holds the causing event's id (later its source and id), `review`
# or `override`. Any printable text: spaces inside are fine, hidden characters are not.
EventId = Annotated[
    str,
    StringConstraints(min_length=1, max_length=EVENT_ID_MAX_LENGTH),
    _PRINTABLE_CHECK,
    _PRINTABLE_SCHEMA,
]
EventSource = Annotated[
    str,
    StringConstraints(min_length=1, max_length=EVENT_SOURCE_MAX_LENGTH),
    _PRINTABLE_CHECK,
    _PRINTABLE_SCHEMA,
]
PrintableText = Annotated[
    str, StringConstraints(min_length=1, max_length=512), _PRINTABLE_CHECK, _PRINTABLE_SCHEMA
]

# An event's own time: RFC 3339 with an offset, in the Unix era, not ahead of the clock.
EventTime = Annotated[AwareDatetime, _in_bounds(EARLIEST_EVENT_TIME)]
# A time inside a payload (as_of, opened_at, answered_at...): the same rule, back to 1900.
PayloadTime = Annotated[AwareDatetime, _in_bounds(EARLIEST_PAYLOAD_TIME)]

Money = Annotated[
    Decimal,
    # The bounds come before the text check so that pydantic-core checks them with the Decimal
    # itself: after a Python validator they would be Python validators too, at about 3 µs an amount.
    Field(max_digits=MONEY_MAX_DIGITS, decimal_places=MONEY_DECIMAL_PLACES, allow_inf_nan=False),
    BeforeValidator(_exact_money),
    AfterValidator(_plain_decimal),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "number"},
                {"type": "string", "pattern": MONEY_TEXT_PATTERN},
            ],
            "description": f"a decimal, at most {MONEY_MAX_DIGITS} digits and {MONEY_DECIMAL_PLACES} places",
        }
    ),
]
PositiveMoney = Annotated[Money, Field(gt=0)]
NonNegativeMoney = Annotated[Money, Field(ge=0)]


class Tier(StrEnum):
    PRIVATE = "private"
    WEALTH = "wealth"
    VIP = "vip"
    MASS = "mass"


class Stage(StrEnum):
    PROSPECT = "prospect"
    NEW = "new"
    REGULAR = "regular"
    CORE = "core"
    AT_RISK = "at_risk"
    CHURNED = "churned"


class HouseholdRole(StrEnum):
    PRIMARY = "primary"
    SPOUSE = "spouse"
    CHILD = "child"
    PARENT = "parent"
    OTHER = "other"


class Segment(StrEnum):
    INDIVIDUAL = "individual"
    CORPORATE = "corporate"
    INSTITUTION = "institution"


class RiskProfile(StrEnum):
    C1 = "C1"
    C2 = "C2"
    C3 = "C3"
    C4 = "C4"
    C5 = "C5"


class Channel(StrEnum):
    BRANCH = "branch"
    MOBILE = "mobile"
    ONLINE = "online"
    ATM = "atm"
    PHONE = "phone"
    RM = "rm"
