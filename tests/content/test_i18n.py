"""Message catalogues: the Welsh one is complete, and every .po file in the folder counts."""

from __future__ import annotations

import pytest
from babel.messages.extract import extract_from_dir

from mailer import i18n
from tests.content.conftest import ROOT

SOURCES = [
    (ROOT / "mailer" / "templates" / "email", [("**.j2", "jinja2.ext:babel_extract")]),
    (ROOT / "mailer" / "content", [("**.py", "python")]),
]


def used_message_ids() -> set[str]:
    found = set()
    for folder, method_map in SOURCES:
        for _filename, _line, message, _comments, _context in extract_from_dir(str(folder), method_map):
            found.add(message if isinstance(message, str) else message[0])
    return found


def test_extraction_finds_the_email_text():
    assert {"Unsubscribe", "Update your preferences", "View in browser", "Why you get this email",
            "Dear %(name)s,", "When", "Where"} <= used_message_ids()


def test_welsh_catalogue_is_complete():
    catalogue = i18n.load_catalogue("cy")
    untranslated = sorted(message_id for message_id in used_message_ids()
                          if message_id not in catalogue or not catalogue[message_id].string
                          or catalogue[message_id].fuzzy)
    assert untranslated == []


def test_translations(monkeypatch):
    welsh = i18n.translations("cy")
    assert welsh.gettext("Unsubscribe") == "Dad-danysgrifio"
    assert welsh.gettext("View in browser") == "Gweld yn eich porwr"
    assert i18n.translations("en").gettext("Unsubscribe") == "Unsubscribe"
    with pytest.raises(ValueError):
        i18n.translations("fr")


def test_every_po_file_is_merged(tmp_path, monkeypatch):
    folder = tmp_path / "cy" / "LC_MESSAGES"
    folder.mkdir(parents=True)
    (folder / "email.po").write_text('msgid "Unsubscribe"\nmsgstr "Dad-danysgrifio"\n', encoding="utf-8")
    (folder / "web.po").write_text('msgid "Save"\nmsgstr "Cadw"\n\n#, fuzzy\nmsgid "Guess"\nmsgstr "Dyfalu"\n', encoding="utf-8")
    monkeypatch.setattr(i18n, "LOCALE_DIR", tmp_path)
    i18n.translations.cache_clear()
    try:
        welsh = i18n.translations("cy")
        assert welsh.gettext("Unsubscribe") == "Dad-danysgrifio" and welsh.gettext("Save") == "Cadw"
        assert welsh.gettext("Guess") == "Guess"  # fuzzy entries are not trusted
    finally:
        i18n.translations.cache_clear()


def test_jinja_install():
    from jinja2 import Environment

    env = Environment(autoescape=True)
    i18n.install(env, "cy")
    assert env.from_string('{{ _("Dear %(name)s,", name="<Siân>") }}').render() == "Annwyl &lt;Siân&gt;,"
