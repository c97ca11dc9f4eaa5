"""Wires the scoring service."""

from __future__ import annotations

from fastapi import FastAPI

from shared.placeholder import build_placeholder_app
from shared.settings import Settings

PURPOSE = "Recomputes each customer's tier and stage on every event and publishes tier changes."


def build_app(settings: Settings) -> FastAPI:
    return build_placeholder_app("scoring", settings, PURPOSE)
