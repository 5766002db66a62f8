"""The sliding window behind the subscribe form's limits."""

from __future__ import annotations

from mailer.web.ratelimit import RateLimit


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_limit_per_key_and_window_slides():
    clock = Clock()
    limit = RateLimit(2, 60, clock=clock)
    assert limit.hit("a") and limit.hit("a") and not limit.hit("a")
    assert limit.hit("b")  # each key counts on its own
    clock.now += 30
    assert not limit.hit("a")  # refused hits are not counted...
    clock.now += 30.5
    assert limit.hit("a")  # ...so the window frees up 60 s after the first two


def test_memory_stays_bounded():
    limit = RateLimit(1, 60, max_keys=100, clock=Clock())
    for number in range(1000):
        limit.hit(f"203.0.113.{number}")
    assert len(limit._hits) == 100
