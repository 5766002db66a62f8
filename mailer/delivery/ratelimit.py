"""Sending no faster than the provider counts, across every connection and every send of a process.

A provider counts the messages it *accepts* in a sliding window, and acceptances bunch:
messages started exactly 50 ms apart finish whenever the server answers each one. So a
limit of R a second is kept as the server sees it: a message may start only once the
message R turns before it (and every one before that) has been answered, and a second
has passed since. The server accepts a message after it starts and before we hear the
answer, so no second at the server ever holds more than R. The same holds for the hour.
The cost is the round trip: R messages per (1 s + one answer's time), erring on the slow side.

Within that, turns are spaced evenly (1/R apart: a bucket holding one token), so no burst
follows an idle spell. A fractional rate below one a second is one message per 1/R
seconds; above one, the whole number (2.5 a second allows 2 in any second).

Each message books its turn under a lock and then waits for it without the lock, so a
waiter that is stopped gives up its turn without holding anyone else up (a turn given up
stays spent). The clock and the sleep are parameters so tests need not wait.

    with limiter.turn(stop) as allowed:   # waits for the turn (False: stopped meanwhile)
        if allowed:
            transport.send(...)           # leaving the block says the server has answered
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from types import TracebackType

HOUR = 3600.0


@dataclass(slots=True)
class _Slot:
    answered_at: float | None = None  # None while the message is on its way


@dataclass(slots=True)
class _Window:
    """At most `size` acceptances in any `period` seconds: the last `size` turns, and the latest answer before them."""

    size: int
    period: float
    recent: deque[_Slot] = field(default_factory=deque)
    floor: float = -math.inf


class Turn:
    """A booked turn: `with` it; the block's end records when the server answered."""

    __slots__ = ("_limiter", "_slot", "allowed")

    def __init__(self, limiter: RateLimiter, slot: _Slot | None, allowed: bool) -> None:
        self._limiter, self._slot, self.allowed = limiter, slot, allowed

    def __enter__(self) -> bool:
        return self.allowed

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        if self._slot is not None:
            self._limiter._answered(self._slot, sent=self.allowed)


class RateLimiter:
    def __init__(self, *, per_second: float = 0.0, per_hour: int = 0,
                 clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], object] | None = None,
                 sent_recently: Iterable[float] = ()) -> None:
        """`sent_recently`: clock times of messages already sent in the last hour (by an earlier run)."""
        self.per_second = per_second
        self.per_hour = per_hour
        self.clock = clock
        self.sleep = sleep
        self._booking = threading.Lock()  # one booker at a time, in turn order
        self._answers = threading.Condition()  # guards the windows; notified when a server answers
        # Turn n of a spell is at origin + n / per_second: computed, not accumulated, so no drift.
        self._origin, self._count = clock(), 0
        self._next = self._origin
        self._windows: list[_Window] = []
        if per_second:
            size = max(1, math.floor(per_second))
            self._windows.append(_Window(size, size / per_second if per_second < 1 else 1.0))
        if per_hour:
            hour = _Window(per_hour, HOUR)
            hour.recent.extend(_Slot(at) for at in sorted(sent_recently)[-per_hour:])
            self._windows.append(hour)

    @property
    def limited(self) -> bool:
        return bool(self._windows)

    def turn(self, cancelled: threading.Event | None = None) -> Turn:
        """Wait for the turn to send one message; `allowed` is False if `cancelled` was set first."""
        if not self.limited:
            return Turn(self, None, True)
        cancelled = cancelled or threading.Event()
        with self._booking:
            if not self._wait_for_answers(cancelled):
                return Turn(self, None, False)
            at, slot = self._book(self.clock())
        while (wait := at - self.clock()) > 0 and not cancelled.is_set():
            (self.sleep or cancelled.wait)(wait)
        allowed = not cancelled.is_set()
        if not allowed:
            self._answered(slot, sent=False)
        return Turn(self, slot if allowed else None, allowed)

    def _wait_for_answers(self, cancelled: threading.Event) -> bool:
        """Until the turn each window looks back to has been answered; False if cancelled first."""
        with self._answers:
            while any(len(w.recent) == w.size and w.recent[0].answered_at is None for w in self._windows):
                if cancelled.is_set():
                    return False
                self._answers.wait(0.05)
        return True

    def _book(self, now: float) -> tuple[float, _Slot]:
        """The earliest time the limits allow the next message, taken (booking is serialised)."""
        slot = _Slot()
        with self._answers:
            at = max(now, self._next)
            for window in self._windows:
                if len(window.recent) == window.size:
                    window.floor = max(window.floor, window.recent.popleft().answered_at or -math.inf)
                at = max(at, window.floor + window.period)
                window.recent.append(slot)
        if self.per_second:
            if at > self._next:  # not straight after the previous turn: a new spell starts
                self._origin, self._count = at, 0
            self._count += 1
            self._next = self._origin + self._count / self.per_second
        return at, slot

    def _answered(self, slot: _Slot, *, sent: bool) -> None:
        with self._answers:
            slot.answered_at = self.clock() if sent else -math.inf  # a turn given up sent nothing
            self._answers.notify_all()
