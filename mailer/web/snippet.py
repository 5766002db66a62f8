"""The subscribe form for the organisation's own website (`mailer forms snippet`).

Plain HTML with no script and no style sheet of its own, so it takes the site's
look: every field labelled, the consent wording beside its box, the language
choice as a fieldset, and the same spam trap as our page (a field people never
see, here in a `hidden` block: the site's style sheet is not ours to extend). It posts to our /subscribe without a form token; the site must be listed
in `form_origins`, and after posting the reader lands on our "check your email"
page in their language, or on the site's `thanks_url`. Bilingual forms put the
language of `bilingual_first` (Welsh by default) first, every text in both.
"""

from __future__ import annotations

from collections.abc import Sequence

from mailer import i18n
from mailer.config import Settings
from mailer.web.forms import offered_languages
from mailer.web.pages import Pages
from mailer.web.subscribe import consent_text


def _texts(pages: Pages, settings: Settings, language: str) -> dict[str, str]:
    """What the form says, in one language: the very texts of our own subscribe page."""
    _ = pages.gettext(language)
    return {
        "title": _("Subscribe to %(list)s", list=settings.text("list_name", language)),
        "intro": _("We will email you a link to confirm your address. You get nothing else until you follow it."),
        "email": _("Email address"),
        "name": _("Name (optional)"),
        "language": _("Language of the emails"),
        "both": _("Both (Welsh and English)"),
        "trap": _("Leave this field empty"),
        "consent": consent_text(_, settings, language),
        "submit": _("Subscribe"),
    }


def form_snippet(settings: Settings, *, language: str, topics: Sequence[str] = ()) -> str:
    """The form, in `language` ("en", "cy", or "both": two languages, `bilingual_first` first)."""
    pages = Pages(settings)
    first = settings.bilingual_first if language == "both" else language
    order = [first, i18n.other_language(first)] if language == "both" else [language]
    return pages.fragment(first, "snippet.html", {
        "texts": [(code, _texts(pages, settings, code)) for code in order],
        "action": f"{settings.base_url}/subscribe?lang={first}",
        "topics": list(topics),
        "languages": offered_languages(settings),
        "chosen": language,
        "sites": settings.form_origins,
    })
