"""SpamAssassin scores of the sample issues as readers receive them, with its offline rules only.

Builds every language variant of every sample issue in issues/ with the delivery engine's
message builder, for a reader with a name and one without, and runs each message through
`spamassassin -L -t` (local tests only: no DNS, no network, no Bayes learning). Prints the
score and the rules that fired; exits 1 when a message reaches the target (0.5) or more.
Needs Debian's `spamassassin` package (apt-get install spamassassin). Run:

    .venv/bin/python bench/spam_scores.py
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from mailer.config import Settings  # noqa: E402
from mailer.content import load_issue  # noqa: E402
from mailer.delivery.message import MessageBuilder, Recipient  # noqa: E402
from mailer.delivery.sends import render_variants  # noqa: E402

TARGET = 0.5
READERS = {"with a name": "Siân Roberts", "without a name": ""}
_STATUS = re.compile(r"^X-Spam-Status: \w+, score=(-?[\d.]+) .*?tests=(.*?)\s+autolearn", re.MULTILINE | re.DOTALL)


def score(message: bytes, home: Path) -> tuple[float, str]:
    """SpamAssassin's score and the rules that fired, run on local tests only."""
    result = subprocess.run(["spamassassin", "-L", "-t", "--siteconfigpath=/etc/spamassassin", "-p", str(home / "prefs")],
                            input=message, capture_output=True, check=True, timeout=300)
    match = _STATUS.search(result.stdout.decode("utf-8", "replace"))
    if not match:
        raise SystemExit("spamassassin printed no X-Spam-Status header")
    return float(match.group(1)), ", ".join(rule for rule in re.split(r"[,\s]+", match.group(2)) if rule)


def main() -> int:
    if not shutil.which("spamassassin"):
        print("spamassassin is not installed (apt-get install spamassassin)")
        return 2
    settings = Settings(secret_key="bench-secret-key-0123456789", base_url="https://news.example.org",
                        sender_name="Co-production Network for Wales", sender_address="newsletter@example.org",
                        list_name="Network News", list_id="news.example.org",
                        postal_address="Example House, 1 Example Street, Cardiff CF10 1AA, Wales",
                        media_dir=tempfile.mkdtemp(prefix="mailer-media-"))
    worst = 0.0
    with tempfile.TemporaryDirectory() as home:
        Path(home, "prefs").write_text("")  # no user preferences, no auto-whitelist
        print(f"{'issue':32} {'variant':8} {'reader':15} {'score':>6}  rules")
        for issue_path in sorted((ROOT / "issues").glob("*.yaml")):
            rendered = render_variants(settings, load_issue(issue_path))
            builder = MessageBuilder(settings, rendered, send_id=1)
            for variant in rendered:
                for reader, name in READERS.items():
                    message = builder.build(Recipient(email="reader@example.org", name=name, language=variant,
                                                      subscriber_id=7, delivery_id=11))
                    points, rules = score(message, Path(home))
                    worst = max(worst, points)
                    print(f"{issue_path.stem:32} {variant:8} {reader:15} {points:6.1f}  {rules}")
    print(f"worst: {worst:.1f} (target: below {TARGET})")
    return 0 if worst < TARGET else 1


if __name__ == "__main__":
    raise SystemExit(main())
