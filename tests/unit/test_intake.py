from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from services.ingest.domain.intake import BatchRejected, BatchTooLarge, accept_batch
from shared.batches import ItemError
from shared.bodies import refused_batch
from shared.contracts.envelope import ValidationRules, decode_json
from shared.contracts.inbound import INBOUND_DATA_MODELS
from tests import factories


def rules() -> ValidationRules:
    # The clock is read per test: the factories stamp events with the time they are made.
    return ValidationRules(
        now=datetime.now(UTC),
        max_future_skew=timedelta(minutes=5),
        accepts_currency={"CNY"}.__contains__,
        data_models=INBOUND_DATA_MODELS,
    )


def decoded(value: object) -> object:
    return decode_json(json.dumps(value).encode())


def test_a_single_event_is_a_batch_of_one() -> None:
    assert len(accept_batch(decoded(factories.transaction()), rules(), 5000)) == 1


def test_a_batch_keeps_the_senders_order() -> None:
    batch = [factories.transaction(amount=str(n + 1)) for n in range(20)]
    accepted = accept_batch(decoded(batch), rules(), 5000)
    assert [e.envelope.id for e in accepted] == [e["id"] for e in batch]


def test_every_bad_item_is_reported_with_its_index_and_field() -> None:
    batch = [
        factories.transaction(),
        factories.transaction(amount="-1"),
        factories.interaction(),
        factories.without_data_field(factories.balance(), "aum"),
        "not an event",
    ]
    with pytest.raises(BatchRejected, match=r"^3 validation errors$") as caught:
        accept_batch(decoded(batch), rules(), 5000)
    assert [(e.index, e.field) for e in caught.value.errors] == [
        (1, "data.amount"),
        (3, "data.aum"),
        (4, "(event)"),
    ]


def test_a_batch_over_the_limit_is_too_large_before_any_validation() -> None:
    with pytest.raises(BatchTooLarge, match="at most 3"):
        accept_batch([{}] * 4, rules(), 3)


def test_an_empty_batch_is_rejected() -> None:
    with pytest.raises(BatchRejected, match=r"^1 validation errors$") as caught:
        accept_batch([], rules(), 10)
    assert [(e.field, e.message) for e in caught.value.errors] == [("(batch)", "the batch is empty")]


def test_a_rejection_lists_the_first_hundred_problems_and_counts_them_all() -> None:
    crowded = {f"x{n}": n for n in range(100)}  # 100 unknown fields: 100 problems in each event
    batch = [factories.with_data(factories.interaction(), **crowded) for _ in range(50)]
    with pytest.raises(BatchRejected, match=r"^5000 validation errors$") as caught:
        accept_batch(decoded(batch), rules(), 5000)
    assert len(caught.value.errors) == 100
    assert caught.value.total == 50 * 100
    assert {e.index for e in caught.value.errors} == {0}


def test_one_event_cannot_cost_more_than_one_problem_for_its_size() -> None:
    crowded = factories.with_data(factories.interaction(), **{f"x{n}": n for n in range(10_000)})
    with pytest.raises(BatchRejected, match=r"^1 validation errors$") as caught:
        accept_batch(decoded(crowded), rules(), 5000)
    assert [(e.field, e.message) for e in caught.value.errors] == [("data", "holds more than 128 values")]


def test_a_refusal_counts_its_problems_in_words() -> None:
    one = refused_batch(BatchRejected([ItemError(0, "data.amount", "must be a plain decimal")]), "published")
    assert (one.status, one.detail) == (422, "1 problem found; nothing was published")
    many = [ItemError(0, "data.amount", "must be a plain decimal")] * 2
    assert refused_batch(BatchRejected(many), "stored").detail == "2 problems found; nothing was stored"
