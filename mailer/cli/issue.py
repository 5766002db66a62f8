"""`mailer issue ...`: the editor's commands, from a new YAML file to a built email."""

from __future__ import annotations

import json
from pathlib import Path

import click
from rich.markup import escape

from mailer.cli.common import console, settings
from mailer.content import RENDER_LANGUAGES, load_issue
from mailer.content.build import build_issue, default_language
from mailer.content.lint import GMAIL_CLIP_BYTES, lint_issue
from mailer.content.schema import json_schema
from mailer.content.skeleton import new_issue
from mailer.errors import IssueError

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
def lint(file: Path) -> None:
    """Warn about what a valid issue may still get wrong: alt text, links, preheader, size, subject."""
    warnings = lint_issue(load_issue(file), settings())
    for warning in warnings:
        click.echo(str(warning))
    if warnings:
        click.echo(f"{len(warnings)} warning{'s' if len(warnings) > 1 else ''}", err=True)
        raise click.exceptions.Exit(1)
    click.echo(f"{file}: no warnings")


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
