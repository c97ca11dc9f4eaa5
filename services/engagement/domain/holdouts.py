"""Who is held out of an experiment: a pure, deterministic draw.

The draw hashes the customer id with the experiment name, so a replay, a resend or another
engagement instance puts the same customer in the same group, and one customer's group in one
experiment says nothing about their group in another.
"""

from __future__ import annotations

import hashlib
from decimal import Decimal

from services.engagement.domain.playbook import HOLDOUT_CATEGORIES, Category, Holdout

_BUCKETS = 2**64


def in_control_group(customer_id: str, holdout: Holdout) -> bool:
    """True when the customer falls in the held-out share of `holdout`'s experiment."""
    digest = hashlib.sha256(f"{len(holdout.experiment)}:{holdout.experiment}|{customer_id}".encode()).digest()
    bucket = int.from_bytes(digest[:8], "big")
    return Decimal(bucket) < holdout.share * _BUCKETS


def experiment_of(
    holdout: Holdout | None, category: Category, complaints_open_high: int, at_risk: bool
) -> Holdout | None:
    """The holdout an action is drawn for: marketing and retention only, and nobody with an
    open high-severity complaint or at risk of leaving (service recovery comes first for them,
    never a control group), whatever the rule's conditions name."""
    if holdout is None or category not in HOLDOUT_CATEGORIES or complaints_open_high or at_risk:
        return None
    return holdout


def held_out_reason(holdout: Holdout) -> str:
    percent = f"{holdout.share * 100:f}".rstrip("0").rstrip(".")
    return f"holdout: control group of experiment {holdout.experiment} ({percent}% held out)"
