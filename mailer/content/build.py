"""`mailer issue build`: the files an editor checks before a send, and samples as readers get them.

The sample `.eml` files are made by the delivery engine's own `MessageBuilder`, so their
headers, encoding and personalisation are byte for byte what a reader receives (but for
Date and Message-ID): once for a reader with a name, once for a reader without one.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from mailer.config import Settings
from mailer.content.render import Rendered, render_issue
from mailer.content.schema import Issue
from mailer.delivery.dkim import signer_for
from mailer.delivery.message import MessageBuilder, Recipient
from mailer.tokens import archive_url, preferences_url, unsubscribe_url

SAMPLE_NAMES = {"en": "Sam Jones", "cy": "Siân Roberts", "both": "Siân Roberts"}
SAMPLE_EMAIL = "reader@example.org"
SAMPLE_ID = 0  # no subscriber has id 0: the sample's links are valid tokens that change nobody


def sample_values(settings: Settings, language: str) -> dict[str, str]:
    """Placeholder values for a made-up subscriber, with links of realistic length."""
    return {
        "name": SAMPLE_NAMES.get(language, ""),
        "email": SAMPLE_EMAIL,
        "unsubscribe_url": unsubscribe_url(settings, SAMPLE_ID),
        "preferences_url": preferences_url(settings, SAMPLE_ID),
        "web_url": archive_url(settings, SAMPLE_ID),
    }


def sample_message(rendered: Rendered, settings: Settings, *, named: bool = True) -> bytes:
    """The message a made-up subscriber would receive (with a name, or without one), as sent."""
    builder = MessageBuilder(settings, {rendered.language: rendered}, send_id=None, signer=signer_for(settings))
    name = SAMPLE_NAMES.get(rendered.language, "") if named else ""
    return builder.build(Recipient(email=SAMPLE_EMAIL, name=name, language=rendered.language, subscriber_id=SAMPLE_ID))


@dataclass(frozen=True)
class BuildOutput:
    rendered: Rendered
    files: list[Path]


def build_issue(issue: Issue, settings: Settings, out_dir: Path, language: str) -> BuildOutput:
    """Write NAME.html, NAME.txt, NAME.mjml, NAME.eml (a reader with a name) and NAME.nameless.eml into `out_dir`."""
    rendered = render_issue(issue, settings, language)
    out_dir.mkdir(parents=True, exist_ok=True)
    files = [out_dir / f"{issue.slug}.{extension}" for extension in ("html", "txt", "mjml", "eml", "nameless.eml")]
    files[0].write_text(rendered.html, encoding="utf-8")
    files[1].write_text(rendered.text, encoding="utf-8")
    files[2].write_text(rendered.mjml, encoding="utf-8")
    files[3].write_bytes(sample_message(rendered, settings))
    files[4].write_bytes(sample_message(rendered, settings, named=False))
    return BuildOutput(rendered, files)


def default_language(issue: Issue) -> str:
    """What `build` and `preview` show unless told: the bilingual email when there are two languages."""
    return "both" if len(issue.languages) > 1 else issue.languages[0]
