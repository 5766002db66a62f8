"""`mailer issue ...`: the editor's commands, from a new YAML file to a built email."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING

import click

from mailer.cli.common import LANGUAGES, LANGUAGES_OR_BOTH, group, issue_argument, settings
from mailer.cli.output import echo

if TYPE_CHECKING:
    from mailer.store.models import Topic

language_option = click.option(
    "-l", "--language", type=click.Choice(LANGUAGES_OR_BOTH), default=None,
    help="Language variant: en, cy, or both (bilingual). Default: the issue's language, or both.",
)


@group(examples=["mailer issue new 2026-12-news", "mailer issue validate issues/*.yaml"])
def issue() -> None:
    """Write, check and build newsletter issues (YAML files in issues/)."""


@issue.command(examples=["mailer issue new", "mailer issue new 2026-12-news --dir issues"])
@click.argument("slug", required=False)
@click.option("--dir", "folder", type=click.Path(file_okay=False, path_type=Path), default=Path("issues"),
              show_default=True, metavar="FOLDER", help="Folder of issue files.")
def new(slug: str | None, folder: Path) -> None:
    """Start a new issue from a commented skeleton (SLUG defaults to this month, e.g. 2026-12)."""
    from mailer.content.skeleton import new_issue

    path = new_issue(folder, slug)
    echo(f"Wrote {path}. Edit it, then run: mailer issue validate {path}")


def _each_issue(paths: Iterable[Path], work: Callable[[Path], list[str]]) -> int:
    """Run `work` on each issue file, printing every line it returns; the number of files with problems.

    An invalid file is reported with its problems and the others are still checked.
    """
    from mailer.errors import IssueError

    failed = 0
    for path in paths:
        try:
            lines = work(path)
        except IssueError as exc:
            lines = [str(problem) for problem in exc.problems]
        for line in lines:
            echo(line)
        failed += bool(lines)
    return failed


@issue.command(examples=["mailer issue validate issues/2026-12-news.yaml", "mailer issue validate issues/*.yaml"])
@issue_argument(many=True)
def validate(issue_paths: tuple[Path, ...]) -> None:
    """Check issue files; print every problem as file:line:column: field: message."""
    _validate(issue_paths)


def _validate(issue_paths: Iterable[Path]) -> None:
    """`mailer issue validate`, also run after `mailer issue translate import`."""
    from mailer.content.loader import load_issue

    def check(path: Path) -> list[str]:
        load_issue(path)
        echo(f"{path}: ok")
        return []

    if _each_issue(issue_paths, check):
        raise click.exceptions.Exit(1)


@issue.command(examples=["mailer issue lint issues/2026-12-news.yaml", "mailer issue lint --parity issues/*.yaml"])
@issue_argument(many=True)
@click.option("--parity", is_flag=True,
              help="Also fail when the English and Welsh differ in sections, links, buttons or images, or one links "
                   "to the other's page where the issue gives one in its own language.")
def lint(issue_paths: tuple[Path, ...], parity: bool) -> None:
    """Warn about what a valid issue may still get wrong: alt text, links, preheader, size, subject,
    translations out of date, and texts of the list (name, topics) missing a language.
    """
    from mailer.cli.output import plural
    from mailer.content.lint import lint_issue, list_text_warnings
    from mailer.content.loader import load_issue
    from mailer.content.parity import parity_problems

    list_warnings = list_text_warnings(settings(), _topics())  # the list's own texts: said once, after the issues'
    total = len(list_warnings)

    def check(path: Path) -> list[str]:
        nonlocal total
        loaded = load_issue(path)
        warnings = [str(warning) for warning in [*lint_issue(loaded, settings()),
                                                 *(parity_problems(loaded) if parity else [])]]
        total += len(warnings)
        if not warnings and not list_warnings:
            echo(f"{path}: no warnings")
        return warnings

    failed = _each_issue(issue_paths, check)
    for warning in list_warnings:
        echo(warning)
    if failed or list_warnings:
        if total:
            echo(plural(total, "warning"), err=True)
        raise click.exceptions.Exit(1)


def _topics() -> list[Topic] | None:
    """The list's topics, to check their texts; None when there is no database to read (lint works without one)."""
    from mailer.cli.common import session
    from mailer.errors import MailerError
    from mailer.store.topics import list_topics

    url = settings().database_url
    if url.startswith("sqlite:///") and not Path(url.removeprefix("sqlite:///")).exists():
        return None
    try:
        with session() as db:
            return [topic for topic, _count in list_topics(db)]
    except MailerError:
        return None


@issue.command(examples=["mailer issue build issues/2026-12-news.yaml", "mailer issue build issues/*.yaml -o build -l cy"])
@issue_argument(many=True)
@click.option("-o", "--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=Path("build"),
              show_default=True, metavar="FOLDER", help="Folder for the built files.")
@language_option
def build(issue_paths: tuple[Path, ...], out_dir: Path, language: str | None) -> None:
    """Write the HTML, plain text, MJML and a sample .eml of each issue, and print their sizes."""
    from mailer.cli.output import size, styled
    from mailer.content.build import build_issue, default_language
    from mailer.content.lint import GMAIL_CLIP_BYTES
    from mailer.content.loader import load_issue

    def build_one(path: Path) -> list[str]:
        loaded = load_issue(path)
        built = build_issue(loaded, settings(), out_dir, language or default_language(loaded))
        width = max(len(str(file)) for file in built.files)
        for file in built.files:
            n_bytes = file.stat().st_size
            clipped = file.suffix == ".html" and n_bytes > GMAIL_CLIP_BYTES
            echo(f"{file!s:<{width}}  {size(n_bytes):>9}", *([styled("over 102 KB: Gmail will clip it", "red")] if clipped else []))
        return []

    if _each_issue(issue_paths, build_one):
        raise click.exceptions.Exit(1)


@issue.command(examples=["mailer issue preview issues/2026-12-news.yaml", "mailer issue preview issues/2026-12-news.yaml -l cy --port 8026"])
@issue_argument()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8025, show_default=True, type=click.IntRange(0, 65535), help="Port (0: any free one).")
@language_option
def preview(issue_path: Path, host: str, port: int, language: str | None) -> None:
    """Serve the email at desktop and phone widths beside its plain text; re-renders on every change."""
    from mailer.content.preview import Preview, make_server

    server = make_server(Preview(issue_path, settings(), language), host, port)
    echo(f"Previewing {issue_path} at http://{host}:{server.server_address[1]}/ (Ctrl-C to stop)")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


@issue.group(examples=["mailer issue translate export issues/2026-12.yaml --to cy -o 2026-12.cy.po",
                       "mailer issue translate import 2026-12.cy.po"])
def translate() -> None:
    """Hand an issue's texts to a translator (PO or XLIFF 2.0) and merge their translation back."""


@translate.command("export", examples=["mailer issue translate export issues/2026-12.yaml --to cy -o 2026-12.cy.po"])
@issue_argument()
@click.option("--to", "target", type=click.Choice(LANGUAGES), required=True, help="Language to translate into.")
@click.option("-o", "--out", "out_file", type=click.Path(dir_okay=False, path_type=Path), required=True, metavar="FILE",
              help="The file for the translator: NAME.po (gettext) or NAME.xlf / NAME.xliff (XLIFF 2.0).")
@click.option("--all", "everything", is_flag=True, help="Every text, not only those missing or out of date.")
@click.option("--force", is_flag=True, help="Replace FILE if it exists (a translator's work in it not imported is lost).")
def translate_export(issue_path: Path, target: str, out_file: Path, everything: bool, force: bool) -> None:
    """Write the texts that have no translation, or whose source changed since, for a translation tool."""
    from mailer.cli.output import plural
    from mailer.content.loader import load_issue
    from mailer.content.transfiles import file_format, write_file
    from mailer.content.translation import to_translate
    from mailer.errors import MailerError
    from mailer.i18n import LANGUAGE_NAMES, other_language

    file_format(out_file)  # a wrong extension is refused before any work
    if out_file.exists() and not force:
        raise MailerError(f"{out_file} already exists: import it first (mailer issue translate import {out_file}), "
                          "or add --force to replace it")
    loaded = load_issue(issue_path, every_language=False)  # what is missing is what gets translated
    units = to_translate(loaded, target, everything=everything)
    if not units:
        echo(f"{issue_path}: every text has its {LANGUAGE_NAMES[target]}, up to date; nothing to translate.")
        return
    write_file(out_file, units, issue=issue_path, source=other_language(target), target=target)
    changed = sum(unit.changed for unit in units)
    echo(f"Wrote {out_file}: {plural(len(units), 'text')} to translate into {LANGUAGE_NAMES[target]}"
         + (f" ({changed} changed since translated, marked for review)" if changed else "")
         + f". Then: mailer issue translate import {out_file}")


@translate.command("import", examples=["mailer issue translate import 2026-12.cy.po",
                                       "mailer issue translate import 2026-12.cy.xlf --issue issues/2026-12.yaml"])
@click.argument("translation", metavar="FILE", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--issue", "issue_file", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              metavar="ISSUE", help="The issue to merge into (default: the one the file was exported from).")
def translate_import(translation: Path, issue_file: Path | None) -> None:
    """Merge a translated PO or XLIFF file into its issue, keeping the YAML's comments and layout, then validate."""
    from mailer.cli.output import plural
    from mailer.content.transfiles import read_file
    from mailer.content.translation import TranslationError, merge
    from mailer.i18n import LANGUAGE_NAMES, other_language

    translated = read_file(translation)
    issue_file = issue_file or translated.issue
    if issue_file is None or not issue_file.is_file():
        raise TranslationError(f"{translation}: names the issue {str(issue_file or '(none)')!r}, which is not here; "
                               "give it with --issue PATH")
    report = merge(issue_file, translated.target, translated.translations)
    name = LANGUAGE_NAMES[translated.target]
    echo(f"Merged {plural(len(report.merged), name + ' text')} into {issue_file}.")
    for path in report.left:
        echo(f"  not translated yet (empty, or marked fuzzy or for review): {path}")
    for path in report.unknown:
        echo(f"  skipped: {path}: the issue has no such text now")
    for path in report.changed_since:
        echo(f"  {path}: the {LANGUAGE_NAMES[other_language(translated.target)]} changed after the export; "
             "`mailer issue lint` shows it out of date")
    _validate([issue_file])


@translate.command("mark", examples=["mailer issue translate mark issues/2026-12.yaml --to cy"])
@issue_argument()
@click.option("--to", "target", type=click.Choice(LANGUAGES), required=True, help="The language translated into.")
def translate_mark(issue_path: Path, target: str) -> None:
    """Record that every translation written by hand is up to date with its source as it is now."""
    from mailer.cli.output import plural
    from mailer.content.loader import load_issue
    from mailer.content.translation import mark_translated
    from mailer.i18n import LANGUAGE_NAMES

    paths = mark_translated(load_issue(issue_path, every_language=False), target)
    echo(f"{issue_path}: {plural(len(paths), LANGUAGE_NAMES[target] + ' text')} marked up to date.")


@issue.command(examples=["mailer issue schema > issue.schema.json", "mailer issue schema -o issue.schema.json"])
@click.option("-o", "--out", "out_file", type=click.Path(dir_okay=False, path_type=Path), default=None,
              metavar="FILE", help="Write to this file instead of printing.")
def schema(out_file: Path | None) -> None:
    """Print the JSON Schema of issue files, for editors' autocompletion."""
    from mailer.content.schema import json_schema

    text = json.dumps(json_schema(), indent=2, ensure_ascii=False) + "\n"
    if out_file:
        out_file.write_text(text, encoding="utf-8")
        echo(f"Wrote {out_file}")
    else:
        click.echo(text, nl=False)
