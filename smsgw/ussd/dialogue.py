"""The contract between the USSD channel (smsgw/ussd/channel.py) and the app behind it (the menus).

The channel owns everything about the network: sessions, timeouts, the carrier's markers, the
latency lane. The app owns what a screen says. It is handed each handset input with the state it
returned last time, and answers with the next screen and its new state; it never sees SMPP, a
clock or a session key. Nothing here imports Twisted.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from smsgw.message import Inbound


@dataclass(frozen=True, slots=True)
class Turn:
    """The app's answer to one handset input."""

    text: str  # the screen; the app keeps it within one USSD string (see smsgw/ussd/screen.py)
    end: bool  # True: the final screen, the dialogue ends (PSSR response)
    #: The app's own state, handed back with the next input; stored with the session, so a
    #: gateway restart resumes the dialogue where it was. Opaque to the channel.
    state: str | None = None


@runtime_checkable
class DialogueApp(Protocol):
    """What answers USSD dialogues. `begin` and `answer` may be coroutines."""

    async def begin(self, inbound: Inbound) -> Turn:
        """A handset dialled: `inbound.text` is the dialled string ("*141#", "*141*1*1234AB#"),
        `inbound.short_code` the service code it was addressed to."""
        ...

    async def answer(self, inbound: Inbound, state: str | None) -> Turn:
        """The handset answered the previous screen with `inbound.text`."""
        ...

    async def release_text(self, msisdn: str, state: str | None) -> str:
        """The final screen when the gateway ends a dialogue itself (no answer in time, or an
        answer to a dialogue it no longer has): short, in the user's language."""
        ...


#: The handler name under which a feature registers the app that answers USSD dialogues.
APP_HANDLER = "ussd"


def find_app(handlers: Mapping[str, Any]) -> DialogueApp | None:
    """The dialogue app among a gateway's handlers, if a feature registered one."""
    app = handlers.get(APP_HANDLER)
    return app if isinstance(app, DialogueApp) else None
