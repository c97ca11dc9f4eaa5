"""What a candidate policy would do to the current customers, without changing anything."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TypeVar

from services.scoring.domain.customer import CustomerState
from services.scoring.domain.evaluation import evaluate
from services.scoring.domain.policy import Policy

SAMPLE_SIZE = 5
_Key = TypeVar("_Key")


@dataclass
class Move:
    count: int = 0
    sample: list[str] = field(default_factory=list)


@dataclass
class Simulation:
    customers: int = 0
    tiers: Counter[str] = field(default_factory=Counter)
    stages: Counter[str] = field(default_factory=Counter)
    tier_moves: dict[tuple[str, str], Move] = field(default_factory=dict)
    stage_moves: dict[tuple[str, str], Move] = field(default_factory=dict)
    # Per label: customers who would hold it, and how many would enter or leave it.
    labels: Counter[str] = field(default_factory=Counter)
    label_entries: dict[str, Move] = field(default_factory=dict)
    label_exits: dict[str, Move] = field(default_factory=dict)


def simulate(
    simulation: Simulation, states: Iterable[tuple[CustomerState, datetime]], candidate: Policy
) -> None:
    """Add these customers to the tally: their decision under `candidate` at the moment paired
    with each (its own clock) against the current one."""
    for state, now in states:
        if state.decision is None:
            continue
        proposed = evaluate(state.features, candidate, now, state.decision, state.override)
        simulation.customers += 1
        simulation.tiers[proposed.tier.value] += 1
        simulation.stages[proposed.stage.value] += 1
        _move(simulation.tier_moves, state.decision.tier.value, proposed.tier.value, state.customer_id)
        _move(simulation.stage_moves, state.decision.stage.value, proposed.stage.value, state.customer_id)
        held, proposed_labels = set(state.decision.label_names), proposed.label_names
        simulation.labels.update(proposed_labels)
        for name in proposed_labels:
            if name not in held:
                _count(simulation.label_entries, name, state.customer_id)
        for name in held.difference(proposed_labels):
            _count(simulation.label_exits, name, state.customer_id)


def _move(moves: dict[tuple[str, str], Move], before: str, after: str, customer_id: str) -> None:
    _count(moves, (before, after), customer_id)


def _count(moves: dict[_Key, Move], key: _Key, customer_id: str) -> None:
    move = moves.setdefault(key, Move())
    move.count += 1
    if len(move.sample) < SAMPLE_SIZE:
        move.sample.append(customer_id)
