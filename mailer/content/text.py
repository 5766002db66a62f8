"""The plain-text part, written from the structured issue rather than scraped from the HTML.

Headings are underlined, Markdown becomes wrapped text with each link's address
after it, and every address stands alone on a line where a reader can copy it.
"""

from __future__ import annotations

from mailer.content.markdown import TEXT_WIDTH
from mailer.content.view import IssueView
from mailer.i18n import translations


def render_text(views: list[IssueView]) -> str:
    """One language, or two one after the other with a note pointing to the second."""
    parts = []
    if len(views) > 1:
        parts.append(translations(views[1].lang).gettext("Scroll down for the English version."))
    parts.extend(_issue_text(view) for view in views)
    return ("\n\n" + "=" * TEXT_WIDTH + "\n\n").join(parts) + "\n"


def _underline(text: str, mark: str) -> str:
    return f"{text}\n{mark * min(len(text), TEXT_WIDTH)}"


def _issue_text(view: IssueView) -> str:
    _ = translations(view.lang).gettext
    blocks = [f"{view.list_name} · {view.date}", _underline(view.title, "=")]
    if view.greeting:
        blocks.append(view.greeting)
    if view.intro:
        blocks.append(view.intro.text)
    for section in view.sections:
        if section.heading:
            blocks.append(_underline(section.heading, "-"))
        if section.body:
            blocks.append(section.body.text)
        if section.image and section.image.href:
            blocks.append(f"{section.image.alt or section.image.href}\n{section.image.href}")
        if section.event:
            blocks.append(f"{_('When')}: {section.event.when}\n{_('Where')}: {section.event.place}")
        if section.links:
            blocks.append("\n\n".join(
                "\n".join(line for line in (f"- {link.title}", f"  {link.url}", f"  {link.note}" if link.note else "") if line)
                for link in section.links
            ))
        if section.button:
            blocks.append(f"{section.button.label}:\n{section.button.url}")
    if view.sign_off:
        blocks.append(view.sign_off.text)
    blocks.append("-- \n" + "\n".join([
        _("Why you get this email"),
        _("You subscribed to %(list_name)s with the address %(email)s.")
        % {"list_name": view.list_name, "email": view.placeholders["email"]},
        "",
        f"{_('Unsubscribe')}: {view.placeholders['unsubscribe_url']}",
        f"{_('Update your preferences')}: {view.placeholders['preferences_url']}",
        f"{_('View in browser')}: {view.placeholders['web_url']}",
        "",
        view.postal_address,
    ]))
    return "\n\n".join(blocks)
