"""validity_period: the gateway writes it (smsgw/smpp/smpptime.py), the simulated SMSCs read it
(carriers/validity.py, written apart from the spec), and refuse what they cannot read."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from carriers import validity
from carriers.profiles import FRIENDI, OMANTEL, PROFILES
from carriers.smsc import Smsc
from smsgw.smpp import constants as c
from smsgw.smpp import smpptime
from smsgw.smpp.pdu import Pdu
from tests.stack import SHIPPED_CONFIG

NOW = datetime(2026, 12, 2, 10, 0, 0, tzinfo=UTC).timestamp()


@pytest.mark.parametrize(("seconds", "text"), [
    (86400, "000001000000000R"),
    (90061.9, "000001010101000R"),  # whole seconds, rounded down
    (60, "000000000100000R"),
    (0.4, "000000000001000R"),  # at least one second: an MT still on its way is not "expired"
    (7 * 86400, "000007000000000R"),
    (200 * 86400, "000099235959000R"),  # the most two day digits say
])
def test_relative(seconds: float, text: str) -> None:
    assert smpptime.relative(seconds) == text


@pytest.mark.parametrize(("at", "text"), [
    (NOW, "261202100000000+"),
    (NOW + 86400.25, "261203100000200+"),  # tenths of a second; UTC, offset 00
    (datetime(2027, 1, 1, 0, 0, 5, tzinfo=UTC).timestamp(), "270101000005000+"),
])
def test_absolute(at: float, text: str) -> None:
    assert smpptime.absolute(at) == text


@pytest.mark.parametrize("form", smpptime.FORMATS)
@pytest.mark.parametrize("left", [60.0, 3600.5, 86400.0, 7 * 86400.0])
def test_what_the_gateway_writes_the_smsc_reads_back(form: str, left: float) -> None:
    text = smpptime.validity_period(form, NOW + left, NOW)
    assert validity.form_of(text) == form
    expiry = validity.expiry(text, NOW)
    assert expiry is not None and NOW + left - 1.0 < expiry <= NOW + left


@pytest.mark.parametrize(("text", "expected"), [
    ("", None),
    ("000001000000000R", NOW + 86400),
    ("010100000000000R", NOW + (365 + 30) * 86400),  # a year and a month, as SMSCs count them
    ("261202140000016+", NOW),  # 14:00 at UTC+4 (16 quarter hours) is 10:00 UTC
    ("261202080000008-", NOW),  # 08:00 at UTC-2
    ("261202100000500+", NOW + 0.5),
])
def test_the_simulator_reads_both_forms(text: str, expected: float | None) -> None:
    assert validity.expiry(text, NOW) == expected


@pytest.mark.parametrize("text", [
    "1", "000001000000000r", "00000100000000R", "261302100000000+", "261202100000049+", "26120210000000 +",
])
def test_the_simulator_refuses_what_is_not_an_smpp_time(text: str) -> None:
    with pytest.raises(validity.InvalidValidity):
        validity.expiry(text, NOW)


class _Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def seconds(self) -> float:
        return self.now

    def callLater(self, *_args: object, **_kw: object) -> object:  # noqa: N802 (Twisted's name)
        raise AssertionError("no timer expected")


def _submit(validity_period: str) -> Pdu:
    return Pdu(c.SUBMIT_SM, 1, c.ESME_ROK, {
        "source_addr": "90091", "destination_addr": "96891234567", "esm_class": 0, "data_coding": 0,
        "short_message": b"hello", "registered_delivery": 0, "validity_period": validity_period,
    })


@pytest.mark.parametrize(("profile", "text", "status"), [
    (OMANTEL, "000001000000000R", c.ESME_ROK),
    (OMANTEL, "261203100000000+", c.ESME_ROK),
    (OMANTEL, "", c.ESME_ROK),  # the SMSC's default validity
    (OMANTEL, "261201100000000+", c.ESME_RINVEXPIRY),  # already past
    (OMANTEL, "tomorrow", c.ESME_RINVEXPIRY),
    (FRIENDI, "261203100000000+", c.ESME_ROK),
    (FRIENDI, "000001000000000R", c.ESME_RINVEXPIRY),  # this SMSC reads absolute times only
])
def test_an_smsc_accepts_the_validity_it_can_read(profile: object, text: str, status: int) -> None:
    clock = _Clock(NOW)
    smsc = Smsc(profile, system_id="x", password="y", clock=clock, wait_clock=clock)  # type: ignore[arg-type]
    got, mt = smsc._accept_submit(_submit(text))
    assert got == status
    if status == c.ESME_ROK:
        assert mt is not None and mt.validity_period == text
        default = NOW + smsc.profile.default_validity_s
        assert mt.expires_at == (validity.expiry(text, NOW) if text else default)
    else:
        assert mt is None and smsc.anomalies


def test_a_validity_longer_than_the_smsc_keeps_messages_is_cut_to_its_longest() -> None:
    clock = _Clock(NOW)
    smsc = Smsc(OMANTEL, system_id="x", password="y", clock=clock, wait_clock=clock)  # type: ignore[arg-type]
    _, mt = smsc._accept_submit(_submit("000030000000000R"))
    assert mt is not None and mt.expires_at == NOW + OMANTEL.max_validity_s


def test_each_carrier_is_configured_with_a_validity_form_its_smsc_reads() -> None:
    from smsgw.config import load_config

    config = load_config(SHIPPED_CONFIG)
    for carrier in config.carriers:
        assert carrier.validity_format in PROFILES[carrier.name].validity_forms, carrier.name
    assert {carrier.validity_format for carrier in config.carriers} == set(smpptime.FORMATS)
