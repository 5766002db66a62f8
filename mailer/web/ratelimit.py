"""In-memory sliding-window rate limits for the public subscribe form.

Held in the process: right for one `mailer serve` (or `mailer run`) process,
which is how the pages are meant to run; several processes would each count
on their own. The limits reset when the process restarts.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable


class RateLimit:
    """At most `limit` events per key in any `window` seconds."""

    def __init__(self, limit: int, window: float, *, max_keys: int = 50_000,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.limit = limit
        self.window = window
        self.max_keys = max_keys
        self.clock = clock
        self._hits: OrderedDict[str, deque[float]] = OrderedDict()
        self._lock = threading.Lock()

    def hit(self, key: str) -> bool:
        """Count one event for `key`; False when it is over the limit (the event is then not counted)."""
        now = self.clock()
        with self._lock:
            hits = self._hits.pop(key, None) or deque()
            while hits and hits[0] <= now - self.window:
                hits.popleft()
            allowed = len(hits) < self.limit
            if allowed:
                hits.append(now)
            self._hits[key] = hits  # most recently used last
            while len(self._hits) > self.max_keys:  # memory stays bounded under a flood of keys
                self._hits.popitem(last=False)
            return allowed


HOUR = 3600.0
DAY = 24 * HOUR


class SubscribeGuard:
    """The abuse limits of the subscribe form, in one place.

    - per client IP: at most 10 form posts an hour (more gets a "try later" page);
    - per address: at most 3 confirmation emails a day (more are silently not sent,
      so the page still answers the same whether or not the address is known);
    - an address that unsubscribed in the last day, or ever complained, gets no
      email on its first request: only when the same address is asked for again
      within a day ("asks again"). Someone typing another's address once cannot
      undo their unsubscribe or mail them; the real person, who sees no email,
      sends the form once more (the page tells everyone to do so if no email comes).
    """

    def __init__(self) -> None:
        self.per_ip = RateLimit(10, HOUR)
        self.per_address = RateLimit(3, DAY)
        self._first_asks = RateLimit(1, DAY)

    def first_ask(self, address_key: str) -> bool:
        """True for the first request for this address in a day (the one to hold back)."""
        return self._first_asks.hit(address_key)
