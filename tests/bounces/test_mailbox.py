import mailbox

import pytest

from mailer.bounces.mailbox import ImapLocation, display_name, open_mailbox
from mailer.errors import BounceError

from .conftest import corpus, deliver, remaining

ONE, TWO = corpus("postfix-user-unknown.eml"), corpus("out-of-office.eml")


def test_maildir_lists_and_moves_to_handled_subfolder(maildir):
    deliver(maildir, ONE, TWO)
    with open_mailbox(str(maildir)) as box:
        listed = list(box.messages(1_000_000))
        assert sorted(data for _, data in listed) == sorted([ONE, TWO])
        key = next(key for key, data in listed if data == ONE)
        box.move_to_handled(key)
    assert remaining(maildir) == [TWO]
    assert remaining(maildir, "handled") == [ONE]  # Maildir++ folder .handled, bytes unchanged
    assert (maildir / ".handled" / "maildirfolder").exists()


def test_maildir_does_not_read_messages_over_the_limit(maildir):
    deliver(maildir, ONE)
    with open_mailbox(str(maildir)) as box:
        assert [data for _, data in box.messages(100)] == [None]


def test_mbox_lists_and_moves_to_a_handled_file(workdir):
    path = workdir / "bounces.mbox"
    box = mailbox.mbox(path)
    box.add(ONE)
    box.add(TWO)
    box.close()
    with open_mailbox(str(path)) as opened:
        listed = list(opened.messages(1_000_000))
        assert [data for _, data in listed] == [ONE, TWO]
        opened.move_to_handled(listed[0][0])
    assert [m.get_bytes(k) for m in [mailbox.mbox(path)] for k in m.keys()] == [TWO]
    handled = mailbox.mbox(workdir / "bounces.mbox.handled")
    assert [handled.get_bytes(key) for key in handled.keys()] == [ONE]


def test_mbox_locked_by_another_program_is_refused(workdir):
    path = workdir / "bounces.mbox"
    other = mailbox.mbox(path)
    other.add(ONE)
    other.lock()
    try:
        with pytest.raises(BounceError, match="locked by another program"):
            with open_mailbox(str(path)):
                pass
    finally:
        other.unlock()


def test_missing_or_wrong_mailboxes_are_named(workdir):
    with pytest.raises(BounceError, match="nowhere: no such Maildir folder or mbox file"):
        with open_mailbox(str(workdir / "nowhere")):
            pass
    (workdir / "plain").mkdir()
    with pytest.raises(BounceError, match="not a Maildir"):
        with open_mailbox(str(workdir / "plain")):
            pass
    (workdir / "notes.txt").write_text("hello\n")
    with pytest.raises(BounceError, match="notes.txt: a file, but not an mbox"):
        with open_mailbox(str(workdir / "notes.txt")):
            pass


def test_imap_urls():
    location = ImapLocation.from_url("imaps://bounce%40example.org:s%2Fcret@mail.example.org/Bounces%20In?handled=INBOX.Done")
    assert location == ImapLocation(
        host="mail.example.org", port=993, user="bounce@example.org", password="s/cret",
        folder="Bounces In", handled="INBOX.Done", implicit_tls=True,
    )
    plain = ImapLocation.from_url("imap://u:p@mail.example.org")
    assert (plain.port, plain.folder, plain.handled, plain.implicit_tls) == (143, "INBOX", "Handled", False)
    with pytest.raises(BounceError, match=r"imaps://u:\*\*\*@:99/: write it as imaps://user:password@host/FOLDER"):
        ImapLocation.from_url("imaps://u:secret@:99/")
    with pytest.raises(BounceError, match="write it as"):
        ImapLocation.from_url("imaps://mail.example.org/INBOX")
    assert display_name("imaps://u:secret@host/INBOX") == "imaps://u:***@host/INBOX"
    assert display_name("/var/mail/bounces") == "/var/mail/bounces"


@pytest.mark.parametrize("implicit_tls", [False, True], ids=["starttls", "imaps"])
def test_imap_lists_and_moves_to_handled_folder(imap_server, implicit_tls):
    imap_server.append(ONE, TWO)
    with open_mailbox(imap_server.url(implicit_tls=implicit_tls)) as box:
        listed = list(box.messages(1_000_000))
        assert [data.replace(b"\r\n", b"\n") for _, data in listed] == [ONE, TWO]
        box.move_to_handled(listed[0][0])
        assert [data for _, data in box.messages(100)] == [None]  # only sizes were fetched
    assert [data.replace(b"\r\n", b"\n") for data in imap_server.messages("INBOX")] == [TWO]
    assert [data.replace(b"\r\n", b"\n") for data in imap_server.messages("Handled")] == [ONE]


def test_imap_errors_are_clean(imap_server):
    with pytest.raises(BounceError, match="cannot open folder 'Nope'"):
        with open_mailbox(imap_server.url("Nope")):
            pass
    wrong = imap_server.url().replace("p%40ss%20word", "wrong")
    with pytest.raises(BounceError, match=r"imap://bounces@127\.0\.0\.1:\d+/INBOX: .*"):
        with open_mailbox(wrong):
            pass
