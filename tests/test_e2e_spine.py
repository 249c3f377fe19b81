"""The gateway spine end to end: simulators and gateway over real loopback SMPP."""

from __future__ import annotations

from pathlib import Path

import pytest

from handlers.help import HelpHandler
from smsgw.message import Inbound, Lang, Request
from tests.stack import CARRIERS, on_loop, start_stack

SHORT_CODE = "90091"


def expected_help(stack, carrier: str, text: str, lang: Lang) -> str:
    inbound = Inbound(0, carrier, "96891234567", SHORT_CODE, text, 0.0)
    return HelpHandler(stack.gateway.router).handle(Request(inbound, "HELP", (), lang))[0].text


@pytest.mark.parametrize("carrier", CARRIERS)
@on_loop
async def test_help_round_trip_english_and_arabic(tmp_path: Path, carrier: str) -> None:
    """HELP and مساعدة each get one reply, in the sender's language, on every carrier."""
    stack = await start_stack(tmp_path)
    try:
        [english] = await stack.send(carrier, "96891234567", SHORT_CODE, "HELP")
        assert english.text == expected_help(stack, carrier, "HELP", Lang.EN)
        assert english.source == SHORT_CODE and not english.problems
        [arabic] = await stack.send(carrier, "96891234568", SHORT_CODE, "مساعدة")
        assert arabic.text == expected_help(stack, carrier, "مساعدة", Lang.AR)
        assert arabic.data_coding == 8
        assert not arabic.problems
    finally:
        await stack.stop()
