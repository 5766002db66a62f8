"""Sending no faster than the provider allows, across every connection of a process.

Per second: a token bucket holding at most one token, so messages are spaced
evenly and no burst ever exceeds the rate. Per hour: a sliding window of the
times of the last `per_hour` messages, so no 3600-second span holds more than
`per_hour`. The clock and the sleep are parameters so tests need not wait.
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
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self.sleep = sleep or self._stop.wait
        # Message n of a spell goes at origin + n / per_second: computed, not accumulated, so no drift.
        self._origin, self._count = clock(), 0
        self._next = self._origin
        self._window: deque[float] = deque(sorted(sent_recently)[-per_hour:] if per_hour else (), maxlen=per_hour or None)

    @property
    def limited(self) -> bool:
        return bool(self.per_second or self.per_hour)

    def acquire(self) -> bool:
        """Wait for permission to send one message; False if `cancel()` was called meanwhile."""
        if not self.limited:
            return True
        with self._lock:  # one waiter at a time keeps the order fair and the arithmetic simple
            while not self._stop.is_set():
                now = self.clock()
                ready = self._next
                if self.per_hour and len(self._window) >= self.per_hour:
                    ready = max(ready, self._window[0] + HOUR)
                if now >= ready:
                    if self.per_second:
                        if now > self._next:  # idle: a new spell starts now (a bucket of one token)
                            self._origin, self._count = now, 0
                        self._count += 1
                        self._next = self._origin + self._count / self.per_second
                    if self.per_hour:
                        self._window.append(now)
                    return True
                self.sleep(ready - now)
            return False

    def cancel(self) -> None:
        """Wake every waiter; used when a send stops."""
        self._stop.set()
