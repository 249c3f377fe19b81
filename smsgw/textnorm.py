"""Pure text normalisation for keyword matching: digit and letter folding, tokens, language.

Handsets in Oman send the same command in many spellings: Arabic-Indic or Persian digits,
hamza variants, tatweel, invisible bidi marks pasted from other apps, NBSP from iOS, lower or
mixed case. Everything that compares user text against a table goes through `normalise` first,
so the tables only ever need one spelling.
"""

from __future__ import annotations

import re
import unicodedata

from smsgw.message import Lang

__all__ = ["fold_digits", "normalise", "tokens", "split_normalised", "detect_lang", "split_keyword"]

_DIGITS: dict[int, str] = {}
for _base in (0x0660, 0x06F0):  # Arabic-Indic, Extended (Persian/Urdu keyboards)
    for _i in range(10):
        _DIGITS[_base + _i] = str(_i)
_DIGIT_TABLE = str.maketrans(_DIGITS)


def fold_digits(text: str) -> str:
    """Arabic-Indic (U+0660-0669) and Persian (U+06F0-06F9) digits to ASCII; nothing else changes."""
    return text.translate(_DIGIT_TABLE)


def _build_table() -> dict[int, str | None]:
    table: dict[int, str | None] = dict(_DIGITS)
    # Invisible characters: they arrive from copy-paste and RTL keyboards and would
    # otherwise split or glue keywords in ways the user cannot see.
    invisible = [0x200E, 0x200F, 0x061C, 0x200B, 0x200C, 0x200D, 0xFEFF, 0x2060, 0x00AD]
    invisible += list(range(0x202A, 0x202F))  # LRE..RLO embeddings/overrides
    invisible += list(range(0x2066, 0x206A))  # LRI..PDI isolates
    for cp in invisible:
        table[cp] = None
    table[0x0640] = None  # tatweel: typographic stretching only
    # Every combining mark in the Arabic blocks (harakat U+064B-0652, superscript alef U+0670,
    # Quranic annotation marks): optional vowelling, never part of a keyword's identity.
    for block in (range(0x0610, 0x0700), range(0x0750, 0x0780), range(0x08D3, 0x0900)):
        for cp in block:
            if unicodedata.category(chr(cp)) == "Mn":
                table[cp] = None
    letters = {
        "\u0649": "\u064A",  # alef maqsura -> yeh: the two are interchanged in everyday typing
        "\u06CC": "\u064A",  # Farsi yeh, what Persian/Urdu keyboards produce for yeh
        "\u0629": "\u0647",  # teh marbuta -> heh: often typed without dots
        "\u06A9": "\u0643",  # keheh (Persian keyboards) -> kaf
        "\u0623": "\u0627",  # alef with hamza above
        "\u0625": "\u0627",  # alef with hamza below
        "\u0622": "\u0627",  # alef with madda
        "\u0671": "\u0627",  # alef wasla
        "\u060C": ",",  # Arabic comma
        "\u061B": ";",  # Arabic semicolon
        "\u061F": "?",  # Arabic question mark, so "؟" reaches the same HELP alias as "?"
        "\u066B": ".",  # Arabic decimal separator
        "\u066C": ",",  # Arabic thousands separator
    }
    for src, dst in letters.items():
        table[ord(src)] = dst
    return table


_NORM_TABLE = str.maketrans(_build_table())


def normalise(text: str) -> str:
    """The canonical form used for every comparison; idempotent.

    NFKC first: it turns Arabic presentation forms (old handsets), full-width Latin and the
    Unicode space family into their plain equivalents and composes decomposed hamza/madda
    so that the letter folding below sees one code point.
    """
    text = unicodedata.normalize("NFKC", text)
    text = text.translate(_NORM_TABLE).upper()
    # str.split() with no argument splits on every Unicode space, NBSP included.
    return " ".join(text.split())


_SEPARATORS = re.compile(r"[\s*#]+")


def split_normalised(normalised: str) -> list[str]:
    """`tokens` for text that is already normalised: the router normalises once and reuses it."""
    return [t for t in _SEPARATORS.split(normalised) if t]


def tokens(text: str) -> list[str]:
    """Normalise, then split on whitespace, `*` and `#` (USSD and Omantel-style separators).

    Not on `-`: request references (MM-2026-000123) and some plates contain hyphens.
    """
    return split_normalised(normalise(text))


def _arabic_letters() -> frozenset[str]:
    letters = set()
    for lo, hi in ((0x0600, 0x06FF), (0x0750, 0x077F), (0xFB50, 0xFDFF), (0xFE70, 0xFEFF)):
        for cp in range(lo, hi + 1):
            # Letters only: digits, punctuation (، ؟) and marks are shared with other scripts' use.
            if unicodedata.category(chr(cp)) == "Lo":
                letters.add(chr(cp))
    return frozenset(letters)


_ARABIC_LETTERS = _arabic_letters()


def detect_lang(text: str) -> Lang:
    """AR when the text has at least one Arabic letter, else EN (digits-only text is EN)."""
    letters = _ARABIC_LETTERS
    for ch in text:
        if ch in letters:
            return Lang.AR
    return Lang.EN


def split_keyword(text: str) -> tuple[str, tuple[str, ...]]:
    """(first normalised token, remaining tokens); ("", ()) for text with no tokens."""
    toks = tokens(text)
    if not toks:
        return "", ()
    return toks[0], tuple(toks[1:])
