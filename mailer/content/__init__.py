"""The editor's pipeline: YAML issue -> validated `Issue` -> `Rendered` (HTML, text) -> personalised.

    issue = load_issue(Path("issues/2026-12.yaml"))        # IssueError lists every problem
    rendered = render_issue(issue, settings, "cy")          # once per issue and language
    personaliser = Personaliser(rendered)                   # once per send
    personaliser.html({"name": ..., "email": ..., ...})     # per recipient: a join
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mailer.content.loader import load_issue
    from mailer.content.personalise import PLACEHOLDER_FIELDS, Personaliser, placeholder
    from mailer.content.render import RENDER_LANGUAGES, Rendered, render_issue, variant_languages
    from mailer.content.schema import Issue

# Each name is imported from its module on first use, so `mailer issue validate`
# (which needs only the loader) does not import the renderer.
_HOMES = {
    "load_issue": "loader", "PLACEHOLDER_FIELDS": "personalise", "Personaliser": "personalise",
    "placeholder": "personalise", "RENDER_LANGUAGES": "render", "Rendered": "render", "render_issue": "render",
    "variant_languages": "render", "Issue": "schema",
}

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


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module 'mailer.content' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"mailer.content.{_HOMES[name]}"), name)
    globals()[name] = value
    return value
