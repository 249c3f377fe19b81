"""Parking operations, independent of how they are asked for (SMS today, USSD menus later).

Every state change is ONE `store.write` op: the store runs ops one after another on its thread,
inside a group-committed transaction, so "is this plate parked? then extend, else insert" cannot
interleave with another booking of the same plate.  Ops are plain functions of the database
and their arguments (the store may run a batch twice, see smsgw/store/engine.py `attempt_batch`;
on PostgreSQL also after another node's transaction conflicted with it, smsgw/store/postgres.py).

Idempotency: a request carrying an id (the inbound message id) stores its outcome under that id
in the same transaction as its effect.  The same id again — an MO processed a second time after
a crash, before its reply was committed — returns that outcome and changes nothing, so the
driver gets the same ticket and is charged once.

A double tap is one request too: the same booking (plate, minutes, zone) from the same number
within `repeat_window_seconds` gets the first outcome again, marked `repeated`, and changes
nothing, while its stay is still running.  The decision is made inside the booking's own write,
so a burst of identical MOs processed at once still books and charges once.  EXT, Y and a
different duration are extensions and always extend.

Money is integer baisa.  A stay is priced as a whole (tariff.charge_baisa); a booking or an
extension charges the difference to whoever sent it (carrier and MSISDN, for settlement); a
stop credits the unused whole units back to the charges that bought them, newest first.  An
outcome's `amount_baisa` is what the ledger did for the number that asked; a stop's credits to
other payers are `others_baisa`.

Who may do what (the privacy rule, see config/parking.toml): anyone may pay for any plate, which
extends its running stay; only the stay's holder (the number that booked it) may stop it, list
it, extend it without naming the plate, and is told its end.  A stay lasts at most its zone's
max_stay_minutes, however it was built.
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any

from handlers.parking import tariff as pricing
from handlers.parking.config import ParkingConfig, Zone
from handlers.parking.tariff import DurationProblem, Tariff
from smsgw.log import get_logger, mask_msisdn
from smsgw.message import Lang, Reply

if TYPE_CHECKING:
    from smsgw.feature import ServiceContext
    from smsgw.store import Connection, NewMt, Outbound

__all__ = ["CheckResult", "Outcome", "ParkingService", "Quote", "Requester", "SessionView", "Status"]

log = get_logger(__name__)


class Status(str, enum.Enum):
    BOOKED = "booked"  # a new stay
    EXTENDED = "extended"  # an active stay made longer
    FREE = "free"  # nothing to pay: the whole stay falls in free time; nothing stored
    CANCELLED = "cancelled"
    REFUSED = "refused"  # the duration breaks the zone's rules (problem, limit)
    NOT_FOUND = "not_found"  # no active stay for this sender (and plate)
    WHICH = "which"  # several active stays and no plate given: `plates` lists them
    NO_QUESTION = "no_question"  # a Y with no reminder (nor question) open: nothing extended


@dataclass(frozen=True)
class Requester:
    """Who asks, and the id that makes the request idempotent (the inbound message id)."""

    carrier: str
    msisdn: str
    short_code: str
    lang: Lang = Lang.EN
    request_id: int | None = None


@dataclass(frozen=True)
class SessionView:
    id: int
    ticket: str
    plate: str
    zone: str
    carrier: str
    msisdn: str
    short_code: str
    lang: str
    start_at: float
    end_at: float
    charged_baisa: int
    credited_baisa: int
    state: str
    reminder_sent_at: float | None


@dataclass(frozen=True)
class Outcome:
    status: Status
    session: SessionView | None = None
    minutes: int = 0  # added by this request
    amount_baisa: int = 0  # charged (booking, extension) or credited (stop) to the requester
    #: The stay starts in free time: when paid time begins (math.inf: not within a year).
    free_until: float | None = None
    #: The stay runs past the end of paid hours: the moment the charging stops.
    free_from: float | None = None
    problem: DurationProblem | None = None
    limit: int | None = None  # REFUSED: the zone's max minutes or its unit
    zone: str | None = None  # REFUSED: the zone whose rules refused
    plate: str | None = None  # the plate asked about (NOT_FOUND)
    plates: tuple[str, ...] = field(default_factory=tuple)  # WHICH
    #: The same booking again within the repeat window: the first outcome, nothing changed now.
    repeated: bool = False
    #: A stop's credits to the stay's other payers (not the requester), and how many numbers.
    others_baisa: int = 0
    others: int = 0

    def to_json(self) -> str:
        # By hand, not dataclasses.asdict: asdict deep-copies every field and was half the cost
        # of a booking on the store thread.
        s = self.session
        return json.dumps({
            "status": self.status.value,
            "session": None if s is None else [getattr(s, name) for name in _VIEW_NAMES],
            "minutes": self.minutes,
            "amount_baisa": self.amount_baisa,
            "free_until": self.free_until,
            "free_from": self.free_from,
            "problem": None if self.problem is None else self.problem.value,
            "limit": self.limit,
            "zone": self.zone,
            "plate": self.plate,
            "plates": list(self.plates),
            "repeated": self.repeated,
            "others_baisa": self.others_baisa,
            "others": self.others,
        })

    @classmethod
    def from_json(cls, text: str) -> Outcome:
        data = json.loads(text)
        return cls(
            status=Status(data["status"]),
            session=SessionView(*data["session"]) if data["session"] else None,
            minutes=data["minutes"],
            amount_baisa=data["amount_baisa"],
            free_until=data["free_until"],
            free_from=data["free_from"],
            problem=DurationProblem(data["problem"]) if data["problem"] else None,
            limit=data["limit"],
            zone=data["zone"],
            plate=data["plate"],
            plates=tuple(data["plates"]),
            # Absent from outcomes stored before these fields existed.
            repeated=data.get("repeated", False),
            others_baisa=data.get("others_baisa", 0),
            others=data.get("others", 0),
        )


@dataclass(frozen=True)
class CheckResult:
    """An inspector's question: is `plate` paid now (in `zone`, if one was named)?"""

    plate: str
    paid: bool
    session: SessionView | None  # the stay covering now, in whatever zone
    free_until: float | None  # now is free time: until when (math.inf: no paid hour ahead)
    zone: str | None  # the zone asked about


@dataclass(frozen=True)
class Quote:
    """What a booking would do now, without doing it (for a reading the driver must confirm).

    status BOOKED: a new stay; EXTENDED: added to the plate's active stay; FREE, REFUSED,
    NOT_FOUND, WHICH as for `Outcome`.  `end_at` is None where the sender may not learn it: the
    stay is someone else's (its end time is for its payers and inspectors).
    """

    status: Status
    plate: str | None = None
    zone: str | None = None
    minutes: int = 0
    amount_baisa: int = 0
    end_at: float | None = None
    free_until: float | None = None
    problem: DurationProblem | None = None
    plates: tuple[str, ...] = ()


@dataclass(frozen=True)
class _Priced:
    """A new stay for one zone, priced before the write: its refusal, or its quote and reminder."""

    zone: Zone
    refusal: Outcome | None
    quote: pricing.Quote | None
    reminder_at: float | None


_SESSION_COLS = (
    "id, ticket, plate, zone, carrier, msisdn, short_code, lang, start_at, end_at, charged_baisa,"
    " credited_baisa, state, reminder_sent_at"
)
_VIEW_NAMES = tuple(f.name for f in fields(SessionView))
_VIEW_FIELDS = len(_VIEW_NAMES)
# Active stays this MSISDN holds (it booked them): the only ones it may stop, list, or extend
# without naming the plate.  Paying into another number's stay gives no such rights: a stranger
# could otherwise pay 100 baisa to learn when a car's parking ends, or to stop it.
_HELD = (
    f"SELECT {_SESSION_COLS} FROM parking_session AS s"
    " WHERE s.msisdn = ? AND s.end_at > ? AND s.state = 'active'"
)


def _view(row: Sequence[Any]) -> SessionView:
    return SessionView(*row[:_VIEW_FIELDS])


def _ticket(session_id: int) -> str:
    """Six digits and a Luhn check digit: a ticket read out over the phone with a typo is caught."""
    digits = f"{session_id:06d}"
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2 == 0:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return digits + str((10 - total % 10) % 10)


class ParkingService:
    """Book, extend, stop, list, check, remind: all durable through `ctx.store`."""

    def __init__(self, ctx: ServiceContext, config: ParkingConfig) -> None:
        self._ctx = ctx
        self.config = config

    # ------------------------------------------------------------------ requests that change state

    async def book(
        self, who: Requester, plate: str, minutes: int, zone: str | None = None, *, now: float | None = None,
        repeatable: bool = True,
    ) -> Outcome:
        """Park `plate` for `minutes`; a plate with an active stay gets that stay extended.

        `repeatable`: the same booking from the same number within the repeat window is the
        same request (a double tap); False for a deliberate extension (EXT with a plate).
        """
        at = self._ctx.now() if now is None else now
        # Priced here, on the event loop: the store thread, which every write of the gateway
        # queues behind, then only runs SQL for a new stay.
        priced = self._price_new(minutes, zone, at)
        key = f"book {plate} {minutes} {zone or ''}" if repeatable and self.config.repeat_window_seconds else None
        outcome = await self._ctx.store.write(
            functools.partial(self._op_book, who=who, plate=plate, minutes=minutes, priced=priced, now=at,
                              repeat_key=key)
        )
        self._log("parking_book", who, outcome)
        return outcome

    async def extend(
        self,
        who: Requester,
        plate: str | None = None,
        minutes: int | None = None,
        *,
        zone: str | None = None,
        after_reminder: bool = False,
        now: float | None = None,
    ) -> Outcome:
        """Add `minutes` (default: config.extend_minutes) to a stay.

        With a plate this is a booking (Muscat's rule: the same message again extends).  Without
        one, the sender's only active stay is extended; `after_reminder` (a `Y` reply) prefers
        the stays whose reminder went out.
        """
        at = self._ctx.now() if now is None else now
        amount = minutes or self.config.extend_minutes
        if plate is not None:
            return await self.book(who, plate, amount, zone, now=at, repeatable=False)
        outcome = await self._ctx.store.write(
            functools.partial(self._op_extend_mine, who=who, minutes=amount, after_reminder=after_reminder, now=at)
        )
        self._log("parking_extend", who, outcome)
        return outcome

    async def cancel(self, who: Requester, plate: str | None = None, *, now: float | None = None) -> Outcome:
        """End a stay of the sender's now; unused whole units are credited if config.refund_unused."""
        at = self._ctx.now() if now is None else now
        outcome = await self._ctx.store.write(functools.partial(self._op_cancel, who=who, plate=plate, now=at))
        self._log("parking_cancel", who, outcome)
        return outcome

    # ------------------------------------------------------------------ questions

    async def my_sessions(self, msisdn: str, *, now: float | None = None) -> list[SessionView]:
        at = self._ctx.now() if now is None else now
        return await self._ctx.store.read(self._op_held, msisdn, at, None)

    async def check_plate(self, plate: str, zone: str | None = None, *, now: float | None = None) -> CheckResult:
        at = self._ctx.now() if now is None else now
        session = await self._ctx.store.read(self._op_covering, plate, at)
        free = pricing.free_until(self.config.calendar, at)
        paid = session is not None and (zone is None or session.zone == zone)
        return CheckResult(plate=plate, paid=paid, session=session, free_until=free, zone=zone)

    async def quote(
        self, who: Requester, plate: str | None, minutes: int | None, zone: str | None = None, *,
        now: float | None = None,
    ) -> Quote:
        """What `book(who, plate, minutes, zone)` (or, without a plate, `extend`) would charge now.

        Read only.  The booking made later on confirmation is priced again then: the quote is what
        the driver is told, the booking what the ledger records.
        """
        at = self._ctx.now() if now is None else now
        amount = minutes or self.config.extend_minutes
        priced = self._price_new(amount, zone, at)
        return await self._ctx.store.read(self._op_quote, who, plate, amount, priced, at)

    def _op_quote(
        self, conn: Connection, who: Requester, plate: str | None, minutes: int, priced: _Priced, now: float
    ) -> Quote:
        session_id: int | None = None
        own = False
        if plate is None:
            picked = self._pick(conn, who, None, now)
            if isinstance(picked, Outcome):
                return Quote(picked.status, plates=picked.plates)
            plate, session_id, own = picked.plate, picked.id, True
        else:
            session_id = self._active_stay(conn, plate, now)
            if session_id is not None:
                own = any(s.id == session_id for s in self._op_held(conn, who.msisdn, now, plate))
        if session_id is None:
            if priced.refusal is not None:
                return Quote(Status.REFUSED, plate=plate, zone=priced.zone.code, minutes=minutes,
                             problem=priced.refusal.problem)
            q = priced.quote
            assert q is not None
            status = Status.BOOKED if q.amount_baisa else Status.FREE
            return Quote(status, plate=plate, zone=priced.zone.code, minutes=minutes, amount_baisa=q.amount_baisa,
                         end_at=q.end, free_until=q.free_until)
        stay = self._load(conn, session_id)
        baisa, unit = conn.execute(
            "SELECT tariff_baisa, unit_minutes FROM parking_session WHERE id = ?", (session_id,)
        ).fetchone()
        refusal = self._refusal(minutes, self._tariff(stay.zone, (baisa, unit)), stay.zone)
        if refusal is not None:
            return Quote(Status.REFUSED, plate=plate, zone=stay.zone, minutes=minutes, problem=refusal.problem)
        if self._past_max_stay(stay.zone, stay.start_at, stay.end_at + minutes * 60):
            return Quote(Status.REFUSED, plate=plate, zone=stay.zone, minutes=minutes,
                         problem=DurationProblem.STAY_LIMIT)
        amount = self._op_extension_prices(conn, (stay,), minutes)[stay.id]  # as a reminder's Y is priced
        return Quote(Status.EXTENDED, plate=plate, zone=stay.zone, minutes=minutes, amount_baisa=amount,
                     end_at=stay.end_at + minutes * 60 if own else None)

    async def session(self, ticket: str) -> SessionView | None:
        return await self._ctx.store.read(self._op_by_ticket, ticket)

    async def ledger(self, session_id: int | None = None) -> list[dict[str, Any]]:
        """Ledger rows (all, or one stay's), oldest first; full MSISDNs: for support and tests."""
        return await self._ctx.store.read(self._op_ledger, session_id)

    # ------------------------------------------------------------------ reminders

    async def reminders_due(self, *, now: float | None = None) -> list[SessionView]:
        at = self._ctx.now() if now is None else now
        return await self._ctx.store.read(self._op_reminders_due, at)

    async def mark_reminded(self, drafts: Sequence[tuple[SessionView, NewMt]], *, now: float) -> list[Outbound]:
        """Flag each stay reminded and store its reminder MT, in one transaction; returns the MTs
        actually stored (a stay already reminded, or extended meanwhile, is skipped)."""
        return await self._ctx.store.write(functools.partial(self._op_mark_reminded, drafts=tuple(drafts), now=now))

    async def send_due_reminders(
        self, compose: Callable[[SessionView, int], Reply], *, now: float | None = None
    ) -> int:
        """Queue the reminders that are due; returns how many went out. `compose(stay, baisa)`
        words one, `baisa` being what extending it by `extend_minutes` (a `Y`) would charge.

        Durable and exactly once: the flag and the MT commit together, and the outbound queue
        picks up a stored MT after a restart even if `enqueue` below never ran.
        """
        at = self._ctx.now() if now is None else now
        due = await self.reminders_due(now=at)
        if not due:
            return 0
        prices = await self._ctx.store.read(self._op_extension_prices, tuple(due), self.config.extend_minutes)
        drafts = []
        for session in due:
            mt = self._ctx.new_mt(compose(session, prices[session.id]), "reminder")
            # A reminder that reaches the handset after the stay ended would only mislead.
            drafts.append((session, dataclasses.replace(mt, expires_at=min(mt.expires_at, session.end_at))))
        outbounds = await self.mark_reminded(drafts, now=at)
        for outbound in outbounds:
            self._ctx.enqueue(outbound)
        log.info("parking_reminders_sent", due=len(due), sent=len(outbounds))
        return len(outbounds)

    # ------------------------------------------------------------------ ops (store thread)

    def _op_extension_prices(
        self, conn: Connection, stays: tuple[SessionView, ...], minutes: int
    ) -> dict[int, int]:
        """What adding `minutes` to each stay would charge now, at the price it was booked at (as
        `_extend_session` charges it): stay id → baisa."""
        prices = {}
        for stay in stays:
            baisa, unit = conn.execute(
                "SELECT tariff_baisa, unit_minutes FROM parking_session WHERE id = ?", (stay.id,)
            ).fetchone()
            rules = self._tariff(stay.zone, (baisa, unit))
            whole = pricing.charge_baisa(self.config.calendar, rules, stay.start_at, stay.end_at + minutes * 60)
            prices[stay.id] = max(0, whole - stay.charged_baisa)
        return prices

    def _tariff(self, zone_code: str, session_row: Sequence[Any] | None = None) -> Tariff:
        zone = self.config.zones.get(zone_code) or self.config.zone(None)
        if session_row is None:
            return zone.tariff
        # A stay keeps the price it was booked at, even if the config changes while it runs.
        return Tariff(baisa_per_unit=session_row[0], unit_minutes=session_row[1], max_minutes=zone.tariff.max_minutes)

    def _max_stay(self, zone_code: str) -> int:
        return (self.config.zones.get(zone_code) or self.config.zone(None)).max_stay_minutes

    def _past_max_stay(self, zone_code: str, start: float, end: float) -> bool:
        """Would a stay [start, end) last longer than its zone allows?"""
        return end - start > self._max_stay(zone_code) * 60 + 1e-3  # a millisecond of float noise is not a minute

    def _reminder_at(self, end: float) -> float | None:
        lead = self.config.reminder_lead_minutes
        if not lead or not pricing.is_paid_at(self.config.calendar, end):
            return None  # the stay ends into free time: nothing to pay after it, nothing to remind
        return end - lead * 60

    def _free_from(self, start: float, end: float) -> float | None:
        intervals = self.config.calendar.paid_intervals(start, end)
        if intervals and intervals[-1][1] < end:
            return intervals[-1][1]
        return None

    @staticmethod
    def _prior(conn: Connection, who: Requester) -> Outcome | None:
        if who.request_id is None:
            return None
        row = conn.execute(
            "SELECT outcome FROM parking_request WHERE request_id = ?", (who.request_id,)
        ).fetchone()
        return Outcome.from_json(row[0]) if row else None

    @staticmethod
    def _remember(
        conn: Connection, who: Requester, operation: str, outcome: Outcome, now: float,
        repeat_key: str | None = None,
    ) -> Outcome:
        if who.request_id is not None:
            conn.execute(
                "INSERT INTO parking_request (request_id, operation, outcome, at, msisdn, request_key)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (who.request_id, operation, outcome.to_json(), now, who.msisdn, repeat_key),
            )
        return outcome

    def _repeat(self, conn: Connection, who: Requester, key: str, now: float) -> Outcome | None:
        """The outcome of the same booking from this number within the repeat window, while its
        stay still runs (stopped since, the booking again is a new one)."""
        row = conn.execute(
            "SELECT outcome FROM parking_request WHERE msisdn = ? AND request_key = ? AND at > ?"
            " ORDER BY at DESC LIMIT 1",
            (who.msisdn, key, now - self.config.repeat_window_seconds),
        ).fetchone()
        if row is None:
            return None
        earlier = Outcome.from_json(row[0])
        if earlier.status not in (Status.BOOKED, Status.EXTENDED) or earlier.session is None:
            return None  # a refusal or free time: answering it again changes nothing either
        running = conn.execute(
            "SELECT 1 FROM parking_session WHERE id = ? AND state = 'active' AND end_at > ?",
            (earlier.session.id, now),
        ).fetchone()
        return dataclasses.replace(earlier, repeated=True) if running else None

    def _local(self, ts: float) -> tuple[str, str]:
        local = self.config.calendar.local(ts)
        return local.date().isoformat(), local.isoformat(timespec="seconds")

    def _charge(
        self, conn: Connection, session_id: int, who: Requester, amount: int, minutes: int, now: float
    ) -> None:
        if amount <= 0:
            return
        conn.execute(
            "INSERT INTO parking_ledger (session_id, kind, amount_baisa, minutes, carrier, msisdn, request_id,"
            " at, local_date, local_time) VALUES (?, 'charge', ?, ?, ?, ?, ?, ?, ?, ?)",
            (session_id, amount, minutes, who.carrier, who.msisdn, who.request_id, now, *self._local(now)),
        )

    @staticmethod
    def _active_stay(conn: Connection, plate: str, now: float) -> int | None:
        """The running stay of `plate` (a plate has at most one), whoever holds it."""
        row = conn.execute(
            "SELECT id FROM parking_session WHERE plate = ? AND state = 'active' AND end_at > ?"
            " ORDER BY end_at DESC LIMIT 1",
            (plate, now),
        ).fetchone()
        return row[0] if row is not None else None

    @staticmethod
    def _load(conn: Connection, session_id: int) -> SessionView:
        row = conn.execute(f"SELECT {_SESSION_COLS} FROM parking_session WHERE id = ?", (session_id,)).fetchone()
        return _view(row)

    def _op_book(
        self, conn: Connection, who: Requester, plate: str, minutes: int, priced: _Priced, now: float,
        repeat_key: str | None = None,
    ) -> Outcome:
        prior = self._prior(conn, who)
        if prior is not None:
            return prior
        if repeat_key is not None:
            repeated = self._repeat(conn, who, repeat_key, now)
            if repeated is not None:
                # Remembered without the key: the window runs from the first request, not the last.
                return self._remember(conn, who, "book", repeated, now)
        session_id = self._active_stay(conn, plate, now)
        if session_id is not None:
            outcome = self._extend_session(conn, session_id, who, minutes, now)
        else:
            outcome = self._new_session(conn, who, plate, minutes, priced, now)
        return self._remember(conn, who, "book", outcome, now, repeat_key)

    @staticmethod
    def _refusal(minutes: int, rules: Tariff, zone: str) -> Outcome | None:
        problem = pricing.check_duration(minutes, rules)
        if problem is None:
            return None
        limit = rules.max_minutes if problem is DurationProblem.TOO_LONG else rules.unit_minutes
        return Outcome(Status.REFUSED, minutes=minutes, problem=problem, limit=limit, zone=zone)

    def _price_new(self, minutes: int, zone_code: str | None, now: float) -> _Priced:
        zone = self.config.zone(zone_code)
        refusal = self._refusal(minutes, zone.tariff, zone.code)
        if refusal is not None:
            return _Priced(zone, refusal, None, None)
        q = pricing.quote(self.config.calendar, zone.tariff, now, minutes)
        return _Priced(zone, None, q, self._reminder_at(q.end))

    def _new_session(
        self, conn: Connection, who: Requester, plate: str, minutes: int, priced: _Priced, now: float
    ) -> Outcome:
        if priced.refusal is not None:
            return priced.refusal
        zone, q = priced.zone, priced.quote
        assert q is not None
        if q.amount_baisa == 0:
            # Wholly in free time: nothing to pay, nothing to remind, nothing to inspect.
            return Outcome(Status.FREE, minutes=minutes, free_until=q.free_until, plate=plate)
        session_id = conn.execute("SELECT COALESCE(MAX(id), 0) + 1 FROM parking_session").fetchone()[0]
        session = SessionView(
            id=session_id, ticket=_ticket(session_id), plate=plate, zone=zone.code, carrier=who.carrier,
            msisdn=who.msisdn, short_code=who.short_code, lang=who.lang.value, start_at=now, end_at=q.end,
            charged_baisa=q.amount_baisa, credited_baisa=0, state="active", reminder_sent_at=None,
        )
        conn.execute(
            "INSERT INTO parking_session (id, ticket, plate, zone, carrier, msisdn, short_code, lang, start_at,"
            " end_at, tariff_baisa, unit_minutes, charged_baisa, state, reminder_at, created_at, updated_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'active', ?, ?, ?)",
            (
                session_id, session.ticket, plate, zone.code, who.carrier, who.msisdn, who.short_code,
                session.lang, now, q.end, zone.tariff.baisa_per_unit, zone.tariff.unit_minutes,
                q.amount_baisa, priced.reminder_at, now, now,
            ),
        )
        self._charge(conn, session_id, who, q.amount_baisa, minutes, now)
        return Outcome(
            Status.BOOKED,
            session=session,
            minutes=minutes,
            amount_baisa=q.amount_baisa,
            free_until=q.free_until,
            free_from=q.free_from,
        )

    def _extend_session(
        self, conn: Connection, session_id: int, who: Requester, minutes: int, now: float
    ) -> Outcome:
        start, end, charged, zone, baisa, unit = conn.execute(
            "SELECT start_at, end_at, charged_baisa, zone, tariff_baisa, unit_minutes"
            " FROM parking_session WHERE id = ?",
            (session_id,),
        ).fetchone()
        rules = self._tariff(zone, (baisa, unit))
        refusal = self._refusal(minutes, rules, zone)
        if refusal is not None:
            return refusal
        new_end = end + minutes * 60
        if self._past_max_stay(zone, start, new_end):
            return Outcome(Status.REFUSED, session=self._load(conn, session_id), minutes=minutes,
                           problem=DurationProblem.STAY_LIMIT, limit=self._max_stay(zone), zone=zone)
        amount = max(0, pricing.charge_baisa(self.config.calendar, rules, start, new_end) - charged)
        conn.execute(
            "UPDATE parking_session SET end_at = ?, charged_baisa = charged_baisa + ?, reminder_at = ?,"
            " reminder_sent_at = NULL, reminder_outbound_id = NULL, updated_at = ?,"
            " lang = CASE WHEN msisdn = ? THEN ? ELSE lang END WHERE id = ?",
            (new_end, amount, self._reminder_at(new_end), now, who.msisdn, who.lang.value, session_id),
        )
        self._charge(conn, session_id, who, amount, minutes, now)
        return Outcome(
            Status.EXTENDED,
            session=self._load(conn, session_id),
            minutes=minutes,
            amount_baisa=amount,
            free_from=self._free_from(end, new_end),
        )

    def _pick(
        self, conn: Connection, who: Requester, plate: str | None, now: float, after_reminder: bool = False
    ) -> SessionView | Outcome:
        """The one active stay the sender means, or the NOT_FOUND / WHICH outcome."""
        mine = self._op_held(conn, who.msisdn, now, plate)
        if after_reminder:
            # A Y moves money only as the answer to a reminder we sent: a stray or very late Y (to
            # some other message, or after the stay was extended and its reminder not yet due)
            # extends nothing.
            reminded = [s for s in mine if s.reminder_sent_at is not None]
            if mine and not reminded:
                return Outcome(Status.NO_QUESTION, plate=plate)
            mine = reminded
        if not mine:
            return Outcome(Status.NOT_FOUND, plate=plate)
        if len(mine) > 1:
            return Outcome(Status.WHICH, plates=tuple(s.plate for s in mine))
        return mine[0]

    def _op_extend_mine(
        self, conn: Connection, who: Requester, minutes: int, after_reminder: bool, now: float
    ) -> Outcome:
        prior = self._prior(conn, who)
        if prior is not None:
            return prior
        picked = self._pick(conn, who, None, now, after_reminder)
        outcome = picked if isinstance(picked, Outcome) else self._extend_session(conn, picked.id, who, minutes, now)
        return self._remember(conn, who, "extend", outcome, now)

    def _op_cancel(self, conn: Connection, who: Requester, plate: str | None, now: float) -> Outcome:
        prior = self._prior(conn, who)
        if prior is not None:
            return prior
        picked = self._pick(conn, who, plate, now)
        if isinstance(picked, Outcome):
            return self._remember(conn, who, "cancel", picked, now)
        baisa, unit = conn.execute(
            "SELECT tariff_baisa, unit_minutes FROM parking_session WHERE id = ?", (picked.id,)
        ).fetchone()
        credit = 0
        if self.config.refund_unused:
            rules = self._tariff(picked.zone, (baisa, unit))
            credit = pricing.credit_baisa(self.config.calendar, rules, picked.start_at, now, picked.charged_baisa)
        conn.execute(
            "UPDATE parking_session SET state = 'cancelled', end_at = ?, credited_baisa = ?, updated_at = ?,"
            " reminder_at = CASE WHEN reminder_sent_at IS NULL THEN NULL ELSE reminder_at END WHERE id = ?",
            (now, credit, now, picked.id),
        )
        given = self._give_back(conn, picked.id, credit, who, now)
        mine = given.pop(who.msisdn, 0)
        outcome = Outcome(Status.CANCELLED, session=self._load(conn, picked.id), amount_baisa=mine,
                          others_baisa=sum(given.values()), others=len(given))
        return self._remember(conn, who, "cancel", outcome, now)

    def _give_back(
        self, conn: Connection, session_id: int, credit: int, who: Requester, now: float
    ) -> dict[str, int]:
        """Credit the charges that bought the unused time: the newest first, each to its payer.
        Returns what each number got back."""
        given: dict[str, int] = {}
        remaining = credit
        charges = conn.execute(
            "SELECT c.id, c.amount_baisa - COALESCE((SELECT SUM(r.amount_baisa) FROM parking_ledger AS r"
            " WHERE r.charge_id = c.id), 0), c.carrier, c.msisdn FROM parking_ledger AS c"
            " WHERE c.session_id = ? AND c.kind = 'charge' ORDER BY c.id DESC",
            (session_id,),
        ).fetchall()
        for charge_id, available, carrier, msisdn in charges:
            if remaining <= 0:
                break
            give = min(available, remaining)
            if give <= 0:
                continue
            conn.execute(
                "INSERT INTO parking_ledger (session_id, kind, amount_baisa, carrier, msisdn, charge_id,"
                " request_id, at, local_date, local_time) VALUES (?, 'credit', ?, ?, ?, ?, ?, ?, ?, ?)",
                (session_id, give, carrier, msisdn, charge_id, who.request_id, now, *self._local(now)),
            )
            given[msisdn] = given.get(msisdn, 0) + give
            remaining -= give
        return given

    @staticmethod
    def _op_held(conn: Connection, msisdn: str, now: float, plate: str | None) -> list[SessionView]:
        sql, args = _HELD, [msisdn, now]
        if plate is not None:
            sql += " AND s.plate = ?"
            args.append(plate)
        return [_view(r) for r in conn.execute(sql + " ORDER BY s.end_at, s.id", args)]

    @staticmethod
    def _op_covering(conn: Connection, plate: str, now: float) -> SessionView | None:
        row = conn.execute(
            f"SELECT {_SESSION_COLS} FROM parking_session WHERE plate = ? AND state = 'active'"
            " AND start_at <= ? AND end_at > ? ORDER BY end_at DESC LIMIT 1",
            (plate, now, now),
        ).fetchone()
        return _view(row) if row else None

    @staticmethod
    def _op_by_ticket(conn: Connection, ticket: str) -> SessionView | None:
        row = conn.execute(f"SELECT {_SESSION_COLS} FROM parking_session WHERE ticket = ?", (ticket,)).fetchone()
        return _view(row) if row else None

    @staticmethod
    def _op_ledger(conn: Connection, session_id: int | None) -> list[dict[str, Any]]:
        sql = ("SELECT id, session_id, kind, amount_baisa, minutes, carrier, msisdn, charge_id, request_id, at,"
               " local_date, local_time FROM parking_ledger")
        args: tuple[Any, ...] = ()
        if session_id is not None:
            sql += " WHERE session_id = ?"
            args = (session_id,)
        cur = conn.execute(sql + " ORDER BY id", args)
        names = [d[0] for d in cur.description]
        return [dict(zip(names, row)) for row in cur]

    @staticmethod
    def _op_reminders_due(conn: Connection, now: float) -> list[SessionView]:
        rows = conn.execute(
            f"SELECT {_SESSION_COLS} FROM parking_session WHERE reminder_sent_at IS NULL"
            " AND reminder_at IS NOT NULL AND reminder_at <= ? AND state = 'active' AND end_at > ?"
            " ORDER BY reminder_at, id",
            (now, now),
        ).fetchall()
        return [_view(r) for r in rows]

    def _op_mark_reminded(
        self, conn: Connection, drafts: tuple[tuple[SessionView, NewMt], ...], now: float
    ) -> list[Outbound]:
        stored: list[Outbound] = []
        for session, mt in drafts:
            # Only if nothing changed since the read: an extension meanwhile moved the end (the
            # text would be wrong), a concurrent run already sent it, or it was stopped.
            cur = conn.execute(
                "UPDATE parking_session SET reminder_sent_at = ?, updated_at = ? WHERE id = ?"
                " AND reminder_sent_at IS NULL AND state = 'active' AND end_at = ?",
                (now, now, session.id, session.end_at),
            )
            if cur.rowcount != 1:
                continue
            outbound = self._ctx.store.insert_mt(conn, mt)
            conn.execute("UPDATE parking_session SET reminder_outbound_id = ? WHERE id = ?", (outbound.id, session.id))
            stored.append(outbound)
        # Stays that ended while no reminder could go out (the gateway was down): too late now.
        conn.execute(
            "UPDATE parking_session SET reminder_at = NULL WHERE reminder_sent_at IS NULL"
            " AND reminder_at IS NOT NULL AND end_at <= ?",
            (now,),
        )
        return stored

    # ------------------------------------------------------------------ logging

    @staticmethod
    def _log(event: str, who: Requester, outcome: Outcome) -> None:
        session = outcome.session
        # One per request: at debug, counted in the gateway's `traffic` line at info (smsgw/traffic.py).
        log.debug(
            event,
            status=outcome.status.value,
            carrier=who.carrier,
            msisdn=mask_msisdn(who.msisdn),
            request_id=who.request_id,
            ticket=session.ticket if session else None,
            zone=session.zone if session else None,
            amount_baisa=outcome.amount_baisa,
        )
