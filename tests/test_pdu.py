"""The PDU codec: hex fixtures both ways, parity with smpplib's encoder, strict decode errors."""

from __future__ import annotations

from typing import Any

import pytest
from smpplib import command as smpp_command

from smsgw.smpp import constants as c
from smsgw.smpp.pdu import Pdu, PduError, decode, encode, generic_nack, response_for


def _h(text: str) -> bytes:
    return bytes.fromhex(text.replace(" ", ""))


_SUBMIT_PARAMS: dict[str, Any] = {
    "service_type": "",
    "source_addr_ton": 5,
    "source_addr_npi": 0,
    "source_addr": "Muscat",
    "dest_addr_ton": 1,
    "dest_addr_npi": 1,
    "destination_addr": "96891234567",
    "esm_class": 0,
    "protocol_id": 0,
    "priority_flag": 0,
    "schedule_delivery_time": "",
    "validity_period": "",
    "registered_delivery": 1,
    "replace_if_present_flag": 0,
    "data_coding": 0,
    "sm_default_msg_id": 0,
    "sm_length": 5,
    "short_message": b"hello",
}

_DELIVER_PARAMS: dict[str, Any] = {
    "service_type": "USSD",
    "source_addr_ton": 1,
    "source_addr_npi": 1,
    "source_addr": "96891234567",
    "dest_addr_ton": 0,
    "dest_addr_npi": 0,
    "destination_addr": "*141#",
    "esm_class": 0,
    "protocol_id": 0,
    "priority_flag": 0,
    "schedule_delivery_time": "",
    "validity_period": "",
    "registered_delivery": 0,
    "replace_if_present_flag": 0,
    "data_coding": 0,
    "sm_default_msg_id": 0,
    "sm_length": 5,
    "short_message": b"*141#",
}

_DATA_SM_PARAMS: dict[str, Any] = {
    "service_type": "",
    "source_addr_ton": 1,
    "source_addr_npi": 1,
    "source_addr": "96891234567",
    "dest_addr_ton": 0,
    "dest_addr_npi": 0,
    "destination_addr": "1234",
    "esm_class": 0,
    "registered_delivery": 0,
    "data_coding": 0,
}

_BIND_PARAMS: dict[str, Any] = {
    "system_id": "smsgw",
    "password": "secret",
    "system_type": "",
    "interface_version": 0x34,
    "addr_ton": 0,
    "addr_npi": 0,
    "address_range": "",
}

# (name, wire bytes as hex, the Pdu they mean)
FIXTURES: list[tuple[str, str, Pdu]] = [
    (
        "bind_transceiver",
        "00000022 00000009 00000000 00000001 736d73677700 73656372657400 00 34 00 00 00",
        Pdu(c.BIND_TRANSCEIVER, 1, 0, dict(_BIND_PARAMS)),
    ),
    (
        "bind_transceiver_resp",
        "0000001a 80000009 00000000 00000001 534d534300 0210 0001 34",
        Pdu(c.BIND_TRANSCEIVER_RESP, 1, 0, {"system_id": "SMSC"}, {c.TLV_SC_INTERFACE_VERSION: b"\x34"}),
    ),
    (
        "bind_transmitter_resp_refused",
        "00000010 80000002 0000000e 00000002",
        Pdu(c.BIND_TRANSMITTER_RESP, 2, c.ESME_RINVPASWD),
    ),
    (
        "bind_receiver_resp",
        "00000015 80000001 00000000 00000003 534d534300",
        Pdu(c.BIND_RECEIVER_RESP, 3, 0, {"system_id": "SMSC"}),
    ),
    (
        "submit_sm_with_vendor_tlv",
        "00000043 00000004 00000000 00000007 00 05 00 4d757363617400 01 01 393638393132333435363700"
        " 00 00 00 00 00 01 00 00 00 05 68656c6c6f 0204 0002 002a 1400 0002 dead",
        Pdu(c.SUBMIT_SM, 7, 0, dict(_SUBMIT_PARAMS), {c.TLV_USER_MESSAGE_REFERENCE: b"\x00\x2a", 0x1400: b"\xde\xad"}),
    ),
    (
        "submit_sm_resp",
        "00000019 80000004 00000000 00000007 356633613030633100",
        Pdu(c.SUBMIT_SM_RESP, 7, 0, {"message_id": "5f3a00c1"}),
    ),
    (
        "deliver_sm_ussd",
        "00000045 00000005 00000000 00000009 5553534400 01 01 393638393132333435363700 00 00 2a3134312300"
        " 00 00 00 00 00 00 00 00 00 05 2a31343123 0501 0001 01 1383 0002 2a00",
        Pdu(c.DELIVER_SM, 9, 0, dict(_DELIVER_PARAMS), {c.TLV_USSD_SERVICE_OP: b"\x01", c.TLV_ITS_SESSION_INFO: b"\x2a\x00"}),
    ),
    (
        "deliver_sm_resp",
        "00000011 80000005 00000000 00000009 00",
        Pdu(c.DELIVER_SM_RESP, 9, 0, {"message_id": ""}),
    ),
    ("enquire_link", "00000010 00000015 00000000 00000003", Pdu(c.ENQUIRE_LINK, 3)),
    ("enquire_link_resp", "00000010 80000015 00000000 00000003", Pdu(c.ENQUIRE_LINK_RESP, 3)),
    ("generic_nack", "00000010 80000000 00000003 00000004", Pdu(c.GENERIC_NACK, 4, c.ESME_RINVCMDID)),
    ("unbind", "00000010 00000006 00000000 00000005", Pdu(c.UNBIND, 5)),
    ("unbind_resp", "00000010 80000006 00000000 00000005", Pdu(c.UNBIND_RESP, 5)),
    (
        "data_sm",
        "0000002f 00000103 00000000 0000000b 00 01 01 393638393132333435363700 00 00 3132333400 00 00 00"
        " 0424 0002 6869",
        Pdu(c.DATA_SM, 11, 0, dict(_DATA_SM_PARAMS), {c.TLV_MESSAGE_PAYLOAD: b"hi"}),
    ),
]


@pytest.mark.parametrize(("name", "wire", "expected"), FIXTURES, ids=[f[0] for f in FIXTURES])
def test_decode_fixture(name: str, wire: str, expected: Pdu) -> None:
    """Each fixture's bytes decode to exactly the expected fields and raw TLVs."""
    assert decode(_h(wire)) == expected


@pytest.mark.parametrize(("name", "wire", "expected"), FIXTURES, ids=[f[0] for f in FIXTURES])
def test_encode_fixture(name: str, wire: str, expected: Pdu) -> None:
    """Each fixture's Pdu encodes to exactly the fixture's bytes."""
    assert encode(expected) == _h(wire)


# (smpplib command name, our Pdu, smpplib keyword arguments for the same PDU)
SMPPLIB_PARITY: list[tuple[str, Pdu, dict[str, Any]]] = [
    ("bind_transceiver", Pdu(c.BIND_TRANSCEIVER, 1, 0, dict(_BIND_PARAMS)), dict(_BIND_PARAMS)),
    (
        "bind_transmitter",
        Pdu(c.BIND_TRANSMITTER, 2, 0, {"system_id": "gw", "password": "pw", "system_type": "VMA",
                                        "addr_ton": 1, "addr_npi": 1, "address_range": "968"}),
        {"system_id": "gw", "password": "pw", "system_type": "VMA", "addr_ton": 1, "addr_npi": 1,
         "address_range": "968"},
    ),
    ("bind_receiver", Pdu(c.BIND_RECEIVER, 3, 0, {"system_id": "gw", "password": "pw"}),
     {"system_id": "gw", "password": "pw"}),
    (
        "bind_transceiver_resp",
        Pdu(c.BIND_TRANSCEIVER_RESP, 1, 0, {"system_id": "SMSC"}, {c.TLV_SC_INTERFACE_VERSION: b"\x34"}),
        {"system_id": "SMSC", "sc_interface_version": 0x34},
    ),
    ("bind_transmitter_resp", Pdu(c.BIND_TRANSMITTER_RESP, 2, 0, {"system_id": "SMSC"}), {"system_id": "SMSC"}),
    ("bind_receiver_resp", Pdu(c.BIND_RECEIVER_RESP, 3, 0, {"system_id": "SMSC"}), {"system_id": "SMSC"}),
    (
        "submit_sm",
        Pdu(
            c.SUBMIT_SM,
            7,
            0,
            dict(_SUBMIT_PARAMS, data_coding=8, short_message="مرحبا".encode("utf-16-be")),
            {c.TLV_USER_MESSAGE_REFERENCE: b"\x00\x2a", c.TLV_SAR_MSG_REF_NUM: b"\x01\x02",
             c.TLV_SAR_TOTAL_SEGMENTS: b"\x02", c.TLV_SAR_SEGMENT_SEQNUM: b"\x01"},
        ),
        dict(_SUBMIT_PARAMS, data_coding=8, short_message="مرحبا".encode("utf-16-be"),
             user_message_reference=42, sar_msg_ref_num=0x0102, sar_total_segments=2, sar_segment_seqnum=1),
    ),
    ("submit_sm_resp", Pdu(c.SUBMIT_SM_RESP, 7, 0, {"message_id": "5f3a00c1"}), {"message_id": "5f3a00c1"}),
    (
        "deliver_sm",
        Pdu(c.DELIVER_SM, 9, 0, dict(_DELIVER_PARAMS),
            {c.TLV_ITS_SESSION_INFO: b"\x2a\x00", c.TLV_USSD_SERVICE_OP: b"\x01"}),
        dict(_DELIVER_PARAMS, its_session_info=0x2A00, ussd_service_op=1),
    ),
    ("deliver_sm_resp", Pdu(c.DELIVER_SM_RESP, 9, 0, {}), {}),
    ("enquire_link", Pdu(c.ENQUIRE_LINK, 3), {}),
    ("enquire_link_resp", Pdu(c.ENQUIRE_LINK_RESP, 3), {}),
    ("generic_nack", Pdu(c.GENERIC_NACK, 4, c.ESME_RINVCMDID), {"status": c.ESME_RINVCMDID}),
    ("unbind", Pdu(c.UNBIND, 5), {}),
    ("unbind_resp", Pdu(c.UNBIND_RESP, 5), {}),
    (
        "data_sm",
        Pdu(c.DATA_SM, 11, 0, dict(_DATA_SM_PARAMS), {c.TLV_MESSAGE_PAYLOAD: b"hi"}),
        dict(_DATA_SM_PARAMS, message_payload=b"hi"),
    ),
    ("data_sm_resp", Pdu(c.DATA_SM_RESP, 11, 0, {"message_id": "77"}), {"message_id": "77"}),
    (
        "query_sm",
        Pdu(c.QUERY_SM, 12, 0, {"message_id": "77", "source_addr": "Muscat", "source_addr_ton": 5}),
        {"message_id": "77", "source_addr": "Muscat", "source_addr_ton": 5},
    ),
]


@pytest.mark.parametrize(("name", "ours", "kwargs"), SMPPLIB_PARITY, ids=[p[0] for p in SMPPLIB_PARITY])
def test_encode_matches_smpplib(name: str, ours: Pdu, kwargs: dict[str, Any]) -> None:
    """Our table walk produces byte for byte what smpplib's own generate() produces."""
    reference = smpp_command.factory(name, sequence=ours.sequence, **kwargs)
    # smpplib's constructor keeps its dummy client's sequence; set it the way its client does.
    reference.sequence = ours.sequence
    assert encode(ours) == reference.generate()


def test_decode_round_trips_smpplib_output() -> None:
    """What smpplib generates, we decode back to the fields it was given."""
    reference = smpp_command.factory("deliver_sm", sequence=9, **dict(_DELIVER_PARAMS, ussd_service_op=2))
    reference.sequence = 9
    pdu = decode(reference.generate())
    assert pdu.params == _DELIVER_PARAMS
    assert pdu.tlv_int(c.TLV_USSD_SERVICE_OP) == 2


def _decode_error(wire: bytes) -> PduError:
    with pytest.raises(PduError) as info:
        decode(wire)
    return info.value


def _frame(command_id: int, sequence: int, body: bytes, status: int = 0) -> bytes:
    return (16 + len(body)).to_bytes(4, "big") + command_id.to_bytes(4, "big") + status.to_bytes(4, "big") + \
        sequence.to_bytes(4, "big") + body


def test_cstring_without_nul_is_rinvmsglen() -> None:
    """A C-string that runs to the end of the PDU without a NUL is ESME_RINVMSGLEN, not a read past the end."""
    error = _decode_error(_frame(c.BIND_TRANSCEIVER, 8, b"smsgw"))
    assert (error.status, error.sequence, error.command_id) == (c.ESME_RINVMSGLEN, 8, c.BIND_TRANSCEIVER)


def test_cstring_over_its_max_is_rinvparlen() -> None:
    """A system_id of 16 characters (max 15 plus NUL) is ESME_RINVPARLEN."""
    body = b"x" * 16 + b"\x00" + b"pw\x00" + b"\x00" + b"\x34\x00\x00\x00"
    error = _decode_error(_frame(c.BIND_TRANSCEIVER, 9, body))
    assert (error.status, error.sequence) == (c.ESME_RINVPARLEN, 9)


def test_cstring_at_its_max_is_accepted() -> None:
    """A system_id of exactly 15 characters plus NUL decodes."""
    body = b"x" * 15 + b"\x00" + b"pw\x00" + b"\x00" + b"\x34\x00\x00\x00"
    assert decode(_frame(c.BIND_TRANSCEIVER, 9, body)).params["system_id"] == "x" * 15


def test_short_message_past_the_end_is_rinvmsglen() -> None:
    """An sm_length larger than what is left of the PDU is ESME_RINVMSGLEN."""
    wire = bytearray(encode(Pdu(c.DELIVER_SM, 10, 0, dict(_DELIVER_PARAMS))))
    wire[-6] = 200  # sm_length
    error = _decode_error(bytes(wire))
    assert (error.status, error.sequence) == (c.ESME_RINVMSGLEN, 10)


def test_tlv_past_the_end_is_rinvoptparstream() -> None:
    """A TLV whose length runs past the end of the PDU is ESME_RINVOPTPARSTREAM."""
    body = encode(Pdu(c.DELIVER_SM, 11, 0, dict(_DELIVER_PARAMS)))[16:] + _h("0501 000a 01")
    error = _decode_error(_frame(c.DELIVER_SM, 11, body))
    assert (error.status, error.sequence) == (c.ESME_RINVOPTPARSTREAM, 11)


def test_truncated_tlv_header_is_rinvoptparstream() -> None:
    """Fewer than four octets after the mandatory fields cannot be a TLV: ESME_RINVOPTPARSTREAM."""
    body = encode(Pdu(c.DELIVER_SM, 12, 0, dict(_DELIVER_PARAMS)))[16:] + _h("0501 00")
    error = _decode_error(_frame(c.DELIVER_SM, 12, body))
    assert error.status == c.ESME_RINVOPTPARSTREAM


def test_unknown_command_id_is_rinvcmdid() -> None:
    """An unknown command_id is ESME_RINVCMDID and keeps the sequence for the generic_nack."""
    error = _decode_error(_frame(0x00000099, 13, b""))
    assert (error.status, error.sequence, error.command_id) == (c.ESME_RINVCMDID, 13, 0x99)


def test_command_length_disagreeing_with_frame_is_rinvcmdlen() -> None:
    """A command_length that is not the frame's length is ESME_RINVCMDLEN."""
    wire = _frame(c.ENQUIRE_LINK, 14, b"")
    error = _decode_error(wire + b"\x00")
    assert (error.status, error.sequence) == (c.ESME_RINVCMDLEN, 14)


def test_shorter_than_a_header_is_rinvcmdlen() -> None:
    """Fewer than 16 octets is ESME_RINVCMDLEN."""
    assert _decode_error(b"\x00\x00\x00\x0c" + b"\x00" * 8).status == c.ESME_RINVCMDLEN


def test_error_response_without_body_decodes() -> None:
    """A response with an error status may omit its body entirely."""
    pdu = decode(_frame(c.SUBMIT_SM_RESP, 15, b"", status=c.ESME_RTHROTTLED))
    assert (pdu.status, pdu.params) == (c.ESME_RTHROTTLED, {})


def test_receipted_message_id_without_nul_keeps_last_character() -> None:
    """receipted_message_id sent without its NUL (a common carrier bug) keeps every character."""
    body = encode(Pdu(c.DELIVER_SM, 16, 0, dict(_DELIVER_PARAMS)))[16:] + _h("001e 0004 41423132")
    pdu = decode(_frame(c.DELIVER_SM, 16, body))
    assert pdu.tlv_cstr(c.TLV_RECEIPTED_MESSAGE_ID) == "AB12"


def test_receipted_message_id_with_nul() -> None:
    """receipted_message_id with its NUL loses only the NUL."""
    body = encode(Pdu(c.DELIVER_SM, 17, 0, dict(_DELIVER_PARAMS)))[16:] + _h("001e 0005 4142313200")
    assert decode(_frame(c.DELIVER_SM, 17, body)).tlv_cstr(c.TLV_RECEIPTED_MESSAGE_ID) == "AB12"


def test_unknown_vendor_tlv_survives_round_trip() -> None:
    """A vendor TLV the library has never heard of reaches the caller raw and is re-encoded as is."""
    wire = _h(FIXTURES[4][1])
    pdu = decode(wire)
    assert pdu.tlvs[0x1400] == b"\xde\xad"
    assert encode(pdu) == wire


def test_error_response_encodes_header_only() -> None:
    """A response with a non-zero status and no fields is just the header, as the spec wants."""
    request = Pdu(c.DELIVER_SM, 18)
    assert encode(response_for(request, c.ESME_RX_T_APPN)) == _frame(c.DELIVER_SM_RESP, 18, b"", c.ESME_RX_T_APPN)


def test_generic_nack_helper() -> None:
    """generic_nack(seq, status) is a 16-octet generic_nack."""
    assert generic_nack(19, c.ESME_RINVCMDLEN) == _frame(c.GENERIC_NACK, 19, b"", c.ESME_RINVCMDLEN)


def test_encode_refuses_overlong_cstring() -> None:
    """Encoding a system_id longer than the spec allows raises instead of truncating silently."""
    with pytest.raises(ValueError):
        encode(Pdu(c.BIND_TRANSCEIVER, 1, 0, {"system_id": "x" * 16}))


def test_encode_refuses_overlong_short_message() -> None:
    """short_message over 254 octets must go in message_payload instead."""
    with pytest.raises(ValueError):
        encode(Pdu(c.SUBMIT_SM, 1, 0, {"short_message": b"x" * 255}))
