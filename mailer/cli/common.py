"""What every command module shares: settings and database sessions, made once per run."""

from __future__ import annotations

from functools import lru_cache

from rich.console import Console

from mailer.config import Settings, load_settings

console = Console(highlight=False)


@lru_cache(maxsize=1)
def settings() -> Settings:
    """The settings for this command run (a command runs in its own process)."""
    return load_settings()
