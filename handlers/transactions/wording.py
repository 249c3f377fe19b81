"""What residents read, in English and Arabic, sized to SMS parts. Pure.

Names of services and statuses and the notification template come from config; the sentences
around them are here.  Sizes are counted with `handlers.texts.sms_parts` (the strictest carrier),
so a text that fits here fits on every carrier.  Numbers stay ASCII digits inside Arabic.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from handlers import texts
from handlers.transactions.config import TransactionsConfig
from handlers.transactions.model import Transaction
from smsgw.message import Lang

__all__ = [
    "bad_reference",
    "limit_reached",
    "no_open",
    "not_found",
    "notice",
    "open_list",
    "opted_in",
    "opted_out",
    "status_reply",
]

_KEYWORD = {"STATUS": ("STATUS", "حالة"), "START": ("START", "تشغيل"), "STOP": ("STOP", "إيقاف")}

_UPDATED = {Lang.EN: "{ref} {service}: {status}. Updated {updated}.", Lang.AR: "{ref} {service}: {status}. آخر تحديث {updated}."}
# A stored time that cannot be shown (written before dates were checked): the status still is.
_STATUS_ONLY = {Lang.EN: "{ref} {service}: {status}.", Lang.AR: "{ref} {service}: {status}."}
_NOTE = {Lang.EN: " Note: {note}", Lang.AR: " ملاحظة: {note}"}
_NOT_FOUND = {
    Lang.EN: "No request {ref} is registered to this number. Check the number or call {call_centre}.",
    Lang.AR: "لا يوجد طلب {ref} مسجل لهذا الرقم. تأكد من الرقم أو اتصل على {call_centre}.",
}
_BAD_REFERENCE = {
    Lang.EN: "Send {kw} and your request number, e.g. {kw} {example}",
    Lang.AR: "أرسل {kw} ثم رقم الطلب، مثال: {kw} {example}",
}
_LIMIT = {
    Lang.EN: "Too many requests were not found. For your security, look-ups from this number are paused "
    "for {minutes} min. For help call {call_centre}.",
    Lang.AR: "لم يتم العثور على طلبات كثيرة. حفاظا على أمانك أوقف الاستعلام من هذا الرقم لمدة {minutes} دقيقة. "
    "للمساعدة اتصل على {call_centre}.",
}
_OPEN_HEADER = {Lang.EN: "Your open requests:", Lang.AR: "طلباتك المفتوحة:"}
_OPEN_LINE = "{ref} {service}: {status}"
_SHORT_LINE = "{ref}: {status}"
_MORE = {Lang.EN: "and {n} more", Lang.AR: "وطلبات أخرى: {n}"}
_NO_OPEN = {
    Lang.EN: "No open requests are registered to this number.",
    Lang.AR: "لا توجد طلبات مفتوحة مسجلة لهذا الرقم.",
}
_OPTED_OUT = {
    Lang.EN: "You will no longer get SMS updates on your requests. To turn them on again send {kw} to {code}.",
    Lang.AR: "لن تصلك رسائل تحديث طلباتك. لإعادة تفعيلها أرسل {kw} إلى {code}.",
}
_OPTED_IN = {
    Lang.EN: "SMS updates on your requests are on. To stop them send {kw} to {code}.",
    Lang.AR: "تم تفعيل رسائل تحديث طلباتك. لإيقافها أرسل {kw} إلى {code}.",
}


def _kw(canonical: str, lang: Lang) -> str:
    return _KEYWORD[canonical][1 if lang is Lang.AR else 0]


def status_reply(txn: Transaction, lang: Lang, config: TransactionsConfig) -> str:
    """Service, status, last update and note; a long note is shortened to fit the part budget."""
    updated = config.local_time(txn.updated_at)
    head = (_UPDATED if updated is not None else _STATUS_ONLY)[lang].format(
        ref=txn.ref,
        service=config.service_name(txn.service, lang),
        status=config.status_name(txn.status, lang),
        updated=updated,
    )
    note = txn.note(lang)
    if not note:
        return head
    return _fit(lambda n: head + _NOTE[lang].format(note=n), note, lang, config.status_max_parts)


def not_found(ref: str, lang: Lang, config: TransactionsConfig) -> str:
    """The one reply for an unknown reference AND for one not registered to the sender.

    It depends on nothing but the (canonical) reference the sender typed, so the two cases are
    byte-identical by construction.
    """
    return _NOT_FOUND[lang].format(ref=ref, call_centre=config.call_centre)


def bad_reference(lang: Lang, config: TransactionsConfig) -> str:
    return _BAD_REFERENCE[lang].format(kw=_kw("STATUS", lang), example=config.reference.example())


def limit_reached(minutes: int, lang: Lang, config: TransactionsConfig) -> str:
    return _LIMIT[lang].format(minutes=minutes, call_centre=config.call_centre)


def open_list(txns: Sequence[Transaction], lang: Lang, config: TransactionsConfig) -> str:
    """Header and one line per transaction, in the order given, cut to `list_max_parts`.

    Lines name the service when every transaction fits that way; otherwise they are shortened to
    reference and status, so that more of them fit (an Arabic SMS part holds 67 characters).
    """
    if not txns:
        return no_open(lang)
    budget = config.list_max_parts
    full = [
        _OPEN_LINE.format(
            ref=t.ref, service=config.service_name(t.service, lang), status=config.status_name(t.status, lang)
        )
        for t in txns
    ]
    text = _fit_lines(full, len(full), lang, budget)
    if text is not None:
        return text
    short = [_SHORT_LINE.format(ref=t.ref, status=config.status_name(t.status, lang)) for t in txns]
    for shown in range(len(short), 0, -1):
        text = _fit_lines(short, shown, lang, budget)
        if text is not None:
            return text
    # Not even one line fits (absurdly long names): the first line alone, cut.
    return _cut(_OPEN_HEADER[lang] + "\n" + short[0], lang, budget)


def _fit_lines(lines: list[str], shown: int, lang: Lang, budget: int) -> str | None:
    rest = len(lines) - shown
    body = [_OPEN_HEADER[lang], *lines[:shown]]
    if rest:
        body.append(_MORE[lang].format(n=rest))
    text = "\n".join(body)
    return text if _within(text, budget) else None


def no_open(lang: Lang) -> str:
    return _NO_OPEN[lang]


def opted_out(lang: Lang, short_code: str) -> str:
    return _OPTED_OUT[lang].format(kw=_kw("START", lang), code=short_code)


def opted_in(lang: Lang, short_code: str) -> str:
    return _OPTED_IN[lang].format(kw=_kw("STOP", lang), code=short_code)


def notice(txn: Transaction, lang: Lang, config: TransactionsConfig) -> str:
    """The notification of a status change, from the configured templates.

    The note is the useful part: it goes whole in the full template if that fits the parts the
    config allows, else whole in the short one (less boilerplate), and only then is it shortened,
    at a word boundary, in the short one."""
    fields = {
        "ref": txn.ref,
        "service": config.service_name(txn.service, lang),
        "status": config.status_name(txn.status, lang),
        "updated": config.local_time(txn.updated_at) or "",
        "code": config.short_code,
    }
    settings = config.notifications
    note = txn.note(lang)

    def renderer(template: str) -> Callable[[str], str]:
        def render(n: str) -> str:
            if n and n[-1].isalnum():
                n += "."  # a note without a full stop would run into the sentence after it
            return " ".join(template.format(**fields, note=(" " + n) if n else "").split())

        return render

    full, short = renderer(settings.text(lang)), renderer(settings.short_text(lang))
    if not note:
        return full("")
    whole = full(note)
    if _within(whole, settings.max_parts):
        return whole
    return _fit(short, note, lang, settings.max_parts)


# --------------------------------------------------------------------------------------------------


def _within(text: str, max_parts: int) -> bool:
    """texts.sms_parts(text) <= max_parts, without counting character by character when the
    text is short enough to fit even as UCS-2 (70 UTF-16 units, 67 a part when split)."""
    units = len(text.encode("utf-16-le")) // 2
    if units <= (70 if max_parts == 1 else 67 * max_parts):
        return True
    return texts.sms_parts(text) <= max_parts


#: Left off the end of a shortened note, before its ellipsis.
_TRAILING = " ,;:-،؛"


def _fit(render: Callable[[str], str], note: str, lang: Lang, max_parts: int) -> str:
    """render(note), with the note shortened as little as needed to fit `max_parts`: whole words
    only, then an ellipsis (a word cut in two reads as another word, or as none)."""
    full = render(note)
    if _within(full, max_parts):
        return full
    ellipsis = texts.ELLIPSIS[lang]
    words = note.split()

    def cut(n: int) -> str:
        return " ".join(words[:n]).rstrip(_TRAILING) + ellipsis

    lo, hi = 0, len(words) - 1  # most words that fit, by bisection
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if _within(render(cut(mid)), max_parts):
            lo = mid
        else:
            hi = mid - 1
    if lo == 0:
        return render("")
    return render(cut(lo))


def _cut(text: str, lang: Lang, max_parts: int) -> str:
    ellipsis = texts.ELLIPSIS[lang]
    while len(text) > 1 and texts.sms_parts(text) > max_parts:
        text = text[: max(1, len(text) - 10)]
    return text.rstrip() + ellipsis if texts.sms_parts(text + ellipsis) <= max_parts else text
