"""`mailer issue ...`: the editor's commands, from a new YAML file to a built email."""

from __future__ import annotations

import json
from pathlib import Path

import click
from rich.markup import escape

from mailer.cli.common import console, settings
from mailer.content import RENDER_LANGUAGES, load_issue
from mailer.content.build import build_issue, default_language
from mailer.content.lint import GMAIL_CLIP_BYTES, lint_issue, list_text_warnings
from mailer.content.schema import json_schema
from mailer.content.skeleton import new_issue
from mailer.errors import IssueError, MailerError
from mailer.i18n import LANGUAGE_NAMES, LANGUAGES, other_language
from mailer.store.models import Topic

language_option = click.option(
    "-l", "--language", type=click.Choice(RENDER_LANGUAGES), default=None,
    help="Language variant: en, cy, or both (bilingual). Default: the issue's language, or both.",
)


@click.group()
def issue() -> None:
    """Write, check and build newsletter issues (YAML files in issues/)."""


@issue.command()
@click.argument("slug", required=False)
@click.option("--dir", "folder", type=click.Path(file_okay=False, path_type=Path), default=Path("issues"),
              show_default=True, help="Folder of issue files.")
def new(slug: str | None, folder: Path) -> None:
    """Start a new issue from a commented skeleton (SLUG defaults to this month, e.g. 2026-12)."""
    path = new_issue(folder, slug)
    click.echo(f"Wrote {path}. Edit it, then run: mailer issue validate {path}")


@issue.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False, path_type=Path))
def validate(files: tuple[Path, ...]) -> None:
    """Check issue files; print every problem as file:line:column: field: message."""
    failed = 0
    for path in files:
        try:
            load_issue(path)
        except IssueError as exc:
            failed += 1
            for problem in exc.problems:
                click.echo(str(problem))
        else:
            click.echo(f"{path}: ok")
    if failed:
        raise click.exceptions.Exit(1)


@issue.command()
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--parity", is_flag=True,
              help="Also fail when the English and Welsh differ in sections, links, buttons or images, or one links "
                   "to the other's page where the issue gives one in its own language.")
def lint(file: Path, parity: bool) -> None:
    """Warn about what a valid issue may still get wrong: alt text, links, preheader, size, subject,
    translations out of date, and texts of the list (name, topics) missing a language.

    Example: mailer issue lint --parity issues/2026-12.yaml
    """
    loaded = load_issue(file)
    warnings: list[object] = list(lint_issue(loaded, settings()))
    if parity:
        from mailer.content.parity import parity_problems

        warnings += parity_problems(loaded)
    warnings += list_text_warnings(settings(), _topics())
    for warning in warnings:
        click.echo(str(warning))
    if warnings:
        click.echo(f"{len(warnings)} warning{'s' if len(warnings) > 1 else ''}", err=True)
        raise click.exceptions.Exit(1)
    click.echo(f"{file}: no warnings")


def _topics() -> list[Topic] | None:
    """The list's topics, to check their texts; None when there is no database to read (lint works without one)."""
    from mailer.cli.common import session
    from mailer.store.topics import list_topics

    url = settings().database_url
    if url.startswith("sqlite:///") and not Path(url.removeprefix("sqlite:///")).exists():
        return None
    try:
        with session() as db:
            return [topic for topic, _count in list_topics(db)]
    except MailerError:
        return None


@issue.command()
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("-o", "--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=Path("build"),
              show_default=True, help="Folder for the built files.")
@language_option
def build(file: Path, out_dir: Path, language: str | None) -> None:
    """Write the HTML, plain text, MJML and a sample .eml of an issue, and print their sizes."""
    loaded = load_issue(file)
    output = build_issue(loaded, settings(), out_dir, language or default_language(loaded))
    for path in output.files:
        size = path.stat().st_size
        note = "  [red]over 102 KB: Gmail will clip it[/red]" if path.suffix == ".html" and size > GMAIL_CLIP_BYTES else ""
        console.print(f"{escape(str(path))}  {size / 1024:6.1f} KB{note}")


@issue.command()
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8025, show_default=True, type=click.IntRange(0, 65535))
@language_option
def preview(file: Path, host: str, port: int, language: str | None) -> None:
    """Serve the email at desktop and phone widths beside its plain text; re-renders on every change."""
    from mailer.content.preview import Preview, make_server

    server = make_server(Preview(file, settings(), language), host, port)
    click.echo(f"Previewing {file} at http://{host}:{server.server_address[1]}/ (Ctrl-C to stop)")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


@issue.group()
def translate() -> None:
    """Hand an issue's texts to a translator (PO or XLIFF 2.0) and merge their translation back."""


@translate.command("export")
@click.argument("file", metavar="ISSUE", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--to", "target", type=click.Choice(LANGUAGES), required=True, help="Language to translate into.")
@click.option("-o", "--out", "out_file", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="The file for the translator: NAME.po (gettext) or NAME.xlf / NAME.xliff (XLIFF 2.0).")
@click.option("--all", "everything", is_flag=True, help="Every text, not only those missing or out of date.")
@click.option("--force", is_flag=True, help="Replace FILE if it exists (a translator's work in it not imported is lost).")
def translate_export(file: Path, target: str, out_file: Path, everything: bool, force: bool) -> None:
    """Write the texts that have no translation, or whose source changed since, for a translation tool.

    Example: mailer issue translate export issues/2026-12.yaml --to cy -o 2026-12.cy.po
    """
    from mailer.content.transfiles import file_format, write_file
    from mailer.content.translation import to_translate

    file_format(out_file)  # a wrong extension is refused before any work
    if out_file.exists() and not force:
        raise MailerError(f"{out_file} already exists: import it first (mailer issue translate import {out_file}), "
                          "or add --force to replace it")
    loaded = load_issue(file, every_language=False)  # what is missing is what gets translated
    units = to_translate(loaded, target, everything=everything)
    if not units:
        click.echo(f"{file}: every text has its {LANGUAGE_NAMES[target]}, up to date; nothing to translate.")
        return
    write_file(out_file, units, issue=file, source=other_language(target), target=target)
    changed = sum(unit.changed for unit in units)
    click.echo(f"Wrote {out_file}: {len(units)} text{'s' if len(units) != 1 else ''} to translate into "
               f"{LANGUAGE_NAMES[target]}" + (f" ({changed} changed since translated, marked for review)" if changed else "")
               + f". Then: mailer issue translate import {out_file}")


@translate.command("import")
@click.argument("translation", metavar="FILE", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--issue", "issue_file", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="The issue to merge into (default: the one the file was exported from).")
def translate_import(translation: Path, issue_file: Path | None) -> None:
    """Merge a translated PO or XLIFF file into its issue, keeping the YAML's comments and layout, then validate.

    Example: mailer issue translate import 2026-12.cy.po
    """
    from mailer.content.transfiles import read_file
    from mailer.content.translation import TranslationError, merge

    translated = read_file(translation)
    issue_file = issue_file or translated.issue
    if issue_file is None or not issue_file.is_file():
        raise TranslationError(f"{translation}: names the issue {str(issue_file or '(none)')!r}, which is not here; "
                               "give it with --issue PATH")
    report = merge(issue_file, translated.target, translated.translations)
    name = LANGUAGE_NAMES[translated.target]
    click.echo(f"Merged {len(report.merged)} {name} text{'s' if len(report.merged) != 1 else ''} into {issue_file}.")
    for path in report.left:
        click.echo(f"  not translated yet (empty, or marked fuzzy or for review): {path}")
    for path in report.unknown:
        click.echo(f"  skipped: {path}: the issue has no such text now")
    for path in report.changed_since:
        click.echo(f"  {path}: the {LANGUAGE_NAMES[other_language(translated.target)]} changed after the export; "
                   "`mailer issue lint` shows it out of date")
    validate.callback((issue_file,))  # type: ignore[misc]


@translate.command("mark")
@click.argument("file", metavar="ISSUE", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--to", "target", type=click.Choice(LANGUAGES), required=True, help="The language translated into.")
def translate_mark(file: Path, target: str) -> None:
    """Record that every translation written by hand is up to date with its source as it is now.

    Example: mailer issue translate mark issues/2026-12.yaml --to cy
    """
    from mailer.content.translation import mark_translated

    paths = mark_translated(load_issue(file, every_language=False), target)
    click.echo(f"{file}: {len(paths)} {LANGUAGE_NAMES[target]} text{'s' if len(paths) != 1 else ''} marked up to date.")


@issue.command()
@click.option("-o", "--out", "out_file", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write to this file instead of printing.")
def schema(out_file: Path | None) -> None:
    """Print the JSON Schema of issue files, for editors' autocompletion."""
    text = json.dumps(json_schema(), indent=2, ensure_ascii=False) + "\n"
    if out_file:
        out_file.write_text(text, encoding="utf-8")
        click.echo(f"Wrote {out_file}")
    else:
        click.echo(text, nl=False)
