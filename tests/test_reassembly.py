"""Concatenation info of MO parts, joining them, and the full split -> reassemble round trip."""

from __future__ import annotations

import random

import pytest

from smsgw.reassembly import (
    ConcatInfo,
    MalformedConcat,
    assemble,
    assemble_partial,
    extract_concat,
    message_body,
)
from smsgw.text import decode_short_message, split_text

UDHI = 0x40
SAR_REF, SAR_TOTAL, SAR_SEQ, PAYLOAD = 0x020C, 0x020E, 0x020F, 0x0424
EMOJI = "\U0001F600"
ARABIC = "السلام عليكم، موقف السيارات رقم ٤٥ "


def arabic(n: int) -> str:
    return (ARABIC * (n // len(ARABIC) + 1))[:n]


def sar(ref: bytes, total: int, seq: int) -> dict[int, bytes]:
    return {SAR_REF: ref, SAR_TOTAL: bytes([total]), SAR_SEQ: bytes([seq])}


# --- extract_concat ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("short_message", "esm_class", "tlvs", "expected"),
    [
        pytest.param(b"\x05\x00\x03\x2a\x03\x02body", UDHI, {}, ConcatInfo(0x2A, 3, 2, b"body"), id="udh-8bit"),
        pytest.param(b"\x06\x08\x04\x12\x34\x02\x01body", UDHI, {}, ConcatInfo(0x1234, 2, 1, b"body"),
                     id="udh-16bit"),
        pytest.param(b"\x05\x00\x03\x2a\x03\x02body", UDHI | 0x03, {}, ConcatInfo(0x2A, 3, 2, b"body"),
                     id="udh-other-esm-bits"),
        pytest.param(b"\x0b\x05\x04\x0b\x84\x23\xf0\x00\x03\x07\x02\x02xy", UDHI, {}, ConcatInfo(7, 2, 2, b"xy"),
                     id="udh-port-addressing-then-concat"),
        pytest.param(b"\x0a\x00\x03\x07\x02\x02\x04\x03\x00\x05\x01xy", UDHI, {}, ConcatInfo(7, 2, 2, b"xy"),
                     id="udh-concat-then-formatting"),
        pytest.param(b"\x0a\x00\x03\x01\x09\x09\x00\x03\x02\x03\x01xy", UDHI, {}, ConcatInfo(2, 3, 1, b"xy"),
                     id="udh-repeated-concat-last-wins"),
        pytest.param(b"\x05\x00\x03\x2a\x03\x02", UDHI, {}, ConcatInfo(0x2A, 3, 2, b""), id="udh-empty-body"),
        pytest.param(b"", UDHI, {PAYLOAD: b"\x05\x00\x03\x01\x02\x02tail"}, ConcatInfo(1, 2, 2, b"tail"),
                     id="udh-in-message-payload"),
        pytest.param(b"body", 0, sar(b"\x01\x02", 4, 3), ConcatInfo(0x0102, 4, 3, b"body"), id="sar"),
        pytest.param(b"body", 0, sar(b"\x09", 2, 1), ConcatInfo(9, 2, 1, b"body"), id="sar-1-octet-ref"),
        pytest.param(b"", 0, {**sar(b"\x00\x05", 2, 2), PAYLOAD: b"pl"}, ConcatInfo(5, 2, 2, b"pl"),
                     id="sar-with-message-payload"),
        pytest.param(b"\x06\x05\x04\x0b\x84\x23\xf0xy", UDHI, sar(b"\x00\x05", 2, 1), ConcatInfo(5, 2, 1, b"xy"),
                     id="udh-without-concat-plus-sar"),
        pytest.param(b"\x05\x00\x03\x2a\x03\x02body", UDHI, sar(b"\x00\x05", 2, 1), ConcatInfo(0x2A, 3, 2, b"body"),
                     id="udh-wins-over-sar"),
    ],
)
def test_extract_concat(short_message: bytes, esm_class: int, tlvs: dict[int, bytes], expected: ConcatInfo) -> None:
    assert extract_concat(short_message, esm_class, tlvs) == expected


@pytest.mark.parametrize(
    ("short_message", "esm_class", "tlvs", "body"),
    [
        pytest.param(b"hello", 0, {}, b"hello", id="plain"),
        pytest.param(b"", 0, {}, b"", id="empty"),
        pytest.param(b"\x05\x00\x03\x2a\x03\x02body", 0, {}, b"\x05\x00\x03\x2a\x03\x02body",
                     id="udh-lookalike-without-udhi"),
        pytest.param(b"\x06\x05\x04\x0b\x84\x23\xf0xy", UDHI, {}, b"xy", id="udh-port-addressing-only"),
        pytest.param(b"\x00xy", UDHI, {}, b"xy", id="udh-empty-header"),
        pytest.param(b"\x05\x00\x03\x2a\x01\x01one", UDHI, {}, b"one", id="udh-1-of-1"),
        pytest.param(b"one", 0, sar(b"\x00\x01", 1, 1), b"one", id="sar-1-of-1"),
        pytest.param(b"", 0, {PAYLOAD: b"long text"}, b"long text", id="message-payload"),
        pytest.param(b"hello", 0, {0x0501: b"\x01"}, b"hello", id="unrelated-tlv"),
    ],
)
def test_no_concat_info_returns_none_and_message_body_gives_the_text(
    short_message: bytes, esm_class: int, tlvs: dict[int, bytes], body: bytes
) -> None:
    assert extract_concat(short_message, esm_class, tlvs) is None
    assert message_body(short_message, esm_class, tlvs) == body


@pytest.mark.parametrize(
    ("short_message", "esm_class", "tlvs"),
    [
        pytest.param(b"", UDHI, {}, id="udhi-empty-message"),
        pytest.param(b"\x09\x00\x03\x01\x02\x01", UDHI, {}, id="udh-length-past-end"),
        pytest.param(b"\x05\x00\x05\x01\x02\x01xy", UDHI, {}, id="ie-past-header"),
        pytest.param(b"\x01\x00xy", UDHI, {}, id="truncated-ie"),
        pytest.param(b"\x04\x00\x02\x01\x02xy", UDHI, {}, id="concat8-wrong-length"),
        pytest.param(b"\x05\x08\x03\x01\x02\x01xy", UDHI, {}, id="concat16-wrong-length"),
        pytest.param(b"\x05\x00\x03\x01\x00\x01xy", UDHI, {}, id="total-zero"),
        pytest.param(b"\x05\x00\x03\x01\x02\x00xy", UDHI, {}, id="seq-zero"),
        pytest.param(b"\x05\x00\x03\x01\x02\x03xy", UDHI, {}, id="seq-past-total"),
        pytest.param(b"\x05\x00\x03\x01\x01\x02xy", UDHI, {}, id="seq-past-total-of-one"),
        pytest.param(b"\x06\x08\x04\x00\x01\x02\x05xy", UDHI, {}, id="concat16-seq-past-total"),
        pytest.param(b"xy", 0, {SAR_REF: b"\x00\x01", SAR_TOTAL: b"\x02"}, id="sar-missing-seq"),
        pytest.param(b"xy", 0, {SAR_SEQ: b"\x01"}, id="sar-only-seq"),
        pytest.param(b"xy", 0, {SAR_REF: b"", SAR_TOTAL: b"\x02", SAR_SEQ: b"\x01"}, id="sar-empty-ref"),
        pytest.param(b"xy", 0, {SAR_REF: b"\x00\x00\x01", SAR_TOTAL: b"\x02", SAR_SEQ: b"\x01"}, id="sar-long-ref"),
        pytest.param(b"xy", 0, {SAR_REF: b"\x00\x01", SAR_TOTAL: b"\x00\x02", SAR_SEQ: b"\x01"},
                     id="sar-long-total"),
        pytest.param(b"xy", 0, sar(b"\x00\x01", 0, 1), id="sar-total-zero"),
        pytest.param(b"xy", 0, sar(b"\x00\x01", 2, 0), id="sar-seq-zero"),
        pytest.param(b"xy", 0, sar(b"\x00\x01", 2, 3), id="sar-seq-past-total"),
    ],
)
def test_malformed_concat_raises(short_message: bytes, esm_class: int, tlvs: dict[int, bytes]) -> None:
    with pytest.raises(MalformedConcat):
        extract_concat(short_message, esm_class, tlvs)


@pytest.mark.parametrize(
    ("short_message", "tlvs"),
    [(b"", {}), (b"\x09\x00\x03\x01\x02\x01", {}), (b"\x01\x00xy", {}), (b"", {PAYLOAD: b"\x07ab"})],
)
def test_message_body_raises_on_broken_udh(short_message: bytes, tlvs: dict[int, bytes]) -> None:
    with pytest.raises(MalformedConcat):
        message_body(short_message, UDHI, tlvs)


def test_malformed_concat_is_a_value_error() -> None:
    assert issubclass(MalformedConcat, ValueError)


# --- assemble ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("parts", "total", "expected"),
    [
        ({1: b"a", 2: b"b", 3: b"c"}, 3, b"abc"),
        ({3: b"c", 1: b"a", 2: b"b"}, 3, b"abc"),  # last part first
        ({2: b"b", 1: b"a"}, 2, b"ab"),
        ({1: b"only"}, 1, b"only"),
        ({1: b"a", 3: b"c"}, 3, None),
        ({2: b"b", 3: b"c"}, 3, None),
        ({1: b"a", 2: b"b"}, 3, None),
        ({}, 2, None),
        ({}, 0, None),
        ({1: b"", 2: b"b"}, 2, b"b"),  # an empty body is still a present part
    ],
)
def test_assemble(parts: dict[int, bytes], total: int, expected: bytes | None) -> None:
    assert assemble(parts, total) == expected


@pytest.mark.parametrize(
    ("parts", "total", "expected"),
    [
        ({1: b"a", 2: b"b", 3: b"c"}, 3, b"abc"),
        ({1: b"a", 3: b"c"}, 3, b"a?c"),
        ({2: b"b", 3: b"c"}, 3, b"?bc"),
        ({1: b"a", 2: b"b"}, 3, b"ab?"),
        ({2: b"b"}, 4, b"?b??"),
        ({}, 2, b"??"),
        ({1: b"a", 2: b"b", 5: b"stray"}, 2, b"abstray"),  # never lose a part
    ],
)
def test_assemble_partial(parts: dict[int, bytes], total: int, expected: bytes) -> None:
    assert assemble_partial(parts, total, b"?") == expected


def test_assemble_partial_ucs2_gap_decodes() -> None:
    gap = " … ".encode("utf-16-be")
    parts = {1: "أهلا".encode("utf-16-be"), 3: "بكم".encode("utf-16-be")}
    joined = assemble_partial(parts, 3, gap)
    assert decode_short_message(joined, 8, "gsm7") == "أهلا … بكم"


@pytest.mark.parametrize(
    ("bodies", "dc", "expected"),
    [
        # A sender that cut an emoji between its two UTF-16 units.
        ([b"\x00A\xd8\x3d", b"\xde\x00\x00B"], 8, "A" + EMOJI + "B"),
        # ... or an Arabic letter between its two octets.
        ([b"\x06", b"\x27\x06\x44"], 8, "ال"),
        # ... or a GSM escape pair.
        ([b"price 5\x1b", b"\x65 only"], 0, "price 5€ only"),
    ],
)
def test_decoding_after_joining_repairs_careless_splits(bodies: list[bytes], dc: int, expected: str) -> None:
    joined = assemble(dict(enumerate(bodies, start=1)), len(bodies))
    assert joined is not None
    assert decode_short_message(joined, dc, "gsm7") == expected


# --- round trip ----------------------------------------------------------------------------

TEXTS = [
    pytest.param("short", id="short"),
    pytest.param("a" * 161, id="gsm-161"),
    pytest.param("Parking {zone} [A] costs 5€ ~ ^|\\ " * 12, id="gsm-extension"),
    pytest.param("a" * 152 + "€" * 10 + "z" * 200, id="gsm-escape-at-boundary"),
    pytest.param(arabic(300), id="arabic-300"),
    pytest.param(arabic(66) + EMOJI + arabic(100), id="emoji-at-boundary"),
    pytest.param((EMOJI + "x") * 100, id="emoji-many"),
    pytest.param("Café crème, naïve façade. " * 20, id="latin-not-gsm"),
    pytest.param("Café à Zürich, Ñ Æ Ø Å ß ¿¡ [A] {b} " * 12, id="latin-and-gsm"),
    pytest.param("x" * (153 * 30), id="thirty-parts"),
]


def receive(parts: list, alphabet: str) -> str:
    """What the gateway does with MO parts: extract, key by seq, assemble, decode once."""
    received: dict[int, bytes] = {}
    total = None
    single: str | None = None
    for part in parts:
        tlvs = dict(part.tlvs)
        info = extract_concat(part.short_message, part.esm_class, tlvs)
        if info is None:
            body = message_body(part.short_message, part.esm_class, tlvs)
            single = decode_short_message(body, part.data_coding, alphabet)
            continue
        received.setdefault(info.seq, info.body)
        total = info.total
        joined = assemble(received, info.total)
        if joined is not None:
            return decode_short_message(joined, part.data_coding, alphabet)
    assert total is None, "parts were left over"
    assert single is not None
    return single


ORDERS = ["forward", "reverse", "shuffled-with-duplicates"]


def arrange(parts: list, order: str) -> list:
    if order == "forward":
        return list(parts)
    if order == "reverse":
        return list(reversed(parts))
    rng = random.Random(len(parts))
    noisy = parts + [parts[0], parts[-1]]
    rng.shuffle(noisy)
    return noisy


@pytest.mark.parametrize("alphabet", ["gsm7", "latin1", "ascii"])
@pytest.mark.parametrize("method", ["udh", "sar", "payload"])
@pytest.mark.parametrize("text", TEXTS)
def test_round_trip(text: str, method: str, alphabet: str) -> None:
    parts = split_text(text, alphabet, method, ref=0x1ABC)
    for order in ORDERS:
        assert receive(arrange(parts, order), alphabet) == text, order


@pytest.mark.parametrize("method", ["udh", "sar"])
def test_round_trip_part_bodies_carry_the_ref(method: str) -> None:
    parts = split_text(arabic(300), "gsm7", method, ref=0x1ABC)
    infos = [extract_concat(p.short_message, p.esm_class, dict(p.tlvs)) for p in parts]
    expected_ref = 0xBC if method == "udh" else 0x1ABC
    assert [(i.ref, i.total, i.seq) for i in infos] == [(expected_ref, 5, s) for s in range(1, 6)]


def test_round_trip_with_a_lost_part_keeps_the_rest() -> None:
    text = "a" * 153 + "b" * 153 + "c" * 10
    parts = split_text(text, "gsm7", "udh", ref=1)
    infos = [extract_concat(p.short_message, p.esm_class, {}) for p in parts]
    received = {i.seq: i.body for i in infos if i.seq != 2}
    assert assemble(received, 3) is None
    joined = assemble_partial(received, 3, b"...")
    assert decode_short_message(joined, 0, "gsm7") == "a" * 153 + "..." + "c" * 10
