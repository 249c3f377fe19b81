"""USSD screen limits and pagination (smsgw/ussd/screen.py): pure."""

from __future__ import annotations

import random

import pytest

from smsgw.ussd.screen import MAX_GSM_CHARS, MAX_UCS2_UNITS, budget_for, fits, paginate

MORE_EN, TAIL_EN = "98 More", "0 Back 00 Main"
MORE_AR, TAIL_AR = "98 المزيد", "0 رجوع 00 الرئيسية"


@pytest.mark.parametrize(
    ("text", "ok"),
    [
        ("a" * 182, True),
        ("a" * 183, False),
        ("{" * 91, True),  # extension characters take two septets
        ("{" * 92, False),
        ("é" * 80, True),  # not ASCII: UCS2 on some carrier, so the UCS2 limit
        ("é" * 81, False),
        ("م" * 80, True),
        ("م" * 81, False),
        ("a" * 79 + "م", True),  # one Arabic letter makes the whole screen UCS2
        ("a" * 80 + "م", False),
        ("😀" * 40, True),  # outside the BMP: two UTF-16 units each
        ("😀" * 41, False),
    ],
)
def test_fits_counts_what_the_air_interface_counts(text: str, ok: bool) -> None:
    """At most 182 GSM characters, or 80 UCS2 units."""
    assert fits(text) is ok


def test_budget_follows_the_alphabet() -> None:
    assert budget_for("Hello").limit == MAX_GSM_CHARS
    assert budget_for("Hello", "مرحبا").limit == MAX_UCS2_UNITS


def test_short_text_is_one_screen_with_its_tail() -> None:
    assert paginate("Parking\n1 Book", more=MORE_EN, tail=TAIL_EN) == ["Parking\n1 Book\n0 Back 00 Main"]


def test_pages_cut_at_line_ends_and_keep_every_line() -> None:
    """A long menu keeps its numbering across pages; every page but the last ends with "more"."""
    lines = ["How long?"] + [f"{n} {n * 30} minutes of parking in the zone" for n in range(1, 11)]
    pages = paginate("\n".join(lines), more=MORE_EN, tail=TAIL_EN)
    assert len(pages) > 1
    assert all(fits(p) for p in pages)
    assert all(p.endswith("\n" + MORE_EN) for p in pages[:-1])
    assert pages[-1].endswith("\n" + TAIL_EN)
    shown = [line for p in pages for line in p.split("\n") if line not in (MORE_EN, TAIL_EN)]
    assert shown == lines


def test_arabic_pages_respect_the_ucs2_limit() -> None:
    text = "بلدية مسقط: " + "تم استلام طلبك وسيتم الرد عليك قريبا. " * 6
    pages = paginate(text, more=MORE_AR, tail=TAIL_AR)
    assert len(pages) >= 3
    assert all(len(p) <= MAX_UCS2_UNITS for p in pages)
    words = [w for p in pages for w in p.replace("\n" + MORE_AR, "").replace("\n" + TAIL_AR, "").split()]
    assert words == text.split()


def test_a_word_longer_than_a_screen_is_cut_not_dropped() -> None:
    pages = paginate("x" * 400, more=MORE_EN)
    assert "".join(p.replace("\n" + MORE_EN, "") for p in pages) == "x" * 400
    assert all(fits(p) for p in pages)


def test_the_last_page_is_never_the_tail_alone() -> None:
    """Text that fits beside "more" but not beside the longer tail leaves a line for the last page."""
    body = "\n".join(f"{n} Option number {n} with text" for n in range(1, 7))
    tail = "0 Back 00 Main menu, or hang up to leave the service now"
    pages = paginate(body, more="98 More", tail=tail)
    assert len(pages) == 2
    assert pages[-1] != tail and pages[-1].startswith("6 ")


def test_footers_that_leave_no_room_are_refused() -> None:
    with pytest.raises(ValueError):
        paginate("text", more="m" * 182)


def test_random_texts_always_paginate_within_limits() -> None:
    """Whatever the mix of scripts, lines and lengths: every page fits, nothing is lost."""
    rng = random.Random(7)
    alphabet = "abc DEF 123\n{}é" + "مرحبا بك\n" + "😀"
    for _ in range(300):
        body = "".join(rng.choice(alphabet) for _ in range(rng.randrange(1, 600))).strip("\n ") or "x"
        pages = paginate(body, more=MORE_AR, tail=TAIL_AR)
        assert all(fits(p) for p in pages)
        kept = "".join(p.rsplit("\n", 1)[0] for p in pages)
        assert "".join(kept.split()) == "".join(body.split())
