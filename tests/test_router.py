"""Router: keyword matching per short code, default routes, validation and the display lists."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from smsgw.message import Inbound, Lang, Reply, Request
from smsgw.router import Route, Router

PARKING = "90091"
REQUESTS = "90092"
OTHER = "90099"


class Recorder:
    """A handler that only remembers its name, so tests can see where a message went."""

    def __init__(self, name: str) -> None:
        self.name = name

    def handle(self, req: Request) -> list[Reply]:
        return [req.reply(self.name)]


ROUTES = (
    Route("HELP", ("مساعدة", "H", "?"), "help"),
    Route("PARK", ("موقف", "مواقف", "باركنج"), "parking", (PARKING,)),
    Route("EXT", ("تمديد", "تجديد", "E"), "parking", (PARKING,)),
    Route("*", (), "parking", (PARKING,)),
    Route("STATUS", ("حالة", "استعلام"), "status", (REQUESTS,)),
    Route("STOP", ("توقف",), "optout"),
)


def make_handlers() -> dict[str, Recorder]:
    return {n: Recorder(n) for n in ("help", "unknown", "parking", "status", "optout")}


def inbound(text: str, short_code: str = PARKING) -> Inbound:
    return Inbound(
        id=1, carrier="omantel", msisdn="96891234567", short_code=short_code, text=text, received_at=0.0
    )


@pytest.fixture
def router() -> Router:
    return Router(ROUTES, make_handlers())


ROUTE_CASES = [
    # (text, short code, handler, keyword, args, lang)
    ("HELP", PARKING, "help", "HELP", (), Lang.EN),
    ("help", PARKING, "help", "HELP", (), Lang.EN),
    ("Help", REQUESTS, "help", "HELP", (), Lang.EN),
    ("مساعدة", PARKING, "help", "HELP", (), Lang.AR),
    ("مساعده", PARKING, "help", "HELP", (), Lang.AR),  # teh marbuta typed as heh
    ("مُسَاعَدَة", OTHER, "help", "HELP", (), Lang.AR),  # with diacritics, on an unnamed code
    ("  help  ", PARKING, "help", "HELP", (), Lang.EN),
    ("HELP*", PARKING, "help", "HELP", (), Lang.EN),
    ("*help#", PARKING, "help", "HELP", (), Lang.EN),
    ("Help.", PARKING, "help", "HELP", (), Lang.EN),  # trailing punctuation tolerated
    ("h", PARKING, "help", "HELP", (), Lang.EN),
    ("?", PARKING, "help", "HELP", (), Lang.EN),
    ("؟", PARKING, "help", "HELP", (), Lang.EN),  # Arabic question mark folds to '?'
    ("\u200fhelp", PARKING, "help", "HELP", (), Lang.EN),
    ("park ١٢٣٤AB ٣٠", PARKING, "parking", "PARK", ("1234AB", "30"), Lang.EN),
    ("PARK ۱۲۳۴ab ۳۰", PARKING, "parking", "PARK", ("1234AB", "30"), Lang.EN),
    ("park*1234ab*30#", PARKING, "parking", "PARK", ("1234AB", "30"), Lang.EN),
    ("موقف ١٢٣٤ أب ٣٠", PARKING, "parking", "PARK", ("1234", "اب", "30"), Lang.AR),
    ("مـوقـف 1234AB 30", PARKING, "parking", "PARK", ("1234AB", "30"), Lang.AR),
    ("e 30", PARKING, "parking", "EXT", ("30",), Lang.EN),
    ("تجديد ٣٠", PARKING, "parking", "EXT", ("30",), Lang.AR),
    ("status mm-2026-000123", REQUESTS, "status", "STATUS", ("MM-2026-000123",), Lang.EN),
    ("استعلام MM-2026-000123", REQUESTS, "status", "STATUS", ("MM-2026-000123",), Lang.AR),
    ("stop", OTHER, "optout", "STOP", (), Lang.EN),
    # keyword valid elsewhere but not routed on this short code -> unknown, all tokens as args
    ("park 1234AB 30", REQUESTS, "unknown", "", ("PARK", "1234AB", "30"), Lang.EN),
    ("status MM-1", PARKING, "parking", "", ("STATUS", "MM-1"), Lang.EN),  # 90091 has a default route
    ("status MM-1", OTHER, "unknown", "", ("STATUS", "MM-1"), Lang.EN),
    # the default route: keyword-less parking
    ("1234AB 30", PARKING, "parking", "", ("1234AB", "30"), Lang.EN),
    ("١٢٣٤ اب ٣٠", PARKING, "parking", "", ("1234", "اب", "30"), Lang.AR),
    ("1234AB 30", REQUESTS, "unknown", "", ("1234AB", "30"), Lang.EN),
    ("xyz", REQUESTS, "unknown", "", ("XYZ",), Lang.EN),
    ("شكرا", REQUESTS, "unknown", "", ("شكرا",), Lang.AR),
    ("helpme", REQUESTS, "unknown", "", ("HELPME",), Lang.EN),
    # empty and invisible-only text -> unknown even where a default route exists
    ("", PARKING, "unknown", "", (), Lang.EN),
    ("   ", PARKING, "unknown", "", (), Lang.EN),
    ("\u200f\u200b", REQUESTS, "unknown", "", (), Lang.EN),
    ("*#", PARKING, "unknown", "", (), Lang.EN),
    # digits only: English (a caller may override the language)
    ("١٢٣", REQUESTS, "unknown", "", ("123",), Lang.EN),
]


@pytest.mark.parametrize(("text", "code", "handler", "keyword", "args", "lang"), ROUTE_CASES)
def test_route(
    router: Router, text: str, code: str, handler: str, keyword: str, args: tuple[str, ...], lang: Lang
) -> None:
    """The first normalised token picks the handler among the routes valid on the short code."""
    msg = inbound(text, code)
    h, req = router.route(msg)
    assert isinstance(h, Recorder) and h.name == handler
    assert req == Request(msg, keyword, args, lang)


def test_request_reply_goes_back_to_sender(router: Router) -> None:
    """The Request keeps the stored inbound, so a handler's reply returns on the same carrier and code."""
    h, req = router.route(inbound("help", REQUESTS))
    assert isinstance(h, Recorder)
    (reply,) = h.handle(req)
    assert (reply.carrier, reply.msisdn, reply.short_code) == ("omantel", "96891234567", REQUESTS)


@dataclass(frozen=True)
class ConfigRoute:
    """Stands in for the configuration module's route type: same attributes, a different class."""

    keyword: str
    aliases: tuple[str, ...]
    handler: str
    short_codes: tuple[str, ...]


def test_route_like_objects_are_accepted() -> None:
    """Any object with keyword, aliases, handler and short_codes works as a route."""
    r = Router([ConfigRoute("park", ["موقف"], "parking", ["90091"])], make_handlers())  # type: ignore[arg-type]
    h, req = r.route(inbound("موقف 1234AB 30"))
    assert h.name == "parking" and req.keyword == "PARK"  # type: ignore[attr-defined]


def test_builtin_help_and_unknown_are_registered() -> None:
    """Without entries for 'help' and 'unknown' the router uses the built-in handlers."""
    from handlers.help import HelpHandler, UnknownKeywordHandler

    r = Router([Route("HELP", (), "help")], {})
    assert isinstance(r.route(inbound("help"))[0], HelpHandler)
    assert isinstance(r.route(inbound("nope"))[0], UnknownKeywordHandler)


INVALID_TABLES = [
    # (routes, words expected in the message)
    (
        [Route("HELP", ("H",), "help"), Route("HOLD", ("h",), "parking", (PARKING,))],
        ["'H'", "HELP", "HOLD", PARKING],
    ),
    (
        [Route("PARK", ("موقف",), "parking", (PARKING,)), Route("SPOT", ("مَوْقِف",), "parking", (PARKING,))],
        ["PARK", "SPOT"],  # Arabic aliases collide after folding
    ),
    (
        [Route("PARK", (), "parking", (PARKING,)), Route("PARK", (), "status", ("90091", "90093"))],
        ["'PARK'", "parking", "status"],
    ),
    (
        [Route("STATUS", (), "status", (REQUESTS,)), Route("STATUS", (), "status")],
        ["STATUS", "all short codes"],  # every-code route overlaps a code-specific one
    ),
    (
        [Route("*", (), "parking", (PARKING,)), Route("*", (), "status", (PARKING,))],
        ["'*'", "parking", "status"],
    ),
    ([Route("HELP", (), "nosuch")], ["nosuch"]),
    ([Route("*", ("X",), "parking")], ["default route"]),
    ([Route("HELP ME", (), "help")], ["HELP ME"]),
    ([Route("HELP", ("",), "help")], ["alias"]),
    ([Route("HELP", "H", "help")], ["aliases"]),  # type: ignore[arg-type]
    ([Route("HELP", (), "help", "90091")], ["short_codes"]),  # type: ignore[arg-type]
]


@pytest.mark.parametrize(("routes", "words"), INVALID_TABLES)
def test_invalid_tables_raise(routes: list[Route], words: list[str]) -> None:
    """Ambiguous or broken route tables are refused with a message naming what is wrong."""
    with pytest.raises(ValueError) as err:
        Router(routes, make_handlers())
    for word in words:
        assert word in str(err.value)


VALID_TABLES = [
    # the same keyword on disjoint short codes is fine
    [Route("STATUS", (), "status", (REQUESTS,)), Route("STATUS", (), "parking", (PARKING,))],
    # an alias equal to its own keyword is not a collision
    [Route("HELP", ("help", "Help"), "help")],
    # a default route on one code and the same words elsewhere
    [Route("*", (), "parking", (PARKING,)), Route("*", (), "status", (REQUESTS,))],
]


@pytest.mark.parametrize("routes", VALID_TABLES)
def test_valid_tables_build(routes: list[Route]) -> None:
    """Keywords may repeat across disjoint short codes and within their own route."""
    Router(routes, make_handlers())


def test_same_keyword_on_two_codes_goes_to_each_handler() -> None:
    """One keyword routed on two short codes reaches the handler of the message's code."""
    r = Router(VALID_TABLES[0], make_handlers())
    assert r.route(inbound("status x", REQUESTS))[0].name == "status"  # type: ignore[attr-defined]
    assert r.route(inbound("status x", PARKING))[0].name == "parking"  # type: ignore[attr-defined]


def test_handler_without_handle_is_refused() -> None:
    """A handler object without handle() is refused at construction, not on the first message."""
    with pytest.raises(ValueError, match="parking"):
        Router([Route("PARK", (), "parking")], {"parking": object()})  # type: ignore[dict-item]


def test_replace_routes_swaps_the_table(router: Router) -> None:
    """replace_routes takes effect for the next message."""
    router.replace_routes([Route("HELP", (), "help"), Route("PAY", ("دفع",), "parking", (PARKING,))])
    assert router.route(inbound("pay 1"))[1].keyword == "PAY"
    assert router.route(inbound("park 1"))[0].name == "unknown"  # type: ignore[attr-defined]
    assert router.keywords_for(PARKING, Lang.AR) == ["HELP", "دفع"]


def test_replace_routes_keeps_old_table_on_error(router: Router) -> None:
    """A rejected table leaves the running one in place."""
    before = router.routes
    with pytest.raises(ValueError):
        router.replace_routes([Route("HELP", (), "help"), Route("HELP", (), "optout")])
    with pytest.raises(ValueError, match="ghost"):
        router.replace_routes([Route("HELP", (), "ghost")])
    assert router.routes is before
    assert router.route(inbound("park 1"))[1].keyword == "PARK"


def test_replace_routes_with_new_handlers(router: Router) -> None:
    """Handlers may be swapped together with the routes that name them."""
    new = Recorder("fines")
    router.replace_routes([Route("FINE", ("مخالفة",), "fines")], {"fines": new})
    assert router.route(inbound("مخالفة"))[0] is new


KEYWORDS_CASES = [
    (PARKING, Lang.EN, ["HELP", "PARK", "EXT", "STOP"]),
    (PARKING, Lang.AR, ["مساعدة", "موقف", "تمديد", "توقف"]),
    (REQUESTS, Lang.EN, ["HELP", "STATUS", "STOP"]),
    (REQUESTS, Lang.AR, ["مساعدة", "حالة", "توقف"]),
    (OTHER, Lang.EN, ["HELP", "STOP"]),
    (OTHER, Lang.AR, ["مساعدة", "توقف"]),
]


@pytest.mark.parametrize(("code", "lang", "expected"), KEYWORDS_CASES)
def test_keywords_for(router: Router, code: str, lang: Lang, expected: list[str]) -> None:
    """keywords_for lists a code's keywords in route order, Arabic aliases for Arabic, no default route."""
    assert router.keywords_for(code, lang) == expected


def test_keywords_for_falls_back_to_english_without_arabic_alias() -> None:
    """A route with no Arabic alias is shown by its English keyword in Arabic lists too."""
    r = Router([Route("help", ("H", "?"), "help"), Route("MY", (), "parking")], make_handlers())
    assert r.keywords_for(PARKING, Lang.AR) == ["HELP", "MY"]
    assert r.keyword_pairs(PARKING, Lang.AR) == [("HELP", "HELP"), ("MY", "MY")]


def test_keywords_for_returns_a_copy(router: Router) -> None:
    """Callers may modify the returned list without touching the router."""
    router.keywords_for(PARKING, Lang.EN).append("X")
    router.keyword_pairs(PARKING, Lang.EN).clear()
    assert router.keywords_for(PARKING, Lang.EN) == ["HELP", "PARK", "EXT", "STOP"]
