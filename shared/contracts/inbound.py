"""Payloads of the `bank.*` events that core banking systems send (contract v1)."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StrictBool

from shared.contracts.types import (
    Channel,
    CurrencyCode,
    CustomerId,
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
