"""Every text on the pages and in their emails has a Welsh translation, with the same placeholders."""

from __future__ import annotations

import re
from pathlib import Path

from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po

ROOT = Path(__file__).resolve().parents[2]
WEB_PO = ROOT / "mailer" / "locale" / "cy" / "LC_MESSAGES" / "web.po"
SOURCES = [  # where the pages' texts are, and how to read them (trimmed like the app's Jinja policy)
    ("mailer/templates/web", [("**.html", "jinja2"), ("**.txt", "jinja2")], {"**.html": {"trimmed": "true"},
                                                                      "**.txt": {"trimmed": "true"}}),
    ("mailer/web", [("**.py", "python")], {}),
]


def used_messages() -> dict[str, str]:
    """msgid -> where it is used."""
    found = {}
    for folder, methods, options in SOURCES:
        for filename, line, message, *_ in extract_from_dir(ROOT / folder, methods, options_map=options):
            text = message if isinstance(message, str) else message[0]
            found.setdefault(text, f"{folder}/{filename}:{line}")
    return found


def test_every_message_has_a_welsh_translation():
    with WEB_PO.open("rb") as handle:
        catalogue = read_po(handle, locale="cy")
    used = used_messages()
    assert len(used) > 50
    missing = [f"{where}: {text!r}" for text, where in used.items()
               if catalogue.get(text) is None or not catalogue.get(text).string]
    assert missing == [], "add these to mailer/locale/cy/LC_MESSAGES/web.po:\n" + "\n".join(missing)
    for text in used:
        placeholders = sorted(re.findall(r"%\(\w+\)s", text))
        assert sorted(re.findall(r"%\(\w+\)s", catalogue.get(text).string)) == placeholders, text
