"""What a driver meant when they wrote a sentence instead of `1234AB 30`.  Pure functions, no I/O.

`understand` is what the handler calls.  It runs the compact parser first (`parser.parse`): every
compact form keeps exactly its reading.  Only a message the compact parser cannot read, or one
whose `MY` / `Y` is followed by more words, is read as a sentence:

1. The text is cut into words.  Words around the request are dropped: polite and chatty words,
   labels ("plate", "time", "رقم اللوحة", "المدة"), in English and Gulf Arabic, including the
   Arabic prefixes glued to them (`لسيارتي`, `لمدة`, `بساعتين`).  A command word anywhere
   ("extend", "cancel", "احجز") gives the command.
2. Durations in words are rewritten as minutes: English and Arabic number words, the Arabic dual
   and plural (`ساعتين`, `ثلاث ساعات`), halves and quarters (`and a half`, `ونص`, `الا ربع`),
   `1:30`, `2hrs`, `30mints`, `2س`, `30دق`, a unit written before its number (`minutes 30`).
3. A letter typed for a digit (`3O`, `l234AB`) is read as that digit.
4. What is left goes to the compact parser.  A word it stops at that nobody knows is set aside
   and the rest read again; a second plate is set aside the same way.

The reading is then **certain** (a `Parsed`: booked as today) only when nothing was set aside or
guessed.  It is a **guess** (a `Guess`: the driver is asked to confirm, nothing is charged before)
when an unknown word was set aside, a second plate was seen, a letter was read as a digit, or the
duration was inferred (a bare small number taken as hours, `for 2`; a time `1:30` taken as a
duration).  It is **refused** (a `ParseError`) when it cannot be a booking: a negation ("don't"),
a clock time or another day (`until 2pm`, `tomorrow`: bookings start now), a number left over
(two durations), a sign or an odd digit, a word in the zone's place that is no zone
(`1234AB ZZZ 30`), plate letters whose only number is the duration (`AB 30`).  A refusal carries
the plate and minutes that were found, so the reply can show the message to send.

Everything is tables compiled at import; a sentence costs a few dozen dictionary look-ups and at
most a handful of compact parses.
"""

from __future__ import annotations

import enum
import functools
import re
from dataclasses import dataclass

from handlers.parking.parser import (
    ARA,
    LAT,
    NUM,
    SYM,
    Chunk,
    Command,
    Grammar,
    Parsed,
    ParseError,
    Reason,
    _duration_at,
    _plate_at,
    _SEPARATORS,
    chunks_of,
    chunks_of_token,
    keyword_command,
    parse,
    parse_chunks,
    prepare,
)
from smsgw.textnorm import normalise

__all__ = ["Doubt", "Guess", "Reading", "understand"]


class Doubt(str, enum.Enum):
    """Why a reading needs the driver's confirmation."""

    UNKNOWN_WORDS = "unknown_words"  # words nobody knows were set aside
    TWO_PLATES = "two_plates"  # a second plate-like token was set aside
    INFERRED_DURATION = "inferred_duration"  # `for 2` (hours?), `1:30` (a duration or a time?)
    TYPO = "typo"  # a letter read as a digit
    NO_PLATE = "no_plate"  # minutes without a plate: the sender's own stay, which was not named


@dataclass(frozen=True)
class Guess:
    """A reading to confirm before anything is charged."""

    parsed: Parsed
    doubts: frozenset[Doubt]
    leftovers: tuple[str, ...] = ()  # the words set aside, as normalised


Reading = Parsed | Guess | ParseError


# ------------------------------------------------------------------------------------------------
# Vocabulary.  Written as people type it; normalised once here (upper case, أإآ→ا, ة→ه, ى→ي).


def _words(*groups: str) -> frozenset[str]:
    return frozenset(normalise(w) for group in groups for w in group.split())


_FILLERS = _words(
    # English: wanting, asking, politeness, greetings, glue words
    "I IM ID WANT WANNA WOULD LIKE NEED NEEDS PLEASE PLS PLZ PLIZ PLEASEE KINDLY THANKS THANK THX TNX"
    " THANKYOU TY YOU U HI HELLO HEY DEAR SIR MADAM HELO GOOD MORNING AFTERNOON EVENING SALAM THERE"
    " TO FOR THE A AN OF IN ON WITH AND ALSO MY ME MINE IS IT ITS THIS THAT BE ARE AM AS SO"
    " CAN COULD WILL SHALL MAY MIGHT DO DOES JUST ONLY NOW RIGHT HERE TODAY OK OKAY YES YEAH YA"
    " GET GIVE MAKE LET LETS US WE OUR HAVE HAS ABOUT AROUND APPROX APPROXIMATELY TOTAL"
    " BY Y نعم ASAP STARTING REGARDS BEST SINCERELY MUNICIPALITY",
    # English: labels and the things named
    "CAR CARS VEHICLE VEH AUTO PLATE PLATES NUMBER NUM NR NO REG REGISTRATION TIME DURATION PERIOD"
    " SPOT SPACE SLOT LOT TICKET PARKED PARKING ZONE AREA",
    # Gulf Arabic: wanting, asking, politeness, greetings
    "ابي ابى ابغي ابغى ابغا ابا ابيه ابغيت بغيت اريد اود ودي حاب حابب ممكن لو سمحت سمحتو فضلك فضلكم"
    " الرجاء رجاء ارجو يرجى اذا تكرمت تكرم الله يخليك يعطيك العافيه يعافيك مشكور مشكورين شكرا"
    " جزاك خير السلام عليكم سلام رحمه بركاته بلديه البلديه مرحبا هلا اهلا يا اخوي اخي حبيبي طال عمرك عمرك عطني عطيني اعطني",
    # Gulf Arabic: glue words, labels and the things named
    "انا عندي لي لنا عشان علشان حق في على عن مع بس فقط الحين الحينه دحين هسه اليوم هنا هني ل"
    " سياره سيارتي السياره موتر الموتر موتري رقم الرقم رقمها لوحه اللوحه لوحتي نمره النمره نمرتي"
    " مده المده مدت الوقت وقت هذي هذا هذه ذي منطقه المنطقه",
)

# Command words anywhere in a sentence; the first word of the message (a keyword) wins over them.
_COMMAND_WORDS: dict[str, Command] = {}
for _cmd, _group in (
    (Command.PARK, "PARK BOOK RESERVE PAY احجز حجز موقف باركنج بارك وقوف اوقف ادفع"),
    (Command.EXTEND, "EXT EXTEND EXTENSION ADD MORE ANOTHER EXTRA ADDITIONAL RENEW تمديد مدد زود زيد زياده"
                     " اضافه اضافي اضافيه كمان جدد تجديد"),
    (Command.CANCEL, "CANCEL STOP END FINISH الغاء الغي انهاء انهي ايقاف كنسل"),
):
    for _w in _words(_group):
        _COMMAND_WORDS[_w] = _cmd
# Several commands named: the strongest (cancelling is never inferred from a booking word).
_COMMAND_RANK = {Command.PARK: 0, Command.EXTEND: 1, Command.CANCEL: 2}

# "My parking", "my tickets": MY when the sentence names neither a plate nor a duration.
_MY_WORDS = _words("TICKETS STATUS BOOKINGS مواقفي تذاكري تذكرتي حجوزاتي حجزي موقفي")
# `MY` itself means MY only when nothing else is asked (`show my parking`, not `park my car`).
_MY_PHRASE = _words("MY") | _MY_WORDS

_NEGATIONS = _words("NOT DONT NEVER CANT CANNOT WONT DIDNT لا مابي مابغي ماابي ماابغي مااريد مب مو")
# `ما` negates only before a verb of wanting or booking (elsewhere it is "what").
_MA = normalise("ما")
_MA_VERBS = _words("ابي ابغي ابغا ابا اريد احجز تحجز ودي بغيت اوقف ابيه")

# A clock time or another day: bookings start when the message arrives.
_CLOCK_BEFORE = _words("UNTIL TILL TIL UNTILL AT FROM TO حتى لين الين لغايه الى من عند الساعه")
_CLOCK_AFTER = _words("AM PM OCLOCK مساء مساءا صباحا صباح")
_DAY_WORDS = _words("TOMORROW TMRW TONIGHT LATER YESTERDAY WEEK MONTH MONTHLY WEEKLY DAILY"
                    " بكره بكرا باجر باكر الليله بعدين امس الاسبوع شهر شهري اسبوع"
                    " الصبح العصر الظهر المغرب بالليل الليل الفجر")

# Units, in every spelling met (the compact parser knows the standard ones; these include slips).
_MINUTE_UNITS = _words(
    "MIN MINS MINUTE MINUTES MINT MINTS MINUT MINUTS MINIT MINITS MINTUES MINUETS MINUITES MNT MNTS MN"
    " MINS. دقيقه دقايق دقائق دقيقا دق"
)
_HOUR_UNITS = _words("HOUR HOURS HR HRS HOURE HOURES HOURZ HOUSR HORS HOR HOUERS HRES ساعه ساعات")
_DAY_UNITS = _words("DAY DAYS يوم ايام")
_UNIT_MINUTES = {**{w: 1 for w in _MINUTE_UNITS}, **{w: 60 for w in _HOUR_UNITS},
                 **{w: 1440 for w in _DAY_UNITS}}
# Glued to the number only: `2س`, `2سا` (spaced, `س` and `سا` are plate letters); `1:30H`.
_GLUED_UNITS = {**_UNIT_MINUTES, normalise("س"): 60, normalise("سا"): 60}
_H_SUFFIX = _HOUR_UNITS | {"H"}
_HOUR_ALONE = _words("HOUR ساعه")  # one hour when no number comes before
_TWO_HOURS = _words("ساعتين ساعتان")
_TWO_MINUTES = _words("دقيقتين دقيقتان")

_EN_UNITS = {normalise(w): n for n, w in enumerate(
    "ZERO ONE TWO THREE FOUR FIVE SIX SEVEN EIGHT NINE TEN ELEVEN TWELVE THIRTEEN FOURTEEN FIFTEEN"
    " SIXTEEN SEVENTEEN EIGHTEEN NINETEEN".split())}
_EN_TENS = {"TWENTY": 20, "THIRTY": 30, "FORTY": 40, "FOURTY": 40, "FIFTY": 50, "SIXTY": 60,
            "SEVENTY": 70, "EIGHTY": 80, "NINETY": 90}
_AR_NUMBERS = {normalise(w): n for w, n in (
    ("واحد", 1), ("واحده", 1), ("وحده", 1), ("اثنين", 2), ("اثنتين", 2), ("اثنان", 2), ("ثنتين", 2),
    ("ثنين", 2), ("ثلاث", 3), ("ثلاثه", 3), ("ثلاثة", 3), ("اربع", 4), ("اربعه", 4), ("خمس", 5),
    ("خمسه", 5), ("ست", 6), ("سته", 6), ("سبع", 7), ("سبعه", 7), ("ثمان", 8), ("ثماني", 8),
    ("ثمانيه", 8), ("تسع", 9), ("تسعه", 9), ("عشر", 10), ("عشره", 10), ("احدعش", 11), ("اثنعش", 12),
    ("ربعطعش", 14), ("خمستعش", 15), ("عشرين", 20), ("ثلاثين", 30), ("اربعين", 40), ("خمسين", 50),
    ("ستين", 60), ("سبعين", 70), ("ثمانين", 80), ("تسعين", 90), ("ميه", 100), ("مائه", 100),
    ("مئه", 100), ("ميتين", 200), ("مئتين", 200), ("مائتين", 200), ("ثلاثميه", 300), ("ثلاثمائه", 300),
    ("ثلاثمئه", 300),
)}
_HALF = _words("HALF نص نصف")
_QUARTER = _words("QUARTER ربع")
_THIRD = _words("ثلث")
_AND = _words("AND & و")
_A = _words("A AN ONE")
_COUPLE = _words("COUPLE")
_HUNDRED = "HUNDRED"
_EXCEPT = _words("الا")  # ساعه الا ربع: an hour less a quarter
_AND_HALF = _words("ونص ونصف")
_AND_QUARTER = _words("وربع")
_OF = _words("OF")
_AFTER_A = _HOUR_ALONE | _HALF | _QUARTER | _DAY_UNITS
# `one more hour`, `30 extra minutes`, `another hour`: an extension.
_MORE = _words("MORE EXTRA ADDITIONAL ANOTHER اضافيه اضافي زياده زيادة")

# Arabic prefixes glued to a word (and, with, for, the ...), longest first.
_AR_PREFIXES = tuple(normalise(p) for p in ("وال", "بال", "فال", "لل", "ال", "و", "ب", "ل", "ف"))
_ARABIC_WORD = re.compile(r"[\u0620-\u064A]+")
# A number with a unit glued after it (`30mins`, `2س`, `1H30`), or a prefix glued before it (`ل30`).
_GLUED_UNIT = re.compile(r"(\d+(?:\.\d+)?)([A-Z\u0620-\u064A]+)(\d{0,2})")
_GLUED_PREFIX = re.compile(r"([\u0620-\u064A])(\d+(?:\.\d+)?)")
_NUMBER = re.compile(r"\d+(?:\.\d+)?|\.\d+")
# Slips: a letter typed for a digit among digits (`3O`, `12O4AB`, `l234AB`).
_SLIP = re.compile(r"([0-9OIL]*[0-9][0-9OIL]*|[IL][0-9]{2,}[0-9OIL]*)([A-Z]*)")
_SLIP_DIGITS = str.maketrans({"O": "0", "I": "1", "L": "1"})
# Apostrophes inside words (I'm, don't, o'clock), and clock times (1:30, 13:45), before cutting.
_APOSTROPHE = re.compile(r"(?<=[A-Z])['\u2019\u2018`](?=[A-Z])")
_COLON_TIME = re.compile(r"(?<![\w.])(\d{1,2}):(\d{2})(?!\d)")
_TIME_WORD = re.compile(r"(\d{1,2})\ue003(\d{2})(.*)")
_TIME_MARK = "\ue003"
_FRACTIONS = {"1/2": "0.5", "1/4": "0.25", "3/4": "0.75"}
_FRACTION = re.compile(r"(?<![\d/])(?:1/2|1/4|3/4)(?![\d/])")
_ZONE_SHAPE = re.compile(r"[A-Z][A-Z0-9]{1,4}")
_ZONE_LABELS = _words("ZONE AREA IN AT منطقه المنطقه في")
_PLATE_LABELS = _words("PLATE CAR NUMBER NUM NO NR VEHICLE رقم لوحه اللوحه سياره")

# Longest duration a clock-like `H:MM` is read as (beyond it, `13:30` is a time of day).
_COLON_MAX_HOURS = 5


# ------------------------------------------------------------------------------------------------
# Words


@dataclass(slots=True)
class _Word:
    text: str  # as normalised (a rewritten duration: `90MIN`)
    kind: str = "raw"  # raw | duration | filler | command | unknown ...
    minutes: int | None = None  # a duration read here
    inferred: bool = False  # the duration is a guess (bare small number, `1:30`)
    after_zone_label: bool = False  # typed right after "zone", "in", "at", "في"
    at: int = -1  # index of the (first) word it was read from


# Between words of a sentence: the compact separators, `=` and `&`, and a dot that is no decimal
# point (`No.1234AB`, `2 hours.`).
_WORD_SEPARATORS = re.compile(r"[\s*#\-_,;:/\\|+()\[\]{}\"'!?=&<>~@]+|(?<!\d)\.|\.(?!\d)")


def _cut(text: str) -> tuple[list[str], list[str]]:
    prepared, odd = prepare(text)
    prepared = _APOSTROPHE.sub("", prepared)
    prepared = _COLON_TIME.sub(lambda m: m.group(1) + _TIME_MARK + m.group(2), prepared)
    if "/" in prepared:
        prepared = _FRACTION.sub(lambda m: _FRACTIONS[m.group(0)], prepared)
    return [w for w in _WORD_SEPARATORS.split(prepared) if w], odd


def _known(word: str, grammar: Grammar) -> bool:
    return (word in _FILLERS or word in _AND_HALF or word in _AND_QUARTER or word in _EXCEPT
            or word in _AND or word in _COMMAND_WORDS or word in _UNIT_MINUTES or word in _EN_UNITS
            or word in _EN_TENS or word in _AR_NUMBERS or word in _TWO_HOURS or word in _HALF
            or word in _QUARTER or word in _MY_WORDS or word in _NEGATIONS or word in _DAY_WORDS
            or word in _CLOCK_BEFORE or word in grammar.zone_words or word in grammar.zone_names)


def _unprefixed(word: str, grammar: Grammar) -> str:
    """`لسيارتي` → `سيارتي`: an Arabic word with a glued prefix, when what follows is a known word."""
    if len(word) < 3 or _known(word, grammar) or not _ARABIC_WORD.fullmatch(word):
        return word
    for prefix in _AR_PREFIXES:
        rest = word[len(prefix):]
        if word.startswith(prefix) and len(rest) >= 2 and _known(rest, grammar):
            return rest
    return word


def _number_value(word: str) -> float | None:
    if _NUMBER.fullmatch(word):
        return float(word)
    return None


def _duration_token(minutes: int) -> str:
    # Four digits would read as a plate number: long durations are written in hours.
    if minutes < 1000:
        return f"{minutes}MIN"
    return f"{minutes // 60}H{minutes % 60}" if minutes % 60 else f"{minutes // 60}H"


class _Reader:
    """One sentence: the words, what was dropped, and the doubts found on the way."""

    def __init__(self, text: str, grammar: Grammar) -> None:
        self.grammar = grammar
        raw, self.odd = _cut(text)
        self.words = [_unprefixed(w, grammar) for w in raw]
        self.kept: list[_Word] = []
        self.command: Command | None = None
        self.known = 0  # sentence words seen (fillers, labels, command words): not a compact form
        self.refusal: tuple[Reason, str | None] | None = None
        self.typo = False
        self.my = False
        self._last_index = -1  # word index of the last kept word
        self.park_word = False  # "park", "book", "احجز": a new stay was asked for
        self._zone_label = False  # the last word dropped was "zone", "in", "في"...

    # -- numbers and durations in words

    def _number_at(self, i: int) -> tuple[float, int] | None:
        """A number in digits or words (`30`, `thirty`, `forty five`, `خمسه واربعين`) at word i."""
        words = self.words
        n = len(words)
        if i >= n:
            return None
        w = words[i]
        value = _number_value(w)
        if value is not None:
            # `1 1/2`: a whole number and a fraction typed apart
            if i + 1 < n and (f := _number_value(words[i + 1])) is not None and 0 < f < 1 and value >= 1:
                return value + f, i + 2
            return value, i + 1
        if w in _EN_TENS or w in _EN_UNITS:
            total = 0
            j = i
            if w in _EN_UNITS and j + 1 < n and words[j + 1] == _HUNDRED:
                total = _EN_UNITS[w] * 100
                j += 2
                if j + 1 < n and words[j] in _AND and (words[j + 1] in _EN_TENS or words[j + 1] in _EN_UNITS):
                    j += 1
            if j < n and words[j] in _EN_TENS:
                total += _EN_TENS[words[j]]
                j += 1
                if j < n and words[j] in _EN_UNITS and 0 < _EN_UNITS[words[j]] < 10:
                    total += _EN_UNITS[words[j]]
                    j += 1
            elif j < n and words[j] in _EN_UNITS:
                total += _EN_UNITS[words[j]]
                j += 1
            return (float(total), j) if j > i else None
        if w in _AR_NUMBERS:
            total = _AR_NUMBERS[w]
            j = i + 1
            # خمسه واربعين (five and forty), ميه وعشرين (a hundred and twenty)
            # (the glued `و` was taken off with the other prefixes)
            while j < n:
                k = j + 1 if words[j] in _AND and j + 1 < n else j
                nxt = _AR_NUMBERS.get(words[k])
                if nxt is None or not ((total < 10 and nxt >= 20 and nxt < 100) or (total % 100 == 0 and nxt < 100)):
                    break
                total += nxt
                j = k + 1
            return float(total), j
        return None

    def _fraction_after(self, j: int) -> tuple[float, int]:
        """`and a half`, `& half`, `ونص`, `و نص`, `وربع`, `الا ربع` after a count: (+fraction, next)."""
        words = self.words
        n = len(words)
        if j >= n:
            return 0.0, j
        w = words[j]
        if w in _AND_HALF:
            return 0.5, j + 1
        if w in _AND_QUARTER:
            return 0.25, j + 1
        if w in _AND and j + 1 < n:
            k = j + 1
            if words[k] in _A and k + 1 < n:
                k += 1
            if words[k] in _HALF:
                return 0.5, k + 1
            if words[k] in _QUARTER:
                return 0.25, k + 1
        if w in _EXCEPT and j + 1 < n and words[j + 1] in _QUARTER:
            return -0.25, j + 2
        return 0.0, j

    def _unit_at(self, j: int) -> int | None:
        if j < len(self.words):
            return _UNIT_MINUTES.get(self.words[j])
        return None

    def _duration_at(self, i: int) -> tuple[_Word, int] | None:
        """A duration phrase starting at word i, rewritten as minutes; None if there is none."""
        words = self.words
        n = len(words)
        w = words[i]
        j = i
        # a label: the unit written before its number (`minutes 30`, `hours 2`, `دقائق 30`)
        unit = _UNIT_MINUTES.get(w)
        if unit is not None and i + 1 < n and (label := self._number_at(i + 1)) is not None:
            if self._unit_at(label[1]) is None and (unit != 60 or label[0] < 10):
                return self._word(label[0] * unit, label[1], inferred=False)
        # the unit alone or with a fraction: `hour`, `an hour`, `half an hour`, `ساعتين`, `ربع ساعه`
        if (w in _A or w in _MORE) and i + 1 < n:
            k = i + 1
            if w in _MORE or (words[k] in _MORE and k + 1 < n):
                self._command(Command.EXTEND)
                k += 1 if words[k] in _MORE else 0
            if words[k] in _AFTER_A:
                j = k  # `an hour`, `a half hour`, `a quarter of an hour`, `a day`, `another hour`
                w = words[j]
        if w in _HALF or w in _QUARTER or w in _THIRD:
            part = 0.5 if w in _HALF else 0.25 if w in _QUARTER else 1 / 3
            k = j + 1
            while k < n and (words[k] in _A or words[k] in _OF):
                k += 1
            if k < n and words[k] in _HOUR_UNITS:
                return self._hours(part, k + 1, inferred=False)
            if k == j + 1 and w in _HALF and (k >= n or words[k] not in _UNIT_MINUTES):
                return _Word(_duration_token(30), "duration", 30, inferred=True), j + 1
            return None
        if w in _HOUR_ALONE and j == i or (j > i and w in _HOUR_UNITS):
            # `ساعه واحده`: the count after the hour word
            k = j + 1
            if k < n and words[k] in _AR_NUMBERS and _AR_NUMBERS[words[k]] == 1:
                k += 1
            return self._hours(1.0, k, inferred=False)
        if w in _TWO_HOURS:
            return self._hours(2.0, j + 1, inferred=False)
        if w in _DAY_UNITS and j > i:
            return _Word(_duration_token(1440), "duration", 1440), j + 1
        if w in _A and i + 1 < n and words[i + 1] in _COUPLE:
            # `a couple of hours`: two, most likely; asked, not assumed
            k = i + 2 + (1 if i + 2 < n and words[i + 2] in _OF else 0)
            if k < n and words[k] in _HOUR_UNITS:
                return self._hours(2.0, k + 1, inferred=True)
            return None
        # count first: `2 hours`, `two and a half hours`, `thirty minutes`, `ثلاث ساعات ونص`
        number = self._number_at(i)
        if number is None:
            return None
        count, j = number
        is_digits = _NUMBER.fullmatch(words[i]) is not None and j == i + 1
        if is_digits and "." not in words[i] and len(words[i]) >= 4:
            return None  # four digits and more: a plate number
        frac, j = self._fraction_after(j)
        count += frac
        while j < n and (words[j] in _A or words[j] in _OF or words[j] in _MORE) and j + 1 < n and (
                words[j + 1] in _UNIT_MINUTES or words[j + 1] in _A or words[j + 1] in _OF):
            if words[j] in _MORE:
                self._command(Command.EXTEND)  # `30 more minutes`
            j += 1
        unit = self._unit_at(j)
        if unit is None and j < n and words[j] in _TWO_MINUTES:
            return None
        if unit == 60:
            return self._hours(count, j + 1, inferred=False)
        if unit is not None:
            minutes = count * unit
            return self._word(minutes, j + 1, inferred=False)
        if is_digits and not frac:
            return None  # a bare number: the compact parser reads it (plate digits or minutes)
        if count >= 10 and not frac and count == int(count):
            return self._word(count, j, inferred=False)  # `thirty`: minutes, as the official form
        return self._word(count * 60, j, inferred=True)  # `two`, `one and a half`: hours, a guess

    def _hours(self, count: float, j: int, inferred: bool) -> tuple[_Word, int]:
        """`count` hours, then what may follow an hour word: a half, or minutes (`1 hour 30 min`)."""
        words = self.words
        n = len(words)
        frac, j = self._fraction_after(j)
        minutes = (count + frac) * 60
        k = j + 1 if j < n and words[j] in _AND else j
        extra = self._number_at(k) if k < n else None
        if extra is not None and extra[0] < 60 and extra[0] == int(extra[0]) and (
                (unit := self._unit_at(extra[1])) == 1 or (unit is None and extra[1] == n)):
            minutes += extra[0]
            j = extra[1] + (1 if unit == 1 else 0)
        return self._word(minutes, j, inferred)

    @staticmethod
    def _word(minutes: float, j: int, inferred: bool) -> tuple[_Word, int]:
        whole = round(minutes)
        if abs(minutes - whole) > 1e-6:
            # Not whole minutes (`1.33 hours`): written so that the compact parser refuses it as such.
            return _Word(f"{minutes:.2f}MIN", "duration", None, inferred), j
        return _Word(_duration_token(whole), "duration", whole, inferred), j

    # -- one pass over the words

    def reduce(self) -> None:
        words = self.words
        n = len(words)
        i = 0
        while i < n:
            w = words[i]
            if any(ch in _SYMBOL_CHARS for ch in w):
                self._keep(_Word(w, "symbol"), i)
                i += 1
                continue
            if _TIME_MARK in w:
                i = self._clock_time(i)
                continue
            if w in _DAY_WORDS:
                self.refuse(Reason.NOT_NOW, w)
                i += 1
                continue
            if w in _CLOCK_BEFORE and i + 1 < n and self._clock_at(i + 1):
                self.refuse(Reason.NOT_NOW, w)
                i += 1
                continue
            if i + 1 < n and words[i + 1] in _CLOCK_AFTER and self._clock_number(i):
                self.refuse(Reason.NOT_NOW, words[i + 1])
                i += 2
                continue
            if self._negation(i):
                self.refuse(Reason.UNKNOWN_WORD, w)
                i += 1
                continue
            prefixed = _GLUED_PREFIX.fullmatch(w)
            if prefixed is not None and self.grammar.plates.latin(prefixed.group(1)) is None:
                # `ل30`: "for 30"; a plate letter glued first (`ب30`) stays for the compact parser
                words[i] = prefixed.group(2)
                continue
            if self._slip(i):
                continue  # read the fixed word again
            glued = self._glued(i)
            if glued is not None:
                if glued.kind == "clock":
                    self.refuse(Reason.NOT_NOW, w)
                else:
                    self._keep(glued, i)
                i += 1
                continue
            duration = self._duration_at(i)
            if duration is not None:
                self._keep(duration[0], i)
                i = duration[1]
                continue
            if w in _COMMAND_WORDS and not self._plate_letters_here(i):
                self._command(_COMMAND_WORDS[w])
                self.known += 1
                i += 1
                continue
            if w in self.grammar.zone_words:
                self._keep(_Word(w), i)  # a zone code or alias, whatever else the word may be
                i += 1
                continue
            zone = self.grammar.zone_names.get(w)
            if zone is not None:
                self._keep(_Word(zone), i)  # `in Ruwi`: the zone's name, for its code
                i += 1
                continue
            if w in _MY_WORDS:
                self.my = True
                i += 1
                continue
            if (w in _FILLERS or w in _CLOCK_BEFORE or w in _CLOCK_AFTER) and not self._plate_letters_here(i):
                self.known += 1
                self._zone_label = w in _ZONE_LABELS
                i += 1
                continue
            self._keep(_Word(w), i)
            i += 1

    def _keep(self, word: _Word, i: int) -> None:
        word.at = i
        word.after_zone_label = self._zone_label
        self._zone_label = False
        self.kept.append(word)
        self._last_index = i

    def refuse(self, reason: Reason, word: str | None) -> None:
        if self.refusal is None:
            self.refusal = (reason, word)

    def _command(self, command: Command) -> None:
        if self.command is None or _COMMAND_RANK[command] > _COMMAND_RANK[self.command]:
            self.command = command
            if command is Command.PARK:
                self.park_word = True

    def _clock_number(self, i: int) -> bool:
        """An hour of the day at word i (before `pm`, `مساء`): at most 24, two digits."""
        w = self.words[i]
        if w.isdigit():
            return len(w) <= 2 and int(w) <= 24
        value = _EN_UNITS.get(w) or _AR_NUMBERS.get(w)
        return value is not None and value <= 12

    def _clock_at(self, i: int) -> bool:
        """A time of day at word i, after `until`, `at`, `from`, `حتى`: `2`, `12:30`, `5pm`, `five`."""
        w = self.words[i]
        if _TIME_MARK in w or self._clock_number(i):
            return True
        m = _GLUED_UNIT.fullmatch(w)
        return m is not None and m.group(2) in _CLOCK_AFTER and len(m.group(1)) <= 2

    def _negation(self, i: int) -> bool:
        words = self.words
        w = words[i]
        if w == "NO":
            # `plate no 1234AB`, `no. 1234`: a label before a number
            return not (i + 1 < len(words) and words[i + 1][:1].isdigit()) and not (
                i > 0 and words[i - 1] in _PLATE_LABELS)
        if w == _MA:
            return i + 1 < len(words) and words[i + 1] in _MA_VERBS
        return w in _NEGATIONS

    def _plate_letters_here(self, i: int) -> bool:
        """A word that could be plate letters next to plate digits (`1234 A B`, `و 1234`) is kept."""
        words = self.words
        letters_of = self.grammar.plates.letters_of
        if letters_of(words[i]) is None:
            return False
        last = self.kept[-1] if self.kept else None
        if last is not None and last.kind == "raw" and self._last_index == i - 1 and (
                last.text.isdigit() or letters_of(last.text) is not None):
            return True
        for k in (i + 1, i + 2):
            if k >= len(words) or len(words[i]) > 1:
                break  # letters before the digits: single ones (`A 1234`), not `my 2 cars`
            if words[k].isdigit():
                return self._duration_at(k) is None  # `a 30 minutes`: a duration, not plate digits
            if letters_of(words[k]) is None:
                break
        return False

    def _slip(self, i: int) -> bool:
        """`3O` → `30`, `l234AB` → `1234AB`: a letter typed for a digit, fixed in place (a doubt)."""
        w = self.words[i]
        m = _SLIP.fullmatch(w)
        if m is None:
            return False
        digits, letters = m.group(1), m.group(2)
        if not any(ch in "OIL" for ch in digits):
            return False
        latin = self.grammar.plates.latin
        if any(latin(ch) is not None for ch in "OIL" if ch in digits):
            return False  # a letter that is a plate letter in this config is that letter
        if letters and not (letters in _GLUED_UNITS or self.grammar.plates.letters_of(letters)):
            return False
        self.typo = True
        self.words[i] = digits.translate(_SLIP_DIGITS) + letters
        return True

    def _glued(self, i: int) -> _Word | None:
        """A number with a unit glued after it (`30mins`, `2س`, `2hrs30`) or a clock suffix (`5pm`)."""
        w = self.words[i]
        if not w[:1].isdigit():
            return None
        m = _GLUED_UNIT.fullmatch(w)
        if m is None:
            return None
        suffix = m.group(2)
        if suffix in _CLOCK_AFTER and not m.group(3):
            before = self.words[i - 1] if i > 0 else ""
            # `10AM` may be a plate: a time only after `at`, `until`...
            if self.grammar.plates.letters_of(suffix) is None or before in _CLOCK_BEFORE:
                return _Word(w, "clock")
            return None
        unit = _GLUED_UNITS.get(suffix)
        if unit is None:
            return None
        value = float(m.group(1))
        if m.group(3):
            if unit != 60:
                return None
            value += int(m.group(3)) / 60
        return self._word(value * unit, 0, inferred=False)[0]

    def _clock_time(self, i: int) -> int:
        """`1:30`: a duration of 1 h 30 (a guess) when short and not after `until`; else a time of day."""
        w = self.words[i]
        m = _TIME_WORD.fullmatch(w)
        if m is None:  # cannot happen (the mark is only put between such digits): keep it as typed
            self._keep(_Word(w.replace(_TIME_MARK, ":")), i)
            return i + 1
        hours, minutes, suffix = int(m.group(1)), int(m.group(2)), m.group(3)
        before = self.words[i - 1] if i > 0 else ""
        after = self.words[i + 1] if i + 1 < len(self.words) else ""
        if (suffix and suffix not in _H_SUFFIX) or before in _CLOCK_BEFORE or after in _CLOCK_AFTER \
                or hours > _COLON_MAX_HOURS or minutes >= 60:
            self.refuse(Reason.NOT_NOW, w.replace(_TIME_MARK, ":"))
            return i + 1
        explicit = suffix in _H_SUFFIX or after in _HOUR_UNITS
        self._keep(_Word(_duration_token(hours * 60 + minutes), "duration", hours * 60 + minutes,
                         inferred=not explicit), i)
        return i + (2 if after in _HOUR_UNITS and not suffix else 1)


_SYMBOL_CHARS = frozenset("\ue000\ue001\ue002")
_AND_CHAR = normalise("و")


# ------------------------------------------------------------------------------------------------
# Reading the reduced words


@functools.lru_cache(maxsize=2048)
def _runs(word: str) -> tuple[tuple[str, str], ...]:
    """(kind, text) of a word's chunks; cached: the reading loop cuts the same words again."""
    return tuple((c.kind, c.text) for c in chunks_of_token(word, 0))


def _chunks(words: list[_Word], odd: list[str]) -> tuple[list[Chunk], list[int]]:
    """Chunks of the kept words, and for each chunk the index of its word."""
    chunks: list[Chunk] = []
    owner: list[int] = []
    odd = list(odd)
    for index, word in enumerate(words):
        if word.kind == "symbol":
            cut = chunks_of_token(word.text, index, odd)  # the odd digits it holds are consumed in order
        else:
            cut = [Chunk(kind, text, index) for kind, text in _runs(word.text)]
        chunks.extend(cut)
        owner.extend([index] * len(cut))
    return chunks, owner


def _reads_as_plate(word: str, grammar: Grammar) -> str | None:
    """The plate a glued token spells (`777HH`), unless it also reads whole as a duration (`2H`)."""
    chunks = [Chunk(kind, text, 0) for kind, text in _runs(word)]
    got = _plate_at(chunks, 0, grammar) if chunks else None
    if not isinstance(got, tuple) or got[1] != len(chunks):
        return None
    duration = _duration_at(chunks, 0)
    if isinstance(duration, tuple) and duration[1] == len(chunks):
        return None
    return got[0]


def _hints(chunks: list[Chunk], grammar: Grammar) -> tuple[str | None, int | None]:
    """The first plate and the first duration anywhere: for the example in a refusal."""
    plate: str | None = None
    span = (0, 0)
    for i in range(len(chunks)):
        p = _plate_at(chunks, i, grammar)
        if isinstance(p, tuple):
            plate, span = p[0], (i, p[1])
            break
    minutes: int | None = None
    for i, chunk in enumerate(chunks):
        if span[0] <= i < span[1] and plate is not None:
            continue
        if i > 0 and chunks[i - 1].kind == SYM and chunks[i - 1].token == chunk.token:
            continue  # `-30`: not a duration to suggest
        d = _duration_at(chunks, i)
        if isinstance(d, tuple) and d[0] > 0:
            minutes = d[0]
            break
    return plate, minutes


def _letters_only_plate(words: list[_Word], grammar: Grammar) -> tuple[str, int] | None:
    """`AB 30`, `park AB for 30 min`: plate letters, and no number but the duration -> (letters, minutes)."""
    letters = ""
    minutes: int | None = None
    for word in words:
        if word.kind == "duration":
            if minutes is not None:
                return None
            minutes = word.minutes
            continue
        if word.text.isdigit() or _NUMBER.fullmatch(word.text):
            value = float(word.text)
            bare = value * 60 if value < 10 or "." in word.text else value
            if minutes is not None or len(word.text) >= 4:
                return None
            if value >= 10 and value % grammar.unit_minutes:
                return None  # `KK 12`: more like a plate number than minutes
            minutes = round(bare)
            continue
        mapped = grammar.plates.letters_of(word.text)
        if mapped is None or len(letters) + len(mapped) > grammar.plates.max_letters:
            return None
        letters += mapped
    if not letters or minutes is None or minutes <= 0:
        return None
    return letters, minutes


def _read(text: str, grammar: Grammar, first: Command | None) -> Reading | None:
    """The sentence reading; None when it finds nothing at all (the compact error then stands).

    `first`: the command of the message's first word, if it is a keyword.
    """
    reader = _Reader(text, grammar)
    reader.reduce()
    kept = reader.kept
    named = first or reader.command
    command = named or Command.PARK
    chunks, owner = _chunks(kept, reader.odd)
    hint_plate, hint_minutes = _hints(chunks, grammar)
    if reader.refusal is not None:
        reason, word = reader.refusal
        return ParseError(reason, command, plate=hint_plate, word=word, minutes=hint_minutes)
    if named is None and (reader.my or any(w in _MY_PHRASE for w in reader.words)) and not any(
            ch.isdigit() for w in kept for ch in w.text):
        return Parsed(Command.MY)  # `show my parking`, `وين موقفي`
    if not kept:
        if named in (Command.EXTEND, Command.CANCEL):
            return Parsed(named)  # `please extend my parking`, `cancel my parking`
        return ParseError(Reason.EMPTY, command) if reader.known else None
    # Plates typed glued (`1234AB`, `AB1234`): the first is the car, another one is a doubt.
    doubts: set[Doubt] = set()
    leftovers: list[str] = []
    seen_plate: str | None = None
    for word in kept:
        if word.kind == "raw" and any(ch.isdigit() for ch in word.text):
            plate = _reads_as_plate(word.text, grammar)
            if plate is None:
                continue
            if seen_plate is None:
                seen_plate = plate
            elif plate != seen_plate:
                word.kind = "plate2"
                doubts.add(Doubt.TWO_PLATES)
                leftovers.append(word.text)
    kept = [w for w in kept if w.kind != "plate2"]
    if command is Command.PARK:
        only_letters = _letters_only_plate(kept, grammar)
        if only_letters is not None:
            return ParseError(Reason.NO_PLATE_NUMBER, command, word=only_letters[0], minutes=only_letters[1])
    zone_slot: str | None = None
    result: Parsed | ParseError = ParseError(Reason.EMPTY, command)
    while kept:
        chunks, owner = _chunks(kept, reader.odd)
        result = parse_chunks(command, chunks, grammar)
        if isinstance(result, Parsed) or result.at is None or result.reason is not Reason.UNKNOWN_WORD:
            break
        index = owner[result.at]
        word = kept[index]
        if word.kind == "raw" and word.text not in grammar.zone_words and not any(
                ch.isdigit() or ch in _SYMBOL_CHARS for ch in word.text):
            doubts.add(Doubt.UNKNOWN_WORDS)
            if zone_slot is None and _zone_shaped(word.text, grammar) and (
                    word.after_zone_label or _in_zone_place(kept, index, grammar)):
                zone_slot = word.text
        elif word.kind == "raw" and result.plate is not None and _reads_as_plate(word.text, grammar):
            doubts.add(Doubt.TWO_PLATES)  # `1234AB 30 777HH`: a second plate after the reading
        elif (word.kind == "raw" and zone_slot is None and _zone_shaped(word.text, grammar)
              and _in_zone_place(kept, index, grammar)):
            # `1234AB MCT1 30`: a zone code with a digit in it, as a driver guessing the codes
            # writes one: no zone of ours, but it stands where a zone goes, so the reply names
            # it and lists the zones rather than saying it did not understand.
            doubts.add(Doubt.UNKNOWN_WORDS)
            zone_slot = word.text
        else:
            break  # a number left over, a symbol: never set aside
        leftovers.append(word.text)
        del kept[index]
    word = leftovers[0] if leftovers else None
    if isinstance(result, ParseError):
        if result.reason is Reason.EMPTY and not kept:
            return ParseError(Reason.UNKNOWN_WORD, command, plate=hint_plate, word=word, minutes=hint_minutes)
        if leftovers and reader.known == 0:
            # No sentence around it, only unknown words: the reply quotes the message (`CHECK 1234AB`).
            return ParseError(Reason.UNKNOWN_WORD, command, plate=result.plate or hint_plate, word=word,
                              minutes=hint_minutes)
        return ParseError(result.reason, result.command, plate=result.plate or hint_plate, word=result.word,
                          minutes=result.minutes or hint_minutes)
    parsed = result
    if zone_slot is not None and parsed.zone is None and parsed.plate is not None:
        return ParseError(Reason.UNKNOWN_ZONE, command, plate=parsed.plate, word=zone_slot, minutes=parsed.minutes)
    if parsed.command is Command.MY:
        return parsed
    if leftovers and parsed.plate is None and parsed.minutes is None:
        return ParseError(Reason.UNKNOWN_WORD, command, word=word, minutes=hint_minutes)
    if parsed.command is Command.CANCEL and doubts:
        return ParseError(Reason.UNKNOWN_WORD, command, plate=parsed.plate, word=word)
    if parsed.plate is None and parsed.minutes is not None:
        if parsed.command is Command.PARK and reader.park_word:
            # `park my car for 2 hours`: a new stay was asked for, and its plate is missing
            return ParseError(Reason.EMPTY, command, minutes=parsed.minutes)
        if parsed.command is Command.PARK:
            doubts.add(Doubt.NO_PLATE)  # `I want 2 hours`: more time for the stay they have?
    if reader.typo:
        doubts.add(Doubt.TYPO)
    if parsed.minutes is not None and _inferred(kept, parsed.minutes):
        doubts.add(Doubt.INFERRED_DURATION)
    if doubts:
        return Guess(parsed, frozenset(doubts), tuple(leftovers))
    return parsed


def _inferred(kept: list[_Word], minutes: int) -> bool:
    """The duration read is one the reader only inferred (a bare small number, `1:30`, a lone `half`)."""
    for k, word in enumerate(kept):
        if word.kind == "duration":
            if word.minutes == minutes and word.inferred:
                return True
            continue
        if word.kind != "raw" or not _NUMBER.fullmatch(word.text):
            continue
        value = float(word.text)
        if not (value < 10 or "." in word.text):
            continue
        nxt = kept[k + 1].text if k + 1 < len(kept) else ""
        if nxt in ("M", "H", "MIN", "HOUR") or _UNIT_MINUTES.get(nxt):
            continue
        if round(value * 60) == minutes or round(value * 60) + 30 == minutes:
            return True
    return False


def _zone_shaped(word: str, grammar: Grammar) -> bool:
    longest = max((len(code) for code in grammar.zone_words.values()), default=3)
    return bool(_ZONE_SHAPE.fullmatch(word)) and len(word) <= longest + 1 and grammar.plates.letters_of(word) is None


def _in_zone_place(kept: list[_Word], index: int, grammar: Grammar) -> bool:
    """Where the compact form puts a zone, next to the plate or the minutes with nothing between:
    `1234AB ZZZ 30`, `١٢٣٤ أب ZZZ ٣٠`, `ZZZ 1234AB 30`, `1234AB 30 ZZZ` (after a bare number, not
    after `30 min`)."""
    word = kept[index]

    def touching(k: int) -> _Word | None:
        if not (0 <= k < len(kept) and abs(kept[k].at - word.at) == 1):
            return None
        text = kept[k].text
        if any(ch.isdigit() for ch in text) or grammar.plates.letters_of(text) is not None:
            return kept[k]
        return None

    before, after = touching(index - 1), touching(index + 1)
    if before is not None and after is not None:
        return True
    if index == 0 and after is not None:
        return True
    return index == len(kept) - 1 and before is not None and before.kind == "raw" and before.text.isdigit()


# ------------------------------------------------------------------------------------------------


def understand(text: str, grammar: Grammar, keyword: str = "", *, inspector: bool = False) -> Reading:
    """What the driver meant: a certain `Parsed`, a `Guess` to confirm, or a `ParseError` with hints.

    Same arguments as `parser.parse`; every message `parse` reads is read the same way here.
    """
    compact = parse(text, grammar, keyword, inspector=inspector)
    if isinstance(compact, Parsed):
        if compact.command not in (Command.MY, Command.CONFIRM) or compact.plate or compact.minutes:
            return compact
        # `MY car 1234AB for an hour`, `yes park 1234AB 2 hours`: a booking behind MY or Y.
        if len(_SEPARATORS.split(text.strip())) < 3:
            return compact
        sentence = _read(text, grammar, None)
        if isinstance(sentence, (Parsed, Guess)):
            parsed = sentence if isinstance(sentence, Parsed) else sentence.parsed
            if parsed.plate is not None and parsed.minutes is not None:
                return sentence
        return compact
    if compact.command is Command.CHECK:
        return compact  # inspectors use the compact form
    first = keyword_command(keyword) if keyword else None
    if first is None:
        head = chunks_of(text)
        if head and head[0].kind in (LAT, ARA) and (len(head) == 1 or head[1].token != head[0].token):
            command = keyword_command(head[0].text)
            if command in (Command.PARK, Command.EXTEND, Command.CANCEL):
                first = command
    sentence = _read(text, grammar, first)
    return compact if sentence is None else sentence

