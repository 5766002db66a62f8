"""What an issue did: delivered, bounced, complained about, who left after it and who changed preferences.

Counted from records kept anyway: the deliveries, the bounces (matched to their
delivery by the signed return path), and the subscriber events that a send's own
links attribute to it (the unsubscribe and preferences links of each email carry
their send). Each figure is split by the language the reader got the issue in.
Nothing here follows a person: there is no open tracking and no record of who
read or clicked what.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from sqlalchemy import and_, func, select
from sqlmodel import Session, col

from mailer.delivery.sends import get_send
from mailer.store.models import Bounce, BounceKind, Delivery, DeliveryStatus, Event, EventKind

# How a reader left, by the channel of their unsubscribe event.
LEFT_BY = {"one-click": "left: one-click", "web": "left: page", "link": "left: page", "email": "left: by email"}
FIGURES = ("delivered", "bounced: hard", "bounced: soft", "complaints", "left: one-click", "left: page",
           "left: by email", "left: other", "preferences changed")
BOUNCES = {BounceKind.permanent: "bounced: hard", BounceKind.temporary: "bounced: soft",
           BounceKind.complaint: "complaints"}
UNKNOWN = "?"  # a bounce or event whose delivery is gone


@dataclass(frozen=True)
class SendEffects:
    send_id: int
    counts: dict[str, dict[str, int]]  # figure -> language -> count (only languages with something)

    @property
    def languages(self) -> list[str]:
        return sorted({language for by_language in self.counts.values() for language in by_language})

    def total(self, figure: str) -> int:
        return sum(self.counts[figure].values())

    def count(self, figure: str, language: str) -> int:
        return self.counts[figure].get(language, 0)


def send_effects(session: Session, *, send_id: int) -> SendEffects:
    """Every figure of one send, zero included, split by the language each reader got."""
    get_send(session, send_id=send_id)  # NotFound names the command that lists sends
    counts: dict[str, dict[str, int]] = {figure: defaultdict(int) for figure in FIGURES}
    for language, n in session.execute(
        select(col(Delivery.language), func.count()).where(col(Delivery.send_id) == send_id,
                                                           col(Delivery.status) == DeliveryStatus.sent)
        .group_by(col(Delivery.language))
    ):
        counts["delivered"][str(language)] += n
    for language, kind, n in session.execute(
        select(col(Delivery.language), col(Bounce.kind), func.count())
        .select_from(Bounce).outerjoin(Delivery, col(Delivery.id) == col(Bounce.delivery_id))
        .where(col(Bounce.send_id) == send_id).group_by(col(Delivery.language), col(Bounce.kind))
    ):
        counts[BOUNCES[BounceKind(kind)]][str(language or UNKNOWN)] += n
    reader_delivery = and_(col(Delivery.send_id) == col(Event.send_id),
                           col(Delivery.subscriber_id) == col(Event.subscriber_id))
    for language, kind, channel, n in session.execute(
        select(col(Delivery.language), col(Event.kind), col(Event.channel),
               func.count(func.distinct(col(Event.subscriber_id))))
        .select_from(Event).outerjoin(Delivery, reader_delivery)
        .where(col(Event.send_id) == send_id, col(Event.kind).in_([EventKind.unsubscribed, EventKind.preferences]))
        .group_by(col(Delivery.language), col(Event.kind), col(Event.channel))
    ):
        figure = "preferences changed" if kind == EventKind.preferences else LEFT_BY.get(channel, "left: other")
        counts[figure][str(language or UNKNOWN)] += n
    return SendEffects(send_id, {figure: dict(by_language) for figure, by_language in counts.items()})
