"""The editor's pipeline: YAML issue -> validated `Issue` -> `Rendered` (HTML, text) -> personalised.

    issue = load_issue(Path("issues/2026-12.yaml"))        # IssueError lists every problem
    rendered = render_issue(issue, settings, "cy")          # once per issue and language
    personaliser = Personaliser(rendered)                   # once per send
    personaliser.html({"name": ..., "email": ..., ...})     # per recipient: a join
"""

from mailer.content.loader import load_issue
from mailer.content.personalise import PLACEHOLDER_FIELDS, Personaliser, placeholder
from mailer.content.render import RENDER_LANGUAGES, Rendered, render_issue, variant_languages
from mailer.content.schema import Issue

__all__ = [
    "PLACEHOLDER_FIELDS",
    "RENDER_LANGUAGES",
    "Issue",
    "Personaliser",
    "Rendered",
    "load_issue",
    "placeholder",
    "render_issue",
    "variant_languages",
]
