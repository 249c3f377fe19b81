"""The sentence reader: a corpus of what drivers write, each with the reading it must get.

Pure: no store, no reactor.  The corpus (tests/parking_corpus.py) has the categories of issue
reports (words around the request, labels, numbers as words, other notations, typing slips), the
other commands in sentences, and near-misses that must not book.
"""

from __future__ import annotations

import pytest

from handlers import texts
from handlers.parking.handler import Wording
from handlers.parking.parser import Command, Parsed, ParseError, Reason, parse
from handlers.parking.sentence import Doubt, Guess, understand
from smsgw.message import Lang
from smsgw.textnorm import detect_lang
from tests.parking_corpus import PARKING_CASES, Case
from tests.parking_support import CONFIG, SUNDAY, at
from tests.test_parking_parser import BOOKINGS, COMMANDS, INSPECTIONS, MALFORMED, PLATE_DURATION_CASES

GRAMMAR = CONFIG.grammar()
WORDS = {lang: Wording(CONFIG, lang, at(SUNDAY, "10:00")) for lang in Lang}


@pytest.mark.parametrize("case", PARKING_CASES, ids=lambda c: c.id)
def test_corpus_reading(case: Case) -> None:
    """Each message gets its reading: certain, to confirm, or refused for the stated reason."""
    got = understand(case.text, GRAMMAR)
    if case.verdict == "refuse":
        assert isinstance(got, ParseError), got
        assert got.reason is case.reason, got
        return
    expected = Parsed(case.command, case.plate, case.minutes, case.zone)
    if case.verdict == "book":
        assert got == expected
    else:
        assert isinstance(got, Guess), got
        assert got.parsed == expected and got.doubts


def test_corpus_size_and_spread() -> None:
    """At least 300 messages, both languages in every category, and near-misses that must not book."""
    assert len(PARKING_CASES) >= 300
    categories = {c.category for c in PARKING_CASES}
    for category in categories - {"slips"}:
        langs = {detect_lang(c.text) for c in PARKING_CASES if c.category == category}
        assert langs == {Lang.EN, Lang.AR}, category
    near = [c for c in PARKING_CASES if c.category == "near_miss"]
    assert len(near) >= 60 and all(c.verdict != "book" for c in near)


# -- every compact form keeps its reading ------------------------------------------------------------

COMPACT_TEXTS = sorted({t for t, _m in PLATE_DURATION_CASES} | {row[0] for row in BOOKINGS}
                       | {t for t, _e in COMMANDS})


@pytest.mark.parametrize("text", COMPACT_TEXTS)
def test_compact_reading_unchanged(text: str) -> None:
    """What the compact parser reads, the sentence reader returns untouched."""
    assert understand(text, GRAMMAR) == parse(text, GRAMMAR)


@pytest.mark.parametrize("text", [t for t, _e in INSPECTIONS])
def test_inspections_unchanged(text: str) -> None:
    assert understand(text, GRAMMAR, inspector=True) == parse(text, GRAMMAR, inspector=True)


@pytest.mark.parametrize(("text", "reason"), [(row[0], row[1]) for row in MALFORMED])
def test_malformed_compact_is_never_booked_blind(text: str, reason: Reason) -> None:
    """A compact message the parser refuses is not booked without a question by the sentence reader
    (but where every word is known: `1234AB 30 minutes please`, `PARK PARK 1234AB 30`, `EXT hello`)."""
    got = understand(text, GRAMMAR)
    if isinstance(got, Parsed):
        assert text in ("1234AB 30 minutes please", "PARK PARK 1234AB 30", "EXT hello"), got
    if isinstance(got, Guess):
        assert got.doubts


# -- doubts ----------------------------------------------------------------------------------------------

DOUBTS = [
    ("park 1234AB for 2", {Doubt.INFERRED_DURATION}),
    ("1234AB 1:30", {Doubt.INFERRED_DURATION}),
    ("1234AB 3O", {Doubt.TYPO}),
    ("park 1234AB and 777HH for 1 hour", {Doubt.TWO_PLATES}),
    ("park 1234AB 30 min bro", {Doubt.UNKNOWN_WORDS}),
    ("I want 2 hours please", {Doubt.NO_PLATE}),
]


@pytest.mark.parametrize(("text", "doubts"), DOUBTS)
def test_doubts_are_named(text: str, doubts: set[Doubt]) -> None:
    got = understand(text, GRAMMAR)
    assert isinstance(got, Guess) and got.doubts == doubts


# -- hints: the driver's own plate and minutes, in the compact form ------------------------------------

HINTS = [
    ("I want to park 1234AB", Lang.EN, "How long? Send 1234AB 30 (minutes, 30 to 300)"),
    ("ابي موقف لسيارتي ١٢٣٤ أب", Lang.AR, "كم المدة؟ أرسل 1234AB 30 (بالدقائق، 30 إلى 300)"),
    ("park 1234 for 2 hours", Lang.EN, "Add the letters of plate 1234, e.g. 1234AB 120"),
    ("park my car for 2 hours", Lang.EN, "To park send plate and minutes, e.g. 1234AB 120"),
    ("احجز موقف ساعتين", Lang.AR, "للوقوف أرسل اللوحة والدقائق، مثال: 1234AB 120"),
    ("park 1234AB at 5pm for 1 hour", Lang.EN,
     "Parking starts when you send it, for a number of minutes. Send e.g. 1234AB 60"),
    ("ابي موقف ١٢٣٤ أب بكرة ساعتين", Lang.AR, "الوقوف يبدأ عند إرسال الرسالة، لعدد من الدقائق. مثال: 1234AB 120"),
    ("1234AB ZZZ 30", Lang.EN, "Unknown zone 'ZZZ'. Zones: MCT (Muscat), CBD (CBD Ruwi). Send e.g. 1234AB MCT 30"),
    ("1234AB MCT1 30", Lang.EN, "Unknown zone 'MCT1'. Zones: MCT (Muscat), CBD (CBD Ruwi). Send e.g. 1234AB MCT 30"),
    ("1234AB 30 Z2", Lang.EN, "Unknown zone 'Z2'. Zones: MCT (Muscat), CBD (CBD Ruwi). Send e.g. 1234AB MCT 30"),
    ("١٢٣٤ أب MCT2 ٣٠", Lang.AR, "المنطقة «MCT2» غير معروفة. المناطق: MCT (مسقط)، CBD (روي التجاري). مثال: 1234AB MCT 30"),
    ("١٢٣٤ أب ZZZ ٣٠", Lang.AR, "المنطقة «ZZZ» غير معروفة. المناطق: MCT (مسقط)، CBD (روي التجاري). مثال: 1234AB MCT 30"),
    ("AB 30", Lang.EN, "Plate AB has no number. Send the plate's digits and letters, e.g. 1234AB 30"),
    ("أ ب ٦٠", Lang.AR, "اللوحة AB بدون رقم. أرسل أرقام اللوحة وحروفها، مثال: 1234AB 60"),
    ("don't park 1234AB for 2 hours", Lang.EN,
     "Sorry, we did not understand 'don't park 1...'. To park send plate and minutes, e.g. 1234AB 120"),
    ("2001AB -30", Lang.EN, "Sorry, we did not understand '2001AB -30'. To park send plate and minutes, e.g. 2001AB 30"),
    ("2019AB ²", Lang.EN, "Sorry, we did not understand '2019AB ?'. To park send plate and minutes, e.g. 2019AB 30"),
    ("1234ABC for 1 hour", Lang.EN, "Unknown plate letters 'ABC'. Send e.g. 1234AB 60"),
]


@pytest.mark.parametrize(("text", "lang", "reply"), HINTS)
def test_refusal_hint_shows_the_drivers_own_message(text: str, lang: Lang, reply: str) -> None:
    got = understand(text, GRAMMAR)
    assert isinstance(got, ParseError), got
    assert WORDS[lang].parse_error(got, text) == reply


@pytest.mark.parametrize("case", [c for c in PARKING_CASES if c.verdict == "refuse"], ids=lambda c: c.id)
def test_every_refusal_fits_and_shows_a_message_to_send(case: Case) -> None:
    lang = detect_lang(case.text)
    got = understand(case.text, GRAMMAR)
    assert isinstance(got, ParseError)
    reply = WORDS[lang].parse_error(got, case.text)
    assert texts.sms_parts(reply) <= (2 if lang is Lang.AR else 1), reply
    assert any(ch.isdigit() for ch in reply) and ("AB" in reply or "1234" in reply or got.plate in reply)
    if lang is Lang.EN:
        assert reply.isascii()


def test_my_and_yes_stay_themselves() -> None:
    """`MY`, `MY PARKING`, `Y`, `نعم شكرا`: a sentence behind them only counts when it books."""
    for text in ("MY", "MY PARKING", "مواقفي لو سمحت", "Y", "yes please", "نعم شكرا", "Y 1234AB", "Y 60"):
        assert understand(text, GRAMMAR) == parse(text, GRAMMAR), text
    assert understand("MY car 1234AB 1 hour", GRAMMAR) == Parsed(Command.PARK, "1234AB", 60)


# -- 90092: residents writing about their request -------------------------------------------------------

from handlers.transactions.refs import ReferenceFormat  # noqa: E402
from handlers.transactions.sentence import Intent, read_request  # noqa: E402
from tests.parking_corpus import REQUEST_CASES, RequestCase  # noqa: E402

REFS = ReferenceFormat()


def request_reading(case: RequestCase) -> str:
    """What the handler does with the message: the router takes the keyword off first."""
    text = case.text
    if case.keyword:
        text = text.split(None, 1)[1] if len(text.split(None, 1)) > 1 else ""
        if not text:
            return "usage"
    if REFS.parse(text) is not None:
        return "status"
    got = read_request(text, REFS, case.keyword)
    return "usage" if got is None else got.intent.value


@pytest.mark.parametrize("case", REQUEST_CASES, ids=lambda c: c.id)
def test_request_sentences(case: RequestCase) -> None:
    assert request_reading(case) == case.reading
    if case.reading == "status":
        text = case.text.split(None, 1)[1] if case.keyword else case.text
        got = read_request(text, REFS, case.keyword)
        assert got is not None and got.intent is Intent.STATUS and got.ref == case.ref


def test_any_text_gets_a_reading_and_never_an_exception() -> None:
    """Random mixes of the corpus's words, digits, Arabic letters, symbols and odd digits (fixed seed)."""
    import random

    rng = random.Random(17)
    vocabulary = sorted({w for case in PARKING_CASES for w in case.text.split()})
    extra = ["-", "+", "²", "½", ":", "1:30", "٫", "…", "👍", "\u200f", "O", "l", "و", "ب", "ZZZ", "0", "99999999"]
    for _ in range(3000):
        words = [rng.choice(vocabulary + extra) for _ in range(rng.randint(0, 9))]
        text = rng.choice([" ", "", "*", ","]).join(words)
        got = understand(text, GRAMMAR)
        assert isinstance(got, (Parsed, Guess, ParseError)), text
        if isinstance(got, ParseError):
            lang = detect_lang(text)
            assert texts.sms_parts(WORDS[lang].parse_error(got, text)) <= (2 if lang is Lang.AR else 1), text
