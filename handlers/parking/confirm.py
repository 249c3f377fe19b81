"""Readings the driver must confirm: asked, stored, and booked only on a timely Y.

When the sentence reader is not sure (`sentence.Guess`), nothing is charged.  The reply says what
was understood, as the message to send (`1234AB 120`), with the zone, the end time and the price,
and the reading is stored (table `parking_pending`, one per number: a new question replaces the
last).  It is booked when the driver answers:

* `Y` / `YES` / `نعم` (optionally with the same plate) within `confirm_minutes` of the question;
* or the compact form: that is a certain booking of its own, and it settles the question, so a
  Y sent afterwards does not book a second time (it gets the booking's reply again).

A Y that comes later books nothing and says so.  "No" (`N`, `NO`, `لا`) while the question is open
closes it: nothing booked, and the message to send is repeated.  A Y sent twice is answered twice with the same
outcome and charged once (the booking carries the first Y's inbound id, see service.py).

Which question a Y answers
--------------------------
A reminder ("Parking 1234AB ends at 10:30. Reply Y to add 30 min.") asks a question too.  Y
answers the **most recent** question the number was sent: the reading to confirm if it was asked
after the last reminder of a stay that is still running, the reminder otherwise.  An expired
reading that is still the most recent question gets "not booked" (not an extension the driver
never meant); one older than a later reminder is forgotten.
"""

from __future__ import annotations

import enum
import functools
from dataclasses import dataclass
from typing import TYPE_CHECKING

from handlers.parking.config import ParkingConfig
from handlers.parking.service import Outcome, ParkingService, Quote, Requester, Status
from handlers.parking.sentence import Guess
from smsgw.log import get_logger, mask_msisdn
from smsgw.message import Lang
from smsgw.textnorm import normalise
from smsgw.store import Connection

if TYPE_CHECKING:
    from handlers.parking.handler import Wording
    from smsgw.feature import ServiceContext

__all__ = ["Answer", "AnswerKind", "Confirmations", "Pending", "is_no"]

log = get_logger(__name__)

#: Expired questions are kept this long (for the "not booked" reply), then deleted.
KEEP_EXPIRED_S = 86400.0


_NO = frozenset(normalise(w) for w in ("N", "NO", "NOPE", "NO THANKS", "لا", "لا شكرا", "كلا"))
_PUNCT = str.maketrans("", "", ".,!?;")


def is_no(text: str) -> bool:
    """The whole message says no (`No`, `no thanks`, `لا`): the answer to a question, if one is open."""
    return normalise(text).translate(_PUNCT).strip() in _NO


class AnswerKind(str, enum.Enum):
    BOOK = "book"  # the question is open: book it now
    EXPIRED = "expired"  # the question is the latest, but its time is up: nothing booked
    REPEAT = "repeat"  # already settled (a second Y, or the compact form came first): same outcome


@dataclass(frozen=True)
class Pending:
    plate: str
    minutes: int
    zone: str | None
    extend: bool
    quoted_baisa: int
    created_at: float
    expires_at: float

    def compact(self) -> str:
        """The message that books this reading without a question."""
        return " ".join(p for p in (self.plate, self.zone, str(self.minutes)) if p)


@dataclass(frozen=True)
class Answer:
    kind: AnswerKind
    pending: Pending
    outcome: Outcome | None = None  # REPEAT: what the answer that settled it got


_PENDING_COLS = "plate, minutes, zone, extend, quoted_baisa, created_at, expires_at"

T: dict[str, dict[Lang, str]] = {
    "ask_book": {
        Lang.EN: "Did you mean {compact}: park {plate} in {zone} until {end}, {amount}? "
                 "Reply Y within {ttl} min to book it.",
        Lang.AR: "هل تقصد {compact}: وقوف {plate} في {zone} حتى {end} {amount}؟ أرسل نعم خلال {ttl} للحجز.",
    },
    "ask_extend": {
        Lang.EN: "Did you mean {compact}: add {minutes} min to {plate}{until}, {amount}? "
                 "Reply Y within {ttl} min to confirm.",
        Lang.AR: "هل تقصد {compact}: إضافة {minutes} دقيقة إلى {plate}{until} {amount}؟ أرسل نعم خلال {ttl} للتأكيد.",
    },
    "until": {Lang.EN: " (until {end})", Lang.AR: " حتى {end}"},
    "price": {Lang.EN: "{amount}", Lang.AR: "بمبلغ {amount}"},
    "no_charge": {Lang.EN: "no charge", Lang.AR: "بدون رسوم"},
    "declined": {
        Lang.EN: "OK, nothing booked. To park send plate and minutes, e.g. {compact}",
        Lang.AR: "حسنا، لم يتم الحجز. للوقوف أرسل اللوحة والدقائق، مثال: {compact}",
    },
    "expired": {
        Lang.EN: "Not booked: your Y came after the {ttl} min to confirm. To park send {compact}",
        Lang.AR: "لم يتم الحجز: وصل ردك بعد مهلة التأكيد ({ttl}). للوقوف أرسل {compact}",
    },
}


def _ttl(minutes: int, lang: Lang) -> str:
    if lang is Lang.EN:
        return str(minutes)
    # Arabic counts 3 to 10 with the plural, others with the singular.
    return f"{minutes} {'دقائق' if 3 <= minutes <= 10 else 'دقيقة'}"


class Confirmations:
    """Ask, store and answer the readings to confirm; the booking itself is the service's."""

    def __init__(self, ctx: ServiceContext, service: ParkingService, config: ParkingConfig) -> None:
        self._ctx = ctx
        self._service = service
        self._config = config

    # ------------------------------------------------------------------ asking

    async def ask(self, who: Requester, guess: Guess) -> Quote:
        """Price the reading; store it as the number's open question when it would book or extend."""
        parsed = guess.parsed
        now = self._ctx.now()
        quote = await self._service.quote(who, parsed.plate, parsed.minutes, parsed.zone, now=now)
        if quote.status in (Status.BOOKED, Status.EXTENDED):
            assert quote.plate is not None
            pending = Pending(
                plate=quote.plate, minutes=quote.minutes, zone=parsed.zone, extend=quote.status is Status.EXTENDED,
                quoted_baisa=quote.amount_baisa, created_at=now, expires_at=now + self._config.confirm_minutes * 60,
            )
            await self._ctx.store.write(functools.partial(self._op_ask, who=who, pending=pending))
            log.info("parking_confirm_asked", msisdn=mask_msisdn(who.msisdn), request_id=who.request_id,
                     doubts=sorted(d.value for d in guess.doubts), amount_baisa=quote.amount_baisa)
        return quote

    @staticmethod
    def _op_ask(conn: Connection, who: Requester, pending: Pending) -> None:
        conn.execute("DELETE FROM parking_pending WHERE expires_at < ?", (pending.created_at - KEEP_EXPIRED_S,))
        # The same message processed again (a restart before its reply was stored) leaves the
        # question as it is: it may have been answered meanwhile.
        conn.execute(
            f"INSERT INTO parking_pending (msisdn, {_PENDING_COLS}, lang, asked_by, answered_by, answered_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NULL, NULL)"
            " ON CONFLICT (msisdn) DO UPDATE SET plate = excluded.plate, minutes = excluded.minutes,"
            " zone = excluded.zone, extend = excluded.extend, quoted_baisa = excluded.quoted_baisa,"
            " created_at = excluded.created_at, expires_at = excluded.expires_at, lang = excluded.lang,"
            " asked_by = excluded.asked_by, answered_by = NULL, answered_at = NULL"
            " WHERE parking_pending.asked_by IS NULL OR excluded.asked_by IS NULL"
            " OR parking_pending.asked_by <> excluded.asked_by",
            (who.msisdn, pending.plate, pending.minutes, pending.zone, int(pending.extend), pending.quoted_baisa,
             pending.created_at, pending.expires_at, who.lang.value, who.request_id),
        )

    # ------------------------------------------------------------------ answering

    async def answer(self, who: Requester, plate: str | None = None) -> tuple[Answer, Outcome | None] | None:
        """A Y from `who` (for `plate`, if it named one): None when no question of ours is the one it
        answers (then it is the reminder's Y); else the answer and, for BOOK, the booking's outcome."""
        now = self._ctx.now()
        answer = await self._ctx.store.write(functools.partial(self._op_answer, who=who, plate=plate, now=now))
        if answer is None:
            return None
        log.info("parking_confirm_answered", msisdn=mask_msisdn(who.msisdn), request_id=who.request_id,
                 answer=answer.kind.value)
        if answer.kind is not AnswerKind.BOOK:
            return answer, answer.outcome
        p = answer.pending
        outcome = await self._service.book(who, p.plate, p.minutes, p.zone, now=now)
        return answer, outcome

    async def decline(self, who: Requester) -> Pending | None:
        """A "no" from `who`: closes their open question (the most recent one, not expired, not
        answered); None when there is none (the "no" is then an ordinary message)."""
        now = self._ctx.now()
        pending = await self._ctx.store.write(functools.partial(self._op_decline, who=who, now=now))
        if pending is not None:
            log.info("parking_confirm_declined", msisdn=mask_msisdn(who.msisdn), request_id=who.request_id)
        return pending

    def _op_decline(self, conn: Connection, who: Requester, now: float) -> Pending | None:
        loaded = self._load(conn, who.msisdn)
        if loaded is None:
            return None
        pending, answered_by, _asked_by = loaded
        if answered_by is not None and answered_by != who.request_id:
            return None
        if now >= pending.expires_at or self._reminded_since(conn, who, pending, now):
            return None
        self._settle(conn, who.msisdn, who.request_id, now)
        return pending

    @staticmethod
    def _load(conn: Connection, msisdn: str) -> tuple[Pending, int | None, int | None] | None:
        """The number's question, who answered it (inbound id) and which message asked it."""
        row = conn.execute(
            f"SELECT {_PENDING_COLS}, answered_by, asked_by FROM parking_pending WHERE msisdn = ?", (msisdn,)
        ).fetchone()
        if row is None:
            return None
        return Pending(row[0], row[1], row[2], bool(row[3]), row[4], row[5], row[6]), row[7], row[8]

    @staticmethod
    def _settle(conn: Connection, msisdn: str, by: int | None, now: float) -> None:
        conn.execute("UPDATE parking_pending SET answered_by = ?, answered_at = ? WHERE msisdn = ?",
                     (by if by is not None else 0, now, msisdn))

    @staticmethod
    def _reminded_since(conn: Connection, who: Requester, pending: Pending, now: float) -> bool:
        """A reminder of a running stay went out after the question: that is the latest question."""
        (reminded,) = conn.execute(
            "SELECT MAX(reminder_sent_at) FROM parking_session WHERE msisdn = ? AND state = 'active' AND end_at > ?",
            (who.msisdn, now),
        ).fetchone()
        return reminded is not None and reminded > pending.created_at

    @staticmethod
    def _prior(conn: Connection, request_id: int) -> Outcome | None:
        row = conn.execute("SELECT outcome FROM parking_request WHERE request_id = ?", (request_id,)).fetchone()
        return Outcome.from_json(row[0]) if row else None

    def _op_answer(self, conn: Connection, who: Requester, plate: str | None, now: float) -> Answer | None:
        loaded = self._load(conn, who.msisdn)
        if loaded is None:
            return None
        pending, answered_by, asked_by = loaded
        if plate is not None and plate != pending.plate:
            return None
        # The most recent question wins: a reminder sent after ours, for a stay still running.
        if self._reminded_since(conn, who, pending, now):
            return None
        if answered_by is not None:
            if who.request_id is not None and answered_by == who.request_id:
                return Answer(AnswerKind.BOOK, pending)  # this Y again, after a restart: book (idempotent)
            prior = self._prior(conn, answered_by)
            return Answer(AnswerKind.REPEAT, pending, prior) if prior is not None else None
        # Settled by the compact form: a charge for this plate from this number after the question
        # (a later message: inbound ids grow).
        settled = conn.execute(
            "SELECT l.request_id FROM parking_ledger AS l JOIN parking_session AS s ON s.id = l.session_id"
            " WHERE l.msisdn = ? AND l.kind = 'charge' AND s.plate = ? AND l.request_id > ?"
            " ORDER BY l.id LIMIT 1",
            (who.msisdn, pending.plate, asked_by if asked_by is not None else -1),
        ).fetchone()
        if settled is not None:
            self._settle(conn, who.msisdn, settled[0], now)
            prior = self._prior(conn, settled[0])
            return Answer(AnswerKind.REPEAT, pending, prior) if prior is not None else None
        if now >= pending.expires_at:
            return Answer(AnswerKind.EXPIRED, pending)
        self._settle(conn, who.msisdn, who.request_id, now)
        return Answer(AnswerKind.BOOK, pending)

    # ------------------------------------------------------------------ wording

    def question(self, words: Wording, quote: Quote) -> str:
        """The question for a quote that books or extends (other quotes are worded as outcomes)."""
        lang = words.lang
        ttl = _ttl(self._config.confirm_minutes, lang)
        amount = (T["price"][lang].format(amount=words.amount(quote.amount_baisa)) if quote.amount_baisa
                  else T["no_charge"][lang])
        assert quote.plate is not None
        zone = quote.zone if quote.zone != self._config.default_zone else None
        compact = " ".join(p for p in (quote.plate, zone, str(quote.minutes)) if p)
        if quote.status is Status.BOOKED:
            assert quote.end_at is not None
            return T["ask_book"][lang].format(compact=compact, plate=quote.plate, zone=words.zone_name(quote.zone or ""),
                                              end=words.time(quote.end_at), amount=amount, ttl=ttl)
        until = T["until"][lang].format(end=words.time(quote.end_at)) if quote.end_at is not None else ""
        return T["ask_extend"][lang].format(compact=compact, plate=quote.plate, minutes=quote.minutes, until=until,
                                            amount=amount, ttl=ttl)

    def declined(self, words: Wording, pending: Pending) -> str:
        return T["declined"][words.lang].format(compact=pending.compact())

    def expired(self, words: Wording, pending: Pending) -> str:
        return T["expired"][words.lang].format(ttl=_ttl(self._config.confirm_minutes, words.lang),
                                               compact=pending.compact())
