"""HELP and unknown-keyword replies: content, language and SMS length limits."""

from __future__ import annotations

import re

import pytest

from handlers import texts
from handlers.help import HelpHandler, UnknownKeywordHandler
from smsgw.message import Channel, Inbound, Lang, Reply
from smsgw.router import Route, Router

PARKING = "90091"
REQUESTS = "90092"
BUSY = "90095"  # many keywords: forces the length fitting

ROUTES = (
    Route("HELP", ("مساعدة", "H", "?"), "help"),
    Route("PARK", ("موقف",), "help", (PARKING,)),
    Route("EXT", ("تمديد",), "help", (PARKING,)),
    Route("MY", ("تذاكري",), "help", (PARKING,)),
    Route("*", (), "help", (PARKING,)),
    Route("STATUS", ("حالة",), "help", (REQUESTS,)),
    Route("STOP", ("توقف",), "help"),
    *(
        Route(kw, (ar,), "help", (BUSY,))
        for kw, ar in [
            ("PARK", "موقف"), ("EXT", "تمديد"), ("CANCEL", "الغاء"), ("MY", "تذاكري"), ("CHECK", "فحص"),
            ("STATUS", "حالة"), ("START", "ابدا"), ("FINE", "مخالفة"), ("PERMIT", "تصريح"), ("BALANCE", "رصيد"),
            ("PERMITS", "تصاريح"), ("COMPLAINT", "شكوى"),
        ]
    ),
)


@pytest.fixture
def router() -> Router:
    return Router(ROUTES, {})


def send(router: Router, text: str, code: str, channel: Channel = Channel.SMS) -> list[Reply]:
    msg = Inbound(1, "ooredoo", "96895123456", code, text, 0.0, channel=channel)
    handler, req = router.route(msg)
    result = handler.handle(req)
    assert isinstance(result, list)
    return result


def only(replies: list[Reply]) -> str:
    assert len(replies) == 1
    return replies[0].text


HELP_CASES = [
    # (text, code, lines expected in the reply)
    ("help", PARKING, ["Send to 90091:", "PARK 1234AB 30: park 30 min", "EXT 30: 30 min more", "STOP: no more SMS"]),
    ("HELP", REQUESTS, ["Send to 90092:", "HELP: this list", "STATUS <ref>: request status"]),
    ("مساعدة", PARKING, ["أرسل إلى 90091:", "موقف 1234AB 30: وقوف 30 دقيقة", "تمديد 30: 30 دقيقة أخرى"]),
    ("مساعدة", REQUESTS, ["أرسل إلى 90092:", "حالة <رقم الطلب>: حالة الطلب", "توقف: إيقاف الرسائل"]),
]


@pytest.mark.parametrize(("text", "code", "lines"), HELP_CASES)
def test_help_lists_keywords_with_examples(router: Router, text: str, code: str, lines: list[str]) -> None:
    """HELP answers with the code's keywords and a usage line each, in the sender's language."""
    reply = only(send(router, text, code))
    for line in lines:
        assert line in reply.split("\n")


def test_help_lists_keywords_without_known_usage_bare() -> None:
    """A keyword with no usage text is still listed, on its own."""
    r = Router([Route("HELP", ("مساعدة",), "help"), Route("RECYCLE", ("تدوير",), "help")], {})
    assert only(send(r, "help", PARKING)).split("\n") == ["Send to 90091:", "RECYCLE", "HELP: this list"]
    assert only(send(r, "مساعدة", PARKING)).split("\n")[1] == "تدوير"


def test_help_arabic_uses_ascii_digits(router: Router) -> None:
    """Numbers inside Arabic replies are ASCII digits."""
    reply = only(send(router, "مساعدة", PARKING))
    assert not re.search("[\u0660-\u0669\u06f0-\u06f9]", reply)
    assert "1234AB 30" in reply


LIMIT_CASES = [
    # (text, code, channel, must be GSM, max parts)
    ("help", PARKING, Channel.SMS, True, 1),
    ("help", REQUESTS, Channel.SMS, True, 1),
    ("help", BUSY, Channel.SMS, True, 2),
    ("help", "12345", Channel.SMS, True, 1),
    ("مساعدة", PARKING, Channel.SMS, False, 2),
    ("مساعدة", REQUESTS, Channel.SMS, False, 2),
    ("مساعدة", BUSY, Channel.SMS, False, 3),
    ("مساعدة", BUSY, Channel.USSD, False, 1),
    ("help", BUSY, Channel.USSD, True, 1),
]


@pytest.mark.parametrize(("text", "code", "channel", "gsm", "max_parts"), LIMIT_CASES)
def test_help_length_limits(
    router: Router, text: str, code: str, channel: Channel, gsm: bool, max_parts: int
) -> None:
    """English help is one GSM SMS, Arabic two UCS-2 parts, each one part more where every line
    needs it to say what it does (one screen on USSD, whatever it costs the explanations)."""
    reply = only(send(router, text, code, channel))
    assert texts.fits_7bit(reply) is gsm
    assert texts.sms_parts(reply) <= max_parts


SHIPPED_ROUTER_HANDLERS = ("parking", "transactions")


@pytest.fixture
def shipped() -> Router:
    from smsgw.config import load_config
    from tests.stack import SHIPPED_CONFIG

    class Quiet:
        def handle(self, req: object) -> list[Reply]:
            return []

    return Router(load_config(SHIPPED_CONFIG).routes, {name: Quiet() for name in SHIPPED_ROUTER_HANDLERS})


@pytest.mark.parametrize("code", [PARKING, REQUESTS])
@pytest.mark.parametrize("text", ["HELP", "مساعدة"])
def test_every_help_line_of_the_shipped_routes_says_what_it_does(shipped: Router, text: str, code: str) -> None:
    """On both short codes, in both languages, each keyword comes with what it does (نعم and HELP
    included), English in one GSM part and Arabic in at most three."""
    reply = only(send(shipped, text, code))
    header, *lines = reply.split("\n")
    assert header.endswith(f"{code}:")
    assert len(lines) == len(shipped.keyword_pairs(code, Lang.EN))
    for line in lines:
        keyword, _, what = line.partition(": ")
        assert keyword and what, line
    if text == "HELP":
        assert texts.fits_7bit(reply) and texts.sms_parts(reply) == 1
    else:
        assert texts.sms_parts(reply) <= 3


def test_the_my_line_says_what_my_is_on_each_short_code(shipped: Router) -> None:
    """MY lists parking on 90091 and requests on 90092: each short code's HELP says which."""
    def my_line(text: str, code: str, keyword: str) -> str:
        [line] = [line for line in only(send(shipped, text, code)).split("\n") if line.startswith(keyword + ":")]
        return line

    assert my_line("HELP", PARKING, "MY") == "MY: your parking now"
    assert my_line("HELP", REQUESTS, "MY") == "MY: your open requests"
    assert my_line("مساعدة", PARKING, "مواقفي") == "مواقفي: وقوفك الحالي"
    assert my_line("مساعدة", REQUESTS, "طلباتي") == "طلباتي: طلباتك المفتوحة"
    assert my_line("مساعدة", PARKING, "نعم") == "نعم: موافقة على التذكير أو سؤالنا"


def test_help_keeps_every_keyword_when_examples_do_not_fit(router: Router) -> None:
    """When examples overflow, they are dropped before keywords are."""
    reply = only(send(router, "help", BUSY))
    for kw in router.keywords_for(BUSY, Lang.EN):
        assert kw in reply
    reply_ar = only(send(router, "مساعدة", BUSY))
    for kw in router.keywords_for(BUSY, Lang.AR):
        assert kw in reply_ar


def test_arabic_help_fits_one_part_when_it_can() -> None:
    """A short Arabic list stays in one 70-character part."""
    r = Router([Route("HELP", ("مساعدة",), "help"), Route("STOP", ("توقف",), "help")], {})
    reply = only(send(r, "مساعدة", PARKING))
    assert len(reply) <= 70 and texts.sms_parts(reply) == 1


def test_help_follows_replaced_routes(router: Router) -> None:
    """The help text reflects a route table swapped in after the handler was built."""
    router.replace_routes([Route("HELP", (), "help"), Route("PAY", (), "help")])
    assert only(send(router, "help", PARKING)).split("\n") == ["Send to 90091:", "PAY", "HELP: this list"]


def test_help_on_code_without_keywords() -> None:
    """A code with nothing routed says so rather than sending an empty list."""
    r = Router([Route("*", (), "help", (PARKING,))], {})
    assert only(send(r, "anything", PARKING)) == "No services on 90091."
    assert only(send(r, "أي شيء", PARKING)) == "لا توجد خدمات على 90091."


UNKNOWN_CASES = [
    # (text, code, exact reply)
    ("xyz", REQUESTS, "Sorry, we did not understand 'xyz'. Send one of: HELP, STATUS, STOP"),
    ("park 1234AB", REQUESTS, "Sorry, we did not understand 'park 1234AB'. Send one of: HELP, STATUS, STOP"),
    ("what is this please", REQUESTS, "Sorry, we did not understand 'what is this...'. Send one of: HELP, STATUS, STOP"),
    ("١٢٣", REQUESTS, "Sorry, we did not understand '123'. Send one of: HELP, STATUS, STOP"),
    ("what\u2019s up", REQUESTS, "Sorry, we did not understand 'what's up'. Send one of: HELP, STATUS, STOP"),
    ("hi \U0001f600", REQUESTS, "Sorry, we did not understand 'hi ?'. Send one of: HELP, STATUS, STOP"),
    ("\u200fhi\u200e", REQUESTS, "Sorry, we did not understand 'hi'. Send one of: HELP, STATUS, STOP"),
    ("شكرا", REQUESTS, "عذرا، لم نفهم «شكرا». أرسل إحدى: مساعدة، حالة، توقف"),
    ("لو سمحت أريد المساعدة", REQUESTS, "عذرا، لم نفهم «لو سمحت أريد…». أرسل إحدى: مساعدة، حالة، توقف"),
    ("", REQUESTS, "Please send one of: HELP, STATUS, STOP"),
    ("\u200f ", REQUESTS, "Please send one of: HELP, STATUS, STOP"),
]


@pytest.mark.parametrize(("text", "code", "expected"), UNKNOWN_CASES)
def test_unknown_keyword_reply(router: Router, text: str, code: str, expected: str) -> None:
    """An unknown keyword is quoted (12 characters at most) and the valid keywords listed."""
    assert only(send(router, text, code)) == expected


UNKNOWN_LIMIT_CASES = [
    ("zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz", BUSY),
    ("كلمة غير معروفة على الإطلاق هنا", BUSY),
    ("\U0001f600" * 20, BUSY),
    ("[{}]~^|\\€" * 4, BUSY),
    ("ما هذا", REQUESTS),
    ("nope", "12345"),
    ("لا", "12345"),
]


@pytest.mark.parametrize(("text", "code"), UNKNOWN_LIMIT_CASES)
def test_unknown_reply_is_one_sms(router: Router, text: str, code: str) -> None:
    """The unknown-keyword reply always fits one SMS, cutting the keyword list if needed (HELP kept)."""
    msg = Inbound(1, "friendi", "96872123456", code, text, 0.0)
    handler, req = router.route(msg)
    assert isinstance(handler, UnknownKeywordHandler)
    reply = only(handler.handle(req))
    assert texts.sms_parts(reply) == 1
    if req.lang is Lang.EN:
        assert texts.fits_7bit(reply)
        assert "HELP" in reply
    else:
        assert "مساعدة" in reply


def test_unknown_without_keywords_still_answers() -> None:
    """With no keyword routed anywhere the reply only says what was not understood."""
    r = Router([], {})
    assert only(send(r, "hello", PARKING)) == "Sorry, we did not understand 'hello'."
    assert only(send(r, "", PARKING)) == "No services on 90091."


QUOTE_CASES = [
    ("hello", Lang.EN, "hello"),
    ("abcdefghijkl", Lang.EN, "abcdefghijkl"),
    ("abcdefghijklm", Lang.EN, "abcdefghijkl..."),
    ("  a \n b  ", Lang.EN, "a b"),
    ("\u201cok\u201d", Lang.EN, '"ok"'),
    ("١٢٣٤AB", Lang.EN, "1234AB"),
    ("e\u0301", Lang.EN, "?"),  # GSM has é, but an ASCII-only SMSC would force UCS-2
    ("[a]", Lang.EN, "[a]"),
    ("موقف", Lang.AR, "موقف"),
    ("موقف\u200f ١٢٣", Lang.AR, "موقف 123"),
    ("أ" * 13, Lang.AR, "أ" * 12 + "…"),
]


@pytest.mark.parametrize(("text", "lang", "expected"), QUOTE_CASES)
def test_quote_user_text(text: str, lang: Lang, expected: str) -> None:
    """Echoed user text is cleaned, cut to 12 characters and, in English, kept 7-bit on every carrier."""
    assert texts.quote_user_text(text, lang) == expected


SMS_PARTS_CASES = [
    ("", 1),
    ("a" * 160, 1),
    ("a" * 161, 2),
    ("a" * 306, 2),
    ("a" * 307, 3),
    ("[" * 80, 1),  # extension characters count twice
    ("[" * 81, 2),
    ("ع" * 70, 1),
    ("ع" * 71, 2),
    ("ع" * 134, 2),
    ("ع" * 135, 3),
    ("a" * 69 + "\U0001f600", 2),  # surrogate pair: two UCS-2 units
    ("é" * 70, 1),  # in GSM 03.38 but not ASCII: counted as UCS-2 (strictest carrier)
    ("é" * 71, 2),
]


@pytest.mark.parametrize(("text", "parts"), SMS_PARTS_CASES)
def test_sms_parts(text: str, parts: int) -> None:
    """Part counts follow 160/153 (GSM 7-bit) and 70/67 (UCS-2)."""
    assert texts.sms_parts(text) == parts


def test_handlers_are_plain_and_synchronous(router: Router) -> None:
    """Both handlers return a list of Reply at once, ending any USSD session."""
    for text in ("help", "xyz"):
        replies = send(router, text, PARKING, Channel.USSD) if text == "help" else send(router, text, REQUESTS)
        assert all(isinstance(r, Reply) and r.end_session for r in replies)
    assert isinstance(HelpHandler(router), HelpHandler)
