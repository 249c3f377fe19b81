"""Delivery receipts: recognise, parse and match them to sent messages (pure: no I/O, no Twisted).

Receipts arrive as deliver_sm. The TLVs (receipted_message_id, message_state,
network_error_code) are trusted first, field by field; the SMSC's free-text form
`id:... sub:... dlvrd:... submit date:... done date:... stat:... err:... text:...`
fills whatever the TLVs leave out.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

__all__ = [
    "FINAL_STATES",
    "ID_FORMATS",
    "STATES",
    "Receipt",
    "is_receipt",
    "normalise_message_id",
    "parse_receipt",
]

TLV_RECEIPTED_MESSAGE_ID = 0x001E
TLV_NETWORK_ERROR_CODE = 0x0423
TLV_MESSAGE_PAYLOAD = 0x0424
TLV_MESSAGE_STATE = 0x0427

_ESM_TYPE_MASK = 0x3C
_ESM_SMSC_RECEIPT = 0x04
_ESM_INTERMEDIATE = 0x20

#: message_state TLV values (SMPP v3.4 5.2.28) by their short text-receipt names.
_STATE_BY_CODE = {
    1: "ENROUTE",
    2: "DELIVRD",
    3: "EXPIRED",
    4: "DELETED",
    5: "UNDELIV",
    6: "ACCEPTD",
    7: "UNKNOWN",
    8: "REJECTD",
}
STATES = frozenset(_STATE_BY_CODE.values())
#: ACCEPTD is used by many SMSCs as "taken by the SMSC, not yet delivered", so like
#: ENROUTE it leaves the message open for a later receipt.
FINAL_STATES = STATES - {"ENROUTE", "ACCEPTD"}

# Spellings seen in text receipts, keyed after upper-casing and dropping punctuation.
_STAT_ALIASES = {
    **{s: s for s in STATES},
    "DELIVERED": "DELIVRD",
    "DELIVRED": "DELIVRD",
    "EXPIRD": "EXPIRED",
    "DELETD": "DELETED",
    "UNDELIVERABLE": "UNDELIV",
    "UNDELIVERED": "UNDELIV",
    "UNDELIVRD": "UNDELIV",
    "FAILED": "UNDELIV",
    "ACCEPTED": "ACCEPTD",
    "REJECTED": "REJECTD",
    "REJECT": "REJECTD",
    "ENROUTED": "ENROUTE",
    "BUFFRED": "ENROUTE",
    "BUFFERED": "ENROUTE",
}

ID_FORMATS = frozenset({"hex", "dec", "str"})
# SMPP message ids are at most 64 octets; a longer "number" is not an id, and converting
# thousands of digits would trip Python's int/str conversion limit.
_MAX_NUMERIC_ID = 64
_HEX_RE = re.compile(r"(?:0x)?([0-9a-f]+)", re.IGNORECASE | re.ASCII)
_DEC_RE = re.compile(r"[0-9]+", re.ASCII)

_KEY_RE = re.compile(
    r"(?<![a-z0-9_])(submit[ _-]*date|done[ _-]*date|dlvrd|sub|stat(?:us)?|err(?:or)?|text|id)\s*:\s*",
    re.IGNORECASE | re.ASCII,
)
_KEY_CANON = {"status": "stat", "error": "err"}


@dataclass(frozen=True, slots=True)
class Receipt:
    """message_id is exactly as the receipt gave it; normalise it before matching.

    error: the network_error_code TLV as "<network type>:<code>" in decimal (e.g. "3:1"
    for GSM error 1) when present, else the text form's err field as written ("000"),
    else None.
    """

    message_id: str
    state: str
    error: str | None
    final: bool

    @property
    def delivered(self) -> bool:
        return self.state == "DELIVRD"


def is_receipt(esm_class: int) -> bool:
    """True for an SMSC delivery receipt (type 0x04) or an intermediate delivery
    notification (0x20); both report on one of our messages in the same shapes.

    SME delivery/user acknowledgements (0x08, 0x10) come from the handset's application,
    not the SMSC, and carry no message state, so they are not receipts here.
    """
    return (esm_class & _ESM_TYPE_MASK) in (_ESM_SMSC_RECEIPT, _ESM_INTERMEDIATE)


def _text_fields(text: str) -> dict[str, str]:
    """Key -> value; the first occurrence of a key wins so words inside text: cannot override."""
    matches = list(_KEY_RE.finditer(text))
    fields: dict[str, str] = {}
    for i, m in enumerate(matches):
        key = re.sub(r"[ _-]", "", m.group(1).lower())
        key = _KEY_CANON.get(key, key)
        end = matches[i + 1].start() if i + 1 < len(matches) else len(text)
        value = text[m.end() : end].strip()
        if key != "text":
            # Every field but text is a single token; whatever follows is noise.
            value = value.split(maxsplit=1)[0] if value else ""
        fields.setdefault(key, value)
    return fields


def _state_from_text(stat: str) -> str:
    key = re.sub(r"[^A-Z0-9]", "", stat.upper())
    if key.isdigit():
        return _STATE_BY_CODE.get(int(key), "UNKNOWN")
    return _STAT_ALIASES.get(key, "UNKNOWN")


def _tlv_message_id(raw: bytes | None) -> str | None:
    if not raw:
        return None
    # A C-octet string ends in NUL, but some SMSCs omit it; strip it only when it is there.
    value = bytes(raw).rstrip(b"\x00").decode("latin-1").strip()
    return value or None


def _tlv_state(raw: bytes | None) -> str | None:
    if raw is None or len(raw) != 1:
        return None
    return _STATE_BY_CODE.get(raw[0])


def _tlv_error(raw: bytes | None) -> str | None:
    if raw is None or len(raw) != 3:
        return None
    return f"{raw[0]}:{int.from_bytes(raw[1:3], 'big')}"


def parse_receipt(short_message: bytes, tlvs: Mapping[int, bytes]) -> Receipt | None:
    """The receipt in a deliver_sm, or None when no message id can be found anywhere.

    A receipt with an id but no recognisable state gets state UNKNOWN (final): the
    message's fate can no longer be learnt, so it should not stay open forever.
    """
    tlv_id = _tlv_message_id(tlvs.get(TLV_RECEIPTED_MESSAGE_ID))
    state = _tlv_state(tlvs.get(TLV_MESSAGE_STATE))
    tlv_error = _tlv_error(tlvs.get(TLV_NETWORK_ERROR_CODE))
    if tlv_id and state is not None and (tlv_error or state == "DELIVRD"):
        # Every field is in TLVs: the text form would only repeat them (and parsing it is the
        # costliest part of a receipt, which comes once per MT part).
        return Receipt(message_id=tlv_id, state=state, error=tlv_error, final=state in FINAL_STATES)
    body = bytes(short_message) or bytes(tlvs.get(TLV_MESSAGE_PAYLOAD, b""))
    fields = _text_fields(body.replace(b"\x00", b"").decode("latin-1")) if body else {}

    message_id = tlv_id or fields.get("id") or None
    if not message_id:
        return None

    if state is None:
        stat = fields.get("stat")
        state = _state_from_text(stat) if stat else "UNKNOWN"

    error = tlv_error or fields.get("err") or None
    return Receipt(message_id=message_id, state=state, error=error, final=state in FINAL_STATES)


def _normalise_str(raw: str) -> str:
    value = raw.replace("\x00", "").strip().lower()
    stripped = value.lstrip("0")
    if not stripped and value:
        return "0"
    return stripped


def normalise_message_id(raw: str, fmt: str) -> str:
    """Canonical form of a message id so submit_sm_resp and receipt ids compare equal.

    fmt is the carrier's format for this id: "hex" or "dec" turn it into a decimal string
    (normalise("00AB12", "hex") == normalise("43794", "dec") == "43794"); an id that does
    not parse in that base falls back to "str": trimmed, lower case, no leading zeros.
    Raises ValueError for an unknown fmt (a config error, not a carrier quirk).
    """
    if fmt not in ID_FORMATS:
        raise ValueError(f"unknown message id format {fmt!r}; expected one of {sorted(ID_FORMATS)}")
    value = raw.replace("\x00", "").strip()
    if fmt != "str" and len(value) <= _MAX_NUMERIC_ID:
        if fmt == "hex":
            m = _HEX_RE.fullmatch(value)
            if m:
                return str(int(m.group(1), 16))
        elif _DEC_RE.fullmatch(value):
            return str(int(value, 10))
    return _normalise_str(raw)
