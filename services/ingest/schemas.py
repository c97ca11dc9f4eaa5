"""Typed response bodies of the ingest API."""

from __future__ import annotations

from pydantic import BaseModel


class Accepted(BaseModel):
    accepted: int
    topic: str
    ids: list[str]
