"""Benchmark of the editor's pipeline: build an issue once, personalise it per recipient.

Prints the build time of a 10-section issue, the personalisation time per recipient
over N recipients, and the ratio against a naive full render (Jinja + MJML +
premailer) per recipient, measured in the same process on a few recipients and
extrapolated. Run:  .venv/bin/python bench/bench_render.py [--recipients 10000]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from mailer.config import Settings  # noqa: E402
from mailer.content import Personaliser, load_issue, render_issue  # noqa: E402

PARAGRAPH = ("Co-production means people who use services and people who run them working as equals, "
             "sharing power and responsibility. [Read the case study](https://example.org/case/{n}) "
             "and tell us what you think. ")


def ten_section_issue(folder: Path) -> Path:
    sections = []
    for n in range(10):
        sections.append(
            f"  - heading: 'Section {n + 1}: news from the network'\n"
            f"    body: |\n      {PARAGRAPH.format(n=n) * 3}\n\n      - a point\n      - another point\n"
            f"    image: {{src: 'https://example.org/images/{n}.jpg', alt: 'Photo {n + 1} from the network'}}\n"
            f"    button: {{label: 'Read more about section {n + 1}', url: 'https://example.org/s/{n}'}}\n"
        )
    path = folder / "bench.yaml"
    path.write_text("title: 'Network news: benchmark'\ndate: 2026-12-01\npreheader: 'Ten sections'\n"
                    "intro: 'An issue with ten sections.'\nsections:\n" + "".join(sections), encoding="utf-8")
    return path


def recipient_values(count: int) -> list[dict[str, str]]:
    return [{
        "name": f"Subscriber {index} <&>",
        "email": f"person{index}@example.org",
        "unsubscribe_url": f"https://news.example.org/u/{index:08d}.token-token-token-token",
        "preferences_url": f"https://news.example.org/p/{index:08d}.token-token-token-token",
        "web_url": "https://news.example.org/archive/1",
    } for index in range(count)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipients", type=int, default=10_000)
    parser.add_argument("--naive", type=int, default=20, help="recipients rendered the naive way (extrapolated)")
    parser.add_argument("--builds", type=int, default=5, help="warm builds to average")
    args = parser.parse_args()

    settings = Settings(secret_key="benchmark-secret-key-0123456789")  # the templates shipped in the package, as installed
    with tempfile.TemporaryDirectory() as folder:
        path = ten_section_issue(Path(folder))
        started = time.perf_counter()
        rendered = render_issue(load_issue(path), settings)
        cold = time.perf_counter() - started
        warm_times = []
        for _ in range(args.builds):
            started = time.perf_counter()
            render_issue(load_issue(path), settings)
            warm_times.append(time.perf_counter() - started)
        warm = statistics.median(warm_times)

        values = recipient_values(args.recipients)
        started = time.perf_counter()
        personaliser = Personaliser(rendered)
        for recipient in values:
            personaliser.html(recipient)
            personaliser.text(recipient)
            personaliser.subject(recipient)
        per_recipient = (time.perf_counter() - started) / args.recipients

        # Naive: the whole pipeline for each recipient (premailer's CSS cache is warm, which flatters it).
        issue = load_issue(path)
        started = time.perf_counter()
        for recipient in values[: args.naive]:
            naive = render_issue(issue, settings)
            Personaliser(naive).html(recipient)
        naive_per_recipient = (time.perf_counter() - started) / args.naive

    print(f"issue: 10 sections, HTML {len(rendered.html) / 1024:.1f} KB, text {len(rendered.text) / 1024:.1f} KB")
    print(f"build (load + Jinja + MJML + premailer + text): first {cold * 1000:.0f} ms, then median {warm * 1000:.0f} ms "
          f"(target < 1000 ms)")
    print(f"personalise html+text+subject: {per_recipient * 1e6:.1f} us per recipient over {args.recipients:,} "
          f"(target < 200 us); {per_recipient * args.recipients:.2f} s in all")
    print(f"naive full render per recipient: {naive_per_recipient * 1000:.1f} ms (measured on {args.naive}); "
          f"{naive_per_recipient * args.recipients / 60:.1f} min for {args.recipients:,} recipients")
    print(f"ratio naive / personalise: {naive_per_recipient / per_recipient:,.0f}x")


if __name__ == "__main__":
    main()
