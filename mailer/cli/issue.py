"""`mailer issue ...`: the editor's commands, from a new YAML file to a built email."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from pathlib import Path

import click

from mailer.cli.common import LANGUAGES_OR_BOTH, group, issue_argument, settings
from mailer.cli.output import echo

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
    from mailer.content.loader import load_issue

    def check(path: Path) -> list[str]:
        load_issue(path)
        echo(f"{path}: ok")
        return []

    if _each_issue(issue_paths, check):
        raise click.exceptions.Exit(1)


@issue.command(examples=["mailer issue lint issues/2026-12-news.yaml", "mailer issue lint issues/*.yaml"])
@issue_argument(many=True)
def lint(issue_paths: tuple[Path, ...]) -> None:
    """Warn about what a valid issue may still get wrong: alt text, links, preheader, size, subject."""
    from mailer.cli.output import plural
    from mailer.content.lint import lint_issue
    from mailer.content.loader import load_issue

    total = 0

    def check(path: Path) -> list[str]:
        nonlocal total
        warnings = [str(warning) for warning in lint_issue(load_issue(path), settings())]
        total += len(warnings)
        if not warnings:
            echo(f"{path}: no warnings")
        return warnings

    if _each_issue(issue_paths, check):
        if total:
            echo(plural(total, "warning"), err=True)
        raise click.exceptions.Exit(1)


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
