"""Each service process tunes Python's cyclic garbage collector once, before it starts working."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from shared.service import tune_garbage_collector
from shared.settings import Settings


@pytest.fixture
def collector_restored() -> Iterator[None]:
    threshold = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*threshold)


@pytest.mark.usefixtures("collector_restored")
def test_the_default_settings_raise_the_first_threshold_and_freeze_what_start_up_made() -> None:
    defaults = Settings.model_fields
    made_at_start = [[n] for n in range(10)]
    tune_garbage_collector(defaults["gc_gen0_threshold"].default, defaults["gc_freeze_at_start"].default)
    assert gc.get_threshold()[0] == 50_000
    # Frozen, they are out of the collector's sight: no collection walks them.
    walked = {id(tracked) for tracked in gc.get_objects()}
    assert not any(id(made) in walked for made in made_at_start)
    made_after = [0]
    assert id(made_after) in {id(tracked) for tracked in gc.get_objects()}


@pytest.mark.usefixtures("collector_restored")
def test_cpythons_own_behaviour_can_be_asked_for() -> None:
    older = gc.get_threshold()[1:]
    tune_garbage_collector(700, freeze=False)
    assert gc.get_threshold() == (700, *older)
    assert gc.get_freeze_count() == 0
