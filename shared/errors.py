"""The base of every TierFlow error: `retriable` tells a consumer to retry or dead-letter."""

from __future__ import annotations


class TierFlowError(Exception):
    retriable: bool = False
