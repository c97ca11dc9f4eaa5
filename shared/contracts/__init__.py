"""Wire contracts: the CloudEvents envelope and every payload TierFlow reads or writes."""
