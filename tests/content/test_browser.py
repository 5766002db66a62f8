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


@pytest.fixture
def pages_server(settings, engine):
    """`mailer serve`'s app on a free port; yields the settings whose base_url points at it."""
    import threading

    import uvicorn

    from mailer.web.server import server_config
    from tests.fixtures.smtp import free_port
    from tests.fixtures.waiting import wait_for

    port = free_port()
    live = settings.model_copy(update={"base_url": f"http://127.0.0.1:{port}"})
    server = uvicorn.Server(server_config(live, host="127.0.0.1", port=port, engine=engine))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_for(lambda: server.started or not thread.is_alive(), "uvicorn to start")
    assert thread.is_alive(), "uvicorn stopped at start"
    yield live
    server.should_exit = True
    thread.join(timeout=PATIENCE)


def test_a_local_image_is_resized_served_and_shown_at_phone_and_desktop_widths(browser, pages_server, tmp_path):
    from PIL import Image

    photo = Image.new("RGB", (3200, 2400), (143, 184, 194))
    photo.paste((200, 16, 46), (1200, 800, 2000, 1600))
    photo.save(tmp_path / "launch.jpg", quality=90)
    issue = tmp_path / "issue.yaml"
    issue.write_text('title: "Launch"\ndate: 2026-12-01\npreheader: "Pictures"\nsections:\n'
                     '  - heading: "The launch"\n    image: {src: launch.jpg, alt: "Members at the launch"}\n'
                     '    body: "Words under the picture."\n', encoding="utf-8")
    rendered = render_issue(load_issue(issue), pages_server, "en")
    html = Personaliser(rendered).html(sample_values(pages_server, "en"))
    ARTIFACTS.mkdir(exist_ok=True)
    for width in (375, 600):
        page = browser.new_page(viewport={"width": width, "height": 800})
        requested: list[str] = []
        page.on("request", lambda request, seen=requested: seen.append(request.url))
        page.set_content(html, wait_until="load")
        [image] = page.evaluate("Array.from(document.images, i => ({src: i.currentSrc, natural: i.naturalWidth,"
                                " naturalHeight: i.naturalHeight, shown: i.width, shownHeight: i.height,"
                                " attribute: i.getAttribute('width'), heightAttribute: i.getAttribute('height')}))")
        assert image["src"].startswith(pages_server.base_url + "/media/launch-")
        assert (image["natural"], image["naturalHeight"]) == (1200, 900)  # resized, served by the pages
        assert (image["attribute"], image["heightAttribute"]) == ("544", "408")
        assert 0 < image["shown"] <= min(width, 544) and image["shown"] >= min(width, 544) - 60  # fills the column
        assert abs(image["shownHeight"] - image["shown"] * 0.75) <= 1  # in proportion on a phone too
        assert page.evaluate("document.documentElement.scrollWidth") <= width
        assert requested == [image["src"]]  # nothing else was fetched
        page.screenshot(path=str(ARTIFACTS / f"email-local-image-{width}.png"), full_page=True)
        page.close()
