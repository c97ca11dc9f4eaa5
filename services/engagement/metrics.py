from prometheus_client import Counter

CHANGES_APPLIED = Counter("tierflow_engagement_changes_applied", "Tier changes turned into outreach")
DUPLICATES = Counter("tierflow_engagement_duplicates", "Redelivered tier changes recognised and skipped")
ITEMS = Counter("tierflow_outreach_items", "Outreach items planned", ["kind", "status"])
EXPIRED = Counter("tierflow_outreach_expired", "Open items expired by the timer (SLA breaches)")
