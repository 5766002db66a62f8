"""The emails the pages send: subscription confirmations and address-change confirmations.

They are sent after the response has gone (a background task), so the subscribe
page takes the same time whether or not an email goes out, and a slow or broken
mail server never breaks a page. A failure is logged, not shown.
"""

from __future__ import annotations

import logging
from typing import Any

from mailer.delivery.notices import send_notice
from mailer.errors import MailerError
from mailer.web.context import Web

log = logging.getLogger("mailer.web")


def send(ctx: Web, *, to: str, language: str, template: str, **context: Any) -> None:
    subject, text = ctx.pages.email(language, template, **context)
    try:
        send_notice(ctx.settings, to=to, subject=subject, text=text, language=language)
    except MailerError as exc:
        log.warning("could not send %s: %s", template, exc)
