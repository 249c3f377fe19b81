"""Carrier profiles: how each carrier's SMSC behaves, as data.

Each field is something real SMSCs disagree on and the gateway must cope with. The values match
the carriers section of the gateway's shipped configuration, which describes the same carriers
from the ESME's side; both are assumptions until checked against each carrier's interconnect
document. Behaviour that differs is a field here, never a subclass (Vumi's processor-per-vendor
shape made each difference hard to find).
"""

from __future__ import annotations

from dataclasses import dataclass

from smsgw.smpp import constants as c

BIND_MODES = frozenset({"transceiver", "tx_rx"})
ID_STYLES = frozenset({"hex_lower", "hex_upper", "dec", "hex_upper_padded10"})
RECEIPT_STYLES = frozenset({"tlv_and_text", "text_only"})
ALPHABETS = frozenset({"gsm7", "latin1"})
MO_LONG_METHODS = frozenset({"udh", "sar"})
USSD_SESSIONS = frozenset({"its_session_info", "user_message_reference", "msisdn"})
USSD_ABORTS = frozenset({"none", "its_session_end", "service_op", "tlv"})
VALIDITY_FORMS = frozenset({"relative", "absolute"})


@dataclass(frozen=True, kw_only=True)
class CarrierProfile:
    """One carrier's SMSC, as the gateway sees it over SMPP."""

    name: str
    #: "transceiver" accepts bind_transceiver; "tx_rx" accepts bind_transmitter + bind_receiver.
    bind_modes: frozenset[str]
    #: Status for a bind type this SMSC does not offer. ESME_RINVCMDID ("invalid command id") is
    #: what an SMSC without that bind command honestly means, and, unlike ESME_RBINDFAIL, the gateway
    #: does not treat it as a credentials problem that stops all retries.
    refused_bind_status: int = c.ESME_RINVCMDID
    #: How the message_id in submit_sm_resp is written (see `format_id`).
    message_id_style: str
    #: How the same id is written in the delivery receipt.
    receipt_id_style: str
    #: "tlv_and_text": receipted_message_id + message_state TLVs and the text; "text_only": text.
    receipt_style: str
    #: What data_coding 0 means on this SMSC.
    default_alphabet: str
    #: How a long MO is cut into deliver_sm PDUs: "udh" (8-bit reference) or "sar" TLVs.
    mo_long_method: str
    #: Vendor TLV carrying the SMSC's own id of each MO part, so an ESME can spot redeliveries.
    mo_id_tlv: int
    #: submit_sm per second before ESME_RTHROTTLED (token bucket, burst = one second's worth).
    tps_limit: float
    #: Unacknowledged deliver_sm toward one ESME session.
    window: int
    #: After a non-zero deliver_sm_resp, a lost link or no resp in time: retry after this long.
    redeliver_delay_s: float = 5.0
    #: deliver_sm without any resp after this long counts as failed (0 = wait forever).
    deliver_resp_timeout_s: float = 30.0
    #: From accepting a submit_sm to sending its delivery receipt.
    dlr_delay_s: float = 1.0
    #: Longest short_message accepted in submit_sm (octets); longer → ESME_RINVMSGLEN.
    max_sm_length: int = 254
    #: enquire_link sent to the ESME this often (0 = never); no resp by the next one → link dropped.
    enquire_link_s: float = 60.0
    #: system_id in bind responses.
    smsc_system_id: str
    #: First internal message number, so ids look like this carrier's and never start at 1.
    id_base: int
    #: How the USSD gateway marks a dialogue toward the ESME (carriers/ussd.py): its_session_info
    #: (session number + end bit), user_message_reference (echoed by the ESME), or only the MSISDN.
    ussd_session: str = "msisdn"
    #: How it reports a handset hang-up: its_session_info end bit, a vendor ussd_service_op value,
    #: a vendor TLV, or not at all ("none": the ESME's session just times out).
    ussd_abort: str = "none"
    ussd_abort_op: int | None = None
    ussd_abort_tlv: int | None = None
    #: its_session_info: how a screen is matched to its dialogue. "number" (octet 1 only) or
    #: "whole" (octet 2's sequence bits too must be those of the handset's latest input, as the
    #: network sent them: only the end bit is the ESME's).
    ussd_session_match: str = "number"
    #: service_type of the USSD deliver_sm (e.g. "USSD", by which the USSD gateway routes); when
    #: set, a screen without the same service_type is an anomaly.
    ussd_service_type: str = ""
    #: USSD submit_sm per second: the USSD gateway's own budget, apart from the SMS centre's.
    ussd_tps_limit: float = 500.0
    #: validity_period forms this SMSC reads (carriers/validity.py); another → ESME_RINVEXPIRY.
    validity_forms: frozenset[str] = frozenset({"relative", "absolute"})
    #: How long an MT to an unreachable handset is kept when the submit_sm gives no validity.
    default_validity_s: float = 2 * 86400.0
    #: The longest validity honoured; a longer one is cut to this (as SMSCs do, without refusing).
    max_validity_s: float = 7 * 86400.0

    def __post_init__(self) -> None:
        problems = []
        if not self.bind_modes or not self.bind_modes <= BIND_MODES:
            problems.append(f"bind_modes {sorted(self.bind_modes)} not within {sorted(BIND_MODES)}")
        for key in ("message_id_style", "receipt_id_style"):
            if getattr(self, key) not in ID_STYLES:
                problems.append(f"{key} {getattr(self, key)!r} not in {sorted(ID_STYLES)}")
        if self.receipt_style not in RECEIPT_STYLES:
            problems.append(f"receipt_style {self.receipt_style!r}")
        if self.default_alphabet not in ALPHABETS:
            problems.append(f"default_alphabet {self.default_alphabet!r}")
        if self.mo_long_method not in MO_LONG_METHODS:
            problems.append(f"mo_long_method {self.mo_long_method!r}")
        if self.tps_limit <= 0 or self.window < 1:
            problems.append("tps_limit and window must be positive")
        if self.ussd_session not in USSD_SESSIONS or self.ussd_abort not in USSD_ABORTS:
            problems.append(f"ussd_session {self.ussd_session!r} / ussd_abort {self.ussd_abort!r}")
        if self.ussd_abort == "its_session_end" and self.ussd_session != "its_session_info":
            problems.append("ussd_abort its_session_end needs ussd_session its_session_info")
        if self.ussd_abort == "service_op" and (self.ussd_abort_op is None or self.ussd_abort_op in c.USSD_STANDARD_OPS):
            problems.append("ussd_abort service_op needs a vendor ussd_abort_op")
        if self.ussd_abort == "tlv" and self.ussd_abort_tlv in (None, self.mo_id_tlv):
            problems.append("ussd_abort tlv needs a vendor ussd_abort_tlv other than mo_id_tlv")
        if self.ussd_session_match not in ("number", "whole") or (
                self.ussd_session_match == "whole" and self.ussd_session != "its_session_info"):
            problems.append(f"ussd_session_match {self.ussd_session_match!r} (\"whole\" needs its_session_info)")
        if self.ussd_tps_limit <= 0:
            problems.append("ussd_tps_limit must be positive")
        if not self.validity_forms or not self.validity_forms <= VALIDITY_FORMS:
            problems.append(f"validity_forms {sorted(self.validity_forms)} not within {sorted(VALIDITY_FORMS)}")
        if not 0 < self.default_validity_s <= self.max_validity_s:
            problems.append("default_validity_s must be positive and at most max_validity_s")
        if problems:
            raise ValueError(f"carrier profile {self.name}: " + "; ".join(problems))

    def accepts_bind(self, command_id: int) -> bool:
        if command_id == c.BIND_TRANSCEIVER:
            return "transceiver" in self.bind_modes
        return "tx_rx" in self.bind_modes

    def format_message_id(self, number: int) -> str:
        return format_id(number, self.message_id_style)

    def format_receipt_id(self, number: int) -> str:
        return format_id(number, self.receipt_id_style)

    def parse_message_id(self, text: str) -> int | None:
        """The internal number behind an id as written in submit_sm_resp (for query_sm)."""
        try:
            return int(text, 10 if self.message_id_style == "dec" else 16)
        except ValueError:
            return None


def format_id(number: int, style: str) -> str:
    if style == "hex_lower":
        return f"{number:x}"
    if style == "hex_upper":
        return f"{number:X}"
    if style == "hex_upper_padded10":
        return f"{number:010X}"
    if style == "dec":
        return str(number)
    raise ValueError(f"unknown id style {style!r}")


OMANTEL = CarrierProfile(
    name="omantel",
    bind_modes=frozenset({"transceiver", "tx_rx"}),
    # The classic mismatch: hex in the resp, the same number in decimal in the receipt.
    message_id_style="hex_lower",
    receipt_id_style="dec",
    receipt_style="tlv_and_text",
    default_alphabet="gsm7",
    mo_long_method="udh",
    mo_id_tlv=0x1400,
    tps_limit=200.0,
    window=10,
    redeliver_delay_s=5.0,
    dlr_delay_s=1.0,
    max_sm_length=254,
    enquire_link_s=60.0,
    smsc_system_id="OMANTEL_SMSC",
    id_base=0x2F4A0000,
    # The sixdee-style USSD gateway: its_session_info, hang-up as the end-of-session bit; it finds
    # the dialogue of a screen by the whole value, sequence bits included.
    ussd_session="its_session_info",
    ussd_abort="its_session_end",
    ussd_session_match="whole",
)

OOREDOO = CarrierProfile(
    name="ooredoo",
    # No bind_transceiver on this SMSC: a transmitter and a receiver bind are needed.
    bind_modes=frozenset({"tx_rx"}),
    refused_bind_status=c.ESME_RINVCMDID,
    message_id_style="dec",
    receipt_id_style="dec",
    # Old-style receipts: only the text in short_message, no receipt TLVs to lean on.
    receipt_style="text_only",
    default_alphabet="gsm7",
    mo_long_method="sar",
    mo_id_tlv=0x1401,
    tps_limit=150.0,
    window=20,
    redeliver_delay_s=10.0,
    dlr_delay_s=2.0,
    # One SMS worth of unpacked septets; longer texts must come as parts or in message_payload.
    max_sm_length=160,
    enquire_link_s=90.0,
    smsc_system_id="OOREDOO",
    id_base=480_000_000,
    # The dialogue is the user_message_reference the SMSC sets and the ESME echoes; a hang-up is the
    # vendor's "release" ussd_service_op 0x20 (assumed: confirm against the interconnect document).
    ussd_session="user_message_reference",
    ussd_abort="service_op",
    ussd_abort_op=0x20,
    # Its deliver_sm carry service_type "USSD", and screens are routed back by it.
    ussd_service_type="USSD",
)

FRIENDI = CarrierProfile(
    name="friendi",
    bind_modes=frozenset({"transceiver"}),
    # Upper-case hex with leading zeros in both places: matches only if compared as strings.
    message_id_style="hex_upper_padded10",
    receipt_id_style="hex_upper_padded10",
    receipt_style="tlv_and_text",
    # data_coding 0 is Latin-1 here; decoding it as GSM 03.38 garbles accented letters.
    default_alphabet="latin1",
    mo_long_method="udh",
    mo_id_tlv=0x1400,
    tps_limit=50.0,
    window=5,
    redeliver_delay_s=3.0,
    deliver_resp_timeout_s=20.0,
    dlr_delay_s=0.5,
    max_sm_length=160,
    enquire_link_s=60.0,
    smsc_system_id="FRIENDI",
    id_base=0x000A10000,
    # A small USSD gateway: no session TLV (one dialogue per MSISDN), a hang-up flagged by the
    # vendor TLV 0x1501 (assumed), and a modest USSD budget.
    ussd_session="msisdn",
    ussd_abort="tlv",
    ussd_abort_tlv=0x1501,
    ussd_tps_limit=100.0,
    # An older SMSC: it reads absolute validity times only (a relative one is refused).
    validity_forms=frozenset({"absolute"}),
)

PROFILES: dict[str, CarrierProfile] = {p.name: p for p in (OMANTEL, OOREDOO, FRIENDI)}


def get_profile(name: str) -> CarrierProfile:
    try:
        return PROFILES[name]
    except KeyError:
        raise KeyError(f"unknown carrier profile {name!r}; known: {', '.join(sorted(PROFILES))}") from None
