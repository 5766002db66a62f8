"""In-memory sliding-window limits on what the public pages can be made to do: post forms, send emails.

Held in the process: right for one `mailer serve` (or `mailer run`) process,
which is how the pages are meant to run; several processes would each count
on their own. The limits reset when the process restarts. docs/web.md lists
every limit with its numbers.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from enum import Enum


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
        with self._lock:
            allowed = len(self._recent(key)) < self.limit
            if allowed:
                self._hits[key].append(self.clock())
            return allowed

    def allows(self, key: str) -> bool:
        """Whether one more event for `key` would be within the limit, counting nothing."""
        with self._lock:
            return len(self._recent(key)) < self.limit

    def _recent(self, key: str) -> deque[float]:
        """The key's events still inside the window, the key marked most recently used."""
        now = self.clock()
        hits = self._hits.pop(key, None) or deque()
        while hits and hits[0] <= now - self.window:
            hits.popleft()
        self._hits[key] = hits  # most recently used last
        while len(self._hits) > self.max_keys:  # memory stays bounded under a flood of keys
            self._hits.popitem(last=False)
        return hits


MINUTE = 60.0
HOUR = 3600.0
DAY = 24 * HOUR

POSTS_PER_CLIENT = (10, HOUR)        # posts that may send an email (subscribe, address change), per client
EMAILS_PER_MAILBOX = (3, DAY)        # emails from the pages to one mailbox (case, dots and +tags ignored)
EMAILS_PER_DOMAIN = (30, HOUR)       # emails from the pages to one domain
CHANGES_PER_SUBSCRIBER = (3, DAY)    # address changes one subscriber may ask for


class Refused(Enum):
    """Why a request that would send an email is not answered with one."""

    client = "client"          # this client posted too often: told so (429)
    subscriber = "subscriber"  # this subscriber asked for too many address changes: told so
    waiting = "waiting"        # a link to that address is still waiting to be followed: told so
    recipient = "recipient"    # that mailbox or domain had enough emails: subscribe answers the same, preferences 429


class PageLimits:
    """The abuse limits of the pages, in one place.

    - per client (an IPv4 address, or an IPv6 /64): 10 posts an hour of the forms
      that send email (more gets a "try later" answer);
    - per recipient: 3 emails a day to one mailbox and 30 an hour to one domain,
      whatever form asked (more are silently not sent, so the subscribe page
      answers the same whether or not the address is known);
    - per subscriber: 3 address changes asked for a day, and no new link to an
      address while the one sent to it can still be followed;
    - an address that unsubscribed in the last day, or ever complained, gets no
      email on its first subscribe request: only when the same address is asked
      for again within a day ("asks again"). Someone typing another's address once
      cannot undo their unsubscribe or mail them; the real person, who sees no email,
      sends the form once more (the page tells everyone to do so if no email comes).
    """

    def __init__(self, *, link_days: int = 7) -> None:
        self.per_client = RateLimit(*POSTS_PER_CLIENT)
        self.per_mailbox = RateLimit(*EMAILS_PER_MAILBOX)
        self.per_domain = RateLimit(*EMAILS_PER_DOMAIN)
        self.per_subscriber = RateLimit(*CHANGES_PER_SUBSCRIBER)
        self._waiting = RateLimit(1, link_days * DAY)
        self._first_asks = RateLimit(1, DAY)
        self._lock = threading.Lock()

    def first_ask(self, address_key: str) -> bool:
        """True for the first request for this address in a day (the one to hold back)."""
        return self._first_asks.hit(address_key)

    def may_email(self, address: str) -> bool:
        """Count one email to `address` if its mailbox and domain are within their limits."""
        return self._take([(self.per_mailbox, mailbox_key(address)), (self.per_domain, domain_key(address))])

    def change_request(self, *, client: str, subscriber_id: int, address_version: int, address: str) -> Refused | None:
        """Count one request to move a subscriber to `address`; None when its link may be sent."""
        waiting = f"{subscriber_id}:{address_version}:{mailbox_key(address)}"
        if not self._waiting.allows(waiting):
            return Refused.waiting
        if not self.per_client.hit(client):
            return Refused.client
        if not self.per_subscriber.hit(str(subscriber_id)):
            return Refused.subscriber
        if not self.may_email(address):
            return Refused.recipient
        self._waiting.hit(waiting)
        return None

    def _take(self, limits: list[tuple[RateLimit, str]]) -> bool:
        """Count one event in every limit, or in none when any of them is full."""
        with self._lock:
            if not all(limit.allows(key) for limit, key in limits):
                return False
            for limit, key in limits:
                limit.hit(key)
            return True


def domain_key(address: str) -> str:
    """The domain an address is at, in its ASCII (IDNA) form where it has one."""
    domain = address.rpartition("@")[2].lower()
    try:
        return domain.encode("idna").decode("ascii")
    except UnicodeError:
        return domain


def mailbox_key(address: str) -> str:
    """The mailbox an address most likely reaches: case, dots and a +tag in the local part ignored.

    `Vic.Tim+1@` and `victim@` reach one person at many providers, so they share one limit.
    Only for counting: two people this merges merely share a budget.
    """
    local = address.rpartition("@")[0].lower().split("+", 1)[0].replace(".", "")
    return f"{local}@{domain_key(address)}"

