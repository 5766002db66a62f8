"""A subscribe form on the organisation's own website: accepted from the sites in `form_origins`, refused from
anywhere else, with double opt-in and every limit as on our own page; `mailer forms snippet` prints it."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from mailer.config import Settings
from mailer.errors import ConfigError
from mailer.store import subscribers
from mailer.store.models import Subscriber, SubscriberStatus
from mailer.store.topics import add_topic
from mailer.web import create_app
from tests.web.helpers import outbox, run_cli

SITE = "https://www.example.org"
CROSS_SITE = {"origin": SITE, "sec-fetch-site": "cross-site", "sec-fetch-mode": "navigate"}


@pytest.fixture
def site_settings(settings):
    return settings.model_copy(update={"form_origins": [SITE], "languages": ["en", "cy"]})


@pytest.fixture
def pages(site_settings, engine, db):
    add_topic(db, name="news")
    db.commit()
    return TestClient(create_app(site_settings, engine=engine), base_url=site_settings.base_url,
                      follow_redirects=False)


def post_from(client, headers, **fields):
    data = {"email": "nia@example.org", "language": "cy", "topics": "news", "consent": "yes", **fields}
    return client.post("/subscribe?lang=cy", data=data, headers=headers)


def test_a_post_from_a_listed_site_is_accepted_and_still_needs_confirming(pages, site_settings, db):
    answer = post_from(pages, CROSS_SITE)
    assert answer.status_code == 200 and "Edrychwch ar eich e-bost" in answer.text  # our page, in their language
    nia = subscribers.get_by_email(db, email="nia@example.org")
    request = subscribers.open_request(db, subscriber_id=nia.id)  # kept apart until the link is followed
    assert nia.status == SubscriberStatus.pending and request.topics == "news"
    assert request.consent_text.endswith(f"(form on {SITE})")
    [confirmation] = outbox(site_settings)
    assert "/confirm/" in confirmation.get_body(("plain",)).get_content()


@pytest.mark.parametrize("headers", [
    {"origin": "https://evil.example", "sec-fetch-site": "cross-site"},
    {"origin": "https://www.example.org.evil.example", "sec-fetch-site": "cross-site"},
    {"origin": "http://www.example.org", "sec-fetch-site": "cross-site"},  # not the listed scheme
    {"origin": "null", "sec-fetch-site": "cross-site"},
    {"sec-fetch-site": "cross-site"},
], ids=["other-site", "suffix", "http", "null", "no-origin"])
def test_posts_from_anywhere_else_stay_refused(pages, site_settings, db, headers):
    answer = post_from(pages, headers)
    assert answer.status_code == 400
    assert db.scalars(select(Subscriber)).first() is None and outbox(site_settings) == []


def test_the_site_s_own_thanks_page(pages, site_settings, engine, db):
    thanking = site_settings.model_copy(update={"thanks_url": f"{SITE}/thanks"})
    client = TestClient(create_app(thanking, engine=engine), base_url=thanking.base_url, follow_redirects=False)
    answer = post_from(client, CROSS_SITE)
    assert answer.status_code == 303 and answer.headers["location"] == f"{SITE}/thanks"
    assert subscribers.get_by_email(db, email="nia@example.org").status == SubscriberStatus.pending
    trapped = post_from(client, CROSS_SITE, email="bot@example.org", website="http://spam.example")
    assert trapped.status_code == 303  # the spam trap answers the same, and records nothing
    assert subscribers.get_by_email(db, email="bot@example.org") is None


def test_mistakes_are_shown_on_our_own_page_to_correct(pages, db):
    answer = post_from(pages, CROSS_SITE, email="not an address", consent="")
    assert answer.status_code == 400 and 'name="csrf"' in answer.text  # our form, ready to post again
    assert "aria-invalid" in answer.text and db.scalars(select(Subscriber)).first() is None


def test_every_subscribe_limit_applies(pages):
    answers = [post_from(pages, CROSS_SITE, email=f"reader{n}@example.org").status_code for n in range(11)]
    assert answers[:10] == [200] * 10 and answers[10] == 429


def test_form_origins_must_be_origins(settings):
    with pytest.raises(ValueError, match="not an origin"):
        Settings(secret_key=settings.secret_key, form_origins=["https://www.example.org/subscribe"])
    assert Settings(secret_key=settings.secret_key, form_origins=["HTTPS://WWW.Example.org/"]).form_origins == [SITE]
    with pytest.raises(ValueError, match="thanks_url"):
        Settings(secret_key=settings.secret_key, thanks_url="/thanks")


def test_snippet_is_plain_accessible_html_welsh_first(site_settings, pages):
    printed = run_cli(site_settings, "forms", "snippet", "--language", "both", "--topic", "news")
    assert printed.exit_code == 0, printed.stderr
    html = printed.stdout
    assert '<form method="post" action="https://news.example.org/subscribe?lang=cy"' in html
    assert "<script" not in html and "<link" not in html
    assert '<input type="hidden" name="topics" value="news">' in html
    for field in ("email", "name", "consent", "website"):  # every field has its label
        assert f'<label for="newsletter-{field}">' in html and f'id="newsletter-{field}"' in html
    title = re.search(r"<h2>(.*)</h2>", html).group(1)  # type: ignore[union-attr]
    assert title.index('lang="cy"') < title.index('lang="en"')  # Welsh first
    assert "Anfonwch" in html and "I can unsubscribe at any time" in html  # the consent wording, in both
    assert re.search(r'<div hidden>\s*<label for="newsletter-website">', html) and 'tabindex="-1"' in html  # the trap
    assert 'value="both" checked' in html

    welsh = run_cli(site_settings, "forms", "snippet", "--language", "cy").stdout
    assert "Cyfeiriad e-bost" in welsh and "Email address" not in welsh and 'value="cy" checked' in welsh
    unknown = run_cli(site_settings, "forms", "snippet", "--topic", "nope")
    assert unknown.exit_code == 1 and "unknown topic 'nope'" in unknown.output


def test_snippet_warns_when_no_site_is_listed(settings, pages):
    printed = run_cli(settings, "forms", "snippet")
    assert printed.exit_code == 0 and "form_origins is empty" in printed.stderr


def test_config_error_for_a_bad_origin_names_the_key(workdir, monkeypatch):
    from mailer.config import load_settings

    monkeypatch.setenv("MAILER_SECRET_KEY", "test-secret-key-0123456789")
    monkeypatch.setenv("MAILER_FORM_ORIGINS", '["www.example.org"]')
    with pytest.raises(ConfigError, match="FORM_ORIGINS: .www.example.org. is not an origin"):
        load_settings()
