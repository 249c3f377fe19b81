"""The handset's side of SMS text: GSM 03.38, Latin-1 and UCS2, and splitting into on-air parts.

The simulator plays the network, so it must not borrow the gateway's text code: if both sides
shared one codec, a bug in it would cancel out and every test would still pass. This module is
deliberately small and written from the 3GPP TS 23.038 tables, not from the gateway's.

SMPP carries GSM 7-bit text unpacked, one septet per octet, which is what every function here
produces and expects.
"""

from __future__ import annotations

from dataclasses import dataclass

# 3GPP TS 23.038 basic character set, indexed by septet value. 0x1B is the escape to the
# extension table, never a character of its own.
GSM7_BASIC = (
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞ\x1bÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
assert len(GSM7_BASIC) == 128
GSM7_ESCAPE = 0x1B
# Extension table: these cost two septets (escape + code) and must never be split across parts.
GSM7_EXTENSION = {
    "\f": 0x0A,
    "^": 0x14,
    "{": 0x28,
    "}": 0x29,
    "\\": 0x2F,
    "[": 0x3C,
    "~": 0x3D,
    "]": 0x3E,
    "|": 0x40,
    "€": 0x65,
}

_BASIC_INDEX = {ch: i for i, ch in enumerate(GSM7_BASIC) if i != GSM7_ESCAPE}
_EXTENSION_DECODE = {code: ch for ch, code in GSM7_EXTENSION.items()}

DC_DEFAULT = 0x00
DC_IA5 = 0x01
DC_LATIN1 = 0x03
DC_BINARY = 0x04
DC_UCS2 = 0x08

# Characters per SMS, single and in a concatenated part (a 6-octet UDH costs 7 septets / 6 octets).
GSM7_SINGLE, GSM7_PART = 160, 153
UCS2_SINGLE, UCS2_PART = 70, 67
OCTET_SINGLE, OCTET_PART = 140, 134


def fits_gsm7(text: str) -> bool:
    return all(ch in _BASIC_INDEX or ch in GSM7_EXTENSION for ch in text)


def gsm7_cost(ch: str) -> int:
    """Septets one character takes."""
    return 2 if ch in GSM7_EXTENSION else 1


def encode_gsm7(text: str) -> bytes:
    """Unpacked septets; raises ValueError on a character outside the GSM alphabet."""
    out = bytearray()
    for ch in text:
        code = _BASIC_INDEX.get(ch)
        if code is not None:
            out.append(code)
            continue
        ext = GSM7_EXTENSION.get(ch)
        if ext is None:
            raise ValueError(f"character U+{ord(ch):04X} is not in the GSM 03.38 alphabet")
        out += bytes((GSM7_ESCAPE, ext))
    return bytes(out)


def decode_gsm7(data: bytes) -> tuple[str, list[str]]:
    """Decode unpacked septets; returns the text and what a handset would have shown wrongly."""
    out: list[str] = []
    problems: list[str] = []
    escaped = False
    for octet in data:
        if octet > 0x7F:
            problems.append(f"octet 0x{octet:02X} is not a septet (packed or 8-bit data sent as GSM7?)")
            out.append("?")
            escaped = False
            continue
        if escaped:
            escaped = False
            ch = _EXTENSION_DECODE.get(octet)
            if ch is None:
                # TS 23.038: an unknown extension code shows as the basic character (after a space).
                problems.append(f"unknown GSM7 extension code 0x{octet:02X}")
                ch = GSM7_BASIC[octet] if octet != GSM7_ESCAPE else " "
            out.append(ch)
        elif octet == GSM7_ESCAPE:
            escaped = True
        else:
            out.append(GSM7_BASIC[octet])
    if escaped:
        problems.append("GSM7 escape at the end of the data (an extension character was split)")
    return "".join(out), problems


def alphabet_of(data_coding: int, default_alphabet: str) -> str:
    """'gsm7' | 'latin1' | 'ascii' | 'ucs2' | 'binary' for a data_coding value (TS 23.038 section 4)."""
    if data_coding == DC_DEFAULT:
        return default_alphabet
    if data_coding == DC_IA5:
        return "ascii"
    if data_coding == DC_LATIN1:
        return "latin1"
    if data_coding == DC_UCS2:
        return "ucs2"
    group = data_coding & 0xF0
    if group == 0xF0:
        return "binary" if data_coding & 0x04 else "gsm7"
    if group in (0x00, 0x10, 0x20, 0x30):
        return ("gsm7", "binary", "ucs2", "binary")[(data_coding >> 2) & 0x03]
    return "binary"


def decode(data: bytes, data_coding: int, default_alphabet: str) -> tuple[str, list[str]]:
    """What a handset would show for this payload (UDH already removed)."""
    alphabet = alphabet_of(data_coding, default_alphabet)
    if alphabet == "gsm7":
        return decode_gsm7(data)
    if alphabet == "ucs2":
        problems = []
        if len(data) % 2:
            problems.append("odd number of octets in UCS2 data")
        try:
            return data.decode("utf-16-be"), problems
        except UnicodeDecodeError as exc:
            problems.append(f"invalid UTF-16: {exc.reason}")
            return data.decode("utf-16-be", errors="replace"), problems
    if alphabet == "ascii":
        if any(b > 0x7F for b in data):
            return data.decode("ascii", errors="replace"), ["non-ASCII octet in IA5 data"]
        return data.decode("ascii"), []
    if alphabet == "latin1":
        return data.decode("latin-1"), []
    return data.hex(), []


@dataclass(frozen=True)
class Encoded:
    """A text as the network would carry it: data_coding and one payload per on-air part."""

    data_coding: int
    parts: tuple[bytes, ...]
    texts: tuple[str, ...]


def split_units(text: str, unit: str) -> list[str]:
    """Split into on-air parts, never inside a GSM escape pair or a UTF-16 surrogate pair.

    `unit` is 'gsm7' (septets), 'ucs2' (UTF-16 code units) or 'octet'.
    """
    if unit == "gsm7":
        single, per_part = GSM7_SINGLE, GSM7_PART

        def cost(ch: str) -> int:
            return gsm7_cost(ch)

    elif unit == "ucs2":
        single, per_part = UCS2_SINGLE, UCS2_PART

        def cost(ch: str) -> int:
            return 2 if ord(ch) > 0xFFFF else 1

    else:
        single, per_part = OCTET_SINGLE, OCTET_PART

        def cost(ch: str) -> int:
            return 1

    if sum(cost(ch) for ch in text) <= single:
        return [text]
    parts: list[str] = []
    current: list[str] = []
    used = 0
    for ch in text:
        c = cost(ch)
        if used + c > per_part:
            parts.append("".join(current))
            current, used = [], 0
        current.append(ch)
        used += c
    if current:
        parts.append("".join(current))
    return parts


def encode_for_network(text: str, default_alphabet: str, data_coding: int | None = None) -> Encoded:
    """Encode an MO as the SMSC would hand it to an ESME.

    Without `data_coding`: the handset sends 7-bit when the text fits the GSM alphabet, else UCS2;
    the SMSC then writes 7-bit text in its own default alphabet for data_coding 0 (GSM 03.38 or
    Latin-1). A GSM character Latin-1 lacks (Greek capitals, €) leaves the SMSC no choice but UCS2.
    """
    if data_coding is None:
        if fits_gsm7(text) and (default_alphabet == "gsm7" or _fits_latin1(text)):
            data_coding = DC_DEFAULT
        else:
            data_coding = DC_UCS2
    alphabet = alphabet_of(data_coding, default_alphabet)
    if alphabet == "gsm7":
        texts = split_units(text, "gsm7")
        return Encoded(data_coding, tuple(encode_gsm7(t) for t in texts), tuple(texts))
    if alphabet == "ucs2":
        texts = split_units(text, "ucs2")
        return Encoded(data_coding, tuple(t.encode("utf-16-be") for t in texts), tuple(texts))
    if alphabet in ("latin1", "ascii"):
        codec = "latin-1" if alphabet == "latin1" else "ascii"
        text.encode(codec)  # raises UnicodeEncodeError, which is a ValueError, if it does not fit
        # Latin-1 on data_coding 0 is 7-bit on the air (the SMSC converts), so GSM part sizes apply.
        unit = "gsm7" if data_coding == DC_DEFAULT and fits_gsm7(text) else "octet"
        texts = split_units(text, unit)
        return Encoded(data_coding, tuple(t.encode(codec) for t in texts), tuple(texts))
    raise ValueError(f"cannot encode text with data_coding 0x{data_coding:02X}")


def _fits_latin1(text: str) -> bool:
    try:
        text.encode("latin-1")
    except UnicodeEncodeError:
        return False
    return True


def on_air_fits(payload_len: int, udh_len: int, alphabet: str) -> bool:
    """Whether one part fits the 140 octets of an SMS: 160 septets for GSM, 140 octets otherwise."""
    if alphabet == "gsm7":
        udh_septets = (udh_len * 8 + 6) // 7
        return udh_septets + payload_len <= GSM7_SINGLE
    if alphabet == "latin1":
        # Carried as 7-bit on the air when it fits GSM; the SMSC converts. Judge it like GSM.
        udh_septets = (udh_len * 8 + 6) // 7
        return udh_septets + payload_len <= GSM7_SINGLE
    return udh_len + payload_len <= OCTET_SINGLE
