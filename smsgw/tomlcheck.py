"""Validated TOML for hand-edited files: errors name the file, the line and the key.

`tomllib` keeps no positions, hence `Locator`, a best-effort scanner that maps key paths back to
lines, and `Table`, typed access to one TOML table that reports wrong types, out-of-range values,
missing keys and unknown keys (with a "did you mean"). Problems are collected, not raised one by
one, so one edit-and-retry cycle fixes them all. The gateway config and every feature config
(parking zones, transaction wording…) are read through this module.
"""

from __future__ import annotations

import bisect
import difflib
import math
import os
import re
import tomllib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

_BARE_KEY_RE = re.compile(r"[A-Za-z0-9_-]+")
# Numbers, booleans and dates contain none of these characters; only dates may contain a space.
_SCALAR_RE = re.compile(r"[^,\]}#\r\n]+")

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

    def raise_if_any(self) -> None:
        if self.issues:
            raise ConfigError(self.issues)


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



# Public names for feature config readers.
MISSING = _MISSING
Checker = _Checker
Table = _Table


def read_toml_text(path: str | os.PathLike[str]) -> str:
    """The file's text, or ConfigError naming the file (unreadable, not UTF-8)."""
    name = os.fspath(path)
    try:
        with open(name, "rb") as f:
            data = f.read()
    except OSError as e:
        raise ConfigError([ConfigIssue(name, 0, "", f"cannot read the file: {e.strerror or e}")]) from e
    try:
        # utf-8-sig: editors on Windows like to prepend a byte order mark, which TOML would reject.
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        raise ConfigError([ConfigIssue(name, line, "", "the file is not valid UTF-8")]) from e


def parse_toml(text: str, path: str) -> tuple[dict[str, Any], Checker]:
    """Parse TOML text; syntax errors raise ConfigError with file and line."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError([_syntax_issue(path, text, str(e))]) from None
    return data, Checker(path, _Locator(text))


def load_toml(path: str | os.PathLike[str]) -> tuple[dict[str, Any], Checker]:
    """Read and parse a TOML file; validate with `Table(checker, (), data)` and then
    `checker.raise_if_any()`."""
    name = os.fspath(path)
    return parse_toml(read_toml_text(name), name)


T = TypeVar("T")


def build_checked(text: str, path: str, build: Callable[[Checker, dict[str, Any], str], T | None]) -> T:
    """Parse TOML text and build a config from it with `build(checker, data, path)`, which
    records every problem on the checker; raises ConfigError listing them all (file, line, key)."""
    data, checker = parse_toml(text, path)
    config = build(checker, data, path)
    checker.raise_if_any()
    assert config is not None  # a build returns None only with problems recorded
    return config
