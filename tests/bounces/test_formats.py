"""Our own corpus of bounces, complaints and other messages in the shapes of dozens of mail servers and services.

`corpus/labelled/labels.csv` says what each message is; bench/bench_bounces.py reads the same folder (or any
other in that format) and prints precision, recall and speed.
"""

from __future__ import annotations

import csv
import sys

import pytest

from mailer.bounces.classify import classify
from mailer.bounces.unsubscribe import request_in
from tests.fixtures.settings import ROOT

from .conftest import CORPUS

sys.path.insert(0, str(ROOT))
from bench.bench_bounces import labelled, verdict  # noqa: E402

LABELLED = CORPUS / "labelled"
LABELS = {row["file"]: row["label"] for row in csv.DictReader((LABELLED / "labels.csv").open(encoding="utf-8"))}


def test_the_corpus_is_large_and_varied():
    files = {path.name for path in LABELLED.glob("*.eml")}
    assert files == set(LABELS)
    assert len(files) >= 200
    families = {name.split("-")[0] for name in files}
    assert len(families) >= 50
    assert set(LABELS.values()) == {"permanent", "temporary", "complaint", "unsubscribe", "none"}


@pytest.mark.parametrize("name", sorted(LABELS))
def test_each_message_is_judged_as_labelled(settings, name):
    assert verdict(settings, (LABELLED / name).read_bytes()) == LABELS[name]


def test_a_complaint_or_bounce_never_reads_as_an_unsubscribe_request(settings):
    """Returned copies carry the reader's signed mailto; only a message sent to it is a request."""
    for name, label in LABELS.items():
        if label != "unsubscribe":
            assert request_in(settings, (LABELLED / name).read_bytes()) is None, name


def test_permanent_verdicts_say_which_rule_and_code(settings):
    for name, label in LABELS.items():
        if label == "permanent":
            failures = classify(settings, (LABELLED / name).read_bytes()).failures
            assert all(failure.rule and failure.diagnostic for failure in failures), name


def test_the_bench_reads_a_folder_of_subfolders_named_by_label(workdir):
    for label, name in (("hard", "gmail-no-such-user.eml"), ("none", "human-reply.eml")):
        (workdir / label).mkdir()
        (workdir / label / name).write_bytes((LABELLED / name).read_bytes())
    assert [(name, label) for name, label, _ in labelled(workdir)] == [
        ("hard/gmail-no-such-user.eml", "permanent"), ("none/human-reply.eml", "none")]
