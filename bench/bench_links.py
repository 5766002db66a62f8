"""Cost of carrying the send in each email's links, and of counted links (`link_counts`), per message.

    python bench/bench_links.py [--messages 20000]

Builds messages of the bilingual sample issue with the engine's MessageBuilder, in one
process: links carrying the subscriber only (the baseline, as before), links carrying
the subscriber and the send, and the same with every issue link counted through /l/.
Prints microseconds per message (the best of several interleaved rounds, as the machine is
shared) and the ratio to the baseline measured in the same run.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from unittest import mock

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
ISSUE = ROOT / "issues" / "2026-12-network-launch.yaml"


def per_message(builder, count: int) -> float:  # type: ignore[no-untyped-def]
    from mailer.delivery.message import Recipient

    recipients = [Recipient(email=f"reader{n}@example.net", name=f"Reader {n}", language=("en", "cy", "both")[n % 3],
                            subscriber_id=n + 1, delivery_id=n + 1) for n in range(count)]
    started = time.perf_counter()
    for recipient in recipients:
        builder.build(recipient)
    return (time.perf_counter() - started) / count * 1e6


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=5)
    options = parser.parse_args()
    count = options.messages

    from mailer import tokens
    from mailer.config import Settings
    from mailer.content import load_issue
    from mailer.delivery import message
    from mailer.delivery.message import MessageBuilder
    from mailer.delivery.sends import render_variants

    settings = Settings(secret_key="bench-secret-key-0123456789", base_url="https://news.example.org",
                        languages=["en", "cy"])
    rendered = render_variants(settings, load_issue(ISSUE))
    builder = MessageBuilder(settings, rendered, send_id=7, send_tag="bench")
    per_message(builder, 500)  # warm up

    # The baseline: links as made before, with the subscriber id alone.
    def subscriber_only(make):  # type: ignore[no-untyped-def]
        return lambda settings, subscriber_id, send_id=None: make(settings, subscriber_id)

    def old_links() -> float:
        with mock.patch.object(message, "unsubscribe_url", subscriber_only(tokens.unsubscribe_url)), \
                mock.patch.object(message, "preferences_url", subscriber_only(tokens.preferences_url)):
            return per_message(builder, count)

    started = time.perf_counter()
    counting = MessageBuilder(settings.model_copy(update={"link_counts": True}), rendered, send_id=7, send_tag="bench")
    compile_ms = (time.perf_counter() - started) * 1000
    rounds = [(old_links(), per_message(builder, count), per_message(counting, count)) for _ in range(options.rounds)]
    baseline, carried, counted = (min(times) for times in zip(*rounds, strict=True))

    print(f"{count} messages of {ISSUE.name}, best of {options.rounds} rounds, one process")
    print(f"  links carry the subscriber only (baseline): {baseline:7.1f} µs/message")
    print(f"  links carry subscriber and send:            {carried:7.1f} µs/message  ({carried / baseline:.2f}x)")
    print(f"  ... and issue links counted (link_counts):  {counted:7.1f} µs/message  ({counted / baseline:.2f}x);"
          f" rewriting the links once per send: {compile_ms:.0f} ms with compiling")


if __name__ == "__main__":
    main()
