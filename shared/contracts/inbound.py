"""Payloads of the `bank.*` events that core banking systems send (contract v1)."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, ClassVar, Self

from pydantic import BaseModel, ConfigDict, Field, StrictBool, model_validator

from shared.contracts.types import (
    Channel,
    CurrencyCode,
    CustomerId,
    HouseholdRole,
    Identifier,
    NonNegativeMoney,
    PayloadTime,
    PositiveMoney,
    RiskProfile,
    Segment,
    ShortText,
    TimeZoneName,
)

CUSTOMER = "bank.customer.v1"
TRANSACTION = "bank.transaction.v1"
BALANCE = "bank.balance.v1"
INTERACTION = "bank.interaction.v1"


class _Payload(BaseModel):
    # Inbound payloads forbid unknown fields so a misspelt field is an error, not silently lost.
    model_config = ConfigDict(extra="forbid", frozen=True)

    customer_id: CustomerId
    # Fields whose explicit `null` means something (unlike every other optional field, where
    # null and absent both mean "unchanged"): the wire form keeps it.
    explicit_nulls: ClassVar[frozenset[str]] = frozenset()


class Consents(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    phone: StrictBool | None = None
    sms: StrictBool | None = None
    email: StrictBool | None = None
    app: StrictBool | None = None


class CustomerData(_Payload):
    branch_id: Identifier | None = None
    segment: Segment | None = None
    region: ShortText | None = None
    risk_profile: RiskProfile | None = None
    opened_at: PayloadTime | None = None
    rm_id: Identifier | None = None
    consents: Consents | None = None
    timezone: TimeZoneName | None = None
    # A customer belongs to at most one household: a new id moves them, an explicit null
    # takes them out of the one they are in.
    household_id: Identifier | None = None
    household_role: HouseholdRole | None = None

    explicit_nulls: ClassVar[frozenset[str]] = frozenset({"household_id"})

    @property
    def leaves_household(self) -> bool:
        return "household_id" in self.model_fields_set and self.household_id is None

    @model_validator(mode="after")
    def _no_role_when_leaving(self) -> Self:
        if self.leaves_household and self.household_role is not None:
            raise ValueError(
                "household_role needs a household_id: a customer leaving a household has no role in it"
            )
        return self


class Direction(StrEnum):
    CREDIT = "credit"
    DEBIT = "debit"


class TransactionCategory(StrEnum):
    DEPOSIT = "deposit"
    WITHDRAWAL = "withdrawal"
    TRANSFER = "transfer"
    PURCHASE = "purchase"
    INVESTMENT = "investment"
    INSURANCE = "insurance"
    LOAN_REPAYMENT = "loan_repayment"
    FEE = "fee"
    OTHER = "other"


class TransactionData(_Payload):
    amount: PositiveMoney
    currency: CurrencyCode
    direction: Direction
    category: TransactionCategory | None = None
    channel: Channel | None = None
    transaction_id: Identifier | None = None


BreakdownKey = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,31}$")]


class BalanceData(_Payload):
    aum: NonNegativeMoney
    currency: CurrencyCode
    as_of: PayloadTime | None = None
    breakdown: Annotated[dict[BreakdownKey, NonNegativeMoney], Field(max_length=32)] | None = None


class InteractionKind(StrEnum):
    LOGIN = "login"
    BRANCH_VISIT = "branch_visit"
    CALL = "call"
    RM_MEETING = "rm_meeting"
    CAMPAIGN_RESPONSE = "campaign_response"
    INQUIRY = "inquiry"
    # A call to the support line, and a failed sign-in to mobile or online banking: together
    # they show a customer struggling with digital banking.
    SUPPORT_CALL = "support_call"
    LOGIN_FAILED = "login_failed"


class InteractionData(_Payload):
    kind: InteractionKind
    channel: Channel | None = None


INBOUND_DATA_MODELS: dict[str, type[_Payload]] = {
    CUSTOMER: CustomerData,
    TRANSACTION: TransactionData,
    BALANCE: BalanceData,
    INTERACTION: InteractionData,
}
