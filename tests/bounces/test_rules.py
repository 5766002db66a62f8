"""The rule table: data that decides who is removed, shown in full in docs/bounces.md."""

from __future__ import annotations

import re

import pytest

from mailer.bounces.rules import FALLBACK_RULES, RULES, RULES_BY_NAME, Rule, anchor, codes_in, judge, markdown_table
from mailer.store.models import BounceKind
from tests.fixtures.settings import ROOT


def test_docs_show_the_table_the_code_uses():
    docs = (ROOT / "docs" / "bounces.md").read_text()
    assert markdown_table() in docs, (
        "docs/bounces.md is out of date: paste the output of "
        "`python -c 'from mailer.bounces.rules import markdown_table; print(markdown_table())'` over the table")


def test_rules_have_distinct_names_and_only_address_rules_are_permanent():
    assert len(RULES_BY_NAME) == len({rule.name for rule in (*RULES, *FALLBACK_RULES)}) + 3
    permanent = [rule.name for rule in RULES if rule.kind == BounceKind.permanent]
    assert permanent == ["no-such-user", "no-such-domain", "bad-address", "moved", "disabled"]
    assert {code for name in permanent for code in RULES_BY_NAME[name].codes} == {
        "*.1.1", "*.1.2", "*.1.10", "*.1.3", "*.1.6", "551", "*.2.1"}


def test_phrases_must_be_lower_case():
    with pytest.raises(ValueError, match="must be lower case"):
        Rule("shouting", BounceKind.temporary, "test", phrases=("User Unknown",))


@pytest.mark.parametrize(("phrase", "literal"), [
    (r"user (?:is )?unknown", "unknown"),
    (r"exceeds? .{0,30}size", "exceed"),
    (r"(?:user|recipient) (?:does not|doesn't) exists?", " exist"),
    (r"(?<!not )listed (?:at|on)\b", "listed "),
    (r"\bsc-\d{3}\b", "sc-"),
    (r"mailbox|quota", ""),  # alternatives at the top: no piece is certain
])
def test_each_phrase_is_tried_only_when_its_anchor_occurs(phrase, literal):
    assert anchor(phrase) == literal


def test_every_phrase_anchor_is_in_what_it_matches():
    """An anchor the phrase can match without would hide it: try each phrase on a text made from itself."""
    for rule in RULES:
        for literal, pattern in rule.compiled:
            assert literal in pattern.pattern.replace("\\", ""), (rule.name, pattern.pattern)


def test_codes_are_read_only_where_a_server_reply_begins():
    enhanced, replies = codes_in(["smtp; 550-5.1.1 the account", "from 10.5.1.1 and Exim 4.96.1", "<CAB437-4BDB@x>",
                                  "call 480-624-2500", "#550 5.1.10 RESOLVER", "ERROR_CODE :550, ERROR_CODE :5.1.1"])
    assert enhanced == [("5", "1", "1"), ("5", "1", "10"), ("5", "1", "1")]
    assert replies == ["550", "550", "550"]


@pytest.mark.parametrize(("reply", "context", "rule", "code"), [
    (["550 5.0.0 unknown", "5.0.0"], [], "no-evidence", "550"),  # X.0.0 is no information
    (["550 5.7.1 blocked using zen.example", "5.1.1"], [], "blocked", "5.7.1"),  # what faults the sender wins
    (["550 5.7.1 Message refused", "5.1.1"], [], "policy", "5.7.1"),
    (["550 5.1.1 user unknown", "5.1.1", "450 4.2.1 greylisted, try again later"], [], "try-again", "4.2.1"),
    (["550 #5.1.1 no mailbox here by that name"], [], "no-such-user", "5.1.1"),
    (["552 1 requested mail action aborted, mailbox not found"], [], "no-such-user", "552"),
    (["552 exceeded storage allocation"], [], "mailbox-full", "552"),
    (["552 requested action aborted"], [], "storage-reply", "552"),  # a bare 552: only when no word says more
    (["user\n    unknown"], [], "no-such-user", ""),  # a phrase folded over two lines
    (["user\n\nunknown"], [], "no-evidence", ""),  # ... but not over two paragraphs
    # Boilerplate around the reply does not outweigh the server's own code ...
    (["550 5.1.1 <x@example.org>: user unknown"], ["unable to connect successfully to the destination"], "no-such-user", "5.1.1"),
    # ... but the stage of the refusal does, wherever it is written:
    (["550 5.1.1 <bounces@example.org>: rejected"], ["(in reply to MAIL FROM command)"], "sender-refused", "5.1.1"),
    (["550 5.1.1 unknown"], ["I'm not going to try again; this message has been in the queue too long."], "expired", "5.1.1"),
])
def test_judge(reply, context, rule, code):
    found, shown = judge(reply, context)
    assert (found.name, shown) == (rule, code)


def test_no_phrase_of_a_temporary_rule_hides_in_ordinary_hard_bounce_wording():
    """Boilerplate of real hard bounces must not trip a rule that keeps the address."""
    boilerplate = [
        "I'm sorry to have to inform you that your message could not be delivered to one or more recipients. "
        "It's attached below. For further assistance, please send mail to postmaster.",
        "Please try double-checking the recipient's email address for typos or unnecessary spaces. Learn more at "
        "https://support.google.example/mail/?p=NoSuchUser",
        "The e-mail address you entered couldn't be found. Please check the recipient's e-mail address and try to resend "
        "the message. If the problem continues, please contact your helpdesk.",
        "This is a permanent error; I've given up. Sorry it didn't work out.",
        "Check for typos or unnecessary spaces and try again.",
    ]
    for text in boilerplate:
        found, _ = judge(["550 5.1.1 user unknown"], [text])
        assert found.name == "no-such-user", (found.name, text)
        found, _ = judge([], [text, "user unknown"])  # no code at all: the words decide
        assert found.name == "no-such-user", (found.name, text)
    assert not re.search(r"\|", "".join(rule.name for rule in RULES))
