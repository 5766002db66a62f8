"""The JSON notices sending services forward by mail: Amazon SES (through SNS), Postmark, Mailgun, SendGrid.

Each says, per recipient, whether a message bounced, drew a complaint or was
delivered. A delivery notice is not a bounce. A bounce is judged by the same
rule table as any other, on the status and diagnostic the service passes on;
the service's own "permanent" counts as evidence only where it says the
address does not exist (SES `NoEmail`, Postmark `HardBounce`/`BadEmailAddress`,
SendGrid "Invalid Address") and the diagnostic faults nothing else; its
"transient" always keeps the failure temporary.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

from mailer.bounces.rules import COMPLAINT, PROVIDER_HARD, RULES_BY_NAME, UNKNOWN, Failure, delayed, failed
from mailer.store.models import BounceKind

Accept = Callable[[str], str]
# Keys that tell one of the known notices from any other JSON someone might mail.
MARKERS = ('"TopicArn"', '"notificationType"', '"eventType"', '"RecordType"', '"event-data"', '"sg_event_id"', '"bounceType"', '"event"')
NOT_COMPLAINTS = {"not-spam", "auth-failure", "virus", "other", "dmarc"}
# Postmark types that are not failures of delivery at all.
POSTMARK_NOT_FAILURES = {"AutoResponder", "Subscribe", "Unsubscribe", "AddressChange", "ChallengeVerification",
                         "OpenRelayTest", "ManuallyDeactivated", "Unconfirmed", "InboundError", "SMTPApiError",
                         "TemplateRenderingFailed"}
NO_SPECIFIC_EVIDENCE = {UNKNOWN.name, "routing", "storage-reply"}


def json_in(text: str) -> Any | None:
    """The first JSON object or array in a text (an SNS mail adds a footer after it), or None."""
    if not any(marker in text for marker in MARKERS):
        return None
    starts = [index for index in (text.find("{"), text.find("[")) if index >= 0]
    if not starts:
        return None
    decoder = json.JSONDecoder()
    for candidate in (text[min(starts):], "".join(text[min(starts):].split("\n"))):  # some mailers wrap long lines
        try:
            value, _ = decoder.raw_decode(candidate)
        except ValueError:
            continue
        return value
    return None


def read_notices(data: Any, accept: Accept) -> list[Failure] | None:
    """The failures in a JSON notice (possibly none: a delivery), or None when it is no notice we know."""
    events = data if isinstance(data, list) else [data]
    found: list[Failure] = []
    known = False
    for event in events:
        if not isinstance(event, dict):
            continue
        failures = _read(event, accept)
        if failures is not None:
            known = True
            found += failures
    return found if known else None


def _read(event: dict[str, Any], accept: Accept) -> list[Failure] | None:
    if isinstance(event.get("Message"), str) and event.get("Type") == "Notification":  # the SNS envelope
        inner = json_in(event["Message"])
        return _read(inner, accept) if isinstance(inner, dict) else None
    if "notificationType" in event or "eventType" in event:
        return list(_ses(event, accept))
    if "RecordType" in event:
        return list(_postmark(event, accept))
    if isinstance(event.get("event-data"), dict):
        return list(_mailgun(event["event-data"], accept))
    if "event" in event and "recipient" in event and ("severity" in event or "delivery-status" in event):
        return list(_mailgun(event, accept))
    if "event" in event and "email" in event:
        return list(_sendgrid(event, accept))
    return None


def _text(*values: Any) -> list[str]:
    return [str(value) for value in values if value not in (None, "")]


def _object(value: Any) -> dict[str, Any]:
    """A JSON object where one is expected; an empty one for anything else (a notice is outside data)."""
    return value if isinstance(value, dict) else {}


def _objects(value: Any) -> list[dict[str, Any]]:
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []


def _string(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _judged(address: str, diagnostic: str, evidence: list[str], *, hard: bool = False, soft: bool = False) -> Failure:
    """The table's verdict, kept temporary when the service says transient and made permanent when the
    service says the address does not exist and nothing in the diagnostic says otherwise."""
    failure = failed(address, diagnostic, evidence)
    if soft and failure.kind == BounceKind.permanent:
        return Failure(address, BounceKind.temporary, diagnostic, RULES_BY_NAME["try-again"].name, failure.code)
    if hard and failure.rule in NO_SPECIFIC_EVIDENCE:
        return Failure(address, BounceKind.permanent, diagnostic, PROVIDER_HARD.name, failure.code)
    return failure


def _complaint(address: str, diagnostic: str) -> Failure:
    return Failure(address, BounceKind.complaint, diagnostic, COMPLAINT.name)


def _ses(event: dict[str, Any], accept: Accept) -> Iterator[Failure]:
    kind = event.get("notificationType") or event.get("eventType")
    if kind == "Bounce":
        bounce = _object(event.get("bounce"))
        bounce_type, subtype = _string(bounce.get("bounceType")), _string(bounce.get("bounceSubType"))
        for recipient in _objects(bounce.get("bouncedRecipients")):
            evidence = _text(recipient.get("status"), recipient.get("diagnosticCode"))
            diagnostic = " ".join([f"SES {bounce_type}/{subtype}", *evidence])
            yield _judged(accept(_string(recipient.get("emailAddress"))), diagnostic, evidence,
                          hard=bounce_type == "Permanent" and subtype == "NoEmail", soft=bounce_type == "Transient")
    elif kind == "Complaint":
        complaint = _object(event.get("complaint"))
        if str(complaint.get("complaintFeedbackType", "abuse")).lower() in NOT_COMPLAINTS:
            return
        diagnostic = " ".join(_text("SES complaint", complaint.get("complaintFeedbackType"), complaint.get("userAgent")))
        for recipient in _objects(complaint.get("complainedRecipients")):
            yield _complaint(accept(_string(recipient.get("emailAddress"))), diagnostic)
    elif kind == "DeliveryDelay":
        for recipient in _objects(_object(event.get("deliveryDelay")).get("delayedRecipients")):
            evidence = _text(recipient.get("status"), recipient.get("diagnosticCode"))
            yield delayed(accept(_string(recipient.get("emailAddress"))), " ".join(["SES delay", *evidence]), evidence)


def _postmark(event: dict[str, Any], accept: Accept) -> Iterator[Failure]:
    record, kind = event.get("RecordType"), _string(event.get("Type"))
    address = accept(_string(event.get("Email")) or _string(event.get("Recipient")))
    if record == "SpamComplaint" or kind == "SpamComplaint":
        yield _complaint(address, "Postmark SpamComplaint")
    elif record == "Bounce" and kind not in POSTMARK_NOT_FAILURES:
        evidence = _text(event.get("Details"), event.get("Description"))
        diagnostic = " ".join(_text(f"Postmark {kind}", event.get("Details")))
        hard = kind in ("HardBounce", "BadEmailAddress")
        yield _judged(address, diagnostic, evidence if hard else _text(event.get("Details")), hard=hard, soft=not hard)


def _mailgun(event: dict[str, Any], accept: Accept) -> Iterator[Failure]:
    kind, address = event.get("event"), accept(_string(event.get("recipient")))
    if kind == "complained":
        yield _complaint(address, "Mailgun complained")
    elif kind == "failed":
        status = _object(event.get("delivery-status"))
        evidence = _text(status.get("code"), status.get("enhanced-code"), status.get("message"), status.get("description"))
        severity, reason = _string(event.get("severity")), _string(event.get("reason"))
        diagnostic = " ".join(_text(f"Mailgun failed ({severity}, {reason})", *evidence))
        yield _judged(address, diagnostic, evidence, soft=severity != "permanent" or reason.startswith("suppress"))


def _sendgrid(event: dict[str, Any], accept: Accept) -> Iterator[Failure]:
    kind, address = event.get("event"), accept(_string(event.get("email")))
    evidence = _text(event.get("status"), event.get("reason"), event.get("response"))
    diagnostic = " ".join(_text(f"SendGrid {kind}", event.get("type"), *evidence))
    if kind == "spamreport":
        yield _complaint(address, "SendGrid spamreport")
    elif kind == "bounce":
        yield _judged(address, diagnostic, evidence, hard=event.get("bounce_classification") == "Invalid Address",
                      soft=event.get("type") == "blocked")
    elif kind == "dropped":
        yield _judged(address, diagnostic, evidence, soft=True)
    elif kind == "deferred":
        yield delayed(address, diagnostic, evidence)
