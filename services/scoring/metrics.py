from prometheus_client import Counter, Histogram

EVENTS_APPLIED = Counter(
    "tierflow_events_applied", "Events whose effects are committed (a duplicate is not applied twice)"
)
DUPLICATES = Counter("tierflow_events_duplicate", "Redelivered or resent events recognised and skipped")
TIER_CHANGES = Counter("tierflow_tier_changes", "Tier or stage changes recorded", ["direction"])
REVIEWS = Counter("tierflow_reviews", "Customers re-evaluated by the time-driven review")
BATCH_SECONDS = Histogram("tierflow_scoring_batch_seconds", "Time to apply and commit one micro-batch")
STATES_WRITTEN = Counter("tierflow_scoring_states_written", "Customer state rows written by micro-batches")
LABEL_CHANGES = Counter(
    "tierflow_label_changes",
    "Customers entering or leaving a label (events, reviews, policy activations)",
    ["label", "change"],
)
HOUSEHOLD_CONTRIBUTIONS = Counter(
    "tierflow_household_contributions",
    "Household contributions the household stage consumed: folded, or a repeat or stale one skipped",
    ["outcome"],
)
RECORDS_READ_IN_FULL = Counter(
    "tierflow_scoring_records_read_in_full",
    "Consumed records the one-pass reader left to the full decode (refused ones, amounts written as "
    "JSON numbers, records over 4 KiB): each costs about twice the CPU of a record read in one pass",
)
