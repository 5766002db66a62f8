"""/u/<token>: GET changes nothing, the page's button and RFC 8058 one-click POST unsubscribe, undo works."""

from __future__ import annotations

import pytest

from mailer.store.models import SubscriberStatus
from mailer.tokens import preferences_url, unsubscribe_url
from tests.web.helpers import events, form_token, fresh, main_text, same_origin

GMAIL_HEADERS = {  # as Google documents its one-click request: a bare form post, no cookie, no Origin
    "content-type": "application/x-www-form-urlencoded",
    "user-agent": "Mozilla/5.0 (compatible; Google-List-Unsubscribe)",
}


def test_get_shows_one_button_and_changes_nothing(client, settings, db, person):
    ann = person()
    url = unsubscribe_url(settings, ann.id)
    for _ in range(3):  # a link scanner, the reader, a second look
        page = client.get(url)
        assert page.status_code == 200
    assert page.text.count("<form") == 1 and page.text.count("<button") == 1
    assert fresh(db, ann).status == SubscriberStatus.active
    assert events(db, ann) == [("subscribed", "cli")]


def test_button_unsubscribes_and_offers_undo_and_preferences(client, settings, db, person):
    ann = person()
    url = unsubscribe_url(settings, ann.id)
    token = form_token(client.get(url).text)
    done = client.post(url, data={"csrf": token}, headers=same_origin(settings))
    assert done.status_code == 200
    assert "You are unsubscribed" in done.text
    assert "/resubscribe" in done.text and "Undo" in done.text
    assert f"{settings.base_url}/p/" in done.text
    assert fresh(db, ann).status == SubscriberStatus.unsubscribed
    assert events(db, ann)[-1] == ("unsubscribed", "web")

    undo = client.post(f"{url.removeprefix(settings.base_url)}/resubscribe", data={"csrf": form_token(done.text)},
                       headers=same_origin(settings))
    assert undo.status_code == 200 and "Welcome back" in undo.text
    assert fresh(db, ann).status == SubscriberStatus.active
    assert events(db, ann)[-1] == ("resubscribed", "web")


def test_one_click_post_exactly_as_gmail_sends_it(client, settings, db, person):
    ann = person()
    response = client.post(unsubscribe_url(settings, ann.id), content=b"List-Unsubscribe=One-Click",
                           headers=GMAIL_HEADERS)
    assert response.status_code == 200
    assert "location" not in response.headers
    assert fresh(db, ann).status == SubscriberStatus.unsubscribed
    assert events(db, ann)[-1] == ("unsubscribed", "one-click")


def test_one_click_post_as_multipart_form_data(client, settings, db, person):
    ann = person()
    boundary = "----=_Part_1234_5678.9012"
    body = (f"--{boundary}\r\n"
            'Content-Disposition: form-data; name="List-Unsubscribe"\r\n\r\n'
            "One-Click\r\n"
            f"--{boundary}--\r\n").encode()
    response = client.post(unsubscribe_url(settings, ann.id), content=body,
                           headers={"content-type": f"multipart/form-data; boundary={boundary}"})
    assert response.status_code == 200
    assert events(db, ann)[-1] == ("unsubscribed", "one-click")


def test_unsubscribing_twice_is_harmless(client, settings, db, person):
    ann = person()
    url = unsubscribe_url(settings, ann.id)
    for _ in range(2):
        assert client.post(url, content=b"List-Unsubscribe=One-Click", headers=GMAIL_HEADERS).status_code == 200
    page = client.get(url)
    assert page.status_code == 200 and "You are not subscribed" in page.text
    again = client.post(url, data={"csrf": form_token(client.get(url).text, 0)}, headers=same_origin(settings))
    assert again.status_code in (200, 400)
    assert [kind for kind, _ in events(db, ann)].count("unsubscribed") == 1


@pytest.mark.parametrize("case", ["no token", "token of another subscriber", "token of another form",
                                  "other site's Origin", "cross-site fetch", "sandboxed frame (Origin: null)",
                                  "other site's Referer"])
def test_a_forged_post_changes_nothing(case, client, settings, db, person):
    ann, bob = person(), person("bob@example.org")
    url = unsubscribe_url(settings, ann.id)
    own = form_token(client.get(url).text)
    headers = same_origin(settings)
    data = {"csrf": own}
    if case == "no token":
        data = {}
    elif case == "token of another subscriber":
        data = {"csrf": form_token(client.get(unsubscribe_url(settings, bob.id)).text)}
    elif case == "token of another form":
        data = {"csrf": form_token(client.get(preferences_url(settings, ann.id)).text)}
    elif case == "other site's Origin":
        headers = {"origin": "https://evil.example.net"}
    elif case == "cross-site fetch":
        headers = {"sec-fetch-site": "cross-site", "origin": settings.base_url}
    elif case == "sandboxed frame (Origin: null)":
        headers = {"origin": "null"}
    elif case == "other site's Referer":
        headers = {"referer": "https://evil.example.net/page"}
    response = client.post(url, data=data, headers=headers)
    assert response.status_code == 400
    assert "Nothing has changed" in response.text
    assert fresh(db, ann).status == SubscriberStatus.active
    assert form_token(response.text)  # a fresh button to press again


def test_chromium_post_with_no_referrer_policy_is_accepted(client, settings, db, person):
    """Under Referrer-Policy: no-referrer a browser sends `Origin: null` and Sec-Fetch-Site; the latter decides."""
    ann = person()
    url = unsubscribe_url(settings, ann.id)
    response = client.post(url, data={"csrf": form_token(client.get(url).text)},
                           headers={"origin": "null", "sec-fetch-site": "same-origin"})
    assert response.status_code == 200
    assert fresh(db, ann).status == SubscriberStatus.unsubscribed


def test_page_speaks_the_subscribers_language(client, settings, person):
    ann = person(language="cy")
    page = client.get(unsubscribe_url(settings, ann.id))
    assert '<html lang="cy">' in page.text and "Dad-danysgrifio" in main_text(page.text)
    english = client.get(unsubscribe_url(settings, ann.id) + "?lang=en")
    assert '<html lang="en">' in english.text and "Unsubscribe" in main_text(english.text)


@pytest.mark.parametrize("stop", ["mark_bounced", "mark_complained"])
def test_unsubscribing_a_bounced_or_complained_subscriber_keeps_that_status(stop, client, settings, db, person):
    """Finding 3: the link turned a complaint into a plain unsubscribe, which `import --resubscribe` then undid."""
    from mailer.store import subscribers

    ann = person()
    url = unsubscribe_url(settings, ann.id)
    page = client.get(url)  # opened before the report came in
    getattr(subscribers, stop)(db, subscriber_id=ann.id, detail="report")
    db.commit()
    status = fresh(db, ann).status
    client.post(url, content=b"List-Unsubscribe=One-Click", headers=GMAIL_HEADERS)
    done = client.post(url, data={"csrf": form_token(page.text)}, headers=same_origin(settings))
    assert done.status_code == 200 and "You are unsubscribed" in done.text
    assert fresh(db, ann).status == status
    assert events(db, ann)[-2:] == [("unsubscribed", "one-click"), ("unsubscribed", "web")]
