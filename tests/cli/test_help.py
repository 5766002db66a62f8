"""Section 3 of issue 15: one consistent command line.

Every command's help shows its options and examples; the same thing has the same
name and placeholder everywhere; a mistyped command gets a suggestion.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import click
import pytest
from click.testing import CliRunner

from mailer.cli import COMMANDS, main
from mailer.cli.common import LANGUAGES_OR_BOTH, SUBSCRIBER_STATUSES


def walk(command: click.Command, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], click.Command]]:
    """Every command under `command`, with the words that call it (hidden ones included)."""
    yield path, command
    if isinstance(command, click.Group):
        ctx = click.Context(command)
        for name in command.list_commands(ctx):
            sub = command.get_command(ctx, name)
            assert sub is not None, name
            yield from walk(sub, (*path, name))


ALL = [(path, command) for path, command in walk(main) if path and not command.hidden]
LEAVES = [(path, command) for path, command in ALL if not isinstance(command, click.Group)]


def help_of(*path: str) -> str:
    result = CliRunner().invoke(main, [*path, "--help"], prog_name="mailer", terminal_width=80)
    assert result.exit_code == 0, result.output
    return result.output


@pytest.mark.parametrize("path", [" ".join(path) for path, _ in LEAVES])
def test_every_command_has_help_options_and_examples(path: str):
    words = path.split()
    text = help_of(*words)
    command = dict(ALL)[tuple(words)]
    assert command.help and command.help.strip(), path
    assert "Examples:" in text, path
    examples = text.split("Examples:", 1)[1].strip().splitlines()
    assert examples and all(line.strip().startswith(("mailer ", "MAILER_")) for line in examples), examples
    tail = " ".join(words[-2:])  # `mailer topics add` is also `mailer subscribers topics add`
    assert any(f" {tail}" in line for line in examples), f"no example of `mailer {path}` itself"
    for param in command.params:
        if isinstance(param, click.Option):
            assert param.help, f"{path} {param.opts[0]} has no help text"
            assert not param.hidden and param.opts[-1] in text, f"{path} {param.opts[0]} not shown"


def test_the_top_list_is_the_commands_own_short_help_without_importing_them():
    ctx = click.Context(main)
    for name, (_, short_help) in COMMANDS.items():
        command = main.get_command(ctx, name)
        assert command is not None
        assert command.get_short_help_str(limit=200) == short_help, name
    listed = help_of()
    for name in COMMANDS:
        assert re.search(rf"^  {name}\s", listed, re.M), name


def test_the_same_thing_has_the_same_placeholder_everywhere():
    """Send ids are SEND_ID, topics TOPIC, issue files ISSUE, addresses ADDRESS: never TEXT, ID or NAME."""
    for path, command in ALL:
        ctx = click.Context(command, info_name=path[-1])
        for param in command.params:
            if param.name == "help":
                continue
            metavar = param.make_metavar(ctx)
            where = f"{' '.join(path)} {param.name}"
            assert metavar not in ("ID", "NAME") or param.name == "name", where
            if param.name in ("send_id", "resume_id"):
                assert metavar == "SEND_ID", where
            if param.name in ("topics", "topic", "topic_names_"):
                assert metavar.startswith("TOPIC"), where
            if param.name in ("issue_path", "issue_paths"):
                assert metavar.startswith("ISSUE"), where
            if param.name == "email":
                assert metavar == "ADDRESS", where


def test_choices_in_the_command_line_match_the_models():
    from mailer.content.render import RENDER_LANGUAGES
    from mailer.store.models import Language, SubscriberStatus

    assert LANGUAGES_OR_BOTH == RENDER_LANGUAGES == tuple(Language)
    assert SUBSCRIBER_STATUSES == tuple(SubscriberStatus)


@pytest.mark.parametrize(("typed", "suggested"), [
    (["sned"], "'send'"),
    (["subscriber", "list"], "'subscribers'"),
    (["sends", "lsit"], "'list'"),
    (["schedule", "lsit"], "'list'"),
    (["schedule", "recurring", "ad"], "'add'"),
    (["issue", "valdate"], "'validate'"),
])
def test_a_mistyped_command_gets_a_suggestion(typed: list[str], suggested: str):
    result = CliRunner().invoke(main, typed)
    assert result.exit_code == 2
    assert "No such command" in result.output and "Did you mean" in result.output and suggested in result.output


def test_schedule_help_shows_the_scheduling_options():
    text = help_of("schedule")
    section = text.split("Options for scheduling ISSUE:", 1)[1].split("Commands:", 1)[0]
    for option in ("--at WHEN", "--tz ZONE", "--topic TOPIC", "--language", "--again"):
        assert option in section, option
    assert "Usage: mailer schedule ISSUE --at WHEN [OPTIONS]" in text


def test_schedule_with_options_but_no_issue_says_what_is_missing():
    result = CliRunner().invoke(main, ["schedule", "--at", "2030-01-01 09:00", "--topic", "news"])
    assert result.exit_code == 2
    assert "No such option" not in result.output
    assert "say which issue to schedule: mailer schedule ISSUE --at WHEN" in result.output


@pytest.mark.parametrize("command", ["validate", "lint", "build"])
def test_issue_commands_take_several_files(command: str):
    assert f"mailer issue {command} [OPTIONS] ISSUE..." in help_of("issue", command)
