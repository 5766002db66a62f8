"""Scheduling: when a send starts. `schedule_send` plans one; `Runner` (behind `mailer run`) fires it.

The delivery engine does the sending; this package only decides when. See docs/scheduling.md.
"""

from mailer.schedule.runner import Runner
from mailer.schedule.service import schedule_send

__all__ = ["Runner", "schedule_send"]
