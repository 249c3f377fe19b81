"""Parking by SMS: a Request in, replies in the sender's language out.

This module owns the wording; the decisions are the parser's (what was asked) and the
service's (what happened).  Every reply fits one SMS in English (GSM 160) and at most two in
Arabic (UCS-2, 134); numbers in Arabic text are ASCII digits; money is always `N baisa`.
Times are the zone's wall-clock HH:MM, with the weekday when it is not today.
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import TYPE_CHECKING

from handlers import texts
from handlers.parking.config import ParkingConfig, Zone, default_config_path, load_parking_config
from handlers.parking.confirm import AnswerKind, Confirmations, is_no
from handlers.parking.parser import Command, Parsed, ParseError, Reason, keyword_command
from handlers.parking.sentence import Guess, understand
from handlers.parking.service import CheckResult, Outcome, ParkingService, Requester, SessionView, Status
from handlers.parking.tariff import DurationProblem
from smsgw.message import Lang, Reply, Request
from smsgw.textnorm import tokens

if TYPE_CHECKING:
    from smsgw.feature import ServiceContext

__all__ = ["CARRIED_OUT_UNANSWERED", "ParkingHandler", "Wording"]

EXAMPLE_PLATE = "1234AB"
_TRAILING_PUNCT = ".,!?;:"  # what the router strips from a first word before matching it

_DAYS = {
    Lang.EN: ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"),
    Lang.AR: ("الاثنين", "الثلاثاء", "الأربعاء", "الخميس", "الجمعة", "السبت", "الأحد"),
}

# Keywords as shown in examples: what the sender can send back as written.
_KW = {
    Command.EXTEND: {Lang.EN: "EXT", Lang.AR: "تمديد"},
    Command.CANCEL: {Lang.EN: "CANCEL", Lang.AR: "إلغاء"},
    Command.CHECK: {Lang.EN: "CHECK", Lang.AR: "فحص"},
}

T: dict[str, dict[Lang, str]] = {
    # outcomes
    "booked": {
        Lang.EN: "Ticket {ticket}: {plate} parked in {zone} until {end}. Charged {amount}.",
        Lang.AR: "تذكرة {ticket}: {plate} في {zone} حتى {end}. المبلغ {amount}.",
    },
    "extended": {
        Lang.EN: "Ticket {ticket}: {plate} extended to {end} (+{minutes} min). Charged {amount}.",
        Lang.AR: "تذكرة {ticket}: تمديد {plate} حتى {end} (+{minutes} د). المبلغ {amount}.",
    },
    "extended_free": {
        Lang.EN: "Ticket {ticket}: {plate} extended to {end} (+{minutes} min). No charge: free time.",
        Lang.AR: "تذكرة {ticket}: تمديد {plate} حتى {end} (+{minutes} د). بدون رسوم.",
    },
    # To a number that is not the stay's holder: what it paid for, never when the stay ends.
    "extended_other": {
        Lang.EN: "Ticket {ticket}: {minutes} min more paid for {plate}. Charged {amount}.",
        Lang.AR: "تذكرة {ticket}: دفعت {minutes} دقيقة إضافية للوحة {plate}. المبلغ {amount}.",
    },
    "extended_other_free": {
        Lang.EN: "Ticket {ticket}: {minutes} min more for {plate}. No charge: free time.",
        Lang.AR: "تذكرة {ticket}: {minutes} دقيقة إضافية للوحة {plate}. بدون رسوم.",
    },
    # The same booking again within the repeat window: the first confirmation, and this.
    "repeated": {Lang.EN: " Same request again: no new charge.", Lang.AR: " طلب مكرر: لا رسوم جديدة."},
    # A stay would pass its zone's max_stay_minutes.
    "stay_limit_room": {
        Lang.EN: "Sorry, a stay in {zone} lasts at most {max} min: {plate} is paid until {end}, so at most {room} min more.",
        Lang.AR: "عذرا، أقصى مدة للوقوف في {zone} هي {max} دقيقة: {plate} مدفوع حتى {end}، "
                 "يمكن إضافة {room} دقيقة على الأكثر.",
    },
    "stay_limit_full": {
        Lang.EN: "Sorry, a stay in {zone} lasts at most {max} min: {plate} is paid until {end}, no more can be added.",
        Lang.AR: "عذرا، أقصى مدة للوقوف في {zone} هي {max} دقيقة: {plate} مدفوع حتى {end}، لا يمكن إضافة المزيد.",
    },
    "stay_limit_other": {
        Lang.EN: "Sorry, {minutes} min more for {plate} would pass the {max} min a stay in {zone} may last.",
        Lang.AR: "عذرا، إضافة {minutes} دقيقة للوحة {plate} تتجاوز أقصى مدة للوقوف في {zone} ({max} دقيقة).",
    },
    "free_from": {Lang.EN: " Free from {at}.", Lang.AR: " مجاني بعد {at}."},
    "free_until_note": {Lang.EN: " Free until {at}.", Lang.AR: " مجاني حتى {at}."},
    "free": {
        Lang.EN: "{plate}: parking is free now until {at}. Nothing charged.",
        Lang.AR: "{plate}: الوقوف مجاني الآن حتى {at}. لا رسوم.",
    },
    "free_always": {
        Lang.EN: "{plate}: parking is free here now. Nothing charged.",
        Lang.AR: "{plate}: الوقوف مجاني هنا الآن. لا رسوم.",
    },
    "cancelled": {
        Lang.EN: "Ticket {ticket}: {plate} stopped at {at}.",
        Lang.AR: "تذكرة {ticket}: أُنهي وقوف {plate} الساعة {at}.",
    },
    "credit": {Lang.EN: " Credit {amount}.", Lang.AR: " يعاد لك {amount}."},
    # A stop of a stay others paid into: each number's credit is its own (the ledger's split).
    "credit_shared": {Lang.EN: " Credit {mine} to you, {others} to {whom}.", Lang.AR: " يعاد لك {mine} و{others} {whom}."},
    "credit_others": {
        Lang.EN: " No credit to you: {others} back to {whom}.",
        Lang.AR: " لا يعاد لك شيء، ويعاد {others} {whom}.",
    },
    "other_payer": {Lang.EN: "the other payer", Lang.AR: "لمن دفع معك"},
    "other_payers": {Lang.EN: "{n} other payers", Lang.AR: "لمن دفع معك"},
    "no_credit": {Lang.EN: " No unused time to credit.", Lang.AR: " لا وقت متبقٍ للاسترداد."},
    "not_found_plate": {
        Lang.EN: "No active parking for {plate} from your number.",
        Lang.AR: "لا وقوف فعال للوحة {plate} من رقمك.",
    },
    "not_found": {
        Lang.EN: "You have no active parking. To park send plate and minutes, e.g. {example}",
        Lang.AR: "لا وقوف فعال لديك. للوقوف أرسل اللوحة والدقائق، مثال: {example}",
    },
    "no_question": {
        Lang.EN: "Nothing to confirm: no reminder is waiting for a reply. To add time send {example}",
        Lang.AR: "لا شيء لتأكيده: لا تذكير ينتظر ردك. لإضافة وقت أرسل {example}",
    },
    "which": {
        Lang.EN: "You have {n} cars parked: {plates}. Send {kw} with the plate, e.g. {example}",
        Lang.AR: "لديك {n} سيارات: {plates}. أرسل {kw} مع اللوحة، مثال: {example}",
    },
    "my": {Lang.EN: "Your parking: {items}", Lang.AR: "مواقفك: {items}"},
    "my_item": {Lang.EN: "{plate} until {end} ({zone})", Lang.AR: "{plate} حتى {end} ({zone})"},  # zone: its name
    "my_more": {Lang.EN: " +{n} more", Lang.AR: " +{n} أخرى"},
    "too_long": {
        Lang.EN: "Sorry, at most {limit} min in one message. Example: {plate} {limit}",
        Lang.AR: "عذرا، الحد الأقصى {limit} دقيقة في الرسالة. مثال: {plate} {limit}",
    },
    "step": {
        Lang.EN: "Minutes go in steps of {unit} ({unit}, {unit2} ... {limit}). Example: {plate} {unit2}",
        Lang.AR: "الدقائق بمضاعفات {unit} ({unit}، {unit2} ... {limit}). مثال: {plate} {unit2}",
    },
    # inspection
    "paid": {
        Lang.EN: "{plate} PAID until {end}, zone {zone}, ticket {ticket}.",
        Lang.AR: "{plate} مدفوع حتى {end}، المنطقة {zone}، تذكرة {ticket}.",
    },
    "paid_elsewhere": {
        Lang.EN: "{plate} NOT PAID in {asked} (paid in {zone} until {end}).",
        Lang.AR: "{plate} غير مدفوع في {asked} (مدفوع في {zone} حتى {end}).",
    },
    "not_paid": {Lang.EN: "{plate} NOT PAID.", Lang.AR: "{plate} غير مدفوع."},
    "check_free": {
        Lang.EN: "{plate}: no charge now, free until {at}.",
        Lang.AR: "{plate}: لا رسوم الآن، مجاني حتى {at}.",
    },
    "check_free_always": {Lang.EN: "{plate}: no charge now.", Lang.AR: "{plate}: لا رسوم الآن."},
    # reminder
    "reminder": {
        Lang.EN: "Parking {plate} ends at {end}. Reply Y to add {minutes} min for {amount}.",
        Lang.AR: "ينتهي وقوف {plate} الساعة {end}. أرسل نعم لإضافة {minutes} دقيقة بـ {amount}.",
    },
    "reminder_free": {
        Lang.EN: "Parking {plate} ends at {end}. Reply Y to add {minutes} min, free of charge.",
        Lang.AR: "ينتهي وقوف {plate} الساعة {end}. أرسل نعم لإضافة {minutes} دقيقة بدون رسوم.",
    },
    # parse errors
    "format": {
        Lang.EN: "To park send plate and minutes, e.g. {example}",
        Lang.AR: "للوقوف أرسل اللوحة والدقائق، مثال: {example}",
    },
    "check_format": {
        Lang.EN: "Send {kw} and the plate, e.g. {kw} {plate}",
        Lang.AR: "أرسل {kw} ورقم اللوحة، مثال: {kw} {plate}",
    },
    "no_letters": {
        Lang.EN: "Add the letters of plate {digits}, e.g. {digits}AB {unit}",
        Lang.AR: "أضف حروف اللوحة {digits}، مثال: {digits}AB {unit}",
    },
    "plate_digits": {
        Lang.EN: "A plate has 1 to {max} digits and 1-2 letters, e.g. {example}",
        Lang.AR: "اللوحة من 1 إلى {max} أرقام وحرف أو حرفين، مثال: {example}",
    },
    "plate_letters": {
        Lang.EN: "Unknown plate letters '{word}'. Send e.g. {example}",
        Lang.AR: "حروف اللوحة «{word}» غير معروفة. مثال: {example}",
    },
    "no_duration": {
        Lang.EN: "How long? Send {plate} {unit} (minutes, {unit} to {limit})",
        Lang.AR: "كم المدة؟ أرسل {plate} {unit} (بالدقائق، {unit} إلى {limit})",
    },
    "unknown_zone": {
        Lang.EN: "Unknown zone '{word}'. Zones: {zones}. Send e.g. {example}",
        Lang.AR: "المنطقة «{word}» غير معروفة. المناطق: {zones}. مثال: {example}",
    },
    "zone_item": {Lang.EN: "{code} ({name})", Lang.AR: "{code} ({name})"},
    "no_plate_number": {
        Lang.EN: "Plate {letters} has no number. Send the plate's digits and letters, e.g. {example}",
        Lang.AR: "اللوحة {letters} بدون رقم. أرسل أرقام اللوحة وحروفها، مثال: {example}",
    },
    "not_now": {
        Lang.EN: "Parking starts when you send it, for a number of minutes. Send e.g. {example}",
        Lang.AR: "الوقوف يبدأ عند إرسال الرسالة، لعدد من الدقائق. مثال: {example}",
    },
}


def _t(key: str, lang: Lang, **values: object) -> str:
    return T[key][lang].format(**values)


class Wording:
    """Outcome → text, in one language, with times in the calendar's zone relative to `now`.

    `to`: the number the text goes to.  A stay's end is told only to its holder (the number that
    booked it); None words as for the holder (reminders, which only holders get)."""

    def __init__(self, config: ParkingConfig, lang: Lang, now: float, to: str | None = None) -> None:
        self.config = config
        self.lang = lang
        self.arabic = lang is Lang.AR
        self.to = to
        self._today = config.calendar.local(now).date()

    def _holds(self, session: SessionView) -> bool:
        return self.to is None or session.msisdn == self.to

    # -- pieces

    def time(self, ts: float) -> str:
        local = datetime.fromtimestamp(ts, self.config.timezone)
        hhmm = local.strftime("%H:%M")
        if local.date() == self._today:
            return hhmm
        return f"{_DAYS[self.lang][local.weekday()]} {hhmm}"

    def amount(self, baisa: int) -> str:
        return f"{baisa} بيسة" if self.arabic else f"{baisa} baisa"

    def zone_name(self, code: str) -> str:
        zone = self.config.zones.get(code)
        return zone.name(self.arabic) if zone else code

    def _zone(self, code: str | None = None) -> Zone:
        return self.config.zones.get(code or "") or self.config.zone(None)

    def example(self, plate: str | None = None, code: str | None = None, minutes: int | None = None) -> str:
        return f"{plate or EXAMPLE_PLATE} {minutes or self._zone(code).tariff.unit_minutes}"

    # -- outcomes

    def result(self, outcome: Outcome, command: Command, plate: str | None = None, zone: str | None = None) -> str:
        """The reply to a booking, extension or stop, refusals included (`plate`, `zone`: as asked)."""
        if outcome.status is Status.REFUSED and outcome.problem is not DurationProblem.STAY_LIMIT:
            return self.duration_problem(outcome.problem, plate or outcome.plate, outcome.zone or zone)
        return self.outcome(outcome, command)

    def outcome(self, outcome: Outcome, command: Command) -> str:
        s = outcome.session
        lang = self.lang
        repeated = _t("repeated", lang) if outcome.repeated else ""
        if outcome.status is Status.BOOKED and s is not None:
            notes = ""
            if outcome.free_until is not None and math.isfinite(outcome.free_until):
                notes += _t("free_until_note", lang, at=self.time(outcome.free_until))
            if outcome.free_from is not None:
                notes += _t("free_from", lang, at=self.time(outcome.free_from))
            notes += repeated
            for zone in (self.zone_name(s.zone), s.zone):  # a long zone name gives way to its code
                text = _t("booked", lang, ticket=s.ticket, plate=s.plate, zone=zone,
                          end=self.time(s.end_at), amount=self.amount(outcome.amount_baisa)) + notes
                if self.fits(text):
                    break
            return text
        if outcome.status is Status.EXTENDED and s is not None:
            if not self._holds(s):
                key = "extended_other" if outcome.amount_baisa else "extended_other_free"
                return _t(key, lang, ticket=s.ticket, plate=s.plate, minutes=outcome.minutes,
                          amount=self.amount(outcome.amount_baisa)) + repeated
            key = "extended" if outcome.amount_baisa else "extended_free"
            text = _t(key, lang, ticket=s.ticket, plate=s.plate, end=self.time(s.end_at),
                      minutes=outcome.minutes, amount=self.amount(outcome.amount_baisa))
            if outcome.amount_baisa and outcome.free_from is not None:
                text += _t("free_from", lang, at=self.time(outcome.free_from))
            return text + repeated
        if outcome.status is Status.FREE:
            plate = outcome.plate or ""
            if outcome.free_until is None or not math.isfinite(outcome.free_until):
                return _t("free_always", lang, plate=plate)
            return _t("free", lang, plate=plate, at=self.time(outcome.free_until))
        if outcome.status is Status.CANCELLED and s is not None:
            return _t("cancelled", lang, ticket=s.ticket, plate=s.plate, at=self.time(s.end_at)) + self.credit(outcome)
        if outcome.status is Status.REFUSED:
            if outcome.problem is DurationProblem.STAY_LIMIT:
                return self.stay_limit(outcome)
            return self.duration_problem(outcome.problem, outcome.plate, outcome.zone)
        if outcome.status is Status.NOT_FOUND:
            if outcome.plate:
                return _t("not_found_plate", lang, plate=outcome.plate)
            return _t("not_found", lang, example=self.example())
        if outcome.status is Status.WHICH:
            return self.which(outcome.plates, command)
        if outcome.status is Status.NO_QUESTION:
            kw = _KW[Command.EXTEND][lang]
            return _t("no_question", lang, example=f"{kw} {self.config.extend_minutes}")
        raise ValueError(f"no wording for {outcome.status} with session={s is not None}")

    def credit(self, outcome: Outcome) -> str:
        """What a stop gave back, to this number and to the stay's other payers (the ledger's split)."""
        mine, others = outcome.amount_baisa, outcome.others_baisa
        if others:
            whom = (_t("other_payer", self.lang) if outcome.others == 1
                    else _t("other_payers", self.lang, n=outcome.others))
            if mine:
                return _t("credit_shared", self.lang, mine=self.amount(mine), others=self.amount(others), whom=whom)
            return _t("credit_others", self.lang, others=self.amount(others), whom=whom)
        if mine:
            return _t("credit", self.lang, amount=self.amount(mine))
        return _t("no_credit", self.lang) if self.config.refund_unused else ""

    def stay_limit(self, outcome: Outcome) -> str:
        """A stay would pass its zone's longest: the holder learns how much more fits; another
        number only that its minutes do not (not when the stay ends)."""
        s = outcome.session
        assert s is not None and outcome.limit is not None
        zone = self.zone_name(s.zone)
        if not self._holds(s):
            return _t("stay_limit_other", self.lang, minutes=outcome.minutes, plate=s.plate, max=outcome.limit,
                      zone=zone)
        unit = self._zone(s.zone).tariff.unit_minutes
        room = max(0, math.floor((s.start_at + outcome.limit * 60 - s.end_at) / 60 + 1e-6))
        room -= room % unit
        key = "stay_limit_room" if room else "stay_limit_full"
        return _t(key, self.lang, zone=zone, max=outcome.limit, plate=s.plate, end=self.time(s.end_at), room=room)

    def which(self, plates: tuple[str, ...], command: Command) -> str:
        op = Command.CANCEL if command is Command.CANCEL else Command.EXTEND
        kw = _KW[op][self.lang]
        example = f"{kw} {plates[0]}" + (f" {self.config.extend_minutes}" if op is Command.EXTEND else "")
        sep = texts.LIST_SEP[self.lang]
        for n in range(len(plates), 0, -1):
            shown = sep.join(plates[:n]) + ("" if n == len(plates) else texts.ELLIPSIS[self.lang])
            text = _t("which", self.lang, n=len(plates), plates=shown, kw=kw, example=example)
            if self.fits(text):
                return text
        return text

    def duration_problem(
        self, problem: DurationProblem | None, plate: str | None, zone: str | None = None, minutes: int = 0
    ) -> str:
        t = self._zone(zone).tariff
        shown = plate or EXAMPLE_PLATE
        if problem is DurationProblem.STAY_LIMIT:
            # Without the stay at hand (a quote): the ceiling, not the stay's end.
            return _t("stay_limit_other", self.lang, minutes=minutes, plate=shown,
                      max=self._zone(zone).max_stay_minutes, zone=self.zone_name(zone or ""))
        if problem is DurationProblem.TOO_LONG:
            return _t("too_long", self.lang, limit=t.max_minutes, plate=shown)
        return _t("step", self.lang, unit=t.unit_minutes, unit2=2 * t.unit_minutes, limit=t.max_minutes, plate=shown)

    def sessions(self, sessions: list[SessionView]) -> str:
        if not sessions:
            return _t("not_found", self.lang, example=self.example())
        items = [_t("my_item", self.lang, plate=s.plate, end=self.time(s.end_at), zone=self.zone_name(s.zone))
                 for s in sessions]
        sep = texts.LIST_SEP[self.lang]
        for n in range(len(items), 0, -1):
            more = _t("my_more", self.lang, n=len(items) - n) if n < len(items) else ""
            text = _t("my", self.lang, items=sep.join(items[:n])) + more
            if self.fits(text):
                return text
        return text

    def check(self, result: CheckResult) -> str:
        lang, s = self.lang, result.session
        if result.free_until is not None:
            if math.isfinite(result.free_until):
                return _t("check_free", lang, plate=result.plate, at=self.time(result.free_until))
            return _t("check_free_always", lang, plate=result.plate)
        if s is not None and result.paid:
            return _t("paid", lang, plate=s.plate, end=self.time(s.end_at), zone=s.zone, ticket=s.ticket)
        if s is not None:
            return _t("paid_elsewhere", lang, plate=s.plate, asked=result.zone, zone=s.zone, end=self.time(s.end_at))
        return _t("not_paid", lang, plate=result.plate)

    def reminder(self, session: SessionView, amount_baisa: int) -> str:
        """What `Y` does: the minutes it adds and what they cost (`amount_baisa`)."""
        return _t("reminder" if amount_baisa else "reminder_free", self.lang, plate=session.plate,
                  end=self.time(session.end_at), minutes=self.config.extend_minutes,
                  amount=self.amount(amount_baisa))

    def parse_error(self, error: ParseError, text: str) -> str:
        lang = self.lang
        t = self._zone().tariff
        reason = error.reason
        # The example is the driver's own plate and minutes where they were read.
        example = self.example(error.plate, minutes=error.minutes)
        if reason is Reason.UNKNOWN_WORD:
            head = texts.NOT_UNDERSTOOD[lang].format(q=texts.quote_user_text(text, lang))
            return f"{head} {_t('format', lang, example=example)}"
        if reason is Reason.NO_PLATE:
            return _t("check_format", lang, kw=_KW[Command.CHECK][lang], plate=EXAMPLE_PLATE)
        if reason is Reason.NO_LETTERS:
            return _t("no_letters", lang, digits=error.word or "1234", unit=error.minutes or t.unit_minutes)
        if reason is Reason.PLATE_DIGITS:
            return _t("plate_digits", lang, max=self.config.plates.max_digits,
                      example=self.example(minutes=error.minutes))
        if reason is Reason.PLATE_LETTERS:
            return _t("plate_letters", lang, word=error.word or "", example=self.example(minutes=error.minutes))
        if reason is Reason.UNKNOWN_ZONE:
            return self.unknown_zone(error)
        if reason is Reason.NO_PLATE_NUMBER:
            return _t("no_plate_number", lang, letters=error.word or "",
                      example=self.example(f"1234{error.word or 'AB'}", minutes=error.minutes))
        if reason is Reason.NOT_NOW:
            return _t("not_now", lang, example=example)
        if reason is Reason.NO_DURATION:
            return _t("no_duration", lang, plate=error.plate or EXAMPLE_PLATE, unit=t.unit_minutes, limit=t.max_minutes)
        if reason is Reason.BAD_DURATION:
            return self.duration_problem(DurationProblem.NOT_A_MULTIPLE, error.plate)
        return _t("format", lang, example=example)

    def unknown_zone(self, error: ParseError) -> str:
        """Names every zone (code and name, or the codes alone if the names do not fit)."""
        zones = self.config.zones
        sep = texts.LIST_SEP[self.lang]
        first = next(iter(zones))
        example = f"{error.plate or EXAMPLE_PLATE} {first} {error.minutes or self._zone().tariff.unit_minutes}"
        text = ""
        for with_names in (True, False):
            listed = sep.join(_t("zone_item", self.lang, code=z.code, name=z.name(self.arabic)) if with_names
                              else z.code for z in zones.values())
            text = _t("unknown_zone", self.lang, word=error.word or "", zones=listed, example=example)
            if self.fits(text):
                break
        return text

    def fits(self, text: str) -> bool:
        # Short texts fit whatever their characters (80 GSM characters, each at worst an escape
        # pair, are 160 septets; 120 characters, even with a few outside the BMP taking two UCS-2
        # units each, stay within the 134 of two parts): count only the long ones.
        if len(text) <= (120 if self.arabic else 80):
            return True
        return texts.sms_parts(text) <= (2 if self.arabic else 1)


#: What moves money or a booking and so is carried out even for a number the gateway does not
#: answer (muted as a loop, or over its message limit): stopping, extending, and `Y` to a reminder.
#: The one place that says which commands those are (a confirmation flow adds its own `Y` here).
CARRIED_OUT_UNANSWERED = frozenset({Command.CANCEL, Command.EXTEND, Command.CONFIRM})


class ParkingHandler:
    """Routes parking commands to `ParkingService` and words the outcome."""

    def __init__(self, ctx: ServiceContext, config: ParkingConfig | None = None) -> None:
        self._ctx = ctx
        self.config = config or load_parking_config(default_config_path(ctx.config_dir))
        self.service = ParkingService(ctx, self.config)
        self.confirmations = Confirmations(ctx, self.service, self.config)
        self._grammar = self.config.grammar()

    def read(self, req: Request) -> Parsed | Guess | ParseError:
        inspector = req.inbound.msisdn in self.config.inspectors
        words = tokens(req.inbound.text)
        first = words[0].rstrip(_TRAILING_PUNCT) if words else ""
        if req.keyword and keyword_command(first) is None:
            # The router matched an alias the parser does not know (added in gateway.toml): trust
            # the router's keyword and read what follows it.
            return understand(" ".join(req.args), self._grammar, req.keyword, inspector=inspector)
        # The whole text, so that the parser sees the word as typed: `Y 1234 30` may be plate 1234Y.
        return understand(req.inbound.text, self._grammar, inspector=inspector)

    def must_carry_out(self, req: Request) -> bool:
        """True when `req` moves money or a booking (see CARRIED_OUT_UNANSWERED): the gateway
        runs it even for a number it does not answer, and drops the reply."""
        parsed = self.read(req)
        if not isinstance(parsed, Parsed):
            return False  # not understood, or a reading that would only be a question
        # Y confirms our open question, or a reminder (see `_answer`): either way it books or extends.
        # Minutes without a plate ("30") extend the sender's stay, as EXT does.
        return parsed.command in CARRIED_OUT_UNANSWERED or (parsed.command is Command.PARK and parsed.plate is None)

    async def handle(self, req: Request) -> list[Reply]:
        inbound = req.inbound
        words = Wording(self.config, req.lang, self._ctx.now(), inbound.msisdn)
        parsed = self.read(req)
        who = Requester(inbound.carrier, inbound.msisdn, inbound.short_code, req.lang, inbound.id)
        if isinstance(parsed, ParseError):
            return [req.reply(await self._refused(who, parsed, inbound.text, words))]
        if isinstance(parsed, Guess):
            return [req.reply(await self._ask(who, parsed, words))]
        if parsed.command is Command.CONFIRM and parsed.minutes is None:
            answer = await self._answer(who, parsed.plate, words)
            if answer is not None:
                return [req.reply(answer)]
        svc = self.service
        command = parsed.command
        if command is Command.MY:
            return [req.reply(words.sessions(await svc.my_sessions(who.msisdn)))]
        if command is Command.CHECK:
            assert parsed.plate is not None
            return [req.reply(words.check(await svc.check_plate(parsed.plate, parsed.zone)))]
        if command is Command.CANCEL:
            outcome = await svc.cancel(who, parsed.plate)
        elif command is Command.PARK and parsed.plate is not None:
            assert parsed.minutes is not None
            outcome = await svc.book(who, parsed.plate, parsed.minutes, parsed.zone)
        else:
            # EXT, Y, or minutes without a plate ("30"): the sender's own stay.
            outcome = await svc.extend(
                who, parsed.plate, parsed.minutes, zone=parsed.zone, after_reminder=command is Command.CONFIRM
            )
        return [req.reply(words.result(outcome, command, parsed.plate))]

    async def _refused(self, who: Requester, error: ParseError, text: str, words: Wording) -> str:
        """The hint; or, for a "no" while a question is open, the question closed."""
        if is_no(text) and (declined := await self.confirmations.decline(who)) is not None:
            return self.confirmations.declined(words, declined)
        return words.parse_error(error, text)

    async def _answer(self, who: Requester, plate: str | None, words: Wording) -> str | None:
        """A Y that answers our question (booked, expired, or already settled); None when the
        latest question is a reminder's, or there is none: then it is the reminder's Y."""
        answered = await self.confirmations.answer(who, plate)
        if answered is None:
            return None
        answer, outcome = answered
        if answer.kind is AnswerKind.EXPIRED or outcome is None:
            return self.confirmations.expired(words, answer.pending)
        return words.result(outcome, Command.PARK, answer.pending.plate)

    async def _ask(self, who: Requester, guess: Guess, words: Wording) -> str:
        """A reading to confirm: the question, or what booking it would meet (free time, a refusal...)."""
        quote = await self.confirmations.ask(who, guess)
        if quote.status in (Status.BOOKED, Status.EXTENDED):
            return self.confirmations.question(words, quote)
        if quote.status is Status.REFUSED:
            return words.duration_problem(quote.problem, quote.plate, quote.zone, quote.minutes)
        outcome = Outcome(quote.status, minutes=quote.minutes, free_until=quote.free_until, plate=quote.plate,
                          plates=quote.plates)
        return words.outcome(outcome, guess.parsed.command)

    def reminder_reply(self, session: SessionView, amount_baisa: int) -> Reply:
        """The reminder SMS for a stay, in the language it was booked in, on its carrier and short
        code; `amount_baisa` is what `Y` would charge."""
        lang = Lang(session.lang)
        text = Wording(self.config, lang, self._ctx.now()).reminder(session, amount_baisa)
        return Reply(carrier=session.carrier, msisdn=session.msisdn, short_code=session.short_code, text=text)
