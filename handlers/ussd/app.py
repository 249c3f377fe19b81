"""The USSD menus as the gateway's dialogue app (smsgw/ussd/dialogue.py): engine + effects + languages.

`begin` reads a dial, shortcut answers included (*141*1*1*1234AB# is the main menu's 1, then 1,
then the plate, each taken as if typed); `answer` takes one input with the state stored after the
previous screen. Effects run between engine steps until a screen comes out. An SMS routed to this
handler (a keyword in gateway.toml) is answered with the code to dial.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from handlers.ussd.config import MenuConfig
from handlers.ussd.effects import Effects, parking_choices
from handlers.ussd.engine import MenuEngine, State, Step
from handlers.ussd.prefs import LanguagePrefs
from smsgw.log import get_logger, mask_msisdn
from smsgw.message import Inbound, Lang, Reply, Request
from smsgw.textnorm import fold_digits
from smsgw.ussd.dialogue import Turn

if TYPE_CHECKING:
    from smsgw.feature import ServiceContext

__all__ = ["UssdMenus", "shortcut_inputs"]

log = get_logger(__name__)

#: The handler names of the features whose services the menus use.
PARKING_HANDLER = "parking"
TRANSACTIONS_HANDLER = "transactions"


def shortcut_inputs(dialled: str) -> list[str]:
    """The answers dialled along with the service code: "*141*1*1234AB#" → ["1", "1234AB"]."""
    body = fold_digits(dialled).strip().removesuffix("#").lstrip("*")
    return [part.strip() for part in body.split("*")[1:] if part.strip()]


def _lang_in(state: str | None) -> Lang | None:
    """The language a stored engine state was in, if any."""
    try:
        value = json.loads(state).get("lang") if state else None
    except (ValueError, AttributeError):
        return None
    return Lang(value) if value in (Lang.EN.value, Lang.AR.value) else None


class UssdMenus:
    """Answers USSD dialogues from config/ussd.toml; see the module docstring."""

    def __init__(self, ctx: ServiceContext, config: MenuConfig) -> None:
        self.config = config
        self.prefs = LanguagePrefs(ctx.store, ctx.now)
        self._now = ctx.now
        self.engine = MenuEngine(config)
        self.effects = Effects(self.prefs, ctx.now, config.sms_short_code)

    def attach(self, handlers: Mapping[str, Any]) -> None:
        """Use the services of the parking and transactions features, when the gateway has them."""
        parking = handlers.get(PARKING_HANDLER)
        transactions = handlers.get(TRANSACTIONS_HANDLER)
        parking = parking if hasattr(parking, "service") and hasattr(parking, "config") else None
        transactions = transactions if hasattr(transactions, "service") else None
        self.effects = Effects(self.prefs, self._now, self.config.sms_short_code, parking, transactions)
        self.engine = MenuEngine(self.config, parking_choices(parking.config) if parking is not None else None)
        log.info("ussd_menus_ready", parking=parking is not None, transactions=transactions is not None)

    # -- the dialogue app -----------------------------------------------------------------------

    async def begin(self, inbound: Inbound) -> Turn:
        lang = await self.prefs.get(inbound.msisdn)
        inputs = shortcut_inputs(inbound.text)
        if inputs and lang is None:
            lang = self.config.default_language  # a shortcut dial goes straight to what it names
        step = self.engine.begin(lang)
        for text in inputs:
            step = await self._run(self.engine.handle(step.state, text), inbound)
            assert step.screen is not None
            if step.screen.end or step.state.notice:
                break  # finished, or a dialled answer did not fit: show where it stopped
        log.info("ussd_begin", carrier=inbound.carrier, msisdn=mask_msisdn(inbound.msisdn), shortcut=len(inputs))
        return self._turn(step)

    async def answer(self, inbound: Inbound, state: str | None) -> Turn:
        if state is None:
            return self._turn(self.engine.begin(await self.prefs.get(inbound.msisdn)))
        step = await self._run(self.engine.handle(State.from_json(state), inbound.text), inbound)
        return self._turn(step)

    async def release_text(self, msisdn: str, state: str | None) -> str:
        lang = _lang_in(state) or await self.prefs.get(msisdn) or self.config.default_language
        return self.config.text(lang, "timeout", code=self.config.service_code)

    async def _run(self, step: Step, inbound: Inbound) -> Step:
        while step.effect is not None:
            result = await self.effects.run(step.effect, inbound, self.engine.lang_of(step.state))
            step = self.engine.resume(step.state, step.effect, result)
        return step

    @staticmethod
    def _turn(step: Step) -> Turn:
        assert step.screen is not None
        return Turn(step.screen.text, step.screen.end, step.state.to_json())

    # -- SMS ----------------------------------------------------------------------------------

    def handle(self, req: Request) -> list[Reply]:
        """An SMS routed here: say which code to dial, in the sender's language."""
        return [req.reply(self.config.text(req.lang, "sms_hint", code=self.config.service_code))]
