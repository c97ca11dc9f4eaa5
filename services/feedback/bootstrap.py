"""Wires the feedback service."""

from __future__ import annotations

from fastapi import FastAPI

from shared.placeholder import build_placeholder_app
from shared.settings import Settings

PURPOSE = "Takes surveys and complaints and folds them back into tiers and playbook evaluation."


def build_app(settings: Settings) -> FastAPI:
    return build_placeholder_app("feedback", settings, PURPOSE)
