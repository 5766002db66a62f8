"""Sending no faster than the provider allows, across every connection and every send of a process.

Each message books its turn under a lock and then waits for it without the lock,
so a waiter that is stopped gives up its turn without holding anyone else up
(a turn given up stays spent: the limits err on the slow side).

Per second: turns are spaced evenly (a bucket holding one token), so no burst
ever exceeds the rate, even after an idle spell. Per hour: a sliding window of the
last `per_hour` turns, so no 3600-second span holds more than `per_hour`. The
clock and the sleep are parameters so tests need not wait.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Iterable

HOUR = 3600.0


class RateLimiter:
    def __init__(self, *, per_second: float = 0.0, per_hour: int = 0,
                 clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], object] | None = None,
                 sent_recently: Iterable[float] = ()) -> None:
        """`sent_recently`: clock times of messages already sent in the last hour (by an earlier run)."""
        self.per_second = per_second
        self.per_hour = per_hour
        self.clock = clock
        self.sleep = sleep
        self._lock = threading.Lock()
        # Turn n of a spell is at origin + n / per_second: computed, not accumulated, so no drift.
        self._origin, self._count = clock(), 0
        self._next = self._origin
        self._window: deque[float] = deque(sorted(sent_recently)[-per_hour:] if per_hour else (), maxlen=per_hour or None)

    @property
    def limited(self) -> bool:
        return bool(self.per_second or self.per_hour)

    def acquire(self, cancelled: threading.Event | None = None) -> bool:
        """Wait for the turn to send one message; False if `cancelled` was set first."""
        if not self.limited:
            return True
        with self._lock:
            turn = self._book(self.clock())
        cancelled = cancelled or threading.Event()
        while (wait := turn - self.clock()) > 0 and not cancelled.is_set():
            (self.sleep or cancelled.wait)(wait)
        return not cancelled.is_set()

    def _book(self, now: float) -> float:
        """The earliest time the limits allow the next message, taken (the lock is held)."""
        turn = max(now, self._next)
        if self.per_hour and len(self._window) == self.per_hour:
            turn = max(turn, self._window[0] + HOUR)
        if self.per_second:
            if turn > self._next:  # not straight after the previous turn: a new spell starts
                self._origin, self._count = turn, 0
            self._count += 1
            self._next = self._origin + self._count / self.per_second
        if self.per_hour:
            self._window.append(turn)
        return turn
