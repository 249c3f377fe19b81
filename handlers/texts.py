"""Reply wording (English and Arabic) and the SMS length arithmetic the wording must fit.

Numbers inside Arabic text are ASCII digits: mixed runs display correctly on handsets and
users copy them back verbatim. `{kw}` is the keyword as shown to the user (the Arabic alias
in Arabic replies), so every example is something the user can send as written.
"""

from __future__ import annotations

import unicodedata

from smsgw.message import Lang
from smsgw.text import count_parts, is_gsm
from smsgw.textnorm import fold_digits

# One-line usage per canonical keyword: (English, Arabic). Keywords not listed are shown bare.
# "KEYWORD@handler" words a keyword for the service answering it on the short code, where one
# keyword means different things on different codes (MY: parking on 90091, requests on 90092).
USAGE: dict[str, tuple[str, str]] = {
    "HELP": ("{kw}: this list", "{kw}: هذه القائمة"),
    "PARK": ("{kw} 1234AB 30: park 30 min", "{kw} 1234AB 30: وقوف 30 دقيقة"),
    "EXT": ("{kw} 30: 30 min more", "{kw} 30: 30 دقيقة أخرى"),
    "CANCEL": ("{kw}: end parking now", "{kw}: إنهاء الوقوف الآن"),
    "MY": ("{kw}: your tickets or requests", "{kw}: تذاكرك أو طلباتك"),
    "MY@parking": ("{kw}: your parking now", "{kw}: وقوفك الحالي"),
    "MY@transactions": ("{kw}: your open requests", "{kw}: طلباتك المفتوحة"),
    # Y books or extends only as the answer to one of our messages (a reminder, or a question about
    # what a driver meant): never on its own.
    "Y": ("{kw}: yes to a reminder or our question", "{kw}: موافقة على التذكير أو سؤالنا"),
    "CHECK": ("{kw} 1234AB: check a plate", "{kw} 1234AB: استعلام عن مركبة"),
    "STATUS": ("{kw} <ref>: request status", "{kw} <رقم الطلب>: حالة الطلب"),
    "STOP": ("{kw}: no more SMS", "{kw}: إيقاف الرسائل"),
    "START": ("{kw}: SMS on again", "{kw}: استئناف الرسائل"),
}

HELP_HEADER = {Lang.EN: "Send to {code}:", Lang.AR: "أرسل إلى {code}:"}
HELP_NONE = {Lang.EN: "No services on {code}.", Lang.AR: "لا توجد خدمات على {code}."}

NOT_UNDERSTOOD = {Lang.EN: "Sorry, we did not understand '{q}'.", Lang.AR: "عذرا، لم نفهم «{q}»."}
SEND_ONE_OF = {Lang.EN: " Send one of: {kws}", Lang.AR: " أرسل إحدى: {kws}"}
PLEASE_SEND = {Lang.EN: "Please send one of: {kws}", Lang.AR: "أرسل إحدى الكلمات: {kws}"}
LIST_SEP = {Lang.EN: ", ", Lang.AR: "، "}
ELLIPSIS = {Lang.EN: "...", Lang.AR: "…"}


def usage(canonical: str, shown: str, lang: Lang, handler: str | None = None) -> str | None:
    texts = USAGE.get(f"{canonical}@{handler}") if handler else None
    texts = texts or USAGE.get(canonical)
    if texts is None:
        return None
    return texts[1 if lang is Lang.AR else 0].format(kw=shown)


# -- SMS length ----------------------------------------------------------------------------
# Replies are sized where they are worded. The count assumes the strictest SMSC default
# alphabet (ASCII): a character outside ASCII, even one GSM 03.38 has, goes as UCS-2 on some
# carriers, so a reply that fits here fits on every carrier.

def fits_7bit(text: str) -> bool:
    """True when every carrier sends the text as data_coding 0 (GSM 7-bit on air)."""
    return text.isascii() and is_gsm(text)


def sms_parts(text: str) -> int:
    """Number of SMS parts the text needs on the strictest carrier (160/153 septets, 70/67 UCS-2)."""
    return count_parts(text, "ascii")


_GSM_LOOKALIKES = str.maketrans(
    {"\u2018": "'", "\u2019": "'", "\u201a": "'", "`": "'", "\u201c": '"', "\u201d": '"', "\u201e": '"',
     "\u2013": "-", "\u2014": "-", "\u2026": "...", "\u00a0": " "}
)


def quote_user_text(text: str, lang: Lang, limit: int = 12) -> str:
    """At most `limit` characters of what the user sent, safe to echo back.

    Invisible and control characters are dropped (they would reorder the reply on screen).
    In English replies anything that is not 7-bit on every carrier becomes '?': one smart
    quote from an iPhone would otherwise turn the whole reply into UCS-2 and cut its
    length budget from 160 to 70.
    """
    text = unicodedata.normalize("NFC", fold_digits(text))
    cleaned = "".join(ch for ch in text if unicodedata.category(ch) not in ("Cc", "Cf"))
    cleaned = " ".join(cleaned.split())
    if lang is not Lang.AR:
        cleaned = "".join(
            ch if fits_7bit(ch) else "?" for ch in cleaned.translate(_GSM_LOOKALIKES)
        )
    return cleaned[:limit] + (ELLIPSIS[lang] if len(cleaned) > limit else "")
