"""What a simulated SMSC remembers, for tests and the control port to inspect."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Concat:
    """Where one submit_sm sits in a long message. method: 'udh8' | 'udh16' | 'sar'."""

    method: str
    ref: int
    total: int
    seq: int


@dataclass(eq=False)
class MtRecord:
    """One accepted submit_sm, as received, and what became of it."""

    carrier: str
    sequence: int
    message_id: str  # as written in submit_sm_resp
    number: int  # the SMSC's internal message number behind both id formats
    source: str
    dest: str
    #: (source_addr_ton, source_addr_npi, dest_addr_ton, dest_addr_npi), mirrored in the receipt.
    addressing: tuple[int, int, int, int]
    data_coding: int
    esm_class: int
    registered_delivery: int
    short_message: bytes
    tlvs: dict[int, bytes]
    received_at: float
    #: The text octets without UDH (short_message or message_payload).
    payload: bytes
    concat: Concat | None
    #: The receipt stat decided when it was accepted (FaultPlan.dlr_state at that moment); EXPIRED
    #: once its validity passed while the handset was switched off.
    outcome: str
    #: Which ESME connection it came on (the SMSC numbers them from 1 as they connect).
    link: int = 0
    #: validity_period as written in the submit_sm, and the moment it ends (the SMSC's default
    #: validity when the field was empty, capped at its longest).
    validity_period: str = ""
    expires_at: float | None = None


@dataclass(frozen=True)
class HandsetMessage:
    """A complete message as the handset would display it."""

    msisdn: str  # the handset (MT destination)
    source: str  # who it appears to come from (the short code)
    text: str
    parts: int  # submit_sm PDUs that made it up
    data_coding: int
    message_ids: tuple[str, ...]
    method: str  # 'single' | 'udh8' | 'udh16' | 'sar' | 'payload'
    received_at: float  # when its last part was accepted
    #: What the handset would render wrongly (bad septets, split escapes, invalid UTF-16, ...).
    problems: tuple[str, ...] = ()


@dataclass(eq=False)
class MoRecord:
    """One injected MO and what became of its deliver_sm PDUs."""

    mo_id: str
    source: str
    dest: str
    text: str
    data_coding: int
    #: The mo_id TLV value of each part: the mo_id itself for a one-part MO, else "<mo_id>-<n>".
    part_ids: tuple[str, ...]
    created_at: float
    acked_parts: set[int] = field(default_factory=set)
    acked: bool = False
    #: deliver_sm written, all parts and retries together.
    attempts: int = 0
    #: Every outcome in order: a deliver_sm_resp status, or None for a lost link / no resp in time.
    statuses: list[int | None] = field(default_factory=list)
    first_written_at: float | None = None
    #: When every part had been written at least once (the ESME could have the whole MO).
    complete_written_at: float | None = None
    acked_at: float | None = None
    _written_parts: set[int] = field(default_factory=set, repr=False)

    @property
    def parts(self) -> int:
        return len(self.part_ids)


@dataclass(eq=False)
class DlrRecord:
    """One delivery receipt the SMSC owes (one per accepted submit_sm that asked for it)."""

    message_id: str  # as it was in submit_sm_resp
    receipt_id: str  # as it is written in the receipt
    state: str
    msisdn: str
    created_at: float
    acked: bool = False
    attempts: int = 0
    statuses: list[int | None] = field(default_factory=list)
