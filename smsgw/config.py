"""Gateway configuration: one TOML file → frozen dataclasses, or one `ConfigError` listing every problem.

Operators edit the file by hand, so a bad value must be reported the way a compiler reports a bad line:
`config/gateway.toml:23: carriers.omantel.window: must be an integer between 1 and 1000, got "ten"`.
`tomllib` keeps no positions, hence `_Locator`, a best-effort scanner that maps key paths back to lines.
All problems are collected before raising, so one edit-and-retry cycle fixes them all.

Key paths in messages are dotted TOML keys; elements of arrays (and of `[[routes]]`) are shown with a
0-based index: `routes[0].aliases[2]`.
"""

from __future__ import annotations

import bisect
import difflib
import math
import os
import re
import tomllib
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from smsgw.smpp import constants as smpp

__all__ = [
    "KNOWN_PROFILES",
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
    source_addr_ton: int = 3
    source_addr_npi: int = 0
    dest_addr_ton: int = 1
    dest_addr_npi: int = 1
    registered_delivery: int = 1
    enabled: bool = True


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


@dataclass(frozen=True, kw_only=True)
class GatewayConfig:
    """The whole validated configuration.

    `store_path` is used as written: a relative path resolves against the process's current working
    directory, not against the configuration file's directory.
    """

    path: str
    store_path: str = "var/smsgw.sqlite3"
    log_level: str = "info"
    mo_reassembly_timeout_s: float = 120.0
    shutdown_timeout_s: float = 5.0
    embedded_simulators: bool = True
    control_host: str = "127.0.0.1"
    control_port: int = 12780
    carriers: tuple[CarrierConfig, ...]
    simulators: tuple[SimulatorConfig, ...] = ()
    routes: tuple[RouteConfig, ...] = ()

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


@dataclass(frozen=True)
class ConfigIssue:
    """One problem; `line` 0 means the problem is not tied to a line (e.g. an unreadable file)."""

    file: str
    line: int
    key: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line > 0 else self.file
        return f"{where}: {self.key}: {self.message}" if self.key else f"{where}: {self.message}"


class ConfigError(Exception):
    """Every problem found in one configuration file, one per line in file order."""

    def __init__(self, issues: list[ConfigIssue]) -> None:
        self.issues = sorted(issues, key=lambda issue: issue.line)
        super().__init__(self.issues)

    def __str__(self) -> str:
        return "\n".join(str(issue) for issue in self.issues)


# --------------------------------------------------------------------------------------------------
# Entry points


def load_config(
    path: str | os.PathLike[str],
    known_handlers: Iterable[str] | None = None,
    known_profiles: Iterable[str] = KNOWN_PROFILES,
) -> GatewayConfig:
    """Read and validate a configuration file; raise `ConfigError` naming file, line and key."""
    name = os.fspath(path)
    try:
        with open(name, "rb") as f:
            data = f.read()
    except OSError as e:
        raise ConfigError([ConfigIssue(name, 0, "", f"cannot read the file: {e.strerror or e}")]) from e
    try:
        # utf-8-sig: editors on Windows like to prepend a byte order mark, which TOML would reject.
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        raise ConfigError([ConfigIssue(name, line, "", "the file is not valid UTF-8")]) from e
    return parse_config(text, name, known_handlers, known_profiles)


def parse_config(
    text: str,
    path: str = "<string>",
    known_handlers: Iterable[str] | None = None,
    known_profiles: Iterable[str] = KNOWN_PROFILES,
) -> GatewayConfig:
    """Validate TOML text; `path` is only used to name the source in messages and `GatewayConfig.path`."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError([_syntax_issue(path, text, str(e))]) from None
    checker = _Checker(path, _Locator(text))
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


_TOML_POSITION = re.compile(r"\s*\(at line (\d+), column (\d+)\)\s*$")
_TOML_AT_END = re.compile(r"\s*\(at end of document\)\s*$")


def _syntax_issue(path: str, text: str, message: str) -> ConfigIssue:
    if m := _TOML_POSITION.search(message):
        reason = message[: m.start()]
        return ConfigIssue(path, int(m.group(1)), "", f"TOML syntax error at column {m.group(2)}: {reason}")
    if m := _TOML_AT_END.search(message):
        last_line = max(len(text.splitlines()), 1)
        return ConfigIssue(path, last_line, "", f"TOML syntax error at end of file: {message[: m.start()]}")
    return ConfigIssue(path, 1, "", f"TOML syntax error: {message}")


# --------------------------------------------------------------------------------------------------
# Locating keys in the text

KeyPath = tuple[str | int, ...]  # dict keys, and array indexes


def _render_path(path: KeyPath) -> str:
    """("routes", 0, "aliases") → routes[0].aliases; keys that are not bare TOML keys get quoted."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            text = part if _BARE_KEY_RE.fullmatch(part) else _quote(part)
            out += f".{text}" if out else text
    return out


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


class _ScanError(Exception):
    pass


class _Locator:
    """Maps key paths to 1-based line numbers by scanning TOML text that `tomllib` already accepted.

    It understands table headers, arrays of tables (numbered per parent element), dotted keys,
    inline tables, arrays and every string form, which is enough to skip values without
    misreading their contents as keys.  A path it never saw falls back to its nearest ancestor,
    which for a missing key is its table header, and finally to line 1.
    """

    def __init__(self, text: str) -> None:
        self._text = text
        self._pos = 0
        self._newlines = [i for i, c in enumerate(text) if c == "\n"]
        self._explicit: dict[KeyPath, int] = {}  # keys and table headers
        self._implicit: dict[KeyPath, int] = {}  # tables created by a dotted key or a deeper header
        try:
            self._scan()
        except (_ScanError, IndexError):
            pass  # best effort: whatever was located before the confusion still helps

    def line_of(self, path: KeyPath) -> int:
        probe = tuple(path)
        while probe:
            if probe in self._explicit:
                return self._explicit[probe]
            if probe in self._implicit:
                return self._implicit[probe]
            probe = probe[:-1]
        return 1

    # -- bookkeeping

    def _line(self) -> int:
        return bisect.bisect_left(self._newlines, self._pos) + 1

    def _mark(self, path: KeyPath, line: int, explicit: bool = True) -> None:
        for i in range(1, len(path)):
            self._implicit.setdefault(path[:i], line)
        (self._explicit if explicit else self._implicit).setdefault(path, line)

    # -- lexing

    def _peek(self, n: int = 1) -> str:
        return self._text[self._pos : self._pos + n]

    def _skip_blank(self, newlines: bool) -> None:
        text = self._text
        while self._pos < len(text):
            c = text[self._pos]
            if c in " \t" or (newlines and c in "\r\n"):
                self._pos += 1
            elif c == "#":
                end = text.find("\n", self._pos)
                self._pos = len(text) if end < 0 else end
            else:
                return

    def _expect(self, token: str) -> None:
        self._skip_blank(newlines=False)
        if not self._text.startswith(token, self._pos):
            raise _ScanError(token)
        self._pos += len(token)

    def _key(self) -> list[str]:
        parts: list[str] = []
        while True:
            self._skip_blank(newlines=False)
            c = self._peek()
            if c in ('"', "'"):
                start = self._pos
                self._string()
                raw = self._text[start : self._pos]
                # Let tomllib do the unescaping so quoted keys compare equal to the parsed ones.
                parts.append(tomllib.loads(f"k = {raw}")["k"])
            else:
                m = _BARE_KEY_RE.match(self._text, self._pos)
                if not m:
                    raise _ScanError("key")
                parts.append(m.group())
                self._pos = m.end()
            self._skip_blank(newlines=False)
            if self._peek() != ".":
                return parts
            self._pos += 1

    def _string(self) -> None:
        text = self._text
        for quote in ('"""', "'''"):
            if text.startswith(quote, self._pos):
                self._pos += 3
                while not text.startswith(quote, self._pos):
                    if quote == '"""' and text[self._pos] == "\\":
                        self._pos += 1
                    if self._pos >= len(text):
                        raise _ScanError("string")
                    self._pos += 1
                self._pos += 3
                # Up to two quotes may directly precede the closing delimiter and belong to the content.
                extra = 0
                while extra < 2 and self._peek() == quote[0]:
                    self._pos += 1
                    extra += 1
                return
        quote = text[self._pos]
        self._pos += 1
        while text[self._pos] != quote:
            if quote == '"' and text[self._pos] == "\\":
                self._pos += 1
            if text[self._pos] == "\n":
                raise _ScanError("string")
            self._pos += 1
        self._pos += 1

    def _value(self, path: KeyPath) -> None:
        c = self._peek()
        if c in ('"', "'"):
            self._string()
        elif c == "[":
            self._pos += 1
            index = 0
            while True:
                self._skip_blank(newlines=True)
                if self._peek() == "]":
                    self._pos += 1
                    return
                self._mark(path + (index,), self._line())
                self._value(path + (index,))
                self._skip_blank(newlines=True)
                if self._peek() == ",":
                    self._pos += 1
                    index += 1
        elif c == "{":
            self._pos += 1
            while True:
                self._skip_blank(newlines=True)
                if self._peek() == "}":
                    self._pos += 1
                    return
                self._key_value(path)
                self._skip_blank(newlines=True)
                if self._peek() == ",":
                    self._pos += 1
        else:
            m = _SCALAR_RE.match(self._text, self._pos)
            if not m:
                raise _ScanError("value")
            self._pos = m.end()

    def _key_value(self, prefix: KeyPath) -> None:
        line = self._line()
        path = prefix + tuple(self._key())
        self._expect("=")
        self._skip_blank(newlines=False)
        self._mark(path, line)
        self._value(path)

    def _resolve(self, parts: list[str], arrays: dict[KeyPath, int]) -> KeyPath:
        path: KeyPath = ()
        for part in parts:
            path += (part,)
            if path in arrays:
                path += (arrays[path],)
        return path

    def _scan(self) -> None:
        arrays: dict[KeyPath, int] = {}  # array-of-tables path → index of its latest element
        prefix: KeyPath = ()
        while True:
            self._skip_blank(newlines=True)
            if self._pos >= len(self._text):
                return
            line = self._line()
            if self._text.startswith("[[", self._pos):
                self._pos += 2
                parts = self._key()
                self._expect("]]")
                array = self._resolve(parts[:-1], arrays) + (parts[-1],)
                arrays[array] = arrays.get(array, -1) + 1
                self._mark(array, line, explicit=False)
                prefix = array + (arrays[array],)
                self._mark(prefix, line)
            elif self._peek() == "[":
                self._pos += 1
                parts = self._key()
                self._expect("]")
                prefix = self._resolve(parts, arrays)
                self._mark(prefix, line)
            else:
                self._key_value(prefix)


# --------------------------------------------------------------------------------------------------
# Checking values

_MISSING: Any = object()


def _show(value: Any, secret: bool = False) -> str:
    """Render a value the way it would be written in TOML, so the operator recognises it."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if secret:
        if isinstance(value, str):
            return f"a string of {len(value)} characters"
        return f"a value of type {_toml_type(value)}"
    if isinstance(value, str):
        return _quote(value)
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, list):
        return "[" + ", ".join(_show(v) for v in value) + "]"
    if isinstance(value, dict):
        return "a table"
    return str(value)


def _toml_type(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "table"
    return "date/time"


def _suggest(word: str, candidates: Iterable[str]) -> str:
    candidates = list(candidates)
    close = difflib.get_close_matches(word, candidates, n=1, cutoff=0.6)
    if not close:
        lowered = {c.lower(): c for c in candidates}
        close = [lowered[m] for m in difflib.get_close_matches(word.lower(), list(lowered), n=1, cutoff=0.6)]
    return f'; did you mean "{close[0]}"?' if close else ""


def _fmt_num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else str(x)


class _Checker:
    def __init__(self, file: str, locator: _Locator) -> None:
        self.file = file
        self.locator = locator
        self.issues: list[ConfigIssue] = []

    def error(self, path: KeyPath, message: str) -> None:
        self.issues.append(ConfigIssue(self.file, self.locator.line_of(path), _render_path(path), message))

    def line(self, path: KeyPath) -> int:
        return self.locator.line_of(path)


class _Table:
    """Typed access to one TOML table; keys never asked for are reported as unknown by `finish()`."""

    def __init__(self, checker: _Checker, path: KeyPath, data: Mapping[str, Any]) -> None:
        self.checker = checker
        self.path = path
        self.data = data
        self.read: list[str] = []

    def raw(self, key: str, default: Any = _MISSING) -> Any:
        """The value as parsed, `_MISSING` if absent; a missing key without a default is reported."""
        self.read.append(key)
        value = self.data.get(key, _MISSING)
        if value is _MISSING and default is _MISSING:
            self.checker.error(self.path + (key,), "required key is missing")
        return value

    def error(self, key: str | int, message: str) -> None:
        self.checker.error(self.path + (key,), message)

    def integer(self, key: str, default: Any = _MISSING, lo: int = 0, hi: int = 2**31 - 1) -> Any:
        value = self.raw(key, default)
        if value is _MISSING:
            return default if default is not _MISSING else None
        if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
            self.error(key, f"must be an integer between {lo} and {hi}, got {_show(value)}")
            return None
        return value

    def integer_in(self, key: str, default: Any, allowed: tuple[int, ...], meaning: str) -> Any:
        value = self.raw(key, default)
        if value is _MISSING:
            return None if default is _MISSING else default
        if isinstance(value, bool) or value not in allowed:
            listed = ", ".join(str(a) for a in allowed)
            self.error(key, f"must be one of {listed} ({meaning}), got {_show(value)}")
            return None
        return value

    def number(self, key: str, default: Any = _MISSING, lo: float = 0.0, hi: float = math.inf) -> Any:
        """A float > lo and <= hi; an upper bound catches values written in milliseconds by mistake."""
        value = self.raw(key, default)
        if value is _MISSING:
            return None if default is _MISSING else default
        ok = (
            isinstance(value, (int, float))
            and not isinstance(value, bool)
            and math.isfinite(value)
            and lo < value <= hi
        )
        if not ok:
            bound = f" and at most {_fmt_num(hi)}" if math.isfinite(hi) else ""
            self.error(key, f"must be a number greater than {_fmt_num(lo)}{bound}, got {_show(value)}")
            return None
        return float(value)

    def boolean(self, key: str, default: bool) -> Any:
        value = self.raw(key, default)
        if value is _MISSING:
            return default
        if not isinstance(value, bool):
            self.error(key, f"must be true or false, got {_show(value)}")
            return None
        return value

    def string(
        self,
        key: str,
        default: Any = _MISSING,
        *,
        min_len: int = 0,
        max_len: int | None = None,
        octets: str | None = None,
        secret: bool = False,
    ) -> Any:
        """`octets` names the SMPP field whose C-Octet limit `max_len` enforces; such fields are ASCII-only."""
        value = self.raw(key, default)
        if value is _MISSING:
            return default if default is not _MISSING else None
        if not isinstance(value, str):
            self.error(key, f"must be a string, got {_show(value, secret)}")
            return None
        if len(value) < min_len:
            self.error(key, "must not be empty")
            return None
        if octets is not None and not value.isascii():
            self.error(key, f"must contain only ASCII characters (SMPP {octets} is an ASCII C-Octet string)")
            return None
        if max_len is not None and len(value) > max_len:
            why = f" (SMPP {octets} is {max_len + 1} octets including the terminating NUL)" if octets else ""
            got = _show(value, secret) if secret else f"{_show(value)} ({len(value)} characters)"
            self.error(key, f"must be at most {max_len} characters{why}, got {got}")
            return None
        return value

    def choice(self, key: str, default: Any, options: tuple[str, ...]) -> Any:
        value = self.raw(key, default)
        if value is _MISSING:
            return None if default is _MISSING else default
        if not isinstance(value, str) or value not in options:
            listed = ", ".join(f'"{o}"' for o in options)
            hint = _suggest(value, options) if isinstance(value, str) else ""
            self.error(key, f"must be one of {listed}, got {_show(value)}{hint}")
            return None
        return value

    def array(self, key: str, default: Any = _MISSING) -> Any:
        value = self.raw(key, default)
        if value is _MISSING:
            return default if default is not _MISSING else None
        if not isinstance(value, list):
            self.error(key, f"must be an array, e.g. [\"...\"], got {_show(value)}")
            return None
        return value

    def table(self, key: str, default: Any = _MISSING) -> Any:
        value = self.raw(key, default)
        if value is _MISSING:
            return default
        if not isinstance(value, dict):
            self.error(key, f"must be a table, e.g. [{_render_path(self.path + (key,))}], got {_show(value)}")
            return None
        return value

    def finish(self) -> None:
        for key in self.data:
            if key not in self.read:
                known = ", ".join(self.read)
                hint = _suggest(key, self.read)
                self.error(key, f"unknown key{hint}" if hint else f"unknown key (known keys here: {known})")


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


def _tlv_tag(table: _Table, key: str) -> Any:
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
            "it cannot carry the carrier's MO message id",
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
    log_level = gw.choice("log_level", "info", LOG_LEVELS)
    mo_reassembly_timeout_s = gw.number("mo_reassembly_timeout_s", 120.0, hi=86400)
    shutdown_timeout_s = gw.number("shutdown_timeout_s", 5.0, hi=300)
    embedded = gw.boolean("embedded_simulators", True)
    gw.finish()

    control = _Table(checker, ("control",), root.table("control", {}) or {})
    control_host = control.string("host", "127.0.0.1", min_len=1)
    control_port = control.integer("port", 12780, 0, 65535)
    control.finish()

    carriers = _carriers(checker, root)
    simulators = _simulators(checker, root, known_profiles)
    routes = _routes(checker, root)
    root.finish()

    _check_carriers_and_simulators(checker, carriers, simulators, embedded, control_port)
    _check_routes(checker, routes, carriers, known_handlers)

    return GatewayConfig(
        path=path,
        store_path=store_path,
        log_level=log_level,
        mo_reassembly_timeout_s=mo_reassembly_timeout_s,
        shutdown_timeout_s=shutdown_timeout_s,
        embedded_simulators=embedded,
        control_host=control_host,
        control_port=control_port,
        carriers=tuple(carriers),
        simulators=tuple(simulators),
        routes=tuple(routes),
    )


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
            source_addr_ton=t.integer("source_addr_ton", 3, 0, 6),
            source_addr_npi=t.integer_in("source_addr_npi", 0, _NPI_VALUES, "SMPP numbering plan indicators"),
            dest_addr_ton=t.integer("dest_addr_ton", 1, 0, 6),
            dest_addr_npi=t.integer_in("dest_addr_npi", 1, _NPI_VALUES, "SMPP numbering plan indicators"),
            # Bits 0-4 are defined (receipt, SME ack, intermediate notification); higher bits are reserved.
            registered_delivery=t.integer("registered_delivery", 1, 0, 0x1F),
            enabled=t.boolean("enabled", True),
        )
        t.finish()
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
