from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from shared.contracts.envelope import InvalidEvent, ValidationRules, decode_json, validate_event
from shared.contracts.inbound import INBOUND_DATA_MODELS
from tests.infra import REPO
from tierflow.simulate import Bank, events, with_faults

END = "2026-11-01T00:00:00+00:00"


def simulate(tmp_path: Path, name: str, *extra: str) -> Path:
    out = tmp_path / name
    subprocess.run(
        [
            sys.executable,
            "-m",
            "tierflow.cli",
            "simulate",
            "--customers",
            "300",
            "--end",
            END,
            "--out",
            str(out),
            *extra,
        ],
        check=True,
        cwd=REPO,
        capture_output=True,
    )
    return out


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_the_same_seed_gives_the_same_bank_and_another_seed_another(tmp_path: Path) -> None:
    first = simulate(tmp_path, "a.jsonl", "--seed", "7")
    second = simulate(tmp_path, "b.jsonl", "--seed", "7")
    other = simulate(tmp_path, "c.jsonl", "--seed", "8")
    assert digest(first) == digest(second)
    assert digest(first) != digest(other)
    assert len(first.read_text().splitlines()) > 300


def test_every_simulated_event_is_valid_against_the_contract() -> None:
    rules = ValidationRules(datetime.now(UTC), timedelta(minutes=5), "CNY".__eq__, INBOUND_DATA_MODELS)
    bank = Bank(customers=200, events_per_customer=15, start=datetime(2025, 11, 1, tzinfo=UTC))
    produced = list(events(bank))
    for event in produced:
        validate_event(decode_json(json.dumps(event).encode()), rules)
    assert {e["type"] for e in produced} == set(INBOUND_DATA_MODELS)


def test_faults_add_invalid_events_and_resends_without_losing_good_ones() -> None:
    rules = ValidationRules(datetime.now(UTC), timedelta(minutes=5), "CNY".__eq__, INBOUND_DATA_MODELS)
    bank = Bank(customers=200, events_per_customer=15, start=datetime(2025, 11, 1, tzinfo=UTC))
    clean = list(events(bank))
    faulty = list(with_faults(iter(clean), invalid_rate=0.05, duplicate_rate=0.05, seed=1))
    invalid = [e for e in faulty if e["id"].endswith("-invalid")]
    for event in invalid:
        try:
            validate_event(decode_json(json.dumps(event).encode()), rules)
        except InvalidEvent:
            continue
        raise AssertionError(f"{event['id']} should be invalid")
    good = [e for e in faulty if not e["id"].endswith("-invalid")]
    assert {e["id"] for e in good} == {e["id"] for e in clean}
    assert len(good) > len(clean)  # some were sent twice
    assert 0.02 < len(invalid) / len(clean) < 0.08
