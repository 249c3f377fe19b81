"""SMS front of the transaction service: STATUS/حالة, MY/طلباتي, STOP/إيقاف, START/تشغيل.

The router hands over the canonical keyword and the normalised tokens after it; the service does
the work and `wording` says it in the sender's language.  No Twisted, no SMPP.

A sentence instead of a bare reference ("what is the status of my request MM-2026-000123",
"وين وصل طلبي") is read by `sentence.read_request`: the reference in it gets its status, a
sentence about the sender's requests without one gets MY.
"""

from __future__ import annotations

from handlers.transactions import wording
from handlers.transactions.model import Caller
from handlers.transactions.sentence import Intent, read_request
from handlers.transactions.service import LookupOutcome, TransactionService
from smsgw.log import get_logger, mask_msisdn
from smsgw.message import Reply, Request

__all__ = ["KEYWORDS", "TransactionsHandler"]

log = get_logger(__name__)

#: Canonical keywords this handler answers (routes in gateway.toml give the Arabic aliases).
KEYWORDS = ("STATUS", "MY", "STOP", "START")


class TransactionsHandler:
    def __init__(self, service: TransactionService) -> None:
        self.service = service

    async def handle(self, req: Request) -> list[Reply]:
        caller = Caller(req.inbound.msisdn, req.inbound.carrier, req.lang)
        keyword = req.keyword
        if keyword == "STATUS":
            return await self._status(req, caller)
        if keyword == "MY":
            if req.args:
                # `my request MM-2026-000123`: that request's status
                reading = read_request(" ".join(req.args), self.service.config.reference, keyword)
                if reading is not None and reading.intent is Intent.STATUS:
                    assert reading.ref is not None
                    return await self._lookup(req, caller, reading.ref)
            return await self._my(req, caller)
        if keyword in ("STOP", "START"):
            enabled = keyword == "START"
            changed = await self.service.set_notifications(caller, enabled)
            log.info("transaction_notifications_" + ("on" if enabled else "off"), msisdn=mask_msisdn(caller.msisdn),
                     changed=changed)
            text = (wording.opted_in if enabled else wording.opted_out)(req.lang, req.inbound.short_code)
            return [req.reply(text)]
        # Routed here without one of our keywords (a default route): treat the text as a reference.
        return await self._status(req, caller)

    async def _my(self, req: Request, caller: Caller) -> list[Reply]:
        txns = await self.service.my_open(caller)
        return [req.reply(wording.open_list(txns, req.lang, self.service.config))]

    async def _status(self, req: Request, caller: Caller) -> list[Reply]:
        config = self.service.config
        if not req.args:
            return [req.reply(wording.bad_reference(req.lang, config))]
        text = " ".join(req.args)
        if config.reference.parse(text) is None:
            reading = read_request(text, config.reference, req.keyword)
            if reading is not None and reading.intent is Intent.MY:
                return await self._my(req, caller)
            if reading is not None:
                assert reading.ref is not None
                text = reading.ref
        return await self._lookup(req, caller, text)

    async def _lookup(self, req: Request, caller: Caller, text: str) -> list[Reply]:
        config = self.service.config
        lookup = await self.service.lookup(caller, text)
        outcome = lookup.outcome
        if outcome is not LookupOutcome.FOUND:
            # Which reference was asked for is left out on purpose: enumeration shows in the counts
            # (per message at debug; the `traffic` line at info counts them).
            log.debug("transaction_lookup_failed", msisdn=mask_msisdn(caller.msisdn), outcome=outcome.value)
        if outcome is LookupOutcome.FOUND:
            assert lookup.transaction is not None
            return [req.reply(wording.status_reply(lookup.transaction, req.lang, config))]
        if outcome is LookupOutcome.NOT_FOUND:
            assert lookup.ref is not None
            return [req.reply(wording.not_found(lookup.ref, req.lang, config))]
        if outcome is LookupOutcome.MALFORMED:
            return [req.reply(wording.bad_reference(req.lang, config))]
        if outcome is LookupOutcome.LIMIT_REACHED:
            return [req.reply(wording.limit_reached(self.service.minutes_left(lookup), req.lang, config))]
        return []  # SILENCED
