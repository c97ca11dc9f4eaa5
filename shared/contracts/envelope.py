"""The CloudEvents 1.0 envelope (structured JSON mode) and its validation.

Validation is pure: the clock and the accepted currencies come in as `ValidationRules`,
so the same function serves the HTTP intake and the consumers re-validating the topic.
"""

from __future__ import annotations

import json
import operator
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from functools import cache, reduce
from typing import Annotated, Any, Literal, Self

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    create_model,
    model_validator,
)

from shared.contracts.types import (
    NOT_PRINTABLE,
    CustomerId,
    EventId,
    EventSource,
    EventTime,
    PrintableText,
    TimeBounds,
    is_printable,
)

CLOUDEVENTS_CONTENT_TYPE = "application/cloudevents+json"
CLOUDEVENTS_BATCH_CONTENT_TYPE = "application/cloudevents-batch+json"
_EXTENSION_NAME = re.compile(r"^[a-z0-9]{1,20}$")
_MAX_EXTENSIONS = 16
# Values (object members, array items, scalars) one event's data may hold. The largest contract
# payload holds under 50; the bound keeps a hostile item from costing an error per member.
MAX_DATA_VALUES = 128


class EventAttributes(BaseModel):
    """The attributes of a CloudEvent in structured mode, everything but its `data`."""

    model_config = ConfigDict(extra="allow", frozen=True)

    specversion: Literal["1.0"]
    id: EventId
    source: EventSource
    type: EventId
    time: EventTime
    subject: EventSource | None = None
    datacontenttype: Literal["application/json"] | None = None
    dataschema: PrintableText | None = None

    @model_validator(mode="after")
    def _check_extensions(self) -> Self:
        extensions = self.model_extra or {}
        if len(extensions) > _MAX_EXTENSIONS:
            raise ValueError(f"at most {_MAX_EXTENSIONS} extension attributes are allowed")
        for name, value in extensions.items():
            if not _EXTENSION_NAME.match(name):
                raise ValueError(
                    f"unknown attribute {name!r}: extension names are 1-20 lowercase letters or digits"
                )
            if not isinstance(value, str | int | bool) or (isinstance(value, str) and len(value) > 256):
                raise ValueError(f"extension attribute {name!r} must be a short string, integer or boolean")
            if isinstance(value, str) and not is_printable(value):
                raise ValueError(f"extension attribute {name!r} {NOT_PRINTABLE}")
        return self


class CloudEvent(EventAttributes):
    """A CloudEvent in structured mode; `data` is validated separately, by `type`."""

    data: dict[str, Any]


@dataclass(frozen=True)
class FieldError:
    field: str
    message: str


@dataclass(frozen=True)
class ValidationRules:
    """What validation needs from outside: the clock, the currencies with a rate, the payload models.

    `max_future_skew` bounds every time of the event, the envelope's `time` and the payload's
    (`as_of`, `opened_at`, `answered_at`...) alike.
    """

    now: datetime
    max_future_skew: timedelta
    accepts_currency: Callable[[str], bool]
    data_models: Mapping[str, type[BaseModel]]

    @property
    def time_bounds(self) -> TimeBounds:
        return TimeBounds(now=self.now, max_future_skew=self.max_future_skew)


@dataclass(frozen=True)
class ValidEvent:
    envelope: EventAttributes
    data: BaseModel

    @property
    def customer_id(self) -> str:
        # Every contract payload has a customer_id: it is the partition key.
        return str(getattr(self.data, "customer_id"))  # noqa: B009

    def to_wire(self) -> dict[str, Any]:
        """The canonical structured-mode JSON object: money as decimal strings, times in UTC."""
        wire = self.envelope.model_dump(mode="json", exclude_none=True, exclude={"data"})
        wire["data"] = self.data.model_dump(mode="json", exclude_none=True)
        # An explicit null that means something (leaving a household) survives the trip.
        for name in getattr(self.data, "explicit_nulls", ()):
            if name in self.data.model_fields_set and getattr(self.data, name) is None:
                wire["data"][name] = None
        return wire

    def to_bytes(self) -> bytes:
        return json.dumps(self.to_wire(), separators=(",", ":"), ensure_ascii=False).encode()


class InvalidEvent(ValueError):
    def __init__(self, errors: list[FieldError]) -> None:
        super().__init__("; ".join(f"{e.field}: {e.message}" for e in errors))
        self.errors = errors


def field_errors(exc: ValidationError, prefix: str = "") -> list[FieldError]:
    """Field paths and messages from pydantic, never echoing the input (it may hold personal data)."""
    errors = []
    for error in exc.errors(include_input=False, include_url=False, include_context=False):
        path = ".".join(str(part) for part in error["loc"])
        field = f"{prefix}.{path}" if prefix and path else (prefix or path or "(event)")
        message = str(error["msg"]).removeprefix("Value error, ")
        errors.append(FieldError(field=field, message=message))
    return errors


def validate_event(raw: object, rules: ValidationRules) -> ValidEvent:
    """Validate one decoded JSON value as a contract event, or raise `InvalidEvent` with every error."""
    if not isinstance(raw, dict):
        raise InvalidEvent([FieldError("(event)", "an event must be a JSON object")])
    errors: list[FieldError] = []
    envelope: CloudEvent | None = None
    data: BaseModel | None = None
    context = rules.time_bounds.context()
    try:
        envelope = CloudEvent.model_validate(raw, context=context)
    except ValidationError as exc:
        errors.extend(field_errors(exc))
    event_type = raw.get("type")
    model = rules.data_models.get(event_type) if isinstance(event_type, str) else None
    if model is None and isinstance(event_type, str):
        known = ", ".join(sorted(rules.data_models))
        errors.append(FieldError("type", f"unknown event type {event_type!r}; expected one of {known}"))
    raw_data = raw.get("data")
    if model is not None and isinstance(raw_data, dict):
        if _holds_more_values_than(raw_data, MAX_DATA_VALUES):
            errors.append(FieldError("data", f"holds more than {MAX_DATA_VALUES} values"))
        else:
            try:
                data = model.model_validate(raw_data, context=context)
            except ValidationError as exc:
                errors.extend(field_errors(exc, prefix="data"))
    if data is not None:
        errors.extend(_currency_errors(data, rules))
    if errors or envelope is None or data is None:
        raise InvalidEvent(errors)
    return ValidEvent(envelope=envelope, data=data)


class EventReader:
    """Reads encoded events of known types: envelope and typed data validated in one pass over
    the bytes, with `validate_event` behind it for every record that pass does not accept.

    The one pass holds an event to the very models `validate_event` uses, in JSON mode, so it
    accepts no event `validate_event` refuses and gives what `validate_event` would have given;
    whatever it does not accept (a wrong field, an unknown type, a JSON number where an amount
    should be exact, a byte-order mark, UTF-16...) goes to `validate_event`, which accepts it
    or names every error, as it always has. Its errors are never shown: only its verdict is used.
    What JSON mode reads differently is refused or read alike: a lone surrogate or invalid UTF-8
    is not JSON to it; a number with a fraction is a float, which every amount refuses, and a
    time from a number goes through a float in both modes; of duplicate members the last wins
    in both.
    """

    def __init__(
        self,
        data_models: Mapping[str, type[BaseModel]],
        max_future_skew: timedelta,
        accepts_currency: Callable[[str], bool],
        on_read_in_full: Callable[[], None] = lambda: None,
    ) -> None:
        self.data_models = data_models
        self.max_future_skew = max_future_skew
        self.accepts_currency = accepts_currency
        # Told of every record the one pass leaves to `validate_event`: such a record costs
        # about twice a valid one, so an operator wants to see a producer sending many.
        self.on_read_in_full = on_read_in_full
        self._typed = _typed_events(tuple(data_models.items()))
        # The payloads with a currency, which must have a rate (`_currency_errors`).
        self._priced = frozenset(model for model in data_models.values() if "currency" in model.model_fields)

    def rules(self, now: datetime) -> ValidationRules:
        return ValidationRules(now, self.max_future_skew, self.accepts_currency, self.data_models)

    def read(self, body: bytes, now: datetime) -> ValidEvent:
        """The event `body` holds, validated against `now`: exactly `validate_event(decode_json(body))`,
        its result, its `InvalidEvent` naming every error, its ValueError when `body` is not JSON."""
        valid = self.read_in_one_pass(body, now)
        if valid is not None:
            return valid
        self.on_read_in_full()
        return self.read_in_full(body, now)

    def read_in_full(self, body: bytes, now: datetime) -> ValidEvent:
        """`validate_event(decode_json(body))`: what the one pass leaves, accepted or refused by name."""
        return validate_event(decode_json(body), self.rules(now))

    def read_in_one_pass(self, body: bytes, now: datetime) -> ValidEvent | None:
        """The event `body` holds, if the one pass accepts it; None for `validate_event` to judge."""
        if len(body) > FAST_READ_MAX_BYTES or _MAY_HOLD_NON_JSON_NUMBER.search(body):
            return None
        try:
            typed = self._typed.validate_json(body, context=TimeBounds(now, self.max_future_skew).context())
        except ValidationError:
            return None
        data: BaseModel = getattr(typed, "data")  # noqa: B009
        if type(data) in self._priced:
            currency = getattr(data, "currency")  # noqa: B009
            if currency is not None and not self.accepts_currency(currency):
                return None
        return ValidEvent(envelope=typed, data=data)


# Records longer than this skip the one pass. A contract event is a few hundred bytes (the
# largest payload at its bounds, a balance with 32 breakdown entries, is about 2.2 KiB); a
# longer one (long extensions, padding) is read by `validate_event`, as correctly, only slower.
# A record the one pass refuses is read twice, so a shorter bound keeps a refused record's cost
# near what `validate_event` alone spends: the one pass over a long record with many unknown
# members would build an error for each, only to drop them (a refused record of 3 to 4 KiB costs
# up to about four times what it did; a valid one, half).
FAST_READ_MAX_BYTES = 4096
# pydantic's JSON parser takes NaN and (-)Infinity as numbers where `decode_json` refuses the
# record, and a duplicate member could hide one from the models: a record holding either word,
# even inside a string, is left to `validate_event`.
_MAY_HOLD_NON_JSON_NUMBER = re.compile(rb"NaN|Infinity")


@cache
def _typed_events(data_models: tuple[tuple[str, type[BaseModel]], ...]) -> TypeAdapter[EventAttributes]:
    """The events of these types, as a union the validator picks a member of by `type` alone,
    without trying the others. Built once for each set of types (a few hundredths of a second)."""
    by_type: Any = Annotated[
        reduce(operator.or_, [_typed_event(name, model) for name, model in data_models]),
        Field(discriminator="type"),
    ]
    return TypeAdapter(by_type)


def _typed_event(event_type: str, model: type[BaseModel]) -> type[EventAttributes]:
    """The envelope of one event type with its data model in place of the untyped `data`."""
    only_this_type: Any = Literal[event_type]
    return create_model(
        f"{model.__name__}Event",
        __base__=EventAttributes,
        type=(only_this_type, ...),
        data=(model, ...),
    )


def _holds_more_values_than(value: object, limit: int) -> bool:
    """Whether a decoded JSON value holds more than `limit` values, counted without recursion
    and stopping as soon as the limit is passed."""
    pending: list[object] = [value]
    seen = 0
    while pending:
        current = pending.pop()
        seen += 1
        if seen > limit:
            return True
        if isinstance(current, dict):
            pending.extend(current.values())
        elif isinstance(current, list):
            pending.extend(current)
    return False


def _currency_errors(data: BaseModel, rules: ValidationRules) -> list[FieldError]:
    errors = []
    currency = getattr(data, "currency", None)
    if currency is not None and not rules.accepts_currency(currency):
        errors.append(
            FieldError("data.currency", f"{currency} has no configured exchange rate to the base currency")
        )
    return errors


def decode_json(body: bytes) -> Any:
    """Decode JSON keeping every number exact: fractions become Decimal, NaN/Infinity are refused."""
    return json.loads(body, parse_float=Decimal, parse_constant=_refuse_constant)


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a valid JSON number")


__all__ = [
    "CLOUDEVENTS_BATCH_CONTENT_TYPE",
    "CLOUDEVENTS_CONTENT_TYPE",
    "CloudEvent",
    "CustomerId",
    "EventAttributes",
    "EventReader",
    "FieldError",
    "InvalidEvent",
    "TimeBounds",
    "ValidEvent",
    "ValidationRules",
    "decode_json",
    "field_errors",
    "validate_event",
]
