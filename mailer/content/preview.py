"""`mailer issue preview`: the email at desktop and phone widths, with its plain text, on localhost.

Every request checks the modification times of the issue and the templates and
renders again when one changed; the page asks for the version once a second and
reloads itself when it moves on. Everything is served from this process: the
page loads nothing from anywhere else. Each frame grows to the height of the
email in it, so the phone frame shows the footer and a bilingual email both halves;
the email's "View in browser" link opens the web version, served here too.
"""

from __future__ import annotations

import html
import threading
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from mailer.config import Settings
from mailer.content.build import default_language, sample_values
from mailer.content.images import CONTENT_TYPES, MEDIA_PATH, local_images, media_file, source_path
from mailer.content.loader import load_issue
from mailer.content.personalise import Personaliser
from mailer.content.render import render_issue
from mailer.errors import MailerError

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Preview: {title}</title>
<style>
body {{ margin: 0; padding: 16px; background: #d9dde1; font: 15px/1.4 system-ui, sans-serif; color: #1f2933; }}
h1 {{ font-size: 17px; margin: 0 0 12px; }}
.frames {{ display: flex; gap: 24px; align-items: flex-start; flex-wrap: wrap; }}
figure {{ margin: 0; }}
figcaption {{ font-weight: bold; margin-bottom: 6px; }}
iframe {{ border: 1px solid #9aa5b1; background: #fff; height: 800px; display: block; }}
pre {{ background: #fff; padding: 16px; white-space: pre-wrap; max-width: 80ch; border: 1px solid #9aa5b1; }}
.error {{ background: #fde8e8; border: 2px solid #c8102e; padding: 12px; white-space: pre-wrap; }}
</style>
<script src="/reload.js" data-version="{version}"></script>
</head><body>
<h1>{title} <small>({language}; re-renders when the issue or a template changes)</small></h1>
{body}
</body></html>
"""
FRAMES = """<div class="frames">
<figure><figcaption>Desktop, 600 px</figcaption><iframe title="Desktop" width="600" src="/email.html?v={version}"></iframe></figure>
<figure><figcaption>Phone, 375 px</figcaption><iframe title="Phone" width="375" src="/email.html?v={version}"></iframe></figure>
<figure><figcaption>Plain text</figcaption><pre>{text}</pre></figure>
</div>"""
RELOAD_JS = """(function () {
  var mine = document.currentScript.dataset.version;
  // Each frame as tall as the email in it (the frames are same-origin, so their height can be read).
  function fit(frame) {
    var doc = frame.contentDocument;
    if (doc && doc.documentElement) { frame.style.height = doc.documentElement.scrollHeight + "px"; }
  }
  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("iframe").forEach(function (frame) {
      frame.addEventListener("load", function () { fit(frame); });
      fit(frame);
    });
  });
  setInterval(function () {
    fetch("/version").then(function (r) { return r.text(); }).then(function (v) {
      if (v !== mine) { location.reload(); }
    }).catch(function () {});
  }, 1000);
})();
"""


WEB_VERSION = "/web"  # the preview's own page for the email's "View in browser" link


@dataclass(frozen=True)
class Snapshot:
    version: int
    title: str
    html: str = ""
    text: str = ""
    web: str = ""  # the web version: the email with no reader's name or address, as the archive shows it
    error: str = ""


class Preview:
    """The latest rendering of one issue, redone when its file or a template changes."""

    def __init__(self, path: Path, settings: Settings, language: str | None):
        self.path = path
        self.settings = settings
        self.language = language
        self._lock = threading.Lock()
        self._stamp: tuple[tuple[str, int], ...] = ()
        self._snapshot = Snapshot(0, path.name)
        self._images: list[Path] = []  # the issue's local images, as of the last rendering

    def _sources(self) -> tuple[tuple[str, int], ...]:
        files = [self.path, *self._images, *sorted((self.settings.templates_path / "email").rglob("*"))]
        return tuple((str(file), file.stat().st_mtime_ns) for file in files if file.is_file())

    def current(self) -> Snapshot:
        with self._lock:
            if self._stamped() != self._stamp:
                self._snapshot = self._render(self._snapshot.version + 1)
                self._stamp = self._stamped()  # now with the images this rendering found
            return self._snapshot

    def _stamped(self) -> tuple[tuple[str, int], ...]:
        try:
            return self._sources()
        except OSError as exc:
            return (("error", hash(str(exc))),)

    def _render(self, version: int) -> Snapshot:
        try:
            issue = load_issue(self.path)
            self._images = [source_path(issue, image.src) for image in local_images(issue)]
            language = self.language or default_language(issue)
            rendered = render_issue(issue, self.settings, language)
        except MailerError as exc:
            return Snapshot(version, self.path.name, error=str(exc))
        values = {**sample_values(self.settings, language), "web_url": WEB_VERSION}
        personal = Personaliser(rendered)
        # The issue's own images from here, where they were just published, whether or not `mailer serve` runs.
        local = f"{self.settings.base_url}{MEDIA_PATH}"
        email, web = (personal.html(page_values).replace(local, MEDIA_PATH)
                      for page_values in (values, {**values, "name": "", "email": ""}))
        return Snapshot(version, f"{personal.subject(values)} [{language}]", email, personal.text(values), web)


def make_server(preview: Preview, host: str = "127.0.0.1", port: int = 8025) -> ThreadingHTTPServer:
    """An HTTP server for `preview`; call `serve_forever()` on it (port 0 picks a free port)."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
            snapshot = preview.current()
            route = self.path.partition("?")[0]
            if route == "/":
                if snapshot.error:
                    body = f'<p class="error">{html.escape(snapshot.error)}</p>'
                else:
                    body = FRAMES.format(version=snapshot.version, text=html.escape(snapshot.text))
                page = PAGE.format(title=html.escape(snapshot.title), version=snapshot.version,
                                   language=html.escape(preview.language or "default language"), body=body)
                self._send(page, "text/html")
            elif route == "/email.html":
                self._send(snapshot.html or f"<pre>{html.escape(snapshot.error)}</pre>", "text/html")
            elif route == WEB_VERSION:
                self._send(snapshot.web or f"<pre>{html.escape(snapshot.error)}</pre>", "text/html")
            elif route == "/version":
                self._send(str(snapshot.version), "text/plain")
            elif route == "/reload.js":
                self._send(RELOAD_JS, "text/javascript")
            elif route.startswith(MEDIA_PATH) and (image := media_file(preview.settings, route[len(MEDIA_PATH):])):
                self._send(image.read_bytes(), CONTENT_TYPES[image.suffix.lstrip(".")])
            else:
                self.send_error(HTTPStatus.NOT_FOUND)

        def _send(self, body: str | bytes, content_type: str) -> None:
            data = body.encode("utf-8") if isinstance(body, str) else body
            self.send_response(HTTPStatus.OK)
            self.send_header("Content-Type", f"{content_type}; charset=utf-8" if isinstance(body, str) else content_type)
            self.send_header("Content-Length", str(len(data)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: object) -> None:  # quiet: the editor watches the page
            pass

    try:
        return ThreadingHTTPServer((host, port), Handler)
    except OSError as exc:
        raise MailerError(f"cannot serve the preview on {host}:{port}: {exc.strerror}; try another --port") from None
