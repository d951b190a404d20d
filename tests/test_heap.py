"""What the bot tells the garbage collector once it has started (bot/heap.py)."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest

from bot.heap import freeze_startup_objects


@pytest.fixture
def unfrozen_afterwards() -> Iterator[None]:
    yield
    gc.unfreeze()


@pytest.mark.usefixtures("unfrozen_afterwards")
def test_objects_alive_at_the_start_are_left_out_of_later_collections() -> None:
    kept = [[] for _ in range(1000)]  # lists, unlike bare objects, are tracked
    freeze_startup_objects()
    assert gc.get_freeze_count() >= len(kept)
    assert gc.get_count()[0] < 100  # what the collector still tracks is what came after


@pytest.mark.usefixtures("unfrozen_afterwards")
def test_garbage_of_the_start_is_collected_before_the_rest_is_frozen() -> None:
    class Cycle:
        other: object = None

    first, second = Cycle(), Cycle()
    first.other, second.other = second, first
    gone = weakref.ref(first)
    del first, second
    freeze_startup_objects()
    assert gone() is None
