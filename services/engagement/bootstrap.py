"""Wires the engagement service."""

from __future__ import annotations

from fastapi import FastAPI

from shared.placeholder import build_placeholder_app
from shared.settings import Settings

PURPOSE = "Turns tier and stage changes into tier-specific outreach for relationship managers."


def build_app(settings: Settings) -> FastAPI:
    return build_placeholder_app("engagement", settings, PURPOSE)
