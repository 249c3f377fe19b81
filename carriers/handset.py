"""The handset end of MTs: pull the concatenation info out of a submit_sm and reassemble.

A handset joins parts by (sender, reference, total), puts them in sequence order whatever order
they arrived in, and only then decodes, so a GSM escape or a UTF-16 surrogate pair that was cut
between parts shows up here exactly as garbled as it would on a phone.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from carriers import alphabet
from carriers.records import Concat, HandsetMessage, MtRecord
from smsgw.smpp import constants as c

IE_CONCAT_8BIT = 0x00
IE_CONCAT_16BIT = 0x08


class MalformedMessage(ValueError):
    """The submit_sm's UDH or SAR fields cannot be what the ESME meant; `status` is the answer."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status


ESME_RINVESMCLASS = 0x00000043


def split_submit(esm_class: int, short_message: bytes, tlvs: dict[int, bytes]) -> tuple[bytes, int, Concat | None]:
    """(text payload, UDH length incl. its length octet, concatenation info) of one submit_sm."""
    payload = short_message
    if c.TLV_MESSAGE_PAYLOAD in tlvs:
        if short_message:
            # SMPP v3.4 5.3.2.32: short_message and message_payload must not both be used.
            raise MalformedMessage(c.ESME_ROPTPARNOTALLWD, "short_message and message_payload both present")
        payload = tlvs[c.TLV_MESSAGE_PAYLOAD]
    udh_len = 0
    concat: Concat | None = None
    if esm_class & c.ESM_CLASS_UDHI:
        if not payload:
            raise MalformedMessage(ESME_RINVESMCLASS, "UDHI set but no user data")
        udhl = payload[0]
        if udhl + 1 > len(payload):
            raise MalformedMessage(ESME_RINVESMCLASS, "UDH length runs past the user data")
        udh = payload[1 : 1 + udhl]
        pos = 0
        while pos < len(udh):
            if pos + 2 > len(udh):
                raise MalformedMessage(ESME_RINVESMCLASS, "truncated information element in UDH")
            iei, iel = udh[pos], udh[pos + 1]
            data = udh[pos + 2 : pos + 2 + iel]
            if len(data) != iel:
                raise MalformedMessage(ESME_RINVESMCLASS, "information element runs past the UDH")
            if iei == IE_CONCAT_8BIT and iel == 3:
                concat = Concat("udh8", data[0], data[1], data[2])
            elif iei == IE_CONCAT_16BIT and iel == 4:
                concat = Concat("udh16", int.from_bytes(data[:2], "big"), data[2], data[3])
            pos += 2 + iel
        udh_len = udhl + 1
        payload = payload[udh_len:]
    sar = [tlvs.get(t) for t in (c.TLV_SAR_MSG_REF_NUM, c.TLV_SAR_TOTAL_SEGMENTS, c.TLV_SAR_SEGMENT_SEQNUM)]
    if any(v is not None for v in sar):
        if any(v is None for v in sar):
            raise MalformedMessage(c.ESME_RMISSINGOPTPARAM, "SAR TLVs must come as a set of three")
        if concat is not None:
            raise MalformedMessage(ESME_RINVESMCLASS, "both a concatenation UDH and SAR TLVs")
        concat = Concat("sar", *(int.from_bytes(v, "big") for v in sar))  # type: ignore[arg-type]
    if concat is not None and not (1 <= concat.seq <= concat.total):
        raise MalformedMessage(c.ESME_RINVOPTPARAMVAL, f"part {concat.seq} of {concat.total}")
    return payload, udh_len, concat


@dataclass
class _Partial:
    parts: dict[int, MtRecord] = field(default_factory=dict)


class Handset:
    """Reassembles MTs into what each handset displays. Pure state: no clock, no I/O."""

    def __init__(self, default_alphabet: str) -> None:
        self.default_alphabet = default_alphabet
        self._partial: dict[tuple[str, str, str, int, int], _Partial] = {}

    def receive(self, mt: MtRecord) -> tuple[HandsetMessage | None, list[str]]:
        """Take one accepted part; returns the message it completes (if any) and anomalies."""
        if mt.concat is None or mt.concat.total == 1:
            text, problems = alphabet.decode(mt.payload, mt.data_coding, self.default_alphabet)
            method = "payload" if c.TLV_MESSAGE_PAYLOAD in mt.tlvs else "single"
            message = HandsetMessage(
                mt.dest, mt.source, text, 1, mt.data_coding, (mt.message_id,), method, mt.received_at, tuple(problems)
            )
            return message, list(problems)
        concat = mt.concat
        key = (mt.dest, mt.source, concat.method, concat.ref, concat.total)
        partial = self._partial.setdefault(key, _Partial())
        anomalies: list[str] = []
        if concat.seq in partial.parts:
            anomalies.append(f"duplicate part {concat.seq}/{concat.total} (ref {concat.ref}) ignored")
            return None, anomalies
        partial.parts[concat.seq] = mt
        if len(partial.parts) < concat.total:
            return None, anomalies
        del self._partial[key]
        ordered = [partial.parts[i] for i in range(1, concat.total + 1)]
        codings = {p.data_coding for p in ordered}
        if len(codings) > 1:
            anomalies.append(f"parts of one message use different data_coding {sorted(codings)}")
        data = b"".join(p.payload for p in ordered)
        text, problems = alphabet.decode(data, ordered[0].data_coding, self.default_alphabet)
        anomalies.extend(problems)
        message = HandsetMessage(
            mt.dest,
            mt.source,
            text,
            concat.total,
            ordered[0].data_coding,
            tuple(p.message_id for p in ordered),
            concat.method,
            mt.received_at,
            tuple(problems),
        )
        return message, anomalies

    def incomplete(self) -> list[tuple[str, str, int, int, list[int]]]:
        """(msisdn, method, ref, total, parts received) of every message still missing parts."""
        return [
            (key[0], key[2], key[3], key[4], sorted(p.parts)) for key, p in self._partial.items()
        ]

    def clear(self) -> None:
        self._partial.clear()
