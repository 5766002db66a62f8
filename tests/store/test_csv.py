"""CSV import and export, including the bad files people really send."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest
from sqlalchemy import delete, func, select
from sqlmodel import Session

from mailer.store import subscribers as service
from mailer.store.csvio import CsvError, LineResult, Outcome, export_csv, import_csv, split_topics
from mailer.store.models import Event, Subscriber, SubscriberStatus
from mailer.store.topics import set_flags, topic_names

SALTS = ["test-secret-key-0123456789"]


def write(path: Path, text: str, encoding: str = "utf-8") -> Path:
    path.write_bytes(text.encode(encoding))
    return path


def run_import(session: Session, path: Path, **kwargs) -> tuple[dict[str, int], list[LineResult]]:
    lines: list[LineResult] = []
    report = import_csv(session, path=path, salts=SALTS, on_line=lines.append, **kwargs)
    session.commit()
    return {outcome.value: report.counts[outcome] for outcome in Outcome}, lines


def count(session: Session) -> int:
    return session.scalar(select(func.count()).select_from(Subscriber))


def test_import_adds_subscribers_with_topics_and_events(session, topics, workdir):
    path = write(workdir / "people.csv", "email,name,language,topics\nGwen@Example.org,Gwenllïan ap Rhys,cy,news events\nbob@example.org,Bob,,\n")
    counts, lines = run_import(session, path)
    assert counts == {"added": 2, "updated": 0, "unchanged": 0, "rejected": 0}
    assert [(line.line, line.email, line.outcome) for line in lines] == [
        (2, "Gwen@example.org", "added"), (3, "bob@example.org", "added")]
    gwen = service.get_by_email(session, email="gwen@example.org")
    assert (gwen.name, gwen.language, gwen.status, gwen.source) == ("Gwenllïan ap Rhys", "cy", "active", "import")
    assert topic_names(session, gwen.id) == ["events", "news"]
    bob = service.get_by_email(session, email="bob@example.org")
    assert (bob.language, topic_names(session, bob.id)) == ("en", [])
    kinds = session.execute(select(Event.kind, Event.channel, Event.detail).where(Event.subscriber_id == gwen.id)).all()
    assert [tuple(row) for row in kinds] == [("imported", "import", "from people.csv")]


def test_bom_semicolons_header_case_and_welsh_letters_kept_exactly(session, topics, workdir):
    text = "\ufeffEMAIL; Name ;Language;TOPICS\nsion@example.org;Siôn Rhys-Ŵŷ;CY;news,events\nangharad@example.org;  Angharad ŵŷ  ;cy;\n"
    counts, _ = run_import(session, write(workdir / "excel.csv", text))
    assert counts["added"] == 2
    assert service.get_by_email(session, email="sion@example.org").name == "Siôn Rhys-Ŵŷ"
    assert service.get_by_email(session, email="angharad@example.org").name == "Angharad ŵŷ"
    assert topic_names(session, service.get_by_email(session, email="sion@example.org").id) == ["events", "news"]


def test_bad_lines_are_rejected_with_reasons_and_good_ones_imported(session, topics, workdir):
    text = (
        "email,name,language,topics\n"
        "ok@example.org,Ok,en,news\n"
        "\n"
        "not-an-address,Nobody,en,\n"
        "OK@EXAMPLE.ORG,Shouty,en,\n"
        ",No address,en,\n"
        "fr@example.org,Fr,fr,\n"
        "bad@example.org,Bad,en,,gone\n"
        "extra@example.org,Extra,en,news,unexpected\n"
        " , , , \n"
        "last@example.org,Last,,\n"
    )
    counts, lines = run_import(session, write(workdir / "bad.csv", text))
    assert counts == {"added": 2, "updated": 0, "unchanged": 0, "rejected": 6}
    reasons = {line.line: line.reason for line in lines if line.outcome == Outcome.rejected}
    assert "not a valid email address" in reasons[4]
    assert reasons[5] == "duplicate of line 2"
    assert reasons[6] == "no email address"
    assert "unknown language 'fr'" in reasons[7]
    assert reasons[8] == "5 cells but the header has 4 columns"
    assert reasons[9] == "5 cells but the header has 4 columns"
    assert [line.line for line in lines] == [2, 4, 5, 6, 7, 8, 9, 11]  # empty lines are skipped
    assert count(session) == 2


def test_wrong_encoding_is_a_clear_error_and_nothing_is_written(session, topics, workdir):
    path = write(workdir / "latin1.csv", "email,name\nok@example.org,Ok\ngwen@example.org,Gwenllïan\n", encoding="latin-1")
    with pytest.raises(CsvError, match=r"latin1.csv:3: not UTF-8 \(byte 0xef\).*Nothing was imported"):
        import_csv(session, path=path, salts=SALTS)
    session.rollback()
    assert count(session) == 0


def test_a_quote_left_open_is_an_error_not_the_rest_of_the_file_in_one_cell(session, topics, workdir):
    path = write(workdir / "quote.csv", 'email,name\nok@example.org,Ok\n"gwen@example.org,Gwen\nbob@example.org,Bob\n')
    with pytest.raises(CsvError, match=r"quote.csv:3: unexpected end of data \(check the quotes.*Nothing was imported"):
        import_csv(session, path=path, salts=SALTS)
    session.rollback()
    assert count(session) == 0


def test_unknown_columns_are_an_error_naming_them(session, workdir):
    path = write(workdir / "cols.csv", "email,name,phone,langauge\nok@example.org,Ok,123,cy\n")
    with pytest.raises(CsvError, match=r"cols.csv:1: unknown column 'phone', 'langauge' \(known: email, name, language, topics"):
        import_csv(session, path=path)
    assert count(session) == 0


@pytest.mark.parametrize(
    ("text", "message"),
    [("", "the file is empty"), ("name,language\nGwen,cy\n", "no 'email' column"), ("email,Email\n", "appears twice")],
)
def test_header_problems(session, workdir, text, message):
    with pytest.raises(CsvError, match=message):
        import_csv(session, path=write(workdir / "h.csv", text))


def test_reimport_updates_what_changed_and_adds_topics_never_removes(session, topics, workdir):
    run_import(session, write(workdir / "a.csv", "email,name,language,topics\ngwen@example.org,Gwen,en,news\nbob@example.org,Bob,en,news\n"))
    counts, lines = run_import(
        session, write(workdir / "b.csv", "email,name,language,topics\nGWEN@example.org,Gwenllïan,cy,events\nbob@example.org,,,\n"))
    assert counts == {"added": 0, "updated": 1, "unchanged": 1, "rejected": 0}
    assert lines[0].reason == "name, language en -> cy, +events"
    gwen = service.get_by_email(session, email="gwen@example.org")
    assert (gwen.name, gwen.language, gwen.email) == ("Gwenllïan", "cy", "gwen@example.org")
    assert topic_names(session, gwen.id) == ["events", "news"]
    assert session.scalars(select(Event.channel).where(Event.kind == "preferences")).all() == ["import"]


@pytest.mark.parametrize("stop", ["unsubscribe", "mark_bounced", "mark_complained"])
def test_never_reactivates_the_stopped_unless_resubscribe(session, topics, workdir, stop):
    subscriber = service.add_subscriber(session, email="gwen@example.org")
    kwargs = {"channel": "link"} if stop == "unsubscribe" else {"detail": "550"}
    getattr(service, stop)(session, subscriber_id=subscriber.id, **kwargs)
    session.commit()
    status = subscriber.status
    path = write(workdir / "a.csv", "email,name,topics\ngwen@example.org,New name,news\n")

    counts, lines = run_import(session, path)
    assert counts["unchanged"] == 1
    assert lines[0].reason == f"{status}; not re-activated without --resubscribe"
    session.refresh(subscriber)
    assert (subscriber.status, subscriber.name) == (status, "")

    counts, lines = run_import(session, path, resubscribe=True)
    assert counts["updated"] == 1
    assert lines[0].reason == f"re-activated (was {status}), name, +news"
    session.refresh(subscriber)
    assert (subscriber.status, subscriber.name) == (SubscriberStatus.active, "New name")
    assert session.scalars(select(Event.kind).where(Event.subscriber_id == subscriber.id)).all()[-2:] == ["resubscribed", "preferences"]


def test_import_never_confirms_a_pending_web_request(session, workdir):
    """Finding 3: the next routine import confirmed whatever a stranger had posted to the form."""
    pending = service.subscribe_pending(session, email="p@example.org", name="P", language="en", topics=[], source="web", consent_text="")
    session.commit()
    counts, lines = run_import(session, write(workdir / "a.csv", "email,status\np@example.org,active\n"))
    assert (counts["unchanged"], lines[0].reason) == (1, "pending; only their own confirmation link confirms them")
    session.refresh(pending)
    assert pending.status == SubscriberStatus.pending
    assert service.open_request(session, subscriber_id=pending.id) is not None  # still waiting for its link


def test_forgotten_addresses_are_refused(session, workdir):
    service.forget(session, email="gone@example.org", salt=SALTS[0])
    session.commit()
    counts, lines = run_import(session, write(workdir / "a.csv", "email\nGONE@example.org\n"))
    assert counts["rejected"] == 1
    assert lines[0].reason == "forgotten (erased on request)"


def test_dry_run_by_rolling_back_reports_the_same_and_writes_nothing(session, topics, workdir):
    path = write(workdir / "a.csv", "email,topics\na@example.org,news\nb@example.org,events\n")
    lines: list[LineResult] = []
    report = import_csv(session, path=path, on_line=lines.append)
    session.rollback()
    assert report.counts[Outcome.added] == 2
    assert count(session) == 0


def test_a_big_import_crosses_batches_and_keeps_line_order(session, topics, workdir):
    rows = "".join(f"person{i}@example.org,Person {i},,news\n" for i in range(2500))
    text = "email,name,language,topics\n" + rows + "PERSON7@example.org,Dup,,\n"
    counts, lines = run_import(session, write(workdir / "big.csv", text))
    assert counts == {"added": 2500, "updated": 0, "unchanged": 0, "rejected": 1}
    assert [line.line for line in lines] == list(range(2, 2503))
    assert lines[-1].reason == "duplicate of line 9"
    assert count(session) == 2500


def test_export_writes_every_subscriber_with_status_topics_and_dates(session, topics, workdir):
    run_import(session, write(workdir / "a.csv", "email,name,language,topics\ngwen@example.org,Gwenllïan ap Rhys,cy,news events\nbob@example.org,Bob,en,\n"))
    bob = service.get_by_email(session, email="bob@example.org")
    service.unsubscribe(session, subscriber_id=bob.id, channel="link")
    service.forget(session, email="gwen@example.org", salt=SALTS[0])
    service.add_subscriber(session, email="sian@example.org", name="Siân ŵŷ", topics=["events"])
    session.commit()
    out = io.StringIO()
    assert export_csv(session, out) == 2  # the forgotten are not exported
    rows = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert [(r["email"], r["name"], r["language"], r["topics"], r["status"]) for r in rows] == [
        ("bob@example.org", "Bob", "en", "", "unsubscribed"),
        ("sian@example.org", "Siân ŵŷ", "en", "events", "active"),
    ]
    assert len(rows[0]["created_at"]) == len("2024-05-01 10:00:00")


def test_an_export_imports_again_unchanged(session, topics, workdir):
    for i, language in enumerate(["en", "cy", "both"]):
        service.add_subscriber(session, email=f"p{i}@example.org", name=f"Enw {i} ŵ", language=language, topics=["news", "events"][: i])
    session.commit()
    path = workdir / "export.csv"
    with path.open("w", encoding="utf-8-sig", newline="") as out:
        export_csv(session, out)
    counts, _ = run_import(session, path)
    assert counts == {"added": 0, "updated": 0, "unchanged": 3, "rejected": 0}


def test_split_topics():
    assert split_topics(" News, events;news | Extra  ") == ["news", "events", "extra"]
    assert split_topics("") == []


# ---- issue 11, finding 2: import and export keep who left ------------------------------------


def status_of(session: Session, email: str) -> str:
    session.expire_all()
    return service.get_by_email(session, email=email).status


def test_import_honours_the_status_column(session, topics, workdir):
    """Finding 2: rows marked unsubscribed, bounced or complained came in active."""
    set_flags(session, name="news", default=True)
    text = ("email,status\nu@example.org,unsubscribed\nb@example.org,bounced\nc@example.org,complained\n"
            "p@example.org,pending\na@example.org,active\nn@example.org,\n")
    counts, lines = run_import(session, write(workdir / "a.csv", text), resubscribe=True)
    assert counts == {"added": 6, "updated": 0, "unchanged": 0, "rejected": 0}
    assert [line.reason for line in lines] == ["unsubscribed, never mailed", "bounced, never mailed",
                                               "complained, never mailed", "pending", "", ""]
    assert [status_of(session, f"{c}@example.org") for c in "ubcpan"] == [
        "unsubscribed", "bounced", "complained", "pending", "active", "active"]
    assert service.get_by_email(session, email="u@example.org").confirmed_at is None
    joined = {c: topic_names(session, service.get_by_email(session, email=f"{c}@example.org").id) for c in "uan"}
    assert joined == {"u": [], "a": ["news"], "n": ["news"]}  # new readers join the default topic; the stopped none


def test_a_stop_status_stops_a_subscriber_and_resubscribe_never_overrides_it(session, topics, workdir):
    for email in ("u@example.org", "b@example.org", "c@example.org", "left@example.org"):
        service.add_subscriber(session, email=email)
    left = service.get_by_email(session, email="left@example.org")
    service.unsubscribe(session, subscriber_id=left.id, channel="link")
    session.commit()
    text = "email,status\nu@example.org,unsubscribed\nb@example.org,bounced\nc@example.org,complained\nleft@example.org,bounced\n"
    counts, lines = run_import(session, write(workdir / "a.csv", text), resubscribe=True)
    assert [line.reason for line in lines] == ["unsubscribed (was active)", "bounced (was active)",
                                               "complained (was active)", "already unsubscribed"]
    assert [status_of(session, f"{c}@example.org") for c in ("u", "b", "c", "left")] == [
        "unsubscribed", "bounced", "complained", "unsubscribed"]
    kinds = session.scalars(select(Event.kind).where(Event.subscriber_id == left.id)).all()
    assert kinds == ["subscribed", "unsubscribed"]  # nothing re-activated, even with --resubscribe
    # --resubscribe still re-activates on rows that carry no stop
    counts, _ = run_import(session, write(workdir / "b.csv", "email,status\nleft@example.org,active\n"), resubscribe=True)
    assert (counts["updated"], status_of(session, "left@example.org")) == (1, "active")


def test_an_unknown_status_is_rejected_naming_the_words_read(session, workdir):
    counts, lines = run_import(session, write(workdir / "a.csv", "email,status\nx@example.org,gone\n"))
    assert counts["rejected"] == 1
    assert lines[0].reason.startswith("unknown status 'gone' (use pending, active, unsubscribed, bounced, complained; also read:")


def test_mailchimp_exports_are_read_with_their_status(session, topics, workdir):
    """Finding 2: Mailchimp's "cleaned" and "unsubscribed" exports must come in stopped, never active."""
    header = ("Email Address,First Name,Last Name,Address,Phone Number,MEMBER_RATING,OPTIN_TIME,CONFIRM_TIME,"
              "LAST_CHANGED,LEID,EUID,NOTES,TAGS,{extra}\n")
    cleaned = header.format(extra="CLEAN_TIME,CLEAN_CAMPAIGN_TITLE") + (
        "gone@example.org,Gwen,Jones,,,2,2024-01-01 10:00:00,,2024-03-01 10:00:00,1,a,,,2024-03-01 10:00:00,March\n")
    unsubscribed = header.format(extra="UNSUB_TIME,UNSUB_REASON") + (
        "left@example.org,Dafydd,,,,2,2024-01-01 10:00:00,,2024-03-01 10:00:00,2,b,,,2024-03-02 10:00:00,no longer\n")
    subscribed = header.format(extra="TIMEZONE") + "here@example.org,Siân,Llŷr,,,5,2024-01-01 10:00:00,,,3,c,,,\n"
    for name, text in [("cleaned.csv", cleaned), ("unsubscribed.csv", unsubscribed), ("subscribed.csv", subscribed)]:
        report = import_csv(session, path=write(workdir / name, text), salts=SALTS)
        assert (report.kind, report.counts[Outcome.added]) == ("Mailchimp export", 1)
    session.commit()
    assert "MEMBER_RATING" in report.read_past and "Email Address" not in report.read_past
    assert [status_of(session, f"{c}@example.org") for c in ("gone", "left", "here")] == ["bounced", "unsubscribed", "active"]
    assert service.get_by_email(session, email="here@example.org").name == "Siân Llŷr"


def test_listmonk_exports_are_read_with_blocklisted_kept_out(session, workdir):
    text = ('uuid,email,name,attributes,status,created_at,updated_at\n'
            'a1,on@example.org,On,"{""city"": ""Bangor""}",enabled,2024-01-01 10:00:00+00,2024-01-01 10:00:00+00\n'
            'a2,off@example.org,Off,{},blocklisted,2024-01-01 10:00:00+00,2024-01-01 10:00:00+00\n')
    report = import_csv(session, path=write(workdir / "listmonk.csv", text), salts=SALTS)
    session.commit()
    assert (report.kind, report.read_past) == ("listmonk export", ["uuid", "attributes", "created_at", "updated_at"])
    assert [status_of(session, f"{c}@example.org") for c in ("on", "off")] == ["active", "unsubscribed"]


@pytest.mark.parametrize("flag", ["suppress", "cli"])
def test_a_suppression_list_is_never_mailed(session, topics, workdir, flag, cli):
    """Finding 2: a bare list of addresses that must never be mailed."""
    service.add_subscriber(session, email="active@example.org", topics=["news"])
    session.commit()
    path = write(workdir / "suppress.txt", "Email\nactive@example.org\nNEW@example.org\n\nnot an address\nnew@example.org\n")
    if flag == "cli":
        result = cli("subscribers", "import", "--suppress", str(path))
        assert result.exit_code == 0, result.output
        assert "suppress.txt:3: added NEW@example.org: unsubscribed, never mailed" in result.output
        assert "read as a suppression list" in result.output and "1 added, 1 updated, 0 unchanged, 2 rejected" in result.output
    else:
        counts, lines = run_import(session, path, suppress=True)
        assert [(line.line, line.outcome) for line in lines] == [(2, "updated"), (3, "added"), (5, "rejected"), (6, "rejected")]
    assert status_of(session, "active@example.org") == status_of(session, "new@example.org") == "unsubscribed"
    assert service.get_by_email(session, email="new@example.org").source == "suppress"
    bare = write(workdir / "bare.txt", "first@example.org\n")  # no header: the first line is an address too
    counts, _ = run_import(session, bare, suppress=True)
    assert (counts["added"], status_of(session, "first@example.org")) == (1, "unsubscribed")


def test_unknown_topics_are_decided_once_for_the_whole_file(session, topics, workdir):
    """Finding 2: 468 of 600 rows were rejected one by one for topics that did not exist."""
    rows = "".join(f"p{i}@example.org,{'wales' if i % 5 else 'news'} {'walks' if i % 3 == 0 else ''}\n" for i in range(600))
    path = write(workdir / "a.csv", "email,topics\n" + rows)
    with pytest.raises(CsvError, match=r"a.csv: unknown topic 'wales' \(480 rows\), 'walks' \(200 rows\)\. Add them with "
                                       r"`mailer topics add NAME`, or import with --create-topics.*Nothing was imported"):
        import_csv(session, path=path, salts=SALTS)
    session.rollback()
    assert count(session) == 0
    report = import_csv(session, path=path, salts=SALTS, create_topics=True)
    session.commit()
    assert (report.created_topics, report.counts[Outcome.added]) == (["wales", "walks"], 600)
    assert topic_names(session, service.get_by_email(session, email="p3@example.org").id) == ["wales", "walks"]


@pytest.mark.parametrize("create", [False, True])
def test_a_topic_that_cannot_be_a_topic_name_is_refused_naming_the_file(session, workdir, create):
    path = write(workdir / "a.csv", "email,topics\np1@example.org,Événements\np2@example.org,news/events\n")
    with pytest.raises(CsvError, match=r"a.csv: topic 'news/events' \(1 row\), 'événements' \(1 row\) cannot be a topic name "
                                       r"\(lower-case letters, digits, '-' or '_'; at most 64\).*Nothing was imported"):
        import_csv(session, path=path, salts=SALTS, create_topics=create)


def test_names_are_cleaned_on_the_way_in(session, workdir):
    """Finding 2: a line break was stored as it was; a NUL or a 300-character name lost the whole import (PostgreSQL)."""
    long = "Gwenllïan " * 40
    text = f'email,name\na@example.org,"Ann\nJones"\nb@example.org,"Bob\x00\u202eby\t\tJones "\nc@example.org,{long}\n'
    counts, _ = run_import(session, write(workdir / "a.csv", text))
    assert counts["added"] == 3
    names = [service.get_by_email(session, email=f"{c}@example.org").name for c in "abc"]
    assert names[:2] == ["Ann Jones", "Bobby Jones"]
    assert len(names[2]) == 199 and names[2] == long[:200].strip()


def test_clean_name_rules():
    assert service.clean_name("  Siân \r\n  Llŷr\x07 ") == "Siân Llŷr"
    assert service.clean_name("Ann\u200b\u200dB") == "Ann\u200dB"  # joiners kept, other invisible characters dropped
    assert len(service.clean_name("x" * 300)) == 200


def test_export_neutralises_formulas_and_import_takes_exactly_that_prefix_off(session, workdir):
    """Finding 2: a name like =HYPERLINK(...) from the form became a live formula in a spreadsheet."""
    names = ["=HYPERLINK(\"http://evil.example\",\"x\")", "+44 1234", "-minus", "@at", "'quoted", "''=twice", "plain"]
    for i, name in enumerate(names):
        service.add_subscriber(session, email=f"p{i}@example.org", name=name)
    service.add_subscriber(session, email="-dash@example.org")
    session.commit()
    out = io.StringIO()
    export_csv(session, out)
    rows = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert [row["name"] for row in rows][:len(names)] == ["'" + name for name in names[:-1]] + ["plain"]
    assert rows[-1]["email"] == "'-dash@example.org"
    assert not any(cell.startswith(("=", "+", "-", "@")) for row in rows for cell in row.values())
    session.execute(delete(Subscriber))
    session.commit()
    path = write(workdir / "export.csv", out.getvalue())
    counts, _ = run_import(session, path)
    assert counts["added"] == len(names) + 1
    assert [service.get_by_email(session, email=f"p{i}@example.org").name for i in range(len(names))] == names
    assert service.get_by_email(session, email="-dash@example.org") is not None


def test_a_header_with_thousands_of_columns_is_refused_at_once(session, workdir):
    """Finding 2: 100,000 columns ran past two minutes (`columns.count` in a loop)."""
    path = write(workdir / "wide.csv", ",".join(f"c{i}" for i in range(100_000)) + "\nx@example.org\n")
    with pytest.raises(CsvError, match=r"wide.csv:1: the header has 100,000 columns; an import file has at most 200"):
        import_csv(session, path=path)


def test_a_long_imported_name_never_makes_a_header_line_too_long(session, topics, settings, workdir):
    """Finding 2: a long name made a `To:` line of 2,127 bytes (RFC 5322 allows 998)."""
    from mailer.delivery.engine import deliver
    from mailer.delivery.sends import create_send

    name = "Gwenllïan ŵŷ " * 160
    run_import(session, write(workdir / "a.csv", f"email,name,topics\nlong@example.org,{name},news\n"))
    send = create_send(session, settings=settings, issue_path=Path(__file__).parents[2] / "issues" / "2026-11-open-letter.yaml")
    deliver(settings, send.id)
    (message,) = Path(settings.outbox_dir).glob("*.eml")
    lines = message.read_bytes().split(b"\r\n")
    assert max(len(line) for line in lines) <= 998
    assert any(line.startswith(b"To: ") for line in lines)
