"""One bad record is dead-lettered with its reason, whatever it raises; the rest is applied once."""

from __future__ import annotations

import json

import pytest

from tests.infra import Infra
from tests.integration.worker_support import Value, WorkerBox, eventually

pytestmark = pytest.mark.integration


async def test_whatever_one_record_raises_only_it_is_dead_lettered_with_the_reason(infra: Infra) -> None:
    box = await WorkerBox.create(infra)
    ledger = await box.ledger()
    # All fetched as one batch: each bad record makes the whole batch's transaction fail.
    await box.publish(
        [
            {"id": "a", "tier": "gold"},
            {"id": "no-tier"},  # KeyError in the handler, as a raw dict without the field
            b"[1, 2]",  # TypeError in the decoder
            {"id": "b", "tier": "silver"},
            b"{not json",  # refused by the decoder on purpose
            {"id": "c", "tier": "gold"},
            {"id": "nul", "tier": "go\u0000ld"},  # refused by PostgreSQL: text cannot hold NUL
            {"id": "d", "tier": "bronze"},
        ]
    )

    async with box.running(ledger) as worker:
        await eventually(lambda: ledger.holds(4), 60, "the good records applied", worker)
        dead = await box.dead_letters(expected=4)
        # The partition keeps flowing after them.
        await box.publish([{"id": "e", "tier": "gold"}])
        await eventually(lambda: ledger.holds(5), 30, "a later record applied", worker)

    assert await ledger.applied() == ["a", "b", "c", "d", "e"]
    reasons = {
        message.value: (
            message.headers["tierflow-error-class"].decode(),
            message.headers["tierflow-error"].decode(),
        )
        for message in dead
    }
    assert reasons[b'{"id": "no-tier"}'] == ("KeyError", "'tier'")
    assert reasons[b"[1, 2]"][0] == "TypeError"
    assert "not a mapping" in reasons[b"[1, 2]"][1]
    assert reasons[b"{not json"][0] == "PoisonMessage"
    nul = json.dumps({"id": "nul", "tier": "go\u0000ld"}).encode()
    assert reasons[nul][0] == "DatabaseRefused"
    assert "0x00" in reasons[nul][1]
    assert all(m.headers["tierflow-source-topic"] == box.topics.bank_events.encode() for m in dead)
    assert len(dead) == 4
    await ledger.engine.dispose()


async def test_a_large_batch_with_a_few_bad_records_is_applied_in_halves_each_good_record_once(
    infra: Infra,
) -> None:
    box = await WorkerBox.create(infra)
    ledger = await box.ledger()
    keys = [f"C{n}".encode() for n in range(4)]
    bad = {17, 58, 59, 140}
    by_key: dict[bytes, list[Value]] = {key: [] for key in keys}
    for n in range(200):
        record: Value = {"id": f"r{n}"} if n in bad else {"id": f"r{n}", "tier": "gold"}
        by_key[keys[n % 4]].append(record)
    for key, records in by_key.items():
        await box.publish(records, key=key)

    async with box.running(ledger) as worker:
        await eventually(lambda: ledger.holds(196), 60, "every good record applied", worker)
        dead = await box.dead_letters(expected=len(bad))

    applied = await ledger.applied()
    assert sorted(applied) == sorted(f"r{n}" for n in range(200) if n not in bad)
    # Each customer's records in the order they were sent.
    for records in by_key.values():
        sent = [r["id"] for r in records if "tier" in r]
        assert [i for i in applied if i in set(sent)] == sent
    assert sorted(json.loads(m.value)["id"] for m in dead) == sorted(f"r{n}" for n in bad)
    # Halving finds the bad records in a few transactions, not one per record.
    assert ledger.calls < 100
    await ledger.engine.dispose()


async def test_a_record_whose_statement_always_times_out_is_dead_lettered_after_bounded_retries(
    infra: Infra,
) -> None:
    box = await WorkerBox.create(infra, TIERFLOW_CONSUMER_TIMEOUT_RETRIES="3")
    ledger = await box.ledger()
    await box.publish([{"id": "a", "tier": "gold"}, {"id": "s", "tier": "slow"}, {"id": "b", "tier": "gold"}])

    async with box.running(ledger) as worker:
        await eventually(lambda: ledger.holds(2), 60, "the records around the slow one applied", worker)
        dead = await box.dead_letters(expected=1)
        await box.publish([{"id": "c", "tier": "gold"}])
        await eventually(lambda: ledger.holds(3), 30, "a later record applied", worker)

    assert await ledger.applied() == ["a", "b", "c"]
    assert [m.value for m in dead] == [b'{"id": "s", "tier": "slow"}']
    assert dead[0].headers["tierflow-error"].decode().startswith("statement timed out: SQLSTATE 57014")
    await ledger.engine.dispose()
