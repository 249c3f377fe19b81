"""How each carrier marks a USSD dialogue on the wire: data and small pure functions.

Carriers agree on `ussd_service_op` (SMPP v3.4 5.3.2.44) and disagree on the rest, which is
what Vumi kept in one processor subclass per vendor. Here the differences are two settings of a
carrier (`UssdVariant`), read by two functions:

* `read_indication` turns the TLVs of a deliver_sm into (event, session reference);
* `submit_tlvs` gives the TLVs a submit_sm needs to continue or end that dialogue.

Session reference, by `session`:
  "its_session_info"        TLV 0x1383, 2 octets: octet 1 the session number, octet 2 bit 0 the
                            end-of-session flag, bits 1-7 the network's sequence number. The
                            reference is the session number; a screen echoes octet 2 as the input it
                            answers carried it (bits 1-7), with its own end bit, because some USSD
                            gateways match the whole value to find the dialogue.
  "user_message_reference"  TLV 0x0204, 2 octets, set by the SMSC on the dialogue's first PDU and
                            echoed on every PDU of it. The reference is its value.
  "msisdn"                  no TLV: one dialogue per handset at a time. The reference is the MSISDN.
A one- or two-octet number is not unique network-wide, so sessions are keyed by carrier, MSISDN
and reference together (as Vumi's sixdee processor keys them by MSISDN + session info).

What a screen must echo of the input it answers travels with that input and its screen as their
stored `session_id`, a `DialogueMark`: the reference, then what to echo, e.g. "17;i=06;st=USSD"
(its_session_info octet 2 sequence bits 0x06; service_type "USSD"). A bare "17" echoes nothing,
which is also how marks stored before echoing existed read back.

Handset hang-up, by `abort`:
  "its_session_end"  a deliver_sm whose its_session_info has the end bit set;
  "service_op"       a deliver_sm whose ussd_service_op is the vendor value `abort_op`;
  "tlv"              a deliver_sm carrying the vendor TLV `abort_tlv` (any value);
  "none"             the carrier never says; the dialogue simply times out.

Pure: bytes in, values out. No clock, no logging, no transport.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from smsgw.message import SessionEvent
from smsgw.smpp import constants as c

SESSION_KINDS: tuple[str, ...] = ("its_session_info", "user_message_reference", "msisdn")
ABORT_KINDS: tuple[str, ...] = ("none", "its_session_end", "service_op", "tlv")

#: TLVs a vendor abort tag must not be: the gateway reads them for their own meaning.
RESERVED_TLVS: frozenset[int] = frozenset({
    c.TLV_USSD_SERVICE_OP, c.TLV_ITS_SESSION_INFO, c.TLV_USER_MESSAGE_REFERENCE, c.TLV_MESSAGE_PAYLOAD,
    c.TLV_SAR_MSG_REF_NUM, c.TLV_SAR_TOTAL_SEGMENTS, c.TLV_SAR_SEGMENT_SEQNUM, c.TLV_MESSAGE_STATE,
    c.TLV_RECEIPTED_MESSAGE_ID,
})

#: The handset operations that carry a dialogue forward.
_OPENING_OPS = frozenset({c.USSD_PSSR_INDICATION, c.USSD_PSSD_INDICATION})


class UssdWireError(ValueError):
    """A USSD deliver_sm this carrier's variant cannot read; `status` answers it."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status


@dataclass(frozen=True, slots=True)
class UssdVariant:
    """One carrier's USSD dialect (see the module docstring)."""

    session: str = "msisdn"
    abort: str = "none"
    abort_op: int | None = None
    abort_tlv: int | None = None

    def __post_init__(self) -> None:
        if self.session not in SESSION_KINDS:
            raise ValueError(f"USSD session kind {self.session!r} not in {SESSION_KINDS}")
        if self.abort not in ABORT_KINDS:
            raise ValueError(f"USSD abort kind {self.abort!r} not in {ABORT_KINDS}")
        if self.abort == "its_session_end" and self.session != "its_session_info":
            raise ValueError("abort 'its_session_end' needs session 'its_session_info'")
        if self.abort == "service_op" and (
            self.abort_op is None or self.abort_op in c.USSD_STANDARD_OPS or not 0 <= self.abort_op <= 0xFF
        ):
            raise ValueError(f"abort 'service_op' needs a vendor ussd_service_op value, got {self.abort_op!r}")
        if self.abort == "tlv" and (
            self.abort_tlv is None or self.abort_tlv in RESERVED_TLVS or not 0 < self.abort_tlv <= 0xFFFF
        ):
            raise ValueError(f"abort 'tlv' needs a vendor TLV tag, got {self.abort_tlv!r}")

    @classmethod
    def of(cls, carrier: Any) -> UssdVariant:
        """The variant a carrier's configuration (CarrierConfig or alike) describes."""
        return cls(
            session=getattr(carrier, "ussd_session", "msisdn"),
            abort=getattr(carrier, "ussd_abort", "none"),
            abort_op=getattr(carrier, "ussd_abort_op", None),
            abort_tlv=getattr(carrier, "ussd_abort_tlv", None),
        )


#: A service_type worth echoing: what fits the field (5 characters) and our mark's syntax.
_SERVICE_TYPE_RE = re.compile(r"[A-Za-z0-9 ]{1,5}")


@dataclass(frozen=True, slots=True)
class DialogueMark:
    """The session reference of a USSD PDU and what a screen answering it must echo."""

    ref: str
    #: its_session_info octet 2 as the network sent it, end bit cleared (a screen sets its own).
    info: int = 0
    #: The indication's service_type (e.g. "USSD"): a screen carries the same.
    service_type: str = ""

    def encode(self) -> str:
        out = self.ref
        if self.info:
            out += f";i={self.info:02x}"
        if self.service_type:
            out += f";st={self.service_type}"
        return out

    @classmethod
    def decode(cls, text: str | None) -> DialogueMark:
        """Never raises: an unknown or malformed part echoes nothing rather than lose the screen."""
        ref, *parts = (text or "").split(";")
        info, service_type = 0, ""
        for part in parts:
            key, _, value = part.partition("=")
            if key == "i" and re.fullmatch(r"[0-9a-f]{2}", value):
                info = int(value, 16) & 0xFE
            elif key == "st" and _SERVICE_TYPE_RE.fullmatch(value):
                service_type = value
        return cls(ref, info, service_type)


def session_ref_of(session_id: str | None) -> str | None:
    """The dialogue's reference in a stored `session_id` (a DialogueMark), for keying sessions."""
    if session_id is None:
        return None
    return DialogueMark.decode(session_id).ref or None


@dataclass(frozen=True, slots=True)
class UssdIndication:
    """What a handset's deliver_sm means for its dialogue."""

    op: int  # the ussd_service_op as received
    event: SessionEvent  # NEW (dialled), CONTINUE (an answer) or END (hang-up)
    session_ref: str
    #: The reference and what screens must echo (DialogueMark.encode()): stored with the input.
    session_id: str = ""


def is_ussd(tlvs: Mapping[int, bytes]) -> bool:
    return c.TLV_USSD_SERVICE_OP in tlvs


def read_indication(
    variant: UssdVariant, msisdn: str, tlvs: Mapping[int, bytes], service_type: str = ""
) -> UssdIndication | None:
    """Decode a USSD deliver_sm; None for one to acknowledge and ignore (a USSN confirm).

    Raises UssdWireError (with the deliver_sm_resp status) for what this carrier cannot mean: a
    missing or malformed session TLV, or an operation a handset never sends.
    """
    raw_op = tlvs.get(c.TLV_USSD_SERVICE_OP, b"")
    if len(raw_op) != 1:
        raise UssdWireError(c.ESME_RINVOPTPARAMVAL, f"ussd_service_op of {len(raw_op)} octets")
    op = raw_op[0]
    ref, end_flag, info = _session_ref(variant, msisdn, tlvs)
    echo = service_type.strip()
    mark = DialogueMark(ref, info, echo if _SERVICE_TYPE_RE.fullmatch(echo) else "").encode()
    aborted = (
        (variant.abort == "its_session_end" and end_flag)
        or (variant.abort == "service_op" and op == variant.abort_op)
        or (variant.abort == "tlv" and variant.abort_tlv in tlvs)
    )
    if aborted:
        return UssdIndication(op, SessionEvent.END, ref, mark)
    if op == c.USSD_USSN_CONFIRM:
        return None  # the acknowledgement of a notification; we send none, nothing to do
    if op in _OPENING_OPS:
        return UssdIndication(op, SessionEvent.NEW, ref, mark)
    if op == c.USSD_USSR_CONFIRM:
        return UssdIndication(op, SessionEvent.CONTINUE, ref, mark)
    raise UssdWireError(c.ESME_RINVOPTPARAMVAL, f"ussd_service_op 0x{op:02X} is not a handset operation")


def _session_ref(variant: UssdVariant, msisdn: str, tlvs: Mapping[int, bytes]) -> tuple[str, bool, int]:
    """(reference, end flag, its_session_info octet 2 without the end bit)."""
    if variant.session == "its_session_info":
        info = tlvs.get(c.TLV_ITS_SESSION_INFO)
        if info is None:
            raise UssdWireError(c.ESME_RMISSINGOPTPARAM, "its_session_info missing")
        if len(info) != 2:
            raise UssdWireError(c.ESME_RINVOPTPARAMVAL, f"its_session_info of {len(info)} octets")
        return str(info[0]), bool(info[1] & 0x01), info[1] & 0xFE
    if variant.session == "user_message_reference":
        ref = tlvs.get(c.TLV_USER_MESSAGE_REFERENCE)
        if ref is None:
            raise UssdWireError(c.ESME_RMISSINGOPTPARAM, "user_message_reference missing")
        if len(ref) != 2:
            raise UssdWireError(c.ESME_RINVOPTPARAMVAL, f"user_message_reference of {len(ref)} octets")
        return str(int.from_bytes(ref, "big")), False, 0
    return msisdn, False, 0


def submit_tlvs(variant: UssdVariant, session_id: str | None, end: bool) -> dict[int, bytes]:
    """TLVs of a submit_sm carrying one screen: USSR request (an answer is expected) or PSSR
    response (the final screen), plus the carrier's session reference as the input carried it
    (`session_id`: a DialogueMark, or a bare reference).

    Raises ValueError for a reference this variant cannot carry (a bug upstream: references
    come from `read_indication`).
    """
    mark = DialogueMark.decode(session_id) if session_id is not None else None
    ref = mark.ref if mark is not None else None
    tlvs = {c.TLV_USSD_SERVICE_OP: bytes([c.USSD_PSSR_RESPONSE if end else c.USSD_USSR_REQUEST])}
    if variant.session == "its_session_info":
        number = _ref_number(ref, 0xFF)
        echoed = mark.info if mark is not None else 0
        tlvs[c.TLV_ITS_SESSION_INFO] = bytes([number, echoed | (0x01 if end else 0x00)])
    elif variant.session == "user_message_reference":
        tlvs[c.TLV_USER_MESSAGE_REFERENCE] = _ref_number(ref, 0xFFFF).to_bytes(2, "big")
    return tlvs


def submit_service_type(session_id: str | None) -> str:
    """The service_type of a screen: what the input it answers carried ("" when none)."""
    return DialogueMark.decode(session_id).service_type if session_id else ""


def _ref_number(session_ref: str | None, top: int) -> int:
    if session_ref is None or not session_ref.isdigit() or int(session_ref) > top:
        raise ValueError(f"USSD session reference {session_ref!r} does not fit 0..{top}")
    return int(session_ref)
