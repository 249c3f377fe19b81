"""The USSD menu engine (handlers/ussd/engine.py) and its config: pure, no store, no network.

Effects are answered with literal results, exactly the shapes handlers/ussd/effects.py returns."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from handlers.ussd.app import shortcut_inputs
from handlers.ussd.config import ConfigError, load_menu_config, parse_menu_config
from handlers.ussd.engine import (
    Effect,
    MenuEngine,
    ParkingChoices,
    State,
    Step,
    ZoneChoice,
)
from smsgw.message import Lang
from smsgw.ussd.screen import fits

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = ROOT / "config" / "ussd.toml"
CONFIG = load_menu_config(SHIPPED)
HALF_HOURS = tuple(range(30, 301, 30))
ZONES = ParkingChoices((
    ZoneChoice("MCT", {"en": "Muscat", "ar": "مسقط"}, HALF_HOURS),
    ZoneChoice("CBD", {"en": "CBD Ruwi", "ar": "روي التجاري"}, HALF_HOURS),
))
ONE_ZONE = ParkingChoices((ZoneChoice("MCT", {"en": "Muscat", "ar": "مسقط"}, (30, 60)),))
STAY = {"plate": "1234AB", "ticket": "0000018", "zone": "MCT", "until": "11:00"}
OTHER = {"plate": "77M", "ticket": "0000026", "zone": "CBD", "until": "12:30"}


def engine(parking: ParkingChoices | None = ZONES) -> MenuEngine:
    return MenuEngine(CONFIG, parking)


def walk(eng: MenuEngine, step: Step, *answers: str) -> Step:
    for answer in answers:
        step = eng.handle(step.state, answer)
    return step


def text(step: Step) -> str:
    assert step.screen is not None and step.effect is None
    return step.screen.text


def test_a_first_dial_asks_for_the_language_in_both() -> None:
    """A number that never chose sees the language screen; choosing asks to store the choice,
    then shows the main menu in that language."""
    eng = engine()
    first = eng.begin(None)
    assert text(first) == "Choose language / اختر اللغة\n1 English\n2 العربية"
    asked = eng.handle(first.state, "2")
    assert asked.effect == Effect("language.set", {"lang": "ar"})
    main = eng.resume(asked.state, asked.effect, {})
    assert text(main).startswith("بلدية مسقط\n1 المواقف")
    assert main.screen is not None and not main.screen.end


def test_the_language_screen_takes_nothing_but_a_language() -> None:
    eng = engine()
    for answer in ("0", "00", "3", "English"):
        step = eng.handle(eng.begin(None).state, answer)
        assert text(step).startswith("Invalid choice.\nChoose language")


def test_main_menu_in_a_known_language() -> None:
    assert text(engine().begin(Lang.EN)) == (
        "Muscat Municipality\n1 Parking\n2 Request status\n3 Help\n4 Language\n0 Exit"
    )


def test_invalid_input_reshows_the_screen_with_a_short_error() -> None:
    eng = engine()
    main = eng.begin(Lang.EN)
    for answer in ("7", "", "park", "1.5", "99"):
        again = eng.handle(main.state, answer)
        assert text(again) == "Invalid choice.\n" + text(main)
    # the error is shown once: the next valid input carries on without it
    assert not text(eng.handle(eng.handle(main.state, "7").state, "1")).startswith("Invalid")


def test_zero_goes_back_and_double_zero_to_the_main_menu() -> None:
    eng = engine()
    main = eng.begin(Lang.EN)
    parking = eng.handle(main.state, "1")
    assert text(parking).startswith("Parking\n1 Book parking")
    assert text(eng.handle(parking.state, "0")) == text(main)
    plate = walk(eng, parking, "1")
    assert text(plate).startswith("Enter the plate number")
    assert text(eng.handle(plate.state, "0")) == text(parking)
    assert text(eng.handle(plate.state, "00")) == text(main)


def test_zero_at_the_main_menu_ends_the_dialogue() -> None:
    bye = engine().handle(engine().begin(Lang.EN).state, "0")
    assert bye.screen is not None and bye.screen.end
    assert bye.screen.text == CONFIG.text(Lang.EN, "goodbye")


def test_arabic_digits_are_menu_choices() -> None:
    eng = engine()
    assert text(eng.handle(eng.begin(Lang.AR).state, "١")).startswith("المواقف")


def test_booking_asks_plate_zone_duration_then_confirms() -> None:
    """Plate → zone → duration → confirm: the service reads the plate, prices and books."""
    eng = engine()
    step = walk(eng, eng.begin(Lang.EN), "1", "1", "1234 ab")
    assert step.effect == Effect("parking.plate", {"text": "1234 ab"})
    step = eng.resume(step.state, step.effect, {"plate": "1234AB"})
    assert text(step) == "Choose the zone:\n1 Muscat\n2 CBD Ruwi\n0 Back 00 Main"
    step = eng.handle(step.state, "2")
    assert text(step).startswith("How long?\n1 30 min\n2 1 h\n3 1 h 30 min")
    step = eng.handle(step.state, "3")
    assert step.effect == Effect("parking.quote", {"plate": "1234AB", "zone": "CBD", "minutes": 90})
    step = eng.resume(step.state, step.effect, {"amount": "300 baisa"})
    assert text(step) == "Park 1234AB in CBD Ruwi for 1 h 30 min: 300 baisa.\n1 Confirm\n0 Back 00 Main"
    step = eng.handle(step.state, "1")
    assert step.effect == Effect("parking.book", {"plate": "1234AB", "zone": "CBD", "minutes": 90})
    done = eng.resume(step.state, step.effect, {"text": "Ticket 0000018: 1234AB parked in CBD Ruwi until 12:00."})
    assert done.screen is not None and done.screen.end
    assert done.screen.text == "Ticket 0000018: 1234AB parked in CBD Ruwi until 12:00."


def test_a_plate_the_service_cannot_read_is_asked_again() -> None:
    eng = engine()
    step = walk(eng, eng.begin(Lang.EN), "1", "1", "hello")
    again = eng.resume(step.state, step.effect, {"plate": None})  # type: ignore[arg-type]
    assert text(again) == "Invalid plate number.\nEnter the plate number, e.g. 1234AB\n0 Back 00 Main"


def test_a_free_stay_says_so_in_the_confirmation() -> None:
    eng = engine()
    step = walk(eng, eng.begin(Lang.EN), "1", "1", "1234AB")
    step = walk(eng, eng.resume(step.state, step.effect, {"plate": "1234AB"}), "1", "1")  # type: ignore[arg-type]
    assert "for 30 min: no charge." in text(eng.resume(step.state, step.effect, {"amount": None}))  # type: ignore[arg-type]


def test_back_inside_a_flow_steps_back_and_one_zone_is_not_asked() -> None:
    eng = engine(ONE_ZONE)
    step = walk(eng, eng.begin(Lang.EN), "1", "1", "1234AB")
    step = eng.resume(step.state, step.effect, {"plate": "1234AB"})  # type: ignore[arg-type]
    assert text(step).startswith("How long?\n1 30 min\n2 1 h\n0 Back")
    step = eng.handle(step.state, "2")
    confirm = eng.resume(step.state, step.effect, {"amount": "200 baisa"})  # type: ignore[arg-type]
    assert text(eng.handle(confirm.state, "0")).startswith("How long?")
    assert text(walk(eng, confirm, "0", "0")).startswith("Enter the plate number")
    assert text(walk(eng, confirm, "0", "0", "0")).startswith("Parking\n")


def test_extending_with_no_parking_says_so() -> None:
    eng = engine()
    step = walk(eng, eng.begin(Lang.EN), "1", "2")
    assert step.effect == Effect("parking.sessions")
    done = eng.resume(step.state, step.effect, {"sessions": []})
    assert done.screen == done.screen.__class__("You have no active parking.", True)


def test_extending_one_stay_asks_only_how_long() -> None:
    eng = engine()
    step = walk(eng, eng.begin(Lang.EN), "1", "2")
    step = eng.resume(step.state, step.effect, {"sessions": [STAY]})  # type: ignore[arg-type]
    assert text(step).startswith("Add how long to 1234AB?\n1 30 min")
    step = eng.handle(step.state, "2")
    assert step.effect == Effect("parking.quote", {"plate": "1234AB", "zone": "MCT", "minutes": 60, "ticket": "0000018"})
    step = eng.resume(step.state, step.effect, {"amount": "200 baisa"})
    assert text(step) == "Extend 1234AB (until 11:00) by 1 h: 200 baisa.\n1 Confirm\n0 Back 00 Main"
    step = eng.handle(step.state, "1")
    assert step.effect == Effect("parking.extend", {"plate": "1234AB", "minutes": 60})


def test_extending_with_two_cars_asks_which() -> None:
    eng = engine()
    step = walk(eng, eng.begin(Lang.EN), "1", "2")
    step = eng.resume(step.state, step.effect, {"sessions": [STAY, OTHER]})  # type: ignore[arg-type]
    assert text(step) == "Which car?\n1 1234AB (11:00)\n2 77M (12:30)\n0 Back 00 Main"
    step = walk(eng, step, "2", "1")
    assert step.effect == Effect("parking.quote", {"plate": "77M", "zone": "CBD", "minutes": 30, "ticket": "0000026"})


def test_my_parking_lists_every_stay_page_by_page() -> None:
    """A list longer than a screen is paged with "more", never cut; its last page ends the dialogue."""
    eng = engine()
    step = walk(eng, eng.begin(Lang.AR), "1", "3")
    stays = [dict(STAY, plate=f"{1000 + n}AB", ticket=f"00000{n:02d}") for n in range(6)]
    step = eng.resume(step.state, step.effect, {"sessions": stays})  # type: ignore[arg-type]
    pages = [step.screen]
    while step.screen is not None and not step.screen.end:
        assert step.screen.text.endswith("\n98 المزيد")
        step = eng.handle(step.state, "98")
        pages.append(step.screen)
    assert len(pages) >= 3
    assert all(p is not None and fits(p.text) for p in pages)
    shown = "\n".join(p.text for p in pages if p is not None)
    assert all(f"{1000 + n}AB" in shown for n in range(6))


def test_status_lookup_asks_again_for_a_malformed_reference() -> None:
    eng = engine()
    step = walk(eng, eng.begin(Lang.EN), "2")
    assert text(step) == "Enter your request number:\n0 Back 00 Main"
    step = eng.handle(step.state, "hello")
    assert step.effect == Effect("status.lookup", {"ref": "hello"})
    again = eng.resume(step.state, step.effect, {"invalid": True})
    assert text(again) == "That is not a request number.\nEnter your request number:\n0 Back 00 Main"
    step = eng.handle(again.state, "MM-2026-000123")
    done = eng.resume(step.state, step.effect, {"text": "MM-2026-000123: approved"})  # type: ignore[arg-type]
    assert done.screen is not None and done.screen.end and done.screen.text == "MM-2026-000123: approved"


def test_a_service_that_is_not_there_is_said_to_be_unavailable() -> None:
    no_parking = engine(None)
    done = walk(no_parking, no_parking.begin(Lang.EN), "1", "1")
    assert done.screen is not None and done.screen.end and "not available" in done.screen.text
    eng = engine()
    step = walk(eng, eng.begin(Lang.EN), "2", "MM-2026-000123")
    done = eng.resume(step.state, step.effect, {"unavailable": True})  # type: ignore[arg-type]
    assert done.screen is not None and done.screen.end and "not available" in done.screen.text


def test_long_menus_page_with_more_and_keep_their_numbers() -> None:
    """In Arabic the ten durations take several screens; a number seen on any page is valid."""
    eng = engine()
    step = walk(eng, eng.begin(Lang.AR), "1", "1", "1234AB")
    step = walk(eng, eng.resume(step.state, step.effect, {"plate": "1234AB"}), "1")  # type: ignore[arg-type]
    first = text(step)
    assert first.startswith("كم المدة؟\n1 30 دقيقة") and first.endswith("\n98 المزيد")
    step = eng.handle(step.state, "98")
    assert text(step).startswith(("5 ", "6 "))  # numbering continues from the first page
    last = step
    while text(last).endswith("98 المزيد"):
        last = eng.handle(last.state, "98")
    assert "10 5 ساعة" in text(last) and text(last).endswith("0 رجوع 00 الرئيسية")
    assert text(eng.handle(last.state, "98")).startswith("اختيار غير صحيح.")
    chosen = eng.handle(last.state, "10")
    assert chosen.effect is not None and chosen.effect.args["minutes"] == 300


def test_help_pages_through_its_text() -> None:
    eng = engine()
    step = walk(eng, eng.begin(Lang.AR), "3")
    pages = [text(step)]
    while pages[-1].endswith("98 المزيد"):
        step = eng.handle(step.state, "98")
        pages.append(text(step))
    assert len(pages) >= 2 and all(fits(p) for p in pages)
    assert pages[-1].endswith("0 رجوع 00 الرئيسية")
    assert "*141#" in pages[0]


def test_state_survives_json() -> None:
    """The state is stored between screens (and across a restart): JSON and back changes nothing."""
    eng = engine()
    step = walk(eng, eng.begin(Lang.AR), "1", "2")
    step = eng.resume(step.state, step.effect, {"sessions": [STAY, OTHER]})  # type: ignore[arg-type]
    restored = State.from_json(step.state.to_json())
    assert restored == step.state
    assert eng.handle(restored, "1") == eng.handle(step.state, "1")


def test_every_screen_of_a_random_walk_fits() -> None:
    """Whatever a user types, in either language: every screen is one USSD string."""
    eng = engine()
    rng = random.Random(11)
    answers = ["0", "00", "98", "1", "2", "3", "4", "9", "", "x", "1234AB"]
    results = {
        "language.set": lambda e: {},
        "parking.plate": lambda e: {"plate": "1234AB"},
        "parking.quote": lambda e: {"amount": "300 بيسة"},
        "parking.book": lambda e: {"text": "تذكرة 0000018: 1234AB في مسقط حتى 11:00. المبلغ 200 بيسة."},
        "parking.extend": lambda e: {"text": "Ticket 0000018: 1234AB extended to 12:00 (+60 min)."},
        "parking.sessions": lambda e: {"sessions": [STAY, OTHER] * rng.randrange(0, 4)},
        "status.lookup": lambda e: {"invalid": True} if rng.random() < 0.5 else {"text": "MM-2026-000123: " + "x" * 200},
    }
    for _ in range(200):
        step = eng.begin(rng.choice([None, Lang.EN, Lang.AR]))
        for _ in range(25):
            while step.effect is not None:
                step = eng.resume(step.state, step.effect, results[step.effect.name](step.effect))
            assert step.screen is not None and fits(step.screen.text), step.screen
            if step.screen.end:
                break
            step = eng.handle(step.state, rng.choice(answers))


@pytest.mark.parametrize(
    ("dialled", "inputs"),
    [("*141#", []), ("*141*1#", ["1"]), ("*141*1*1*1234AB#", ["1", "1", "1234AB"]), ("*١٤١*٢#", ["2"])],
)
def test_shortcut_inputs(dialled: str, inputs: list[str]) -> None:
    assert shortcut_inputs(dialled) == inputs


# -- config/ussd.toml errors: file, line and key ------------------------------------------------


def broken(replace: str, with_: str) -> str:
    original = SHIPPED.read_text(encoding="utf-8")
    assert replace in original
    return original.replace(replace, with_, 1)


def line_of(text: str, needle: str) -> int:
    return text[: text.index(needle)].count("\n") + 1


@pytest.mark.parametrize(
    ("replace", "with_", "key", "message"),
    [
        ('flow = "help"', 'flow = "halp"', "items.help.flow", 'did you mean "help"'),
        ('code = "*141#"', 'code = "141"', "service.code", 'must look like "*141#"'),
        ('more_key = "98"', 'more_key = "0"', "service.more_key", "two digits"),
        ('confirm = "1 Confirm"', 'confirm = "1 Confirm {plate}"', "texts.en.confirm", "unknown placeholder"),
        ('main = ["parking", "status", "help", "language"]', 'main = ["parking", "stats", "help", "language"]',
         "menus.main[1]", "no item 'stats'"),
        ('menu = "parking"', 'menu = "parkng"', "items.parking.menu", 'no menu "parkng"'),
        ('ask_ref = "أدخل رقم طلبك:"', 'ask_reff = "أدخل رقم طلبك:"', "texts.ar.ask_ref", "required key is missing"),
    ],
)
def test_config_errors_name_file_line_and_key(replace: str, with_: str, key: str, message: str) -> None:
    text = broken(replace, with_)
    with pytest.raises(ConfigError) as caught:
        parse_menu_config(text, "config/ussd.toml")
    issues = [i for i in caught.value.issues if i.key == key]
    assert issues, str(caught.value)
    assert message in issues[0].message
    assert str(issues[0]).startswith("config/ussd.toml:")
    if "missing" not in message:
        assert issues[0].line == line_of(text, with_.split("\n")[0])


def test_the_shipped_menus_fit_their_screens() -> None:
    """Every static screen of the shipped config, in both languages, fits (or pages)."""
    for lang in (Lang.EN, Lang.AR):
        eng = engine()
        main = eng.begin(lang)
        assert fits(text(main))
        for n in range(1, 5):
            step = eng.handle(main.state, str(n))
            assert step.effect is not None or fits(text(step))
