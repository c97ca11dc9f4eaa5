"""Scoring's cache of decoded states: bounded, least recently written out first."""

from __future__ import annotations

from services.scoring.domain.customer import CustomerState
from services.scoring.store import StateCache


def remember(cache: StateCache, *written: tuple[str, int]) -> None:
    cache.remember(dict(written), {cid: CustomerState.new(cid) for cid, _ in written})


def test_the_least_recently_written_state_leaves_first_and_the_bound_holds() -> None:
    cache = StateCache(3)
    remember(cache, ("A", 1), ("B", 1), ("C", 1))
    remember(cache, ("A", 2))  # A is the most recent now: B is the oldest
    remember(cache, ("D", 1))
    assert len(cache) == 3
    assert cache.versions(["A", "B", "C", "D"]) == [2, None, 1, 1]
    assert cache.state("A").customer_id == "A"
    remember(cache, ("E", 1), ("F", 1))
    assert cache.versions(["A", "C", "D", "E", "F"]) == [None, None, 1, 1, 1]


def test_a_cache_of_size_zero_keeps_nothing_and_a_forgotten_state_is_gone() -> None:
    empty = StateCache(0)
    remember(empty, ("A", 1))
    assert len(empty) == 0
    cache = StateCache(2)
    remember(cache, ("A", 1), ("B", 1))
    cache.forget("A")
    assert cache.versions(["A", "B"]) == [None, 1]


def test_a_full_cache_takes_a_long_stream_of_new_customers() -> None:
    cache = StateCache(1_000)
    for n in range(20_000):
        remember(cache, (f"C{n}", 1))
    assert len(cache) == 1_000
    assert cache.versions(["C18999", "C19000", "C19999"]) == [None, 1, 1]


def test_remembering_tells_how_many_states_left_to_keep_the_bound() -> None:
    cache = StateCache(2)
    written = {"A": 1, "B": 1}
    assert cache.remember(written, {cid: CustomerState.new(cid) for cid in written}) == 0
    written = {"C": 1, "D": 1, "A": 2}
    assert cache.remember(written, {cid: CustomerState.new(cid) for cid in written}) == 2
    assert cache.versions(["A", "B", "C", "D"]) == [2, None, None, 1]
    assert StateCache(0).remember({"A": 1}, {"A": CustomerState.new("A")}) == 0
