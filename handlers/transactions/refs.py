"""Municipal transaction references: one canonical spelling for what people actually type. Pure.

The format comes from config as a pattern such as ``MM-####-######``: letters are a literal prefix
(or infix), each run of ``#`` is a group of that many digits, anything else is a separator that
appears in the canonical form.  People type references in many ways, and all of these give
``MM-2026-000123``:

* any case: ``mm-2026-000123``;
* Arabic-Indic or Persian digits: ``MM-٢٠٢٦-٠٠٠١٢٣``, ``MM-۲۰۲۶-۰۰۰۱۲۳``;
* missing separators: ``MM2026000123``, ``MM-2026000123``;
* other or extra separators: ``MM 2026 000123``, ``MM / 2026 / 000123``, ``(MM-2026-000123).``;
* the prefix left out (when ``prefix_optional``): ``2026-000123``, ``2026000123``;
* the serial (the last digit group) without, or with extra, leading zeros -- but only when it is
  set apart from the digits before it (``short_serial``): ``MM 2026 123``, ``MM-2026-0000123``.
  ``MM2026123`` is refused: where the year ends is then a guess.

Anything else (letters of another script, a wrong digit count, two readings that disagree) gives
None: a reference we are not sure of is treated as not given, never guessed.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field

from smsgw.textnorm import normalise

__all__ = ["DEFAULT_PATTERN", "PatternError", "ReferenceFormat"]

DEFAULT_PATTERN = "MM-####-######"
_MAX_GROUP_DIGITS = 12
_MAX_LENGTH = 40
_PATTERN_TOKEN = re.compile(r"#+|[A-Za-z]+|[^A-Za-z0-9#]+|[0-9]+")
_RUN = re.compile(r"[A-Z]+|[0-9]+")


class PatternError(ValueError):
    """The configured pattern cannot describe a reference; the message says why."""


@dataclass(frozen=True, slots=True)
class _Group:
    literal: str | None  # upper-case letters, or None for a digit group
    width: int = 0  # digits, for a digit group


def _compile(pattern: str) -> tuple[tuple[_Group, ...], tuple[str, ...]]:
    """Groups and the separator written before each group ("" for none)."""
    if not pattern or len(pattern) > _MAX_LENGTH:
        raise PatternError(f"must be 1 to {_MAX_LENGTH} characters")
    groups: list[_Group] = []
    separators: list[str] = []
    pending_sep = ""
    for token in _PATTERN_TOKEN.findall(pattern):
        if token[0] == "#":
            if len(token) > _MAX_GROUP_DIGITS:
                raise PatternError(f"a digit group has at most {_MAX_GROUP_DIGITS} '#', got {len(token)}")
            groups.append(_Group(None, len(token)))
        elif token.isascii() and token.isalpha():
            groups.append(_Group(token.upper()))
        elif token.isdigit():
            raise PatternError(f"literal digits ({token!r}) cannot be told apart from the number; use letters")
        else:
            if not token.isascii() or not token.isprintable() or token.strip() != token:
                raise PatternError(f"separator {token!r} must be printable ASCII without spaces")
            if not groups:
                raise PatternError("must start with letters or '#', not a separator")
            pending_sep = token
            continue
        separators.append(pending_sep)
        pending_sep = ""
    if pending_sep:
        raise PatternError("must end with letters or '#', not a separator")
    if not any(g.literal is None for g in groups):
        raise PatternError("needs at least one digit group written as '#', e.g. \"MM-####-######\"")
    return tuple(groups), tuple(separators)


def _is_separator(ch: str) -> bool:
    # Whatever a person may put between groups: spaces, punctuation and symbols of any script.
    # Letters of another script or combining marks mean it is not a reference at all.
    category = unicodedata.category(ch)
    return category[0] in "ZPS" or category in ("Cc", "Cf")


@dataclass(frozen=True)
class ReferenceFormat:
    """A reference pattern and the tolerance rules above; `parse` is the only way in."""

    pattern: str = DEFAULT_PATTERN
    prefix_optional: bool = True
    short_serial: bool = True
    _groups: tuple[_Group, ...] = field(init=False, repr=False, compare=False)
    _separators: tuple[str, ...] = field(init=False, repr=False, compare=False)
    _serial: int = field(init=False, repr=False, compare=False)
    _canonical: re.Pattern[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        groups, separators = _compile(self.pattern)
        object.__setattr__(self, "_groups", groups)
        object.__setattr__(self, "_separators", separators)
        serial = max(i for i, g in enumerate(groups) if g.literal is None)
        object.__setattr__(self, "_serial", serial)
        canonical = "".join(
            re.escape(sep) + (re.escape(g.literal) if g.literal is not None else f"[0-9]{{{g.width}}}")
            for sep, g in zip(separators, groups)
        )
        object.__setattr__(self, "_canonical", re.compile(canonical, re.IGNORECASE | re.ASCII))

    def parse(self, text: str) -> str | None:
        """The canonical reference for `text`, or None if it is not (unambiguously) one."""
        stripped = text.strip()
        if self._canonical.fullmatch(stripped):
            return stripped.upper()  # already canonical (but for case): the common case, kept cheap
        runs = self._runs(text)
        if not runs:
            return None
        readings = {tuple(r) for r in self._match(0, 0, runs)}
        if len(readings) != 1:
            return None
        (values,) = readings
        return "".join(sep + value for sep, value in zip(self._separators, values))

    def example(self, serial: int = 123, year: int = 2026) -> str:
        """A reference in canonical form for help texts: digit groups of 4 get the year."""
        values = []
        for i, group in enumerate(self._groups):
            if group.literal is not None:
                values.append(group.literal)
            elif i == self._serial:
                values.append(str(serial).zfill(group.width)[-group.width :])
            elif group.width == 4:
                values.append(str(year))
            else:
                values.append("1".zfill(group.width))
        return "".join(sep + value for sep, value in zip(self._separators, values))

    # -- matching ----------------------------------------------------------------------------

    @staticmethod
    def _runs(text: str) -> list[str] | None:
        """Maximal runs of A-Z or of 0-9; None if the text holds anything but those and separators."""
        norm = normalise(text)  # NFKC, digits folded to ASCII, upper case, invisibles removed
        if len(norm) > 4 * _MAX_LENGTH:
            return None
        runs: list[str] = []
        for chunk in re.split(r"[^A-Z0-9]+", norm):
            runs.extend(_RUN.findall(chunk))
        for ch in norm:
            if not ("A" <= ch <= "Z" or "0" <= ch <= "9") and not _is_separator(ch):
                return None
        return runs

    def _match(self, gi: int, ri: int, runs: list[str]) -> list[list[str]]:
        """Every way runs[ri:] spells groups[gi:], as lists of group values."""
        groups = self._groups
        if gi == len(groups):
            return [[]] if ri == len(runs) else []
        group = groups[gi]
        found: list[list[str]] = []
        if group.literal is not None:
            if ri < len(runs) and runs[ri] == group.literal:
                found += [[group.literal, *rest] for rest in self._match(gi + 1, ri + 1, runs)]
            if gi == 0 and self.prefix_optional:
                found += [[group.literal, *rest] for rest in self._match(gi + 1, ri, runs)]
            return found
        if ri >= len(runs) or not runs[ri].isdigit():
            return []
        run = runs[ri]
        # One run of digits may spell several consecutive digit groups (separators left out).
        total, k = 0, gi
        while k < len(groups) and groups[k].literal is None:
            total += groups[k].width
            if total == len(run):
                values, at = [], 0
                for g in groups[gi : k + 1]:
                    values.append(run[at : at + g.width])
                    at += g.width
                found += [[*values, *rest] for rest in self._match(k + 1, ri + 1, runs)]
            if total >= len(run):
                break
            k += 1
        # The serial alone in its run: leading zeros may be missing or extra.
        if self.short_serial and gi == self._serial and len(run) != group.width:
            significant = run.lstrip("0") or "0"
            if len(significant) <= group.width:
                value = significant.zfill(group.width)
                found += [[value, *rest] for rest in self._match(gi + 1, ri + 1, runs)]
        return found
