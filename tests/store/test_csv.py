"""CSV import and export, including the bad files people really send."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlmodel import Session

from mailer.store import subscribers as service
from mailer.store.csvio import CsvError, LineResult, Outcome, export_csv, import_csv, split_topics
from mailer.store.models import Event, Subscriber, SubscriberStatus
from mailer.store.topics import topic_names

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
        "sport@example.org,Sport,en,sport\n"
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
    assert "unknown topic 'sport'" in reasons[8]
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


def test_import_confirms_pending(session, workdir):
    pending = service.subscribe_pending(session, email="p@example.org", name="P", language="en", topics=[], source="web", consent_text="")
    session.commit()
    counts, lines = run_import(session, write(workdir / "a.csv", "email\np@example.org\n"))
    assert (counts["updated"], lines[0].reason) == (1, "confirmed (was pending)")
    session.refresh(pending)
    assert pending.status == SubscriberStatus.active


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
