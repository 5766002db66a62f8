"""The rule table: which codes and phrases in a failure report stand for which reason, and what each does.

A wrong "permanent" verdict silently drops a reader who wanted the newsletter,
so an address is marked bounced at once only on positive evidence that the
*address* is bad: a code or phrase of one of the permanent rules below. Every
other failure, and anything that faults the sender, the sending server, its
reputation or authentication, the content, the route or the clock, is
temporary: it counts toward `bounce_soft_limit`.

The evidence is every text the reporting server wrote about one recipient:
the DSN's `Status` and `Diagnostic-Code`, and its human-readable notice. The
rules are tried in order and the first that matches decides, so the rules that
fault something other than the address come first: a `5.1.1` status over a
`550 5.7.1 IP address blacklisted` diagnostic is a block, not a dead address.
`X.0.0` codes carry no information and match nothing. docs/bounces.md shows
this table; `tests/bounces/test_rules.py` checks that it does.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from collections.abc import Iterable
from dataclasses import dataclass, field

from mailer.store.models import BounceKind

# An RFC 3463 enhanced status code: class 2, 4 or 5, subject 0-7, detail 0-999. Not part of a
# longer dotted number (an IP address, a version) and not glued to a word.
ENHANCED_CODE = re.compile(r"(?<![\w.])([245])\.([0-7])\.(\d{1,3})(?!\w|\.\d)")
# An SMTP reply code where a server's reply starts: at the start of the text or after a space,
# ';', ':', a quote, '(', '[', '#', '=', '>' ("smtp; 550", "said: 550", "<<< 550", "'550",
# "#550"), followed by a space, a comma, the end, or a '-' that continues a reply ("550-5.1.1",
# "550-Mailbox"). So "437-4BDB" inside a Message-Id and "480-624-2500" are not reply codes.
REPLY_CODE = re.compile(r"(?<![^\s;:'\"(\[#=>])([245]\d\d)(?=[ \t,]|$|-(?:[245]\.\d|[A-Za-z]))", re.MULTILINE)

# A code of class 4 or 5 (X.0.0 included: "550 5.0.0" still says something failed).
FAILURE_CODE = re.compile(f"{ENHANCED_CODE.pattern.replace('[245]', '[45]', 1)}|{REPLY_CODE.pattern.replace('[245]', '[45]', 1)}",
                          re.MULTILINE)
PARAGRAPH = re.compile(r"\n[ \t]*\n")


@dataclass(frozen=True)
class Rule:
    """One reason a delivery can fail, the codes and phrases that show it, and what it does."""

    name: str
    kind: BounceKind
    reason: str  # what it means, for people (docs/bounces.md, `mailer bounces report`)
    codes: tuple[str, ...] = ()  # "5.1.1", "*.7.*" (enhanced status codes), "4xx", "552" (reply codes)
    phrases: tuple[str, ...] = ()  # regular expressions, matched on lower-cased, single-spaced text
    anywhere: bool = False  # its phrases outweigh codes wherever they are, not only in the server's reply
    compiled: tuple[tuple[str, re.Pattern[str]], ...] = field(default=(), repr=False, compare=False)

    def __post_init__(self) -> None:
        if any(phrase != phrase.lower() for phrase in self.phrases):
            raise ValueError(f"rule {self.name}: phrases are matched on lower-cased text, so they must be lower case")
        object.__setattr__(self, "compiled", tuple((anchor(phrase), re.compile(phrase)) for phrase in self.phrases))

    def says(self, text: str) -> bool:
        """Whether one of the rule's phrases occurs in a lower-cased, single-spaced text.

        Each phrase is tried only when its anchor (a piece of text it cannot match
        without) occurs: a substring test costs a hundredth of a regular expression search.
        """
        return any(literal in text and pattern.search(text) for literal, pattern in self.compiled)

    def matches_code(self, enhanced: Iterable[tuple[str, str, str]], replies: Iterable[str]) -> str:
        """The first of the given codes this rule names, or ''."""
        for code in self.codes:
            if "." in code:
                want = code.split(".")
                for found in enhanced:
                    if all(w in ("*", f) for w, f in zip(want, found, strict=True)):
                        return ".".join(found)
            else:
                for reply in replies:
                    if code == reply or (code.endswith("xx") and reply.startswith(code[0])):
                        return reply
        return ""


def anchor(phrase: str) -> str:
    """The longest piece of plain text a phrase cannot match without ('' when there is none to rely on):
    a run of literal characters outside any group, class or escape, not made optional by a quantifier."""
    best, run, depth, index = "", "", 0, 0
    while index < len(phrase):
        char = phrase[index]
        if depth == 0 and char == "|":
            return ""  # alternatives at the top: no single piece is certain
        literal = depth == 0 and (char.isalnum() or char in " -'\",:&/_@#!<>=%")
        if literal and index + 1 < len(phrase) and phrase[index + 1] in "?*{":
            literal = False  # the character may be absent
        if literal:
            run += char
        else:
            best, run = max(best, run, key=len), ""
            depth += {"(": 1, "[": 1, "{": 1, ")": -1, "]": -1, "}": -1}.get(char, 0)
            if char == "\\":
                index += 1  # an escape: \b, \d, \. ... is never part of a plain run
        index += 1
    return max(best, run, key=len)


T, P = BounceKind.temporary, BounceKind.permanent

RULES: tuple[Rule, ...] = (
    # ---- temporary: the failure may pass, or faults something other than the address -----------
    Rule("delayed", T, "a warning: delivery is delayed and still being tried (or a DSN says `Action: delayed`)",
         phrases=(r"warning only", r"will (?:keep|continue) (?:on )?trying", r"still being retried",
                  r"will be retried", r"delivery (?:has been|is) delayed", r"delayed for more than",
                  r"could not (?:be delivered|send message) for (?:the )?(?:past|more than) \d+ hours?"), anywhere=True),
    Rule("expired", T, "the sending server gave up retrying after a time limit, without an answer about the address",
         codes=("*.4.7",),
         phrases=(r"retry time(?:out)? (?:not reached|exceeded)", r"in the queue too long", r"delivery time expired",
                  r"message expired", r"envelope expired", r"could not deliver for the last",
                  r"could not be delivered for \d+ days?", r"cannot send message for \d+ days?",
                  r"has not been delivered .{0,40}\d+ days?", r"too many (?:delivery )?(?:retries|attempts)",
                  r"maximum (?:queue|retry) (?:time|lifetime)", r"exceeded the (?:maximum )?time limit",
                  r"within the allowed queue period"), anywhere=True),
    Rule("sender-refused", T, "the receiving server refused the sender's address or domain, not the recipient",
         codes=("*.1.7", "*.1.8"),
         phrases=(r"sender (?:address|domain|e-?mail) (?:rejected|refused|denied|invalid|not allowed|is invalid)",
                  r"sender (?:rejected|refused|denied|verify failed|verification failed|not (?:allowed|authorized))",
                  r"(?:bad|invalid|unverified|unknown) (?:envelope )?sender", r"domain of sender address",
                  r"after mail from", r"in reply to mail from command", r"but sender was rejected",
                  r"return-?path (?:rejected|invalid|not accepted)", r"mail from .{0,60}(?:rejected|refused|denied)",
                  r"your (?:address|domain|e-?mail address) (?:has been |is )?(?:rejected|blocked|blacklisted)",
                  r"(?:null|empty) (?:envelope )?senders? (?:is |are )?not (?:allowed|accepted)", r"no third-party dsns",
                  r"bogus mail from", r"unroutable sender", r"\bbatv\b", r"backscatter", r"unsigned dsn",
                  r"sender (?:is )?(?:in my black ?list|not pre-?approved|is a spammer)",
                  r"does not accept mail from", r"returned mail not accepted", r"mail from not owned",
                  r"not on the recipient's list of senders"), anywhere=True),
    Rule("refused-before-recipient", T,
         "the receiving server refused the connection or the greeting before it was told the recipient",
         phrases=(r"after (?:initial connection|connection|greeting|ehlo|helo|starttls|auth)\b",
                  r"in reply to (?:ehlo|helo|starttls|auth) command", r"refused to talk to me",
                  r"but greeting failed", r"but my name was rejected", r"did not like our (?:ehlo|helo|mail)"), anywhere=True),
    Rule("network", T, "the sending server could not reach or talk to the receiving server",
         phrases=(r"connection (?:refused|timed out|reset|lost|closed|died)", r"timed out while", r"timeout",
                  r"no answer from",
                  r"no route to host", r"network (?:is )?unreachable", r"lost connection",
                  r"unable to (?:connect|establish)", r"wasn't able to establish an smtp connection",
                  r"could not connect", r"connect to .{0,80} (?:refused|timed out)", r"tls (?:is )?required",
                  r"starttls", r"certificate", r"handshake")),
    Rule("blocked", T,
         "the sending server, its IP address or domain is blocked, or the message was taken for spam",
         phrases=(r"black-?list", r"block-?list", r"black list", r"block list", r"deny-?list", r"\bblocked\b",
                  r"\bblock(?:ing)?\b .{0,40}\b(?:ip|address|sender|domain|server)\b", r"spamhaus", r"spamcop",
                  r"barracuda", r"sorbs", r"\brbl\b", r"\bdnsbl\b", r"(?<!not )listed (?:at|on|in|by)\b", r"\bspam\b",
                  r"unsolicited", r"junk mail", r"reputation", r"bulk mail", r"poor sending",
                  r"\bsc-\d{3}\b", r"\bmessages? from .{0,40} weren't sent", r"\bip (?:address )?.{0,40} (?:rejected|refused)",
                  r"client host .{0,60} (?:rejected|refused|blocked)")),
    Rule("authentication", T, "the message failed the receiver's sender authentication (SPF, DKIM, DMARC, reverse DNS)",
         phrases=(r"\bspf\b", r"\bdkim\b", r"\bdmarc\b", r"authenticat", r"reverse (?:dns|lookup)", r"\bptr\b",
                  r"\brdns\b", r"\bhelo\b", r"not (?:properly )?signed")),
    Rule("rate-limited", T, "the receiving server limits how much it takes from this sender or for this recipient",
         phrases=(r"rate[ -]?limit", r"too many (?:messages|connections|recipients|mails|emails|sessions)",
                  r"receiving mail at a rate", r"throttl", r"exceeded (?:the )?(?:sending |message |hourly |daily )?(?:rate|limit|quota) for",
                  r"too much (?:mail|traffic)", r"slow down")),
    Rule("mailing-list-refused", T,
         "a group or mailing list refused the message (not a member, may not post, moderated)",
         phrases=(r"may not have permission to post", r"not (?:a )?member", r"members only", r"only members",
                  r"permission to post", r"\bmoderat", r"group you tried to contact", r"not allowed to post"), anywhere=True),
    Rule("suspended", T, "the account exists but is suspended, locked or frozen for now",
         phrases=(r"suspended", r"\blocked\b", r"frozen", r"on hold")),
    Rule("mailbox-full", T, "the mailbox is full or over its quota",
         codes=("*.2.2", "*.3.1"),
         phrases=(r"mailbox (?:is )?full", r"full mailbox", r"mailbox .{0,30}\bfull\b", r"\bover (?:the |its |their )?quota",
                  r"quota (?:exceeded|exceed|violation|full)", r"exceeds? (?:the |his |her |their )?(?:storage|disk|mailbox) ",
                  r"exceeded (?:the |his |her |their )?(?:storage|disk|mailbox|quota)", r"exceeded storage allocation",
                  r"insufficient (?:disk |storage )?space", r"not (?:sufficient|enough) (?:disk |storage )?space",
                  r"no space left", r"mailbox size limit", r"disk quota", r"mail ?box .{0,20}quota",
                  r"out of (?:disk |storage )?space", r"too many messages (?:in|on)")),
    Rule("content", T, "the content was refused: too big, a virus, an attachment, a link, the format",
         codes=("*.6.*", "*.2.3", "*.3.4"),
         phrases=(r"too (?:big|large|long)", r"size (?:limit|exceed)", r"exceeds? .{0,30}size", r"message size",
                  r"\bvirus", r"malware", r"infected", r"phishing", r"content (?:rejected|refused|filter|policy)",
                  r"message content", r"line too long")),
    Rule("policy", T, "the receiving server's policy or security settings refused the message",
         codes=("*.7.*",),
         phrases=(r"polic(?:y|ies)", r"prohibited", r"not (?:allowed|permitted|authori[sz]ed)", r"unauthori[sz]ed",
                  r"administrative(?:ly)? prohibit", r"relay(?:ing)? (?:access )?(?:denied|not permitted|prohibited)",
                  r"we do not relay", r"(?<!address rejected: )access (?:to .{0,40})?(?:denied|refused)",
                  r"refused by (?:local )?(?:policy|administrator)", r"quarantin",
                  r"recipient preferences", r"(?:only )?accepting mail from (?:specific|approved|known)",
                  r"blocked by the recipient", r"refuses? to (?:receive|accept) (?:this|your|the)", r"\buser reject",
                  r"message filtered", r"protected by")),
    Rule("system", T, "a fault of the receiving mail system (full, misconfigured, a loop)",
         codes=("*.3.*", "*.5.3"),
         phrases=(r"\bloop", r"hop count", r"too many hops", r"system (?:error|failure|full|is full)",
                  r"configuration error", r"misconfigur", r"internal (?:server )?error", r"local error",
                  r"insufficient (?:system )?resources", r"server (?:busy|is busy)")),
    Rule("try-again", T, "a temporary failure: the server asks to try again later",
         codes=("4.*.*", "4xx"),
         phrases=(r"(?:try|retry) (?:again )?later", r"temporar(?:y|ily)", r"grey-?listed", r"gray-?listed",
                  r"not found, try again", r"servfail", r"name server (?:timeout|failure)", r"dns (?:timeout|failure)",
                  r"deferred", r"please retry", r"not (?:yet )?available at the moment")),
    # ---- permanent: positive evidence that the address cannot receive mail ---------------------
    Rule("no-such-user", P, "the mailbox does not exist (RFC 3463 X.1.1)",
         codes=("*.1.1",),
         phrases=(r"(?:user|mailbox|address|addressee|account) (?:is )?unknown",
                  r"unknown (?:user|recipient|mailbox|local[- ]?part|e-?mail address|address|alias)",
                  r"recipient (?:is )?unknown", r"no such (?:user|recipient|mailbox|address|person|account|local user)",
                  r"(?:user|recipient|mailbox|address|account|addressee|e-?mail account|e-?mail address) (?:does not|doesn't|did not|not) exists?",
                  r"(?:user|recipient|mailbox|address|account|addressee) (?:was )?not found",
                  r"no mailbox (?:here|by that name|found|available)", r"mailbox (?:not found|invalid|unavailable|is unavailable|not available)",
                  r"invalid (?:recipient|mailbox|user|e-?mail address|address)", r"not a valid (?:recipient|mailbox|user|address)",
                  r"is not a (?:known|valid) (?:user|recipient|mailbox)", r"recipient address rejected: (?:access denied|undeliverable|invalid)",
                  r"account that you tried to reach does not exist", r"doesn't have an? [\w.-]+ account",
                  r"not listed in (?:the )?(?:domino directory|public name & address book|name & address book)",
                  r"not found by smtp address lookup", r"resolver\.adr\.recip(?:ient)?notfound", r"addressee unknown",
                  r"bad destination mailbox", r"address (?:you entered )?(?:couldn't|could not) be found",
                  r"5\.1\.0 address rejected",
                  r"wasn't found at", r"non-?existent (?:user|recipient|mailbox|address|account)",
                  r"no longer (?:a valid|valid|exists|in use|active|available)", r"this address no longer accepts mail",
                  r"unknown or illegal alias", r"invalid or unknown (?:virtual )?user", r"unrouteable mail domain",
                  r"benutzer unbekannt", r"empf(?:ä|ae)nger unbekannt", r"utilisateur inconnu", r"destinataire inconnu",
                  r"usuario desconocido", r"utente sconosciuto", r"no existe")),
    Rule("no-such-domain", P, "the domain does not exist or takes no mail (X.1.2, X.1.10 null MX)",
         codes=("*.1.2", "*.1.10"),
         phrases=(r"host or domain name not found", r"domain (?:name )?(?:does not|doesn't) exist", r"no such domain",
                  r"unknown (?:domain|host)", r"domain (?:name )?not found", r"host unknown", r"unrouteable address",
                  r"unroutable address", r"couldn't find any host (?:named|by that name)", r"couldn't find a mail exchanger",
                  r"dns lookup failure: host", r"invalid domain name", r"no mx (?:record )?found for",
                  r"(?:does not|doesn't) accept (?:any )?(?:e-?)?mail(?! from)", r"null mx",
                  r"\bnxdomain\b", r"dns domain .{1,100} does not exist")),
    Rule("bad-address", P, "the address is malformed (X.1.3)",
         codes=("*.1.3",),
         phrases=(r"(?:bad|invalid|illegal) (?:recipient )?address syntax", r"syntax error in (?:the )?(?:recipient|address)")),
    Rule("moved", P, "the mailbox has moved and left no forwarding address (X.1.6, 551)",
         codes=("*.1.6", "551"),
         phrases=(r"user not local", r"(?:user|mailbox|recipient|address|account) (?:has|have) moved",
                  r"no forwarding address", r"has been replaced by")),
    Rule("disabled", P, "the mailbox is disabled and takes no mail (X.2.1)",
         codes=("*.2.1",),
         phrases=(r"mailbox (?:is )?disabled", r"account (?:has been |is )?(?:disabled|deactivated|closed|deleted|terminated)",
                  r"disabled or discontinued", r"deactivated (?:mailbox|account)", r"account that you tried to reach is disabled")),
)
# Codes that say something failed but not what: they decide only when no word of the table does.
FALLBACK_RULES: tuple[Rule, ...] = (
    Rule("routing", T, "the sending server could not route the message (X.4.x) and said nothing about the address",
         codes=("*.4.*",)),
    Rule("storage-reply", T, "a 552 reply: storage exceeded (RFC 5321 says to treat it as temporary)",
         codes=("552",)),
)
UNKNOWN = Rule("no-evidence", T, "a failure whose codes and words say nothing recognisable about the address")

# Verdicts that do not come from the words of a failure.
COMPLAINT = Rule("complaint", BounceKind.complaint,
                 "a spam complaint: an ARF report of type abuse or fraud, a Microsoft JMRP report, a provider's complaint notice")
PROVIDER_HARD = Rule("provider-hard-bounce", P,
                     "a sending service's notice that the address does not exist (Postmark HardBounce or BadEmailAddress, "
                     "Amazon SES NoEmail, SendGrid 'Invalid Address')")
RULES_BY_NAME = {rule.name: rule for rule in (*RULES, *FALLBACK_RULES, UNKNOWN, COMPLAINT, PROVIDER_HARD)}
DELAYED = RULES_BY_NAME["delayed"]  # also what a DSN's "Action: delayed" is, whatever its words


@dataclass(frozen=True)
class Failure:
    """One recipient a report names, with the verdict and what it rests on.

    `address` is empty when the report does not say; `rule` names the entry of
    the table that decided and `code` the status or reply code it saw.
    """

    address: str
    kind: BounceKind
    diagnostic: str
    rule: str = UNKNOWN.name
    code: str = ""


def codes_in(texts: Iterable[str]) -> tuple[list[tuple[str, str, str]], list[str]]:
    """Every enhanced status code (but X.0.0) and every reply code in the texts, in order."""
    enhanced: list[tuple[str, str, str]] = []
    replies: list[str] = []
    for text in texts:
        enhanced += [found for found in ENHANCED_CODE.findall(text) if found[1:] != ("0", "0")]
        replies += REPLY_CODE.findall(text)
    return enhanced, replies


def single_spaced(text: str) -> str:
    """Lower case, lines joined (servers fold their replies anywhere), but never across a blank line:
    a phrase is not made of the end of one paragraph and the start of the next."""
    return " ¶ ".join(" ".join(paragraph.split()) for paragraph in PARAGRAPH.split(text.lower()))


def judge(reply: Iterable[str], context: Iterable[str] = ()) -> tuple[Rule, str]:
    """The rule the evidence about one failed recipient matches, and the code to show with it.

    `reply` is the receiving server's own answer (a DSN's Diagnostic-Code and
    Status, the lines of a notice that carry a code); `context` is what else the
    reporting server wrote (the notice around it). In order:

    1. words in the reply that fault something other than the address, and
       words anywhere of the rules that say at which stage or how late the
       failure came (`anywhere`);
    2. codes, the most telling first (the table's order): so boilerplate words
       do not outweigh the server's `5.1.1`, nor `5.1.1` its `5.7.1`;
    3. words anywhere, in the table's order;
    4. codes that name only a subject (`X.Y.0`, "other ... status"), then those
       that say only that something failed (`FALLBACK_RULES`).
    """
    said = " ¶ ".join(single_spaced(text) for text in reply if text)
    around = " ¶ ".join(single_spaced(text) for text in context if text)
    everything = f"{said} ¶ {around}"
    enhanced, replies = codes_in([said, around])
    for rule in RULES:
        if rule.kind != P and (rule.says(said) or (rule.anywhere and rule.says(around))):
            return rule, _shown(rule, enhanced, replies)
    specific = [found for found in enhanced if found[2] != "0"]
    for rule in RULES:
        if code := rule.matches_code(specific, replies):
            return rule, code
    for rule in RULES:
        if rule.says(everything):
            return rule, _shown(rule, enhanced, replies)
    for rule in (*RULES, *FALLBACK_RULES):
        if code := rule.matches_code(enhanced, replies):
            return rule, code
    return UNKNOWN, _shown(UNKNOWN, enhanced, replies)


def _shown(rule: Rule, enhanced: list[tuple[str, str, str]], replies: list[str]) -> str:
    """The code to show beside a verdict reached by words: the first of the verdict's class (4 for a
    temporary one, 5 for a permanent one), else the first one seen; the enhanced code before the reply code."""
    wanted = "4" if rule.kind != P else "5"
    codes = [".".join(found) for found in enhanced] + replies
    return next((code for code in codes if code.startswith(wanted)), codes[0] if codes else "")


def failed(address: str, diagnostic: str, reply: Iterable[str], context: Iterable[str] = ()) -> Failure:
    """A recipient the report says failed, judged by the table (see `judge`)."""
    rule, code = judge(reply, context)
    return Failure(address, rule.kind, diagnostic, rule.name, code)


def delayed(address: str, diagnostic: str, reply: Iterable[str], context: Iterable[str] = ()) -> Failure:
    """A recipient the report says is only delayed: temporary whatever the words."""
    _, code = judge(reply, context)
    return Failure(address, BounceKind.temporary, diagnostic, DELAYED.name, code)


def evidence_lines(lines: list[str]) -> set[int]:
    """The numbers of the lines that hold a 4xx/5xx code or a phrase of the table (a phrase folded
    over two lines marks both), found in one pass over the joined text."""
    starts, pieces, offset = [], [], 0
    for line in lines:
        piece = " ".join(line.lower().split()) or "¶"
        starts.append(offset)
        pieces.append(piece)
        offset += len(piece) + 1
    text = " ".join(pieces)
    spans = [found.span() for found in FAILURE_CODE.finditer(text)]
    for rule in (*RULES, *FALLBACK_RULES):
        for literal, pattern in rule.compiled:
            if literal in text:
                spans += [found.span() for found in pattern.finditer(text)]
    return {bisect_right(starts, position) - 1 for span in spans for position in (span[0], max(span[0], span[1] - 1))}


def markdown_table() -> str:
    """The rule table as docs/bounces.md shows it (tests/bounces/test_rules.py checks they agree)."""
    def cell(values: Iterable[str]) -> str:
        return " ".join(f"`{value}`".replace("|", "\\|") for value in values) or "-"

    rows = ["| rule | verdict | codes | what it means | phrases (regular expressions on lower-cased text) |",
            "| --- | --- | --- | --- | --- |"]
    for rule in (*RULES, *FALLBACK_RULES, UNKNOWN, COMPLAINT, PROVIDER_HARD):
        where = " (anywhere)" if rule.anywhere else ""
        rows.append(f"| `{rule.name}`{where} | {rule.kind} | {cell(rule.codes)} | {rule.reason} | {cell(rule.phrases)} |")
    return "\n".join(rows)

