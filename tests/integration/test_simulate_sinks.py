"""`tierflow simulate` into a running ingest and straight onto the topic."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from shared.topics import Topics
from tests.infra import INGEST_KEY, Infra, create_topics, start_service
from tests.kafka_reader import read_messages

pytestmark = pytest.mark.integration
END = "2026-11-01T00:00:00+00:00"


def run_simulate(infra: Infra, prefix: str, *target: str) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "tierflow.cli", "simulate", "--customers", "60", "--end", END,
         "--invalid-rate", "0.05", "--duplicate-rate", "0.05", "--seed", "3", *target],
        env=infra.env(TIERFLOW_TOPIC_PREFIX=prefix), capture_output=True, text=True, check=True,
    )  # fmt: skip
    return result.stdout


def test_through_ingest_invalid_events_are_refused_and_every_good_one_arrives(infra: Infra) -> None:
    prefix = "sim-http."
    create_topics(infra.settings(TIERFLOW_TOPIC_PREFIX=prefix))
    ingest = start_service(infra, "ingest", TIERFLOW_TOPIC_PREFIX=prefix)
    try:
        summary = run_simulate(infra, prefix, "--to-ingest", ingest.base_url, "--key", INGEST_KEY)
    finally:
        ingest.stop()
    sent = int(summary.split()[1].replace(",", ""))
    refused = int(summary.split("(")[1].split()[0].replace(",", ""))
    messages = read_messages(infra.bootstrap_servers, Topics(prefix).bank_events)
    assert len(messages) == sent
    assert refused > 0
    assert not [m for m in messages if json.loads(m.value)["id"].endswith("-invalid")]


def test_straight_to_the_topic_everything_is_produced_for_consumers_to_validate(infra: Infra) -> None:
    prefix = "sim-topic."
    create_topics(infra.settings(TIERFLOW_TOPIC_PREFIX=prefix))
    summary = run_simulate(infra, prefix, "--to-topic")
    sent = int(summary.split()[1].replace(",", ""))
    messages = read_messages(infra.bootstrap_servers, Topics(prefix).bank_events)
    assert len(messages) == sent
    assert [m for m in messages if json.loads(m.value)["id"].endswith("-invalid")]
