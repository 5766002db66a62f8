"""`mailer db`, `mailer subscribers` and `mailer topics`, run as a user runs them."""

from __future__ import annotations

import csv
import re
from pathlib import Path

from click.testing import CliRunner
from sqlalchemy import select, text

from mailer.cli import main
from mailer.cli.common import settings as cli_settings
from mailer.store import subscribers as service
from mailer.store.db import make_engine, upgrade
from mailer.store.models import Topic


def test_db_upgrade_creates_the_database_and_other_commands_refuse_an_old_one(workdir: Path):
    env = {"MAILER_SECRET_KEY": "test-secret-key-0123456789", "MAILER_DATABASE_URL": f"sqlite:///{workdir / 'new.db'}"}

    def run(*args: str):
        cli_settings.cache_clear()
        return CliRunner().invoke(main, list(args), env=env)

    refused = run("subscribers", "list")
    assert refused.exit_code == 1
    assert refused.output.strip() == "Error: database is not up to date: run `mailer db upgrade`"
    assert "not up to date: run `mailer db upgrade`" in run("db", "current").output

    first = run("db", "upgrade")
    assert first.exit_code == 0, first.output
    assert first.output.startswith("Database upgraded from empty to revision ")
    assert (workdir / "new.db").exists()
    assert run("db", "upgrade").output.startswith("Database already up to date")
    assert "(up to date)" in run("db", "current").output
    assert run("db", "check").output == "Database matches the models.\n"
    assert run("subscribers", "list").exit_code == 0
    cli_settings.cache_clear()


def test_a_database_that_cannot_be_opened_is_one_clean_error(workdir: Path):
    def run(url: str, *args: str):
        cli_settings.cache_clear()
        result = CliRunner().invoke(main, list(args), env={"MAILER_SECRET_KEY": "test-secret-key-0123456789",
                                                            "MAILER_DATABASE_URL": url})
        cli_settings.cache_clear()
        return result

    (workdir / "notes.db").write_text("not a database, just some notes that are long enough to be read\n")
    for url, message in [
        (f"sqlite:///{workdir}/no/such/folder/mailer.db", "unable to open database file"),
        (f"sqlite:///{workdir}/notes.db", "file is not a database"),
        ("postgresql+psycopg://mailer:secret@127.0.0.1:1/mailer", "Connection refused"),
        ("not a url", "database_url: cannot use it"),
        ("mysql://mailer@localhost/mailer", "database_url: cannot use it"),
    ]:
        for args in (["subscribers", "list"], ["db", "upgrade"], ["db", "current"]):
            result = run(url, *args)
            assert (result.exit_code, result.exception.__class__) == (1, SystemExit), (url, args, result.output)
            assert result.output.startswith("Error: ") and message in result.output, (url, args, result.output)
            assert "secret" not in result.output  # the password of the URL stays out of the message


def test_a_database_from_a_newer_mailer_is_not_touched(workdir: Path):
    url = f"sqlite:///{workdir / 'newer.db'}"
    engine = make_engine(url)
    upgrade(engine)
    with engine.begin() as connection:
        connection.execute(text("UPDATE alembic_version SET version_num = 'aaaaaaaaaaaa'"))
    engine.dispose()
    cli_settings.cache_clear()
    env = {"MAILER_SECRET_KEY": "test-secret-key-0123456789", "MAILER_DATABASE_URL": url}
    for args in (["db", "upgrade"], ["subscribers", "list"]):
        result = CliRunner().invoke(main, args, env=env)
        assert (result.exit_code, result.output) == (
            1, "Error: database is at revision aaaaaaaaaaaa, newer than this mailer knows: upgrade mailer\n")
        cli_settings.cache_clear()
    assert "newer than this mailer knows" in CliRunner().invoke(main, ["db", "current"], env=env).output
    cli_settings.cache_clear()


def test_bad_option_values_are_usage_errors(cli, workdir):
    for args in (["subscribers", "list", "--limit", "-1"], ["subscribers", "stats", "--months", "0"],
                 ["subscribers", "add", "a@example.org", "--language", "fr"], ["subscribers", "list", "--status", "gone"]):
        result = cli(*args)
        assert result.exit_code == 2 and "Invalid value for" in result.output, (args, result.output)
    unwritable = cli("subscribers", "export", str(workdir / "no" / "such" / "folder.csv"))
    assert (unwritable.exit_code, unwritable.output) == (
        1, f"Error: {workdir / 'no' / 'such' / 'folder.csv'}: cannot write: No such file or directory\n")


def test_topics(cli):
    assert cli("topics", "add", "news", "--description", "Monthly news").output == "Added topic news (public).\n"
    assert cli("subscribers", "topics", "add", "events").exit_code == 0  # the same group, as the issue writes it
    duplicate = cli("topics", "add", "news")
    assert (duplicate.exit_code, duplicate.output) == (1, "Error: topic 'news' already exists\n")
    assert "must be lower-case" in cli("topics", "add", "Bad Name").output
    listing = cli("subscribers", "topics", "list").output
    assert "news" in listing and "Monthly news" in listing and "events" in listing
    assert cli("topics", "remove", "events", "--yes").output == "Removed topic events.\n"
    assert "events" not in cli("topics", "list").output
    assert "unknown topic 'events'" in cli("topics", "remove", "events", "--yes").output


def test_subscribers_add_cleans_the_name(cli, session):
    """Finding 2: names are cleaned on every way in, `subscribers add` too."""
    assert cli("subscribers", "add", "ann@example.org", "--name", "Ann\n\tJones\x07").exit_code == 0
    assert service.get_by_email(session, email="ann@example.org").name == "Ann Jones"


def test_topic_flags_default_and_private(cli):
    """Finding 4: web subscribers were in no topic, and an internal topic showed on every reader's page."""
    assert cli("topics", "add", "news", "--default").output == "Added topic news (default, public).\n"
    assert cli("topics", "add", "load-test", "--private").output == "Added topic load-test (private).\n"
    assert cli("topics", "add", "events").exit_code == 0
    refused = cli("topics", "add", "odd", "--default", "--private")
    assert (refused.exit_code, "cannot be both default and private" in refused.output) == (1, True)
    rows = {cells[0]: cells[1:3] for line in cli("topics", "list").output.splitlines()
            if len(cells := re.split(r"\s{2,}", line.strip())) >= 3 and cells[0] != "topic"}  # columns: 2+ spaces apart
    assert rows == {"events": ["no", "yes"], "load-test": ["no", "no"], "news": ["yes", "yes"]}
    added = cli("subscribers", "add", "gwen@example.org", "--topic", "events")
    assert added.output == "Added gwen@example.org (en; topics: events, news).\n"  # the default topic too
    assert cli("topics", "edit", "events", "--default").output == "Changed topic events (default, public).\n"
    assert cli("topics", "edit", "news", "--no-default", "--private", "--label", "News").output == "Changed topic news (private).\n"


def test_add_show_list_remove(cli):
    cli("topics", "add", "news")
    added = cli("subscribers", "add", "Gwen@Example.org", "--name", "Gwenllïan ap Rhys", "--language", "cy", "--topic", "news")
    assert added.output == "Added Gwen@example.org (cy; topics: news).\n"
    assert cli("subscribers", "add", "gwen@example.org").output == "Error: gwen@example.org is already a subscriber (active)\n"
    assert "not a valid email address" in cli("subscribers", "add", "gwen@").output
    assert "unknown topic 'sport'" in cli("subscribers", "add", "x@example.org", "--topic", "sport").output
    cli("subscribers", "add", "bob@example.org")

    shown = cli("subscribers", "show", "GWEN@example.org").output
    assert "Gwenllïan ap Rhys" in shown and "subscribed" in shown and "cli" in shown

    listing = cli("subscribers", "list", "--topic", "news").output
    assert "Gwen@example.org" in listing and "bob@example.org" not in listing
    assert listing.rstrip().endswith("1 subscriber")
    assert "2 subscribers (showing 1; use --limit 0 for all)" in cli("subscribers", "list", "--limit", "1").output

    assert cli("subscribers", "remove", "gwen@example.org").output == "Unsubscribed Gwen@example.org (was active).\n"
    assert cli("subscribers", "remove", "gwen@example.org").output == "Gwen@example.org was already unsubscribed.\n"
    assert "unsubscribed" in cli("subscribers", "show", "gwen@example.org").output
    assert cli("subscribers", "list", "--status", "active").output.rstrip().endswith("1 subscriber")
    missing = cli("subscribers", "show", "nobody@example.org")
    assert (missing.exit_code, missing.output) == (1, "Error: no subscriber with address 'nobody@example.org'\n")


def test_import_reports_every_line_and_dry_run_writes_nothing(cli, workdir):
    cli("topics", "add", "news")
    path = workdir / "people.csv"
    path.write_text("email;name;language;topics\nGwen@example.org;Gwenllïan ap Rhys;cy;news\nbad@;x;;\nGWEN@example.org;Dup;;\n", encoding="utf-8-sig")

    dry = cli("subscribers", "import", str(path), "--dry-run")
    assert dry.exit_code == 0, dry.output
    assert dry.output.splitlines() == [
        f"{path}:2: added Gwen@example.org",
        f"{path}:3: rejected bad@: 'bad@' is not a valid email address: There must be something after the @-sign.",
        f"{path}:4: rejected GWEN@example.org: duplicate of line 2",
        "Dry run, nothing written: 1 added, 0 updated, 0 unchanged, 2 rejected.",
    ]
    assert cli("subscribers", "list").output.rstrip().endswith("0 subscribers")

    real = cli("subscribers", "import", str(path), "--quiet")
    assert real.output.splitlines()[-1] == "1 added, 0 updated, 0 unchanged, 2 rejected."
    assert "added" not in real.output.splitlines()[0]
    assert "imported from people.csv" in cli("subscribers", "show", "gwen@example.org").output

    cli("subscribers", "remove", "gwen@example.org")
    again = cli("subscribers", "import", str(path))
    assert f"{path}:2: unchanged Gwen@example.org: unsubscribed; not re-activated without --resubscribe" in again.output
    back = cli("subscribers", "import", str(path), "--resubscribe")
    assert f"{path}:2: updated Gwen@example.org: re-activated (was unsubscribed)" in back.output


def test_import_of_a_bad_file_is_one_clean_error(cli, workdir):
    path = workdir / "latin1.csv"
    path.write_bytes("email,name\ngwen@example.org,Gwenllïan\n".encode("latin-1"))
    result = cli("subscribers", "import", str(path))
    assert result.exit_code == 1
    assert result.output.startswith(f"Error: {path}:2: not UTF-8 (byte 0xef)")
    assert "Traceback" not in result.output
    assert cli("subscribers", "list").output.rstrip().endswith("0 subscribers")


def test_export_to_stdout_and_to_a_file_for_spreadsheets(cli, workdir):
    cli("topics", "add", "news")
    cli("subscribers", "add", "sian@example.org", "--name", "Siân ŵŷ", "--topic", "news")
    stdout = cli("subscribers", "export")
    rows = list(csv.DictReader(stdout.stdout.splitlines()))
    assert [(row["email"], row["name"], row["topics"], row["status"]) for row in rows] == [
        ("sian@example.org", "Siân ŵŷ", "news", "active")]
    path = workdir / "out.csv"
    assert cli("subscribers", "export", str(path)).stderr == f"Exported 1 subscriber to {path}.\n"
    assert path.read_bytes().startswith(b"\xef\xbb\xbfemail,name,language,topics,status")


def test_forget_then_import_refuses_the_address(cli, workdir):
    cli("subscribers", "add", "gwen@example.org", "--name", "Gwen")
    assert cli("subscribers", "forget", "gwen@example.org", input="n\n").exit_code == 1  # asks first
    forgotten = cli("subscribers", "forget", "gwen@example.org", "--yes")
    assert forgotten.output.startswith("Forgotten: subscriber 1 is now forgotten-1@invalid")
    assert "gwen" not in cli("subscribers", "list").output.lower()
    assert "erased on request" in cli("subscribers", "add", "gwen@example.org").output
    path = workdir / "again.csv"
    path.write_text("email\nGwen@example.org\n", encoding="utf-8")
    assert "rejected Gwen@example.org: forgotten (erased on request)" in cli("subscribers", "import", str(path)).output


def test_stats(cli):
    cli("topics", "add", "news")
    cli("subscribers", "add", "a@example.org", "--topic", "news", "--language", "cy")
    cli("subscribers", "add", "b@example.org")
    cli("subscribers", "remove", "b@example.org")
    output = cli("subscribers", "stats", "--months", "3").output
    for label in ("active", "unsubscribed", "news", "cy"):
        assert re.search(rf"^{label}\s+1\b", output, re.M), label
    assert "Growth" in output and "+1" in output  # one joined... and one left this month: 2 - 1


def test_topics_in_english_and_welsh(cli, session):
    added = cli("topics", "add", "events", "--label", "Events", "--label-cy", "Digwyddiadau",
                "--description", "Gatherings near you")
    assert added.exit_code == 0, added.output
    changed = cli("topics", "edit", "events", "--description-cy", "Cyfarfodydd  yn agos\natoch")
    assert (changed.exit_code, changed.output) == (0, "Changed topic events (public).\n")
    topic = session.scalars(select(Topic).where(Topic.name == "events")).one()
    assert (topic.label, topic.label_cy, topic.description, topic.description_cy) == (
        "Events", "Digwyddiadau", "Gatherings near you", "Cyfarfodydd yn agos atoch")  # spaces and lines tidied
    assert (topic.label_in("cy"), topic.description_in("cy"), topic.label_in("en")) == (
        "Digwyddiadau", "Cyfarfodydd yn agos atoch", "Events")
    listing = cli("topics", "list").output
    assert "Digwyddiadau" in listing and "label (cy)" in listing
    assert "unknown topic 'nothing'" in cli("topics", "edit", "nothing", "--label", "X").output
    assert "at most 200" in cli("topics", "edit", "events", "--label-cy", "x" * 201).output
