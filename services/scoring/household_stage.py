"""The household stage: folds members' contributions into households, one transaction per batch.

It consumes `household.contributions.v1` (keyed by household, so one instance sees all of a
household's messages) in a consumer group of its own. Load the households (locked) and their
member rows, fold in the domain, then write member rows, aggregates and audit rows together; a
member row's sequence is the processed marker, so a redelivered message changes nothing and
the offset moves only after the commit.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from aiokafka import ConsumerRecord
from sqlalchemy.ext.asyncio import AsyncEngine

from services.scoring import metrics
from services.scoring.domain.household import DEFAULT_MAX_MEMBERS, Published, demoted, fold
from services.scoring.household_messages import decode_contribution
from services.scoring.household_store import HouseholdStore, RoleAudit
from shared.consumer import Delivered, PoisonMessage
from shared.contracts.envelope import InvalidEvent
from shared.contracts.types import HouseholdRole
from shared.db import consumer_transaction

DEMOTION_NOTE = "a later member declared primary"


def contribution_decoder() -> Callable[[ConsumerRecord[bytes, bytes]], Published]:
    def decode(record: ConsumerRecord[bytes, bytes]) -> Published:
        try:
            return decode_contribution(record.value or b"", record.key)
        except InvalidEvent as exc:
            raise PoisonMessage(f"invalid household contribution: {exc}") from None
        except (ValueError, RecursionError) as exc:
            raise PoisonMessage(f"not a JSON CloudEvent: {exc}") from None

    return decode


@dataclass
class HouseholdStage:
    engine: AsyncEngine
    max_members: int = DEFAULT_MAX_MEMBERS

    async def apply_batch(self, batch: Sequence[Delivered[Published]]) -> None:
        async with consumer_transaction(self.engine) as connection:
            folded = await self.fold_messages(
                HouseholdStore(connection), [item.value for item in batch], self.max_members
            )
        metrics.HOUSEHOLD_CONTRIBUTIONS.labels(outcome="folded").inc(folded)
        metrics.HOUSEHOLD_CONTRIBUTIONS.labels(outcome="repeat_or_stale").inc(len(batch) - folded)

    @staticmethod
    async def fold_messages(
        store: HouseholdStore, messages: Sequence[Published], max_members: int = DEFAULT_MAX_MEMBERS
    ) -> int:
        """Fold the messages; returns how many changed a household (repeats and stale ones do not)."""
        households = await store.lock_households({m.household_id for m in messages})
        originals = dict(households)
        audits: list[RoleAudit] = []
        folded = 0
        for message in messages:
            current = households[message.household_id]
            after = fold(current, message, max_members)
            if after is None:
                continue
            folded += 1
            audits += [
                RoleAudit(
                    current.household_id, member, HouseholdRole.PRIMARY, HouseholdRole.OTHER, DEMOTION_NOTE
                )
                for member in demoted(current, after)
            ]
            households[message.household_id] = after
        changed = [h for hid, h in households.items() if h != originals[hid]]
        await store.save_households(changed, originals, datetime.now(UTC))
        await store.audit_roles(audits, datetime.now(UTC))
        return folded
