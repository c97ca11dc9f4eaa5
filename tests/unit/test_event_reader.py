"""The event reader's one pass over the bytes against `validate_event` over `decode_json`: the same
events accepted, the same values, the same errors, whatever the record holds."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from services.scoring.handlers import SCORED_MODELS
from shared.contracts.envelope import (
    FAST_READ_MAX_BYTES,
    MAX_DATA_VALUES,
    EventReader,
    InvalidEvent,
    ValidEvent,
    decode_json,
    validate_event,
)
from tests import factories

NOW = datetime.now(UTC)
READER = EventReader(SCORED_MODELS, timedelta(minutes=5), frozenset({"CNY", "USD"}).__contains__)
MAKERS: tuple[Callable[[], dict[str, Any]], ...] = (
    *factories.ALL_TYPES,
    factories.survey,
    factories.complaint,
)
# A JSON number written as is: json.dumps cannot write a Decimal, so it is written as this
# string and the quotes are taken off after.
_NUMBER = "\x00number:"


def outcome(read: Callable[[], ValidEvent]) -> tuple[Any, ...]:
    """What a caller can see of a read: the event's every attribute and its wire form, or the
    errors, or why it is not JSON."""
    try:
        valid = read()
    except InvalidEvent as exc:
        return ("invalid", [(e.field, e.message) for e in exc.errors])
    except (ValueError, RecursionError) as exc:
        return ("not JSON", type(exc), str(exc))
    envelope, data = valid.envelope, valid.data
    attributes = {name: getattr(envelope, name) for name in type(envelope).model_fields if name != "data"}
    return (
        "valid",
        attributes,
        envelope.model_extra,
        type(data),
        {name: (type(value), value) for name, value in data},
        data.model_fields_set,
        valid.customer_id,
        valid.to_bytes(),
    )


def read_both(body: bytes) -> tuple[tuple[Any, ...], tuple[Any, ...]]:
    before = outcome(lambda: validate_event(decode_json(body), READER.rules(NOW)))
    return before, outcome(lambda: READER.read(body, NOW))


def encode(event: object, *, ascii_only: bool, indent: int | None) -> bytes:
    text = re.sub(
        r'"\\u0000number:([^"]*)"', r"\1", json.dumps(event, ensure_ascii=ascii_only, indent=indent)
    )
    return text.encode("utf-8", "surrogatepass")


def valid_event(make: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    return factories.with_envelope(make(), time=(NOW - timedelta(minutes=1)).isoformat())


def number(text: object) -> str:
    return f"{_NUMBER}{text}"


decimal_text = st.one_of(
    st.decimals(allow_nan=False, allow_infinity=False).map(str),
    st.decimals(min_value=0, max_value=10**19, places=4).map(str),
    st.sampled_from(
        ["1.10", "1e2", "-0", "0", "0.0000000", "1E+21", "12345678901234567890.1234", "5_000", " 12"]
    ),
)
numbers = st.one_of(decimal_text.filter(lambda n: "_" not in n and " " not in n).map(number), st.integers())
# Times on both sides of every bound: the Unix era, 1900, the clock plus its skew.
times = st.one_of(
    st.integers(min_value=-20, max_value=20).map(lambda m: (NOW + timedelta(minutes=m)).isoformat()),
    st.datetimes(
        min_value=datetime(1800, 1, 1),  # noqa: DTZ001 - hypothesis bounds are naive, zones come apart
        max_value=datetime(3000, 1, 1),  # noqa: DTZ001
        timezones=st.sampled_from([UTC, timezone(timedelta(hours=8)), None]),
    ).map(datetime.isoformat),
    st.sampled_from(
        ["2026-11-01", "2026-11-01T00:00:00", "1700000000", "1969-12-31T23:59:59Z", "1899-12-31T23:59:59Z"]
    ),
    st.integers(min_value=-(10**10), max_value=10**10),
    st.floats(min_value=-(10**10), max_value=10**10).map(number),
)
texts = st.one_of(
    st.text(max_size=12),
    st.text(alphabet=st.characters(codec="utf-8"), max_size=6),
    st.sampled_from(
        ["\ud800", "\udfff x", "\u202e", "\ufeff", " lead", "trail ", "C0001\x00", "x" * 300, "H-1"]
    ),
)
scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), numbers, texts)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
)
# For each member, values near what it takes, so that many bent events are still valid or
# wrong in one member only.
plausible: dict[str, st.SearchStrategy[Any]] = {
    "specversion": st.sampled_from(["1.0", "1.1", number("1.0")]),
    "type": st.sampled_from([*SCORED_MODELS, "bank.unknown.v1", "BANK.CUSTOMER.V1"]),
    "datacontenttype": st.sampled_from(["application/json", "text/plain", None]),
    "currency": st.sampled_from(["CNY", "USD", "EUR", "GBP", "cny", None]),
    "amount": st.one_of(decimal_text, numbers),
    "aum": st.one_of(decimal_text, numbers),
    "breakdown": st.dictionaries(
        st.sampled_from(["deposits", "wealth", "Bad", "x" * 40]), st.one_of(decimal_text, numbers), max_size=4
    ),
    "direction": st.sampled_from(["credit", "debit", "Credit"]),
    "kind": st.sampled_from(["nps", "csat", "login", "call", "other"]),
    "score": st.one_of(st.integers(min_value=-2, max_value=12), st.sampled_from([number("9.0"), True, "9"])),
    "household_id": st.sampled_from(["H-1", None, ""]),
    "household_role": st.sampled_from(["spouse", "child", None, "cousin"]),
    "consents": st.dictionaries(
        st.sampled_from(["sms", "app", "fax"]), st.one_of(st.booleans(), st.integers())
    ),
    "ext1": st.one_of(st.text(max_size=5), st.integers(), st.booleans(), st.floats()),
    **dict.fromkeys(["time", "opened_at", "as_of", "answered_at", "resolved_at"], times),
}
names = st.sampled_from(
    [
        "specversion",
        "id",
        "source",
        "type",
        "time",
        "subject",
        "datacontenttype",
        "dataschema",
        "data",
        "ext1",
        "Bad-Name",
        "customer_id",
        "amount",
        "aum",
        "currency",
        "direction",
        "kind",
        "score",
        "breakdown",
        "opened_at",
        "as_of",
        "household_id",
        "household_role",
        "consents",
        "answered_at",
        "resolved_at",
        "category",
        "unknown",
    ]
)


@st.composite
def events(draw: st.DrawFn) -> bytes:
    """A contract event of any type, valid or bent in a few places: members set to a value near
    what they take or to any JSON value, dropped, added, in the envelope or the data; written
    in any of several ways."""
    event = valid_event(draw(st.sampled_from(MAKERS)))
    for _ in range(draw(st.integers(min_value=0, max_value=3))):
        target = event["data"] if draw(st.booleans()) and isinstance(event.get("data"), dict) else event
        name = draw(st.sampled_from(sorted(target)) | names) if target else draw(names)
        if draw(st.integers(min_value=0, max_value=4)) == 0:
            target.pop(name, None)
        elif name in plausible and draw(st.integers(min_value=0, max_value=3)) > 0:
            target[name] = draw(plausible[name])
        else:
            target[name] = draw(values)
    body = encode(event, ascii_only=draw(st.booleans()), indent=draw(st.sampled_from([None, None, 1])))
    prefix = draw(st.sampled_from([b"", b"", b"", b" \n", b"\xef\xbb\xbf"]))
    return prefix + body


@pytest.mark.parametrize("make", MAKERS)
def test_the_one_pass_reads_every_valid_event_type_as_validate_event_does(
    make: Callable[[], dict[str, Any]],
) -> None:
    body = encode(valid_event(make), ascii_only=False, indent=None)

    assert READER.read_in_one_pass(body, NOW) is not None
    before, after = read_both(body)
    assert before[0] == "valid"
    assert after == before


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(events())
@example(
    encode(valid_event(lambda: factories.transaction(amount=number("1250.40"))), ascii_only=True, indent=None)
)
@example(
    encode(valid_event(lambda: factories.transaction(amount=number(1250))), ascii_only=True, indent=None)
)
@example(encode(valid_event(lambda: factories.survey(score=number("9.0"))), ascii_only=True, indent=None))
@example(
    encode(
        factories.with_envelope(valid_event(factories.interaction), time=number("1700000000.1234567")),
        ascii_only=True,
        indent=None,
    )
)
@example(
    encode(
        factories.with_envelope(
            valid_event(factories.interaction), time=(NOW + timedelta(minutes=6)).isoformat()
        ),
        ascii_only=True,
        indent=None,
    )
)
@example(
    encode(
        factories.with_data(valid_event(factories.balance), as_of=(NOW + timedelta(minutes=6)).isoformat()),
        ascii_only=True,
        indent=None,
    )
)
def test_reading_in_one_pass_accepts_and_refuses_exactly_what_validate_event_does(body: bytes) -> None:
    before, after = read_both(body)

    assert after == before
    one_pass = READER.read_in_one_pass(body, NOW)
    if one_pass is not None:
        assert outcome(lambda: one_pass) == before


def test_an_amount_written_as_a_json_number_with_a_fraction_stays_exact() -> None:
    event = valid_event(lambda: factories.transaction(amount=number("12345678901234.5678")))
    body = encode(event, ascii_only=True, indent=None)

    valid = READER.read(body, NOW)

    assert getattr(valid.data, "amount") == Decimal("12345678901234.5678")  # noqa: B009
    assert read_both(body)[1] == read_both(body)[0]


def test_an_event_padded_past_the_one_pass_bound_is_read_all_the_same() -> None:
    body = encode(valid_event(factories.balance), ascii_only=True, indent=FAST_READ_MAX_BYTES)

    assert READER.read_in_one_pass(body, NOW) is None
    before, after = read_both(body)
    assert before[0] == "valid"
    assert after == before


@pytest.mark.parametrize("spread", ["flat", "nested"])
def test_data_crowded_with_members_is_refused_with_the_one_bound_error(spread: str) -> None:
    crowd: dict[str, Any] = {f"x{n}": n for n in range(MAX_DATA_VALUES)}
    extra = crowd if spread == "flat" else {"x": [list(range(MAX_DATA_VALUES))]}
    event = factories.with_data(valid_event(factories.interaction), **extra)

    with pytest.raises(InvalidEvent) as caught:
        READER.read(json.dumps(event).encode(), NOW)

    assert [(e.field, e.message) for e in caught.value.errors] == [
        ("data", f"holds more than {MAX_DATA_VALUES} values")
    ]


def test_a_currency_without_a_rate_is_refused_by_name() -> None:
    event = factories.with_data(valid_event(factories.transaction), currency="GBP")

    with pytest.raises(InvalidEvent) as caught:
        READER.read(json.dumps(event).encode(), NOW)

    assert [(e.field, e.message) for e in caught.value.errors] == [
        ("data.currency", "GBP has no configured exchange rate to the base currency")
    ]


@pytest.mark.parametrize(
    ("token", "where"),
    [
        ("NaN", "time"),
        ("-Infinity", "data.amount"),
        ("Infinity", "extension"),
    ],
)
def test_a_non_json_number_hidden_by_a_duplicate_member_is_refused_as_before(token: str, where: str) -> None:
    """pydantic's parser takes NaN and Infinity as numbers, and the later of two members wins:
    the record must still be refused as `decode_json` refuses it."""
    event = valid_event(factories.transaction)
    body = encode(event, ascii_only=True, indent=None).decode()
    hidden = {
        "time": ('"time":', f'"time":{token},"time":'),
        "data.amount": ('"amount":', f'"amount":{token},"amount":'),
        "extension": ('"data":', f'"x1":{{"a":[{token}]}},"x1":1,"data":'),
    }[where]
    body = body.replace(*hidden, 1)
    before, after = read_both(body.encode())
    assert before[0] == "not JSON"
    assert after == before


def test_the_reader_tells_of_each_record_it_reads_in_full_and_of_no_other() -> None:
    told: list[None] = []
    reader = EventReader(
        SCORED_MODELS, timedelta(minutes=5), READER.accepts_currency, lambda: told.append(None)
    )
    valid = encode(valid_event(factories.balance), ascii_only=True, indent=None)
    numeric = encode(
        valid_event(lambda: factories.transaction(amount=number("10.5"))), ascii_only=True, indent=None
    )

    reader.read(valid, NOW)
    assert told == []
    reader.read(numeric, NOW)
    with pytest.raises(InvalidEvent, match="time"):
        reader.read(
            encode({**valid_event(factories.balance), "time": "yesterday"}, ascii_only=True, indent=None), NOW
        )
    assert len(told) == 2
