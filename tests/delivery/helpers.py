"""Helpers for delivery tests: a hand-made rendered issue (the renderer itself is exercised
by the few tests that use `create_send` with a real issue file), recipients, and lookups."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from sqlmodel import select

from mailer.content import Rendered
from mailer.store.db import new_session
from mailer.store.models import Delivery

ROOT = Path(__file__).resolve().parents[2]
SAMPLE_ISSUE = ROOT / "issues" / "2026-12-network-launch.yaml"

HTML = """<!doctype html>
<html lang="{lang}"><body>
<p>{dear} __MAILER_NAME__,</p>
<p>{body}</p>
<p><a href="__MAILER_WEB_URL__">{web}</a> &middot; <a href="__MAILER_PREFERENCES_URL__">Preferences</a>
&middot; <a href="__MAILER_UNSUBSCRIBE_URL__">{unsubscribe}</a></p>
<p>Sent to __MAILER_EMAIL__.</p>
</body></html>
"""
TEXT = "{dear} __MAILER_NAME__,\n\n{body}\n\nView online: __MAILER_WEB_URL__\n{unsubscribe}: __MAILER_UNSUBSCRIBE_URL__\n"
WORDS = {
    "en": dict(dear="Dear", body="The network launches in January. " * 40, web="View in browser",
               unsubscribe="Unsubscribe", subject="Network news: December"),
    "cy": dict(dear="Annwyl", body="Bydd y rhwydwaith yn lansio ym mis Ionawr. Ŵ ŷ â. " * 40, web="Gweld yn eich porwr",
               unsubscribe="Dad-danysgrifio", subject="Newyddion y rhwydwaith: Rhagfyr ŵ"),
}


def rendered(language: str) -> Rendered:
    if language == "both":
        cy, en = rendered("cy"), rendered("en")
        return Rendered("both", f"{cy.subject} / {en.subject}", "", cy.html + en.html, cy.text + "\n" + en.text, "")
    words = WORDS[language]
    return Rendered(language, words["subject"], "", HTML.format(lang=language, **words), TEXT.format(**words), "")


def content(languages: Sequence[str] = ("en", "cy", "both")) -> bytes:
    return json.dumps({language: rendered(language).to_dict() for language in languages}).encode()


def people(count: int, domain: str = "example.com") -> list[tuple[str, str, str]]:
    return [(f"reader{n}@{domain}", f"Reader {n}", "cy" if n % 4 == 0 else "en") for n in range(count)]


def deliveries(engine, send_id: int) -> dict[str, Delivery]:  # type: ignore[no-untyped-def]
    """Every delivery of a send, by address."""
    with new_session(engine) as session:
        return {d.email: d for d in session.exec(select(Delivery).where(Delivery.send_id == send_id))}


def env_for(settings) -> dict[str, str]:  # type: ignore[no-untyped-def]
    """MAILER_* variables that reproduce `settings` in another process (or a CliRunner)."""
    values = settings.model_dump(exclude_defaults=True)
    return {f"MAILER_{key.upper()}": value if isinstance(value, str) else json.dumps(value)
            for key, value in values.items()}


def ended_owner() -> str:
    """The owner id of a process of this machine that has ended (as if killed with SIGKILL)."""
    return subprocess.run([sys.executable, "-c", "from mailer.delivery.owners import new_owner; print(new_owner())"],
                          capture_output=True, text=True, check=True).stdout.strip()
