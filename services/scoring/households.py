"""Household membership on scoring's per-event path: each member's contribution is published
in the transaction of the member's state (outbox), keyed by household; nothing here spans
customers, the household stage folds the contributions."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncConnection

from services.scoring.domain.customer import CustomerState
from services.scoring.domain.household import Membership, Published, contribution_of, publications
from services.scoring.household_store import HouseholdStore


def _in_a_household(state: CustomerState | None) -> bool:
    return state is not None and "household_id" in state.features.profile


async def publish_contributions(
    db: AsyncConnection,
    before: Mapping[str, CustomerState],
    after: Mapping[str, CustomerState],
    topic: str,
) -> int:
    """Publish the contribution of every customer of `after` that is or was in a household and
    whose contribution changed; returns how many messages. Customers never in one cost nothing."""
    candidates = [
        cid for cid, state in after.items() if _in_a_household(state) or _in_a_household(before.get(cid))
    ]
    if not candidates:
        return 0
    store = HouseholdStore(db)
    last = await store.memberships(candidates)
    changed: dict[str, Membership] = {}
    published: list[Published] = []
    for cid in candidates:
        state = after[cid]
        known = last.get(cid, Membership())
        if state.decision is None:
            continue
        membership, sent = publications(
            cid, known, contribution_of(state, known.contribution), state.decision.evaluated_at
        )
        if sent:
            changed[cid] = membership
            published += sent
    await store.save_memberships(changed, published, topic)
    return len(published)


async def withdraw_from_household(db: AsyncConnection, customer_id: str, at: datetime, topic: str) -> None:
    """The customer's removal from their household, published before they are erased: an erased
    member takes their contribution and their role history with them."""
    store = HouseholdStore(db)
    await store.forget_audit(customer_id)
    last = (await store.memberships([customer_id])).get(customer_id)
    if last is None or last.contribution is None:
        return
    membership, sent = publications(customer_id, last, None, at)
    await store.save_memberships({customer_id: membership}, sent, topic)
