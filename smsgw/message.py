"""The one normalised message shape that crosses layers.

The SMPP layer turns PDUs into `Inbound`; handlers return `Reply`; the outbound
queue turns replies into PDUs again.  No carrier TLV ever leaves the session layer.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field


class Lang(str, enum.Enum):
    EN = "en"
    AR = "ar"


class Channel(str, enum.Enum):
    SMS = "sms"
    USSD = "ussd"


class SessionEvent(str, enum.Enum):
    """Where a message stands in an interactive (USSD) dialogue; NONE for SMS."""

    NONE = "none"
    NEW = "new"
    CONTINUE = "continue"
    END = "end"


@dataclass(frozen=True, slots=True)
class Inbound:
    """A mobile-originated message as the gateway accepted and stored it."""

    id: int
    carrier: str
    msisdn: str  # international digits, no '+', e.g. "96891234567"
    short_code: str
    text: str
    received_at: float  # seconds since the epoch, from the injected clock
    channel: Channel = Channel.SMS
    session: SessionEvent = SessionEvent.NONE
    session_id: str | None = None

    def reply(self, text: str, end: bool = True) -> "Reply":
        return Reply(
            carrier=self.carrier,
            msisdn=self.msisdn,
            short_code=self.short_code,
            text=text,
            channel=self.channel,
            end_session=end,
            session_id=self.session_id,
        )


@dataclass(frozen=True, slots=True)
class Reply:
    """A mobile-terminated message a handler wants sent."""

    carrier: str
    msisdn: str
    short_code: str
    text: str
    channel: Channel = Channel.SMS
    end_session: bool = True
    session_id: str | None = None


@dataclass(frozen=True, slots=True)
class Request:
    """What the router hands a handler: the stored message plus its parsed keyword."""

    inbound: Inbound
    keyword: str  # canonical (English, upper case) keyword, e.g. "HELP"; "" if none matched
    args: tuple[str, ...] = field(default_factory=tuple)  # normalised tokens after the keyword
    lang: Lang = Lang.EN

    def reply(self, text: str, end: bool = True) -> Reply:
        return self.inbound.reply(text, end=end)
