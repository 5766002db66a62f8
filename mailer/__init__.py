"""mailer: a newsletter toolkit. YAML issue -> responsive email -> each subscriber, exactly once."""

__version__ = "0.1.0"
