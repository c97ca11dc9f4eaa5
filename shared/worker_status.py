"""`GET /v1/worker/status`: a worker's consumer lag and dead letters, as its own metrics count them."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends
from prometheus_client import REGISTRY
from pydantic import BaseModel, Field

from shared.auth import Principal, Role
from shared.http import require

OpsKey = Annotated[Principal, Depends(require(Role.OPS, Role.RM))]


class TopicStatus(BaseModel):
    topic: str
    lag: int = Field(description="Records on this process's partitions of the topic not yet processed")
    dead_lettered: int = Field(description="Records this process sent to the topic's dead-letter topic")


class WorkerStatus(BaseModel):
    service: str
    topics: list[TopicStatus]


def worker_status(service: str) -> WorkerStatus:
    """Read from the metrics this process exports, so the API and `/metrics` never disagree."""
    lag: dict[str, float] = {}
    dead: dict[str, float] = {}
    for family in REGISTRY.collect():
        if family.name == "tierflow_consumer_lag":
            for sample in family.samples:
                topic = sample.labels["topic"]
                lag[topic] = lag.get(topic, 0) + sample.value
        elif family.name == "tierflow_dead_lettered":
            for sample in family.samples:
                if sample.name.endswith("_total"):
                    dead[sample.labels["topic"]] = sample.value
    topics = [
        TopicStatus(topic=topic, lag=int(lag.get(topic, 0)), dead_lettered=int(dead.get(topic, 0)))
        for topic in sorted(set(lag) | set(dead))
    ]
    return WorkerStatus(service=service, topics=topics)


def worker_status_router(service: str) -> APIRouter:
    router = APIRouter(prefix="/v1", tags=["operations"])

    @router.get("/worker/status")
    async def status(_key: OpsKey) -> WorkerStatus:
        """Consumer lag and dead-letter counts of this process (since it started), by topic."""
        return worker_status(service)

    return router
