"""Bounded field types shared by every wire contract."""

from __future__ import annotations

from decimal import Decimal
from enum import StrEnum
from typing import Annotated
from zoneinfo import available_timezones

from pydantic import AfterValidator, BeforeValidator, Field, StringConstraints

MONEY_MAX_DIGITS = 22
MONEY_DECIMAL_PLACES = 4


def _reject_binary_floats(value: object) -> object:
    # A JSON number arrives as Decimal (parsed with parse_float=Decimal); a Python float here
    # means precision was already lost upstream, and bool is an int in disguise.
    if isinstance(value, bool | float):
        raise ValueError("must be a decimal string or an exact JSON number, not a binary float")
    return value


def _known_timezone(value: str) -> str:
    if value not in _TIMEZONES:
        raise ValueError(f"unknown IANA time zone {value!r}")
    return value


_TIMEZONES = frozenset(available_timezones())

CustomerId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._:@-]{0,63}$")]
Identifier = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._:@/-]{0,127}$")]
# CloudEvents identity: an event is known by source and id together. The envelope and every
# reference to an event (a tier change's `caused_by`) use these, so one rule holds for both.
EventId = Annotated[str, StringConstraints(min_length=1, max_length=128)]
EventSource = Annotated[str, StringConstraints(min_length=1, max_length=256)]
ShortText = Annotated[str, StringConstraints(min_length=1, max_length=64)]
LongText = Annotated[str, StringConstraints(max_length=2000)]
CurrencyCode = Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")]
TimeZoneName = Annotated[str, StringConstraints(max_length=64), AfterValidator(_known_timezone)]
Money = Annotated[
    Decimal,
    BeforeValidator(_reject_binary_floats),
    Field(max_digits=MONEY_MAX_DIGITS, decimal_places=MONEY_DECIMAL_PLACES, allow_inf_nan=False),
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
