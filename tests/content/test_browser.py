"""The email in a real browser (Debian's Chromium through Playwright) at phone and desktop widths."""

from __future__ import annotations

import shutil

import pytest

from mailer.content import Personaliser, load_issue, render_issue
from mailer.content.build import sample_values
from tests.content.conftest import ROOT, SAMPLE_BILINGUAL, SAMPLE_EN

pytestmark = pytest.mark.browser

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]
ARTIFACTS = ROOT / "test-artifacts"


@pytest.fixture(scope="module")
def browser():
    if not shutil.which(CHROMIUM):
        pytest.skip("Debian's chromium is not installed")
    playwright_api = pytest.importorskip("playwright.sync_api")
    with playwright_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        yield browser
        browser.close()


@pytest.mark.parametrize("sample, language", [(SAMPLE_EN, "en"), (SAMPLE_BILINGUAL, "both")])
def test_email_fits_phone_and_desktop(browser, settings, sample, language):
    rendered = render_issue(load_issue(sample), settings, language)
    html = Personaliser(rendered).html(sample_values(settings, language))
    ARTIFACTS.mkdir(exist_ok=True)
    for width in (375, 600):
        page = browser.new_page(viewport={"width": width, "height": 800})
        requests: list[str] = []
        page.route("**/*", lambda route: (requests.append(route.request.url), route.abort()))  # loopback only: nothing leaves
        page.set_content(html, wait_until="load")
        assert page.evaluate("document.documentElement.scrollWidth") <= width
        assert page.evaluate("document.documentElement.lang") == ("cy" if language == "both" else "en")
        alts = page.evaluate("Array.from(document.images, image => image.getAttribute('alt') || '')")
        assert alts and all(alt.strip() for alt in alts)
        if language == "both":
            assert page.evaluate("Array.from(document.querySelectorAll('.mailer-lang-cy, .mailer-lang-en'), e => e.lang)") == ["en", "cy", "en"]
        button = page.locator("a", has_text="Read").first.bounding_box()
        assert button and button["height"] >= 40  # big enough to tap
        assert all(url.startswith("https://example.org/") for url in requests)  # only the issue's own images were asked for
        page.screenshot(path=str(ARTIFACTS / f"email-{sample.stem}-{language}-{width}.png"), full_page=True)
        page.close()
