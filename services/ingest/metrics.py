from prometheus_client import Counter, Gauge

EVENTS_ACCEPTED = Counter(
    "tierflow_ingest_events_accepted_total", "Events acknowledged by the broker", ["type"]
)
REQUESTS_REJECTED = Counter(
    "tierflow_ingest_requests_rejected_total", "Intake requests refused for bad input", ["reason"]
)
REQUESTS_IN_FLIGHT = Gauge("tierflow_ingest_requests_in_flight", "Intake requests being worked on now")
MEMORY_RESERVED = Gauge(
    "tierflow_ingest_memory_reserved_bytes", "Bytes charged against the memory budget for requests in flight"
)
REQUESTS_SHED = Counter(
    "tierflow_ingest_requests_shed_total", "Intake requests answered 429 because ingest was at its limit"
)
