"""Settings: the only reader of `mailer.toml` and `MAILER_*` environment variables.

Precedence, highest first: values passed in code, environment, the TOML file,
the defaults below. Every field is documented in the sample written by
`mailer init` (`mailer/sample.toml`), and a test checks that they agree.

Relative paths in the file (and the defaults) are relative to the file's own
folder, so `mailer --config /srv/news/mailer.toml` finds `/srv/news/mailer.db`
from anywhere; relative paths in environment variables are relative to the
working folder, as a shell user expects.
"""

from __future__ import annotations

import ipaddress
import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
    TomlConfigSettingsSource,
)

from mailer.errors import ConfigError

CONFIG_FILE = "mailer.toml"
ENV_PREFIX = "MAILER_"
SAMPLE_FILE = Path(__file__).with_name("sample.toml")
PACKAGED_TEMPLATES = Path(__file__).resolve().parent / "templates"
PLACEHOLDER_SECRETS = {"", "changeme", "change-me", "secret"}
# Settings naming a file or folder (or an SQLite URL), resolved against the settings file's folder.
PATH_SETTINGS = ("database_url", "templates_dir", "media_dir", "outbox_dir", "dkim_private_key", "bounce_mailbox",
                 "welcome_issue")
# Settings never shown in full (`mailer config show`); URLs have only their password masked.
SECRET_SETTINGS = ("secret_key", "old_secret_keys", "smtp_password", "admin_token")
URL_SETTINGS = ("database_url", "bounce_mailbox")

_settings_file: ContextVar[Path] = ContextVar("settings_file")  # the file being read, for its source
_chosen_file: ContextVar[Path | None] = ContextVar("chosen_file", default=None)  # `mailer --config FILE`

# A text readers see: one for every language, or one per language (`{en = "...", cy = "..."}`), as in issues.
PerLanguage = str | dict[Literal["en", "cy"], str]
# The settings readers see in their own language; `mailer issue lint` names those without a Welsh text.
PER_LANGUAGE_SETTINGS = ("sender_name", "list_name", "postal_address")


def config_path(explicit: Path | str | None = None) -> Path:
    """The settings file: `explicit`, else the one chosen with `--config`, else `$MAILER_CONFIG`, else `mailer.toml` here."""
    return Path(explicit or _chosen_file.get() or os.environ.get("MAILER_CONFIG") or CONFIG_FILE)


@contextmanager
def chosen_config(path: Path) -> Iterator[None]:
    """Within the block, `config_path()` is `path`: the global `--config` option, for one command run."""
    token = _chosen_file.set(path)
    try:
        yield
    finally:
        _chosen_file.reset(token)


def env_name(key: str) -> str:
    return f"{ENV_PREFIX}{key.upper()}"


def resolve_path(key: str, value: Any, folder: Path) -> Any:
    """`value` of the path setting `key`, made absolute against `folder` when it is relative."""
    if not isinstance(value, str) or not value:
        return value
    if key == "database_url":
        prefix = "sqlite:///"
        rest = value[len(prefix):] if value.startswith(prefix) else ""
        file = rest.partition("?")[0]
        if not file or file.startswith("/") or file == ":memory:":
            return value
        return prefix + str(folder / rest)
    if "://" in value:  # imaps://... for the bounce mailbox
        return value
    path = Path(value).expanduser()
    return value if path.is_absolute() else str(folder / path)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="MAILER_", extra="forbid", frozen=True)

    # Who sends, and to whom readers reply.
    sender_name: PerLanguage = "Newsletter"
    sender_address: str = "newsletter@example.org"
    reply_to: str = ""
    # Public address of the subscriber pages; every link in an email starts with it.
    base_url: str = "http://127.0.0.1:8000"
    # Shown in every footer (required by law for bulk mail in the UK and US).
    postal_address: PerLanguage = "Somewhere Street, Cardiff, Wales"
    # List identity: masthead, pages, notices, the List-Id header and the "why you get this" footer line.
    list_name: PerLanguage = "Newsletter"
    list_id: str = "newsletter.example.org"
    # Storage.
    database_url: str = "sqlite:///mailer.db"
    # Signing key for every link; old keys keep old links valid after rotation.
    secret_key: str = Field(min_length=16)
    old_secret_keys: list[str] = []
    confirm_token_days: int = Field(default=7, ge=1)
    # Content.
    templates_dir: str = ""
    languages: list[Literal["en", "cy"]] = ["en"]
    default_language: Literal["en", "cy"] = "en"
    bilingual_first: Literal["en", "cy"] = "cy"
    timezone: str = "Europe/London"
    # Images from the editor's folder, resized for email; served by `mailer serve` at base_url/media/.
    media_dir: str = "media"
    # Delivery: an empty smtp_host writes messages to outbox_dir instead.
    smtp_host: str = ""
    smtp_port: int = Field(default=587, ge=1, le=65535)
    smtp_security: Literal["starttls", "tls", "none"] = "starttls"
    smtp_username: str = ""
    smtp_password: str = ""
    smtp_timeout: float = Field(default=30.0, gt=0)
    smtp_connections: int = Field(default=1, ge=1, le=32)
    outbox_dir: str = "outbox"
    return_path: str = ""
    rate_per_second: float = Field(default=0.0, ge=0)
    rate_per_hour: int = Field(default=0, ge=0)
    retry_deadline_hours: float = Field(default=48.0, gt=0)
    max_connection_errors: int = Field(default=5, ge=1)
    fault_resume_minutes: int = Field(default=15, ge=0)
    dkim_selector: str = ""
    dkim_private_key: str = ""
    # Web pages (`mailer serve`, and `mailer run`).
    web_host: str = "127.0.0.1"
    web_port: int = Field(default=8000, ge=1, le=65535)
    trusted_proxies: list[str] = []
    form_origins: list[str] = []
    thanks_url: str = ""
    admin_token: str = ""
    # Welcome email and what each issue did.
    welcome_issue: str = ""
    link_counts: bool = False
    # Scheduler (`mailer run`).
    schedule_grace_hours: float = Field(default=6.0, ge=0)
    # Bounces.
    bounce_mailbox: str = ""
    bounce_soft_limit: int = Field(default=3, ge=1)
    bounce_soft_window_days: int = Field(default=30, ge=1)

    @field_validator("secret_key")
    @classmethod
    def _refuse_placeholder(cls, value: str) -> str:
        if value.strip().lower() in PLACEHOLDER_SECRETS:
            raise ValueError("is a placeholder; run `mailer init` or set a long random value")
        return value

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r} (examples: Europe/London, UTC)") from None
        return value

    @field_validator(*PER_LANGUAGE_SETTINGS)
    @classmethod
    def _texts(cls, value: PerLanguage) -> PerLanguage:
        texts = [value] if isinstance(value, str) else list(value.values())
        if not texts or not all(text.strip() for text in texts):
            raise ValueError('must be text, or one text per language like {en = "...", cy = "..."}')
        return value

    def text(self, name: str, language: str) -> str:
        """The per-language setting `name` in `language`, else in the default language, else any.

        "both" (the bilingual email) gives the two, `bilingual_first` first, when they differ.
        """
        value: PerLanguage = getattr(self, name)
        if isinstance(value, str):
            return value
        if language == "both":
            first, second = self.bilingual_first, "cy" if self.bilingual_first == "en" else "en"
            return " / ".join(dict.fromkeys((self.text(name, first), self.text(name, second))))
        return value.get(language) or value.get(self.default_language) or next(iter(value.values()))  # type: ignore[call-overload]

    def missing_texts(self, language: str) -> list[str]:
        """The per-language settings without a text of their own in `language` (one plain text counts as none)."""
        return [name for name in PER_LANGUAGE_SETTINGS
                if isinstance(getattr(self, name), str) or language not in getattr(self, name)]

    @field_validator("base_url")
    @classmethod
    def _absolute_url(cls, value: str) -> str:
        if not value.startswith(("https://", "http://")):
            raise ValueError("must start with https:// (or http:// for local testing)")
        return value.rstrip("/")

    @field_validator("form_origins")
    @classmethod
    def _origins(cls, values: list[str]) -> list[str]:
        origins = []
        for value in values:
            parts = urlsplit(value.strip())
            if parts.scheme not in ("https", "http") or not parts.hostname or parts.path.strip("/") or parts.query:
                raise ValueError(f"{value!r} is not an origin like https://www.example.org (scheme and host only)")
            origins.append(f"{parts.scheme}://{parts.netloc}".lower())
        return origins

    @field_validator("thanks_url")
    @classmethod
    def _thanks_url(cls, value: str) -> str:
        if value and not (value.startswith(("https://", "http://")) and urlsplit(value).hostname):
            raise ValueError("must be empty or a full address starting with https://")
        return value

    @field_validator("trusted_proxies")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        for item in value:
            try:
                ipaddress.ip_network(item, strict=False)
            except ValueError:
                raise ValueError(f"{item!r} is not an IP address or network, e.g. 127.0.0.1 or 10.0.0.0/8") from None
        return value

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return init_settings, env_settings, SettingsFile(settings_cls, _settings_file.get(config_path()))

    @cached_property
    def sender_domain(self) -> str:
        return self.sender_address.rpartition("@")[2]

    @cached_property
    def media_path(self) -> Path:
        return Path(self.media_dir)

    @cached_property
    def templates_path(self) -> Path:
        """`templates_dir`, else the templates shipped with mailer."""
        return Path(self.templates_dir) if self.templates_dir else PACKAGED_TEMPLATES


class SettingsFile(TomlConfigSettingsSource):
    """The TOML file, with relative paths (in it, or by default) made relative to its folder.

    A `templates/` folder beside the file, holding `email/`, overrides the shipped templates
    when `templates_dir` is not set.
    """

    def __init__(self, settings_cls: type[BaseSettings], path: Path) -> None:
        super().__init__(settings_cls, toml_file=path)
        self.folder = path.absolute().parent

    def __call__(self) -> dict[str, Any]:
        values = super().__call__()
        paths = {key: resolve_path(key, values.get(key, self.settings_cls.model_fields[key].default), self.folder)
                 for key in PATH_SETTINGS}
        local = self.folder / "templates"
        if not paths["templates_dir"] and (local / "email").is_dir():
            paths["templates_dir"] = str(local)
        return {**values, **paths}


@contextmanager
def _reading(path: Path) -> Iterator[None]:
    token = _settings_file.set(path)
    try:
        yield
    finally:
        _settings_file.reset(token)


def load_settings(path: Path | str | None = None) -> Settings:
    """Read the settings from `path` (default: `config_path()`) and the environment.

    Any problem becomes one message per value, naming the key and the file, or the
    environment variable the value came from.
    """
    path = config_path(path)
    try:
        with _reading(path):
            return Settings()
    except ValidationError as exc:
        lines = []
        for error in exc.errors():
            key = ".".join(str(part) for part in error["loc"][:1]) or "(file)"
            message = "is missing" if error["type"] == "missing" else error["msg"].removeprefix("Value error, ")
            lines.append(f"{_where(key, path)}: {message}")
        if not path.exists():
            lines.append(f"({path} does not exist: run `mailer init` to write one)")
        raise ConfigError("\n".join(lines)) from None
    except SettingsError as exc:  # a MAILER_* variable that is not valid JSON for a list
        key = next((key for key in Settings.model_fields if f'"{key}"' in str(exc)), "")
        raise ConfigError(f"{_where(key, path)}: cannot parse the value: {exc.__cause__ or exc}") from None
    except (OSError, ValueError) as exc:  # unreadable or malformed TOML
        raise ConfigError(f"{path}: cannot read settings: {exc}") from None


def _from_environment() -> dict[str, str]:
    """The MAILER_* variables that name a setting, by setting (matched without regard to case)."""
    names = {name.upper(): value for name, value in os.environ.items()}
    return {key: names[env_name(key)] for key in Settings.model_fields if env_name(key) in names}


def _where(key: str, path: Path) -> str:
    return f"environment variable {env_name(key)}" if key in _from_environment() else f"{path}: {key}"


@dataclass(frozen=True)
class Origin:
    """Where a setting's value came from: `file`, `environment` or `default`, and the place."""

    source: str
    place: str

    def __str__(self) -> str:
        return self.place if self.source != "default" else "default"


def origins(path: Path | str | None = None) -> dict[str, Origin]:
    """For each setting, where its value in `load_settings(path)` comes from."""
    path = config_path(path)
    in_file = TomlConfigSettingsSource(Settings, toml_file=path)() if path.exists() else {}
    in_environment = _from_environment()
    found = {}
    for key in Settings.model_fields:
        if key in in_environment:
            found[key] = Origin("environment", env_name(key))
        elif key in in_file:
            found[key] = Origin("file", str(path))
        else:
            found[key] = Origin("default", "")
    return found


def shown(key: str, value: Any) -> str:
    """A setting's value as `mailer config show` prints it: secrets masked, URLs without passwords."""
    if key in SECRET_SETTINGS:
        return "(set, hidden)" if value else "(empty)"
    if key in URL_SETTINGS and isinstance(value, str):
        return without_password(value)
    return str(value)


def without_password(url: str) -> str:
    """`url` with its password, if any, replaced by `***`."""
    password = urlsplit(url).password if "://" in url else None
    return url.replace(f":{password}@", ":***@", 1) if password else url


def write_sample(path: Path) -> None:
    """Write the commented sample settings with a freshly generated secret."""
    if path.exists():
        raise ConfigError(f"{path} already exists; not overwriting it")
    text = SAMPLE_FILE.read_text(encoding="utf-8").replace("@SECRET_KEY@", secrets.token_urlsafe(32))
    # It holds the secret key, and soon the SMTP password: readable by its owner only, from the start.
    with os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w", encoding="utf-8") as handle:
        handle.write(text)
