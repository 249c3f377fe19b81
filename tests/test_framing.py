"""SmppFraming on a StringTransport, in the style of Twisted's IntNTestCaseMixin."""

from __future__ import annotations

import struct

from twisted.internet.testing import StringTransport
from twisted.trial.unittest import SynchronousTestCase

from smsgw.smpp import constants as c
from smsgw.smpp.framing import SmppFraming


def _pdu(command_id: int, sequence: int, body: bytes = b"") -> bytes:
    return struct.pack(">IIII", 16 + len(body), command_id, 0, sequence) + body


class RecordingFraming(SmppFraming):
    def __init__(self) -> None:
        self.received: list[bytes] = []

    def pdu_received(self, raw: bytes) -> None:
        self.received.append(raw)


class SmppFramingTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.transport = StringTransport()
        self.protocol = RecordingFraming()
        self.protocol.makeConnection(self.transport)

    def assert_nacked_and_closed(self, sequence: int) -> None:
        self.assertEqual(
            self.transport.value(), struct.pack(">IIII", 16, c.GENERIC_NACK, c.ESME_RINVCMDLEN, sequence)
        )
        self.assertTrue(self.transport.disconnecting)

    def test_byte_at_a_time(self) -> None:
        """PDUs fed one byte at a time are delivered whole, in order."""
        pdus = [_pdu(c.ENQUIRE_LINK, 1), _pdu(c.SUBMIT_SM_RESP, 2, b"abc\x00"), _pdu(c.UNBIND, 3)]
        for byte in b"".join(pdus):
            self.protocol.dataReceived(bytes([byte]))
        self.assertEqual(self.protocol.received, pdus)

    def test_several_in_one_chunk(self) -> None:
        """Several PDUs arriving in one read are each delivered."""
        pdus = [_pdu(c.DELIVER_SM_RESP, n, b"\x00") for n in range(1, 6)]
        self.protocol.dataReceived(b"".join(pdus))
        self.assertEqual(self.protocol.received, pdus)

    def test_partial(self) -> None:
        """A PDU split at every possible point is delivered once, only when complete."""
        pdu = _pdu(c.SUBMIT_SM_RESP, 7, b"5f3a00c1\x00")
        for cut in range(1, len(pdu)):
            protocol = RecordingFraming()
            protocol.makeConnection(StringTransport())
            protocol.dataReceived(pdu[:cut])
            self.assertEqual(protocol.received, [])
            protocol.dataReceived(pdu[cut:])
            self.assertEqual(protocol.received, [pdu])

    def test_chunk_ending_mid_pdu(self) -> None:
        """A read holding one whole PDU and the start of the next delivers the first and keeps the rest."""
        first, second = _pdu(c.ENQUIRE_LINK, 1), _pdu(c.ENQUIRE_LINK, 2)
        self.protocol.dataReceived(first + second[:5])
        self.assertEqual(self.protocol.received, [first])
        self.protocol.dataReceived(second[5:])
        self.assertEqual(self.protocol.received, [first, second])

    def test_exactly_header_length(self) -> None:
        """A command_length of exactly 16 (header only) is a valid PDU."""
        pdu = _pdu(c.ENQUIRE_LINK, 9)
        self.protocol.dataReceived(pdu)
        self.assertEqual(self.protocol.received, [pdu])
        self.assertFalse(self.transport.disconnecting)

    def test_length_too_short(self) -> None:
        """A command_length of 15 gets generic_nack ESME_RINVCMDLEN and the connection is closed."""
        self.protocol.dataReceived(struct.pack(">IIII", 15, c.ENQUIRE_LINK, 0, 4))
        self.assertEqual(self.protocol.received, [])
        self.assert_nacked_and_closed(4)

    def test_length_too_short_seen_early(self) -> None:
        """The bad length is caught from its first four octets, before the rest of the header."""
        self.protocol.dataReceived(struct.pack(">I", 15))
        self.assert_nacked_and_closed(0)

    def test_length_too_long(self) -> None:
        """A command_length of 70000 gets generic_nack ESME_RINVCMDLEN and the connection is closed."""
        self.protocol.dataReceived(struct.pack(">IIII", 70000, c.SUBMIT_SM, 0, 5))
        self.assertEqual(self.protocol.received, [])
        self.assert_nacked_and_closed(5)

    def test_max_length_accepted(self) -> None:
        """A command_length of exactly 64 KiB is still a PDU, delivered once complete."""
        pdu = _pdu(c.DATA_SM, 6, b"\x00" * (c.MAX_PDU_LENGTH - 16))
        self.protocol.dataReceived(pdu)
        self.assertEqual(len(self.protocol.received), 1)
        self.assertFalse(self.transport.disconnecting)

    def test_nothing_read_after_bad_length(self) -> None:
        """After a bad length, neither the rest of that read nor later reads are delivered."""
        good = _pdu(c.ENQUIRE_LINK, 1)
        self.protocol.dataReceived(good + struct.pack(">IIII", 3, 0, 0, 2) + good)
        self.protocol.dataReceived(good)
        self.assertEqual(self.protocol.received, [good])
