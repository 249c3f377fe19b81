"""What drivers and residents actually write, with the reading each message must get.

The corpus of the sentence reader (handlers/parking/sentence.py) and of the 90092 request reader
(handlers/transactions/sentence.py).  Each parking message has a category (what makes it hard), and
a verdict:

* `book`   the reading is certain: it is booked (or extended, stopped, listed) as the compact form
           would be (the tariff may still refuse the duration: that is the service's answer);
* `ask`    the reading is a guess: the driver is asked to confirm, nothing is charged before;
* `refuse` no booking: the reply says why and shows the message to send.

Near-misses are messages that must NOT book (verdict `ask` or `refuse`).  `scripts/parser_coverage.py`
prints the coverage of this corpus per category and language.
"""

from __future__ import annotations

from dataclasses import dataclass

from handlers.parking.parser import Command, Reason


@dataclass(frozen=True)
class Case:
    text: str
    category: str
    verdict: str  # book | ask | refuse
    plate: str | None = None
    minutes: int | None = None
    zone: str | None = None
    command: Command = Command.PARK
    reason: Reason | None = None  # refuse: why

    @property
    def id(self) -> str:
        return f"{self.category}:{self.text}"


def _cases(category: str, rows: list[tuple]) -> list[Case]:
    """Rows: (text, "refuse", reason) or (text, "book" | "ask", plate, minutes[, zone[, command]])."""
    out = []
    for text, verdict, *rest in rows:
        if verdict == "refuse":
            out.append(Case(text, category, verdict, reason=rest[0]))
            continue
        plate, minutes, zone, command = [*rest, None, None][:3] + [rest[3] if len(rest) > 3 else Command.PARK]
        out.append(Case(text, category, verdict, plate, minutes, zone, command))
    return out


B, A, R = "book", "ask", "refuse"
EXT, STOP, MY, YES = Command.EXTEND, Command.CANCEL, Command.MY, Command.CONFIRM

# -- words around the request ------------------------------------------------------------------------
WORDS = _cases("words", [
    ("I want to park my car 1234AB for 2 hours please", B, "1234AB", 120),
    ("Hi, please park 1234AB for 30 minutes", B, "1234AB", 30),
    ("Please book parking for 4821DR 1 hour thanks", B, "4821DR", 60),
    ("Can I park 55M for 2 hours?", B, "55M", 120),
    ("I need parking for my car 777HH, 90 minutes", B, "777HH", 90),
    ("Good morning, parking 3056SW 60 min please", B, "3056SW", 60),
    ("pls park 6612BM 30 mins", B, "6612BM", 30),
    ("Kindly reserve parking for vehicle 1234AB for 2 hrs", B, "1234AB", 120),
    ("I would like to park 1234 AB for 60 minutes", B, "1234AB", 60),
    ("park my car 1234AB 1 hour thank you", B, "1234AB", 60),
    ("hello I want to pay parking 55M 30 min", B, "55M", 30),
    ("1234AB for 30 minutes please", B, "1234AB", 30),
    ("1234AB 2 hours please thanks", B, "1234AB", 120),
    ("my car is 1234AB, I need 2 hours", B, "1234AB", 120),
    ("parking for 1234AB for 1 hour please sir", B, "1234AB", 60),
    ("Dear sir I want parking 90 minutes for 4821DR", B, "4821DR", 90),
    ("just 30 min for 1234AB", B, "1234AB", 30),
    ("can you park 1234AB for 2 hours", B, "1234AB", 120),
    ("I'm at CBD, park 1234AB 1 hour", B, "1234AB", 60, "CBD"),
    ("park 1234AB in CBD for 2 hours please", B, "1234AB", 120, "CBD"),
    ("book 55M in Ruwi for 60 minutes", B, "55M", 60, "CBD"),
    ("Hi there, 1234AB, 30 min", B, "1234AB", 30),
    ("salam, 1234AB 1 hour pls", B, "1234AB", 60),
    ("Please I need 2 hours parking for car number 1234AB", B, "1234AB", 120),
    ("1234AB 30 min thx", B, "1234AB", 30),
    ("OK park 1234AB 60", B, "1234AB", 60),
    ("park 12 KK for 60 minutes please", B, "12KK", 60),
    ("please park my car 7T for 30 minutes", B, "7T", 30),
    ("i wanna park 99999YY 2 hours", B, "99999YY", 120),
    ("Could you please book 1234AB for 90 mins", B, "1234AB", 90),
    ("parking 1234AB 1 hour in Muscat", B, "1234AB", 60, "MCT"),
    ("hey park 345TT 30 min thanks", B, "345TT", 30),
    ("urgent park 1234AB 30 min", A, "1234AB", 30),
    ("bro park 1234AB 2 hours", A, "1234AB", 120),
    ("park 1234AB for 30 min habibi", A, "1234AB", 30),
    ("Please park AB 1234 for an hour quickly", A, "1234AB", 60),
    ("I want 2 hours please", A, None, 120),
    ("ابي احجز موقف لسيارتي ١٢٣٤ أب لمدة ساعتين لو سمحت", B, "1234AB", 120),
    ("السلام عليكم ابغى موقف للسيارة ٤٨٢١ د ر ساعة", B, "4821DR", 60),
    ("لو سمحت احجز ٥٥ م ٣٠ دقيقة", B, "55M", 30),
    ("ممكن موقف ساعتين للسيارة 1234AB", B, "1234AB", 120),
    ("ابي موقف ساعة وحدة 777HH", B, "777HH", 60),
    ("احجز لي موقف ١٢٣٤ اب ساعة الله يعطيك العافية", B, "1234AB", 60),
    ("اريد حجز موقف لمدة ٩٠ دقيقة لسيارتي ٣٠٥٦ س و", B, "3056SW", 90),
    ("مرحبا ابي ادفع موقف ٦٦١٢ ب م نص ساعة", B, "6612BM", 30),
    ("ابغي موقف ١٢٣٤ أب ساعتين ونص", B, "1234AB", 150),
    ("موقف لسيارتي رقم ١٢٣٤ أ ب لمدة ساعة من فضلك", B, "1234AB", 60),
    ("يا اخوي ابي موقف ٥٥ م ساعة", B, "55M", 60),
    ("ابي اوقف سيارتي ٧٧٧ ح ح ساعتين", B, "777HH", 120),
    ("عطني موقف ١٢٣٤ أب ساعة", B, "1234AB", 60),
    ("ابي موقف في روي ١٢٣٤ أب ساعة", B, "1234AB", 60, "CBD"),
    ("موقف مسقط ٥٥ م ساعتين لو سمحت", B, "55M", 120, "MCT"),
    ("حاب احجز موقف ساعتين لـ ١٢٣٤ أب", B, "1234AB", 120),
    ("ودي احجز ١٢٣٤ أب نص ساعة", B, "1234AB", 30),
    ("ابي موقف 1234AB for 2 hours", B, "1234AB", 120),
    ("please موقف ١٢٣٤ أب ساعة", B, "1234AB", 60),
    ("الله يخليك احجز موقف لموتري ٤٨٢١ د ر ساعتين", B, "4821DR", 120),
    ("ابي موقف حق سيارتي ٥٥ م ساعة بس", B, "55M", 60),
    ("هلا، ابي موقف ١٢٣٤ أب ساعة الحين", B, "1234AB", 60),
    ("ابغا احجز ٧ ط ساعة", B, "7T", 60),
    ("مشكور ابي موقف ١٢ كك ساعتين", B, "12KK", 120),
    ("ابي موقف ١٢٣٤ أب ساعتين يا غالي", A, "1234AB", 120),
    ("حجز موقف ١٢٣٤ أب ساعة بسرعة", A, "1234AB", 60),
    ("ابي موقف ١٢٣٤ أب ساعة عند البنك", A, "1234AB", 60),
    ("ابي ساعتين لو سمحت", A, None, 120),
    ("ابي park 1234AB 2 hours", B, "1234AB", 120),
    ("please احجز ١٢٣٤ أب ساعة", B, "1234AB", 60),
    ("1234AB ساعتين please", B, "1234AB", 120),
    ("موقف 1234AB for one hour لو سمحت", B, "1234AB", 60),
    ("book ٥٥ م نص ساعة", B, "55M", 30),
    ("hi ابي موقف 777HH ساعة thanks", B, "777HH", 60),
    ("parking لسيارتي 4821DR لمدة 2 hours", B, "4821DR", 120),
])

# -- labelled forms ----------------------------------------------------------------------------------
LABELS = _cases("labels", [
    ("plate: 1234AB time: 30", B, "1234AB", 30),
    ("Plate No. 1234AB Duration: 2 hours", B, "1234AB", 120),
    ("car number 1234 AB, minutes 60", B, "1234AB", 60),
    ("Plate 55M, time 1 hour", B, "55M", 60),
    ("vehicle: 777HH duration: 90 min", B, "777HH", 90),
    ("plate=1234AB time=30", B, "1234AB", 30),
    ("Plate: 1234AB, Time: 1:30", A, "1234AB", 90),
    ("Plate no 4821 DR Hours 2", B, "4821DR", 120),
    ("plate 1234AB mins 90", B, "1234AB", 90),
    ("Number plate: AB 1234. Duration: 1hr", B, "1234AB", 60),
    ("plate:1234AB duration:30min", B, "1234AB", 30),
    ("car: 55M / time: 2h", B, "55M", 120),
    ("Reg no. 1234AB, parking time 30 mins", B, "1234AB", 30),
    ("plate 1234AB zone CBD time 60", B, "1234AB", 60, "CBD"),
    ("zone: MCT plate: 55M time: 30 minutes", B, "55M", 30, "MCT"),
    ("PLATE 1234AB DURATION 120", B, "1234AB", 120),
    ("car no 1234AB mins 30", B, "1234AB", 30),
    ("plate number 6612 BM time 2 hours", B, "6612BM", 120),
    ("Plate: 3056SW  Period: 1.5 hours", B, "3056SW", 90),
    ("Vehicle No: 345TT Parking Duration: 60 Minutes", B, "345TT", 60),
    ("رقم اللوحة: ١٢٣٤ أب، المدة: ساعتين", B, "1234AB", 120),
    ("اللوحة ٥٥ م الوقت ٣٠ دقيقة", B, "55M", 30),
    ("رقم السيارة 1234AB المدة 60", B, "1234AB", 60),
    ("نمرة السيارة ١٢٣٤ أب، المدة ساعة", B, "1234AB", 60),
    ("الرقم: 777 ح ح - المدة: ٩٠ دقيقة", B, "777HH", 90),
    ("لوحة 1234 أ ب وقت ساعتين", B, "1234AB", 120),
    ("رقم اللوحه ٤٨٢١ د ر المده ساعه ونص", B, "4821DR", 90),
    ("اللوحة: ٦٦١٢ ب م / الوقت: ١٢٠ دقيقة", B, "6612BM", 120),
    ("السيارة ٥٥ م المدة دقائق ٩٠", B, "55M", 90),
    ("رقم اللوحة ١٢٣٤ أب المنطقة روي المدة ساعة", B, "1234AB", 60, "CBD"),
])

# -- numbers as words --------------------------------------------------------------------------------
NUMBER_WORDS = _cases("number_words", [
    ("1234AB two hours", B, "1234AB", 120),
    ("park 1234AB for one hour", B, "1234AB", 60),
    ("1234AB thirty minutes", B, "1234AB", 30),
    ("1234AB ninety minutes please", B, "1234AB", 90),
    ("1234AB half an hour", B, "1234AB", 30),
    ("1234AB an hour and a half", B, "1234AB", 90),
    ("1234AB one and a half hours", B, "1234AB", 90),
    ("1234AB two and a half hours", B, "1234AB", 150),
    ("1234AB three hours", B, "1234AB", 180),
    ("park 55M for an hour", B, "55M", 60),
    ("1234AB sixty mins", B, "1234AB", 60),
    ("1234AB one hundred twenty minutes", B, "1234AB", 120),
    ("1234AB forty five minutes", B, "1234AB", 45),
    ("1234AB one hour thirty minutes", B, "1234AB", 90),
    ("1234AB an hour", B, "1234AB", 60),
    ("1234AB hour and half", B, "1234AB", 90),
    ("1234AB five hours", B, "1234AB", 300),
    ("1234AB four and a half hours", B, "1234AB", 270),
    ("1234AB twenty minutes", B, "1234AB", 20),
    ("1234AB 1 and a half hour", B, "1234AB", 90),
    ("1234AB 2 and half hours", B, "1234AB", 150),
    ("park 1234AB half hour", B, "1234AB", 30),
    ("park 1234AB a quarter of an hour", B, "1234AB", 15),
    ("1234AB one hour and thirty minutes", B, "1234AB", 90),
    ("1234AB a half hour", B, "1234AB", 30),
    ("park 4821DR for thirty", B, "4821DR", 30),
    ("park 1234AB for two", A, "1234AB", 120),
    ("1234AB a couple of hours", A, "1234AB", 120),
    ("park 1234AB for half", A, "1234AB", 30),
    ("1234AB one and a half", A, "1234AB", 90),
    ("موقف ١٢٣٤ أب ثلاث ساعات", B, "1234AB", 180),
    ("١٢٣٤ أب ساعة واحدة", B, "1234AB", 60),
    ("١٢٣٤ أب ثلاثين دقيقة", B, "1234AB", 30),
    ("١٢٣٤ أب تسعين دقيقه", B, "1234AB", 90),
    ("١٢٣٤ أب ساعتين ونص", B, "1234AB", 150),
    ("١٢٣٤ أب ساعة الا ربع", B, "1234AB", 45),
    ("١٢٣٤ أب ربع ساعة", B, "1234AB", 15),
    ("١٢٣٤ أب ساعة وربع", B, "1234AB", 75),
    ("١٢٣٤ أب اربع ساعات", B, "1234AB", 240),
    ("١٢٣٤ أب خمس ساعات", B, "1234AB", 300),
    ("١٢٣٤ أب خمسة وأربعين دقيقة", B, "1234AB", 45),
    ("١٢٣٤ أب ستين دقيقة", B, "1234AB", 60),
    ("١٢٣٤ أب ميه وعشرين دقيقه", B, "1234AB", 120),
    ("ابي موقف ٥٥ م لمدة ساعتين", B, "55M", 120),
    ("ابي موقف ٥٥ م لساعتين", B, "55M", 120),
    ("ابي موقف ٥٥ م بساعة", B, "55M", 60),
    ("١٢٣٤ أب ثلاث ساعات ونص", B, "1234AB", 210),
    ("١٢٣٤ أب ثلث ساعة", B, "1234AB", 20),
    ("١٢٣٤ أب عشرين دقيقة", B, "1234AB", 20),
    ("١٢٣٤ أب ساعتين الا ربع", B, "1234AB", 105),
    ("١٢٣٤ أب ساعه ونص لو سمحت", B, "1234AB", 90),
    ("موقف ٧٧٧ ح ح ساعتان", B, "777HH", 120),
    ("١٢٣٤ أب ساعه و نص", B, "1234AB", 90),
    ("احجز ٤٨٢١ د ر نص ساعه", B, "4821DR", 30),
    ("١٢٣٤ أب ساعتين و نص", B, "1234AB", 150),
    ("١٢٣٤ أب ثلاث ساعات الا ربع", B, "1234AB", 165),
    ("١٢٣٤ أب ثلاثين", B, "1234AB", 30),
    ("١٢٣٤ أب ثنتين", A, "1234AB", 120),
    ("١٢٣٤ أب نص", A, "1234AB", 30),
])

# -- other duration notations -----------------------------------------------------------------------
NOTATION = _cases("notation", [
    ("1234AB 1:30", A, "1234AB", 90),
    ("1234AB 2:00", A, "1234AB", 120),
    ("1234AB 0:30", A, "1234AB", 30),
    ("park 1234AB 1:30h", B, "1234AB", 90),
    ("1234AB 1:30 hours", B, "1234AB", 90),
    ("1234AB 2hrs", B, "1234AB", 120),
    ("1234AB 2hours", B, "1234AB", 120),
    ("1234AB 30mins", B, "1234AB", 30),
    ("1234AB 30mints", B, "1234AB", 30),
    ("1234AB 30 mints", B, "1234AB", 30),
    ("1234AB 90 minuts", B, "1234AB", 90),
    ("1234AB 60 minits", B, "1234AB", 60),
    ("1234AB 2 hors", B, "1234AB", 120),
    ("1234AB 1hr30", B, "1234AB", 90),
    ("1234AB 1hr 30min", B, "1234AB", 90),
    ("1234AB 2h30m", B, "1234AB", 150),
    ("1234AB 2س", B, "1234AB", 120),
    ("١٢٣٤ أب ٢س", B, "1234AB", 120),
    ("١٢٣٤ أب ٣٠د", B, "1234AB", 30),
    ("١٢٣٤ أب ٣٠دق", B, "1234AB", 30),
    ("١٢٣٤ أب ٣٠ دق", B, "1234AB", 30),
    ("١٢٣٤ أب ٩٠ دقايق", B, "1234AB", 90),
    ("١٢٣٤ أب ٢سا", B, "1234AB", 120),
    ("١٢٣٤ أب ١٢٠ دقائق", B, "1234AB", 120),
    ("1234AB 1.5hrs", B, "1234AB", 90),
    ("1234AB 1,5 hours", B, "1234AB", 90),
    ("1234AB 30 mnts", B, "1234AB", 30),
    ("1234AB 60 mints please", B, "1234AB", 60),
    ("1234AB 1/2 hour", B, "1234AB", 30),
    ("1234AB 1 1/2 hours", B, "1234AB", 90),
    ("1234AB 1 1/2", A, "1234AB", 90),
    ("1234AB 2 houres", B, "1234AB", 120),
    ("1234AB 1 hour 30", B, "1234AB", 90),
    ("park 1234AB for 2 days", B, "1234AB", 2880),
    ("1234AB 90MIN", B, "1234AB", 90),
    ("1234AB 2 HRS.", B, "1234AB", 120),
    ("1234AB 120 minutes.", B, "1234AB", 120),
    ("1234AB 2hr", B, "1234AB", 120),
    ("55M 1h30m", B, "55M", 90),
    ("777HH 45mins", B, "777HH", 45),
    ("١٢٣٤ أب ١:٣٠", A, "1234AB", 90),
    ("١٢٣٤ أب ٢ ساعات", B, "1234AB", 120),
    ("١٢٣٤ أب ١٫٥ ساعة", B, "1234AB", 90),
    ("١٢٣٤ أب ٩٠دقيقه", B, "1234AB", 90),
])

# -- typing slips ------------------------------------------------------------------------------------
SLIPS = _cases("slips", [
    ("1234AB 3O", A, "1234AB", 30),
    ("1234AB 6O min", A, "1234AB", 60),
    ("1234AB 12O", A, "1234AB", 120),
    ("l234AB 30", A, "1234AB", 30),
    ("I234AB 60", A, "1234AB", 60),
    ("12O4AB 30", A, "1204AB", 30),
    ("1234AB 9O", A, "1234AB", 90),
    ("park 1234AB for 3O mins", A, "1234AB", 30),
    ("١٢٣٤ أب 3O", A, "1234AB", 30),
    ("4821DR 6o", A, "4821DR", 60),
    ("55M 3o minutes", A, "55M", 30),
    ("1234AB 3O min please", A, "1234AB", 30),
    ("1234AB l20", A, "1234AB", 120),
    ("777HH 18O", A, "777HH", 180),
    ("1234AB 24O", A, "1234AB", 240),
    ("55 M 3O", A, "55M", 30),
    ("1234 AB 3O", A, "1234AB", 30),
    ("l2 KK 60", A, "12KK", 60),
    ("1234AB 3Omins", A, "1234AB", 30),
    ("park 4821DR 6O minutes please", A, "4821DR", 60),
    ("ابي موقف ١٢٣٤ أب 6O دقيقة", A, "1234AB", 60),
    ("موقف l234 أب ساعة", A, "1234AB", 60),
])

# -- other commands in sentences ---------------------------------------------------------------------
COMMANDS = _cases("commands", [
    ("extend my parking please", B, None, None, None, EXT),
    ("please extend 1234AB for one more hour", B, "1234AB", 60, None, EXT),
    ("add 30 minutes please", B, None, 30, None, EXT),
    ("30 more minutes please", B, None, 30, None, EXT),
    ("I need one more hour for 1234AB", B, "1234AB", 60, None, EXT),
    ("extend 1234AB 1 hour please", B, "1234AB", 60, None, EXT),
    ("please add another hour to 1234AB", B, "1234AB", 60, None, EXT),
    ("I want to extend for 30 min", B, None, 30, None, EXT),
    ("ابي تمديد ساعة", B, None, 60, None, EXT),
    ("مدد ساعة لو سمحت", B, None, 60, None, EXT),
    ("زيد نص ساعة", B, None, 30, None, EXT),
    ("ابي اضافة ساعة لسيارتي ١٢٣٤ أب", B, "1234AB", 60, None, EXT),
    ("cancel my parking please", B, None, None, None, STOP),
    ("please cancel parking for 1234AB", B, "1234AB", None, None, STOP),
    ("stop my parking", B, None, None, None, STOP),
    ("cancel 1234AB please", B, "1234AB", None, None, STOP),
    ("stop parking 55M now", B, "55M", None, None, STOP),
    ("ابي الغي الموقف", B, None, None, None, STOP),
    ("الغاء حجز ١٢٣٤ أب", B, "1234AB", None, None, STOP),
    ("الغاء الموقف لو سمحت", B, None, None, None, STOP),
    ("show my parking", B, None, None, None, MY),
    ("what is my parking status", B, None, None, None, MY),
    ("my tickets please", B, None, None, None, MY),
    ("وين موقفي", B, None, None, None, MY),
    ("حجوزاتي", B, None, None, None, MY),
    ("ابي اعرف كم باقي على موقفي", B, None, None, None, MY),
    ("yes please", B, None, None, None, YES),
    ("نعم تمام", B, None, None, None, YES),
    ("my car 1234AB for an hour", B, "1234AB", 60),
    ("yes please park 1234AB for 2 hours", B, "1234AB", 120),
    ("extend my parking bro", R, Reason.UNKNOWN_WORD),
    ("cancel parking 1234AB for 30 minutes", R, Reason.UNKNOWN_WORD),
])

# -- near-misses: must not book ----------------------------------------------------------------------
NEAR_MISSES = _cases("near_miss", [
    ("don't park 1234AB", R, Reason.UNKNOWN_WORD),
    ("do not book 1234AB for 2 hours", R, Reason.UNKNOWN_WORD),
    ("لا تحجز ١٢٣٤ أب", R, Reason.UNKNOWN_WORD),
    ("ما ابي احجز ١٢٣٤ أب ساعة", R, Reason.UNKNOWN_WORD),
    ("مابي موقف ١٢٣٤ أب", R, Reason.UNKNOWN_WORD),
    ("no parking 1234AB today", R, Reason.UNKNOWN_WORD),
    ("No thanks", R, Reason.UNKNOWN_WORD),
    ("1234AB 2 hours? no, 3 hours", R, Reason.UNKNOWN_WORD),
    ("park 1234AB until 2pm", R, Reason.NOT_NOW),
    ("park 1234AB till 12:30", R, Reason.NOT_NOW),
    ("park 1234AB at 5pm for 1 hour", R, Reason.NOT_NOW),
    ("1234AB from 4 to 6", R, Reason.NOT_NOW),
    ("park 1234AB tomorrow 2 hours", R, Reason.NOT_NOW),
    ("park 1234AB tonight", R, Reason.NOT_NOW),
    ("1234AB 13:30", R, Reason.NOT_NOW),
    ("park 1234AB at 10am", R, Reason.NOT_NOW),
    ("park 1234AB 2 hours from 4 pm", R, Reason.NOT_NOW),
    ("I parked 1234AB yesterday", R, Reason.NOT_NOW),
    ("ابي موقف ١٢٣٤ أب بكرة ساعتين", R, Reason.NOT_NOW),
    ("ابي موقف ١٢٣٤ أب الساعة ٥", R, Reason.NOT_NOW),
    ("موقف ١٢٣٤ أب من ٤ الى ٦", R, Reason.NOT_NOW),
    ("١٢٣٤ أب حتى الساعة ٢", R, Reason.NOT_NOW),
    ("١٢٣٤ أب ساعتين العصر", R, Reason.NOT_NOW),
    ("احجز ١٢٣٤ أب باجر الصبح", R, Reason.NOT_NOW),
    ("1234AB 30 or 60", R, Reason.UNKNOWN_WORD),
    ("1234AB 30 60", R, Reason.UNKNOWN_WORD),
    ("park 1234AB 2-3 hours", R, Reason.UNKNOWN_WORD),
    ("موقف ١٢٣٤ أب ساعتين او ثلاث", R, Reason.UNKNOWN_WORD),
    ("park 1234AB 30 min at gate 5", R, Reason.UNKNOWN_WORD),
    ("2001AB -30", R, Reason.UNKNOWN_WORD),
    ("2019AB ²", R, Reason.UNKNOWN_WORD),
    ("park 1234AB for -1 hour", R, Reason.UNKNOWN_WORD),
    ("1234AB ½ hour", R, Reason.UNKNOWN_WORD),
    ("1234AB +30", R, Reason.UNKNOWN_WORD),
    ("1234AB ZZZ 30", R, Reason.UNKNOWN_ZONE),
    ("1234AB 30 XYZ", R, Reason.UNKNOWN_ZONE),
    ("park 1234AB in SEEB for 1 hour", R, Reason.UNKNOWN_ZONE),
    ("1234AB zone QRM 60", R, Reason.UNKNOWN_ZONE),
    ("1234AB 30 min CBD MCT", R, Reason.UNKNOWN_WORD),
    ("AB 30", R, Reason.NO_PLATE_NUMBER),
    ("park AB for 30 min", R, Reason.NO_PLATE_NUMBER),
    ("أ ب ٣٠", R, Reason.NO_PLATE_NUMBER),
    ("DR 60", R, Reason.NO_PLATE_NUMBER),
    ("I want to park 1234AB", R, Reason.NO_DURATION),
    ("ابي موقف لسيارتي ١٢٣٤ أب", R, Reason.NO_DURATION),
    ("is 1234AB parked?", R, Reason.NO_DURATION),
    ("park 1234AB for a few hours", R, Reason.NO_DURATION),
    ("park my car for 2 hours", R, Reason.EMPTY),
    ("احجز موقف ساعتين", R, Reason.EMPTY),
    ("I want to park", R, Reason.EMPTY),
    ("hello", R, Reason.EMPTY),
    ("thanks", R, Reason.EMPTY),
    ("شكرا", R, Reason.EMPTY),
    ("حجز لو سمحت", R, Reason.EMPTY),
    ("park", R, Reason.EMPTY),
    ("where can I park?", R, Reason.UNKNOWN_WORD),
    ("what is the price of parking?", R, Reason.UNKNOWN_WORD),
    ("park for a while", R, Reason.UNKNOWN_WORD),
    ("the number is 91234567", R, Reason.PLATE_DIGITS),
    ("call me on 99887766", R, Reason.PLATE_DIGITS),
    ("ticket 0000018", R, Reason.PLATE_DIGITS),
    ("park 1234 for 2 hours", R, Reason.NO_LETTERS),
    ("1234ABC 30 min", R, Reason.PLATE_LETTERS),
    ("123456AB for 1 hour", R, Reason.PLATE_DIGITS),
    ("park 1234XZ 1 hour", R, Reason.PLATE_LETTERS),
    ("1234AB 0 minutes", R, Reason.BAD_DURATION),
    ("park 1234AB for 1.33 hours", R, Reason.BAD_DURATION),
    ("CHECK 1234AB", R, Reason.UNKNOWN_WORD),
    ("1234AB 1000 minutes", R, Reason.UNKNOWN_WORD),
    ("how much for 1234AB 2 hours", A, "1234AB", 120),
    ("park 1234AB and 777HH for 1 hour", A, "1234AB", 60),
    ("1234AB 777HH 30", A, "1234AB", 30),
    ("كم سعر ساعتين لسيارتي ١٢٣٤ أب", A, "1234AB", 120),
    ("how much is parking for 2 hours?", A, None, 120),
])

# -- compact forms (control: read exactly as before) -----------------------------------------------
COMPACT = _cases("compact", [
    ("1234AB 30", B, "1234AB", 30),
    ("١٢٣٤ أ ب ٣٠", B, "1234AB", 30),
    ("PARK 1234AB 2h", B, "1234AB", 120),
    ("حجز ١٢٣٤ أب ساعتين", B, "1234AB", 120),
    ("1234AB CBD 60", B, "1234AB", 60, "CBD"),
    ("AB 1234 90", B, "1234AB", 90),
    ("55M 1.5", B, "55M", 90),
    ("30 1234AB", B, "1234AB", 30),
    ("1234AB 2", B, "1234AB", 120),
    ("EXT 30", B, None, 30, None, EXT),
    ("STOP", B, None, None, None, STOP),
    ("MY", B, None, None, None, MY),
    ("نعم", B, None, None, None, YES),
    ("1234AB 30 minutes please", B, "1234AB", 30),
    ("PARK PARK 1234AB 30", B, "1234AB", 30),
    ("1234 30", R, Reason.NO_LETTERS),
    ("1234AB", R, Reason.NO_DURATION),
    ("1234AB 45", B, "1234AB", 45),
    ("موقف 1234AB 30", B, "1234AB", 30),
    ("Y 1234 30", B, "1234Y", 30),
])

PARKING_CASES: list[Case] = [*WORDS, *LABELS, *NUMBER_WORDS, *NOTATION, *SLIPS, *COMMANDS, *NEAR_MISSES, *COMPACT]


# -- 90092: residents writing about their request -----------------------------------------------------

@dataclass(frozen=True)
class RequestCase:
    text: str
    keyword: str  # the router's keyword ("" for the default route)
    reading: str  # status | my | usage
    ref: str | None = None

    @property
    def id(self) -> str:
        return f"requests:{self.text}"


REF = "MM-2026-000123"
REQUEST_CASES: list[RequestCase] = [
    RequestCase("What is the status of my request MM-2026-000123", "", "status", REF),
    RequestCase("status of my application MM-2026-000123 please", "STATUS", "status", REF),
    RequestCase("my request MM-2026-000123", "MY", "status", REF),
    RequestCase("Hi, any update on MM-2026-000123?", "", "status", REF),
    RequestCase("request 2026-000123 status", "", "status", REF),
    RequestCase("Please check my permit mm2026000123", "", "status", REF),
    RequestCase("what about my file MM 2026 123 thanks", "", "status", REF),
    RequestCase("status MM-2026-000123 please", "STATUS", "status", REF),
    RequestCase("Is MM-2026-000123 approved yet?", "", "status", REF),
    RequestCase("my lease renewal 2026-000123 where is it", "MY", "status", REF),
    RequestCase("Dear sir, my application number is MM-2026-000123, any news?", "", "status", REF),
    RequestCase("tell me about request (MM-2026-000123).", "", "status", REF),
    RequestCase("ابي اعرف حالة طلبي MM-2026-000123", "", "status", REF),
    RequestCase("حالة المعاملة رقم ٢٠٢٦-٠٠٠١٢٣", "STATUS", "status", REF),
    RequestCase("طلبي رقم MM 2026 123 وين وصل", "", "status", REF),
    RequestCase("السلام عليكم، وش صار على الطلب MM-٢٠٢٦-٠٠٠١٢٣؟", "", "status", REF),
    RequestCase("لو سمحت حالة طلب رقم 2026000123", "", "status", REF),
    RequestCase("استعلام عن معاملة MM-2026-000123", "STATUS", "status", REF),
    RequestCase("طلباتي MM-2026-000123", "MY", "status", REF),
    RequestCase("متى تخلص معاملتي MM-2026-000123", "", "status", REF),
    RequestCase("where is my request?", "", "my", None),
    RequestCase("what happened to my building permit", "", "my", None),
    RequestCase("status of my requests", "STATUS", "my", None),
    RequestCase("is my lease renewal approved?", "", "my", None),
    RequestCase("any update on my application please", "", "my", None),
    RequestCase("my requests MM-2026-000123 and MM-2026-000124", "MY", "my", None),
    RequestCase("I applied for a commercial licence, what is the status", "", "my", None),
    RequestCase("check my request", "", "my", None),
    RequestCase("my request number 12345", "MY", "my", None),
    RequestCase("وين وصل طلبي", "", "my", None),
    RequestCase("حالة طلبي", "STATUS", "my", None),
    RequestCase("ابغى اعرف وش صار على معاملتي", "", "my", None),
    RequestCase("استفسار عن طلب تجديد رخصة البناء", "", "my", None),
    RequestCase("متى تخلص معاملتي", "", "my", None),
    RequestCase("طلباتي لو سمحت", "MY", "my", None),
    RequestCase("هل تمت الموافقة على الرخصة؟", "", "my", None),
    RequestCase("عندي طلب تصريح، ابي اعرف حالته", "", "my", None),
    RequestCase("hello", "", "usage", None),
    RequestCase("STATUS hello", "STATUS", "usage", None),
    RequestCase("STATUS", "STATUS", "usage", None),
    RequestCase("what is this number?", "", "usage", None),
    RequestCase("مرحبا", "", "usage", None),
    RequestCase("1234AB 30", "", "usage", None),
    RequestCase("thanks", "", "usage", None),
]
