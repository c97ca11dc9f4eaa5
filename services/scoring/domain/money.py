"""Amounts in the base currency: converted with the configured rate table, exactly."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal

from pydantic import BaseModel

from shared.contracts.inbound import BalanceData, TransactionData
from shared.contracts.types import MONEY_CONTEXT


class UnconvertibleCurrency(ValueError):
    pass


def amount_in_base(data: BaseModel, base: str, rates: Mapping[str, Decimal]) -> Decimal | None:
    """The event's money in the base currency, or None for events that carry none."""
    if isinstance(data, TransactionData):
        amount, currency = data.amount, data.currency
    elif isinstance(data, BalanceData):
        amount, currency = data.aum, data.currency
    else:
        return None
    if currency == base:
        return amount
    rate = rates.get(currency)
    if rate is None:
        raise UnconvertibleCurrency(f"{currency} has no configured exchange rate to {base}")
    return MONEY_CONTEXT.multiply(amount, rate).quantize(Decimal("0.0001"), context=MONEY_CONTEXT)
