"""What a driver meant: parking SMS text → a typed command, or a ParseError saying what is missing.

Pure functions, no I/O.  Drivers type the official form `1234AB 30` and many others: a keyword or
none (`PARK`, `P`, `موقف`, `حجز`), plates as `1234AB`, `1234 AB`, `AB 1234`, `ab1234`, `١٢٣٤ أ ب`,
separators space `*` `#` `-`, durations in minutes or hours (`30`, `90`, `1h`, `1.5`, `2 ساعة`,
`ساعتين`, `30min`), a zone code where the config defines zones.

How ambiguity is settled
------------------------
The text is cut into tokens (at separators) and each token into runs of digits, Latin letters and
Arabic letters ("chunks"; `1234AB` is two chunks glued in one token).  A plate is digits next to
1-2 plate letters (either order); a duration is a number with an optional unit, or an Arabic hour
word.  The parser tries three readings: plate first, then zone/duration in any order; a duration
first and then the plate (`30 1234AB`); no plate at all (`EXT 30`).  Of those that use every
chunk, plate-and-minutes wins; between a plate alone and minutes alone the minutes win when they
are a buyable amount (`EXT 2H` is two hours) and the plate otherwise (`EXT 55M` is the car).  If
no reading uses every chunk, the error comes from the one that got furthest, so `1234AB 30 XYZ`
is blamed on `XYZ`, not on a missing plate.

Further rules, each from a real way of typing:
* A number of 4 or more digits is never a duration, so `1234 30` is a plate without letters, not
  1234 minutes.
* A bare number below 10, or a decimal, is hours (`1234AB 2` = 2 h, `1.5` = 90 min); from 10 up
  it is minutes (the official form).
* Plate digits lose leading zeros (`01234AB` and `1234AB` are one car); Arabic plate letters are
  mapped to Latin through the configured table, so every plate is stored as `<digits><LATIN>`.
* A keyword that is also made of plate letters (`Y`, `MY`) falls back to reading the whole text
  as a booking when its own reading fails: `Y 1234 30` is plate 1234Y.
* A sign before a number (`-30`, `+30`) and a digit that is not a plain digit (`²`, `½`, `①`,
  which Unicode compatibility folding would silently turn into `2`, `1/2`, `1`) are symbols no
  reading accepts: the message is refused, never booked for the number they decorate.

This module reads the compact forms only.  Sentences ("I want to park 1234AB for two hours
please") are read by `handlers.parking.sentence`, which reduces them to chunks and asks
`parse_chunks` here.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from smsgw.textnorm import normalise

__all__ = [
    "Command",
    "Grammar",
    "ParseError",
    "Parsed",
    "PlateRules",
    "Reason",
    "is_reserved_word",
    "keyword_command",
    "parse",
    "parse_chunks",
]


class Command(str, enum.Enum):
    PARK = "park"
    EXTEND = "extend"
    CANCEL = "cancel"
    MY = "my"
    CHECK = "check"
    CONFIRM = "confirm"  # Y / نعم after a reminder


class Reason(str, enum.Enum):
    EMPTY = "empty"  # no plate and no duration
    NO_PLATE = "no_plate"  # a plate is required here (CHECK)
    NO_LETTERS = "no_letters"  # plate digits without the letters
    PLATE_DIGITS = "plate_digits"  # too many digits, or all zeros
    PLATE_LETTERS = "plate_letters"  # too many letters, or a letter not on Omani plates
    NO_DURATION = "no_duration"  # a booking without minutes
    BAD_DURATION = "bad_duration"  # zero, or not whole minutes (1.33 h)
    UNKNOWN_WORD = "unknown_word"  # a word that is none of the above (also a second duration)
    # Found only by the sentence reader (handlers.parking.sentence), never by `parse`:
    UNKNOWN_ZONE = "unknown_zone"  # a word where a zone code goes that is no zone (`1234AB ZZZ 30`)
    NO_PLATE_NUMBER = "no_plate_number"  # plate letters and minutes, no plate number (`AB 30`)
    NOT_NOW = "not_now"  # a clock time or a day (`until 2pm`, `tomorrow`): bookings start now


@dataclass(frozen=True)
class Parsed:
    command: Command
    plate: str | None = None  # canonical `<digits><LATIN>`, e.g. "1234AB"
    minutes: int | None = None
    zone: str | None = None  # zone code


@dataclass(frozen=True)
class ParseError:
    reason: Reason
    command: Command
    plate: str | None = None  # the plate, when it was read: the reply's example can use it
    word: str | None = None  # the offending word or letters, as normalised
    minutes: int | None = None  # the duration, when the sentence reader found one (for the example)
    #: Chunk index where the reading stopped (None: not at one chunk); for the sentence reader.
    at: int | None = field(default=None, compare=False)


@dataclass(frozen=True)
class PlateRules:
    """Omani plates: up to `max_digits` digits and 1 to `max_letters` letters from `letters`."""

    letters: Mapping[str, str]  # Latin (upper) → Arabic (normalised), e.g. {"B": "ب"}
    max_digits: int = 5
    max_letters: int = 2
    _from_arabic: Mapping[str, str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_from_arabic", {ar: lat for lat, ar in self.letters.items()})

    def latin(self, ch: str) -> str | None:
        if ch in self.letters:
            return ch
        return self._from_arabic.get(ch)

    def letters_of(self, word: str) -> str | None:
        """The Latin letters `word` stands for if it is a plate-letter group (1..max letters)."""
        if not 1 <= len(word) <= self.max_letters:
            return None
        out = [self.latin(ch) for ch in word]
        return None if None in out else "".join(out)  # type: ignore[arg-type]


@dataclass(frozen=True)
class Grammar:
    plates: PlateRules
    zone_words: Mapping[str, str] = field(default_factory=dict)  # normalised word → zone code
    #: A number of minutes every zone sells (the zones' units' least common multiple); used only
    #: to tell `55M` (the car) from `30M` (half an hour).
    unit_minutes: int = 30
    #: Words of the zones' names (`RUWI`, `MUSCAT`) → zone code: the sentence reader takes them for
    #: the zone ("park 55M in Ruwi"); the compact form knows only codes and aliases.
    zone_names: Mapping[str, str] = field(default_factory=dict)


# ------------------------------------------------------------------------------------------------
# Vocabulary (normalised spellings: upper case, hamza folded, ة→ه)

_KEYWORDS: dict[str, Command] = {}
for _cmd, _words in {
    Command.PARK: ("PARK", "P", "PARKING", "موقف", "حجز", "باركنج", "بارك"),
    Command.EXTEND: ("EXT", "EXTEND", "تمديد", "تجديد", "مدد"),
    Command.CANCEL: ("CANCEL", "STOP", "END", "إلغاء", "الغاء", "انهاء", "ايقاف"),
    Command.MY: ("MY", "مواقفي", "تذاكري"),
    Command.CHECK: ("CHECK", "فحص"),
    Command.CONFIRM: ("Y", "YES", "نعم"),
}.items():
    for _w in _words:
        _KEYWORDS[normalise(_w)] = _cmd

_MINUTE_WORDS = frozenset(normalise(w) for w in (
    "M", "MN", "MIN", "MINS", "MINUTE", "MINUTES", "د", "دقيقة", "دقائق", "دقايق", "دقيقه"))
_HOUR_WORDS = frozenset(normalise(w) for w in ("H", "HR", "HRS", "HOUR", "HOURS", "ساعة", "ساعات"))
_ONE_HOUR = frozenset(normalise(w) for w in ("HOUR", "ساعة"))  # a bare word: one hour ("H" is a plate letter)
_TWO_HOURS = frozenset(normalise(w) for w in ("ساعتين", "ساعتان"))
_HALF = frozenset(normalise(w) for w in ("نص", "نصف", "HALF"))
_AND_HALF = frozenset(normalise(w) for w in ("ونص", "ونصف"))
_AND = normalise("و")

# A bare number below this is hours (`2` = 2 h); from here up it is minutes (`30`).
_BARE_HOURS_BELOW = 10
# A number with this many digits is a plate number, never a duration.
_PLATE_ONLY_DIGITS = 4


def is_reserved_word(word: str) -> bool:
    """True for words the parser already gives a meaning (config must not reuse them as zones)."""
    w = normalise(word)
    return (w in _KEYWORDS or w in _MINUTE_WORDS or w in _HOUR_WORDS
            or w in _TWO_HOURS or w in _HALF or w in _AND_HALF)


def keyword_command(keyword: str) -> Command | None:
    """The command a router keyword (canonical or alias) names, if any."""
    return _KEYWORDS.get(normalise(keyword))


# ------------------------------------------------------------------------------------------------
# Chunks

NUM, LAT, ARA, SYM = "num", "lat", "ara", "sym"

# Decimal comma between digits ("1,5") reads as a point; otherwise commas separate.
_DECIMAL_COMMA = re.compile(r"(?<=\d),(?=\d)")
# Between tokens.  A '.' is not one: it belongs to decimals (1.5) and is dropped elsewhere.
_SEPARATORS = re.compile(r"[\s*#\-_,;:/\\|+()\[\]{}\"'!?]+")
# Symbols, marked with private-use characters before the text is cut (the marks survive
# normalisation and are no separators): a sign typed before a number, and a numeric character
# that is not a plain digit.
_MINUS_MARK, _PLUS_MARK, _ODD_MARK = "\ue001", "\ue002", "\ue000"
_SYMBOL_TEXT = {_MINUS_MARK: "-", _PLUS_MARK: "+"}
# A sign: at the start of a word and right before a digit.  Between two words a '-' separates
# (`1234AB-30`, `1234-AB`); alone between spaces too (`1234AB - 30`).
_SIGN = re.compile(r"(?:^|(?<=\s))([-\u2212\u2013\u2014\ufe63]|\+)(?=\.?\d)")
_RUNS = re.compile(
    r"(\d+(?:\.\d+)?|\.\d+)|([A-Z]+)|([\u0620-\u064A\u066E-\u06D3]+)|([\ue000-\ue002])"
)


@dataclass(frozen=True, slots=True)
class Chunk:
    kind: str  # NUM | LAT | ARA
    text: str
    token: int  # chunks with the same token number were typed without a separator between them


# Numeric characters that are not plain digits (superscripts, fractions, circled and Roman
# numerals...), found once at import: a class of a regex, so a message costs one search.
_ODD_NUMERIC = re.compile("[" + re.escape("".join(
    chr(cp) for cp in range(0x80, 0x10000) if chr(cp).isnumeric() and not chr(cp).isdecimal())) + "]")
_KINDS = {1: NUM, 2: LAT, 3: ARA, 4: SYM}


def _odd_numeric(ch: str) -> bool:
    return ch.isnumeric() and not ch.isdecimal()


def prepare(text: str) -> tuple[str, list[str]]:
    """Normalised text with symbols marked, and the odd numeric characters in order of appearance."""
    odd: list[str] = []
    if not text.isascii():
        if max(text) > "\uffff":
            # Rare (emoji, mathematical letters): beyond the table, look at each character.
            odd = [ch for ch in text if _odd_numeric(ch)]
            if odd:
                text = "".join(_ODD_MARK if _odd_numeric(ch) else ch for ch in text)
        elif _ODD_NUMERIC.search(text):
            odd = _ODD_NUMERIC.findall(text)
            text = _ODD_NUMERIC.sub(_ODD_MARK, text)
    text = _DECIMAL_COMMA.sub(".", normalise(text))
    if "-" in text or "+" in text or not text.isascii():
        text = _SIGN.sub(lambda m: _PLUS_MARK if m.group(1) == "+" else _MINUS_MARK, text)
    return text, odd


def chunks_of_token(token: str, token_no: int, odd: list[str] | None = None) -> list[Chunk]:
    """The chunks of one prepared token; `odd` gives the originals of odd-numeric marks (consumed)."""
    out: list[Chunk] = []
    for m in _RUNS.finditer(token):
        kind = _KINDS[m.lastindex]  # type: ignore[index]
        if kind is SYM:
            # The original character, so the reply can quote it.
            text = m.group(0)
            text = _SYMBOL_TEXT.get(text) or (odd.pop(0) if odd else "?")
            out.append(Chunk(SYM, text, token_no))
        else:
            out.append(Chunk(kind, m.group(0), token_no))
    return out


def chunks_of(text: str) -> list[Chunk]:
    """Cut text into chunks; characters that are none of digits/letters/symbols are dropped."""
    prepared, odd = prepare(text)
    out: list[Chunk] = []
    token_no = 0
    for token in _SEPARATORS.split(prepared):
        if token:
            out += chunks_of_token(token, token_no, odd)
            token_no += 1
    return out


def _token_text(chunks: list[Chunk], i: int) -> tuple[str, int]:
    """The whole token starting at chunk i (if chunk i starts a token) and the index after it."""
    if i > 0 and chunks[i - 1].token == chunks[i].token:
        return "", i
    j = i
    while j < len(chunks) and chunks[j].token == chunks[i].token:
        j += 1
    return "".join(c.text for c in chunks[i:j]), j


# ------------------------------------------------------------------------------------------------
# Pieces: each returns a result and the next index, None if the piece is not there, or a _Fail.


@dataclass(frozen=True)
class _Fail:
    reason: Reason
    at: int  # chunk index reached: the reading that got furthest explains the failure
    word: str | None = None
    plate: str | None = None


def _is_int(chunk: Chunk) -> bool:
    return chunk.kind == NUM and "." not in chunk.text


def _plate_number(digits: str, rules: PlateRules, at: int) -> str | _Fail:
    if len(digits) > rules.max_digits or int(digits) == 0:
        return _Fail(Reason.PLATE_DIGITS, at, word=digits)
    return str(int(digits))


def _is_word(chunk: Chunk, grammar: Grammar, chunks: list[Chunk], i: int) -> bool:
    """A letter chunk with its own meaning (unit, keyword, zone): not a candidate for plate letters."""
    token, _ = _token_text(chunks, i)
    return is_reserved_word(chunk.text) or (token != "" and token in grammar.zone_words)


def _letters_after(chunks: list[Chunk], i: int, grammar: Grammar) -> tuple[str, int] | _Fail:
    """Plate letters starting at chunk i (possibly spread over tokens: `ا ب`); ("", i) if none."""
    rules = grammar.plates
    letters = ""
    j = i
    while j < len(chunks) and chunks[j].kind in (LAT, ARA):
        chunk = chunks[j]
        glued = chunks[j - 1].token == chunk.token
        mapped = rules.letters_of(chunk.text)
        if mapped is None:
            if letters or _is_word(chunk, grammar, chunks, j):
                break  # `1234AB 30MIN`, `30 MIN`: the word after the plate or the number
            if glued or len(chunk.text) <= rules.max_letters + 1:
                # Typed where the letters go and short: meant as letters, but not plate letters.
                return _Fail(Reason.PLATE_LETTERS, j, word=chunk.text)
            break
        if len(letters) + len(mapped) > rules.max_letters:
            if letters and not glued:
                break
            return _Fail(Reason.PLATE_LETTERS, j, word=chunk.text)
        letters += mapped
        j += 1
    return letters, j


def _plate_at(chunks: list[Chunk], i: int, grammar: Grammar) -> tuple[str, int] | _Fail | None:
    if i >= len(chunks):
        return None
    first = chunks[i]
    if _is_int(first):
        # digits then letters: 1234AB, 1234 AB, 1234 ا ب
        got = _letters_after(chunks, i + 1, grammar)
        if isinstance(got, _Fail):
            return got
        letters, j = got
        if not letters:
            return None
        number = _plate_number(first.text, grammar.plates, i)
        if isinstance(number, _Fail):
            return number
        return number + letters, j
    if first.kind in (LAT, ARA):
        # letters then digits: AB 1234, AB1234, ا ب 1234
        letters = ""
        j = i
        while j < len(chunks) and chunks[j].kind in (LAT, ARA):
            mapped = grammar.plates.letters_of(chunks[j].text)
            if mapped is None or len(letters) + len(mapped) > grammar.plates.max_letters:
                return None
            letters += mapped
            j += 1
        if not letters or j >= len(chunks) or not _is_int(chunks[j]):
            return None
        number = _plate_number(chunks[j].text, grammar.plates, j)
        if isinstance(number, _Fail):
            return number
        return number + letters, j + 1
    return None


def _minutes(value: float, at: int, word: str) -> int | _Fail:
    if value <= 0 or abs(value - round(value)) > 1e-6:
        return _Fail(Reason.BAD_DURATION, at, word=word)
    return round(value)


def _half_after(chunks: list[Chunk], j: int) -> tuple[int, int]:
    """`و نص` / `ونص` after an hour count: (+30, next index) or (0, j)."""
    if j < len(chunks) and chunks[j].text in _AND_HALF:
        return 30, j + 1
    if j + 1 < len(chunks) and chunks[j].text == _AND and chunks[j + 1].text in _HALF:
        return 30, j + 2
    return 0, j


def _duration_at(chunks: list[Chunk], i: int) -> tuple[int, int] | _Fail | None:
    if i >= len(chunks):
        return None
    c = chunks[i]
    n = len(chunks)
    if c.kind == NUM:
        if _is_int(c) and len(c.text) >= _PLATE_ONLY_DIGITS:
            return None
        value = float(c.text)
        j = i + 1
        nxt = chunks[j].text if j < n else None
        if nxt in _MINUTE_WORDS:
            minutes: float = value
            j += 1
        elif nxt in _HOUR_WORDS:
            minutes = value * 60
            j += 1
            # 1H30, 1H 30, 1 H 30 MIN, 1 ساعه و نص
            if j < n and _is_int(chunks[j]) and int(chunks[j].text) < 60:
                minutes += int(chunks[j].text)
                j += 1
                if j < n and chunks[j].text in _MINUTE_WORDS:
                    j += 1
            else:
                extra, j = _half_after(chunks, j)
                minutes += extra
        elif "." in c.text or value < _BARE_HOURS_BELOW:
            minutes = value * 60
            extra, j = _half_after(chunks, j)
            minutes += extra
        else:
            minutes = value
        got = _minutes(minutes, i, c.text)
        return got if isinstance(got, _Fail) else (got, j)
    if c.text in _ONE_HOUR:
        extra, j = _half_after(chunks, i + 1)
        return 60 + extra, j
    if c.text in _TWO_HOURS:
        extra, j = _half_after(chunks, i + 1)
        return 120 + extra, j
    if c.text in _HALF and i + 1 < n and chunks[i + 1].text in _HOUR_WORDS:
        return 30, i + 2
    return None


def _zone_at(chunks: list[Chunk], i: int, grammar: Grammar) -> tuple[str, int] | None:
    if i >= len(chunks):
        return None
    token, j = _token_text(chunks, i)
    code = grammar.zone_words.get(token) if token else None
    return (code, j) if code else None


@dataclass(frozen=True)
class _Reading:
    plate: str | None
    minutes: int | None
    zone: str | None


def _rest(
    chunks: list[Chunk], i: int, grammar: Grammar, plate: str | None, zone: str | None
) -> _Reading | _Fail:
    """Zone and duration, each at most once, in any order, up to the end."""
    minutes: int | None = None
    while i < len(chunks):
        if zone is None and (z := _zone_at(chunks, i, grammar)) is not None:
            zone, i = z
            continue
        if minutes is None:
            d = _duration_at(chunks, i)
            if isinstance(d, _Fail):
                return _Fail(d.reason, d.at, d.word, plate)
            if d is not None:
                minutes, i = d
                continue
        token, _ = _token_text(chunks, i)
        return _Fail(Reason.UNKNOWN_WORD, i, word=token or chunks[i].text, plate=plate)
    return _Reading(plate, minutes, zone)


def _preference(reading: _Reading, grammar: Grammar, wants_minutes: bool) -> int:
    """Rank complete readings.  Plate and minutes together is a whole message.  Between a plate
    alone and minutes alone (`EXT 2H`: two hours, or the car 2H?) the minutes win when they are
    a number of minutes one can buy and the command takes minutes; otherwise the car wins
    (`EXT 55M`, `STOP 55M`)."""
    if reading.plate is not None and reading.minutes is not None:
        return 3 if wants_minutes else 0
    if reading.minutes is not None:
        buyable = reading.minutes % grammar.unit_minutes == 0
        return 2 if wants_minutes and buyable else 0
    return 1


def _readings(chunks: list[Chunk], start: int, grammar: Grammar, wants_minutes: bool = True) -> _Reading | _Fail:
    """Plate (optional), zone (optional) and duration (optional) from chunk `start` on."""
    zone = None
    if (z := _zone_at(chunks, start, grammar)) is not None:
        zone, start = z
    found: list[_Reading] = []
    fails: list[_Fail] = []

    def keep(result: _Reading | _Fail) -> None:
        (found if isinstance(result, _Reading) else fails).append(result)  # type: ignore[arg-type]

    # 1. plate first, then zone and duration in any order
    p = _plate_at(chunks, start, grammar)
    if isinstance(p, _Fail):
        fails.append(p)
    elif p is not None:
        keep(_rest(chunks, p[1], grammar, p[0], zone))

    # 2. duration first, then the plate (`30 1234AB`)
    d = _duration_at(chunks, start)
    if isinstance(d, tuple):
        p2 = _plate_at(chunks, d[1], grammar)
        if isinstance(p2, tuple):
            r = _rest(chunks, p2[1], grammar, p2[0], zone)
            if isinstance(r, _Reading) and r.minutes is None:
                found.append(_Reading(r.plate, d[0], r.zone))
            elif isinstance(r, _Fail):
                fails.append(r)
        elif isinstance(p2, _Fail):
            fails.append(p2)

    # 3. no plate (`EXT 30`, `30`)
    keep(_rest(chunks, start, grammar, None, zone))

    if found:
        # max() keeps the first of equals: the plate-first reading wins ties.
        return max(found, key=lambda r: _preference(r, grammar, wants_minutes))
    best = max(fails, key=lambda f: f.at)
    # A number too long for minutes where the reading stopped is a plate missing its letters (or,
    # longer than any plate, a phone or ticket number: not a plate at all).
    if best.reason is Reason.UNKNOWN_WORD and best.plate is None:
        c = chunks[best.at]
        if _is_int(c) and len(c.text) >= _PLATE_ONLY_DIGITS:
            too_long = len(c.text) > grammar.plates.max_digits
            return _Fail(Reason.PLATE_DIGITS if too_long else Reason.NO_LETTERS, best.at, word=c.text)
    return best


# ------------------------------------------------------------------------------------------------
# Commands


def _as_error(fail: _Fail, command: Command) -> ParseError:
    return ParseError(fail.reason, command, plate=fail.plate, word=fail.word, at=fail.at)


def _parse_command(command: Command, chunks: list[Chunk], start: int, grammar: Grammar) -> Parsed | ParseError:
    if command is Command.MY:
        return Parsed(Command.MY)  # anything after MY ("MY PARKING", "مواقفي لو سمحت") changes nothing
    if start >= len(chunks):
        if command is Command.PARK:
            return ParseError(Reason.EMPTY, command)
        if command is Command.CHECK:
            return ParseError(Reason.NO_PLATE, command)
        return Parsed(command)
    reading = _readings(chunks, start, grammar, wants_minutes=command not in (Command.CANCEL, Command.CHECK))
    if isinstance(reading, _Fail):
        if command is Command.CONFIRM:
            return Parsed(command)  # "نعم شكرا", "Y please": the yes is what counts
        return _as_error(reading, command)
    if command is Command.PARK:
        if reading.plate is None and reading.minutes is None:
            return ParseError(Reason.EMPTY, command)
        if reading.minutes is None:
            return ParseError(Reason.NO_DURATION, command, plate=reading.plate)
    if command is Command.CANCEL and reading.minutes is not None:
        return ParseError(Reason.UNKNOWN_WORD, command, plate=reading.plate, word=str(reading.minutes))
    if command is Command.CHECK:
        if reading.plate is None:
            return ParseError(Reason.NO_PLATE, command)
        if reading.minutes is not None:
            return ParseError(Reason.UNKNOWN_WORD, command, plate=reading.plate, word=str(reading.minutes))
    return Parsed(command, reading.plate, reading.minutes, reading.zone)


def parse_chunks(command: Command, chunks: list[Chunk], grammar: Grammar) -> Parsed | ParseError:
    """Read chunks already cut (and cleared of a leading keyword) as `command`'s arguments."""
    return _parse_command(command, chunks, 0, grammar)


def parse(text: str, grammar: Grammar, keyword: str = "", *, inspector: bool = False) -> Parsed | ParseError:
    """Read one parking message.

    `keyword`: the router's canonical keyword when the router already took the first word off
    (then `text` is the rest); "" when `text` is the whole message (the short code's default
    route), in which case a leading keyword is recognised here.  `inspector`: whether CHECK is a
    command for this sender; for everyone else it is an unknown word, as on any other short code.
    """
    chunks = chunks_of(text)
    allowed = (lambda c: c is not None and (inspector or c is not Command.CHECK))
    if keyword:
        command = keyword_command(keyword)
        if allowed(command):
            assert command is not None
            return _parse_command(command, chunks, 0, grammar)
        # A keyword this parser does not serve: read the words as typed (the keyword included).
        chunks = chunks_of(f"{keyword} {text}")
    if not chunks:
        return ParseError(Reason.EMPTY, Command.PARK)
    first, after = _token_text(chunks, 0)
    command = _KEYWORDS.get(first)
    if not allowed(command):
        return _parse_command(Command.PARK, chunks, 0, grammar)
    assert command is not None
    result = _parse_command(command, chunks, after, grammar)
    retry = isinstance(result, ParseError) or (command in (Command.CONFIRM, Command.MY) and after < len(chunks))
    # `Y 1234 30`, `MY 5 30`: a keyword made of plate letters may be the plate's letters.
    if retry and grammar.plates.letters_of(first) is not None:
        booking = _parse_command(Command.PARK, chunks, 0, grammar)
        if isinstance(booking, Parsed) and booking.plate is not None:
            return booking
    return result
