"""Transaction references: what people type, and the one canonical form it means (or nothing)."""

from __future__ import annotations

import pytest

from handlers.transactions.refs import PatternError, ReferenceFormat

CANON = "MM-2026-000123"

ACCEPTED = [
    # (typed, why it must work)
    ("MM-2026-000123", "canonical"),
    ("mm-2026-000123", "lower case"),
    ("Mm-2026-000123", "mixed case"),
    ("MM2026000123", "no separators"),
    ("mm2026000123", "no separators, lower case"),
    ("MM-2026000123", "one separator missing"),
    ("MM2026-000123", "the other separator missing"),
    ("MM 2026 000123", "spaces for hyphens"),
    ("MM / 2026 / 000123", "slashes and spaces"),
    ("MM--2026--000123", "doubled separators"),
    ("  MM-2026-000123.  ", "surrounding spaces and a full stop"),
    ("(MM-2026-000123)", "brackets"),
    ("MM_2026_000123", "underscores"),
    ("MM*2026*000123#", "USSD-style separators"),
    ("MM—2026–000123", "em and en dashes"),
    ("MM\u00a02026\u00a0000123", "no-break spaces (iOS)"),
    ("\u200fMM-2026-000123\u200f", "right-to-left marks pasted from Arabic text"),
    ("MM-٢٠٢٦-٠٠٠١٢٣", "Arabic-Indic digits"),
    ("MM-۲۰۲۶-۰۰۰۱۲۳", "Persian digits"),
    ("mm٢٠٢٦٠٠٠١٢٣", "Arabic-Indic digits, no separators"),
    ("ＭＭ－２０２６－０００１２３", "full-width forms"),
    ("2026-000123", "prefix left out"),
    ("2026000123", "prefix left out, no separators"),
    ("MM 2026 123", "serial without leading zeros, set apart"),
    ("MM-2026-123", "serial without leading zeros, hyphens"),
    ("2026 123", "no prefix, short serial"),
    ("MM-2026-0000123", "serial with an extra leading zero"),
    ("MM-٢٠٢٦-١٢٣", "Arabic-Indic digits, short serial"),
]


@pytest.mark.parametrize("typed, why", ACCEPTED, ids=[w for _, w in ACCEPTED])
def test_accepted_spellings(typed: str, why: str) -> None:
    assert ReferenceFormat().parse(typed) == CANON


REFUSED = [
    ("", "empty"),
    ("MM", "prefix only"),
    ("123", "serial only"),
    ("MM2026123", "short serial glued to the year: where does the year end?"),
    ("MM-2026-1234567", "serial too long (a significant digit too many)"),
    ("MM-26-000123", "two-digit year"),
    ("MMM-2026-000123", "wrong prefix"),
    ("AB-2026-000123", "another prefix"),
    ("MM-2026-000123X", "trailing letter"),
    ("MM-2026-000123 please", "extra word"),
    ("مم-2026-000123", "Arabic letters for the prefix"),
    ("MM-2O26-000123", "letter O for zero"),
    ("MM-2026-000123-1", "an extra group"),
    ("MM 2026 12 3", "serial split in two"),
]


@pytest.mark.parametrize("typed, why", REFUSED, ids=[w for _, w in REFUSED])
def test_refused_spellings(typed: str, why: str) -> None:
    assert ReferenceFormat().parse(typed) is None


def test_rules_can_be_turned_off() -> None:
    """Without prefix_optional the prefix is required; without short_serial every digit is."""
    strict = ReferenceFormat(prefix_optional=False, short_serial=False)
    assert strict.parse("mm2026000123") == CANON
    assert strict.parse("2026-000123") is None
    assert strict.parse("MM 2026 123") is None
    assert strict.parse("MM-2026-0000123") is None


@pytest.mark.parametrize(
    "pattern, typed, canonical",
    [
        ("MM/####/######", "mm 2026 77", "MM/2026/000077"),
        ("REQ-########", "req12345678", "REQ-12345678"),
        ("REQ-########", "REQ 42", "REQ-00000042"),
        ("####-MM-####", "2026mm0042", "2026-MM-0042"),
        ("BP-TS-##-#", "bp ts 13 1", "BP-TS-13-1"),
    ],
)
def test_other_patterns(pattern: str, typed: str, canonical: str) -> None:
    """The format comes from config: letters are literal, '#' runs are digit groups."""
    assert ReferenceFormat(pattern).parse(typed) == canonical


def test_examples_are_canonical() -> None:
    for pattern in ("MM-####-######", "REQ-########", "BP-TS-##-#"):
        fmt = ReferenceFormat(pattern)
        assert fmt.parse(fmt.example()) == fmt.example()
    assert ReferenceFormat().example() == CANON


@pytest.mark.parametrize(
    "pattern, message",
    [
        ("MM-YYYY", "at least one digit group"),
        ("-####", "must start with"),
        ("MM-####-", "must end with"),
        ("MM2026-####", "literal digits"),
        ("MM ####", "without spaces"),
        ("#" * 13, "at most 12"),
        ("", "1 to 40"),
    ],
)
def test_bad_patterns(pattern: str, message: str) -> None:
    with pytest.raises(PatternError, match=message):
        ReferenceFormat(pattern)
