"""Bounces and complaints: read mailboxes, classify, and stop mailing those who cannot or will not take mail."""

from mailer.bounces.policy import ProcessReport, process_mailbox

__all__ = ["ProcessReport", "process_mailbox"]
