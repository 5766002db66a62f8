from mailer.bounces import process_mailbox
from mailer.bounces.report import bounce_counts, bounce_report

from .conftest import CORPUS, deliver

HANDLED = ["postfix-user-unknown.eml", "exim-user-unknown.eml", "m365-recipient-not-found.eml",
           "postfix-mailbox-full-delayed.eml", "arf-complaint.eml", "gmail-no-such-user.eml"]


def fill(maildir):
    deliver(maildir, *((CORPUS / name).read_bytes() for name in HANDLED + ["out-of-office.eml", "broken-unreadable.eml"]))


def test_counts_per_send_for_sends_show(settings, engine, mailing, maildir, session):
    assert bounce_counts(session, 1) == {"permanent": 0, "temporary": 0, "complaint": 0}
    fill(maildir)
    process_mailbox(settings, str(maildir), engine=engine)
    # The Gmail-style bounce came to the plain sender address: our Message-ID in it names the delivery.
    assert bounce_counts(session, 1) == {"permanent": 4, "temporary": 1, "complaint": 1}


def test_report_lists_addresses_statuses_and_diagnostics(settings, engine, mailing, maildir, session):
    fill(maildir)
    process_mailbox(settings, str(maildir), engine=engine)
    everything = bounce_report(session)
    assert everything.counts == {"permanent": 4, "temporary": 1, "complaint": 1}
    assert {line.address: line.status for line in everything.lines} == {
        "rhys.jones@example.net": "bounced",
        "megan.morgan@cardiff.example.org": "bounced",
        "dafydd.evans@old-council.example.org": "bounced",
        "sian.price@example.com": "active",
        "gareth.hughes@example.com": "complained",
        "owen.thomas@example.net": "bounced",
    }
    one_send = bounce_report(session, send_id=1)
    assert len(one_send.lines) == 6 and all(line.send_id == 1 and line.verified for line in one_send.lines)
    assert {line.address: (line.rule, line.code) for line in everything.lines}["gareth.hughes@example.com"] == ("complaint", "")


def test_cli_process_and_report(cli, mailing, maildir):
    fill(maildir)
    result = cli("bounces", "process", "--mailbox", str(maildir))
    assert result.exit_code == 0, result.output
    assert "4 permanent, 1 temporary, 1 complaints (0 unverified, changing nobody; 0 naming nobody on the list)" in result.output
    assert "left in place: 1 not bounces, 1 skipped." in result.output
    assert "  rhys.jones@example.net: now bounced" in result.output
    assert "  gareth.hughes@example.com: now complained" in result.output
    assert "skipped" in result.output and "broken MIME structure" in result.output

    report = cli("bounces", "report", "--send", "1")
    assert report.exit_code == 0, report.output
    assert report.output.splitlines()[0] == "Send 1: 4 permanent, 1 temporary, 1 complaint."
    assert "rhys.jones@example.net  (now bounced, send 1)  rule no-such-user 5.1.1" in report.output
    assert "    smtp; 550 5.1.1 <rhys.jones@example.net>: Recipient address rejected: User unknown in virtual mailbox table" in report.output
    assert "Feedback-Type: abuse" in report.output
    assert "owen.thomas@example.net  (now bounced, send 1)" in report.output

    everything = cli("bounces", "report")
    assert everything.output.splitlines()[0] == "All sends: 4 permanent, 1 temporary, 1 complaint."


def test_cli_errors_are_one_line(cli, mailing, workdir):
    assert cli("bounces", "report", "--send", "99").output == "Error: no send with id 99\n"
    result = cli("bounces", "process")
    assert result.exit_code == 1
    assert result.output == "Error: no bounce mailbox: pass --mailbox, or set bounce_mailbox in mailer.toml\n"
    missing = cli("bounces", "process", "--mailbox", str(workdir / "nope"))
    assert missing.output == f"Error: bounce mailbox {workdir / 'nope'}: no such Maildir folder or mbox file\n"


def test_subscribers_show_names_the_report_code_and_rule_that_removed_someone(cli, mailing, maildir):
    deliver(maildir, (CORPUS / "postfix-user-unknown.eml").read_bytes(), (CORPUS / "postfix-mailbox-full-delayed.eml").read_bytes())
    cli("bounces", "process", "--mailbox", str(maildir))
    shown = " ".join(cli("subscribers", "show", "rhys.jones@example.net").output.split())
    assert ("removed by rule no-such-user, code 5.1.1, report <20250304100211.4TQ3mX1yZPz9sW@mail.example.org>: smtp; 550 5.1.1"
            in shown)
    still_active = " ".join(cli("subscribers", "show", "sian.price@example.com").output.split())
    assert "removed by -" in still_active
