"""Concatenation info of mobile-originated parts and joining them (pure: no I/O, no Twisted).

Bodies are opaque bytes here: unpacked GSM septets, Latin-1 octets or UTF-16BE, whatever
the part's data_coding says. Callers join the raw bodies first and decode once, so a
character a careless sender split across two parts (a surrogate pair, an escape pair)
still comes out whole.

Contract of extract_concat:
  * no concatenation info at all             -> None (a plain message; use message_body)
  * a complete "1 of 1" concatenation        -> None (same: nothing to reassemble)
  * concatenation info that cannot be right  -> MalformedConcat (a ValueError)
The gateway should answer a MalformedConcat with a permanent error status so the SMSC
does not redeliver a part that can never be placed; guessing would risk gluing a
stranger's fragment into someone else's message.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

__all__ = [
    "ConcatInfo",
    "MalformedConcat",
    "assemble",
    "assemble_partial",
    "extract_concat",
    "message_body",
]

ESM_CLASS_UDHI = 0x40
TLV_SAR_MSG_REF_NUM = 0x020C
TLV_SAR_TOTAL_SEGMENTS = 0x020E
TLV_SAR_SEGMENT_SEQNUM = 0x020F
TLV_MESSAGE_PAYLOAD = 0x0424

_IE_CONCAT_8BIT = 0x00
_IE_CONCAT_16BIT = 0x08


class MalformedConcat(ValueError):
    """The part claims to be concatenated (or has a UDH) but the header cannot be trusted."""


@dataclass(frozen=True, slots=True)
class ConcatInfo:
    """ref is 0..255 for an 8-bit UDH ref, 0..65535 for a 16-bit ref or SAR."""

    ref: int
    total: int
    seq: int
    body: bytes


def _user_data(short_message: bytes, tlvs: Mapping[int, bytes]) -> bytes:
    # With message_payload the SMSC leaves short_message empty and the UDH sits in the payload.
    if short_message:
        return bytes(short_message)
    return bytes(tlvs.get(TLV_MESSAGE_PAYLOAD, b""))


def _parse_udh(data: bytes) -> tuple[tuple[int, int, int] | None, bytes]:
    """((ref, total, seq) or None, body after the UDH)."""
    if not data:
        raise MalformedConcat("UDHI set but the message is empty")
    udhl = data[0]
    end = 1 + udhl
    if end > len(data):
        raise MalformedConcat(f"UDH length {udhl} runs past the {len(data)}-octet message")
    concat: tuple[int, int, int] | None = None
    i = 1
    while i < end:
        if i + 2 > end:
            raise MalformedConcat("truncated information element in UDH")
        iei, iel = data[i], data[i + 1]
        if i + 2 + iel > end:
            raise MalformedConcat(f"UDH element 0x{iei:02X} runs past the header")
        value = data[i + 2 : i + 2 + iel]
        if iei == _IE_CONCAT_8BIT:
            if iel != 3:
                raise MalformedConcat(f"8-bit concatenation element of length {iel}")
            concat = (value[0], value[1], value[2])
        elif iei == _IE_CONCAT_16BIT:
            if iel != 4:
                raise MalformedConcat(f"16-bit concatenation element of length {iel}")
            concat = (int.from_bytes(value[:2], "big"), value[2], value[3])
        # Other elements (port addressing, text formatting...) are skipped; when an element
        # repeats, 3GPP 23.040 says the last occurrence wins, which the loop gives for free.
        i += 2 + iel
    return concat, data[end:]


def _sar(tlvs: Mapping[int, bytes]) -> tuple[int, int, int] | None:
    present = [tag in tlvs for tag in (TLV_SAR_MSG_REF_NUM, TLV_SAR_TOTAL_SEGMENTS, TLV_SAR_SEGMENT_SEQNUM)]
    if not any(present):
        return None
    if not all(present):
        raise MalformedConcat("sar_msg_ref_num, sar_total_segments and sar_segment_seqnum must come together")
    ref_raw = tlvs[TLV_SAR_MSG_REF_NUM]
    total_raw = tlvs[TLV_SAR_TOTAL_SEGMENTS]
    seq_raw = tlvs[TLV_SAR_SEGMENT_SEQNUM]
    if not (1 <= len(ref_raw) <= 2) or len(total_raw) != 1 or len(seq_raw) != 1:
        raise MalformedConcat("SAR TLV of the wrong length")
    return int.from_bytes(ref_raw, "big"), total_raw[0], seq_raw[0]


def _check(ref: int, total: int, seq: int) -> None:
    if total == 0 or seq == 0 or seq > total:
        raise MalformedConcat(f"part {seq} of {total} (ref {ref}) is impossible")


def message_body(short_message: bytes, esm_class: int, tlvs: Mapping[int, bytes]) -> bytes:
    """User data without any UDH: the text bytes of a message extract_concat returned None for.

    Raises MalformedConcat when the UDHI bit is set and the header is broken.
    """
    data = _user_data(short_message, tlvs)
    if esm_class & ESM_CLASS_UDHI:
        return _parse_udh(data)[1]
    return data


def extract_concat(short_message: bytes, esm_class: int, tlvs: Mapping[int, bytes]) -> ConcatInfo | None:
    """Where this part belongs: the UDH concatenation element first, else the SAR TLVs.

    See the module docstring for when None is returned and when MalformedConcat is raised.
    """
    data = _user_data(short_message, tlvs)
    body = data
    concat: tuple[int, int, int] | None = None
    if esm_class & ESM_CLASS_UDHI:
        concat, body = _parse_udh(data)
    if concat is None:
        concat = _sar(tlvs)
    if concat is None:
        return None
    ref, total, seq = concat
    _check(ref, total, seq)
    if total == 1:
        return None
    return ConcatInfo(ref=ref, total=total, seq=seq, body=body)


def assemble(parts: Mapping[int, bytes], total: int) -> bytes | None:
    """Bodies joined in seq order once every part 1..total is there, else None.

    A Mapping keyed by seq cannot hold duplicates: the caller decides which copy of a
    redelivered part to keep (they should be identical).
    """
    if total < 1 or any(seq not in parts for seq in range(1, total + 1)):
        return None
    return b"".join(parts[seq] for seq in range(1, total + 1))


def assemble_partial(parts: Mapping[int, bytes], total: int, gap: bytes) -> bytes:
    """Best effort after the reassembly timeout: `gap` marks each missing part.

    gap must be in the parts' own encoding (e.g. UTF-16BE for UCS2 parts) so the joined
    bytes still decode. Parts numbered beyond total cannot come from a validated header,
    but if present they are appended rather than dropped: never lose a part.
    """
    joined = [parts.get(seq, gap) for seq in range(1, total + 1)]
    joined.extend(parts[seq] for seq in sorted(k for k in parts if not 1 <= k <= total))
    return b"".join(joined)
