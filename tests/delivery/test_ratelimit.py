"""Rate limits, on a clock the test controls (no real waiting), and as a real SMTP server counts them."""

from __future__ import annotations

import random
import threading

import pytest

from mailer.delivery.engine import deliver
from mailer.delivery.ratelimit import RateLimiter
from tests.delivery.helpers import people


class Clock:
    """Time that moves only when someone sleeps."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.lock = threading.Lock()

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        with self.lock:
            self.now += seconds


def send_times(limiter: RateLimiter, clock: Clock, count: int, *, answer: float = 0.0) -> list[float]:
    """When each of `count` messages started; each takes `answer` seconds to be answered."""
    times = []
    for _ in range(count):
        with limiter.turn() as allowed:
            assert allowed
            times.append(clock.now)
            clock.sleep(answer)
    return times


def most_in_any_window(times: list[float], width: float) -> int:
    return max(sum(1 for t in times if start <= t < start + width) for start in times)


def test_no_limit_never_waits() -> None:
    clock = Clock()
    limiter = RateLimiter(clock=clock, sleep=clock.sleep)
    assert send_times(limiter, clock, 1000)[-1] == 1000.0


def test_per_second_spaces_messages_evenly() -> None:
    clock = Clock()
    limiter = RateLimiter(per_second=10, clock=clock, sleep=clock.sleep)
    times = send_times(limiter, clock, 101)
    assert times[-1] - times[0] == 10.0
    assert most_in_any_window(times, 1.0) == 10


def test_thirty_a_minute_is_never_exceeded() -> None:
    clock = Clock()
    limiter = RateLimiter(per_second=0.5, clock=clock, sleep=clock.sleep)
    times = send_times(limiter, clock, 120)
    assert most_in_any_window(times, 60.0) == 30


def test_an_idle_spell_does_not_allow_a_burst() -> None:
    clock = Clock()
    limiter = RateLimiter(per_second=2, clock=clock, sleep=clock.sleep)
    send_times(limiter, clock, 3)
    clock.now += 3600
    times = send_times(limiter, clock, 5)
    assert [t - times[0] for t in times] == [0.0, 0.5, 1.0, 1.5, 2.0]


def test_per_hour_is_a_sliding_window() -> None:
    clock = Clock()
    limiter = RateLimiter(per_hour=100, clock=clock, sleep=clock.sleep)
    times = send_times(limiter, clock, 250)
    assert times[99] == 1000.0 and times[100] == 4600.0 and times[200] == 8200.0
    assert most_in_any_window(times, 3600.0) == 100


def test_per_second_and_per_hour_together() -> None:
    clock = Clock()
    limiter = RateLimiter(per_second=5, per_hour=20, clock=clock, sleep=clock.sleep)
    times = send_times(limiter, clock, 40)
    assert most_in_any_window(times, 1.0) == 5
    assert most_in_any_window(times, 3600.0) == 20


def test_messages_sent_by_an_earlier_run_count_towards_the_hour() -> None:
    clock = Clock()
    limiter = RateLimiter(per_hour=10, clock=clock, sleep=clock.sleep, sent_recently=[clock.now - 1800] * 8)
    times = send_times(limiter, clock, 3)
    assert times == [1000.0, 1000.0, 1000.0 + 1800]


def test_limits_hold_across_threads() -> None:
    clock = Clock()
    limiter = RateLimiter(per_second=20, clock=clock, sleep=clock.sleep)
    times: list[float] = []
    lock = threading.Lock()

    def worker() -> None:
        for _ in range(25):
            with limiter.turn():
                with lock:
                    times.append(clock.now)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(times) == 100 and most_in_any_window(sorted(times), 1.0) <= 20


def test_cancelling_wakes_a_waiter_without_holding_up_others() -> None:
    limiter = RateLimiter(per_second=0.001)  # real clock: the second message would wait 1000 s
    with limiter.turn() as allowed:
        assert allowed
    cancelled = threading.Event()
    result: list[bool] = []
    waiter = threading.Thread(target=lambda: result.append(limiter.turn(cancelled).allowed))
    waiter.start()
    other = threading.Event()
    other_waiter = threading.Thread(target=lambda: result.append(limiter.turn(other).allowed))
    other_waiter.start()  # waits for its own turn, 2000 s away, without blocking the first
    cancelled.set()
    waiter.join(timeout=5)
    assert result == [False]
    other.set()
    other_waiter.join(timeout=5)
    assert result == [False, False]


def test_a_turn_given_up_stays_spent() -> None:
    clock = Clock()
    limiter = RateLimiter(per_second=1, clock=clock, sleep=clock.sleep)
    cancelled = threading.Event()
    cancelled.set()
    with limiter.turn() as first:
        assert first
    with limiter.turn(cancelled) as second:
        assert not second
    with limiter.turn() as third:
        assert third and clock.now == 1002.0  # after the given-up turn at 1001, never in its place


def test_a_slow_answer_holds_back_the_turn_a_second_later() -> None:
    # Three a second, each answered 0.2 s after it starts: the fourth may start only a second after
    # the first was answered, so no second at the server (which accepts somewhere in between) holds four.
    clock = Clock()
    limiter = RateLimiter(per_second=3, clock=clock, sleep=clock.sleep)
    times = send_times(limiter, clock, 7, answer=0.2)
    assert [round(t - times[0], 3) for t in times] == [0.0, 0.333, 0.667, 1.2, 1.533, 1.867, 2.4]
    answered = [t + 0.2 for t in times]
    assert most_in_any_window(answered, 1.0) == 3


def test_a_message_still_on_its_way_holds_back_the_turn_that_looks_back_to_it() -> None:
    clock = Clock()
    limiter = RateLimiter(per_second=1, clock=clock, sleep=clock.sleep)
    first = limiter.turn()
    booked = threading.Event()

    def second() -> None:
        with limiter.turn():
            booked.set()

    waiter = threading.Thread(target=second)
    waiter.start()
    assert not booked.wait(0.3)  # the first message has not been answered: no second message yet
    clock.sleep(5)
    first.__exit__(None, None, None)  # answered at 1005
    waiter.join(5)
    assert booked.is_set() and clock.now == 1006.0


@pytest.mark.parametrize("connections", [1, 4])
def test_no_second_at_the_server_holds_more_than_the_limit(smtp_settings, smtp_server, make_send,  # type: ignore[no-untyped-def]
                                                           connections: int) -> None:
    # Providers count what they accept. Answers that take from 0 to 80 ms make acceptances bunch
    # even when starts are spaced exactly; the server's own clock must still see at most 20 a second.
    jitter = random.Random(12)
    smtp_server.handler.delay = lambda: jitter.uniform(0, 0.08)
    send_id = make_send(people(70))
    settings = smtp_settings.model_copy(update={"rate_per_second": 20.0, "smtp_connections": connections})
    assert deliver(settings, send_id).status == "finished"
    accepted = sorted(received.at for received in smtp_server.messages)
    assert len(accepted) == 70
    assert most_in_any_window(accepted, 1.0) <= 20
