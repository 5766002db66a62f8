import smtplib


def test_smtp_fixture_records_and_refuses(smtp_server):
    smtp_server.rules["nobody@example.org"] = "550 5.1.1 No such user"
    with smtplib.SMTP("127.0.0.1", smtp_server.port) as client:
        refused = client.sendmail("a@example.org", ["b@example.org", "nobody@example.org"], b"Subject: x\r\n\r\nhi\r\n")
    assert "nobody@example.org" in refused
    assert smtp_server.recipients() == ["b@example.org"]


def test_engine_fixture(engine):
    assert engine.url.database.endswith("mailer.db")
