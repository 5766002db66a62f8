"""Headers on every response, no token in any log line, and no bad request that ends in a 500."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import pytest

from mailer.tokens import confirm_url, preferences_url, unsubscribe_url
from mailer.web.security import MAX_BODY_BYTES, redact

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def urls(settings, person):
    ann = person()
    return {
        "unsubscribe": unsubscribe_url(settings, ann.id),
        "resubscribe": unsubscribe_url(settings, ann.id) + "/resubscribe",
        "preferences": preferences_url(settings, ann.id),
        "confirm": confirm_url(settings, ann.id, request_id=1),
        "subscribe": f"{settings.base_url}/subscribe",
        "archive": f"{settings.base_url}/archive",
        "feed": f"{settings.base_url}/archive/feed.atom",
        "static": f"{settings.base_url}/static/site.css",
        "missing": f"{settings.base_url}/no/such/page",
        "bad link": f"{settings.base_url}/u/forged",
    }


def test_security_headers_on_every_response(client, urls):
    responses = [client.get(url) for url in urls.values()]
    responses.append(client.put(urls["unsubscribe"]))
    responses.append(client.post(urls["subscribe"], content=b"x" * (MAX_BODY_BYTES + 1)))
    for response in responses:
        where = f"{response.request.method} {response.request.url} -> {response.status_code}"
        assert response.headers["x-content-type-options"] == "nosniff", where
        assert response.headers["referrer-policy"] == "no-referrer", where
        csp = response.headers["content-security-policy"]
        assert "frame-ancestors 'none'" in csp and "'unsafe-inline'" not in csp.split("script-src")[-1], where
        assert "strict-transport-security" in response.headers, where  # base_url is https
    page_csp = responses[0].headers["content-security-policy"]
    for directive in ("default-src 'self'", "script-src 'none'", "style-src 'self'", "form-action 'self'"):
        assert directive in page_csp
    assert responses[0].headers["cache-control"] == "no-store"  # a personal page: no shared cache keeps it


def test_templates_have_no_script_no_inline_style_no_external_asset():
    for path in (ROOT / "mailer" / "templates" / "web").rglob("*.html"):
        text = path.read_text(encoding="utf-8")
        assert "<script" not in text and " style=" not in text and "<style" not in text, path
        assert not re.search(r'(src|href)="(https?:)?//', text), path


def test_wrong_methods_are_refused_plainly(client, urls):
    for name in ("unsubscribe", "preferences", "subscribe", "archive", "confirm"):
        for method in ("PUT", "DELETE", "PATCH"):
            response = client.request(method, urls[name])
            assert response.status_code == 405, (method, name)
            assert "allow" in response.headers and "cannot be used that way" in response.text
    assert client.post(urls["archive"]).status_code == 405


def test_oversized_bodies_are_refused(client, urls):
    big = b"name=" + b"x" * (MAX_BODY_BYTES + 10)
    declared = client.post(urls["subscribe"], content=big,
                           headers={"content-type": "application/x-www-form-urlencoded"})
    assert declared.status_code == 413

    def chunks():  # no Content-Length: counted as it streams in
        for _ in range(20):
            yield b"x" * 8192

    streamed = client.post(urls["preferences"], content=chunks(),
                           headers={"content-type": "application/x-www-form-urlencoded"})
    assert streamed.status_code == 413


BAD_BODIES = {
    "empty": (b"", "application/x-www-form-urlencoded"),
    "bad UTF-8": (b"email=%ff%fe%fd&name=\xff\xfe\xc3\x28&csrf=\xff", "application/x-www-form-urlencoded"),
    "bad percent-escapes": (b"email=%zz%&name=%", "application/x-www-form-urlencoded"),
    "oversized field": (b"name=" + b"n" * 40_000, "application/x-www-form-urlencoded"),
    "too many fields": (b"&".join(b"topics=t%d" % i for i in range(400)), "application/x-www-form-urlencoded"),
    "a file": (b'--b\r\nContent-Disposition: form-data; name="name"; filename="a.txt"\r\n\r\nhello\r\n--b--\r\n',
               "multipart/form-data; boundary=b"),
    "broken multipart": (b"--b\r\nnonsense\r\n\r\n", "multipart/form-data; boundary=b"),
    "multipart without boundary": (b"anything", "multipart/form-data"),
    "multipart bad UTF-8": (b'--b\r\nContent-Disposition: form-data; name="email"\r\n\r\n\xff\xfe\r\n--b--\r\n',
                            "multipart/form-data; boundary=b"),
    "JSON": (b'{"email": "a@example.org"}', "application/json"),
    "no content type": (b"email=a@example.org", ""),
    "NUL bytes": (b"email=a%00@example.org&name=A%00nn&consent=yes", "application/x-www-form-urlencoded"),
    "one-click with extras": (b"List-Unsubscribe=One-Click&List-Unsubscribe=Other&x=%ff",
                              "application/x-www-form-urlencoded"),
}


@pytest.mark.parametrize("case", list(BAD_BODIES))
def test_bad_input_never_gives_a_500(case, client, urls, settings):
    body, content_type = BAD_BODIES[case]
    headers = {"origin": settings.base_url}
    if content_type:
        headers["content-type"] = content_type
    for name in ("unsubscribe", "resubscribe", "preferences", "subscribe", "confirm"):
        response = client.post(urls[name], content=body, headers=headers)
        assert response.status_code < 500, (case, name, response.status_code)
        assert response.headers["content-type"].startswith(("text/html", "text/plain")), (case, name)


def test_odd_query_strings_and_headers(client, urls):
    for query in ("?lang=xx", "?lang=", "?lang=cy&lang=en", "?lang=%ff", "?" + "a=1&" * 500):
        assert client.get(urls["preferences"] + query).status_code == 200, query
    for header in ("", "*", "cy;q=abc, en;q=", ",,,;;;", "x" * 5000):
        assert client.get(urls["subscribe"], headers={"accept-language": header}).status_code == 200


def test_tokens_are_cut_out_of_log_lines(client, urls, caplog):
    caplog.set_level(logging.INFO, logger="mailer.web")
    for name in ("unsubscribe", "preferences", "confirm"):
        client.get(urls[name])
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert "GET /u/… 200" in logged and "GET /p/… 200" in logged and "GET /confirm/… 200" in logged
    for name in ("unsubscribe", "preferences", "confirm"):
        token = urls[name].rsplit("/", 1)[1]
        assert token not in logged


def test_redact():
    assert redact("/u/abc.def/resubscribe") == "/u/…/resubscribe"
    assert redact("/email/abc") == "/email/…"
    assert redact("/email/abc.def/undo") == "/email/…/undo"
    assert redact("/archive/3") == "/archive/3"


def test_uvicorn_writes_no_access_log_of_its_own(settings, engine):
    from mailer.web.server import server_config

    config = server_config(settings, engine=engine, port=8123)
    assert config.access_log is False and config.port == 8123 and config.host == settings.web_host
