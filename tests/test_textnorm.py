"""Text normalisation: digit and letter folding, invisible marks, tokens, language detection."""

from __future__ import annotations

import pytest

from smsgw.message import Lang
from smsgw.textnorm import detect_lang, fold_digits, normalise, split_keyword, tokens

FOLD_DIGITS_CASES = [
    ("٠١٢٣٤٥٦٧٨٩", "0123456789"),
    ("۰۱۲۳۴۵۶۷۸۹", "0123456789"),
    ("0123456789", "0123456789"),
    ("١٢٣٤AB ٣٠", "1234AB 30"),
    ("۱۲۳۴ab ۳۰", "1234ab 30"),  # case untouched: folding digits only
    ("موقف ١٢٣", "موقف 123"),  # letters untouched
    ("", ""),
]


@pytest.mark.parametrize(("text", "expected"), FOLD_DIGITS_CASES)
def test_fold_digits(text: str, expected: str) -> None:
    """Arabic-Indic and Persian digits become ASCII and nothing else changes."""
    assert fold_digits(text) == expected


NORMALISE_CASES = [
    # digits of both kinds, mixed
    ("٠١٢٣٤٥٦٧٨٩", "0123456789"),
    ("۰۱۲۳۴۵۶۷۸۹", "0123456789"),
    ("١٢۳4", "1234"),
    ("park ١٢٣٤ab ٣٠", "PARK 1234AB 30"),
    ("PARK ۱۲۳۴AB ۳۰", "PARK 1234AB 30"),
    # case
    ("help", "HELP"),
    ("Help", "HELP"),
    ("hElP", "HELP"),
    ("1234ab", "1234AB"),
    ("mm-2026-000123", "MM-2026-000123"),
    # whitespace: runs, tabs, newlines, NBSP and the Unicode space family
    ("  help  ", "HELP"),
    ("park\t1234AB\n30", "PARK 1234AB 30"),
    ("park\u00a01234AB", "PARK 1234AB"),
    ("park\u202f1234AB", "PARK 1234AB"),
    ("park\u20031234AB", "PARK 1234AB"),
    ("park\u30001234AB", "PARK 1234AB"),
    ("\u00a0\u00a0help\u00a0", "HELP"),
    ("", ""),
    ("   ", ""),
    # zero-width and bidi marks vanish (and so do not split a word)
    ("he\u200bl\u200cp", "HELP"),
    ("\ufeffhelp", "HELP"),
    ("\u200fمساعدة\u200e", "مساعده"),
    ("\u061chelp", "HELP"),
    ("\u202bhelp\u202c", "HELP"),
    ("\u2067help\u2069", "HELP"),
    ("help\u200d", "HELP"),
    # tatweel and diacritics
    ("مـــوقـف", "موقف"),
    ("مَوْقِف", "موقف"),
    ("مُسَاعَدَةٌ", "مساعده"),
    ("هٰذا", "هذا"),
    ("حَجْزّ", "حجز"),
    # letter folding
    ("مساعدة", "مساعده"),
    ("مستشفى", "مستشفي"),
    ("إلغاء", "الغاء"),
    ("أمر", "امر"),
    ("آخر", "اخر"),
    ("ٱلغاء", "الغاء"),
    ("ا\u0653خر", "اخر"),  # decomposed madda composes, then folds
    ("ی", "ي"),  # Persian yeh
    ("کود", "كود"),  # Persian keheh
    # Arabic punctuation
    ("نعم، لا", "نعم, لا"),
    ("؟", "?"),
    ("أ؛ب", "ا;ب"),
    # presentation forms and full-width characters from older handsets
    ("\ufee3\ufeee\ufed8\ufed2", "موقف"),
    ("ＨＥＬＰ", "HELP"),
    ("１２３", "123"),
    # separators are kept by normalise (tokens() splits on them)
    ("*123*1#", "*123*1#"),
    ("help*", "HELP*"),
    ("park#1234ab", "PARK#1234AB"),
]


@pytest.mark.parametrize(("text", "expected"), NORMALISE_CASES)
def test_normalise(text: str, expected: str) -> None:
    """Every spelling a handset may produce folds to one canonical form."""
    assert normalise(text) == expected


@pytest.mark.parametrize(("text", "_expected"), NORMALISE_CASES)
def test_normalise_is_idempotent(text: str, _expected: str) -> None:
    """Normalising twice changes nothing, so callers may normalise defensively."""
    once = normalise(text)
    assert normalise(once) == once


TOKEN_CASES = [
    ("help", ["HELP"]),
    ("  park  1234ab   30 ", ["PARK", "1234AB", "30"]),
    ("HELP*", ["HELP"]),
    ("*123*1*1234AB#", ["123", "1", "1234AB"]),
    ("park*1234ab#30", ["PARK", "1234AB", "30"]),
    ("a**b##c", ["A", "B", "C"]),
    ("status MM-2026-000123", ["STATUS", "MM-2026-000123"]),  # no split on '-'
    ("park ١٢٣٤-أب", ["PARK", "1234-اب"]),
    ("موقف ١٢٣٤ أ ب ٣٠", ["موقف", "1234", "ا", "ب", "30"]),
    ("he\u200blp me", ["HELP", "ME"]),
    ("*#", []),
    ("", []),
    ("\u200f\u00a0", []),
]


@pytest.mark.parametrize(("text", "expected"), TOKEN_CASES)
def test_tokens(text: str, expected: list[str]) -> None:
    """Tokens split on whitespace, '*' and '#', never on '-', and empty tokens are dropped."""
    assert tokens(text) == expected


SPLIT_CASES = [
    ("help", ("HELP", ())),
    ("park ١٢٣٤AB ٣٠", ("PARK", ("1234AB", "30"))),
    ("*123*1#", ("123", ("1",))),
    ("", ("", ())),
    ("   ", ("", ())),
]


@pytest.mark.parametrize(("text", "expected"), SPLIT_CASES)
def test_split_keyword(text: str, expected: tuple[str, tuple[str, ...]]) -> None:
    """split_keyword gives the normalised first token and the rest as a tuple."""
    assert split_keyword(text) == expected


LANG_CASES = [
    ("help", Lang.EN),
    ("PARK 1234AB 30", Lang.EN),
    ("1234", Lang.EN),
    ("١٢٣٤", Lang.EN),  # digits only: a caller may override with a remembered preference
    ("۱۲۳۴ ۳۰", Lang.EN),
    ("", Lang.EN),
    ("، ؟", Lang.EN),  # Arabic punctuation alone is not Arabic text
    ("\u0640\u064e", Lang.EN),  # tatweel and a diacritic alone are not letters
    ("مساعدة", Lang.AR),
    ("park موقف", Lang.AR),
    ("1234 اب 30", Lang.AR),
    ("\ufee3\ufeee\ufed8\ufed2", Lang.AR),  # presentation forms
    ("ݐ", Lang.AR),  # Arabic Supplement block
    ("پارک", Lang.AR),
]


@pytest.mark.parametrize(("text", "expected"), LANG_CASES)
def test_detect_lang(text: str, expected: Lang) -> None:
    """Text with any Arabic letter is Arabic; everything else, digits-only included, is English."""
    assert detect_lang(text) is expected
