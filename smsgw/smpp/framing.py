"""Strict SMPP framing: turns a TCP byte stream into whole PDUs, and nothing else.

Modelled on Twisted's IntNStringReceiver loop, with the SMPP twist that command_length
counts itself and the rest of the header, so a length below 16 is as wrong as a huge one.
Both mean the peer is out of sync with us; no later byte can be trusted, so the link goes.
"""

from __future__ import annotations

import struct
from abc import ABCMeta, abstractmethod

from twisted.internet.protocol import Protocol

from smsgw.smpp import constants as c

_HEADER = struct.Struct(">IIII")


class SmppFraming(Protocol, metaclass=ABCMeta):
    """Delivers each complete PDU to `pdu_received`; rejects impossible lengths."""

    max_length: int = c.MAX_PDU_LENGTH

    _buffer: bytes = b""
    _closing: bool = False

    def dataReceived(self, data: bytes) -> None:
        if self._closing:
            return
        buffer = self._buffer + data if self._buffer else data
        offset = 0
        end = len(buffer)
        while end - offset >= 4:
            (length,) = struct.unpack_from(">I", buffer, offset)
            if length < c.HEADER_LENGTH or length > self.max_length:
                self._buffer = b""
                self.length_invalid(length, buffer[offset : offset + 16])
                return
            if end - offset < length:
                break
            pdu = buffer[offset : offset + length]
            offset += length
            self.pdu_received(pdu)
            if self._closing:
                return
        self._buffer = buffer[offset:]

    def length_invalid(self, length: int, header: bytes) -> None:
        """Answer generic_nack ESME_RINVCMDLEN, then drop the link (the stream is unreadable)."""
        sequence = 0
        if len(header) >= 16:
            sequence = _HEADER.unpack_from(header)[3]
        self._closing = True
        self.transport.write(_HEADER.pack(16, c.GENERIC_NACK, c.ESME_RINVCMDLEN, sequence))
        self.transport.loseConnection()

    @abstractmethod
    def pdu_received(self, raw: bytes) -> None:
        """One whole PDU, header included; subclasses decide what it means."""

    def send_raw(self, raw: bytes) -> None:
        self.transport.write(raw)
