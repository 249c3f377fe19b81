"""Fault injection: Jasmin's catalogue of misbehaving SMSCs, as data instead of subclasses.

A `FaultPlan` is read by the SMSC on every PDU, so a test (or the control port, during a chaos
run) can flip a fault on and off while sessions are live. Each field is honoured in a few lines
of `carriers.smsc`; `garbage_pdu` builds the malformed PDUs an SMSC can push at an ESME.
"""

from __future__ import annotations

import struct
from dataclasses import asdict, dataclass, fields
from typing import Any

from smsgw.smpp import constants as c

#: Kinds of malformed PDU `garbage_pdu` can build.
#:  bad_length      command_length 8: below the header size; a strict ESME nacks and drops the link.
#:  too_long        command_length of 16 MiB: no real PDU is that big; same expected reaction.
#:  unknown_command a well-framed PDU with an unassigned command_id: generic_nack ESME_RINVCMDID,
#:                  and the session goes on.
#:  bad_body        a deliver_sm whose C-strings have no terminating NUL: the ESME should answer
#:                  with an error status, not crash.
GARBAGE_KINDS = ("bad_length", "too_long", "unknown_command", "bad_body")
UNKNOWN_COMMAND_ID = 0x000000FE

#: Receipt stat values (SMPP v3.4 appendix B) and the matching message_state (section 5.2.28).
DLR_STATES: dict[str, int] = {
    "ENROUTE": 1,
    "DELIVRD": 2,
    "EXPIRED": 3,
    "DELETED": 4,
    "UNDELIV": 5,
    "ACCEPTD": 6,
    "UNKNOWN": 7,
    "REJECTD": 8,
}

_HEADER = struct.Struct(">IIII")


@dataclass
class FaultPlan:
    """What the SMSC does wrong right now. All off by default: a happy SMSC."""

    #: Each connection answers this many submit_sm, then drops the link (later submits are lost).
    drop_link_after_submits: int | None = None
    #: (n, status): every n-th submit_sm (counted per SMSC) is answered with `status`.
    error_every_nth_submit: tuple[int, int] | None = None
    #: Every submit_sm answered ESME_RTHROTTLED, whatever the rate.
    throttle_storm: bool = False
    #: Hung SMSC: submit_sm is read and dropped, never answered (other PDUs still are).
    no_response_to_submit: bool = False
    #: submit_sm_resp written this long after the submit (the message is accepted at once).
    response_delay_s: float = 0.0
    #: Random errors: each submit_sm is answered, with this probability (0..1), with a status drawn
    #: from `submit_error_statuses` by the SMSC's seeded RNG (temporary and permanent mixed, as a
    #: congested network gives them). The message is not accepted.
    submit_error_rate: float = 0.0
    submit_error_statuses: tuple[int, ...] = (c.ESME_RSYSERR,)
    #: Slow reader: the SMSC reads at most this many bytes a second from each ESME socket, so TCP
    #: pushes back on the ESME's writes and every response comes late.
    read_bytes_per_s: float | None = None
    #: Hung SMSC: it stops reading its sockets (nothing is answered, not even enquire_link or a bind),
    #: while the TCP connections stay up. What was sent meanwhile is read once this is switched off.
    hung: bool = False
    #: submit_sm answered with generic_nack carrying sequence 0, which matches no request.
    generic_nack_on_submit: bool = False
    #: submit_sm answered by an unbind from the SMSC instead of a resp.
    unbind_on_submit: bool = False
    #: Queued deliver_sm are written before the bind resp (the ESME is not bound yet in its view).
    deliver_before_bind_resp: bool = False
    #: Every bind answered with this status (e.g. ESME_RBINDFAIL), credentials notwithstanding.
    bind_error: int | None = None
    #: After each successful bind, push one malformed PDU of this kind (see GARBAGE_KINDS).
    garbage_after_bind: str | None = None
    #: stat of the delivery receipts (DELIVRD, UNDELIV, EXPIRED, REJECTD, ...). Anything but
    #: DELIVRD also means the handset never gets the message.
    dlr_state: str = "DELIVRD"
    #: The id counter is not kept across restarts: it numbers from the profile's fixed base every
    #: time the SMSC starts, so a restarted SMSC gives again the MO and message ids of its previous
    #: run. Read when the SMSC starts; `Smsc.restart_counter` (control op `restart_counter`) makes
    #: ids repeat while it runs.
    ids_from_base: bool = False

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        if self.error_every_nth_submit is not None:
            n, status = self.error_every_nth_submit
            if int(n) < 1:
                raise ValueError("error_every_nth_submit: n must be at least 1")
            self.error_every_nth_submit = (int(n), int(status))
        if not 0.0 <= float(self.submit_error_rate) <= 1.0:
            raise ValueError("submit_error_rate must be between 0 and 1")
        self.submit_error_rate = float(self.submit_error_rate)
        statuses = tuple(int(s) for s in self.submit_error_statuses)
        if not statuses or any(s == c.ESME_ROK or not 0 < s <= 0xFFFFFFFF for s in statuses):
            raise ValueError("submit_error_statuses must be non-zero command_status values")
        self.submit_error_statuses = statuses
        if self.read_bytes_per_s is not None:
            if float(self.read_bytes_per_s) <= 0:
                raise ValueError("read_bytes_per_s must be positive (or null: read at full speed)")
            self.read_bytes_per_s = float(self.read_bytes_per_s)
        if self.drop_link_after_submits is not None and self.drop_link_after_submits < 0:
            raise ValueError("drop_link_after_submits must not be negative")
        if self.response_delay_s < 0:
            raise ValueError("response_delay_s must not be negative")
        if self.garbage_after_bind is not None and self.garbage_after_bind not in GARBAGE_KINDS:
            raise ValueError(f"garbage_after_bind must be one of {GARBAGE_KINDS}")
        if self.dlr_state not in DLR_STATES:
            raise ValueError(f"dlr_state must be one of {sorted(DLR_STATES)}")

    def update(self, **changes: Any) -> None:
        """Change several faults at once (the control port's `faults` op); all or nothing."""
        known = {f.name for f in fields(self)}
        unknown = sorted(set(changes) - known)
        if unknown:
            raise ValueError(f"unknown fault(s): {', '.join(unknown)}")
        trial = FaultPlan(**{**asdict(self), **changes})
        for name in known:
            setattr(self, name, getattr(trial, name))

    def reset(self) -> None:
        self.update(**asdict(FaultPlan()))

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        if self.error_every_nth_submit is not None:
            out["error_every_nth_submit"] = list(self.error_every_nth_submit)
        out["submit_error_statuses"] = list(self.submit_error_statuses)
        return out


def garbage_pdu(kind: str, sequence: int) -> bytes:
    """One malformed PDU of `kind` (see GARBAGE_KINDS), ready to write to a transport."""
    if kind == "bad_length":
        return _HEADER.pack(8, c.DELIVER_SM, 0, sequence)
    if kind == "too_long":
        return _HEADER.pack(16 * 1024 * 1024, c.DELIVER_SM, 0, sequence)
    if kind == "unknown_command":
        return _HEADER.pack(16, UNKNOWN_COMMAND_ID, 0, sequence)
    if kind == "bad_body":
        body = b"\x00\x01\x01" + b"96890000000"  # service_type, TONs, then a source_addr with no NUL
        return _HEADER.pack(16 + len(body), c.DELIVER_SM, 0, sequence) + body
    raise ValueError(f"unknown garbage kind {kind!r}; known: {', '.join(GARBAGE_KINDS)}")
