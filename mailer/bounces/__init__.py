"""Bounces and complaints: read mailboxes, classify, and stop mailing those who cannot or will not take mail."""
