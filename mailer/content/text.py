"""The plain-text part, written from the structured issue rather than scraped from the HTML.

Headings are underlined, Markdown becomes wrapped text with each link's address
after it, images become their alt text in brackets, and every line is wrapped at
`TEXT_WIDTH` columns (RFC 5322 asks for at most 78); only an address too long for a
line stands alone on one, where a reader can copy it.
"""

from __future__ import annotations

import re

from mailer.content.markdown import TEXT_WIDTH
from mailer.content.view import IssueView
from mailer.i18n import translations

# Per-recipient values of unknown length (a link with its token, an address): always on a line of their own.
_UNBOUNDED = re.compile(r"__MAILER_(?:EMAIL|UNSUBSCRIBE_URL|PREFERENCES_URL|WEB_URL)__")
# One word for wrapping: an `if_given` choice (never split: it becomes one value), or a run of non-spaces.
_WORD = re.compile(r"__MAILER_IF_[A-Z_]+?__.*?__MAILER_ENDIF__\S*|\S+")
_CHOICE = re.compile(r"__MAILER_IF_[A-Z_]+?__|__MAILER_ELSE__|__MAILER_ENDIF__")
# What a wrapped line's continuation lines repeat: indentation and quote marks, and room for a list marker.
_PREFIX = re.compile(r"^([ >]*)((?:[-*]|\d+\.) )?")


def render_text(views: list[IssueView]) -> str:
    """One language, or two one after the other with a note pointing to the second."""
    parts = []
    if len(views) > 1:
        parts.append(translations(views[1].lang).gettext("Scroll down for the English version."))
    parts.extend(_issue_text(view) for view in views)
    text = ("\n\n" + "=" * TEXT_WIDTH + "\n\n").join(parts)
    return "\n".join(wrap_line(line) for line in text.split("\n")) + "\n"


def wrap_line(line: str, width: int = TEXT_WIDTH) -> str:
    """`line` in lines of at most `width` columns, continuation lines indented like a list item or quote."""
    if len(line) <= width and not _UNBOUNDED.search(line):
        return line
    prefix = _PREFIX.match(line)
    first = prefix.group(0) if prefix else ""
    rest = (prefix.group(1) + " " * len(prefix.group(2) or "")) if prefix else ""
    lines: list[str] = []
    current, length, empty = first, len(first), True
    for word in _WORD.findall(line[len(first):]):
        size = width + 1 if _UNBOUNDED.search(word) else _length(word)
        if not empty and length + 1 + size > width:
            lines.append(current)
            current, length, empty = rest, len(rest), True
        if not empty:
            current, length = current + " ", length + 1
        current, length, empty = current + word, length + size, False
    lines.append(current)
    return "\n".join(lines)


def _length(word: str) -> int:
    """Columns a word takes: for an `if_given` choice, its longer text."""
    if not word.startswith("__MAILER_IF_"):
        return len(word)
    return max(len(text) for text in _CHOICE.split(word))


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
        if section.image and (section.image.alt or section.image.href):
            blocks.append("\n".join(part for part in (f"[{section.image.alt}]" if section.image.alt else "",
                                                       section.image.href or "") if part))
        if section.body:
            blocks.append(section.body.text)
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
