"""PDU codec: smpplib's command tables and encoder behind a strict, pure wrapper.

smpplib is a fine description of SMPP v3.4, but as a decoder it trusts its input: it reads
past a C-string that has no NUL, raises KeyError on TLVs it does not know (ussd_service_op
in deliver_sm among them) and drops unknown vendor TLVs. So decoding walks smpplib's own
field tables with bounds checks, and optional parameters stay raw bytes keyed by tag, so
carrier-specific TLVs reach the session layer intact. Encoding walks the
same tables (checked byte for byte against smpplib's generate() in the tests) and appends
the raw TLVs.

Everything here is pure: bytes in, values out. No transport, no clock, no logging.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Any

from smpplib import command as smpp_command
from smpplib import command_codes
from smpplib import consts as smpp_consts
from smpplib import exceptions as smpp_exceptions
from smpplib.command import Param
from smpplib.ptypes import ostr

from smsgw.smpp import constants as c

_HEADER = struct.Struct(">IIII")
_TLV_HEADER = struct.Struct(">HH")


class PduError(Exception):
    """A PDU we cannot accept; `status` is what to answer with."""

    def __init__(self, status: int, reason: str, command_id: int = 0, sequence: int = 0) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.command_id = command_id
        self.sequence = sequence


@dataclass(slots=True)
class Pdu:
    """One SMPP PDU. `params` holds mandatory fields by their spec names (C-strings as str,
    integers as int, short_message as bytes); `tlvs` holds optional parameters raw."""

    command_id: int
    sequence: int = 0
    status: int = c.ESME_ROK
    params: dict[str, Any] = field(default_factory=dict)
    tlvs: dict[int, bytes] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return c.command_name(self.command_id)

    def get(self, key: str, default: Any = None) -> Any:
        return self.params.get(key, default)

    def tlv_int(self, tag: int) -> int | None:
        value = self.tlvs.get(tag)
        if value is None or not value:
            return None
        return int.from_bytes(value, "big")

    def tlv_cstr(self, tag: int) -> str | None:
        """A C-octet-string TLV; a missing terminating NUL must not cost the last character."""
        value = self.tlvs.get(tag)
        if value is None:
            return None
        return value.split(b"\x00", 1)[0].decode("latin-1")


def _patch_smpplib() -> None:
    # deliver_sm carries ussd_service_op on USSD gateways; smpplib leaves it out of the
    # table, which makes its own parser raise KeyError. Add it so the tables are complete.
    deliver = smpp_command.DeliverSM
    if "ussd_service_op" not in deliver.params:
        deliver.params = dict(deliver.params, ussd_service_op=Param(type=int, size=1))
        deliver.params_order = tuple(deliver.params_order) + ("ussd_service_op",)


_patch_smpplib()

_COMMAND_NAMES: dict[int, str] = {code: name for name, code in command_codes.commands.items()}
#: Commands smpplib has no class for, but which are valid SMPP: answered, not nacked as garbage.
_KNOWN_WITHOUT_BODY_TABLE = frozenset(
    {c.REPLACE_SM, c.REPLACE_SM_RESP, c.CANCEL_SM, c.CANCEL_SM_RESP, c.OUTBIND, c.SUBMIT_MULTI, c.SUBMIT_MULTI_RESP}
)


def _mandatory_layout(cls: type) -> tuple[tuple[str, Param], ...]:
    optional = smpp_consts.OPTIONAL_PARAMS
    mandatory = getattr(cls, "mandatory_fields", ())
    out = []
    for name in cls.params_order:
        if name in optional and name not in mandatory:
            continue
        out.append((name, cls.params[name]))
    return tuple(out)


def _command_class(name: str) -> type | None:
    try:
        return type(smpp_command.factory(name, sequence=1))
    except smpp_exceptions.UnknownCommandError:
        return None


_LAYOUTS: dict[int, tuple[tuple[str, Param], ...]] = {}
for _code, _name in _COMMAND_NAMES.items():
    _cls = _command_class(_name)
    if _cls is not None:
        _LAYOUTS[_code] = _mandatory_layout(_cls)


_INT, _CSTR, _OSTR = 0, 1, 2
#: The decoder's view of each layout, read once from smpplib's tables: (name, kind, size, the
#: C-string's limit including its NUL or 0, the octet string's length field).
_DECODE_LAYOUTS: dict[int, tuple[tuple[str, int, int, int, str], ...]] = {
    code: tuple(
        (
            name,
            _INT if param.type is int else _CSTR if param.type is str else _OSTR,
            getattr(param, "size", None) or 0,
            (getattr(param, "max", None) or getattr(param, "size", None) or 0) if param.type is str else 0,
            getattr(param, "len_field", None) or "",
        )
        for name, param in layout
        if param.type in (int, str, ostr)
    )
    for code, layout in _LAYOUTS.items()
}


def is_known_command(command_id: int) -> bool:
    return command_id in _LAYOUTS or command_id in _KNOWN_WITHOUT_BODY_TABLE


def peek_header(raw: bytes) -> tuple[int, int, int, int]:
    """(command_length, command_id, command_status, sequence_number)."""
    if len(raw) < c.HEADER_LENGTH:
        raise PduError(c.ESME_RINVCMDLEN, "shorter than a PDU header")
    return _HEADER.unpack_from(raw)


def decode(raw: bytes) -> Pdu:
    """Decode one whole PDU (as framed by SmppFraming) or raise PduError."""
    length, command_id, status, sequence = peek_header(raw)
    if length != len(raw):
        raise PduError(c.ESME_RINVCMDLEN, "command_length disagrees with the frame", command_id, sequence)
    layout = _DECODE_LAYOUTS.get(command_id)
    if layout is None:
        if command_id in _KNOWN_WITHOUT_BODY_TABLE:
            return Pdu(command_id, sequence, status, {"body": raw[16:]})
        raise PduError(c.ESME_RINVCMDID, f"unknown command_id 0x{command_id:08X}", command_id, sequence)
    params: dict[str, Any] = {}
    pos = c.HEADER_LENGTH
    end = len(raw)
    # A response with an error status may legally have no body at all.
    if pos == end and (command_id & c.RESPONSE_BIT):
        return Pdu(command_id, sequence, status, params)
    for name, kind, size, limit, len_field in layout:
        if kind == _CSTR:
            nul = raw.find(b"\x00", pos, end)
            if nul < 0:
                raise PduError(c.ESME_RINVMSGLEN, f"{name} has no terminating NUL", command_id, sequence)
            if limit and nul - pos >= limit:
                raise PduError(c.ESME_RINVPARLEN, f"{name} longer than {limit - 1}", command_id, sequence)
            params[name] = raw[pos:nul].decode("latin-1")
            pos = nul + 1
        elif kind == _INT:
            if pos + size > end:
                raise PduError(c.ESME_RINVMSGLEN, f"{name} runs past the end", command_id, sequence)
            params[name] = raw[pos] if size == 1 else int.from_bytes(raw[pos : pos + size], "big")
            pos += size
        else:
            size = params.get(len_field, 0)
            if pos + size > end:
                raise PduError(c.ESME_RINVMSGLEN, f"{name} runs past the end", command_id, sequence)
            params[name] = raw[pos : pos + size]
            pos += size
    tlvs: dict[int, bytes] = {}
    while pos < end:
        if pos + 4 > end:
            raise PduError(c.ESME_RINVOPTPARSTREAM, "truncated TLV header", command_id, sequence)
        tag, size = _TLV_HEADER.unpack_from(raw, pos)
        pos += 4
        if pos + size > end:
            raise PduError(c.ESME_RINVOPTPARSTREAM, f"TLV 0x{tag:04X} runs past the end", command_id, sequence)
        tlvs[tag] = raw[pos : pos + size]
        pos += size
    return Pdu(command_id, sequence, status, params, tlvs)


_DEFAULTS: dict[int, dict[str, Any]] = {
    c.BIND_TRANSMITTER: {"interface_version": c.SMPP_VERSION_34},
    c.BIND_RECEIVER: {"interface_version": c.SMPP_VERSION_34},
    c.BIND_TRANSCEIVER: {"interface_version": c.SMPP_VERSION_34},
}


def encode(pdu: Pdu) -> bytes:
    """Encode a Pdu along smpplib's field tables; optional parameters are appended raw.

    smpplib's own generate() walks the same tables but costs ~50 us a PDU through its
    attribute machinery; this is the hot path of every message, so we walk them directly.
    tests/test_pdu.py checks the output is byte-identical to smpplib's for every command.
    """
    command_id = pdu.command_id
    layout = _LAYOUTS.get(command_id)
    if layout is None:
        body = pdu.params.get("body", b"")
        return _HEADER.pack(16 + len(body), command_id, pdu.status, pdu.sequence) + body
    params = pdu.params
    if command_id & c.RESPONSE_BIT and pdu.status != c.ESME_ROK and not params and not pdu.tlvs:
        # Error responses carry no body (spec 3.4 section 4: "the body is not returned").
        return _HEADER.pack(16, command_id, pdu.status, pdu.sequence)
    defaults = _DEFAULTS.get(command_id)
    chunks: list[bytes] = []
    for name, param in layout:
        value = params.get(name)
        if value is None and defaults is not None:
            value = defaults.get(name)
        kind = param.type
        if kind is int:
            chunks.append((value or 0).to_bytes(param.size, "big"))
        elif kind is str:
            text = (value or "").encode("latin-1")
            limit = getattr(param, "max", None) or getattr(param, "size", None)
            if limit is not None and len(text) >= limit:
                raise ValueError(f"{name} longer than {limit - 1} octets")
            chunks.append(text + b"\x00")
        elif kind is ostr:
            data = value or b""
            if len(data) > 254 and param.len_field == "sm_length":
                raise ValueError("short_message longer than 254 octets; use message_payload")
            # The length field precedes the data and was written as 0 unless the caller set it.
            chunks[-1] = len(data).to_bytes(1, "big")
            chunks.append(data)
    if pdu.tlvs:
        chunks.extend(_TLV_HEADER.pack(tag, len(v)) + v for tag, v in pdu.tlvs.items())
    body = b"".join(chunks)
    return _HEADER.pack(16 + len(body), command_id, pdu.status, pdu.sequence) + body


def response_for(request: Pdu, status: int = c.ESME_ROK, **params: Any) -> Pdu:
    return Pdu(request.command_id | c.RESPONSE_BIT, request.sequence, status, params)


def generic_nack(sequence: int, status: int) -> bytes:
    return _HEADER.pack(16, c.GENERIC_NACK, status, sequence)


def encode_tlv_int(value: int, size: int) -> bytes:
    return value.to_bytes(size, "big")


def encode_tlv_cstr(value: str) -> bytes:
    return value.encode("latin-1") + b"\x00"
