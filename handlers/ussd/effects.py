"""What the menu engine cannot decide alone, done by the services the SMS keywords use.

One set of business rules, two channels: a plate is read by the parking parser, a price by the
parking tariff, a booking or extension made by `ParkingService` (idempotent per inbound message
id, as for an SMS) and worded by the parking handler's `Wording`; a request status comes from
`TransactionService.lookup`, with its privacy rule and failed-look-up limit, worded by the
transactions wording. Results are plain data for `MenuEngine.resume`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

from handlers.parking import tariff as pricing
from handlers.parking.handler import Wording
from handlers.parking.parser import Command, Parsed, ParseError, Reason, parse
from handlers.parking.service import Requester
from handlers.transactions import wording as txn_wording
from handlers.transactions.model import Caller
from handlers.transactions.service import LookupOutcome
from handlers.ussd.engine import Effect, ParkingChoices, ZoneChoice
from handlers.ussd.prefs import LanguagePrefs
from smsgw.message import Inbound, Lang

__all__ = ["Effects", "parking_choices"]

UNAVAILABLE: Mapping[str, Any] = {"unavailable": True}


def parking_choices(config: Any) -> ParkingChoices:
    """Zones (the default first) and the durations each zone sells: one unit up to its maximum."""
    zones = sorted(config.zones.values(), key=lambda z: z.code != config.default_zone)
    return ParkingChoices(tuple(
        ZoneChoice(
            code=zone.code,
            names={Lang.EN.value: zone.name_en, Lang.AR.value: zone.name_ar},
            durations=tuple(range(zone.tariff.unit_minutes, zone.tariff.max_minutes + 1, zone.tariff.unit_minutes)),
        )
        for zone in zones
    ))


class Effects:
    """Performs the engine's effects for one gateway; `parking` / `transactions` are the SMS
    handlers of those features (their `.service` and `.config`), None when not enabled."""

    def __init__(
        self,
        prefs: LanguagePrefs,
        now: Callable[[], float],
        sms_short_code: str,
        parking: Any = None,
        transactions: Any = None,
    ) -> None:
        self.prefs = prefs
        self._now = now
        self._sms_short_code = sms_short_code
        self.parking = parking
        self.transactions = transactions
        self._grammar = parking.config.grammar() if parking is not None else None

    async def run(self, effect: Effect, inbound: Inbound, lang: Lang) -> Mapping[str, Any]:
        name, args = effect.name, effect.args
        if name == "language.set":
            await self.prefs.set(inbound.msisdn, Lang(args["lang"]))
            return {}
        if name.startswith("parking."):
            if self.parking is None:
                return UNAVAILABLE
            return await getattr(self, "_" + name.replace(".", "_"))(args, inbound, lang)
        if name == "status.lookup":
            if self.transactions is None:
                return UNAVAILABLE
            return await self._status_lookup(args, inbound, lang)
        raise ValueError(f"unknown effect {name!r}")

    # -- parking ------------------------------------------------------------------------------

    def _who(self, inbound: Inbound, lang: Lang) -> Requester:
        # The SMS short code, not the USSD code: the stay's reminder SMS comes from it.
        return Requester(inbound.carrier, inbound.msisdn, self._sms_short_code, lang, inbound.id)

    def _words(self, lang: Lang, to: str | None = None) -> Wording:
        return Wording(self.parking.config, lang, self._now(), to)

    async def _parking_plate(self, args: Mapping[str, Any], inbound: Inbound, lang: Lang) -> Mapping[str, Any]:
        assert self._grammar is not None
        read = parse(str(args["text"]), self._grammar, "PARK")
        if isinstance(read, Parsed) and read.plate is not None:
            return {"plate": read.plate}
        if isinstance(read, ParseError) and read.reason is Reason.NO_DURATION and read.plate is not None:
            return {"plate": read.plate}  # a plate and nothing else: exactly what was asked
        return {"plate": None}

    async def _parking_quote(self, args: Mapping[str, Any], inbound: Inbound, lang: Lang) -> Mapping[str, Any]:
        config = self.parking.config
        zone = config.zones.get(args["zone"]) or config.zone(None)
        minutes = int(args["minutes"])
        ticket = args.get("ticket")
        if ticket:
            stay = await self.parking.service.session(ticket)
            if stay is None:
                return UNAVAILABLE
            end = stay.end_at + minutes * 60
            amount = max(0, pricing.charge_baisa(config.calendar, zone.tariff, stay.start_at, end) - stay.charged_baisa)
        else:
            amount = pricing.quote(config.calendar, zone.tariff, self._now(), minutes).amount_baisa
        return {"amount": self._words(lang).amount(amount) if amount else None}

    async def _parking_book(self, args: Mapping[str, Any], inbound: Inbound, lang: Lang) -> Mapping[str, Any]:
        outcome = await self.parking.service.book(
            self._who(inbound, lang), str(args["plate"]), int(args["minutes"]), str(args["zone"])
        )
        return {"text": self._words(lang, inbound.msisdn).result(outcome, Command.PARK, args["plate"], args["zone"])}

    async def _parking_extend(self, args: Mapping[str, Any], inbound: Inbound, lang: Lang) -> Mapping[str, Any]:
        outcome = await self.parking.service.extend(self._who(inbound, lang), str(args["plate"]), int(args["minutes"]))
        return {"text": self._words(lang, inbound.msisdn).result(outcome, Command.EXTEND, args["plate"])}

    async def _parking_sessions(self, args: Mapping[str, Any], inbound: Inbound, lang: Lang) -> Mapping[str, Any]:
        stays = await self.parking.service.my_sessions(inbound.msisdn)
        words = self._words(lang)
        return {"sessions": [
            {"plate": s.plate, "ticket": s.ticket, "zone": s.zone, "until": words.time(s.end_at)} for s in stays
        ]}

    # -- transaction status -------------------------------------------------------------------

    async def _status_lookup(self, args: Mapping[str, Any], inbound: Inbound, lang: Lang) -> Mapping[str, Any]:
        service = self.transactions.service
        lookup = await service.lookup(Caller(inbound.msisdn, inbound.carrier, lang), str(args["ref"]))
        config = service.config
        if lookup.outcome is LookupOutcome.MALFORMED:
            return {"invalid": True}
        if lookup.outcome is LookupOutcome.FOUND:
            return {"text": txn_wording.status_reply(lookup.transaction, lang, config)}
        if lookup.outcome is LookupOutcome.NOT_FOUND:
            return {"text": txn_wording.not_found(lookup.ref, lang, config)}
        # Over the failed look-up limit: SMS goes quiet after saying so once, but a USSD screen
        # must say something, and saying the same thing again discloses nothing.
        minutes = max(1, math.ceil(lookup.retry_after_s / 60))
        return {"text": txn_wording.limit_reached(minutes, lang, config)}
