"""The network's side of USSD: handsets dialling a service code, and the dialogues that follow.

A handset dials (`UssdCentre.dial`): the SMSC sends the ESME a deliver_sm with ussd_service_op
PSSR indication (1), the dialled string and the carrier's session marker. The ESME answers with
submit_sm: USSR request (2) shows a screen and waits for the handset's answer, which comes back
as a deliver_sm USSR confirm (0x12); PSSR response (0x11) shows the final screen and ends the
dialogue. A handset that hangs up is reported the carrier's way (`CarrierProfile.ussd_abort`).

The session marker is the profile's `ussd_session`: its_session_info (octet 1 the session number,
octet 2 bit 0 end of session), user_message_reference (2 octets, set here, echoed by the ESME),
or nothing at all (the MSISDN is the dialogue). Written from the SMPP specification, not from the
gateway's codec (smsgw/ussd/variants.py): a shared bug would cancel out in every test.

USSD is carried by the carrier's USSD gateway, not its SMS centre: it has its own submit budget
(`ussd_tps_limit`), its deliver_sm go ahead of queued SMS, and screens get no delivery receipt.
A screen is one USSD string: at most 182 GSM characters, or 160 octets (80 characters) of UCS2.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IDelayedCall

from carriers import alphabet
from smsgw.log import get_logger, mask_msisdn
from smsgw.smpp import constants as c
from smsgw.smpp.pdu import Pdu

if TYPE_CHECKING:
    from carriers.smsc import Smsc

log = get_logger("carriers.ussd")

#: A dialled string: a service code, optionally followed by *-separated answers ("*141*1*1234AB#").
_DIAL_RE = re.compile(r"\*([0-9]{2,6})((?:\*[^*#]+)*)#")
_MSISDN_RE = re.compile(r"[0-9]{8,15}")
#: One USSD string on the air: 182 septets, i.e. 160 octets (GSM 03.90 / 03.38).
MAX_GSM_CHARS = 182
MAX_UCS2_OCTETS = 160
#: The ESME's side of a dialogue: a screen that waits for an answer, or the final one.
_CONTINUE_OPS = frozenset({c.USSD_USSR_REQUEST})
_FINAL_OPS = frozenset({c.USSD_PSSR_RESPONSE, c.USSD_PSSD_RESPONSE})


class UssdTimeout(TimeoutError):
    """No screen came in time; `dialogue` says what did."""

    def __init__(self, message: str, dialogue: UssdDialogue) -> None:
        super().__init__(message)
        self.dialogue = dialogue


@dataclass(frozen=True)
class UssdScreen:
    """One screen as the handset showed it."""

    text: str
    end: bool  # the final screen (PSSR response): the dialogue is over
    data_coding: int
    received_at: float
    #: From the handset's last input written to the ESME to this screen accepted (None when the
    #: screen answered no input, e.g. a release after a timeout).
    rtt_s: float | None
    message_id: str
    #: As the ESME wrote them: its_session_info (None when absent) and service_type.
    session_info: bytes | None = None
    service_type: str = ""


@dataclass(eq=False)
class UssdDialogue:
    """One handset's dialogue with the ESME, from the dial to its end."""

    id: str
    carrier: str
    msisdn: str
    service_code: str  # "*141#": where the dialogue is addressed
    ref: int | None  # its_session_info number or user_message_reference; None when keyed by MSISDN
    centre: UssdCentre = field(repr=False)
    #: What the handset sent: the dialled string first, then each answer.
    inputs: list[str] = field(default_factory=list)
    screens: list[UssdScreen] = field(default_factory=list)
    #: open | released (the ESME's final screen) | aborted (the handset hung up) | replaced
    state: str = "open"
    last_input_written_at: float | None = None
    #: its_session_info octet 2 of the latest input, end bit aside: what its screen must echo.
    last_info: int = 0
    _waiters: list[tuple[int, Deferred[UssdScreen]]] = field(default_factory=list, repr=False)
    _end_waiters: list[Deferred[UssdDialogue]] = field(default_factory=list, repr=False)

    @property
    def open(self) -> bool:
        return self.state == "open"

    def answer(self, text: str) -> None:
        """The user types `text` and presses send."""
        self.centre.answer(self, text)

    def hang_up(self) -> None:
        """The user cancels the dialogue (or the handset loses coverage)."""
        self.centre.hang_up(self)

    def wait_screen(self, index: int | None = None, timeout: float = 5.0) -> Deferred[UssdScreen]:
        """Fires with `screens[index]` once it exists; by default the screen answering the latest
        input. Errbacks with UssdTimeout after `timeout` seconds of the SMSC's wait clock."""
        if index is None:
            index = len(self.inputs) - 1
        if index < len(self.screens):
            d: Deferred[UssdScreen] = Deferred()
            d.callback(self.screens[index])
            return d
        d = Deferred()
        entry = (index, d)
        self._waiters.append(entry)
        timer = self.centre.smsc.wait_clock.callLater(timeout, self._expire_waiter, entry, timeout)
        d.addBoth(self._settled, timer)
        return d

    def wait_end(self, timeout: float = 5.0) -> Deferred[UssdDialogue]:
        """Fires with the dialogue once it is no longer open."""
        d: Deferred[UssdDialogue] = Deferred()
        if not self.open:
            d.callback(self)
            return d
        self._end_waiters.append(d)
        timer = self.centre.smsc.wait_clock.callLater(timeout, self._expire_end, d, timeout)
        d.addBoth(self._settled, timer)
        return d

    @staticmethod
    def _settled(result: Any, timer: IDelayedCall) -> Any:
        if timer.active():
            timer.cancel()
        return result

    def _expire_waiter(self, entry: tuple[int, Deferred[UssdScreen]], timeout: float) -> None:
        if entry in self._waiters:
            self._waiters.remove(entry)
            entry[1].errback(UssdTimeout(
                f"{self.carrier}: no screen {entry[0]} for {mask_msisdn(self.msisdn)} within {timeout:g}s "
                f"({len(self.screens)} received, dialogue {self.state})", self))

    def _expire_end(self, d: Deferred[UssdDialogue], timeout: float) -> None:
        if d in self._end_waiters:
            self._end_waiters.remove(d)
            d.errback(UssdTimeout(f"{self.carrier}: dialogue {self.id} still open after {timeout:g}s", self))

    def _screen_added(self) -> None:
        ready = [w for w in self._waiters if w[0] < len(self.screens)]
        for entry in ready:
            self._waiters.remove(entry)
            entry[1].callback(self.screens[entry[0]])
        if not self.open:
            self._ended()

    def _ended(self) -> None:
        waiters, self._end_waiters = self._end_waiters, []
        for d in waiters:
            d.callback(self)

    def as_dict(self) -> dict[str, Any]:
        return {"dialogue": self.id, "carrier": self.carrier, "state": self.state, "screens": len(self.screens),
                "inputs": len(self.inputs)}


class UssdCentre:
    """One carrier's USSD gateway inside its simulated SMSC."""

    def __init__(self, smsc: Smsc, bucket: Any) -> None:
        self.smsc = smsc
        self.profile = smsc.profile
        self.bucket = bucket
        self.dialogues: dict[str, UssdDialogue] = {}
        self._open: dict[tuple[str, int | None], UssdDialogue] = {}
        self._ids = itertools.count(1)
        self._refs = itertools.count(1)
        self._listeners: list[Callable[[UssdDialogue, UssdScreen], None]] = []

    # -- the handset's side -------------------------------------------------------------------

    def dial(self, msisdn: str, dialled: str) -> UssdDialogue:
        """A handset dials `dialled` ("*141#", or with answers "*141*1*1234AB#")."""
        match = _DIAL_RE.fullmatch(dialled)
        if match is None:
            raise ValueError(f"{dialled!r} is not a USSD string such as *141# or *141*1#")
        if not _MSISDN_RE.fullmatch(msisdn):
            raise ValueError(f"{msisdn!r} is not an international MSISDN")
        service_code = f"*{match.group(1)}#"
        kind = self.profile.ussd_session
        ref = None if kind == "msisdn" else self._next_ref(msisdn, 0xFF if kind == "its_session_info" else 0xFFFF)
        previous = self._open.get((msisdn, ref))
        if previous is not None:
            # One dialogue per handset (and reference): dialling again ends the old one here, and
            # the ESME sees a new PSSR indication for the same key.
            self._close(previous, "replaced")
        dialogue = UssdDialogue(f"{self.smsc.name}-{next(self._ids)}", self.smsc.name, msisdn, service_code, ref,
                                self)
        self.dialogues[dialogue.id] = dialogue
        self._open[(msisdn, ref)] = dialogue
        self.smsc.counters["ussd_dialogues"] += 1
        log.info("ussd_dial", carrier=self.smsc.name, dialogue=dialogue.id, msisdn=mask_msisdn(msisdn),
                 service_code=service_code)
        self._send(dialogue, c.USSD_PSSR_INDICATION, dialled)
        return dialogue

    def answer(self, dialogue: UssdDialogue, text: str) -> None:
        if not dialogue.open:
            raise ValueError(f"dialogue {dialogue.id} is {dialogue.state}; dial again")
        self._send(dialogue, c.USSD_USSR_CONFIRM, text)

    def hang_up(self, dialogue: UssdDialogue) -> None:
        if not dialogue.open:
            return
        abort = self.profile.ussd_abort
        if abort == "its_session_end":
            self._send(dialogue, c.USSD_USSR_CONFIRM, "", end=True, is_input=False)
        elif abort == "service_op":
            self._send(dialogue, self.profile.ussd_abort_op, "", is_input=False)
        elif abort == "tlv":
            self._send(dialogue, c.USSD_USSR_CONFIRM, "", extra={self.profile.ussd_abort_tlv: b"\x01"},
                       is_input=False)
        # abort "none": the network never tells the ESME, whose session simply times out.
        self._close(dialogue, "aborted")
        dialogue._ended()

    def _next_ref(self, msisdn: str, top: int) -> int:
        for _ in range(top):
            ref = next(self._refs) % top + 1  # 1..top: 0 reads as "no session" on some kit
            if (msisdn, ref) not in self._open:
                return ref
        raise RuntimeError("no free USSD session reference")

    def _send(self, dialogue: UssdDialogue, op: int, text: str, *, end: bool = False,
              extra: dict[int, bytes] | None = None, is_input: bool = True) -> None:
        smsc, profile = self.smsc, self.profile
        data_coding, payload = _encode_input(text, profile.default_alphabet)
        tlvs: dict[int, bytes] = {c.TLV_USSD_SERVICE_OP: bytes([op])}
        if profile.ussd_session == "its_session_info":
            # Octet 2: bits 1-7 count the handset's inputs, bit 0 ends the dialogue.
            sequence = len(dialogue.inputs) << 1 & 0xFE
            tlvs[c.TLV_ITS_SESSION_INFO] = bytes([dialogue.ref or 0, sequence | int(end)])
            if is_input:
                dialogue.last_info = sequence
        elif profile.ussd_session == "user_message_reference":
            tlvs[c.TLV_USER_MESSAGE_REFERENCE] = (dialogue.ref or 0).to_bytes(2, "big")
        tlvs[profile.mo_id_tlv] = profile.format_message_id(smsc._next_number()).encode("ascii") + b"\x00"
        tlvs.update(extra or {})
        if is_input:
            dialogue.inputs.append(text)
        smsc.counters["ussd_deliveries_queued"] += 1
        smsc._deliver_ussd(dialogue, data_coding, payload, tlvs)

    # -- the ESME's side ----------------------------------------------------------------------

    def accept_submit(self, pdu: Pdu) -> tuple[int, str | None, UssdDialogue | None]:
        """Validate a USSD submit_sm as the carrier's USSD gateway would: (status, message_id,
        dialogue). Call `screen_shown` once the submit_sm_resp is written."""
        smsc, profile = self.smsc, self.profile
        params = pdu.params
        msisdn = params.get("destination_addr", "")
        if not _MSISDN_RE.fullmatch(msisdn):
            return c.ESME_RINVDSTADR, None, None
        op = pdu.tlvs.get(c.TLV_USSD_SERVICE_OP, b"")
        if len(op) != 1 or (op[0] not in _CONTINUE_OPS and op[0] not in _FINAL_OPS):
            smsc._anomaly(f"USSD submit_sm with ussd_service_op {op.hex() or 'empty'} (not a request/response)")
            return c.ESME_RINVOPTPARAMVAL, None, None
        final = op[0] in _FINAL_OPS
        key, problem = self._key_of(msisdn, pdu.tlvs, final)
        if problem is not None:
            smsc._anomaly(f"USSD submit_sm for {mask_msisdn(msisdn)}: {problem}")
            status = c.ESME_RMISSINGOPTPARAM if "missing" in problem else c.ESME_RINVOPTPARAMVAL
            return status, None, None
        dialogue = self._open.get(key)
        if dialogue is None:
            smsc._anomaly(f"USSD screen for {mask_msisdn(msisdn)} (ref {key[1]}) but no dialogue is open")
            return c.ESME_RSUBMITFAIL, None, None
        if profile.ussd_session_match == "whole":
            sent = pdu.tlvs[c.TLV_ITS_SESSION_INFO][1] & 0xFE
            if sent != dialogue.last_info:
                # This gateway looks dialogues up by the whole value: with other sequence bits, the
                # screen matches none.
                smsc._anomaly(f"USSD screen for {mask_msisdn(msisdn)}: its_session_info octet 2 0x{sent:02X}, "
                              f"but the dialogue's latest input had 0x{dialogue.last_info:02X}")
                return c.ESME_RSUBMITFAIL, None, None
        if profile.ussd_service_type and params.get("service_type", "") != profile.ussd_service_type:
            smsc._anomaly(f"USSD screen for {mask_msisdn(msisdn)} with service_type "
                          f"{params.get('service_type', '')!r}, not the {profile.ussd_service_type!r} of its dialogue")
        data_coding = params.get("data_coding", 0)
        payload = params.get("short_message", b"") or pdu.tlvs.get(c.TLV_MESSAGE_PAYLOAD, b"")
        kind = alphabet.alphabet_of(data_coding, profile.default_alphabet)
        too_long = len(payload) > MAX_UCS2_OCTETS if kind == "ucs2" else len(payload) > MAX_GSM_CHARS
        if too_long:
            smsc._anomaly(f"USSD screen of {len(payload)} octets ({kind}) exceeds one USSD string")
            return c.ESME_RINVMSGLEN, None, None
        text, problems = alphabet.decode(payload, data_coding, profile.default_alphabet)
        for problem_text in problems:
            smsc._anomaly(f"USSD screen for {mask_msisdn(msisdn)}: {problem_text}")
        now = smsc.clock.seconds()
        answered = len(dialogue.screens) < len(dialogue.inputs)
        rtt = now - dialogue.last_input_written_at if answered and dialogue.last_input_written_at else None
        message_id = profile.format_message_id(smsc._next_number())
        screen = UssdScreen(text, final, data_coding, now, rtt, message_id, pdu.tlvs.get(c.TLV_ITS_SESSION_INFO),
                            params.get("service_type", ""))
        dialogue.screens.append(screen)
        smsc.counters["ussd_screens"] += 1
        if final:
            self._close(dialogue, "released")
        log.debug("ussd_screen", carrier=smsc.name, dialogue=dialogue.id, final=final, text=text)
        return c.ESME_ROK, message_id, dialogue

    def screen_shown(self, dialogue: UssdDialogue) -> None:
        """After the submit_sm_resp is written: the handset (and listeners) see the screen."""
        for listener in list(self._listeners):
            listener(dialogue, dialogue.screens[-1])
        dialogue._screen_added()

    def _key_of(self, msisdn: str, tlvs: dict[int, bytes], final: bool) -> tuple[tuple[str, int | None], str | None]:
        kind = self.profile.ussd_session
        if kind == "its_session_info":
            info = tlvs.get(c.TLV_ITS_SESSION_INFO)
            if info is None:
                return (msisdn, None), "its_session_info missing"
            if len(info) != 2:
                return (msisdn, None), f"its_session_info of {len(info)} octets"
            if bool(info[1] & 0x01) != final:
                return (msisdn, info[0]), "its_session_info end bit disagrees with ussd_service_op"
            return (msisdn, info[0]), None
        if kind == "user_message_reference":
            ref = tlvs.get(c.TLV_USER_MESSAGE_REFERENCE)
            if ref is None:
                return (msisdn, None), "user_message_reference missing"
            if len(ref) != 2:
                return (msisdn, None), f"user_message_reference of {len(ref)} octets"
            return (msisdn, int.from_bytes(ref, "big")), None
        return (msisdn, None), None

    def _close(self, dialogue: UssdDialogue, state: str) -> None:
        dialogue.state = state
        if self._open.get((dialogue.msisdn, dialogue.ref)) is dialogue:
            del self._open[(dialogue.msisdn, dialogue.ref)]
        self.smsc.counters[f"ussd_{state}"] += 1
        log.info("ussd_dialogue_closed", carrier=self.smsc.name, dialogue=dialogue.id, how=state,
                 screens=len(dialogue.screens))

    def input_written(self, dialogue: UssdDialogue) -> None:
        dialogue.last_input_written_at = self.smsc.clock.seconds()

    def subscribe(self, callback: Callable[[UssdDialogue, UssdScreen], None]) -> Callable[[], None]:
        self._listeners.append(callback)

        def unsubscribe() -> None:
            if callback in self._listeners:
                self._listeners.remove(callback)

        return unsubscribe

    def open_dialogues(self) -> list[UssdDialogue]:
        return list(self._open.values())

    def clear(self) -> None:
        self.dialogues = {d.id: d for d in self._open.values()}


def _encode_input(text: str, default_alphabet: str) -> tuple[int, bytes]:
    """What the handset's text looks like in the deliver_sm: 7-bit in the SMSC's default alphabet
    when it can be, else UCS2 (an Arabic answer)."""
    if alphabet.fits_gsm7(text):
        if default_alphabet == "gsm7":
            return c.DC_DEFAULT, alphabet.encode_gsm7(text)
        try:
            return c.DC_DEFAULT, text.encode("latin-1")
        except UnicodeEncodeError:
            pass
    return c.DC_UCS2, text.encode("utf-16-be")
