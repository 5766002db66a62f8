"""The email in a real browser (Debian's Chromium through Playwright) at phone and desktop widths."""

from __future__ import annotations

import shutil

import pytest

from mailer.content import Personaliser, load_issue, render_issue
from mailer.content.build import sample_values
from tests.content.conftest import ROOT, SAMPLE_BILINGUAL, SAMPLE_EN
from tests.fixtures.waiting import PATIENCE

pytestmark = pytest.mark.browser

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]
ARTIFACTS = ROOT / "test-artifacts"
# Stands in for the issue's photos (a 16:9 picture), so the screenshots show the layout as readers see it.
PICTURE = (b'<svg xmlns="http://www.w3.org/2000/svg" width="1200" height="675">'
           b'<rect width="1200" height="675" fill="#8fb8c2"/><circle cx="600" cy="337" r="180" fill="#c8102e"/></svg>')


@pytest.fixture(scope="module")
def browser():
    if not shutil.which(CHROMIUM):
        pytest.skip("Debian's chromium is not installed")
    playwright_api = pytest.importorskip("playwright.sync_api")
    with playwright_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        yield browser
        browser.close()


FOOTER_LINKS = {"en": ("Unsubscribe", "Update your preferences", "View in browser"),
                "both": ("Dad-danysgrifio", "Diweddaru eich dewisiadau", "Gweld yn eich porwr")}


@pytest.mark.parametrize("sample, language", [(SAMPLE_EN, "en"), (SAMPLE_BILINGUAL, "both")])
def test_email_fits_phone_and_desktop(browser, settings, sample, language):
    rendered = render_issue(load_issue(sample), settings, language)
    html = Personaliser(rendered).html(sample_values(settings, language))
    ARTIFACTS.mkdir(exist_ok=True)
    requests: list[str] = []
    for width in (375, 600):
        page = browser.new_page(viewport={"width": width, "height": 800})
        # Every request is answered here: nothing leaves the machine.
        page.route("**/*", lambda route: (requests.append(route.request.url),
                                          route.fulfill(body=PICTURE, content_type="image/svg+xml")))
        page.set_content(html, wait_until="load")
        assert page.evaluate("document.documentElement.scrollWidth") <= width
        assert page.evaluate("document.documentElement.lang") == ("cy" if language == "both" else "en")
        alts = page.evaluate("Array.from(document.images, image => image.getAttribute('alt') || '')")
        assert alts and all(alt.strip() for alt in alts)
        if language == "both":
            assert page.evaluate("Array.from(document.querySelectorAll('.mailer-lang-cy, .mailer-lang-en'), e => e.lang)") == ["en", "cy", "en"]
        button = page.locator("a", has_text="Read").first.bounding_box()
        assert button and button["height"] >= 44  # big enough to tap
        images = page.evaluate("Array.from(document.images, image => [image.naturalWidth, image.width])")
        assert all(natural > 0 and 0 < shown <= width for natural, shown in images)  # loaded, and scaled to fit
        if width == 375:  # the footer's links, one a line on a phone
            footer = [page.locator("a", has_text=label).first.bounding_box() for label in FOOTER_LINKS[language]]
            assert all(box and box["height"] >= 44 for box in footer)
        assert all(url.startswith("https://example.org/") for url in requests)  # only the issue's own images were asked for
        page.screenshot(path=str(ARTIFACTS / f"email-{sample.stem}-{language}-{width}.png"), full_page=True)
        page.close()


@pytest.fixture
def bilingual_preview(settings, tmp_path):
    import threading

    from mailer.content.preview import Preview, make_server

    issue = tmp_path / "issue.yaml"
    shutil.copy(SAMPLE_BILINGUAL, issue)
    server = make_server(Preview(issue, settings, None), port=0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_preview_frames_show_the_whole_email_and_view_in_browser_works(browser, bilingual_preview):
    page = browser.new_page(viewport={"width": 1100, "height": 900})
    page.route("https://**/*", lambda route: route.fulfill(body=PICTURE, content_type="image/svg+xml"))
    page.goto(bilingual_preview + "/", wait_until="load")
    fitted = ("Array.from(document.querySelectorAll('iframe')).every(f => f.contentDocument"
              " && f.contentDocument.readyState === 'complete'"
              " && Math.abs(f.clientHeight - f.contentDocument.documentElement.scrollHeight) <= 2)")
    page.wait_for_function(fitted, timeout=PATIENCE * 1000)
    for title in ("Desktop", "Phone"):
        frame = page.frame_locator(f'iframe[title="{title}"]')
        box = page.locator(f'iframe[title="{title}"]').bounding_box()
        assert box and box["height"] > 1400  # the whole email: longer than the old fixed frame
        for language in ("cy", "en"):  # both halves, each down to its footer
            footer = frame.locator(f".mailer-lang-{language} .footer").last.bounding_box()
            assert footer and footer["y"] + footer["height"] <= box["y"] + box["height"] + 1
    phone = page.frame_locator('iframe[title="Phone"]')
    with page.expect_response(lambda response: "/web" in response.url) as response:
        phone.locator(".mailer-lang-en a", has_text="View in browser").click()
    assert response.value.status == 200
    page.wait_for_function("(() => { const d = document.querySelector('iframe[title=Phone]').contentDocument;"
                           " return d.location.pathname === '/web' && d.readyState === 'complete'; })()",
                           timeout=PATIENCE * 1000)
    web = phone.locator("body").inner_text()
    assert "A co-production network for Wales" in web and "reader@example.org" not in web
    page.close()
