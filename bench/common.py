"""Small helpers the benchmarks share: timing an action, waiting for a local server."""

from __future__ import annotations

import socket
import statistics
import time
from collections.abc import Callable


def median_seconds(action: Callable[[], object], repeat: int, *, before: Callable[[], object] | None = None) -> float:
    """The median wall time of `repeat` calls of `action`; `before` runs untimed ahead of each (to clear a cache)."""
    times = []
    for _ in range(repeat):
        if before is not None:
            before()
        started = time.perf_counter()
        action()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def wait_for_port(port: int, *, tries: int = 100) -> None:
    """Until a server accepts connections on 127.0.0.1:`port` (at most `tries` x 50 ms)."""
    for _ in range(tries):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
