"""The subscriber pages: unsubscribe (with RFC 8058 one-click), preferences, double opt-in subscribe, archive."""

from mailer.web.app import create_app

__all__ = ["create_app"]
