"""Cross-site request forgery protection without cookies: a signed form token plus a same-origin check.

The pages have no sessions, so the token cannot be tied to a cookie. It is tied
instead to the form (and to the subscriber for pages behind a link) and it
expires, which stops a token lifted from one page being replayed on another.
The origin check is what stops another site posting a form in the reader's
browser.

The origin check looks at `Sec-Fetch-Site` first: every page here is served with
`Referrer-Policy: no-referrer`, under which browsers send `Origin: null` and no
`Referer` on form posts, so those two headers only help older browsers.

The subscribe form may also be posted from the sites listed in `form_origins`
(a form pasted into the organisation's own website, `mailer forms snippet`).
Such a post has no form token (a pasted page cannot hold a fresh one); the
browser's `Origin` header is what names the site. That stops other sites using
a reader's browser to post; double opt-in stays the real guard.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from itsdangerous import BadData, URLSafeTimedSerializer
from starlette.requests import Request

from mailer.config import Settings

FORM_TOKEN_SECONDS = 24 * 3600
FIELD = "csrf"


class FormTokens:
    """Makes and checks the hidden `csrf` field of every form."""

    def __init__(self, settings: Settings) -> None:
        # Only the current key: a form token lives a day, key rotation may simply expire it.
        self._serializer = URLSafeTimedSerializer(settings.secret_key, salt="mailer.web.form")
        self._origin = _origin(settings.base_url)
        self._listed = frozenset(settings.form_origins)

    def make(self, form: str, subject: int | str = "") -> str:
        return self._serializer.dumps([form, subject])

    def valid(self, token: str, form: str, subject: int | str = "") -> bool:
        try:
            payload: object = self._serializer.loads(token, max_age=FORM_TOKEN_SECONDS)
        except BadData:
            return False
        return payload == [form, subject]

    def accepts(self, request: Request, token: str, form: str, subject: int | str = "") -> bool:
        """Whether a post is a genuine use of our own form."""
        return self.valid(token, form, subject) and self.same_origin(request)

    def same_origin(self, request: Request) -> bool:
        """Whether the post came from one of our own pages, as far as the browser tells."""
        fetch_site = request.headers.get("sec-fetch-site")
        if fetch_site is not None:
            return fetch_site == "same-origin"
        origin = request.headers.get("origin")
        if origin is not None and origin != "null":
            return origin == self._origin
        referer = request.headers.get("referer")
        if referer is not None:
            return _origin(referer) == self._origin
        # Nothing to go on (an old browser or privacy proxy); `Origin: null` with no
        # fetch metadata is what a sandboxed frame sends, so refuse that.
        return origin is None


    def listed_origin(self, request: Request) -> str | None:
        """The site a cross-origin post came from, when it is one of `form_origins`; else None."""
        origin = (request.headers.get("origin") or "").lower()
        if origin in self._listed and request.headers.get("sec-fetch-site") != "same-origin":
            return origin
        return None


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()
