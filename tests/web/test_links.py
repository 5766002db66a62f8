"""Every link route answers every bad token with the same plain page, status 400, and changes nothing."""

from __future__ import annotations

import time

import pytest
from itsdangerous import TimestampSigner, URLSafeTimedSerializer

from mailer.store import subscribers
from mailer.tokens import UNDO_EMAIL_DAYS, Purpose, make_token, unsubscribe_url
from tests.web.helpers import events, main_text

ROUTES = [  # (method, path template, purpose of the token it takes)
    ("GET", "/u/{}", Purpose.unsubscribe),
    ("POST", "/u/{}", Purpose.unsubscribe),
    ("POST", "/u/{}/resubscribe", Purpose.unsubscribe),
    ("GET", "/p/{}", Purpose.preferences),
    ("POST", "/p/{}", Purpose.preferences),
    ("GET", "/confirm/{}", Purpose.confirm),
    ("POST", "/confirm/{}", Purpose.confirm),
    ("GET", "/email/{}", Purpose.change_email),
    ("POST", "/email/{}", Purpose.change_email),
    ("GET", "/email/{}/undo", Purpose.undo_email),
    ("POST", "/email/{}/undo", Purpose.undo_email),
]


def _payload(purpose: Purpose, subscriber_id: int) -> object:
    """What a link of `purpose` carries: the subscriber, and for address links the address version and address."""
    if purpose in (Purpose.change_email, Purpose.undo_email):
        return [subscriber_id, 0, "new@example.org"]
    return subscriber_id


def _aged(settings, purpose: Purpose, payload: object, days: float) -> str:
    """A token signed `days` ago, as the app's own serializer would have made it then."""

    class Then(TimestampSigner):
        def get_timestamp(self) -> int:
            return int(time.time() - days * 86400)

    return URLSafeTimedSerializer(settings.secret_key, salt=f"mailer.{purpose}", signer=Then).dumps(payload)


def _bad_tokens(settings, purpose: Purpose, subscriber_id: int, forgotten_id: int) -> dict[str, str]:
    good = make_token(settings, purpose, _payload(purpose, subscriber_id))
    other_purpose = Purpose.preferences if purpose != Purpose.preferences else Purpose.unsubscribe
    tampered = good[:-2] + ("A" if good[-2] != "A" else "B") + good[-1]
    return {
        "forged": URLSafeTimedSerializer("not-our-secret-key-at-all", salt=f"mailer.{purpose}").dumps(
            _payload(purpose, subscriber_id)),
        "truncated": good[: len(good) // 2],
        "tampered": tampered,
        "garbage": "hello",
        "very long": "A" * 5000,
        "another purpose": make_token(settings, other_purpose, _payload(other_purpose, subscriber_id)),
        "no such subscriber": make_token(settings, purpose, _payload(purpose, 987654)),
        "id too big for the database": make_token(settings, purpose, _payload(purpose, 2**70)),
        "id not a number": make_token(settings, purpose, _payload(purpose, True)),  # type: ignore[arg-type]
        "forgotten subscriber": make_token(settings, purpose, _payload(purpose, forgotten_id)),
    }


@pytest.mark.parametrize("method,path,purpose", ROUTES, ids=[f"{m} {p}" for m, p, _ in ROUTES])
def test_every_bad_token_gets_the_same_plain_page(method, path, purpose, client, settings, db, person):
    ann = person()
    gone = person("gone@example.org")
    subscribers.forget(db, email="gone@example.org", salt=settings.secret_key)
    db.commit()
    reference = main_text(client.get("/u/not-a-token").text)
    assert "This link is not valid" in reference
    for case, token in _bad_tokens(settings, purpose, ann.id, gone.id).items():
        response = client.request(method, path.format(token), data={"List-Unsubscribe": "One-Click"})
        assert response.status_code == 400, case
        assert main_text(response.text) == reference, case
    assert events(db, ann) == [("subscribed", "cli")]


@pytest.mark.parametrize("purpose,path", [(Purpose.confirm, "/confirm/{}"), (Purpose.change_email, "/email/{}"),
                                          (Purpose.undo_email, "/email/{}/undo")])
def test_confirmation_links_expire(purpose, path, client, settings, person):
    ann = person()
    payload = _payload(purpose, ann.id)
    days = UNDO_EMAIL_DAYS if purpose == Purpose.undo_email else settings.confirm_token_days
    recent = _aged(settings, purpose, payload, days=days - 1)
    expired = _aged(settings, purpose, payload, days=days + 1)
    assert client.get(path.format(recent)).status_code != 400
    assert client.get(path.format(expired)).status_code == 400


def test_unsubscribe_links_never_expire(client, settings, person):
    ann = person()
    years_ago = _aged(settings, Purpose.unsubscribe, ann.id, days=3650)
    assert client.get(f"/u/{years_ago}").status_code == 200


def test_links_signed_with_an_old_key_still_work(client, settings, person, engine):
    from fastapi.testclient import TestClient

    from mailer.web import create_app

    ann = person()
    old_link = unsubscribe_url(settings, ann.id)
    rotated = settings.model_copy(update={"secret_key": "a-brand-new-secret-key-0987",
                                          "old_secret_keys": [settings.secret_key]})
    with TestClient(create_app(rotated, engine=engine), base_url=settings.base_url) as rotated_client:
        assert rotated_client.get(old_link).status_code == 200
        assert rotated_client.post(old_link, content=b"List-Unsubscribe=One-Click",
                                   headers={"content-type": "application/x-www-form-urlencoded"}).status_code == 200
