"""Typed, frozen settings read once from the environment and passed down."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, ClassVar, Literal, Self

from pydantic import AliasChoices, AwareDatetime, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from shared.auth import ApiKeyring, parse_api_keys
from shared.clock import Clock, ClockMode

CURRENCY_PATTERN = r"^[A-Z]{3}$"


class KafkaSecurityProtocol(StrEnum):
    PLAINTEXT = "PLAINTEXT"
    SSL = "SSL"
    SASL_PLAINTEXT = "SASL_PLAINTEXT"
    SASL_SSL = "SASL_SSL"


class LogFormat(StrEnum):
    JSON = "json"
    CONSOLE = "console"


class Settings(BaseSettings):
    """Everything a TierFlow process can be told; defaults run on one laptop."""

    model_config = SettingsConfigDict(env_prefix="TIERFLOW_", frozen=True, extra="ignore")

    host: str = "127.0.0.1"
    ingest_port: int = Field(default=8001, ge=1, le=65535)
    scoring_port: int = Field(default=8002, ge=1, le=65535)
    engagement_port: int = Field(default=8003, ge=1, le=65535)
    feedback_port: int = Field(default=8004, ge=1, le=65535)
    console_port: int = Field(default=8005, ge=1, le=65535)
    # Where the console reaches the four services; empty: http://HOST:PORT of this machine.
    ingest_url: str = Field(default="", max_length=500)
    scoring_url: str = Field(default="", max_length=500)
    engagement_url: str = Field(default="", max_length=500)
    feedback_url: str = Field(default="", max_length=500)
    # A console session ends after this long without a request, and this long after sign-in.
    console_session_idle_s: int = Field(default=1_800, ge=60, le=86_400)
    console_session_max_s: int = Field(default=28_800, ge=300, le=604_800)

    database_url: SecretStr = Field(
        default=SecretStr("postgresql+asyncpg://tierflow@127.0.0.1:55432/tierflow"),
        validation_alias=AliasChoices("DATABASE_URL", "TIERFLOW_DATABASE_URL"),
    )
    database_pool_size: int = Field(default=5, ge=1, le=100)
    database_ssl: bool = False

    kafka_bootstrap_servers: str = Field(
        default="127.0.0.1:9092",
        validation_alias=AliasChoices("KAFKA_BOOTSTRAP_SERVERS", "TIERFLOW_KAFKA_BOOTSTRAP_SERVERS"),
    )
    kafka_security_protocol: KafkaSecurityProtocol = KafkaSecurityProtocol.PLAINTEXT
    kafka_sasl_mechanism: str | None = None
    kafka_sasl_username: str | None = None
    kafka_sasl_password: SecretStr | None = None
    kafka_ssl_cafile: str | None = None
    # Off by default: the embedded broker cannot issue producer ids. Turn on for Apache Kafka.
    kafka_enable_idempotence: bool = False
    kafka_publish_timeout_s: float = Field(default=10.0, gt=0, le=120)
    kafka_request_timeout_ms: int = Field(default=15_000, ge=1_000)
    topic_prefix: str = Field(default="", pattern=r"^[A-Za-z0-9._-]*$", max_length=100)
    topic_partitions: int = Field(default=8, ge=1, le=1024)
    topic_replication_factor: int = Field(default=1, ge=1, le=10)

    api_keys: Annotated[ApiKeyring, NoDecode] = Field(default_factory=ApiKeyring)

    base_currency: str = Field(default="CNY", pattern=CURRENCY_PATTERN)
    fx_rates: dict[str, Decimal] = Field(default_factory=dict)

    max_body_bytes: int = Field(default=10 * 1024 * 1024, ge=1024)
    max_batch_events: int = Field(default=5_000, ge=1, le=100_000)
    max_future_skew_s: int = Field(default=300, ge=0)
    retry_after_s: int = Field(default=5, ge=1)
    # -- Ingest admission and clock tolerance ---------------------------------------------------
    # Requests ingest works on at once; more get 429 + Retry-After.
    ingest_max_in_flight: int = Field(default=32, ge=1, le=10_000)
    # What ingest may hold in memory per byte of body it works on, at most. Measured with
    # tracemalloc (tests/unit/test_bodies.py) within the nesting limit of 16
    # (shared.bodies.MAX_JSON_DEPTH): decoding costs up to 45.8 times the text (arrays nested 15
    # deep in a top-level array, `[[[...]]],...`, with one non-BMP character making the decoded
    # text four bytes a character), objects nested alike 40.3, `[[1e1],...]` 37, `[1e1,...]` 29,
    # `[{},...]` 33, `[[],...]` 23; the body itself is one more. Validated events and the records
    # published from them cost less (under 20 times), and one event's data is bounded, so its
    # errors are too. 56 leaves a fifth for the allocator.
    DECODED_BYTES_PER_BODY_BYTE: ClassVar[int] = 56
    # Bytes ingest may hold for the requests it works on. Each part of a body is charged its size
    # times DECODED_BYTES_PER_BODY_BYTE as it arrives; a request whose next part would pass the
    # budget gets 429 + Retry-After. The default holds one body of the default 10 MiB limit, or
    # ten of 1 MiB, at once.
    ingest_memory_budget_bytes: int = Field(default=560 * 1024 * 1024, ge=1024 * 1024)
    # How long ingest waits for a request's whole body; a slower one gets 408. A client that
    # stalls mid-body holds its place among the requests in flight no longer than this.
    ingest_body_timeout_s: float = Field(default=30.0, gt=0, le=3_600)
    # Requests each API key may send to ingest a second on average, and at once: a key over it gets
    # 429 + Retry-After. The benchmark's four clients share one key and post batches of 500, about
    # 3 a second at its 1,600 events a second (docs/benchmarks.md); the demo posts fewer.
    ingest_key_rate_per_s: float = Field(default=200.0, gt=0, le=1_000_000)
    ingest_key_burst: int = Field(default=400, ge=1, le=1_000_000)
    # How far a consuming host's clock may run behind ingest's: consumers re-check the future-skew
    # rule with max_future_skew_s plus this, so they never dead-letter an event ingest accepted.
    consumer_clock_tolerance_s: int = Field(default=300, ge=0, le=86_400)
    # A statement timed out this many times in a row at the same offset while the database still
    # answers: the records are at fault, and the ones that still time out are dead-lettered.
    consumer_timeout_retries: int = Field(default=5, ge=1, le=1000)
    # Allocations the cyclic garbage collector lets pass before it walks the youngest objects
    # again; the default of CPython 3.11 to 3.13 is 700. Every event allocates a customer's
    # state, its features and its decision, few of which form cycles, and a collection at 700
    # walks far more than it frees: at 50,000 scoring applies 10-20% more events a second
    # (docs/benchmarks.md).
    gc_gen0_threshold: int = Field(default=50_000, ge=100, le=10_000_000)
    # What a process made before its work begins (modules, the app and its routes) is moved out
    # of the collector's sight once, so no later collection walks it again.
    gc_freeze_at_start: bool = True

    @model_validator(mode="after")
    def _memory_budget_holds_a_largest_body(self) -> Self:
        needed = self.max_body_bytes * self.DECODED_BYTES_PER_BODY_BYTE
        if self.ingest_memory_budget_bytes < needed:
            raise ValueError(
                f"TIERFLOW_INGEST_MEMORY_BUDGET_BYTES must be at least {needed}: one body of"
                f" TIERFLOW_MAX_BODY_BYTES ({self.max_body_bytes}) costs up to"
                f" {self.DECODED_BYTES_PER_BODY_BYTE} times its size once decoded"
            )
        return self

    @property
    def max_future_skew(self) -> timedelta:
        """How far in the future an event's or a payload's time may be when it arrives."""
        return timedelta(seconds=self.max_future_skew_s)

    @property
    def consumer_max_future_skew(self) -> timedelta:
        """The future-skew bound consumers re-check events against: ingest's plus the tolerance."""
        return self.max_future_skew + timedelta(seconds=self.consumer_clock_tolerance_s)

    # Background loops this process runs (consumer, review, outbox-relay, expiry, maintenance); empty
    # runs all.
    loops: Annotated[frozenset[str], NoDecode] = frozenset()

    scoring_clock: Literal["wall", "event", "fixed"] = "wall"
    # With the fixed clock every decision is taken as of this instant (as-of restatements).
    scoring_as_of: AwareDatetime | None = None
    # Engagement's and feedback's clocks; unset, each follows TIERFLOW_SCORING_CLOCK, so one
    # setting puts the whole bank on one calendar. The fixed clock of any of them stands at
    # TIERFLOW_SCORING_AS_OF.
    engagement_clock: Literal["wall", "event", "fixed"] | None = None
    feedback_clock: Literal["wall", "event", "fixed"] | None = None
    scoring_group: str = Field(default="tierflow-scoring", max_length=200)
    scoring_batch_size: int = Field(default=2_000, ge=1, le=50_000)
    # The household stage folds household.contributions.v1 in a group of its own.
    household_group: str = Field(default="tierflow-households", max_length=200)
    household_batch_size: int = Field(default=1_000, ge=1, le=50_000)
    # A household larger than this refuses new members (dead letter): a bad feed putting many
    # customers in one household must not make each of its folds and its API answer unbounded.
    household_max_members: int = Field(default=50, ge=2, le=1_000)
    # Decoded customer states a scoring process keeps between micro-batches (0 turns it off).
    scoring_state_cache_size: int = Field(default=100_000, ge=0, le=10_000_000)
    review_poll_s: float = Field(default=1.0, gt=0, le=3600)
    review_batch_size: int = Field(default=500, ge=1, le=50_000)
    # With the wall clock, customers of an events partition more records than this behind wait
    # for their review: time alone must not judge them before their events are applied.
    review_max_lag: int = Field(default=10_000, ge=0, le=100_000_000)
    engagement_group: str = Field(default="tierflow-engagement", max_length=200)
    # Tier changes engagement plans in one transaction.
    engagement_batch_size: int = Field(default=500, ge=1, le=50_000)
    # Outreach items the expiry timer closes in one transaction.
    expiry_batch_size: int = Field(default=500, ge=1, le=50_000)
    feedback_group: str = Field(default="tierflow-feedback", max_length=200)
    # Tier changes and survey requests feedback records in one transaction.
    feedback_batch_size: int = Field(default=1_000, ge=1, le=50_000)
    # Outbox rows each relay moves to the broker in one transaction.
    outbox_batch_size: int = Field(default=1_000, ge=1, le=50_000)

    # Delivery under failure: outages are waited out, records refused for good are set aside.
    # How long a worker waits for a pooled database connection before it counts as an outage.
    database_pool_timeout_s: float = Field(default=30.0, gt=0, le=600)
    # A consumer that has not polled for this long leaves its group. Workers keep polling (paused)
    # through outages, so only a single database call longer than this (the command timeout is
    # 60 s) makes one leave.
    kafka_max_poll_interval_ms: int = Field(default=300_000, ge=1_000)
    # How long the broker may hold a consumer's fetch that finds no record. Kafka answers as soon
    # as a record arrives, so there a short wait only adds fetches of an idle consumer; a broker
    # that answers only when the wait ends (the embedded one) delays every record by up to this.
    kafka_fetch_max_wait_ms: int = Field(default=50, ge=1, le=5_000)
    # Tries before the outbox relay sets aside a record the broker refuses for good (too large).
    outbox_max_attempts: int = Field(default=5, ge=1, le=1_000)

    # -- Every HTTP service ------------------------------------------------------------------------
    # A client address with this many failed authentications (no key or an unknown one) within
    # auth_failure_window_s gets 429 + Retry-After until the window ends.
    auth_failure_limit: int = Field(default=100, ge=1, le=1_000_000)
    auth_failure_window_s: float = Field(default=60.0, gt=0, le=86_400)
    # How long /readyz reuses its last answer, so probes do not load the database and broker.
    readiness_cache_s: float = Field(default=1.0, ge=0, le=60)

    # -- Bounded storage (docs/operations.md#bounded-storage) -----------------------------------
    # How far back from now an event's `time` may lie for a consumer to apply it, and how long its
    # duplicate marker is kept. The longest topic retention (30 days: the tier-change topic and the
    # dead letters a `tierflow dlq` may re-publish) plus the longest resend window (400 days: a
    # backfill of the 365 days the features look back, with five weeks to run it). An older event
    # is dead-lettered: its marker may be gone, so applying it could count it twice.
    applied_events_horizon: timedelta = Field(default=timedelta(days=430), gt=timedelta(0))
    # Width of one partition of the duplicate markers; a partition is dropped whole once all of
    # it lies before the horizon.
    applied_events_partition: timedelta = Field(default=timedelta(days=30), ge=timedelta(seconds=1))
    # How long each kind of record is kept before the maintenance loop deletes it.
    tier_history_retention: timedelta = Field(default=timedelta(days=5 * 365 + 1), gt=timedelta(0))
    audit_retention: timedelta = Field(default=timedelta(days=7 * 365 + 2), gt=timedelta(0))
    closed_outreach_retention: timedelta = Field(default=timedelta(days=2 * 365), gt=timedelta(0))
    survey_retention: timedelta = Field(default=timedelta(days=3 * 365), gt=timedelta(0))
    complaint_retention: timedelta = Field(default=timedelta(days=5 * 365 + 1), gt=timedelta(0))
    # How often each service's maintenance loop runs, and the rows it deletes per transaction.
    maintenance_interval_s: float = Field(default=3_600.0, gt=0, le=86_400)
    retention_batch_size: int = Field(default=5_000, ge=1, le=100_000)
    # The earliest event time bank.events.v1 still holds (unset: it has lost nothing). A replay
    # whose needed history starts earlier is refused rather than rebuilt from part of it.
    events_retained_from: AwareDatetime | None = None

    log_level: str = "INFO"
    log_format: LogFormat = LogFormat.JSON

    @model_validator(mode="after")
    def _markers_outlive_a_partition(self) -> Self:
        if self.applied_events_horizon < 2 * self.applied_events_partition:
            raise ValueError(
                "TIERFLOW_APPLIED_EVENTS_HORIZON must be at least twice TIERFLOW_APPLIED_EVENTS_PARTITION:"
                " markers are dropped a whole partition at a time"
            )
        return self

    @field_validator("api_keys", mode="before")
    @classmethod
    def _parse_api_keys(cls, value: object) -> object:
        if isinstance(value, str | SecretStr):
            raw = value.get_secret_value() if isinstance(value, SecretStr) else value
            return parse_api_keys(raw)
        return value

    @field_validator("loops", mode="before")
    @classmethod
    def _parse_loops(cls, value: object) -> object:
        if isinstance(value, str):
            return frozenset(name.strip() for name in value.split(",") if name.strip())
        return value

    @model_validator(mode="after")
    def _fixed_clock_needs_an_instant(self) -> Self:
        fixed = "fixed" in (self.scoring_clock, self.engagement_clock, self.feedback_clock)
        if fixed and self.scoring_as_of is None:
            raise ValueError("the fixed clock needs TIERFLOW_SCORING_AS_OF, an ISO time with an offset")
        return self

    @field_validator("fx_rates")
    @classmethod
    def _check_fx_rates(cls, rates: dict[str, Decimal]) -> dict[str, Decimal]:
        for code, rate in rates.items():
            if len(code) != 3 or not code.isalpha() or not code.isupper():
                raise ValueError(f"fx_rates key {code!r} is not an ISO 4217 currency code")
            if not rate.is_finite() or rate <= 0:
                raise ValueError(f"fx_rates[{code}] must be a positive decimal")
        return rates

    def clock_of(self, service: Literal["scoring", "engagement", "feedback"]) -> Clock:
        """The clock `service` runs on: its own setting, else scoring's."""
        own = {"scoring": None, "engagement": self.engagement_clock, "feedback": self.feedback_clock}[service]
        return Clock(ClockMode(own or self.scoring_clock), self.scoring_as_of)

    def port_of(self, service: str) -> int:
        ports: dict[str, int] = {
            "ingest": self.ingest_port,
            "scoring": self.scoring_port,
            "engagement": self.engagement_port,
            "feedback": self.feedback_port,
            "console": self.console_port,
        }
        return ports[service]

    def url_of(self, service: str) -> str:
        """Where `service` answers: its configured URL, else this host and its port."""
        configured: str = getattr(self, f"{service}_url")
        return configured.rstrip("/") or f"http://{self.host}:{self.port_of(service)}"

    def accepts_currency(self, code: str) -> bool:
        return code == self.base_currency or code in self.fx_rates
