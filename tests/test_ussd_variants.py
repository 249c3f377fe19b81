"""Carrier USSD variants: the gateway's decode/encode (smsgw/ussd/variants.py) as tables, and the
simulators' own encoding (carriers/ussd.py) read back by the gateway's decoder."""

from __future__ import annotations

import pytest
from twisted.internet.task import Clock

from carriers.profiles import FRIENDI, OMANTEL, OOREDOO, PROFILES, CarrierProfile
from carriers.smsc import Smsc
from smsgw.config import load_config
from smsgw.message import SessionEvent
from smsgw.smpp import constants as c
from smsgw.ussd.variants import (
    DialogueMark,
    UssdIndication,
    UssdVariant,
    UssdWireError,
    read_indication,
    session_ref_of,
    submit_service_type,
    submit_tlvs,
)
from tests.stack import SHIPPED_CONFIG

MSISDN = "96892123456"
ITS = UssdVariant("its_session_info", "its_session_end")
UMR = UssdVariant("user_message_reference", "service_op", abort_op=0x20)
BY_MSISDN = UssdVariant("msisdn", "tlv", abort_tlv=0x1501)
QUIET = UssdVariant("msisdn", "none")


def op(value: int) -> dict[int, bytes]:
    return {c.TLV_USSD_SERVICE_OP: bytes([value])}


@pytest.mark.parametrize(
    ("variant", "tlvs", "expected"),
    [
        # its_session_info: octet 1 the session, octet 2 bit 0 the end flag (bits 1-7 a sequence)
        (ITS, {**op(0x01), c.TLV_ITS_SESSION_INFO: b"\x11\x00"}, (SessionEvent.NEW, "17")),
        (ITS, {**op(0x12), c.TLV_ITS_SESSION_INFO: b"\x11\x06"}, (SessionEvent.CONTINUE, "17")),
        (ITS, {**op(0x12), c.TLV_ITS_SESSION_INFO: b"\x11\x07"}, (SessionEvent.END, "17")),
        (ITS, {**op(0x00), c.TLV_ITS_SESSION_INFO: b"\xff\x00"}, (SessionEvent.NEW, "255")),
        # user_message_reference: 2 octets, the same on every PDU of the dialogue
        (UMR, {**op(0x01), c.TLV_USER_MESSAGE_REFERENCE: b"\x9c\x41"}, (SessionEvent.NEW, "40001")),
        (UMR, {**op(0x12), c.TLV_USER_MESSAGE_REFERENCE: b"\x9c\x41"}, (SessionEvent.CONTINUE, "40001")),
        (UMR, {**op(0x20), c.TLV_USER_MESSAGE_REFERENCE: b"\x9c\x41"}, (SessionEvent.END, "40001")),
        # MSISDN only: no session TLV at all; the vendor TLV (any value) is the hang-up
        (BY_MSISDN, op(0x01), (SessionEvent.NEW, MSISDN)),
        (BY_MSISDN, op(0x12), (SessionEvent.CONTINUE, MSISDN)),
        (BY_MSISDN, {**op(0x12), 0x1501: b"\x01"}, (SessionEvent.END, MSISDN)),
        (QUIET, {**op(0x12), 0x1501: b"\x01"}, (SessionEvent.CONTINUE, MSISDN)),
        # a session TLV the variant does not use is ignored
        (BY_MSISDN, {**op(0x12), c.TLV_ITS_SESSION_INFO: b"\x01\x01"}, (SessionEvent.CONTINUE, MSISDN)),
    ],
)
def test_read_indication(variant: UssdVariant, tlvs: dict[int, bytes], expected: tuple[SessionEvent, str]) -> None:
    """Each variant reads the event and the session reference its carrier writes."""
    got = read_indication(variant, MSISDN, tlvs)
    assert got is not None
    assert (got.event, got.session_ref) == expected
    assert got.op == tlvs[c.TLV_USSD_SERVICE_OP][0]


@pytest.mark.parametrize(
    ("variant", "tlvs", "status"),
    [
        (ITS, op(0x01), c.ESME_RMISSINGOPTPARAM),
        (ITS, {**op(0x01), c.TLV_ITS_SESSION_INFO: b"\x11"}, c.ESME_RINVOPTPARAMVAL),
        (UMR, op(0x12), c.ESME_RMISSINGOPTPARAM),
        (UMR, {**op(0x12), c.TLV_USER_MESSAGE_REFERENCE: b"\x01\x02\x03"}, c.ESME_RINVOPTPARAMVAL),
        (BY_MSISDN, {c.TLV_USSD_SERVICE_OP: b""}, c.ESME_RINVOPTPARAMVAL),
        (BY_MSISDN, {c.TLV_USSD_SERVICE_OP: b"\x01\x02"}, c.ESME_RINVOPTPARAMVAL),
        # operations only the application sends: a handset never does
        (BY_MSISDN, op(c.USSD_USSR_REQUEST), c.ESME_RINVOPTPARAMVAL),
        (BY_MSISDN, op(c.USSD_PSSR_RESPONSE), c.ESME_RINVOPTPARAMVAL),
        (UMR, {**op(0x21), c.TLV_USER_MESSAGE_REFERENCE: b"\x00\x01"}, c.ESME_RINVOPTPARAMVAL),
    ],
)
def test_unreadable_indications(variant: UssdVariant, tlvs: dict[int, bytes], status: int) -> None:
    """What a carrier cannot mean is refused with the deliver_sm_resp status that says why."""
    with pytest.raises(UssdWireError) as caught:
        read_indication(variant, MSISDN, tlvs)
    assert caught.value.status == status


@pytest.mark.parametrize(
    ("variant", "tlvs", "service_type", "session_id"),
    [
        # octet 2 as the network sent it, end bit aside: a screen echoes it
        (ITS, {**op(0x01), c.TLV_ITS_SESSION_INFO: b"\x11\x00"}, "", "17"),
        (ITS, {**op(0x12), c.TLV_ITS_SESSION_INFO: b"\x11\x06"}, "", "17;i=06"),
        (ITS, {**op(0x12), c.TLV_ITS_SESSION_INFO: b"\x11\xff"}, "USSD", "17;i=fe;st=USSD"),
        (UMR, {**op(0x01), c.TLV_USER_MESSAGE_REFERENCE: b"\x9c\x41"}, "USSD", "40001;st=USSD"),
        (BY_MSISDN, op(0x12), " USSD ", f"{MSISDN};st=USSD"),
        # what does not fit the field, or our mark, is not echoed
        (BY_MSISDN, op(0x12), "U;S=D", MSISDN),
        (BY_MSISDN, op(0x12), "USSD12", MSISDN),
    ],
)
def test_an_indication_keeps_what_its_screen_must_echo(
    variant: UssdVariant, tlvs: dict[int, bytes], service_type: str, session_id: str
) -> None:
    got = read_indication(variant, MSISDN, tlvs, service_type)
    assert got is not None and got.session_id == session_id
    assert session_ref_of(session_id) == got.session_ref
    assert DialogueMark.decode(session_id).encode() == session_id


@pytest.mark.parametrize(
    ("variant", "session_id", "end", "info", "service_type"),
    [
        (ITS, "17;i=06", False, b"\x11\x06", ""),
        (ITS, "17;i=06", True, b"\x11\x07", ""),  # the end bit is the screen's own
        (ITS, "17;i=fe;st=USSD", False, b"\x11\xfe", "USSD"),
        (ITS, "17", True, b"\x11\x01", ""),  # a mark stored before echoing existed
        (ITS, "17;i=zz;x=1", False, b"\x11\x00", ""),  # what cannot be read echoes nothing
    ],
)
def test_a_screen_echoes_the_session_info_and_service_type_of_its_input(
    variant: UssdVariant, session_id: str, end: bool, info: bytes, service_type: str
) -> None:
    assert submit_tlvs(variant, session_id, end)[c.TLV_ITS_SESSION_INFO] == info
    assert submit_service_type(session_id) == service_type


def test_ussn_confirm_is_ignored() -> None:
    """A USSN confirm (the acknowledgement of a notification) starts or continues nothing."""
    assert read_indication(BY_MSISDN, MSISDN, op(c.USSD_USSN_CONFIRM)) is None


@pytest.mark.parametrize(
    ("variant", "ref", "end", "expected"),
    [
        (ITS, "17", False, {**op(0x02), c.TLV_ITS_SESSION_INFO: b"\x11\x00"}),
        (ITS, "17", True, {**op(0x11), c.TLV_ITS_SESSION_INFO: b"\x11\x01"}),
        (UMR, "40001", False, {**op(0x02), c.TLV_USER_MESSAGE_REFERENCE: b"\x9c\x41"}),
        (UMR, "40001", True, {**op(0x11), c.TLV_USER_MESSAGE_REFERENCE: b"\x9c\x41"}),
        (BY_MSISDN, MSISDN, False, op(0x02)),
        (BY_MSISDN, MSISDN, True, op(0x11)),
    ],
)
def test_submit_tlvs(variant: UssdVariant, ref: str, end: bool, expected: dict[int, bytes]) -> None:
    """A screen is a USSR request (2) or, when final, a PSSR response (0x11), with the carrier's
    session marker echoed."""
    assert submit_tlvs(variant, ref, end) == expected


@pytest.mark.parametrize(("variant", "ref"), [(ITS, "256"), (ITS, None), (UMR, "65536"), (UMR, "x1")])
def test_submit_tlvs_refuses_a_reference_the_variant_cannot_carry(variant: UssdVariant, ref: str | None) -> None:
    with pytest.raises(ValueError):
        submit_tlvs(variant, ref, False)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"session": "cookie"},
        {"abort": "shrug"},
        {"session": "msisdn", "abort": "its_session_end"},
        {"abort": "service_op"},
        {"abort": "service_op", "abort_op": 0x12},
        {"abort": "tlv"},
        {"abort": "tlv", "abort_tlv": c.TLV_USSD_SERVICE_OP},
    ],
)
def test_inconsistent_variants_are_refused(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        UssdVariant(**kwargs)  # type: ignore[arg-type]


def test_shipped_config_and_simulator_profiles_describe_the_same_variants() -> None:
    """What the gateway expects of each carrier is what that carrier's simulator does, and at
    least two carriers differ."""
    config = load_config(SHIPPED_CONFIG)
    seen = set()
    for carrier in config.carriers:
        profile = PROFILES[carrier.name]
        expected = UssdVariant(profile.ussd_session, profile.ussd_abort, profile.ussd_abort_op, profile.ussd_abort_tlv)
        assert UssdVariant.of(carrier) == expected
        seen.add(expected)
    assert len(seen) == 3


def _pending_deliveries(profile: CarrierProfile) -> tuple[Smsc, list]:
    smsc = Smsc(profile, system_id="x", password="y", clock=Clock(), wait_clock=Clock())
    return smsc, smsc._pending


@pytest.mark.parametrize("profile", [OMANTEL, OOREDOO, FRIENDI], ids=lambda p: p.name)
def test_simulator_dialogue_pdus_read_back_by_the_gateway(profile: CarrierProfile) -> None:
    """The simulator's dial, answer and hang-up (written from the spec, apart from the gateway's
    codec) decode as NEW, CONTINUE and END of one session in the gateway."""
    smsc, pending = _pending_deliveries(profile)
    variant = UssdVariant(profile.ussd_session, profile.ussd_abort, profile.ussd_abort_op, profile.ussd_abort_tlv)
    dialogue = smsc.dial(MSISDN, "*141*1#")
    dialogue.answer("2")
    dialogue.hang_up()
    # USSD goes ahead of queued SMS: the newest is at the front of the SMSC's queue
    items = list(reversed(list(pending)))
    assert [item.kind for item in items] == ["ussd"] * 3
    first, answer, hang_up = (read_indication(variant, MSISDN, item.tlvs) for item in items)
    assert isinstance(first, UssdIndication) and isinstance(answer, UssdIndication)
    assert isinstance(hang_up, UssdIndication)
    assert (first.event, answer.event, hang_up.event) == (SessionEvent.NEW, SessionEvent.CONTINUE, SessionEvent.END)
    assert first.session_ref == answer.session_ref == hang_up.session_ref
    assert items[0].params["destination_addr"] == "*141#"
    assert items[0].params["short_message"] == b"*141*1#"
    assert items[0].tlvs[profile.mo_id_tlv] != items[1].tlvs[profile.mo_id_tlv]  # ids let the ESME drop redeliveries
    assert dialogue.state == "aborted"
