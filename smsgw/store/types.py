"""The store's value types, states and errors, shared by every area and engine."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Final, Protocol

from smsgw import migrations

# (carrier, msisdn, short_code, ref, total): the identity of one long MO being reassembled.
PartKey = tuple[str, str, str, int, int]

# Outbound states.
QUEUED: Final = "queued"
SENT: Final = "sent"
DELIVERED: Final = "delivered"
UNDELIVERED: Final = "undelivered"
FAILED: Final = "failed"
EXPIRED: Final = "expired"
MT_STATES: Final = (QUEUED, SENT, DELIVERED, UNDELIVERED, FAILED, EXPIRED)
OPEN_STATES: Final = (QUEUED, SENT)

# The receipt `stat:` value (or message_state mapped to it) that means the handset got the part.
DLR_DELIVERED: Final = "DELIVRD"


class Cursor(Protocol):
    """What an op may use of a statement's result: the sqlite3 cursor's subset both engines give."""

    lastrowid: int | None
    rowcount: int
    description: Any

    def fetchone(self) -> Any: ...
    def fetchall(self) -> list[Any]: ...
    def __iter__(self) -> Iterator[Any]: ...


class Connection(Protocol):
    """The connection an op runs on (`Store.write(op)`, `Store.read(fn)`): sqlite3's API, qmark
    parameters.  On PostgreSQL an adapter gives the same calls (smsgw/store/postgres.py); SQL
    written once for both is the rule (see smsgw/store/__init__.py for the dialect it may use)."""

    def execute(self, sql: str, parameters: Sequence[Any] = ..., /) -> Cursor: ...
    def executemany(self, sql: str, seq_of_parameters: Iterable[Sequence[Any]], /) -> Cursor: ...


@dataclass(frozen=True, slots=True)
class NewMo:
    """A complete MO as decoded from deliver_sm, before it has an id."""

    carrier: str
    carrier_msg_id: str | None
    msisdn: str
    short_code: str
    text: str
    data_coding: int
    received_at: float
    channel: str = "sms"
    session_id: str | None = None
    session_event: str = "none"


@dataclass(frozen=True, slots=True)
class NewReceipt:
    """A delivery receipt as read from deliver_sm: the MT part it is for is (carrier, smsc_id),
    smsc_id already normalised as record_part_sent's."""

    carrier: str
    smsc_id: str
    state: str
    error: str | None
    final: bool
    raw: str
    received_at: float


@dataclass(frozen=True, slots=True)
class NewMoPart:
    """One part of a long MO (UDH or SAR), body still encoded as received."""

    carrier: str
    carrier_msg_id: str | None
    msisdn: str
    short_code: str
    data_coding: int
    received_at: float
    ref: int
    total: int
    seq: int
    body: bytes

    @property
    def key(self) -> PartKey:
        return (self.carrier, self.msisdn, self.short_code, self.ref, self.total)


@dataclass(frozen=True, slots=True)
class NewMt:
    """An MT to store before it is sent."""

    carrier: str
    msisdn: str
    short_code: str
    text: str
    created_at: float
    expires_at: float
    channel: str = "sms"
    session_id: str | None = None
    end_session: bool = True
    inbound_id: int | None = None
    kind: str = "reply"  # reply | notice | reminder ... (for later features and metrics)


@dataclass(slots=True)
class Outbound:
    """A queued or sent MT as the outbound queue sees it."""

    id: int
    carrier: str
    msisdn: str
    short_code: str
    text: str
    channel: str
    session_id: str | None
    end_session: bool
    created_at: float
    expires_at: float
    state: str
    attempts: int
    concat_ref: int
    parts_sent: dict[int, str]  # part_no -> normalised smsc id
    kind: str = "reply"
    inbound_id: int | None = None
    last_error: str | None = None
    total_parts: int | None = None  # known once the first part was submitted
    claimed_by: str | None = None  # several nodes: the incarnation that sends it (smsgw/cluster.py)


class StoreUnavailable(Exception):
    """The database could not commit (or read); nothing of the failed request was stored."""


class StoreClosed(StoreUnavailable):
    """The store was closed (shutdown); same handling as any other unavailability."""


SchemaTooNew = migrations.SchemaTooNew
