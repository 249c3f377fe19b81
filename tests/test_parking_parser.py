"""The parking parser: every way a driver writes plate and minutes, and what each mistake is called.

Pure functions, no store and no reactor.  The table is built from lists of plate spellings and
duration spellings (each pair is a case), then commands, zones, and malformed messages with the
reason the reply is worded from.
"""

from __future__ import annotations

import itertools

import pytest

from handlers import texts
from handlers.parking.handler import EXAMPLE_PLATE as EXAMPLE, Wording
from handlers.parking.parser import Command, Parsed, ParseError, Reason, chunks_of, parse
from smsgw.message import Lang
from smsgw.textnorm import detect_lang
from tests.parking_support import CONFIG, SUNDAY, at

GRAMMAR = CONFIG.grammar()


def read(text: str, inspector: bool = False) -> Parsed | ParseError:
    return parse(text, GRAMMAR, inspector=inspector)


# -- plates x durations -------------------------------------------------------------------------

PLATES_1234AB = [
    "1234AB", "1234 AB", "AB 1234", "AB1234", "ab1234", "1234ab", "Ab 1234", "1234 A B", "A B 1234",
    "١٢٣٤ أ ب", "١٢٣٤ أب", "١٢٣٤أب", "1234 ا ب", "1234 اب", "1234اب", "أب 1234", "ا ب ١٢٣٤",
    "۱۲۳۴ ا ب", "1234-AB", "1234*AB", "1234#AB", "01234AB", "1234 إ ب", "1234 آب",
]

DURATIONS = [
    ("30", 30), ("90", 90), ("60", 60), ("120", 120), ("300", 300), ("٣٠", 30), ("۹۰", 90),
    ("1h", 60), ("2h", 120), ("2H", 120), ("1 h", 60), ("1hr", 60), ("2 hrs", 120), ("1 hour", 60),
    ("2 hours", 120), ("1.5", 90), ("0.5", 30), (".5", 30), ("1,5", 90), ("٢٫٥", 150), ("2", 120),
    ("30m", 30), ("30min", 30), ("30 MIN", 30), ("30 mins", 30), ("90 minutes", 90), ("1h30", 90),
    ("1H 30", 90), ("2 ساعة", 120), ("٢ ساعه", 120), ("2 ساعات", 120), ("ساعة", 60), ("ساعتين", 120),
    ("ساعتان", 120), ("ساعة ونص", 90), ("ساعة و نص", 90), ("نص ساعة", 30), ("نصف ساعة", 30),
    ("30 دقيقة", 30), ("30 د", 30), ("٣٠ دقيقه", 30), ("1 ساعة ونصف", 90),
]

PLATE_DURATION_CASES = [
    (f"{plate}{sep}{text}", minutes)
    for (plate, (text, minutes)), sep in zip(
        itertools.product(PLATES_1234AB, DURATIONS),
        itertools.cycle([" ", " ", "*", " ", "#", " ", "-", "  "]),
    )
]


@pytest.mark.parametrize(("text", "minutes"), PLATE_DURATION_CASES)
def test_plate_and_duration(text: str, minutes: int) -> None:
    """Every plate spelling with every duration spelling reads as a booking of 1234AB."""
    assert read(text) == Parsed(Command.PARK, "1234AB", minutes)


# -- keywords, other plates, order ---------------------------------------------------------------

BOOKINGS = [
    ("PARK 1234AB 30", "1234AB", 30, None),
    ("park 1234AB 30", "1234AB", 30, None),
    ("P 1234AB 2h", "1234AB", 120, None),
    ("p*1234*ab*60", "1234AB", 60, None),
    ("Park. 1234AB 30", "1234AB", 30, None),
    ("PARKING 1234AB 30", "1234AB", 30, None),
    ("موقف ١٢٣٤ أب ساعتين", "1234AB", 120, None),
    ("موقف 1234AB 30", "1234AB", 30, None),
    ("حجز ١٢٣٤ أ ب ٣٠", "1234AB", 30, None),
    ("حجز 1234 ا ب 2 ساعة", "1234AB", 120, None),
    ("باركنج 1234AB 60", "1234AB", 60, None),
    ("30 1234AB", "1234AB", 30, None),
    ("2h 1234AB", "1234AB", 120, None),
    ("٣٠ ١٢٣٤ أب", "1234AB", 30, None),
    ("1234AB30", "1234AB", 30, None),
    ("1234AB,30", "1234AB", 30, None),
    ("1234AB 30.", "1234AB", 30, None),
    ("(1234AB) 30", "1234AB", 30, None),
    ("1234AB:30", "1234AB", 30, None),
    ("1 A 30", "1A", 30, None),
    ("99999 ي ي 30", "99999YY", 30, None),
    ("12 KK 60", "12KK", 60, None),
    ("١٢ كك ٦٠", "12KK", 60, None),
    ("345 طط 30", "345TT", 30, None),
    ("7 T 30", "7T", 30, None),
    ("1234 M 30", "1234M", 30, None),
    ("1234 A M 30", "1234AM", 30, None),
    ("1234 م 30", "1234M", 30, None),
    ("1234 ى 30", "1234Y", 30, None),
    ("1234 و ر 30", "1234WR", 30, None),
    ("1234 ح د 30", "1234HD", 30, None),
    ("Y 1234 30", "1234Y", 30, None),
    ("MY 1234 30", "1234MY", 30, None),
    ("1234AB 30 CBD", "1234AB", 30, "CBD"),
    ("1234AB CBD 30", "1234AB", 30, "CBD"),
    ("CBD 1234AB 30", "1234AB", 30, "CBD"),
    ("1234AB cbd 30", "1234AB", 30, "CBD"),
    ("1234AB 30 روي", "1234AB", 30, "CBD"),
    ("١٢٣٤ أب مسقط ٣٠", "1234AB", 30, "MCT"),
    ("1234AB MCT 2h", "1234AB", 120, "MCT"),
    ("PARK 1234AB CBD 1.5", "1234AB", 90, "CBD"),
    ("30 1234AB CBD", "1234AB", 30, "CBD"),
    ("1234AB ٣٠ ساعة", "1234AB", 1800, None),  # 30 hours: read as typed, refused by the zone's limit
    ("1234AB 45", "1234AB", 45, None),  # not a multiple of 30: read as typed, refused with the rule
    ("1234AB 0.1", "1234AB", 6, None),
]


@pytest.mark.parametrize(("text", "plate", "minutes", "zone"), BOOKINGS)
def test_bookings(text: str, plate: str, minutes: int, zone: str | None) -> None:
    """Keywords in both languages, plates of every size, durations before the plate, zones anywhere."""
    assert read(text) == Parsed(Command.PARK, plate, minutes, zone)


COMMANDS = [
    ("EXT", Parsed(Command.EXTEND)),
    ("ext", Parsed(Command.EXTEND)),
    ("EXT 30", Parsed(Command.EXTEND, minutes=30)),
    ("EXT 2H", Parsed(Command.EXTEND, minutes=120)),
    ("EXT 1234AB", Parsed(Command.EXTEND, "1234AB")),
    ("EXT 1234AB 60", Parsed(Command.EXTEND, "1234AB", 60)),
    ("EXT 55M", Parsed(Command.EXTEND, "55M")),  # 55 minutes cannot be bought: it is the car 55M
    ("EXTEND 30", Parsed(Command.EXTEND, minutes=30)),
    ("تمديد", Parsed(Command.EXTEND)),
    ("تمديد ٣٠", Parsed(Command.EXTEND, minutes=30)),
    ("تجديد ساعة", Parsed(Command.EXTEND, minutes=60)),
    ("تمديد ١٢٣٤ أب ساعة", Parsed(Command.EXTEND, "1234AB", 60)),
    ("30", Parsed(Command.PARK, minutes=30)),
    ("ساعتين", Parsed(Command.PARK, minutes=120)),
    ("30M", Parsed(Command.PARK, minutes=30)),
    ("STOP", Parsed(Command.CANCEL)),
    ("stop 1234AB", Parsed(Command.CANCEL, "1234AB")),
    ("STOP 55M", Parsed(Command.CANCEL, "55M")),
    ("CANCEL 1234 AB", Parsed(Command.CANCEL, "1234AB")),
    ("END", Parsed(Command.CANCEL)),
    ("إلغاء", Parsed(Command.CANCEL)),
    ("الغاء ١٢٣٤ أب", Parsed(Command.CANCEL, "1234AB")),
    ("إلغاء 2H", Parsed(Command.CANCEL, "2H")),
    ("ايقاف", Parsed(Command.CANCEL)),
    ("MY", Parsed(Command.MY)),
    ("my", Parsed(Command.MY)),
    ("MY PARKING", Parsed(Command.MY)),
    ("مواقفي", Parsed(Command.MY)),
    ("تذاكري", Parsed(Command.MY)),
    ("Y", Parsed(Command.CONFIRM)),
    ("y", Parsed(Command.CONFIRM)),
    ("YES", Parsed(Command.CONFIRM)),
    ("Yes!", Parsed(Command.CONFIRM)),
    ("نعم", Parsed(Command.CONFIRM)),
    ("نعم شكرا", Parsed(Command.CONFIRM)),
    ("Y 1234AB", Parsed(Command.CONFIRM, "1234AB")),
    ("Y 60", Parsed(Command.CONFIRM, minutes=60)),
]


@pytest.mark.parametrize(("text", "expected"), COMMANDS)
def test_commands(text: str, expected: Parsed) -> None:
    """EXT, STOP/CANCEL, MY and Y in both languages, with and without plate and minutes."""
    assert read(text) == expected


INSPECTIONS = [
    ("CHECK 1234AB", Parsed(Command.CHECK, "1234AB")),
    ("check ab 1234", Parsed(Command.CHECK, "1234AB")),
    ("CHECK 1234AB CBD", Parsed(Command.CHECK, "1234AB", zone="CBD")),
    ("فحص ١٢٣٤ أ ب", Parsed(Command.CHECK, "1234AB")),
    ("فحص 55M", Parsed(Command.CHECK, "55M")),
]


@pytest.mark.parametrize(("text", "expected"), INSPECTIONS)
def test_inspector_check(text: str, expected: Parsed) -> None:
    """CHECK is a command for inspectors."""
    assert read(text, inspector=True) == expected


@pytest.mark.parametrize("text", [t for t, _ in INSPECTIONS])
def test_check_is_unknown_for_everyone_else(text: str) -> None:
    """For anyone else CHECK is just an unknown word, like any other."""
    result = read(text, inspector=False)
    assert isinstance(result, ParseError) and result.reason is Reason.UNKNOWN_WORD
    assert result.word in ("CHECK", "فحص")


def test_router_keyword_hint() -> None:
    """When the router already took an alias the parser does not know, its keyword is trusted."""
    assert parse("1234AB 30", GRAMMAR, "PARK") == Parsed(Command.PARK, "1234AB", 30)
    assert parse("30", GRAMMAR, "EXT") == Parsed(Command.EXTEND, minutes=30)
    assert parse("", GRAMMAR, "MY") == Parsed(Command.MY)
    unknown = parse("1234AB", GRAMMAR, "CHECK", inspector=False)
    assert isinstance(unknown, ParseError) and unknown.word == "CHECK"


# -- malformed ------------------------------------------------------------------------------------

MALFORMED = [
    ("", Reason.EMPTY, None, None),
    ("   ", Reason.EMPTY, None, None),
    ("*#", Reason.EMPTY, None, None),
    ("...", Reason.EMPTY, None, None),
    ("👍", Reason.EMPTY, None, None),
    ("PARK", Reason.EMPTY, None, None),
    ("موقف", Reason.EMPTY, None, None),
    ("1234 30", Reason.NO_LETTERS, None, "1234"),
    ("12345 30", Reason.NO_LETTERS, None, "12345"),
    ("1234", Reason.NO_LETTERS, None, "1234"),
    ("١٢٣٤ ٣٠", Reason.NO_LETTERS, None, "1234"),
    ("PARK 1234 60", Reason.NO_LETTERS, None, "1234"),
    ("123456AB 30", Reason.PLATE_DIGITS, None, "123456"),
    ("AB1234567 30", Reason.PLATE_DIGITS, None, "1234567"),
    ("0AB 30", Reason.PLATE_DIGITS, None, "0"),
    ("0000AB 30", Reason.PLATE_DIGITS, None, "0000"),
    ("1234ABC 30", Reason.PLATE_LETTERS, None, "ABC"),
    ("1234 XZ 30", Reason.PLATE_LETTERS, None, "XZ"),
    ("1234 Q 30", Reason.PLATE_LETTERS, None, "Q"),
    ("1234 ABC", Reason.PLATE_LETTERS, None, "ABC"),
    ("١٢٣٤ ع ٣٠", Reason.PLATE_LETTERS, None, "ع"),
    ("1234 ع غ 30", Reason.PLATE_LETTERS, None, "ع"),
    ("1234ABD 30", Reason.PLATE_LETTERS, None, "ABD"),
    ("1234AB", Reason.NO_DURATION, "1234AB", None),
    ("P 1234AB", Reason.NO_DURATION, "1234AB", None),
    ("حجز ١٢٣٤ أب", Reason.NO_DURATION, "1234AB", None),
    ("1234AB CBD", Reason.NO_DURATION, "1234AB", None),
    ("AB 30", Reason.NO_DURATION, "30AB", None),
    ("1234AB 0", Reason.BAD_DURATION, "1234AB", "0"),
    ("1234AB 0 min", Reason.BAD_DURATION, "1234AB", "0"),
    ("1234AB 1.33", Reason.BAD_DURATION, "1234AB", "1.33"),
    ("1234AB 30 XYZ", Reason.UNKNOWN_WORD, "1234AB", "XYZ"),
    ("1234AB 30 minutes please", Reason.UNKNOWN_WORD, "1234AB", "PLEASE"),
    ("1234AB 30 30", Reason.UNKNOWN_WORD, "1234AB", "30"),
    ("1234AB 30 MCT CBD", Reason.UNKNOWN_WORD, "1234AB", "CBD"),
    ("1234AB 1/2", Reason.UNKNOWN_WORD, "1234AB", "2"),
    ("hello", Reason.UNKNOWN_WORD, None, "HELLO"),
    ("PARK hello", Reason.UNKNOWN_WORD, None, "HELLO"),
    ("PARK PARK 1234AB 30", Reason.UNKNOWN_WORD, None, "PARK"),
    ("مرحبا", Reason.UNKNOWN_WORD, None, "مرحبا"),
    ("EXT hello", Reason.UNKNOWN_WORD, None, "HELLO"),
    ("STOP 30", Reason.UNKNOWN_WORD, None, "30"),
    ("CHECK 1234AB", Reason.UNKNOWN_WORD, None, "CHECK"),
    ("فحص 1234AB", Reason.UNKNOWN_WORD, None, "فحص"),
]


@pytest.mark.parametrize(("text", "reason", "plate", "word"), MALFORMED)
def test_malformed(text: str, reason: Reason, plate: str | None, word: str | None) -> None:
    """What cannot be read is named precisely, with the plate when it was read."""
    result = read(text)
    assert isinstance(result, ParseError), result
    assert (result.reason, result.plate, result.word) == (reason, plate, word)


@pytest.mark.parametrize(("text", "reason"), [("CHECK", Reason.NO_PLATE), ("فحص", Reason.NO_PLATE),
                                              ("CHECK 30", Reason.NO_PLATE)])
def test_inspector_without_plate(text: str, reason: Reason) -> None:
    result = read(text, inspector=True)
    assert isinstance(result, ParseError) and result.reason is reason


# -- the replies to malformed messages -------------------------------------------------------------

WORDS = {lang: Wording(CONFIG, lang, at(SUNDAY, "10:00")) for lang in Lang}


@pytest.mark.parametrize(("text", "reason", "plate", "word"), MALFORMED)
def test_malformed_reply(text: str, reason: Reason, plate: str | None, word: str | None) -> None:
    """Each mistake gets a short reply in the sender's language, with the format and an example."""
    lang = detect_lang(text)
    result = read(text)
    assert isinstance(result, ParseError)
    reply = WORDS[lang].parse_error(result, text)
    assert texts.sms_parts(reply) <= (2 if lang is Lang.AR else 1), reply
    # An example the driver can send back: their own plate where it was read, else 1234AB.
    assert (plate or "AB") in reply
    assert any(ch.isdigit() for ch in reply)
    if lang is Lang.EN:
        assert reply.isascii()
    else:
        assert detect_lang(reply) is Lang.AR


REPLY_EXAMPLES = [
    ("1234 30", Lang.EN, "Add the letters of plate 1234, e.g. 1234AB 30"),
    ("1234AB", Lang.EN, "How long? Send 1234AB 30 (minutes, 30 to 300)"),
    ("حجز ١٢٣٤ أب", Lang.AR, "كم المدة؟ أرسل 1234AB 30 (بالدقائق، 30 إلى 300)"),
    ("hello", Lang.EN, "Sorry, we did not understand 'hello'. To park send plate and minutes, e.g. 1234AB 30"),
    ("1234 XZ 30", Lang.EN, "Unknown plate letters 'XZ'. Send e.g. 1234AB 30"),
    ("١٢٣٤ ع ٣٠", Lang.AR, "حروف اللوحة «ع» غير معروفة. مثال: 1234AB 30"),
    ("1234AB 1.33", Lang.EN, "Minutes go in steps of 30 (30, 60 ... 300). Example: 1234AB 60"),
    ("123456AB 30", Lang.EN, "A plate has 1 to 5 digits and 1-2 letters, e.g. 1234AB 30"),
    ("PARK", Lang.EN, "To park send plate and minutes, e.g. 1234AB 30"),
    ("موقف", Lang.AR, "للوقوف أرسل اللوحة والدقائق، مثال: 1234AB 30"),
]


@pytest.mark.parametrize(("text", "lang", "reply"), REPLY_EXAMPLES)
def test_reply_wording(text: str, lang: Lang, reply: str) -> None:
    result = read(text)
    assert isinstance(result, ParseError)
    assert WORDS[lang].parse_error(result, text) == reply


def test_check_for_a_non_inspector_reads_like_any_unknown_word() -> None:
    """A non-inspector's CHECK gets exactly the reply any unknown first word gets."""
    for text in ("CHECK 1234AB", "فحص 1234AB"):
        lang = detect_lang(text)
        result = read(text)
        assert isinstance(result, ParseError)
        expected = (texts.NOT_UNDERSTOOD[lang].format(q=texts.quote_user_text(text, lang))
                    + " " + WORDS[lang].parse_error(read("PARK"), "PARK"))  # type: ignore[arg-type]
        assert WORDS[lang].parse_error(result, text) == expected


def test_chunks_keep_glued_runs_together() -> None:
    assert [(c.kind, c.text, c.token) for c in chunks_of("1234AB 1.5h")] == [
        ("num", "1234", 0), ("lat", "AB", 0), ("num", "1.5", 1), ("lat", "H", 1)
    ]


def test_table_size() -> None:
    """The table covers a few hundred readings and at least 30 malformed messages."""
    total = len(PLATE_DURATION_CASES) + len(BOOKINGS) + len(COMMANDS) + len(INSPECTIONS) + len(MALFORMED)
    assert total >= 300 and len(MALFORMED) >= 30


# -- symbols: a sign or an odd digit is never a duration --------------------------------------------

SYMBOLS = [
    ("2001AB -30", "2001AB", "-30"),
    ("2001AB +30", "2001AB", "+30"),
    ("2001AB \u221230", "2001AB", "-30"),  # the minus sign
    ("2001AB \u201330", "2001AB", "-30"),  # an en dash typed as minus
    ("-30", None, "-30"),
    ("EXT -30", None, "-30"),
    ("2019AB ²", "2019AB", "²"),
    ("2019AB 3²", "2019AB", "²"),
    ("2019AB ½", "2019AB", "½"),
    ("2019AB ①", "2019AB", "①"),
    ("٢٠١٩ أب ²", "2019AB", "²"),
    ("2019AB ² ساعة", "2019AB", "²"),
]


@pytest.mark.parametrize(("text", "plate", "word"), SYMBOLS)
def test_sign_or_odd_digit_is_refused(text: str, plate: str | None, word: str) -> None:
    """`2001AB -30` is not 30 minutes and `2019AB ²` is not 2 hours (compatibility folding would make
    it a 2): the message is refused with the usual hint, the plate kept for its example."""
    result = read(text)
    assert isinstance(result, ParseError), result
    assert (result.reason, result.plate, result.word) == (Reason.UNKNOWN_WORD, plate, word)
    lang = detect_lang(text)
    reply = WORDS[lang].parse_error(result, text)
    assert (plate or EXAMPLE) in reply and texts.sms_parts(reply) <= (2 if lang is Lang.AR else 1)


@pytest.mark.parametrize("text", ["1234AB-30", "1234AB - 30", "1234-AB 30", "1234AB -- 30", "1234AB 30-"])
def test_a_dash_between_words_still_separates(text: str) -> None:
    assert read(text) == Parsed(Command.PARK, "1234AB", 30)
