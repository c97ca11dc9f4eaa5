from prometheus_client import Counter

EVENTS_ACCEPTED = Counter(
    "tierflow_ingest_events_accepted_total", "Events acknowledged by the broker", ["type"]
)
REQUESTS_REJECTED = Counter(
    "tierflow_ingest_requests_rejected_total", "Intake requests refused for bad input", ["reason"]
)
