"""Delivery receipt recognition, parsing (TLV and text) and message id normalisation."""

from __future__ import annotations

import pytest

from smsgw.dlr import FINAL_STATES, STATES, Receipt, is_receipt, normalise_message_id, parse_receipt

RECEIPTED_ID, NETWORK_ERROR, PAYLOAD, MESSAGE_STATE = 0x001E, 0x0423, 0x0424, 0x0427

KANNEL = b"id:0123456789 sub:001 dlvrd:001 submit date:2405011200 done date:2405011201 stat:DELIVRD err:000 text:Your parking"


def receipt(message_id: str, state: str, error: str | None) -> Receipt:
    return Receipt(message_id=message_id, state=state, error=error, final=state in FINAL_STATES)


# --- is_receipt ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("esm_class", "expected"),
    [
        (0x00, False),  # ordinary MO
        (0x04, True),  # SMSC delivery receipt
        (0x07, True),  # messaging-mode bits do not matter
        (0x44, True),  # receipt with UDHI
        (0x84, True),
        (0x20, True),  # intermediate delivery notification
        (0x08, False),  # SME delivery acknowledgement
        (0x10, False),  # SME manual/user acknowledgement
        (0x18, False),  # conversation abort
        (0x0C, False),  # reserved
        (0x24, False),  # reserved combination
        (0x40, False),  # UDHI alone: a multipart MO
        (0x03, False),
    ],
)
def test_is_receipt(esm_class: int, expected: bool) -> None:
    assert is_receipt(esm_class) is expected


# --- text receipts -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(KANNEL, receipt("0123456789", "DELIVRD", "000"), id="standard"),
        pytest.param(KANNEL + b"\x00", receipt("0123456789", "DELIVRD", "000"), id="nul-terminated"),
        pytest.param(KANNEL.upper(), receipt("0123456789", "DELIVRD", "000"), id="upper-case-keys"),
        pytest.param(b"ID:abc Stat:delivrd Err:0", receipt("abc", "DELIVRD", "0"), id="mixed-case"),
        pytest.param(b"id : 77   sub:1  stat :  UNDELIV   err:  0dc", receipt("77", "UNDELIV", "0dc"),
                     id="extra-spaces"),
        pytest.param(b"  id:77\tstat:EXPIRED\r\n", receipt("77", "EXPIRED", None), id="tabs-and-newlines"),
        pytest.param(b"id:77 stat:DELIVRD", receipt("77", "DELIVRD", None), id="only-id-and-stat"),
        pytest.param(b"stat:REJECTD err:011 id:5a5a", receipt("5a5a", "REJECTD", "011"), id="reordered"),
        pytest.param(b"text:hello done date:2405011201 stat:DELETED id:9", receipt("9", "DELETED", None),
                     id="text-first"),
        pytest.param(b"id:9 submit_date:2405011200 done_date:2405011201 stat:ENROUTE",
                     receipt("9", "ENROUTE", None), id="underscored-dates"),
        pytest.param(b"id:9 submitdate:2405011200 stat:ACCEPTD", receipt("9", "ACCEPTD", None), id="joined-dates"),
        pytest.param(b"id:9 stat:DELIVERED", receipt("9", "DELIVRD", None), id="long-delivered"),
        pytest.param(b"id:9 stat:UNDELIVERABLE", receipt("9", "UNDELIV", None), id="long-undeliverable"),
        pytest.param(b"id:9 stat:UNDELIVERED", receipt("9", "UNDELIV", None), id="long-undelivered"),
        pytest.param(b"id:9 stat:ACCEPTED", receipt("9", "ACCEPTD", None), id="long-accepted"),
        pytest.param(b"id:9 stat:REJECTED", receipt("9", "REJECTD", None), id="long-rejected"),
        pytest.param(b"id:9 stat:expired", receipt("9", "EXPIRED", None), id="lower-expired"),
        pytest.param(b"id:9 stat:EN_ROUTE", receipt("9", "ENROUTE", None), id="en-route-underscore"),
        pytest.param(b"id:9 stat:BUFFRED", receipt("9", "ENROUTE", None), id="buffered"),
        pytest.param(b"id:9 stat:FAILED", receipt("9", "UNDELIV", None), id="failed"),
        pytest.param(b"id:9 stat:2", receipt("9", "DELIVRD", None), id="numeric-state"),
        pytest.param(b"id:9 stat:WHATEVER", receipt("9", "UNKNOWN", None), id="unknown-state"),
        pytest.param(b"id:9 err:000", receipt("9", "UNKNOWN", "000"), id="no-state"),
        pytest.param(b"id:9 status:DELIVRD error:001", receipt("9", "DELIVRD", "001"), id="status-error-keys"),
        pytest.param(b"id:9 stat:DELIVRD err:000 text:id:1 stat:UNDELIV", receipt("9", "DELIVRD", "000"),
                     id="keys-inside-text-do-not-override"),
        pytest.param(b"id:9 stat:DELIVRD text:", receipt("9", "DELIVRD", None), id="empty-text"),
        pytest.param(b"id:9 stat: err:", receipt("9", "UNKNOWN", None), id="empty-values"),
        pytest.param(b"id:ab-12_CD stat:DELIVRD", receipt("ab-12_CD", "DELIVRD", None), id="id-kept-raw"),
    ],
)
def test_text_receipts(text: bytes, expected: Receipt) -> None:
    assert parse_receipt(text, {}) == expected


def test_text_receipt_in_message_payload() -> None:
    assert parse_receipt(b"", {PAYLOAD: KANNEL}) == receipt("0123456789", "DELIVRD", "000")


@pytest.mark.parametrize(
    "text",
    [b"", b"\x00", b"hello there", b"stat:DELIVRD err:000", b"id: stat:DELIVRD", b"\xff\xfe\x00garbage",
     b"msgid:5 stat:DELIVRD"],
)
def test_text_without_id_is_not_a_receipt(text: bytes) -> None:
    assert parse_receipt(text, {}) is None


# --- TLV receipts --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "state"),
    [(1, "ENROUTE"), (2, "DELIVRD"), (3, "EXPIRED"), (4, "DELETED"), (5, "UNDELIV"), (6, "ACCEPTD"),
     (7, "UNKNOWN"), (8, "REJECTD")],
)
def test_message_state_tlv(code: int, state: str) -> None:
    result = parse_receipt(b"", {RECEIPTED_ID: b"abc\x00", MESSAGE_STATE: bytes([code])})
    assert result == receipt("abc", state, None)


@pytest.mark.parametrize(
    ("tlvs", "text", "expected"),
    [
        pytest.param({RECEIPTED_ID: b"ABC123\x00", MESSAGE_STATE: b"\x02"}, b"", receipt("ABC123", "DELIVRD", None),
                     id="tlv-only"),
        pytest.param({RECEIPTED_ID: b"ABC123", MESSAGE_STATE: b"\x02"}, b"", receipt("ABC123", "DELIVRD", None),
                     id="id-without-nul-keeps-last-char"),
        pytest.param({RECEIPTED_ID: b"7\x00", MESSAGE_STATE: b"\x02"}, b"", receipt("7", "DELIVRD", None),
                     id="one-char-id"),
        pytest.param({RECEIPTED_ID: b"7", MESSAGE_STATE: b"\x02"}, b"", receipt("7", "DELIVRD", None),
                     id="one-char-id-without-nul"),
        pytest.param({RECEIPTED_ID: b"ab\x00\x00", MESSAGE_STATE: b"\x05"}, b"", receipt("ab", "UNDELIV", None),
                     id="padded-id"),
        pytest.param({RECEIPTED_ID: b"ff01\x00"}, b"id:65281 stat:DELIVRD err:000", receipt("ff01", "DELIVRD", "000"),
                     id="tlv-id-text-state"),
        pytest.param({MESSAGE_STATE: b"\x05"}, b"id:42 stat:DELIVRD err:000", receipt("42", "UNDELIV", "000"),
                     id="text-id-tlv-state-wins"),
        pytest.param({RECEIPTED_ID: b"\x00", MESSAGE_STATE: b"\x02"}, b"id:42", receipt("42", "DELIVRD", None),
                     id="empty-tlv-id-falls-back-to-text"),
        pytest.param({RECEIPTED_ID: b"", MESSAGE_STATE: b"\x02"}, b"id:42", receipt("42", "DELIVRD", None),
                     id="zero-length-tlv-id"),
        pytest.param({RECEIPTED_ID: b"x\x00", MESSAGE_STATE: b"\x00"}, b"stat:EXPIRED", receipt("x", "EXPIRED", None),
                     id="unknown-tlv-state-falls-back-to-text"),
        pytest.param({RECEIPTED_ID: b"x\x00", MESSAGE_STATE: b"\x09"}, b"", receipt("x", "UNKNOWN", None),
                     id="unknown-tlv-state-no-text"),
        pytest.param({RECEIPTED_ID: b"x\x00", MESSAGE_STATE: b"\x00\x02"}, b"stat:DELIVRD",
                     receipt("x", "DELIVRD", None), id="bad-length-state-ignored"),
        pytest.param({RECEIPTED_ID: b"x\x00", MESSAGE_STATE: b"\x05", NETWORK_ERROR: b"\x03\x00\x01"}, b"",
                     receipt("x", "UNDELIV", "3:1"), id="network-error-code"),
        pytest.param({RECEIPTED_ID: b"x\x00", MESSAGE_STATE: b"\x05", NETWORK_ERROR: b"\x03\x01\x00"},
                     b"err:099", receipt("x", "UNDELIV", "3:256"), id="network-error-wins-over-text"),
        pytest.param({RECEIPTED_ID: b"x\x00", MESSAGE_STATE: b"\x05", NETWORK_ERROR: b"\x03\x01"}, b"err:099",
                     receipt("x", "UNDELIV", "099"), id="bad-length-network-error-ignored"),
        pytest.param({RECEIPTED_ID: b" x \x00", MESSAGE_STATE: b"\x02"}, b"", receipt("x", "DELIVRD", None),
                     id="id-whitespace-trimmed"),
    ],
)
def test_tlv_and_mixed_receipts(tlvs: dict[int, bytes], text: bytes, expected: Receipt) -> None:
    assert parse_receipt(text, tlvs) == expected


@pytest.mark.parametrize("tlvs", [{}, {MESSAGE_STATE: b"\x02"}, {NETWORK_ERROR: b"\x03\x00\x01"},
                                  {RECEIPTED_ID: b"\x00\x00"}])
def test_tlvs_without_id_are_not_a_receipt(tlvs: dict[int, bytes]) -> None:
    assert parse_receipt(b"", tlvs) is None


@pytest.mark.parametrize(
    ("state", "final"),
    [("ENROUTE", False), ("ACCEPTD", False), ("DELIVRD", True), ("EXPIRED", True), ("DELETED", True),
     ("UNDELIV", True), ("UNKNOWN", True), ("REJECTD", True)],
)
def test_final_states(state: str, final: bool) -> None:
    result = parse_receipt(f"id:1 stat:{state}".encode(), {})
    assert result is not None
    assert result.final is final
    assert result.delivered is (state == "DELIVRD")
    assert state in STATES


# --- message id normalisation --------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "fmt", "expected"),
    [
        ("00AB12", "hex", "43794"),
        ("ab12", "hex", "43794"),
        ("AB12", "hex", "43794"),
        ("0xAB12", "hex", "43794"),
        (" ab12\x00", "hex", "43794"),
        ("43794", "dec", "43794"),
        ("0043794", "dec", "43794"),
        ("43794\x00", "dec", "43794"),
        ("  43794 ", "dec", "43794"),
        ("0", "dec", "0"),
        ("000", "dec", "0"),
        ("0", "hex", "0"),
        ("ffffffffffffffff", "hex", "18446744073709551615"),
        ("43794", "hex", "276372"),  # the format is a per-carrier fact, not a guess
        ("zz12", "hex", "zz12"),  # does not parse: falls back to "str"
        ("00ZZ12", "hex", "zz12"),
        ("12ab", "dec", "12ab"),
        ("+12", "dec", "+12"),
        ("-12", "dec", "-12"),
        ("1_000", "dec", "1_000"),  # Python's int() would accept this; an id parser must not
        ("1_f", "hex", "1_f"),
        ("٤٥", "dec", "٤٥"),  # Arabic-Indic digits are not an SMSC id format
        ("", "dec", ""),
        ("", "str", ""),
        ("0", "str", "0"),
        ("000", "str", "0"),
        ("00AbC-01", "str", "abc-01"),
        (" 007\x00 ", "str", "7"),
        ("5ab1c9e2-0000-4c5d", "str", "5ab1c9e2-0000-4c5d"),
        ("1" * 65, "dec", "1" * 65),  # too long to be a numeric id: compared as a string
    ],
)
def test_normalise_message_id(raw: str, fmt: str, expected: str) -> None:
    assert normalise_message_id(raw, fmt) == expected


@pytest.mark.parametrize(
    ("a", "fmt_a", "b", "fmt_b"),
    [
        ("00AB12", "hex", "43794", "dec"),
        ("ab12", "hex", "043794", "dec"),
        ("0A", "hex", "10", "dec"),
        ("DEADBEEF", "hex", "deadbeef", "hex"),
        ("3735928559", "dec", "deadbeef", "hex"),
        ("0000012345", "dec", "12345", "dec"),
        ("ABC-1", "str", "abc-1", "str"),
        ("00abc", "str", "ABC", "str"),
        ("12345\x00", "str", "12345", "dec"),
    ],
)
def test_normalised_ids_match(a: str, fmt_a: str, b: str, fmt_b: str) -> None:
    assert normalise_message_id(a, fmt_a) == normalise_message_id(b, fmt_b)


@pytest.mark.parametrize(
    ("a", "fmt_a", "b", "fmt_b"),
    [("10", "hex", "10", "dec"), ("abc1", "str", "abc2", "str"), ("1", "dec", "01a", "hex")],
)
def test_different_ids_stay_different(a: str, fmt_a: str, b: str, fmt_b: str) -> None:
    assert normalise_message_id(a, fmt_a) != normalise_message_id(b, fmt_b)


def test_huge_numeric_id_does_not_raise() -> None:
    assert normalise_message_id("9" * 5000, "dec") == "9" * 5000
    assert normalise_message_id("f" * 5000, "hex") == "f" * 5000


@pytest.mark.parametrize("fmt", ["HEX", "decimal", ""])
def test_unknown_id_format_is_a_config_error(fmt: str) -> None:
    with pytest.raises(ValueError, match="format"):
        normalise_message_id("1", fmt)
