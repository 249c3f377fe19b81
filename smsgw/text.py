"""Text codecs and long-message splitting for SMPP v3.4 (pure: no I/O, no Twisted).

SMPP carries GSM 03.38 text *unpacked*: one septet per octet, so a 160-character
message is a 160-octet short_message and the SMSC packs it for the air interface.

data_coding 0 always travels the air as GSM 7-bit, whatever charset the SMSC expects
from us over SMPP (its "default alphabet": GSM 03.38, Latin-1 or ASCII). So data_coding 0
is chosen only for text that survives both: it fits the SMSC charset *and* the GSM
alphabet. A Latin-1 letter GSM lacks (ç, ê) would be lost in the SMSC's conversion, so
such text goes as UCS2. For the same reason dc 0 sizes are counted in on-air septets,
where {}[]~^|\€ cost two even when the SMSC charset spends one octet on them:

    coding                       single part    per part of a long message
    dc 0 (any default alphabet)  160 septets    153 septets (the UDH costs 7)
    UCS2 (dc 8, UTF-16BE)        140 octets     134 octets (67 UTF-16 units)

Splitting works on whole characters, so a GSM escape pair (0x1B + code) and a
UTF-16 surrogate pair are never cut in two.
"""

from __future__ import annotations

import re

from dataclasses import dataclass

__all__ = [
    "ALPHABETS",
    "DC_DEFAULT",
    "DC_IA5",
    "DC_LATIN1",
    "DC_BINARY",
    "DC_UCS2",
    "MAX_PARTS",
    "MessagePart",
    "count_parts",
    "decode_short_message",
    "encode_as",
    "encode_text",
    "gsm_decode",
    "gsm_encode",
    "gsm_septets",
    "is_gsm",
    "split_text",
]

# Kept local (same values as the SMPP constants) so this module stays importable on its own.
DC_DEFAULT = 0x00
DC_IA5 = 0x01
DC_LATIN1 = 0x03
DC_BINARY = 0x04
DC_UCS2 = 0x08

ESM_CLASS_UDHI = 0x40
TLV_SAR_MSG_REF_NUM = 0x020C
TLV_SAR_TOTAL_SEGMENTS = 0x020E
TLV_SAR_SEGMENT_SEQNUM = 0x020F
TLV_MESSAGE_PAYLOAD = 0x0424

#: The values a carrier profile may give for the SMSC default alphabet (data_coding 0).
ALPHABETS = frozenset({"gsm7", "latin1", "ascii"})
METHODS = frozenset({"udh", "sar", "payload"})

#: Both the UDH and the SAR sequence number are one octet.
MAX_PARTS = 255
#: message_payload has a 16-bit length field.
MAX_PAYLOAD_OCTETS = 0xFFFF

_SINGLE_SEPTETS = 160
_PART_SEPTETS = 153
_SINGLE_OCTETS_UCS2 = 140
_PART_OCTETS_UCS2 = 134

_ESC = 0x1B
_REPLACEMENT = "\ufffd"

# GSM 03.38 default alphabet, indexed by septet value; 0x1B is the escape, never a character.
_GSM_BASIC = (
    "@£$¥èéùìòÇ\nØø\rÅå"
    "Δ_ΦΓΛΩΠΨΣΘΞ\x1bÆæßÉ"
    " !\"#¤%&'()*+,-./"
    "0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNO"
    "PQRSTUVWXYZÄÖÑÜ§"
    "¿abcdefghijklmno"
    "pqrstuvwxyzäöñüà"
)

_GSM_EXTENSION = {
    0x0A: "\f",
    0x14: "^",
    0x28: "{",
    0x29: "}",
    0x2F: "\\",
    0x3C: "[",
    0x3D: "~",
    0x3E: "]",
    0x40: "|",
    0x65: "€",
}

_GSM_ENCODE: dict[str, bytes] = {ch: bytes([i]) for i, ch in enumerate(_GSM_BASIC) if i != _ESC}
_GSM_ENCODE.update({ch: bytes([_ESC, code]) for code, ch in _GSM_EXTENSION.items()})
#: The same table for str.translate: each character to its septet(s) as code points 0..127, so
#: a GSM text is encoded by one C-level pass and a latin-1 encode (hot path: every reply).
_GSM_TRANSLATE: dict[int, str] = {ord(ch): code.decode("latin-1") for ch, code in _GSM_ENCODE.items()}


#: Every character of the GSM default alphabet and its extension table, as a regex class:
#: one C-level scan per message instead of a Python loop per character (hot path).
_GSM_ONLY = re.compile("[" + "".join(re.escape(ch) for ch in _GSM_ENCODE) + "]*")


def is_gsm(text: str) -> bool:
    """True when every character has a GSM 03.38 default or extension code."""
    return _GSM_ONLY.fullmatch(text) is not None


def gsm_encode(text: str) -> bytes:
    """Unpacked GSM septets, one per octet, extension characters as 0x1B + code.

    Raises ValueError naming the first character the alphabet lacks.
    """
    try:
        return b"".join([_GSM_ENCODE[ch] for ch in text])
    except KeyError as exc:
        ch = exc.args[0]
        raise ValueError(f"not in the GSM 03.38 alphabet: {ch!r} (U+{ord(ch):04X})") from None


def gsm_septets(text: str) -> int:
    """Length in septets (extension characters count two). Raises ValueError like gsm_encode."""
    return len(gsm_encode(text))


def gsm_decode(data: bytes) -> str:
    """Decode unpacked GSM septets; never raises.

    Following GSM 03.38's own advice for receivers: an unknown extension code shows the
    basic-table character, a dangling escape or an escape-escape shows a space. Octets
    with the top bit set cannot be septets and become U+FFFD.
    """
    out: list[str] = []
    i, n = 0, len(data)
    while i < n:
        b = data[i]
        if b == _ESC:
            if i + 1 >= n:
                out.append(" ")
                break
            code = data[i + 1]
            i += 2
            if code == _ESC:
                out.append(" ")
            elif code in _GSM_EXTENSION:
                out.append(_GSM_EXTENSION[code])
            elif code < 0x80:
                out.append(_GSM_BASIC[code])
            else:
                out.append(_REPLACEMENT)
            continue
        out.append(_GSM_BASIC[b] if b < 0x80 else _REPLACEMENT)
        i += 1
    return "".join(out)


def _check_alphabet(default_alphabet: str) -> None:
    if default_alphabet not in ALPHABETS:
        raise ValueError(f"unknown default alphabet {default_alphabet!r}; expected one of {sorted(ALPHABETS)}")


def _fits_default(text: str, default_alphabet: str) -> bool:
    if not is_gsm(text):
        return False
    if default_alphabet == "ascii":
        return text.isascii()
    if default_alphabet == "latin1":
        return all(ord(ch) < 0x100 for ch in text)
    return True


def _ucs2_char(ch: str) -> bytes:
    # A lone surrogate in a Python str cannot be sent as UTF-16; show U+FFFD rather than fail.
    if 0xD800 <= ord(ch) <= 0xDFFF:
        ch = _REPLACEMENT
    return ch.encode("utf-16-be")


# One character as (payload octets, cost against the part limit).
_Chunk = tuple[bytes, int]


def _char_chunks(text: str, default_alphabet: str) -> tuple[int, list[_Chunk]]:
    """data_coding and each character's encoding, so splitting never cuts a character."""
    _check_alphabet(default_alphabet)
    if _fits_default(text, default_alphabet):
        if default_alphabet == "gsm7":
            return DC_DEFAULT, [(_GSM_ENCODE[ch], len(_GSM_ENCODE[ch])) for ch in text]
        return DC_DEFAULT, [(bytes([ord(ch)]), len(_GSM_ENCODE[ch])) for ch in text]
    chunks = [_ucs2_char(ch) for ch in text]
    return DC_UCS2, [(c, len(c)) for c in chunks]


def encode_text(text: str, default_alphabet: str) -> tuple[int, bytes]:
    """(data_coding, payload) for text sent as one unit.

    data_coding 0 when the text fits both the carrier's SMSC charset and the GSM alphabet
    (see the module docstring), else UCS2. Raises ValueError for an unknown alphabet.
    """
    data_coding, chunks = _char_chunks(text, default_alphabet)
    return data_coding, b"".join(c for c, _ in chunks)


# How the payload of each data_coding is decoded. SMPP's own table wins for 0x00-0x0F;
# above that the GSM 03.38 coding groups apply.
_SMPP_DC_CODECS = {
    0x01: "ascii",
    0x02: "latin-1",  # octet unspecified (8-bit binary)
    0x03: "latin-1",
    0x04: "latin-1",  # octet unspecified (8-bit binary)
    0x06: "iso8859-5",
    0x07: "iso8859-8",
    0x08: "ucs2",
}
_GROUP_ALPHABET_BITS = {0b00: "gsm7", 0b01: "latin-1", 0b10: "ucs2"}


def _codec_for(data_coding: int, default_alphabet: str) -> str:
    if data_coding == DC_DEFAULT:
        return default_alphabet
    if data_coding < 0x10:
        return _SMPP_DC_CODECS.get(data_coding, default_alphabet)
    if data_coding < 0x80:
        # General data coding and automatic-deletion groups: bits 3..2 name the alphabet.
        # Compressed text (bit 5) is not supported by handsets in practice; decode best effort.
        return _GROUP_ALPHABET_BITS.get((data_coding >> 2) & 0b11, default_alphabet)
    if 0xC0 <= data_coding <= 0xDF:
        return "gsm7"  # message waiting indication, default alphabet
    if 0xE0 <= data_coding <= 0xEF:
        return "ucs2"  # message waiting indication, UCS2
    if data_coding >= 0xF0:
        return "latin-1" if data_coding & 0x04 else "gsm7"
    return default_alphabet


def _decode_ucs2(payload: bytes) -> str:
    # errors="replace" turns lone surrogates into U+FFFD and a trailing odd octet into one U+FFFD.
    return payload.decode("utf-16-be", errors="replace")


def decode_short_message(payload: bytes, data_coding: int, default_alphabet: str) -> str:
    """Text of a short_message or message_payload; never raises.

    Undecodable input yields U+FFFD in place of the bad octets; an unrecognised
    default_alphabet or data_coding falls back to GSM or the carrier default, because
    losing a citizen's message to a config typo is worse than a few odd characters.
    """
    alphabet = default_alphabet if default_alphabet in ALPHABETS else "gsm7"
    codec = _codec_for(data_coding & 0xFF, alphabet)
    data = bytes(payload)
    if codec == "gsm7":
        return gsm_decode(data)
    if codec == "ucs2":
        return _decode_ucs2(data)
    if codec == "latin1":
        codec = "latin-1"
    return data.decode(codec, errors="replace")


def encode_as(text: str, data_coding: int, default_alphabet: str) -> bytes:
    """text in the alphabet a given data_coding implies; characters it lacks become "?".

    For splicing gateway-made text (say a gap marker) into bytes of an existing message so
    the whole still decodes with decode_short_message(..., data_coding, default_alphabet).
    """
    alphabet = default_alphabet if default_alphabet in ALPHABETS else "gsm7"
    codec = _codec_for(data_coding & 0xFF, alphabet)
    if codec == "gsm7":
        return b"".join(_GSM_ENCODE.get(ch, b"?") for ch in text)
    if codec == "ucs2":
        return b"".join(_ucs2_char(ch) for ch in text)
    if codec == "latin1":
        codec = "latin-1"
    return text.encode(codec, errors="replace")


@dataclass(frozen=True, slots=True)
class MessagePart:
    """One submit_sm worth of a message.

    tlvs is a tuple of (tag, value) pairs rather than a dict so the part stays immutable and
    hashable; `dict(part.tlvs)` gives the mapping a PDU wants. Order is the order to send.
    """

    data_coding: int
    short_message: bytes
    esm_class: int
    tlvs: tuple[tuple[int, bytes], ...]
    part_no: int
    total: int


def _chunk(chunks: list[_Chunk], limit: int) -> list[bytes]:
    bodies: list[bytes] = []
    current: list[bytes] = []
    used = 0
    for octets, cost in chunks:
        if used + cost > limit:
            bodies.append(b"".join(current))
            current, used = [], 0
        current.append(octets)
        used += cost
    if current:
        bodies.append(b"".join(current))
    return bodies


def _limits(data_coding: int) -> tuple[int, int]:
    if data_coding == DC_UCS2:
        return _SINGLE_OCTETS_UCS2, _PART_OCTETS_UCS2
    return _SINGLE_SEPTETS, _PART_SEPTETS


def _fits_single(chunks: list[_Chunk], data_coding: int) -> bool:
    return sum(cost for _, cost in chunks) <= _limits(data_coding)[0]


def _count(chunks: list[_Chunk], data_coding: int) -> int:
    if _fits_single(chunks, data_coding):
        return 1
    return len(_chunk(chunks, _limits(data_coding)[1]))


def count_parts(text: str, default_alphabet: str) -> int:
    """Parts a UDH or SAR split needs. Not capped: a result above MAX_PARTS means split_text refuses."""
    data_coding, chunks = _char_chunks(text, default_alphabet)
    return _count(chunks, data_coding)


def _single_part(text: str, default_alphabet: str) -> MessagePart | None:
    """The common case (a one-part reply) without per-character chunking; None if it needs more."""
    if len(text) > _SINGLE_SEPTETS:
        return None
    _check_alphabet(default_alphabet)
    if _fits_default(text, default_alphabet):
        septets = text.translate(_GSM_TRANSLATE).encode("latin-1")  # one octet per septet
        if len(septets) > _SINGLE_SEPTETS:
            return None
        payload = septets if default_alphabet == "gsm7" else text.encode("latin-1")
        return MessagePart(DC_DEFAULT, payload, 0, (), 1, 1)
    if any(0xD800 <= ord(ch) <= 0xDFFF for ch in text):
        return None  # lone surrogates: the careful path replaces them
    payload = text.encode("utf-16-be")
    if len(payload) > _SINGLE_OCTETS_UCS2:
        return None
    return MessagePart(DC_UCS2, payload, 0, (), 1, 1)


def _sliced(text: str, default_alphabet: str) -> tuple[int, bytes] | None:
    """data_coding and payload of a text too long for one part whose characters all cost the
    same (GSM without escaped characters, UCS-2 within the BMP without surrogates), so parts are
    cut by slicing rather than per-character chunks; None for any other text."""
    if _fits_default(text, default_alphabet):
        septets = text.translate(_GSM_TRANSLATE).encode("latin-1")  # one octet per septet
        if len(septets) != len(text) or len(septets) <= _SINGLE_SEPTETS:
            return None  # an escaped character costs two septets: the careful path keeps it whole
        return DC_DEFAULT, septets if default_alphabet == "gsm7" else text.encode("latin-1")
    if max(text) >= "\ud800":
        return None  # surrogates or characters beyond the BMP: the careful path
    payload = text.encode("utf-16-be")
    if len(payload) <= _SINGLE_OCTETS_UCS2:
        return None
    return DC_UCS2, payload


def split_text(text: str, default_alphabet: str, method: str, ref: int) -> list[MessagePart]:
    """Encode text and cut it into submit_sm parts.

    method: "udh" (concatenation IE 0x00, 8-bit ref = ref & 0xFF, esm_class 0x40),
    "sar" (sar_* TLVs, ref & 0xFFFF) or "payload" (one part, whole text in message_payload).
    Text that fits one message is always a single plain part, whatever the method.

    Raises ValueError for an unknown method or alphabet, for a udh/sar split needing more
    than 255 parts, or a payload above 65535 octets: the message must fail visibly rather
    than reach the handset truncated.
    """
    if method not in METHODS:
        raise ValueError(f"unknown long-message method {method!r}; expected one of {sorted(METHODS)}")
    single = _single_part(text, default_alphabet)
    if single is not None:
        return [single]
    sliced = _sliced(text, default_alphabet)
    if sliced is not None:
        data_coding, payload = sliced
        if method != "payload":
            step = _limits(data_coding)[1]
            bodies = [payload[i : i + step] for i in range(0, len(payload), step)]
    else:
        data_coding, chunks = _char_chunks(text, default_alphabet)
        payload = b"".join(c for c, _ in chunks)
        if _fits_single(chunks, data_coding):
            return [MessagePart(data_coding, payload, 0, (), 1, 1)]
        if method != "payload":
            bodies = _chunk(chunks, _limits(data_coding)[1])

    if method == "payload":
        if len(payload) > MAX_PAYLOAD_OCTETS:
            raise ValueError(f"message of {len(payload)} octets exceeds message_payload's {MAX_PAYLOAD_OCTETS}")
        return [MessagePart(data_coding, b"", 0, ((TLV_MESSAGE_PAYLOAD, payload),), 1, 1)]

    total = len(bodies)
    if total > MAX_PARTS:
        raise ValueError(f"message needs {total} parts; at most {MAX_PARTS} can be concatenated")

    parts: list[MessagePart] = []
    for seq, body in enumerate(bodies, start=1):
        if method == "udh":
            udh = bytes([0x05, 0x00, 0x03, ref & 0xFF, total, seq])
            parts.append(MessagePart(data_coding, udh + body, ESM_CLASS_UDHI, (), seq, total))
        else:
            tlvs = (
                (TLV_SAR_MSG_REF_NUM, (ref & 0xFFFF).to_bytes(2, "big")),
                (TLV_SAR_TOTAL_SEGMENTS, bytes([total])),
                (TLV_SAR_SEGMENT_SEQNUM, bytes([seq])),
            )
            parts.append(MessagePart(data_coding, body, 0, tlvs, seq, total))
    return parts
