"""How much text one USSD screen holds, and cutting longer text into screens.

A USSD string is at most 160 octets on the air: 182 GSM 7-bit characters, or 80 UCS2 characters
(Arabic). A screen counts as GSM only when every character is ASCII and in the GSM alphabet: a
carrier whose data_coding 0 is Latin-1 or ASCII sends anything else as UCS2, so this rule fits
every carrier. Extension characters ({ } [ ] ~ ^ | \\) cost two septets, and a character outside
the BMP two UTF-16 units.

`paginate` cuts text into screens that each end with a "more" line, except the last, which ends
with a tail (navigation) line; cuts fall at line ends where possible, then at spaces, and only
then inside a word. Nothing is ever dropped. Pure functions, no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass

from smsgw.text import is_gsm

MAX_GSM_CHARS = 182
MAX_UCS2_UNITS = 80
_GSM_EXTENSION = frozenset("{}[]~^|\\\f€")


@dataclass(frozen=True, slots=True)
class Budget:
    """The alphabet a text goes in, and how many units one screen holds in it."""

    gsm: bool
    limit: int

    def cost(self, text: str) -> int:
        if self.gsm:
            return len(text) + sum(1 for ch in text if ch in _GSM_EXTENSION)
        return len(text) + sum(1 for ch in text if ord(ch) > 0xFFFF)


def budget_for(*texts: str) -> Budget:
    """GSM 182 if every text goes 7-bit on every carrier, else UCS2 80."""
    joined = "".join(texts)
    if joined.isascii() and is_gsm(joined):
        return Budget(True, MAX_GSM_CHARS)
    return Budget(False, MAX_UCS2_UNITS)


def fits(text: str) -> bool:
    """Whether `text` is one USSD screen."""
    budget = budget_for(text)
    return budget.cost(text) <= budget.limit


def paginate(body: str, *, more: str, tail: str = "", budget: Budget | None = None) -> list[str]:
    """Screens showing all of `body`: each but the last is a part of it plus "\\n" + `more`; the last
    ends with "\\n" + `tail` (when `tail` is not empty).

    Raises ValueError if `more` or `tail` leaves no room for any text.
    """
    budget = budget or budget_for(body, more, tail)
    last_extra = budget.cost("\n" + tail) if tail else 0
    more_extra = budget.cost("\n" + more)
    if budget.limit - max(last_extra, more_extra) < 1:
        raise ValueError("the screen's fixed lines leave no room for text")
    pages: list[str] = []
    rest = body.strip("\n ")
    while True:
        if budget.cost(rest) + last_extra <= budget.limit:
            pages.append(rest + ("\n" + tail if tail else ""))
            return pages
        cut = _cut(rest, budget.limit - more_extra, budget)
        if cut >= len(rest):
            # All of it fits beside "more" but not beside the tail: leave the last line (or word)
            # for the last screen, so that it is not the tail alone.
            cut = next((at for at in (rest.rfind("\n"), rest.rfind(" ")) if at > 0), max(len(rest) - 1, 1))
        pages.append(rest[:cut].rstrip("\n ") + "\n" + more)
        rest = rest[cut:].lstrip("\n ")


def _cut(text: str, room: int, budget: Budget) -> int:
    """Where to end a page of `text` holding at most `room` units: at a line end, else a space,
    else mid-word; always at least one character, so paging always progresses."""
    used = 0
    end = 0
    for i, ch in enumerate(text):
        used += budget.cost(ch)
        if used > room:
            break
        end = i + 1
    else:
        return len(text)
    end = max(end, 1)
    head = text[: end + 1]  # a line end or space right after the last character that fits is a fine cut too
    line_end, space = head.rfind("\n"), head.rfind(" ")
    # A line end is the nicest cut, unless it would leave most of the page empty.
    if line_end >= end // 2:
        return line_end
    best = max(line_end, space)
    return best if best > 0 else end
