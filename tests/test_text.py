"""GSM 03.38 codec, data_coding choice and decoding, long-message splitting."""

from __future__ import annotations

import random

import pytest

from smsgw import text as t
from smsgw.text import (
    MessagePart,
    count_parts,
    decode_short_message,
    encode_text,
    gsm_decode,
    gsm_encode,
    gsm_septets,
    is_gsm,
    split_text,
)

ARABIC = "مرحبا بكم في خدمات البلدية "  # 27 characters, all in the BMP
EMOJI = "\U0001F600"  # two UTF-16 units
EXTENSION_CHARS = "{}[]~^|\\€\f"
UCS2_PART_BYTES = 134
GSM_PART_BYTES = 153


def arabic(n: int) -> str:
    return (ARABIC * (n // len(ARABIC) + 1))[:n]


# --- GSM 03.38 codec ---------------------------------------------------------------------


def test_basic_table_has_128_entries_and_round_trips() -> None:
    assert len(t._GSM_BASIC) == 128
    every = "".join(ch for i, ch in enumerate(t._GSM_BASIC) if i != 0x1B)
    encoded = gsm_encode(every)
    assert len(encoded) == 127
    assert gsm_decode(encoded) == every


@pytest.mark.parametrize(
    ("char", "code"),
    [("{", 0x28), ("}", 0x29), ("[", 0x3C), ("]", 0x3E), ("~", 0x3D), ("^", 0x14), ("|", 0x40),
     ("\\", 0x2F), ("€", 0x65), ("\f", 0x0A)],
)
def test_extension_chars_are_escape_plus_code(char: str, code: int) -> None:
    assert gsm_encode(char) == bytes([0x1B, code])
    assert gsm_septets(char) == 2
    assert gsm_decode(bytes([0x1B, code])) == char


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", True),
        ("Hello, world!", True),
        ("@£$¥èéùìòÇØøÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ¤¡ÄÖÑÜ§¿äöñüà", True),
        (EXTENSION_CHARS, True),
        ("line\nbreak\r", True),
        ("ç", False),  # only capital Ç is in the table
        ("`", False),
        ("\x1b", False),  # the escape is not a character
        ("مرحبا", False),
        (EMOJI, False),
        ("price 5€ ok", True),
        ("tab\t", False),
    ],
)
def test_is_gsm(text: str, expected: bool) -> None:
    assert is_gsm(text) is expected


@pytest.mark.parametrize(
    ("text", "septets"),
    [("", 0), ("abc", 3), ("€", 2), ("a{b}", 6), ("[]" * 10, 40), ("@" * 160, 160)],
)
def test_gsm_septets(text: str, septets: int) -> None:
    assert gsm_septets(text) == septets


@pytest.mark.parametrize("text", ["ç", "abcم", EMOJI, "\x1b"])
def test_gsm_encode_rejects_foreign_characters(text: str) -> None:
    with pytest.raises(ValueError, match="GSM"):
        gsm_encode(text)


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"", ""),
        (b"\x00\x01\x02", "@£$"),
        (b"\x1b", " "),  # dangling escape at the end
        (b"A\x1b", "A "),
        (b"\x1b\x1b", " "),  # escape to a further table nobody defined
        (b"\x1b\x41", "A"),  # unknown extension code: basic character
        (b"\x1b\x65", "€"),
        (b"\x80", "\ufffd"),
        (b"a\xffb", "a\ufffdb"),
        (b"\x1b\xff", "\ufffd"),
    ],
)
def test_gsm_decode_is_best_effort(data: bytes, expected: str) -> None:
    assert gsm_decode(data) == expected


# --- choosing data_coding ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "alphabet", "expected"),
    [
        ("", "gsm7", (0, b"")),
        ("Hello", "gsm7", (0, b"Hello")),
        ("Hello", "latin1", (0, b"Hello")),
        ("Hello", "ascii", (0, b"Hello")),
        ("@", "gsm7", (0, b"\x00")),
        ("@", "latin1", (0, b"@")),
        ("€5", "gsm7", (0, b"\x1b\x655")),
        ("€5", "latin1", (8, "€5".encode("utf-16-be"))),
        ("[x]", "gsm7", (0, b"\x1b\x3cx\x1b\x3e")),
        ("[x]", "latin1", (0, b"[x]")),
        ("café", "gsm7", (0, b"caf\x05")),
        ("café", "latin1", (0, b"caf\xe9")),
        ("café", "ascii", (8, "café".encode("utf-16-be"))),
        ("ç", "gsm7", (8, b"\x00\xe7")),
        # dc 0 reaches the handset as GSM 7-bit: the text must fit GSM as well as the SMSC charset.
        ("ç", "latin1", (8, b"\x00\xe7")),
        ("ê", "latin1", (8, b"\x00\xea")),
        ("Δ", "latin1", (8, b"\x03\x94")),
        ("Δ", "gsm7", (0, b"\x10")),
        ("ÄÖÜß¿¡", "latin1", (0, "ÄÖÜß¿¡".encode("latin-1"))),
        ("`", "ascii", (8, b"\x00`")),
        ("`", "latin1", (8, b"\x00`")),
        ("[x]", "ascii", (0, b"[x]")),
        ("tab\t", "ascii", (8, "tab\t".encode("utf-16-be"))),
        ("مرحبا", "gsm7", (8, "مرحبا".encode("utf-16-be"))),
        ("مرحبا", "latin1", (8, "مرحبا".encode("utf-16-be"))),
        ("مرحبا", "ascii", (8, "مرحبا".encode("utf-16-be"))),
        (EMOJI, "gsm7", (8, b"\xd8\x3d\xde\x00")),
        ("Hi \ud800", "gsm7", (8, "Hi \ufffd".encode("utf-16-be"))),  # lone surrogate in a str
    ],
)
def test_encode_text(text: str, alphabet: str, expected: tuple[int, bytes]) -> None:
    assert encode_text(text, alphabet) == expected


@pytest.mark.parametrize("alphabet", ["GSM7", "utf8", ""])
def test_encode_text_rejects_unknown_alphabet(alphabet: str) -> None:
    with pytest.raises(ValueError, match="alphabet"):
        encode_text("hi", alphabet)


# --- decoding short_message ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("payload", "dc", "alphabet", "expected"),
    [
        (b"\x00Hi", 0x00, "gsm7", "@Hi"),
        (b"\x00Hi", 0x00, "latin1", "\x00Hi"),
        (b"caf\xe9", 0x00, "latin1", "café"),
        (b"caf\xe9", 0x00, "ascii", "caf\ufffd"),
        (b"caf\x05", 0x00, "gsm7", "café"),
        (b"caf\xe9", 0x01, "gsm7", "caf\ufffd"),  # IA5 is 7-bit
        (b"plain", 0x01, "gsm7", "plain"),
        (b"caf\xe9", 0x03, "gsm7", "café"),
        (b"caf\xe9", 0x02, "gsm7", "café"),  # 8-bit binary, shown as Latin-1
        (b"caf\xe9", 0x04, "gsm7", "café"),
        (b"\xbf", 0x06, "gsm7", "П"),  # ISO-8859-5
        (b"\xe0", 0x07, "gsm7", "א"),  # ISO-8859-8
        ("مرحبا".encode("utf-16-be"), 0x08, "gsm7", "مرحبا"),
        (b"\xd8\x3d\xde\x00", 0x08, "latin1", EMOJI),
        (b"\x00Hi", 0xF0, "latin1", "@Hi"),  # coding group 1111, bit 2 clear: GSM
        (b"\x00Hi", 0xF1, "ascii", "@Hi"),
        (b"caf\xe9", 0xF4, "gsm7", "café"),  # bit 2 set: 8-bit data
        (b"caf\xe9", 0xF5, "gsm7", "café"),
        (b"caf\xe9", 0xF6, "gsm7", "café"),
        (b"\x00Hi", 0x10, "latin1", "@Hi"),  # general group, class 0, GSM
        (b"\x00Hi", 0x11, "latin1", "@Hi"),
        (b"caf\xe9", 0x15, "gsm7", "café"),  # general group, 8-bit
        ("مرحبا".encode("utf-16-be"), 0x18, "gsm7", "مرحبا"),  # flash UCS2
        ("مرحبا".encode("utf-16-be"), 0x19, "gsm7", "مرحبا"),
        (b"\x00Hi", 0xC0, "latin1", "@Hi"),  # message waiting, GSM
        ("مرحبا".encode("utf-16-be"), 0xE0, "gsm7", "مرحبا"),  # message waiting, UCS2
        (b"\x00Hi", 0x80, "gsm7", "@Hi"),  # reserved group: carrier default
        (b"\x00Hi", 0x80, "latin1", "\x00Hi"),
        (b"\x00Hi", 0x05, "gsm7", "@Hi"),  # JIS: not supported, carrier default
        (b"\x00Hi", 0x0F, "latin1", "\x00Hi"),
        (b"\x00Hi", 0x00, "klingon", "@Hi"),  # misconfigured alphabet still decodes
        (b"", 0x08, "gsm7", ""),
    ],
)
def test_decode_short_message(payload: bytes, dc: int, alphabet: str, expected: str) -> None:
    assert decode_short_message(payload, dc, alphabet) == expected


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        (b"\x00A\x00", "A\ufffd"),  # odd length
        (b"\x00", "\ufffd"),
        (b"\xd8\x3d\x00A", "\ufffdA"),  # lone high surrogate
        (b"\xde\x00\x00A", "\ufffdA"),  # lone low surrogate
        (b"\x00A\xd8\x3d", "A\ufffd"),  # high surrogate at the very end
        (b"\xd8\x3d\xd8\x3d\xde\x00", "\ufffd" + EMOJI),
    ],
)
def test_decode_broken_ucs2_never_raises(payload: bytes, expected: str) -> None:
    assert decode_short_message(payload, 0x08, "gsm7") == expected


@pytest.mark.parametrize("dc", [0x00, 0x01, 0x02, 0x03, 0x04, 0x06, 0x07, 0x08, 0x0A, 0x11, 0x18, 0x24, 0x7F,
                                0x80, 0xC3, 0xE1, 0xF0, 0xF4, 0xFF])
def test_decode_random_bytes_never_raises(dc: int) -> None:
    rng = random.Random(dc)
    for alphabet in ("gsm7", "latin1", "ascii", "bogus"):
        for size in (0, 1, 2, 3, 17, 141):
            result = decode_short_message(rng.randbytes(size), dc, alphabet)
            assert isinstance(result, str)


# --- splitting -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "alphabet", "parts"),
    [
        ("", "gsm7", 1),
        ("a" * 160, "gsm7", 1),
        ("a" * 161, "gsm7", 2),
        ("a" * 306, "gsm7", 2),
        ("a" * 307, "gsm7", 3),
        ("€" * 80, "gsm7", 1),  # 160 septets
        ("€" * 79 + "ab", "gsm7", 1),  # 81 characters, 160 septets
        ("€" * 80 + "a", "gsm7", 2),
        ("é" * 160, "latin1", 1),
        ("é" * 161, "latin1", 2),
        ("a" * 161, "ascii", 2),
        ("é" * 10, "ascii", 1),  # UCS2, 10 units
        (arabic(70), "gsm7", 1),
        (arabic(71), "gsm7", 2),
        (arabic(134), "gsm7", 2),
        (arabic(135), "gsm7", 3),
        (EMOJI * 35, "gsm7", 1),  # 70 UTF-16 units
        (EMOJI * 36, "gsm7", 2),
        ("a" * 159 + "ç", "gsm7", 3),  # one foreign character turns 160 into UCS2
        ("a" * 159 + "ç", "latin1", 3),  # Latin-1 has ç, the air interface does not
        ("[" * 80, "latin1", 1),  # 80 octets over SMPP, 160 septets on the air
        ("[" * 81, "latin1", 2),
        ("{" * 80, "ascii", 1),
        ("|" * 81, "ascii", 2),
    ],
)
def test_count_parts(text: str, alphabet: str, parts: int) -> None:
    assert count_parts(text, alphabet) == parts
    assert len(split_text(text, alphabet, "udh", 1)) == parts
    assert len(split_text(text, alphabet, "sar", 1)) == parts


def test_160_gsm_chars_is_one_plain_part() -> None:
    (part,) = split_text("a" * 160, "gsm7", "udh", 7)
    assert part == MessagePart(data_coding=0, short_message=b"a" * 160, esm_class=0, tlvs=(), part_no=1, total=1)


@pytest.mark.parametrize(
    "text, parts",
    [
        ("€" * 80, 1),  # 160 septets: each extension character is two
        ("€" * 80 + "a", 2),
        ("a" * 159 + "[", 2),
        ("a" * 158 + "[", 1),
        ("{x} ~ |y| ^ \\ €", 1),
    ],
)
def test_one_part_fast_path_counts_and_encodes_extension_characters(text: str, parts: int) -> None:
    """The one-part path encodes with a translation table; it must agree septet for septet with
    the character-by-character encoder and send the text whole."""
    got = split_text(text, "gsm7", "udh", 1)
    assert len(got) == parts
    if parts == 1:
        assert got[0].short_message == b"".join(t._GSM_ENCODE[ch] for ch in text)
    assert decode_short_message(b"".join(p.short_message[6 if parts > 1 else 0:] for p in got), 0, "gsm7") == text


def test_161_gsm_chars_is_two_udh_parts() -> None:
    parts = split_text("a" * 161, "gsm7", "udh", 0x1F7)
    assert [p.short_message[:6] for p in parts] == [bytes([5, 0, 3, 0xF7, 2, 1]), bytes([5, 0, 3, 0xF7, 2, 2])]
    assert [len(p.short_message) - 6 for p in parts] == [153, 8]
    assert all(p.esm_class == 0x40 and p.tlvs == () and p.data_coding == 0 for p in parts)
    assert [(p.part_no, p.total) for p in parts] == [(1, 2), (2, 2)]


@pytest.mark.parametrize(
    ("ref", "ref_bytes"),
    [(0, b"\x00\x00"), (1, b"\x00\x01"), (0x1234, b"\x12\x34"), (0x12345, b"\x23\x45"), (0xFFFF, b"\xff\xff")],
)
def test_sar_parts(ref: int, ref_bytes: bytes) -> None:
    parts = split_text("b" * 400, "gsm7", "sar", ref)
    assert len(parts) == 3
    for seq, p in enumerate(parts, start=1):
        assert p.esm_class == 0
        assert p.tlvs == ((0x020C, ref_bytes), (0x020E, b"\x03"), (0x020F, bytes([seq])))
        assert dict(p.tlvs)[0x020F] == bytes([seq])
    assert [len(p.short_message) for p in parts] == [153, 153, 94]


@pytest.mark.parametrize("alphabet", ["gsm7", "latin1", "ascii"])
def test_payload_is_one_part_with_message_payload(alphabet: str) -> None:
    text = "x" * 500
    (part,) = split_text(text, alphabet, "payload", 9)
    assert part.short_message == b""
    assert part.esm_class == 0
    assert part.tlvs == ((0x0424, b"x" * 500),)
    assert (part.part_no, part.total, part.data_coding) == (1, 1, 0)


def test_payload_ucs2() -> None:
    text = arabic(300)
    (part,) = split_text(text, "gsm7", "payload", 9)
    assert part.data_coding == 8
    assert dict(part.tlvs)[0x0424] == text.encode("utf-16-be")


@pytest.mark.parametrize("method", ["udh", "sar", "payload"])
@pytest.mark.parametrize(("text", "alphabet"), [("a" * 160, "gsm7"), (arabic(70), "gsm7"), ("é" * 160, "latin1"), ("", "ascii")])
def test_short_text_is_single_plain_part_for_every_method(method: str, text: str, alphabet: str) -> None:
    (part,) = split_text(text, alphabet, method, 3)
    assert part.esm_class == 0 and part.tlvs == () and (part.part_no, part.total) == (1, 1)
    assert decode_short_message(part.short_message, part.data_coding, alphabet) == text


@pytest.mark.parametrize(
    ("prefix", "first_body_len"),
    [
        (152, 152),  # the escape would occupy septets 153 and 154: it moves whole to part 2
        (151, 153),  # escape fills septets 152-153 exactly
        (150, 153),  # escape at 151-152, then one more plain septet fits
    ],
)
def test_escape_pair_never_split(prefix: int, first_body_len: int) -> None:
    text = "a" * prefix + "€" + "b" * 20
    parts = split_text(text, "gsm7", "udh", 1)
    bodies = [p.short_message[6:] for p in parts]
    assert len(bodies[0]) == first_body_len
    assert not bodies[0].endswith(b"\x1b")
    assert "".join(gsm_decode(b) for b in bodies) == text


@pytest.mark.parametrize("alphabet", ["latin1", "ascii"])
def test_octet_alphabets_count_extension_chars_as_two_septets(alphabet: str) -> None:
    parts = split_text("a" * 150 + "[]" + "b" * 10, alphabet, "udh", 1)
    bodies = [p.short_message[6:] for p in parts]
    assert bodies == [b"a" * 150 + b"[", b"]" + b"b" * 10]  # 150 + 2 septets, then ] would make 154


def test_escape_pair_never_split_when_all_extension() -> None:
    parts = split_text("{" * 100, "gsm7", "sar", 1)
    assert [len(p.short_message) for p in parts] == [152, 48]
    assert all(gsm_decode(p.short_message) == "{" * (len(p.short_message) // 2) for p in parts)


def test_arabic_71_is_67_plus_4() -> None:
    text = arabic(71)
    parts = split_text(text, "gsm7", "udh", 5)
    bodies = [p.short_message[6:] for p in parts]
    assert [len(b) for b in bodies] == [134, 8]
    assert all(p.data_coding == 8 for p in parts)
    assert "".join(b.decode("utf-16-be") for b in bodies) == text


@pytest.mark.parametrize(
    ("prefix", "first_units"),
    [
        (66, 66),  # emoji would take units 67 and 68: it moves whole to part 2
        (65, 67),  # emoji takes units 66-67 exactly
        (67, 67),  # emoji starts part 2
    ],
)
def test_surrogate_pair_never_split(prefix: int, first_units: int) -> None:
    text = arabic(prefix) + EMOJI + arabic(10)
    parts = split_text(text, "gsm7", "udh", 1)
    bodies = [p.short_message[6:] for p in parts]
    assert len(bodies[0]) == first_units * 2
    for body in bodies:
        body.decode("utf-16-be")  # strict: raises if a part ends mid-pair
    assert "".join(b.decode("utf-16-be") for b in bodies) == text


@pytest.mark.parametrize(
    ("text", "alphabet", "method"),
    [
        ("a" * 1000, "gsm7", "udh"),
        ("€x" * 300, "gsm7", "sar"),
        ("[" + "a" * 152 + "]" * 60, "gsm7", "udh"),
        (arabic(1000), "gsm7", "udh"),
        ((arabic(5) + EMOJI) * 80, "gsm7", "sar"),
        (EMOJI * 200, "latin1", "udh"),
        ("é" * 700, "latin1", "sar"),
        ("ç" * 700, "latin1", "sar"),
        ("{[ok]} " * 100, "latin1", "udh"),
        ("plain ascii " * 60, "ascii", "udh"),
    ],
)
def test_every_part_within_limits_and_decodable_alone(text: str, alphabet: str, method: str) -> None:
    parts = split_text(text, alphabet, method, 42)
    udh_len = 6 if method == "udh" else 0
    limit = UCS2_PART_BYTES if parts[0].data_coding == 8 else GSM_PART_BYTES
    pieces = []
    for p in parts:
        body = p.short_message[udh_len:]
        assert 0 < len(body) <= limit
        if p.data_coding == 8:
            pieces.append(body.decode("utf-16-be"))
        elif alphabet == "gsm7":
            assert not body.endswith(b"\x1b")
            pieces.append(gsm_decode(body))
        else:
            pieces.append(body.decode("latin-1"))
    assert "".join(pieces) == text
    assert [p.part_no for p in parts] == list(range(1, len(parts) + 1))
    assert {p.total for p in parts} == {len(parts)}


def test_long_arabic_reply() -> None:
    text = arabic(300)
    parts = split_text(text, "gsm7", "udh", 200)
    assert len(parts) == 5  # 67 * 4 = 268 < 300
    assert [len(p.short_message) - 6 for p in parts] == [134, 134, 134, 134, 64]


@pytest.mark.parametrize("method", ["udh", "sar"])
def test_255_parts_allowed_256_refused(method: str) -> None:
    assert len(split_text("a" * (153 * 255), "gsm7", method, 1)) == 255
    assert count_parts("a" * (153 * 255 + 1), "gsm7") == 256
    with pytest.raises(ValueError, match="256 parts"):
        split_text("a" * (153 * 255 + 1), "gsm7", method, 1)


def test_ucs2_256_parts_refused() -> None:
    with pytest.raises(ValueError, match="parts"):
        split_text(arabic(67 * 255 + 1), "gsm7", "udh", 1)


def test_payload_has_no_part_limit_but_a_tlv_size_limit() -> None:
    (part,) = split_text("a" * (153 * 255 + 1), "gsm7", "payload", 1)
    assert len(dict(part.tlvs)[0x0424]) == 153 * 255 + 1
    with pytest.raises(ValueError, match="message_payload"):
        split_text("a" * 65536, "gsm7", "payload", 1)


@pytest.mark.parametrize(("method", "alphabet"), [("concat", "gsm7"), ("UDH", "gsm7"), ("udh", "utf8")])
def test_split_rejects_unknown_settings(method: str, alphabet: str) -> None:
    with pytest.raises(ValueError):
        split_text("hello", alphabet, method, 1)


def test_message_part_is_immutable_and_hashable() -> None:
    parts = split_text("a" * 200, "gsm7", "sar", 1)
    assert len(set(parts)) == 2
    with pytest.raises(AttributeError):
        parts[0].esm_class = 1  # type: ignore[misc]


@pytest.mark.parametrize(
    ("text", "dc", "alphabet", "expected"),
    [
        (" ... ", 0, "gsm7", b" ... "),
        (" ... ", 8, "gsm7", " ... ".encode("utf-16-be")),
        (" … ", 8, "latin1", " … ".encode("utf-16-be")),
        (" … ", 0, "gsm7", b" ? "),
        (" € ", 0, "gsm7", b" \x1b\x65 "),
        (" é ", 0, "latin1", b" \xe9 "),
        (" é ", 0, "ascii", b" ? "),
        ("@", 0, "gsm7", b"\x00"),
        ("@", 3, "gsm7", b"@"),
        ("@", 0xF0, "latin1", b"\x00"),
        ("@", 0x18, "gsm7", b"\x00@"),
        ("@", 0x00, "bogus", b"\x00"),
    ],
)
def test_encode_as(text: str, dc: int, alphabet: str, expected: bytes) -> None:
    assert t.encode_as(text, dc, alphabet) == expected


@pytest.mark.parametrize("dc", [0x00, 0x01, 0x03, 0x04, 0x08, 0x11, 0x18, 0xF0, 0xF4])
@pytest.mark.parametrize("alphabet", ["gsm7", "latin1", "ascii"])
def test_encode_as_then_decode_keeps_plain_text(dc: int, alphabet: str) -> None:
    assert decode_short_message(t.encode_as(" ... gap ... ", dc, alphabet), dc, alphabet) == " ... gap ... "


@pytest.mark.parametrize(
    "text",
    ["HELP", "x" * 160, "{" * 80, "{" * 81, "ç", "مرحبا", "م" * 70, "م" * 71, "😀" * 35, "😀" * 36, "a\ud800b", ""],
)
@pytest.mark.parametrize("alphabet", ["gsm7", "latin1", "ascii"])
def test_single_part_fast_path_matches_the_careful_path(text: str, alphabet: str) -> None:
    """The one-part shortcut gives exactly what per-character chunking gives."""
    fast = t._single_part(text, alphabet)
    data_coding, chunks = t._char_chunks(text, alphabet)
    if t._fits_single(chunks, data_coding):
        careful = t.MessagePart(data_coding, b"".join(c for c, _ in chunks), 0, (), 1, 1)
        assert fast is None or fast == careful
        if not any(0xD800 <= ord(ch) <= 0xDFFF for ch in text):
            assert fast == careful
    else:
        assert fast is None


def _split_per_character(text: str, alphabet: str, method: str, ref: int) -> list[t.MessagePart]:
    """split_text as it was before slicing: every character's encoding chunked one by one."""
    from smsgw.text import _char_chunks, _chunk, _fits_single, _limits

    data_coding, chunks = _char_chunks(text, alphabet)
    payload = b"".join(octets for octets, _ in chunks)
    if _fits_single(chunks, data_coding):
        return [t.MessagePart(data_coding, payload, 0, (), 1, 1)]
    if method == "payload":
        return [t.MessagePart(data_coding, b"", 0, ((t.TLV_MESSAGE_PAYLOAD, payload),), 1, 1)]
    bodies = _chunk(chunks, _limits(data_coding)[1])
    total = len(bodies)
    parts = []
    for seq, body in enumerate(bodies, start=1):
        if method == "udh":
            udh = bytes([0x05, 0x00, 0x03, ref & 0xFF, total, seq])
            parts.append(t.MessagePart(data_coding, udh + body, t.ESM_CLASS_UDHI, (), seq, total))
        else:
            tlvs = (
                (t.TLV_SAR_MSG_REF_NUM, (ref & 0xFFFF).to_bytes(2, "big")),
                (t.TLV_SAR_TOTAL_SEGMENTS, bytes([total])),
                (t.TLV_SAR_SEGMENT_SEQNUM, bytes([seq])),
            )
            parts.append(t.MessagePart(data_coding, body, 0, tlvs, seq, total))
    return parts


def test_split_by_slicing_gives_the_parts_of_the_per_character_split() -> None:
    """Long replies whose characters all cost the same are cut by slicing; seeded random texts
    (GSM with and without escaped characters, Arabic, emoji, lone surrogates) must give exactly
    the parts the per-character split gives, on every alphabet and method."""
    rng = random.Random(16)
    pools = ["abc XYZ 123.,?", "abc{}[]~^€|\\", "مرحبا بكم في الخدمة ", "é£¥ØÅ", "\U0001F600ab", "\ud800x", "ÿþ"]
    for _ in range(1500):
        chosen = rng.sample(pools, rng.randint(1, 2))
        text = "".join(rng.choice(rng.choice(chosen)) for _ in range(rng.randint(1, 700)))
        for alphabet in ("gsm7", "latin1", "ascii"):
            method = rng.choice(["udh", "sar", "payload"])
            expected = _split_per_character(text, alphabet, method, 7)
            if len(expected) > t.MAX_PARTS:
                continue
            assert t.split_text(text, alphabet, method, 7) == expected, (text, alphabet, method)
