"""Gateway configuration: one TOML file → frozen dataclasses, or one `ConfigError` listing every problem.

Operators edit the file by hand, so a bad value must be reported the way a compiler reports a bad line:
`config/gateway.toml:23: carriers.omantel.window: must be an integer between 1 and 1000, got "ten"`.
`tomllib` keeps no positions, hence `_Locator`, a best-effort scanner that maps key paths back to lines.
All problems are collected before raising, so one edit-and-retry cycle fixes them all.

Key paths in messages are dotted TOML keys; elements of arrays (and of `[[routes]]`) are shown with a
0-based index: `routes[0].aliases[2]`.
"""

from __future__ import annotations

import ipaddress
import os
import re
import unicodedata
from pathlib import Path
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from smsgw.abuse import AbuseConfig
from smsgw.redelivery import DEFAULT_WINDOW_S as DEFAULT_MO_DEDUPE_WINDOW_S
from smsgw.files import group_id
from smsgw.smpp import constants as smpp
from smsgw.tomlcheck import (
    _MISSING,
    ConfigError,
    ConfigIssue,
    KeyPath,
    _Checker,
    _fmt_num,
    _render_path,
    _show,
    _suggest,
    _Table,
    parse_toml,
    read_toml_text,
)

__all__ = [
    "ADMIN_ROLES",
    "KNOWN_PROFILES",
    "AdminConfig",
    "AdminToken",
    "CarrierConfig",
    "ConfigError",
    "ConfigIssue",
    "GatewayConfig",
    "RouteConfig",
    "SimulatorConfig",
    "load_config",
    "parse_config",
]

KNOWN_PROFILES: tuple[str, ...] = ("omantel", "ooredoo", "friendi")

BIND_MODES = ("transceiver", "tx_rx")
ALPHABETS = ("gsm7", "latin1", "ascii")
LONG_MESSAGE_METHODS = ("udh", "sar", "payload")
ID_FORMATS = ("hex", "dec", "str")
VALIDITY_FORMATS = ("relative", "absolute")  # smsgw/smpp/smpptime.py
LOG_LEVELS = ("debug", "info", "warning", "error")

# SMPP C-Octet strings count their terminating NUL: system_id 16, password 9, system_type 13 octets.
MAX_SYSTEM_ID = 15
MAX_PASSWORD = 8
MAX_SYSTEM_TYPE = 12

# TLVs the gateway itself reads for another purpose; naming one of them as the MO id tag would make the
# gateway mistake segment numbers, states or USSD operations for message ids.  receipted_message_id is
# deliberately absent: on a deliver_sm that is not a receipt some SMSCs do carry the MO's own id in it.
_TLVS_WITH_OTHER_MEANING: Mapping[int, str] = {
    smpp.TLV_SAR_MSG_REF_NUM: "sar_msg_ref_num",
    smpp.TLV_SAR_TOTAL_SEGMENTS: "sar_total_segments",
    smpp.TLV_SAR_SEGMENT_SEQNUM: "sar_segment_seqnum",
    smpp.TLV_MESSAGE_PAYLOAD: "message_payload",
    smpp.TLV_MESSAGE_STATE: "message_state",
    smpp.TLV_USSD_SERVICE_OP: "ussd_service_op",
    smpp.TLV_ITS_SESSION_INFO: "its_session_info",
}

# Numbering plan indicators defined by SMPP v3.4 section 5.2.6; anything else is a typo.
_NPI_VALUES = (0, 1, 3, 4, 6, 8, 9, 10, 14, 18)

_NAME_RE = re.compile(r"[a-z0-9_]+")
_SHORT_CODE_RE = re.compile(r"[0-9]{3,8}")
_BARE_KEY_RE = re.compile(r"[A-Za-z0-9_-]+")
# Numbers, booleans and dates contain none of these characters; only dates may contain a space.
_SCALAR_RE = re.compile(r"[^,\]}#\r\n]+")
# The router tokenises on these, so a keyword containing one could never match a message.
_KEYWORD_SEPARATORS = re.compile(r"[\s*#\-]")


# --------------------------------------------------------------------------------------------------
# Result types


@dataclass(frozen=True, kw_only=True)
class CarrierConfig:
    """One SMPP account at one SMSC, as `[carriers.<name>]` describes it."""

    name: str
    host: str = "127.0.0.1"
    port: int  # 0: use the embedded simulator's actual (ephemeral) port
    system_id: str
    password: str = field(repr=False)  # kept out of logs that print the config
    system_type: str = ""
    bind_mode: str = "transceiver"  # "transceiver" | "tx_rx"
    window: int = 10
    tps: float = 100.0
    enquire_link_s: float = 30.0
    response_timeout_s: float = 10.0
    reconnect_initial_s: float = 1.0
    reconnect_max_s: float = 60.0
    default_alphabet: str = "gsm7"  # what data_coding 0 means on this SMSC
    long_message: str = "udh"  # "udh" | "sar" | "payload"
    resp_id_format: str = "hex"  # message_id in submit_sm_resp
    receipt_id_format: str = "dec"  # id in the delivery receipts
    mo_id_tlv: int | None = None
    short_codes: tuple[str, ...]
    validity_s: int = 86400
    validity_format: str = "relative"  # how validity_period is written: "relative" | "absolute"
    source_addr_ton: int = 3
    source_addr_npi: int = 0
    dest_addr_ton: int = 1
    dest_addr_npi: int = 1
    registered_delivery: int = 1
    enabled: bool = True
    # USSD (smsgw/ussd/variants.py): how this carrier's USSD gateway marks a dialogue and a hang-up.
    ussd_session: str = "msisdn"  # "its_session_info" | "user_message_reference" | "msisdn"
    ussd_abort: str = "none"  # "none" | "its_session_end" | "service_op" | "tlv"
    ussd_abort_op: int | None = None  # the vendor ussd_service_op value meaning "hung up"
    ussd_abort_tlv: int | None = None  # the vendor TLV whose presence means "hung up"
    ussd_timeout_s: float = 180.0  # a dialogue idle this long is released, the network told
    ussd_tps: float = 100.0  # USSD screens per second we send, at most (the USSD gateway's own budget)
    # Binds the carrier allows this account at once: with several nodes (store_url), each holds at
    # most one, leased through the database, and sends at tps / max_binds (smsgw/cluster.py).
    max_binds: int = 1


@dataclass(frozen=True, kw_only=True)
class SimulatorConfig:
    """An in-process SMSC simulator standing in for the carrier of the same name."""

    name: str
    profile: str
    host: str = "127.0.0.1"
    port: int  # 0: ephemeral
    system_id: str
    password: str = field(repr=False)  # kept out of logs that print the config
    tps: float | None = None  # overrides the profile's throttle limit


@dataclass(frozen=True, kw_only=True)
class RouteConfig:
    """Keyword (and aliases) on some short codes → handler name.  Empty short_codes: every short code."""

    keyword: str
    aliases: tuple[str, ...] = ()
    handler: str
    short_codes: tuple[str, ...] = ()


# --- admin API ([admin] and [[admin.tokens]]) -------------------------------------------------------

#: read-only: look; admin: look and change.
ADMIN_ROLES: tuple[str, ...] = ("read-only", "admin")
# Bearer tokens are guessed offline at no cost to the guesser; 20 characters of a random
# token_urlsafe are ~120 bits.
MIN_TOKEN_LENGTH = 20
_TOKEN_RE = re.compile(r"[\x21-\x7e]+")  # printable ASCII, no spaces: it travels in an HTTP header
_TOKEN_NAME_RE = re.compile(r"[a-z0-9_-]+")


@dataclass(frozen=True, kw_only=True)
class AdminToken:
    """A named bearer token of the admin API."""

    name: str  # shown in logs and audit records instead of the token
    token: str = field(repr=False)  # never logged, never echoed in errors
    role: str  # one of ADMIN_ROLES


@dataclass(frozen=True, kw_only=True)
class AdminConfig:
    """The admin HTTP API; disabled unless the file has an [admin] section."""

    enabled: bool = False
    host: str = "127.0.0.1"  # loopback only: the API has no TLS
    port: int = 12790  # 0: an ephemeral port (tests)
    tokens: tuple[AdminToken, ...] = ()
    # Limits that make a client without a token, or a slow one, cost the gateway next to nothing.
    max_body_bytes: int = 1024 * 1024  # the API takes small JSON documents, never uploads
    header_timeout_s: float = 10.0  # from a request's first byte to the end of its headers
    body_timeout_s: float = 30.0  # from the end of the headers to the end of the body
    idle_timeout_s: float = 60.0  # a kept-alive connection with no request
    max_connections_per_address: int = 32  # open at once from one client address (a proxy counts as one)


@dataclass(frozen=True, kw_only=True)
class ClusterConfig:
    """`[cluster]`: leases of nodes on one PostgreSQL store (smsgw/cluster.py); unused on SQLite.

    A dead node's binds are taken over within lease_s + heartbeat_s (plus the bind); a node that
    cannot renew its lease cuts its binds fence_margin_s before the lease could pass."""

    lease_s: float = 6.0
    heartbeat_s: float = 1.5
    fence_margin_s: float = 1.5


@dataclass(frozen=True, kw_only=True)
class GatewayConfig:
    """The whole validated configuration.

    `store_path` is used as written: a relative path resolves against the process's current working
    directory, not against the configuration file's directory.  `store_url` (a PostgreSQL URL)
    replaces it for several nodes on one database; `store_location` is whichever is in force.
    """

    path: str
    store_path: str = "var/smsgw.sqlite3"
    store_url: str | None = None
    #: A group whose members may read the store and settlement files (0640); None: the owner only (0600).
    file_group: str | None = None
    log_level: str = "info"
    mo_reassembly_timeout_s: float = 120.0
    #: An MO with the carrier id and the content of one accepted this recently is a redelivery.
    mo_dedupe_window_s: float = DEFAULT_MO_DEDUPE_WINDOW_S
    shutdown_timeout_s: float = 5.0
    embedded_simulators: bool = True
    control_host: str = "127.0.0.1"
    control_port: int = 12780
    carriers: tuple[CarrierConfig, ...]
    simulators: tuple[SimulatorConfig, ...] = ()
    routes: tuple[RouteConfig, ...] = ()
    abuse: AbuseConfig = field(default_factory=AbuseConfig)
    admin: AdminConfig = field(default_factory=AdminConfig)
    cluster: ClusterConfig = field(default_factory=lambda: ClusterConfig())
    #: This node's name among several on one PostgreSQL (`smsgw run --node`); None: derived.
    node: str | None = None

    @property
    def store_location(self) -> str:
        """What the store opens: the PostgreSQL URL if one is set, else the SQLite file."""
        return self.store_url if self.store_url is not None else self.store_path

    def carrier(self, name: str) -> CarrierConfig:
        for carrier in self.carriers:
            if carrier.name == name:
                return carrier
        raise KeyError(name)

    def simulator(self, name: str) -> SimulatorConfig | None:
        for simulator in self.simulators:
            if simulator.name == name:
                return simulator
        return None

    @property
    def config_dir(self) -> Path:
        """The folder of this file, where the features' own files (parking.toml…) live."""
        return Path(self.path).resolve().parent if self.path else Path.cwd()

    @property
    def short_codes(self) -> dict[str, tuple[str, ...]]:
        """Enabled carriers with the short codes each serves."""
        return {carrier.name: carrier.short_codes for carrier in self.carriers if carrier.enabled}


# --------------------------------------------------------------------------------------------------
# Entry points


def load_config(
    path: str | os.PathLike[str],
    known_handlers: Iterable[str] | None = None,
    known_profiles: Iterable[str] = KNOWN_PROFILES,
) -> GatewayConfig:
    """Read and validate a configuration file; raise `ConfigError` naming file, line and key."""
    name = os.fspath(path)
    return parse_config(read_toml_text(name), name, known_handlers, known_profiles)


def parse_config(
    text: str,
    path: str = "<string>",
    known_handlers: Iterable[str] | None = None,
    known_profiles: Iterable[str] = KNOWN_PROFILES,
) -> GatewayConfig:
    """Validate TOML text; `path` is only used to name the source in messages and `GatewayConfig.path`."""
    data, checker = parse_toml(text, path)
    config = _build(
        checker,
        data,
        path,
        None if known_handlers is None else tuple(known_handlers),
        tuple(known_profiles),
    )
    if checker.issues:
        raise ConfigError(checker.issues)
    return config


def _short_codes(table: _Table, key: str, default: Any = _MISSING, at_least_one: bool = False) -> Any:
    items = table.array(key, default)
    if items is None:
        return None
    if items == () or items == []:
        if at_least_one:
            table.error(key, 'must list at least one short code, e.g. ["90091"]')
            return None
        return ()
    good: list[str] = []
    ok = True
    for i, code in enumerate(items):
        path = table.path + (key, i)
        if isinstance(code, int) and not isinstance(code, bool):
            table.checker.error(path, f'must be a string of digits in quotes, e.g. "{code}", got {code}')
            ok = False
        elif not isinstance(code, str) or not _SHORT_CODE_RE.fullmatch(code):
            table.checker.error(path, f"must be 3 to 8 ASCII digits, got {_show(code)}")
            ok = False
        elif code in good:
            table.checker.error(path, f"{_show(code)} is listed twice")
            ok = False
        else:
            good.append(code)
    return tuple(good) if ok else None


def _tlv_tag(table: _Table, key: str, purpose: str = "carry the carrier's MO message id") -> Any:
    """A 16-bit tag, written as an integer or a "0x1400" string because that is how specs print tags."""
    value = table.raw(key, None)
    if value is _MISSING:
        return None
    tag: int | None = None
    if isinstance(value, int) and not isinstance(value, bool):
        tag = value
    elif isinstance(value, str):
        try:
            tag = int(value, 16) if value.lower().startswith("0x") else int(value, 10)
        except ValueError:
            tag = None
    if tag is None or not 1 <= tag <= 0xFFFF:
        table.error(
            key,
            'must be a TLV tag between 0x0001 and 0xFFFF (an integer or a string like "0x1400"), '
            f"got {_show(value)}",
        )
        return None
    if tag in _TLVS_WITH_OTHER_MEANING:
        table.error(
            key,
            f"0x{tag:04X} is {_TLVS_WITH_OTHER_MEANING[tag]}, which the gateway reads for its own purpose; "
            f"it cannot {purpose}",
        )
        return None
    return tag


def _name(checker: _Checker, path: KeyPath, what: str) -> None:
    if not _NAME_RE.fullmatch(str(path[-1])):
        # The name shows up in logs, the store and metrics, where spaces or capitals are a nuisance.
        checker.error(path, f"{what} name must use only lower-case letters, digits and _")


# --------------------------------------------------------------------------------------------------
# The schema


def _build(
    checker: _Checker,
    data: dict[str, Any],
    path: str,
    known_handlers: tuple[str, ...] | None,
    known_profiles: tuple[str, ...],
) -> GatewayConfig:
    root = _Table(checker, (), data)

    gw = _Table(checker, ("gateway",), root.table("gateway", {}) or {})
    store_path = gw.string("store_path", "var/smsgw.sqlite3", min_len=1)
    store_url = _store_url(gw)
    file_group = _file_group(gw)
    log_level = gw.choice("log_level", "info", LOG_LEVELS)
    mo_reassembly_timeout_s = gw.number("mo_reassembly_timeout_s", 120.0, hi=86400)
    mo_dedupe_window_s = gw.number("mo_dedupe_window_s", DEFAULT_MO_DEDUPE_WINDOW_S, lo=60.0, hi=30 * 86400.0)
    shutdown_timeout_s = gw.number("shutdown_timeout_s", 5.0, hi=300)
    embedded = gw.boolean("embedded_simulators", True)
    gw.finish()

    control = _Table(checker, ("control",), root.table("control", {}) or {})
    control_host = control.string("host", "127.0.0.1", min_len=1)
    control_port = control.integer("port", 12780, 0, 65535)
    control.finish()

    abuse = _abuse(_Table(checker, ("abuse",), root.table("abuse", {}) or {}))

    carriers = _carriers(checker, root)
    simulators = _simulators(checker, root, known_profiles)
    routes = _routes(checker, root)
    admin = _admin(checker, root)
    cluster = _cluster(_Table(checker, ("cluster",), root.table("cluster", {}) or {}))
    root.finish()

    _check_carriers_and_simulators(checker, carriers, simulators, embedded, control_port)
    _check_routes(checker, routes, carriers, known_handlers)
    _check_admin_port(checker, admin, simulators, embedded, control_port)
    _check_carrier_ports(checker, carriers, simulators, admin, embedded, (control_host, control_port))

    return GatewayConfig(
        path=path,
        store_path=store_path,
        store_url=store_url,
        file_group=file_group,
        log_level=log_level,
        mo_reassembly_timeout_s=mo_reassembly_timeout_s,
        mo_dedupe_window_s=mo_dedupe_window_s,
        shutdown_timeout_s=shutdown_timeout_s,
        embedded_simulators=embedded,
        control_host=control_host,
        control_port=control_port,
        carriers=tuple(carriers),
        simulators=tuple(simulators),
        routes=tuple(routes),
        abuse=abuse,
        admin=admin,
        cluster=cluster,
    )


def _store_url(gw: _Table) -> str | None:
    """`store_url = "postgresql://user@host:port/db"`, instead of `store_path`, never with it."""
    url = gw.string("store_url", None, min_len=1)
    if url is None:
        return None
    if "store_path" in gw.data:
        gw.error("store_url", "set either store_path (SQLite) or store_url (PostgreSQL), not both")
        return None
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a port that is not a number
    except ValueError as exc:
        gw.error("store_url", f"not a valid URL ({exc})")
        return None
    if parts.scheme not in ("postgresql", "postgres"):
        gw.error("store_url", "must be a postgresql:// URL (postgresql://user@host:port/database),"
                             f" got scheme {parts.scheme + ':' if parts.scheme else 'none'}")
        return None
    if not parts.path.strip("/") and "dbname=" not in parts.query:
        gw.error("store_url", "names no database (postgresql://user@host:port/database)")
        return None
    if parts.password:
        gw.error("store_url", "must not hold a password: put it in ~/.pgpass or PGPASSWORD, or use a "
                              "client certificate (?sslcert=...), so the config can be shared")
        return None
    return url
def _file_group(t: _Table) -> str | None:
    name = t.string("file_group", None, min_len=1)
    if name is None:
        return None
    try:
        group_id(name)
    except KeyError:
        t.error("file_group", f"no group named {_show(name)} on this machine")
        return None
    return name


def _cluster(t: _Table) -> ClusterConfig:
    d = ClusterConfig()
    lease = t.number("lease_s", d.lease_s, lo=1.0, hi=600.0)
    heartbeat = t.number("heartbeat_s", d.heartbeat_s, lo=0.05, hi=300.0)
    margin = t.number("fence_margin_s", d.fence_margin_s, lo=0.0, hi=300.0)
    t.finish()
    if lease is not None and heartbeat is not None and margin is not None and heartbeat * 2 > lease - margin:
        # Two heartbeats must fit before the fence, or one slow round trip cuts every bind.
        key = "heartbeat_s" if "heartbeat_s" in t.data else "lease_s"
        t.error(key, f"heartbeat_s ({_fmt_num(heartbeat)}) must fit twice in lease_s - fence_margin_s"
                     f" ({_fmt_num(lease)} - {_fmt_num(margin)})")
    return ClusterConfig(
        lease_s=d.lease_s if lease is None else lease,
        heartbeat_s=d.heartbeat_s if heartbeat is None else heartbeat,
        fence_margin_s=d.fence_margin_s if margin is None else margin,
    )


def _abuse(t: _Table) -> AbuseConfig:
    d = AbuseConfig()
    config = AbuseConfig(
        max_messages=t.integer("max_messages", d.max_messages, 1, 100_000),
        window_s=t.number("window_s", d.window_s, lo=1.0, hi=86400.0),
        loop_repeats=t.integer("loop_repeats", d.loop_repeats, 2, 1000),
        loop_window_s=t.number("loop_window_s", d.loop_window_s, lo=1.0, hi=86400.0),
        loop_echoes=t.integer("loop_echoes", d.loop_echoes, 1, 1000),
        loop_cooldown_s=t.number("loop_cooldown_s", d.loop_cooldown_s, lo=1.0, hi=7 * 86400.0),
        alphanumeric_senders=t.choice("alphanumeric_senders", d.alphanumeric_senders, ("ignore", "process")),
        foreign_senders=t.choice("foreign_senders", d.foreign_senders, ("process", "ignore")),
        home_country_code=t.string("home_country_code", d.home_country_code, min_len=1),
        max_tracked=t.integer("max_tracked_senders", d.max_tracked, 100, 10_000_000),
    )
    t.finish()
    return config


def _tables_under(checker: _Checker, root: _Table, key: str, what: str) -> list[tuple[KeyPath, dict[str, Any]]]:
    section = root.table(key, {})
    if not section:
        return []
    found = []
    for name, value in section.items():
        path: KeyPath = (key, name)
        if not isinstance(value, dict):
            checker.error(path, f"must be a table [{key}.<name>] describing one {what}, got {_show(value)}")
            continue
        _name(checker, path, what)
        found.append((path, value))  # even when misnamed: its own keys may hold more errors to report
    return found


def _carriers(checker: _Checker, root: _Table) -> list[CarrierConfig]:
    carriers = []
    for path, data in _tables_under(checker, root, "carriers", "carrier"):
        t = _Table(checker, path, data)
        carrier = CarrierConfig(
            name=str(path[-1]),
            host=t.string("host", "127.0.0.1", min_len=1),
            port=t.integer("port", lo=0, hi=65535),
            system_id=t.string("system_id", min_len=1, max_len=MAX_SYSTEM_ID, octets="system_id"),
            password=t.string("password", max_len=MAX_PASSWORD, octets="password", secret=True),
            system_type=t.string("system_type", "", max_len=MAX_SYSTEM_TYPE, octets="system_type"),
            bind_mode=t.choice("bind_mode", "transceiver", BIND_MODES),
            window=t.integer("window", 10, 1, 1000),
            tps=t.number("tps", 100.0, hi=100_000),
            enquire_link_s=t.number("enquire_link_s", 30.0, hi=3600),
            response_timeout_s=t.number("response_timeout_s", 10.0, hi=300),
            reconnect_initial_s=t.number("reconnect_initial_s", 1.0, hi=3600),
            reconnect_max_s=t.number("reconnect_max_s", 60.0, hi=86400),
            default_alphabet=t.choice("default_alphabet", "gsm7", ALPHABETS),
            long_message=t.choice("long_message", "udh", LONG_MESSAGE_METHODS),
            resp_id_format=t.choice("resp_id_format", "hex", ID_FORMATS),
            receipt_id_format=t.choice("receipt_id_format", "dec", ID_FORMATS),
            mo_id_tlv=_tlv_tag(t, "mo_id_tlv"),
            short_codes=_short_codes(t, "short_codes", at_least_one=True),
            # A minute to a week: shorter expires before a congested SMSC retries; longer is stale news.
            validity_s=t.integer("validity_s", 86400, 60, 7 * 86400),
            validity_format=t.choice("validity_format", "relative", VALIDITY_FORMATS),
            source_addr_ton=t.integer("source_addr_ton", 3, 0, 6),
            source_addr_npi=t.integer_in("source_addr_npi", 0, _NPI_VALUES, "SMPP numbering plan indicators"),
            dest_addr_ton=t.integer("dest_addr_ton", 1, 0, 6),
            dest_addr_npi=t.integer_in("dest_addr_npi", 1, _NPI_VALUES, "SMPP numbering plan indicators"),
            # Bits 0-4 are defined (receipt, SME ack, intermediate notification); higher bits are reserved.
            registered_delivery=t.integer("registered_delivery", 1, 0, 0x1F),
            enabled=t.boolean("enabled", True),
            max_binds=t.integer("max_binds", 1, 1, 64),
            **_ussd_settings(t),
        )
        t.finish()
        _check_ussd(t, carrier)
        initial, maximum = carrier.reconnect_initial_s, carrier.reconnect_max_s
        if initial is not None and maximum is not None and maximum < initial:
            # Blame the line the operator actually wrote; the other value may be a default.
            if "reconnect_max_s" in data:
                t.error("reconnect_max_s", f"must not be less than reconnect_initial_s ({_fmt_num(initial)}), "
                        f"got {_fmt_num(maximum)}")
            else:
                t.error("reconnect_initial_s", f"must not exceed reconnect_max_s ({_fmt_num(maximum)}, the "
                        f"default), got {_fmt_num(initial)}")
        carriers.append(carrier)
    if not carriers and not any(i.key.startswith("carriers") for i in checker.issues):
        checker.error(("carriers",), "at least one carrier is required, e.g. [carriers.omantel]")
    return carriers


# --- USSD variant of a carrier ------------------------------------------------------------------------

USSD_SESSIONS = ("its_session_info", "user_message_reference", "msisdn")
USSD_ABORTS = ("none", "its_session_end", "service_op", "tlv")


def _ussd_settings(t: _Table) -> dict[str, Any]:
    return {
        "ussd_session": t.choice("ussd_session", "msisdn", USSD_SESSIONS),
        "ussd_abort": t.choice("ussd_abort", "none", USSD_ABORTS),
        "ussd_abort_op": t.integer("ussd_abort_op", None, 0, 0xFF),
        "ussd_abort_tlv": _tlv_tag(t, "ussd_abort_tlv", "signal a USSD hang-up"),
        # Networks give up on a silent dialogue after about three minutes; ten is surely a typo.
        "ussd_timeout_s": t.number("ussd_timeout_s", 180.0, hi=600),
        "ussd_tps": t.number("ussd_tps", 100.0, hi=100_000),
    }


def _check_ussd(t: _Table, carrier: CarrierConfig) -> None:
    """The abort signal must be one this carrier's session marker and settings can carry."""
    abort, op, tag = carrier.ussd_abort, carrier.ussd_abort_op, carrier.ussd_abort_tlv
    if abort == "its_session_end" and carrier.ussd_session not in (None, "its_session_info"):
        t.error("ussd_abort", '"its_session_end" needs ussd_session = "its_session_info", where the end bit travels')
    if abort == "service_op":
        if op is None and "ussd_abort_op" not in t.data:
            t.error("ussd_abort_op", 'required when ussd_abort = "service_op": the vendor value meaning "hung up"')
        elif op in smpp.USSD_STANDARD_OPS:
            t.error("ussd_abort_op", f"0x{op:02X} is a standard ussd_service_op; a hang-up signal must be a vendor value")
    elif op is not None:
        t.error("ussd_abort_op", 'only used with ussd_abort = "service_op"')
    if abort == "tlv":
        if tag is None and "ussd_abort_tlv" not in t.data:
            t.error("ussd_abort_tlv", 'required when ussd_abort = "tlv": the vendor TLV meaning "hung up"')
        elif tag is not None and tag == carrier.mo_id_tlv:
            t.error("ussd_abort_tlv", f"0x{tag:04X} is this carrier's mo_id_tlv")
        elif tag == smpp.TLV_USER_MESSAGE_REFERENCE:
            t.error("ussd_abort_tlv", "0x0204 is user_message_reference, which USSD dialogues use for their session")
    elif tag is not None:
        t.error("ussd_abort_tlv", 'only used with ussd_abort = "tlv"')


def _simulators(checker: _Checker, root: _Table, known_profiles: tuple[str, ...]) -> list[SimulatorConfig]:
    simulators = []
    for path, data in _tables_under(checker, root, "simulators", "simulator"):
        t = _Table(checker, path, data)
        simulators.append(
            SimulatorConfig(
                name=str(path[-1]),
                profile=t.choice("profile", _MISSING, known_profiles),
                host=t.string("host", "127.0.0.1", min_len=1),
                port=t.integer("port", lo=0, hi=65535),
                system_id=t.string("system_id", min_len=1, max_len=MAX_SYSTEM_ID, octets="system_id"),
                password=t.string("password", max_len=MAX_PASSWORD, octets="password", secret=True),
                tps=t.number("tps", None, hi=100_000),
            )
        )
        t.finish()
    return simulators


_NOT_ONE_WORD = "must be a single word without spaces, '*', '#' or '-'"


def _keyword(table: _Table) -> Any:
    word = table.string("keyword", min_len=1)
    if word == "*":
        # The default route of its short codes: a message whose first word is no keyword
        # (parking's bare "1234AB 30", a bare transaction reference) goes there.
        if table.data.get("aliases"):
            table.error("aliases", 'a default route (keyword = "*") takes no aliases')
        return word
    if word is not None and _KEYWORD_SEPARATORS.search(word):
        table.error("keyword", f"{_NOT_ONE_WORD}, got {_show(word)}")
        return None
    return word


def _aliases(table: _Table) -> Any:
    items = table.array("aliases", ())
    if items is None:
        return None
    ok = True
    for i, word in enumerate(items):
        if not isinstance(word, str) or not word or _KEYWORD_SEPARATORS.search(word):
            table.checker.error(table.path + ("aliases", i), f"{_NOT_ONE_WORD}, got {_show(word)}")
            ok = False
    return tuple(items) if ok else None


def _routes(checker: _Checker, root: _Table) -> list[RouteConfig]:
    section = root.raw("routes", [])
    if section is _MISSING or section == []:
        return []
    if not isinstance(section, list) or not all(isinstance(r, dict) for r in section):
        checker.error(("routes",), "must be an array of tables: start each route with [[routes]]")
        return []
    routes = []
    for i, data in enumerate(section):
        t = _Table(checker, ("routes", i), data)
        routes.append(
            RouteConfig(
                keyword=_keyword(t),
                aliases=_aliases(t),
                handler=t.string("handler", min_len=1),
                short_codes=_short_codes(t, "short_codes", ()),
            )
        )
        t.finish()
    return routes


# --------------------------------------------------------------------------------------------------
# Checks across tables


def _check_carriers_and_simulators(
    checker: _Checker,
    carriers: list[CarrierConfig],
    simulators: list[SimulatorConfig],
    embedded: bool | None,
    control_port: int | None,
) -> None:
    sims = {s.name: s for s in simulators}
    carrier_names = [c.name for c in carriers]

    for sim in simulators:
        if sim.name not in carrier_names:
            hint = _suggest(sim.name, carrier_names)
            checker.error(
                ("simulators", sim.name),
                f'no carrier named "{sim.name}": a simulator stands in for the [carriers.<name>] of the same '
                f"name{hint}",
            )

    for c in carriers:
        sim = sims.get(c.name)
        if c.port == 0:
            if sim is None:
                checker.error(
                    ("carriers", c.name, "port"),
                    f"0 means \"the embedded simulator's port\", but there is no [simulators.{c.name}]",
                )
            elif embedded is False:
                checker.error(
                    ("carriers", c.name, "port"),
                    "0 means \"the embedded simulator's port\", but embedded_simulators = false in [gateway]",
                )
        # When the gateway binds to its own embedded simulator, mismatched credentials can only ever
        # produce a bind failure at run time; say so now, next to the line to fix.
        if embedded and sim is not None and c.port is not None and (c.port == 0 or c.port == sim.port):
            for key, status in (("system_id", "ESME_RINVSYSID"), ("password", "ESME_RINVPASWD")):
                mine, theirs = getattr(c, key), getattr(sim, key)
                if mine is not None and theirs is not None and mine != theirs:
                    line = checker.line(("simulators", c.name, key))
                    checker.error(
                        ("carriers", c.name, key),
                        f"differs from simulators.{c.name}.{key} (line {line}); "
                        f"the bind to the embedded simulator would fail with {status}",
                    )

    if embedded:
        used: dict[int, KeyPath] = {}
        if control_port:
            used[control_port] = ("control", "port")
        for sim in simulators:
            if not sim.port:
                continue
            here: KeyPath = ("simulators", sim.name, "port")
            if sim.port in used:
                other = used[sim.port]
                checker.error(
                    here, f"{sim.port} is already used by {_render_path(other)} (line {checker.line(other)})"
                )
            else:
                used[sim.port] = here


def _fold(word: str) -> str:
    return unicodedata.normalize("NFKC", word).casefold()


def _check_routes(
    checker: _Checker,
    routes: list[RouteConfig],
    carriers: list[CarrierConfig],
    known_handlers: tuple[str, ...] | None,
) -> None:
    served: set[str] = set()
    for c in carriers:
        served.update(c.short_codes or ())
    listed = ", ".join(f'"{s}"' for s in sorted(served))

    claimed: dict[str, list[tuple[KeyPath, frozenset[str] | None]]] = {}  # folded word → where it was used
    for i, route in enumerate(routes):
        base: KeyPath = ("routes", i)
        for j, code in enumerate(route.short_codes or ()):
            if served and code not in served:
                message = f'"{code}" is not served by any carrier (they serve {listed})'
                checker.error(base + ("short_codes", j), message)

        if known_handlers is not None and route.handler is not None and route.handler not in known_handlers:
            hint = _suggest(route.handler, known_handlers)
            known = ", ".join(f'"{h}"' for h in sorted(known_handlers))
            checker.error(base + ("handler",), f'unknown handler "{route.handler}"{hint} (known: {known})')

        if route.short_codes is None:
            continue  # already reported; comparing against a broken list would only add noise
        codes = frozenset(route.short_codes) or None  # None: every short code
        words: list[tuple[KeyPath, str]] = []
        if route.keyword is not None:
            words.append((base + ("keyword",), route.keyword))
        words.extend((base + ("aliases", k), a) for k, a in enumerate(route.aliases or ()))
        for where, word in words:
            folded = _fold(word)
            for other_where, other_codes in claimed.get(folded, []):
                if codes is None and other_codes is None:
                    overlap = "on every short code"
                else:
                    if codes is None or other_codes is None:
                        common = codes or other_codes or frozenset()
                    else:
                        common = codes & other_codes
                    if not common:
                        continue
                    overlap = "on " + ", ".join(sorted(common))
                checker.error(
                    where,
                    f"{_show(word)} is already used by {_render_path(other_where)} "
                    f"(line {checker.line(other_where)}) {overlap}; a message could not be routed unambiguously",
                )
                break
            else:
                claimed.setdefault(folded, []).append((where, codes))


# --------------------------------------------------------------------------------------------------
# The admin API


def _admin(checker: _Checker, root: _Table) -> AdminConfig:
    section = root.table("admin", None)
    if not section:
        return AdminConfig()  # absent (or not a table, already reported): no admin API
    t = _Table(checker, ("admin",), section)
    enabled = t.boolean("enabled", True)
    host = t.string("host", "127.0.0.1", min_len=1)
    if host is not None:
        try:
            loopback = ipaddress.ip_address(host).is_loopback
        except ValueError:
            loopback = False
        if not loopback:
            t.error("host", f"must be a loopback address such as \"127.0.0.1\" or \"::1\" (the admin API "
                            f"has no TLS; put a reverse proxy in front to reach it remotely), got {_show(host)}")
            host = None
    port = t.integer("port", 12790, 0, 65535)
    tokens = _admin_tokens(checker, t)
    d = AdminConfig()
    limits = {
        "max_body_bytes": t.integer("max_body_bytes", d.max_body_bytes, 1024, 64 * 1024 * 1024),
        "header_timeout_s": t.number("header_timeout_s", d.header_timeout_s, hi=300.0),
        "body_timeout_s": t.number("body_timeout_s", d.body_timeout_s, hi=3600.0),
        "idle_timeout_s": t.number("idle_timeout_s", d.idle_timeout_s, hi=3600.0),
        "max_connections_per_address": t.integer("max_connections_per_address", d.max_connections_per_address,
                                                 1, 10_000),
    }
    t.finish()
    if enabled and tokens is not None and not tokens:
        t.error("tokens", "at least one [[admin.tokens]] is required when the admin API is enabled")
    return AdminConfig(
        enabled=bool(enabled), host=host or "127.0.0.1", port=12790 if port is None else port, tokens=tokens or (),
        # A bad value is already reported; the default stands in so the rest can still be checked.
        **{key: getattr(d, key) if value is None else value for key, value in limits.items()},
    )


def _admin_tokens(checker: _Checker, admin: _Table) -> tuple[AdminToken, ...] | None:
    items = admin.array("tokens", [])
    if items is None:
        return None
    tokens: list[AdminToken] = []
    names: dict[str, int] = {}
    secrets: dict[str, int] = {}
    for i, item in enumerate(items):
        path: KeyPath = ("admin", "tokens", i)
        if not isinstance(item, dict):
            checker.error(path, "must be a table with name, token and role ([[admin.tokens]])")
            continue
        t = _Table(checker, path, item)
        name = t.string("name", min_len=1, max_len=40)
        if name is not None and not _TOKEN_NAME_RE.fullmatch(name):
            t.error("name", "must use only lower-case letters, digits, _ and -")
            name = None
        token = t.string("token", min_len=1, secret=True)
        if token is not None:
            # Messages about the token describe it, never show it: error output ends up in logs.
            if not _TOKEN_RE.fullmatch(token):
                t.error("token", "must be printable ASCII without spaces (it is sent in an HTTP header)")
                token = None
            elif len(token) < MIN_TOKEN_LENGTH:
                t.error("token", f"must be at least {MIN_TOKEN_LENGTH} characters, got {len(token)}; generate one "
                                 "with: python3 -c 'import secrets; print(secrets.token_urlsafe(32))'")
                token = None
        role = t.choice("role", _MISSING, ADMIN_ROLES)
        t.finish()
        if name is not None:
            if name in names:
                first = names[name]
                t.error("name", f"{_show(name)} is already the name of admin.tokens[{first}] "
                                f"(line {checker.line(('admin', 'tokens', first, 'name'))})")
            else:
                names[name] = i
        if token is not None:
            if token in secrets:
                first = secrets[token]
                t.error("token", f"is the same token as admin.tokens[{first}] "
                                 f"(line {checker.line(('admin', 'tokens', first, 'token'))}); every token must be "
                                 "unique so that logs and audit records name the right holder")
            else:
                secrets[token] = i
        if name is not None and token is not None and role is not None:
            tokens.append(AdminToken(name=name, token=token, role=role))
    return tuple(tokens)


def _check_admin_port(
    checker: _Checker,
    admin: AdminConfig,
    simulators: list[SimulatorConfig],
    embedded: bool | None,
    control_port: int | None,
) -> None:
    if not admin.enabled or not admin.port:
        return
    here: KeyPath = ("admin", "port")
    if control_port and admin.port == control_port:
        checker.error(here, f"{admin.port} is already used by control.port (line {checker.line(('control', 'port'))})")
        return
    if embedded:
        for sim in simulators:
            if sim.port == admin.port:
                where: KeyPath = ("simulators", sim.name, "port")
                checker.error(here, f"{admin.port} is already used by {_render_path(where)} (line {checker.line(where)})")
                return


_LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost"})


def _local(host: str) -> bool:
    if host in _LOOPBACK_NAMES:
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return address.is_loopback or address.is_unspecified


def _same_host(a: str | None, b: str | None) -> bool:
    """Whether a client of `a` reaches a server listening on `b` (loopback spellings are one host;
    a server on 0.0.0.0 listens on every local address)."""
    if a is None or b is None:
        return False
    if a == b:
        return True
    return _local(a) and _local(b)


def _check_carrier_ports(
    checker: _Checker,
    carriers: list[CarrierConfig],
    simulators: list[SimulatorConfig],
    admin: AdminConfig,
    embedded: bool | None,
    control: tuple[str | None, int | None],
) -> None:
    """A carrier must not point at one of our own listening ports: the admin API, the simulators'
    control port, or (embedded) another carrier's simulator. Its bind would reach the wrong server."""
    ours: list[tuple[str, int, KeyPath]] = []
    if admin.enabled and admin.port:
        ours.append((admin.host, admin.port, ("admin", "port")))
    control_host, control_port = control
    if control_host is not None and control_port:
        ours.append((control_host, control_port, ("control", "port")))
    sims = {sim.name: sim for sim in simulators}
    names = {c.name for c in carriers}
    for c in carriers:
        if not c.port:
            continue  # 0: the embedded simulator's port, whatever it is
        own = sims.get(c.name)
        if embedded and own is not None and own.port == c.port and _same_host(c.host, own.host):
            continue  # its own simulator: a clash of that port is reported on the listening side
        here: KeyPath = ("carriers", c.name, "port")
        for host, port, where in ours:
            if c.port == port and _same_host(c.host, host):
                checker.error(here, f"{c.port} is {_render_path(where)} (line {checker.line(where)}), a port of "
                                    "this gateway's own, not an SMSC; give the carrier's SMSC port")
                break
        else:
            if not embedded:
                continue
            for sim in simulators:
                if sim.name in names and sim.name != c.name and sim.port == c.port and _same_host(c.host, sim.host):
                    where = ("simulators", sim.name, "port")
                    checker.error(here, f"{c.port} is {_render_path(where)} (line {checker.line(where)}): this "
                                        f"carrier would bind to the {sim.name} simulator")
                    break
