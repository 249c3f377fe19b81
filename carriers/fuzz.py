"""Fuzzing from the SMSC's side: mutated and random PDUs pushed at a bound ESME, each judged.

A broken or hostile SMSC is the gateway's least controllable input. `FuzzRunner` writes cases
(`generate_case`) to the receiver sessions of one or more simulated SMSCs, interleaved with
well-formed MOs, and checks every answer against what SMPP v3.4 asks of an ESME:

  * an impossible command_length: generic_nack ESME_RINVCMDLEN, then the link is dropped;
  * an unknown command_id: generic_nack ESME_RINVCMDID, and the session goes on;
  * a body that cannot be decoded: an error answer (generic_nack or the command's own _resp);
  * a decodable deliver_sm/data_sm, however odd its text: its own _resp (0, 0x64 or an error);
  * requests an ESME does not serve: their _resp with ESME_RINVCMDID;
  * responses nobody asked for, alert_notification: no answer at all.

Anything else is a violation: a wrong answer, no answer within `answer_timeout_s`, or the link
dropped while answers were owed (how a crash in the ESME's data path shows from outside). Each
well-formed MO must be acknowledged and answered by the time the run settles, whatever garbage
was written before it on the same link, including garbage that made the ESME drop that link.

Cases are drawn from a `random.Random(seed)`: the same seed gives the same cases in the same
order (the interleaving with the ESME's answers depends on timing).
"""

from __future__ import annotations

import random
import struct
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from enum import Enum
from typing import Any

from twisted.internet import task
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime

from carriers.records import HandsetMessage
from carriers.smsc import MO_ADDRESSING, Smsc, SmscProtocol, deliver_params
from smsgw.log import get_logger
from smsgw.smpp import constants as c
from smsgw.smpp.pdu import Pdu, encode, is_known_command

log = get_logger("carriers.fuzz")

_HEADER = struct.Struct(">IIII")
_TLV = struct.Struct(">HH")

#: Sequence numbers for answers nobody asked for: far above anything a run's ESME reaches, so a
#: stray response can never be mistaken for the answer to one of the ESME's own requests.
STRAY_SEQUENCE_BASE = 0x7E000000
#: Sources of fuzzed MOs; well-formed MOs use `FuzzRunner.msisdn_base` upwards, elsewhere.
FUZZ_SOURCE_LOW, FUZZ_SOURCE_HIGH = 96893000000, 96896999999


class Expect(str, Enum):
    """What the ESME must do with a case."""

    CLOSE = "close"  # generic_nack ESME_RINVCMDLEN, then drop the link
    INVALID_ID = "invalid_id"  # generic_nack ESME_RINVCMDID; the session goes on
    REJECTED = "rejected"  # an error answer: generic_nack or the command's own _resp, non-zero
    ANSWERED = "answered"  # the command's own _resp (status pinned by `FuzzCase.status` if set)
    ANY_ANSWER = "any_answer"  # generic_nack or the command's own _resp, any status
    SILENT = "silent"  # nothing at all
    UNBIND = "unbind"  # unbind_resp 0, then the link goes


@dataclass(frozen=True, slots=True)
class FuzzCase:
    kind: str
    raw: bytes
    sequence: int
    command_id: int
    expect: Expect
    #: The only acceptable command_status, where the spec pins one.
    status: int | None = None

    @property
    def ends_link(self) -> bool:
        return self.expect in (Expect.CLOSE, Expect.UNBIND)


def judge(case: FuzzCase, answer_id: int | None, status: int | None) -> str | None:
    """None if (answer_id, status) is a correct answer to `case`, else what is wrong with it.

    (None, None) means the link went before any answer came.
    """
    expect = case.expect
    own_resp = case.command_id | c.RESPONSE_BIT
    if answer_id is None:
        if expect is Expect.SILENT:
            return None
        return "link dropped before an answer"
    if expect is Expect.SILENT:
        return f"answered a PDU that takes no answer with {_answer_name(answer_id, status)}"
    if case.status is not None and status != case.status:
        return f"status {c.status_name(status or 0)}, expected {c.status_name(case.status)}"
    if expect in (Expect.CLOSE, Expect.INVALID_ID):
        return None if answer_id == c.GENERIC_NACK else f"{_answer_name(answer_id, status)}, expected generic_nack"
    if expect is Expect.UNBIND:
        return None if answer_id == c.UNBIND_RESP and status == c.ESME_ROK else \
            f"{_answer_name(answer_id, status)}, expected unbind_resp ESME_ROK"
    if expect is Expect.ANSWERED:
        return None if answer_id == own_resp else \
            f"{_answer_name(answer_id, status)}, expected {c.command_name(own_resp)}"
    if answer_id not in (own_resp, c.GENERIC_NACK):
        return f"{_answer_name(answer_id, status)}, expected generic_nack or {c.command_name(own_resp)}"
    if expect is Expect.REJECTED and status == c.ESME_ROK:
        return f"{_answer_name(answer_id, status)} accepted an undecodable PDU"
    return None


def _answer_name(answer_id: int | None, status: int | None) -> str:
    if answer_id is None:
        return "no answer"
    return f"{c.command_name(answer_id)} {c.status_name(status or 0)}"


# -- case generation --------------------------------------------------------------------------


@dataclass(frozen=True)
class _Context:
    """What generators need to know about the carrier they write to."""

    rng: random.Random
    sequence: int
    mo_id_tlv: int
    short_code: str


def _source(rng: random.Random) -> str:
    return str(rng.randint(FUZZ_SOURCE_LOW, FUZZ_SOURCE_HIGH))


def _deliver(ctx: _Context, *, short_message: bytes = b"HELP", data_coding: int = 0, esm_class: int = 0,
             tlvs: dict[int, bytes] | None = None, source: str | None = None, dest: str | None = None,
             command_id: int = c.DELIVER_SM) -> Pdu:
    """A deliver_sm as the carrier would write it (its own MO id TLV half of the time)."""
    params = deliver_params(source if source is not None else _source(ctx.rng), MO_ADDRESSING[:2],
                            dest if dest is not None else ctx.short_code, MO_ADDRESSING[2:], esm_class,
                            data_coding, short_message)
    all_tlvs = dict(tlvs or {})
    if ctx.rng.random() < 0.5:
        all_tlvs.setdefault(ctx.mo_id_tlv, f"FZ{ctx.sequence:x}".encode("ascii") + b"\x00")
    if command_id == c.DATA_SM:
        params = {k: params[k] for k in ("service_type", "source_addr_ton", "source_addr_npi", "source_addr",
                                         "dest_addr_ton", "dest_addr_npi", "destination_addr", "esm_class",
                                         "registered_delivery", "data_coding")}
    return Pdu(command_id, ctx.sequence, c.ESME_ROK, params, all_tlvs)


def _raw(command_id: int, sequence: int, body: bytes, length: int | None = None, status: int = 0) -> bytes:
    return _HEADER.pack(16 + len(body) if length is None else length, command_id, status, sequence) + body


def _mandatory_end(pdu: Pdu) -> int:
    """Offset where a PDU's mandatory part ends (its optional parameters start)."""
    return len(encode(Pdu(pdu.command_id, pdu.sequence, pdu.status, pdu.params, {})))


def _text_bytes(rng: random.Random, n: int) -> bytes:
    return bytes(rng.choice(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ 0123456789") for _ in range(n))


def _case(ctx: _Context, kind: str, raw: bytes, command_id: int, expect: Expect, status: int | None = None,
          sequence: int | None = None) -> FuzzCase:
    return FuzzCase(kind, raw, ctx.sequence if sequence is None else sequence, command_id, expect, status)


# Link-level: the stream cannot be trusted after these, so the ESME must drop the link.

def _length_below_header(ctx: _Context) -> FuzzCase:
    length = ctx.rng.randint(0, c.HEADER_LENGTH - 1)
    return _case(ctx, "length_below_header", _raw(c.DELIVER_SM, ctx.sequence, b"", length=length),
                 c.DELIVER_SM, Expect.CLOSE, c.ESME_RINVCMDLEN)


def _length_huge(ctx: _Context) -> FuzzCase:
    length = ctx.rng.choice([c.MAX_PDU_LENGTH + 1, 0x00100000, 0x7FFFFFFF, 0xFFFFFFFF,
                             ctx.rng.randint(c.MAX_PDU_LENGTH + 1, 0xFFFFFFFF)])
    return _case(ctx, "length_huge", _raw(c.DELIVER_SM, ctx.sequence, b"", length=length),
                 c.DELIVER_SM, Expect.CLOSE, c.ESME_RINVCMDLEN)


def _unbind(ctx: _Context) -> FuzzCase:
    return _case(ctx, "unbind", _raw(c.UNBIND, ctx.sequence, b""), c.UNBIND, Expect.UNBIND, c.ESME_ROK)


# Header-level.

def _unknown_command(ctx: _Context) -> FuzzCase:
    rng = ctx.rng
    while True:
        command_id = rng.choice([rng.randint(0, 0x1FF), rng.randint(0, 0xFFFFFFFF), 0x80000000 | rng.randint(1, 0x1FF)])
        # Neither a command nor the response to one that the codec knows (SMPP 3.3 leftovers included).
        if not is_known_command(command_id) and not is_known_command(command_id ^ c.RESPONSE_BIT):
            break
    body = rng.randbytes(rng.randint(0, 40))
    return _case(ctx, "unknown_command", _raw(command_id, ctx.sequence, body), command_id,
                 Expect.INVALID_ID, c.ESME_RINVCMDID)


def _outbind(ctx: _Context) -> FuzzCase:
    body = b"OMANTEL_SMSC\x00secret\x00"
    return _case(ctx, "outbind", _raw(c.OUTBIND, ctx.sequence, body), c.OUTBIND, Expect.INVALID_ID,
                 c.ESME_RINVCMDID)


# Body-level: undecodable, so an error answer and nothing accepted.

def _truncated_body(ctx: _Context) -> FuzzCase:
    pdu = _deliver(ctx, short_message=_text_bytes(ctx.rng, 20))
    full = encode(Pdu(pdu.command_id, pdu.sequence, 0, pdu.params, {}))
    cut = ctx.rng.randint(16, len(full) - 1)
    body = full[16:cut]
    return _case(ctx, "truncated_body", _raw(c.DELIVER_SM, ctx.sequence, body), c.DELIVER_SM, Expect.REJECTED)


def _truncated_tlv(ctx: _Context) -> FuzzCase:
    rng = ctx.rng
    pdu = _deliver(ctx, short_message=b"" if rng.random() < 0.5 else b"HELP",
                   tlvs={c.TLV_MESSAGE_PAYLOAD: b"HELP" * rng.randint(0, 4)} if rng.random() < 0.5 else {})
    raw = encode(pdu)
    if rng.random() < 0.5:
        tail = rng.randbytes(rng.randint(1, 3))  # a TLV header cut short
    else:
        declared = rng.randint(1, 300)  # a TLV whose value runs past the end
        tail = _TLV.pack(rng.choice([c.TLV_MESSAGE_PAYLOAD, ctx.mo_id_tlv, c.TLV_SAR_MSG_REF_NUM,
                                     rng.randint(0, 0xFFFF)]), declared) + rng.randbytes(rng.randint(0, declared - 1))
    body = raw[16:] + tail
    return _case(ctx, "truncated_tlv", _raw(c.DELIVER_SM, ctx.sequence, body), c.DELIVER_SM, Expect.REJECTED)


def _missing_nul(ctx: _Context) -> FuzzCase:
    rng = ctx.rng
    # service_type, TONs, then a C-string that runs to the end of the PDU.
    field = rng.choice(["service_type", "source_addr", "destination_addr"])
    if field == "service_type":
        body = b"CMT"
    elif field == "source_addr":
        body = b"\x00\x01\x01" + _source(rng).encode("ascii")[: rng.randint(0, 11)]
    else:
        body = b"\x00\x01\x01" + _source(rng).encode("ascii") + b"\x00\x03\x00" + ctx.short_code.encode("ascii")
    return _case(ctx, "missing_nul", _raw(c.DELIVER_SM, ctx.sequence, body), c.DELIVER_SM, Expect.REJECTED)


def _overlong_cstring(ctx: _Context) -> FuzzCase:
    rng = ctx.rng
    pdu = _deliver(ctx)
    field, limit = rng.choice([("source_addr", 21), ("destination_addr", 21), ("service_type", 6),
                               ("schedule_delivery_time", 17), ("validity_period", 17)])
    value = "9" * rng.randint(limit, limit + 200)
    # encode() refuses this, as it should; build the mandatory part by hand around it.
    params = dict(pdu.params)
    params[field] = ""
    raw = encode(Pdu(pdu.command_id, pdu.sequence, 0, params, {}))
    marker = _cstring_offset(params, field)
    body = raw[16:16 + marker] + value.encode("ascii") + raw[16 + marker:]
    return _case(ctx, "overlong_cstring", _raw(c.DELIVER_SM, ctx.sequence, body), c.DELIVER_SM, Expect.REJECTED)


def _cstring_offset(params: dict[str, Any], field: str) -> int:
    """Body offset of C-string `field` in a deliver_sm built from `params`."""
    order = ["service_type", "source_addr_ton", "source_addr_npi", "source_addr", "dest_addr_ton", "dest_addr_npi",
             "destination_addr", "esm_class", "protocol_id", "priority_flag", "schedule_delivery_time",
             "validity_period"]
    offset = 0
    for name in order:
        if name == field:
            return offset
        value = params.get(name)
        offset += len(value.encode("latin-1")) + 1 if isinstance(value, str) else 1
    raise ValueError(field)


def _sm_length_overrun(ctx: _Context) -> FuzzCase:
    rng = ctx.rng
    text = _text_bytes(rng, rng.randint(0, 100))
    pdu = _deliver(ctx, short_message=text)
    raw = bytearray(encode(Pdu(pdu.command_id, pdu.sequence, 0, pdu.params, {})))
    sm_length_at = len(raw) - len(text) - 1
    raw[sm_length_at] = rng.randint(len(text) + 1, 255)
    return _case(ctx, "sm_length_overrun", _raw(c.DELIVER_SM, ctx.sequence, bytes(raw[16:])), c.DELIVER_SM,
                 Expect.REJECTED)


def _sm_length_underrun(ctx: _Context) -> FuzzCase:
    """sm_length shorter than the text: the rest is read as a TLV stream, which may or may not parse."""
    rng = ctx.rng
    text = _text_bytes(rng, rng.randint(1, 100))
    pdu = _deliver(ctx, short_message=text)
    raw = bytearray(encode(Pdu(pdu.command_id, pdu.sequence, 0, pdu.params, {})))
    raw[len(raw) - len(text) - 1] = rng.randint(0, len(text) - 1)
    return _case(ctx, "sm_length_underrun", _raw(c.DELIVER_SM, ctx.sequence, bytes(raw[16:])), c.DELIVER_SM,
                 Expect.ANY_ANSWER)


def _random_body(ctx: _Context) -> FuzzCase:
    rng = ctx.rng
    command_id = rng.choice([c.DELIVER_SM, c.DELIVER_SM, c.DATA_SM, c.ENQUIRE_LINK])
    body = rng.randbytes(rng.randint(0, 300))
    return _case(ctx, "random_body", _raw(command_id, ctx.sequence, body), command_id, Expect.ANY_ANSWER)


def _bit_flip(ctx: _Context) -> FuzzCase:
    rng = ctx.rng
    pdu = _deliver(ctx, short_message=_text_bytes(rng, rng.randint(0, 60)),
                   tlvs={c.TLV_USER_MESSAGE_REFERENCE: b"\x00\x01"} if rng.random() < 0.3 else None)
    raw = bytearray(encode(pdu))
    for _ in range(rng.randint(1, 4)):
        at = rng.randrange(16, len(raw))  # the header stays intact: the frame and sequence are known
        raw[at] ^= 1 << rng.randrange(8)
    return _case(ctx, "bit_flip", bytes(raw), c.DELIVER_SM, Expect.ANY_ANSWER)


def _trailing_garbage(ctx: _Context) -> FuzzCase:
    rng = ctx.rng
    raw = encode(_deliver(ctx)) + rng.randbytes(rng.randint(1, 40))
    return _case(ctx, "trailing_garbage", _raw(c.DELIVER_SM, ctx.sequence, raw[16:]), c.DELIVER_SM,
                 Expect.ANY_ANSWER)


# Decodable, odd content: a deliver_sm_resp (accepted, refused or "retry later"), never silence.

def _answered(ctx: _Context, kind: str, pdu: Pdu) -> FuzzCase:
    return _case(ctx, kind, encode(pdu), pdu.command_id, Expect.ANSWERED)


def _wrong_data_coding(ctx: _Context) -> FuzzCase:
    rng = ctx.rng
    dc = rng.choice([1, 2, 3, 4, 5, 6, 7, 9, 0x0A, 0x0E, 0x10, 0x11, 0x18, 0xC0, 0xF0, 0xF4, 0xFF, rng.randint(0, 255)])
    return _answered(ctx, "wrong_data_coding",
                     _deliver(ctx, short_message=rng.randbytes(rng.randint(0, 140)), data_coding=dc))


def _odd_ucs2(ctx: _Context) -> FuzzCase:
    rng = ctx.rng
    text = "HELP".encode("utf-16-be") + rng.randbytes(rng.randrange(1, 131, 2))
    return _answered(ctx, "odd_ucs2", _deliver(ctx, short_message=text, data_coding=c.DC_UCS2))


def _lone_surrogate(ctx: _Context) -> FuzzCase:
    rng = ctx.rng
    units = list("HELP مساعدة".encode("utf-16-be"))
    surrogate = rng.choice([rng.randint(0xD800, 0xDBFF), rng.randint(0xDC00, 0xDFFF)])
    at = rng.randrange(0, len(units) + 1, 2)
    units[at:at] = list(surrogate.to_bytes(2, "big"))
    if rng.random() < 0.3:  # a reversed pair: low surrogate first
        units += list((0xDC00 + rng.randint(0, 0x3FF)).to_bytes(2, "big")) + list((0xD800).to_bytes(2, "big"))
    return _answered(ctx, "lone_surrogate", _deliver(ctx, short_message=bytes(units), data_coding=c.DC_UCS2))


def _empty_text(ctx: _Context) -> FuzzCase:
    rng = ctx.rng
    tlvs = {c.TLV_MESSAGE_PAYLOAD: b""} if rng.random() < 0.3 else None
    return _answered(ctx, "empty_text", _deliver(ctx, short_message=b"", data_coding=rng.choice([0, 3, 8]), tlvs=tlvs))


def _huge_payload(ctx: _Context) -> FuzzCase:
    rng = ctx.rng
    size = rng.randint(9_000, 10_240)
    choice = rng.randrange(3)
    if choice == 0:
        payload, dc = (b"HELP " * (size // 5 + 1))[:size], 0
    elif choice == 1:
        payload, dc = ("مساعدة " * (size // 14 + 1)).encode("utf-16-be")[: size - size % 2], c.DC_UCS2
    else:
        payload, dc = rng.randbytes(size), rng.choice([0, 3, 4, 8])
    return _answered(ctx, "huge_payload",
                     _deliver(ctx, short_message=b"", data_coding=dc, tlvs={c.TLV_MESSAGE_PAYLOAD: payload}))


_CONTROL_TEXTS_GSM = [b"HELP\x00", b"\x00\x00\x00", b"HELP\x1b", b"\x1b\x1b\x1b", b"H\rE\nL\tP", b"\x7f\x7f",
                      b"%s%n%x%d", b"'; DROP TABLE inbound;--", b"\x01\x02\x03\x04\x05\x06\x07\x08"]
_CONTROL_TEXTS_UCS2 = ["HELP\u0000", "\u200f\u200e\u061c", "\ufeffHELP", "\u202eHELP", "\u0640\u0640\u0640",
                       "HELP\u2028\u2029", "\ufffd\ufffe"]


def _control_chars(ctx: _Context) -> FuzzCase:
    rng = ctx.rng
    if rng.random() < 0.5:
        text, dc = rng.choice(_CONTROL_TEXTS_GSM) + bytes(rng.randint(0, 31) for _ in range(rng.randint(0, 10))), 0
    else:
        text, dc = rng.choice(_CONTROL_TEXTS_UCS2).encode("utf-16-be"), c.DC_UCS2
    return _answered(ctx, "control_chars", _deliver(ctx, short_message=text, data_coding=dc))


def _payload_and_short_message(ctx: _Context) -> FuzzCase:
    return _answered(ctx, "payload_and_short_message",
                     _deliver(ctx, short_message=b"HELP", tlvs={c.TLV_MESSAGE_PAYLOAD: b"STATUS 1"}))


def _bad_udh(ctx: _Context) -> FuzzCase:
    rng = ctx.rng
    ref, total, seq = rng.randint(0, 255), rng.choice([0, 1, 2, 255]), rng.choice([0, 1, 2, 3, 255])
    udh = rng.choice([
        bytes([5, 0, 3, ref, total, seq]),  # concatenation IE with odd numbers
        bytes([rng.randint(6, 255), 0, 3, ref, 2, 1]),  # UDH length past the data
        bytes([5, 0, rng.randint(4, 200), ref, 2, 1]),  # IE length past the UDH
        bytes([6, 8, 4, ref, ref, total, seq]),  # 16-bit reference
        bytes([3, 0, 3, ref]),  # truncated IE
        bytes([0]),  # empty UDH
        b"",  # UDHI set, no data at all
    ])
    text = udh + _text_bytes(rng, rng.randint(0, 20))
    return _answered(ctx, "bad_udh", _deliver(ctx, short_message=text, esm_class=c.ESM_CLASS_UDHI,
                                              data_coding=rng.choice([0, 8])))


def _bad_sar(ctx: _Context) -> FuzzCase:
    rng = ctx.rng
    tlvs = {
        c.TLV_SAR_MSG_REF_NUM: rng.choice([b"", b"\x01", b"\x00\x01", b"\x00\x00\x01"]),
        c.TLV_SAR_TOTAL_SEGMENTS: rng.choice([b"", b"\x00", b"\x02", b"\xff", b"\x00\x02"]),
        c.TLV_SAR_SEGMENT_SEQNUM: rng.choice([b"", b"\x00", b"\x01", b"\x03", b"\xff"]),
    }
    for tag in list(tlvs):
        if rng.random() < 0.25:
            del tlvs[tag]
    return _answered(ctx, "bad_sar", _deliver(ctx, short_message=_text_bytes(rng, 10), tlvs=tlvs))


def _bad_address(ctx: _Context) -> FuzzCase:
    rng = ctx.rng
    source = rng.choice(["", "+", "MUSCAT", "9689 123 4567", "00968912345678", "1" * 20, "968\u00e9123",
                         "+96891234567", "91234567", _source(rng)])
    dest = rng.choice(["", ctx.short_code, "0", "9" * 20, "ABCDE", ctx.short_code + " "])
    return _answered(ctx, "bad_address", _deliver(ctx, source=source, dest=dest))


def _receipt_garbage(ctx: _Context) -> FuzzCase:
    rng = ctx.rng
    text = rng.choice([b"id: sub: dlvrd: stat:", b"id:" + rng.randbytes(10) + b" stat:DELIVRD",
                       b"id:123 stat:XXXXXXX err:9999", b"", _text_bytes(rng, 80)])
    tlvs: dict[int, bytes] = {}
    if rng.random() < 0.5:
        tlvs[c.TLV_RECEIPTED_MESSAGE_ID] = rng.choice([b"", b"\x00", b"abc", rng.randbytes(70)])
    if rng.random() < 0.5:
        tlvs[c.TLV_MESSAGE_STATE] = rng.choice([b"", b"\x00", b"\x09", b"\xff", b"\x00\x02"])
    return _answered(ctx, "receipt_garbage",
                     _deliver(ctx, short_message=text, esm_class=c.ESM_CLASS_DELIVERY_RECEIPT, tlvs=tlvs))


def _ussd_tlvs(ctx: _Context) -> FuzzCase:
    rng = ctx.rng
    tlvs = {c.TLV_USSD_SERVICE_OP: rng.randbytes(rng.choice([0, 1, 1, 1, 2, 3]))}
    if rng.random() < 0.6:
        tlvs[c.TLV_ITS_SESSION_INFO] = rng.randbytes(rng.choice([0, 1, 2, 2, 3, 4]))
    if rng.random() < 0.3:
        tlvs[c.TLV_USER_MESSAGE_REFERENCE] = rng.randbytes(rng.choice([0, 1, 2, 4]))
    return _answered(ctx, "ussd_tlvs", _deliver(ctx, short_message=rng.choice([b"*100#", b"1", b"", b"HELP"]),
                                                tlvs=tlvs))


def _unknown_tlvs(ctx: _Context) -> FuzzCase:
    rng = ctx.rng
    pdu = _deliver(ctx, short_message=rng.choice([b"HELP", b""]))
    extra = b"".join(
        _TLV.pack(tag, len(value)) + value
        for tag, value in ((rng.randint(0, 0xFFFF), rng.randbytes(rng.randint(0, 50))) for _ in range(rng.randint(1, 30)))
    )
    raw = encode(pdu)
    return _case(ctx, "unknown_tlvs", _raw(c.DELIVER_SM, ctx.sequence, raw[16:] + extra), c.DELIVER_SM,
                 Expect.ANSWERED)


def _data_sm(ctx: _Context) -> FuzzCase:
    rng = ctx.rng
    tlvs = {c.TLV_MESSAGE_PAYLOAD: rng.choice([b"HELP", b"", rng.randbytes(rng.randint(1, 200))])}
    return _answered(ctx, "data_sm", _deliver(ctx, command_id=c.DATA_SM, tlvs=tlvs,
                                              data_coding=rng.choice([0, 3, 8])))


def _sequence_edge(ctx: _Context) -> FuzzCase:
    """A well-formed MO with a sequence number at or past the spec's range (0, 0x7FFFFFFF, above)."""
    sequence = ctx.rng.choice([0, c.MAX_SEQUENCE, 0x80000000, 0xFFFFFFFF])
    pdu = _deliver(ctx)
    pdu.sequence = sequence
    return _case(ctx, "sequence_edge", encode(pdu), c.DELIVER_SM, Expect.ANY_ANSWER, sequence=sequence)


# Requests an ESME does not serve, and PDUs that take no answer.

def _unserved_request(ctx: _Context) -> FuzzCase:
    rng = ctx.rng
    command_id = rng.choice([c.SUBMIT_SM, c.QUERY_SM, c.BIND_TRANSCEIVER, c.BIND_RECEIVER, c.REPLACE_SM,
                             c.CANCEL_SM, c.SUBMIT_MULTI])
    if command_id == c.SUBMIT_SM:
        pdu = Pdu(command_id, ctx.sequence, 0, {"source_addr": ctx.short_code, "destination_addr": _source(rng),
                                                "short_message": b"hello"})
    elif command_id == c.QUERY_SM:
        pdu = Pdu(command_id, ctx.sequence, 0, {"message_id": "1234", "source_addr": ctx.short_code})
    elif command_id in c.BIND_COMMANDS:
        pdu = Pdu(command_id, ctx.sequence, 0, {"system_id": "smsc", "password": "x"})
    else:
        pdu = Pdu(command_id, ctx.sequence, 0, {"body": rng.randbytes(rng.randint(0, 40))})
    return _case(ctx, "unserved_request", encode(pdu), command_id, Expect.ANSWERED, c.ESME_RINVCMDID)


def _enquire_link(ctx: _Context) -> FuzzCase:
    return _case(ctx, "enquire_link", _raw(c.ENQUIRE_LINK, ctx.sequence, b""), c.ENQUIRE_LINK, Expect.ANSWERED,
                 c.ESME_ROK)


def _stray_response(ctx: _Context) -> FuzzCase:
    rng = ctx.rng
    sequence = STRAY_SEQUENCE_BASE + ctx.sequence
    command_id = rng.choice([c.SUBMIT_SM_RESP, c.DELIVER_SM_RESP, c.ENQUIRE_LINK_RESP, c.GENERIC_NACK,
                             c.QUERY_SM_RESP, c.BIND_TRANSCEIVER_RESP, c.DATA_SM_RESP, c.UNBIND_RESP])
    body = {
        c.SUBMIT_SM_RESP: b"1a2b3c\x00", c.DELIVER_SM_RESP: b"\x00", c.DATA_SM_RESP: b"\x00",
        c.QUERY_SM_RESP: b"1\x00\x00\x02\x00", c.BIND_TRANSCEIVER_RESP: b"SMSC\x00",
    }.get(command_id, b"")
    if rng.random() < 0.3:
        body = rng.randbytes(rng.randint(0, 30))
    status = rng.choice([0, 0, c.ESME_RSYSERR, c.ESME_RTHROTTLED, rng.randint(0, 0xFFFFFFFF)])
    return _case(ctx, "stray_response", _raw(command_id, sequence, body, status=status), command_id, Expect.SILENT,
                 sequence=sequence)


def _alert_notification(ctx: _Context) -> FuzzCase:
    pdu = Pdu(c.ALERT_NOTIFICATION, ctx.sequence, 0, {"source_addr": _source(ctx.rng), "esme_addr": "mm_smsgw"})
    return _case(ctx, "alert_notification", encode(pdu), c.ALERT_NOTIFICATION, Expect.SILENT)


Generator = Callable[[_Context], FuzzCase]

#: kind → (relative weight, generator). Cases that end the link are rare: each costs a reconnect.
KINDS: dict[str, tuple[float, Generator]] = {
    "length_below_header": (0.3, _length_below_header),
    "length_huge": (0.3, _length_huge),
    "unbind": (0.1, _unbind),
    "unknown_command": (6, _unknown_command),
    "outbind": (1, _outbind),
    "truncated_body": (8, _truncated_body),
    "truncated_tlv": (6, _truncated_tlv),
    "missing_nul": (4, _missing_nul),
    "overlong_cstring": (4, _overlong_cstring),
    "sm_length_overrun": (4, _sm_length_overrun),
    "sm_length_underrun": (3, _sm_length_underrun),
    "random_body": (6, _random_body),
    "bit_flip": (8, _bit_flip),
    "trailing_garbage": (3, _trailing_garbage),
    "wrong_data_coding": (5, _wrong_data_coding),
    "odd_ucs2": (4, _odd_ucs2),
    "lone_surrogate": (4, _lone_surrogate),
    "empty_text": (3, _empty_text),
    "huge_payload": (1, _huge_payload),
    "control_chars": (4, _control_chars),
    "payload_and_short_message": (2, _payload_and_short_message),
    "bad_udh": (4, _bad_udh),
    "bad_sar": (3, _bad_sar),
    "bad_address": (3, _bad_address),
    "receipt_garbage": (3, _receipt_garbage),
    "ussd_tlvs": (2, _ussd_tlvs),
    "unknown_tlvs": (3, _unknown_tlvs),
    "data_sm": (2, _data_sm),
    "sequence_edge": (1, _sequence_edge),
    "unserved_request": (2, _unserved_request),
    "enquire_link": (1, _enquire_link),
    "stray_response": (3, _stray_response),
    "alert_notification": (1, _alert_notification),
}
_KIND_NAMES = list(KINDS)
_KIND_WEIGHTS = [KINDS[k][0] for k in _KIND_NAMES]


def generate_case(rng: random.Random, sequence: int, *, mo_id_tlv: int, short_code: str = "90091",
                  kind: str | None = None) -> FuzzCase:
    """One case of `kind` (default: drawn by weight) written with `sequence`."""
    if kind is None:
        kind = rng.choices(_KIND_NAMES, _KIND_WEIGHTS)[0]
    return KINDS[kind][1](_Context(rng, sequence, mo_id_tlv, short_code))


# -- the runner -------------------------------------------------------------------------------


@dataclass
class FuzzReport:
    cases: int = 0
    by_kind: Counter[str] = field(default_factory=Counter)
    #: How the ESME answered, e.g. "generic_nack ESME_RINVMSGLEN", "deliver_sm_resp ESME_ROK",
    #: "silent" (rightly no answer), "link dropped before an answer".
    answers: Counter[str] = field(default_factory=Counter)
    violations: int = 0
    violation_examples: list[dict[str, Any]] = field(default_factory=list)
    #: Links the ESME dropped as it should (bad length, unbind).
    links_closed: int = 0
    #: Links dropped while answers were owed: how an exception in the ESME's data path looks.
    unexpected_disconnects: int = 0
    wellformed_sent: int = 0
    wellformed_acked: int = 0
    wellformed_answered: int = 0
    wellformed_lost: int = 0
    #: Well-formed MOs written right behind garbage that made the ESME drop the link.
    wellformed_behind_link_garbage: int = 0
    elapsed_s: float = 0.0
    finished: str = ""

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["by_kind"] = dict(sorted(self.by_kind.items()))
        out["answers"] = dict(sorted(self.answers.items()))
        return out


@dataclass(eq=False)
class _Wellformed:
    smsc: Smsc
    msisdn: str
    mo_id: str
    answered: bool = False


class _Signal:
    """Wake whoever waits (a Deferred) when something changed; waits are bounded by a poll."""

    def __init__(self) -> None:
        self._waiters: list[Deferred[None]] = []

    def wait(self, clock: IReactorTime, timeout: float) -> Deferred[None]:
        d: Deferred[None] = Deferred()
        self._waiters.append(d)
        call = clock.callLater(timeout, self._expire, d)
        d.addBoth(lambda result: (call.active() and call.cancel(), result)[1])
        return d

    def _expire(self, d: Deferred[None]) -> None:
        if d in self._waiters:
            self._waiters.remove(d)
        if not d.called:
            d.callback(None)

    def fire(self) -> None:
        waiters, self._waiters = self._waiters, []
        for d in waiters:
            if not d.called:
                d.callback(None)


class FuzzRunner:
    """Runs `cases` fuzz cases spread over `smscs`, then waits for the well-formed MOs' replies.

    `depth`: cases awaiting an answer per link before the runner waits (the pipeline).
    `wellformed_every`: one well-formed MO (HELP from a fresh MSISDN) after every n-th case.
    `cover_all_kinds`: each carrier's first cases are one of every kind, in KINDS order, so a short
    run still exercises the rare ones (those that end the link); the rest are drawn by weight.
    """

    def __init__(
        self,
        smscs: Sequence[Smsc],
        *,
        cases: int,
        seed: int = 0,
        wellformed_every: int = 10,
        depth: int = 64,
        answer_timeout_s: float = 10.0,
        rebind_timeout_s: float = 30.0,
        settle_timeout_s: float = 60.0,
        msisdn_base: int = 96897000000,
        short_code: str = "90091",
        wellformed_text: str = "HELP",
        cover_all_kinds: bool = False,
        clock: IReactorTime | None = None,
    ) -> None:
        if cases < 0 or wellformed_every < 1 or depth < 1:
            raise ValueError("cases >= 0, wellformed_every >= 1 and depth >= 1 are required")
        if not smscs:
            raise ValueError("at least one SMSC to fuzz is required")
        if clock is None:
            from twisted.internet import reactor

            clock = reactor  # type: ignore[assignment]
        self.smscs = list(smscs)
        self.cases = cases
        self.seed = seed
        self.wellformed_every = wellformed_every
        self.depth = depth
        self.answer_timeout_s = answer_timeout_s
        self.rebind_timeout_s = rebind_timeout_s
        self.settle_timeout_s = settle_timeout_s
        self.short_code = short_code
        self.wellformed_text = wellformed_text
        self.cover_all_kinds = cover_all_kinds
        self.clock: IReactorTime = clock  # type: ignore[assignment]
        self.report = FuzzReport()
        self._next_msisdn = msisdn_base
        self._wellformed: dict[tuple[str, str], _Wellformed] = {}
        self._changed = _Signal()
        #: Cases written and not yet judged: (session, sequence) → (case, deadline).
        self._owed: dict[tuple[int, int], tuple[FuzzCase, float]] = {}
        self._owed_per_session: Counter[int] = Counter()

    async def run(self) -> FuzzReport:
        start = self.clock.seconds()
        unsubscribes = [smsc.subscribe_handset(lambda m, s=smsc: self._on_handset(s, m)) for smsc in self.smscs]
        reaper = task.LoopingCall(self._reap_overdue)
        reaper.clock = self.clock
        reaper.start(1.0, now=False)
        try:
            share, extra = divmod(self.cases, len(self.smscs))
            runs = [
                Deferred.fromCoroutine(self._run_carrier(smsc, share + (1 if i < extra else 0),
                                                         random.Random(f"{self.seed}:{smsc.name}")))
                for i, smsc in enumerate(self.smscs)
            ]
            outcomes = []
            for d in runs:
                outcomes.append(await d)
            self.report.finished = "ok" if all(o == "ok" for o in outcomes) else ",".join(sorted(set(outcomes)))
            await self._settle()
        finally:
            if reaper.running:
                reaper.stop()
            for unsubscribe in unsubscribes:
                unsubscribe()
        report = self.report
        for item in self._wellformed.values():
            mo = item.smsc.mo(item.mo_id)
            report.wellformed_acked += mo.acked
            report.wellformed_answered += item.answered
            report.wellformed_lost += not (mo.acked and item.answered)
        report.elapsed_s = round(self.clock.seconds() - start, 3)
        log.info("fuzz_finished", cases=report.cases, violations=report.violations,
                 unexpected_disconnects=report.unexpected_disconnects, wellformed_lost=report.wellformed_lost,
                 elapsed_s=report.elapsed_s)
        return report

    # -- per carrier --------------------------------------------------------------------------

    async def _run_carrier(self, smsc: Smsc, count: int, rng: random.Random) -> str:
        first_kinds = list(KINDS) if self.cover_all_kinds else []
        for n in range(1, count + 1):
            session = await self._receiver(smsc)
            if session is None:
                self._violation(smsc, None, "no receiver bound within the rebind timeout; carrier abandoned")
                return "no_rebind"
            case = generate_case(rng, session.next_sequence(), mo_id_tlv=smsc.profile.mo_id_tlv,
                                 short_code=self.short_code, kind=first_kinds[n - 1] if n <= len(first_kinds) else None)
            if case.ends_link:
                # Alone on the link, so "dropped while answers were owed" still means a crash.
                await self._drained(session)
                if session.closed.called:
                    session = await self._receiver(smsc)
                    if session is None:
                        return "no_rebind"
                self._write(smsc, session, case)
                self._inject_wellformed(smsc)  # queued right behind the garbage
                self.report.wellformed_behind_link_garbage += 1
                await self._closed(smsc, session, case)
                continue
            while self._owed_per_session[id(session)] >= self.depth and not session.closed.called:
                await self._changed.wait(self.clock, 0.5)
            if session.closed.called:
                continue
            if case.sequence in session.raw_waiters:  # an edge sequence already in use on this link
                case = generate_case(rng, session.next_sequence(), mo_id_tlv=smsc.profile.mo_id_tlv,
                                     short_code=self.short_code, kind="enquire_link")
            self._write(smsc, session, case)
            if n % self.wellformed_every == 0:
                self._inject_wellformed(smsc)
        return "ok"

    async def _receiver(self, smsc: Smsc) -> SmscProtocol | None:
        deadline = self.clock.seconds() + self.rebind_timeout_s
        while True:
            for session in smsc.sessions:
                if session.can_receive and not session.closed.called:
                    return session
            if self.clock.seconds() >= deadline:
                return None
            await task.deferLater(self.clock, 0.01, lambda: None)

    async def _drained(self, session: SmscProtocol) -> None:
        deadline = self.clock.seconds() + self.answer_timeout_s
        # Only answers owed count: deliveries in flight (receipts, MOs) are redelivered after the link
        # goes, and an answer to a PDU that takes none would have been written before the link went.
        while self._answers_owed(session) and not session.closed.called:
            if self.clock.seconds() >= deadline:
                return
            await self._changed.wait(self.clock, 0.1)

    def _answers_owed(self, session: SmscProtocol) -> bool:
        if not self._owed_per_session[id(session)]:
            return False
        return any(key[0] == id(session) and case.expect is not Expect.SILENT
                   for key, (case, _) in self._owed.items())

    async def _closed(self, smsc: Smsc, session: SmscProtocol, case: FuzzCase) -> None:
        deadline = self.clock.seconds() + self.answer_timeout_s
        while not session.closed.called:
            if self.clock.seconds() >= deadline:
                self._violation(smsc, case, "link kept open after a PDU that must end it")
                session.abort()
                return
            await self._changed.wait(self.clock, 0.1)
        self.report.links_closed += 1

    def _write(self, smsc: Smsc, session: SmscProtocol, case: FuzzCase) -> None:
        key = (id(session), case.sequence)
        self.report.cases += 1
        self.report.by_kind[case.kind] += 1
        self._owed[key] = (case, self.clock.seconds() + self.answer_timeout_s)
        self._owed_per_session[id(session)] += 1
        session.send_raw_expecting(case.raw, case.sequence,
                                   lambda answer_id, status: self._answered(smsc, session, key, answer_id, status))
        if case.expect is Expect.SILENT:
            # Rightly unanswered once an enquire_link-sized delay has passed without an answer.
            self.clock.callLater(1.0, self._silence_kept, smsc, session, key)

    def _answered(self, smsc: Smsc, session: SmscProtocol, key: tuple[int, int], answer_id: int | None,
                  status: int | None) -> None:
        entry = self._owed.pop(key, None)
        if entry is None:
            return
        self._owed_per_session[key[0]] -= 1
        case = entry[0]
        problem = judge(case, answer_id, status)
        if answer_id is None:
            self.report.answers["silent" if case.expect is Expect.SILENT else "link dropped before an answer"] += 1
            if problem is not None:
                self.report.unexpected_disconnects += 1
        else:
            self.report.answers[_answer_name(answer_id, status)] += 1
        if problem is not None:
            self._violation(smsc, case, problem)
        self._changed.fire()

    def _silence_kept(self, smsc: Smsc, session: SmscProtocol, key: tuple[int, int]) -> None:
        if key in self._owed:
            session.raw_waiters.pop(key[1], None)
            self._answered(smsc, session, key, None, None)

    def _reap_overdue(self) -> None:
        now = self.clock.seconds()
        overdue = [(key, case) for key, (case, deadline) in self._owed.items() if deadline <= now]
        for key, case in overdue:
            del self._owed[key]
            self._owed_per_session[key[0]] -= 1
            self.report.answers["no answer in time"] += 1
            self._violation(None, case, f"no answer within {self.answer_timeout_s:g} s")
        if overdue:
            self._changed.fire()

    def _violation(self, smsc: Smsc | None, case: FuzzCase | None, problem: str) -> None:
        self.report.violations += 1
        if len(self.report.violation_examples) < 25:
            example: dict[str, Any] = {"problem": problem, "carrier": smsc.name if smsc else None}
            if case is not None:
                example.update(kind=case.kind, expect=case.expect.value, sequence=case.sequence,
                               raw_hex=case.raw[:96].hex() + ("..." if len(case.raw) > 96 else ""))
            self.report.violation_examples.append(example)
        log.warning("fuzz_violation", carrier=smsc.name if smsc else None,
                    kind=case.kind if case else None, problem=problem)

    # -- well-formed MOs ------------------------------------------------------------------------

    def _inject_wellformed(self, smsc: Smsc) -> None:
        msisdn = str(self._next_msisdn)
        self._next_msisdn += 1
        mo_id = smsc.inject_mo(msisdn, self.short_code, self.wellformed_text)
        self._wellformed[(smsc.name, msisdn)] = _Wellformed(smsc, msisdn, mo_id)
        self.report.wellformed_sent += 1

    def _on_handset(self, smsc: Smsc, message: HandsetMessage) -> None:
        item = self._wellformed.get((smsc.name, message.msisdn))
        if item is not None and not item.answered:
            item.answered = True
            self._changed.fire()

    async def _settle(self) -> None:
        """Wait (bounded) until every well-formed MO is acknowledged and answered."""
        deadline = self.clock.seconds() + self.settle_timeout_s
        while self.clock.seconds() < deadline:
            if self._owed:
                await self._changed.wait(self.clock, 0.2)
                continue
            if all(item.answered and item.smsc.mo(item.mo_id).acked for item in self._wellformed.values()):
                return
            await self._changed.wait(self.clock, 0.2)
