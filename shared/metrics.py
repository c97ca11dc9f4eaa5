"""Prometheus metrics every TierFlow process exports on `/metrics`."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

HTTP_REQUESTS = Counter(
    "tierflow_http_requests_total", "HTTP requests answered", ["method", "route", "status"]
)
HTTP_LATENCY = Histogram(
    "tierflow_http_request_duration_seconds", "HTTP request latency", ["method", "route"]
)
RECORDS_CONSUMED = Counter("tierflow_records_consumed_total", "Kafka records read by a worker", ["topic"])
DEAD_LETTERED = Counter("tierflow_dead_lettered_total", "Records sent to a dead-letter topic", ["topic"])
CONSUMER_LAG = Gauge(
    "tierflow_consumer_lag",
    "Records on an assigned partition not yet processed (high watermark minus position)",
    ["group", "topic", "partition"],
)
CONSUMER_ASSIGNMENTS = Counter(
    "tierflow_consumer_assignments_total",
    "Partition assignments a worker received: one at start, one more per rebalance it took part in",
    ["group"],
)
CONSUMER_SPLIT_POLLS = Counter(
    "tierflow_consumer_split_polls_total",
    "Polls over several partitions a worker could not apply in one call and applied partition by"
    " partition instead: a record that would not decode (undecodable) or a call that failed (failed)",
    ["group", "cause"],
)
OUTBOX_SET_ASIDE = Gauge(
    "tierflow_outbox_set_aside",
    "Outbox records the broker refused for good, set aside in <schema>.outbox_rejected",
    ["schema"],
)
AUTH_FAILURES = Counter(
    "tierflow_auth_failures_total",
    "Requests refused at authentication: no key (missing), an unknown key (invalid), or an address"
    " refused after too many failures (throttled)",
    ["reason"],
)
ERASURES = Counter(
    "tierflow_erasures_total", "Customers whose personal data this service erased", ["service"]
)
