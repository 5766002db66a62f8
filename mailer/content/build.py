"""`mailer issue build`: the files an editor checks before a send, and a sample as a reader gets it.

The sample `.eml` is made with the standard library's `email` package, for a made-up
subscriber; sends build their messages on the fast path in `mailer.delivery`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from pathlib import Path

from mailer.config import Settings
from mailer.content.personalise import Personaliser
from mailer.content.render import Rendered, render_issue
from mailer.content.schema import Issue
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


def sample_message(rendered: Rendered, settings: Settings) -> EmailMessage:
    """The email one subscriber would receive, as a standard `EmailMessage`."""
    values = sample_values(settings, rendered.language)
    personal = Personaliser(rendered)
    message = EmailMessage()
    message["From"] = Address(settings.sender_name, addr_spec=settings.sender_address)
    message["To"] = Address(SAMPLE_NAMES.get(rendered.language, ""), addr_spec=SAMPLE_EMAIL)
    if settings.reply_to:
        message["Reply-To"] = settings.reply_to
    message["Subject"] = personal.subject(values)
    message["Date"] = format_datetime(datetime.now(UTC))
    message["Message-ID"] = make_msgid(domain=settings.sender_domain)
    message["List-Id"] = f"{settings.text('list_name', rendered.language)} <{settings.list_id}>"
    message["List-Unsubscribe"] = f"<{values['unsubscribe_url']}>"
    message["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    message.set_content(personal.text(values))
    message.add_alternative(personal.html(values), subtype="html")
    return message


@dataclass(frozen=True)
class BuildOutput:
    rendered: Rendered
    files: list[Path]


def build_issue(issue: Issue, settings: Settings, out_dir: Path, language: str) -> BuildOutput:
    """Write NAME.html, NAME.txt, NAME.mjml and NAME.eml into `out_dir`."""
    rendered = render_issue(issue, settings, language)
    out_dir.mkdir(parents=True, exist_ok=True)
    files = [out_dir / f"{issue.slug}.{extension}" for extension in ("html", "txt", "mjml", "eml")]
    files[0].write_text(rendered.html, encoding="utf-8")
    files[1].write_text(rendered.text, encoding="utf-8")
    files[2].write_text(rendered.mjml, encoding="utf-8")
    files[3].write_bytes(sample_message(rendered, settings).as_bytes())
    return BuildOutput(rendered, files)


def default_language(issue: Issue) -> str:
    """What `build` and `preview` show unless told: the bilingual email when there are two languages."""
    return "both" if len(issue.languages) > 1 else issue.languages[0]
