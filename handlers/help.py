"""HELP and unknown-keyword replies: the keywords valid on the short code, in the sender's language.

Both read the keyword list from the router on every call, so a route table swapped in at run
time is reflected in the next reply without rebuilding the handlers.
"""

from __future__ import annotations

import functools
from typing import Protocol

from handlers import texts
from smsgw.message import Channel, Lang, Reply, Request

__all__ = ["KeywordSource", "HelpHandler", "UnknownKeywordHandler", "UnknownKeyword"]


class KeywordSource(Protocol):
    """The part of the router these handlers use (kept narrow so tests can pass a stub)."""

    def keyword_pairs(self, short_code: str, lang: Lang) -> list[tuple[str, str]]: ...


def _max_parts(req: Request) -> int:
    # A USSD answer is one screen; an English SMS must stay one part (GSM 160); Arabic
    # needs UCS-2 and gets two concatenated parts (134 chars) before examples are dropped.
    if req.inbound.channel is Channel.USSD or req.lang is not Lang.AR:
        return 1
    return 2


class HelpHandler:
    """Lists the keywords on the short code, with a usage example where one is known."""

    def __init__(self, router: KeywordSource) -> None:
        self._router = router

    def handle(self, req: Request) -> list[Reply]:
        lang = req.lang
        code = req.inbound.short_code
        pairs = self._router.keyword_pairs(code, lang)
        if not pairs:
            return [req.reply(texts.HELP_NONE[lang].format(code=code))]
        # The sender already knows HELP: list it last so the space for examples goes to services.
        pairs.sort(key=lambda p: p[0] == "HELP")
        return [req.reply(self._compose(tuple(pairs), lang, code, _max_parts(req)))]

    @staticmethod
    @functools.lru_cache(maxsize=256)
    def _compose(pairs: tuple[tuple[str, str], ...], lang: Lang, code: str, max_parts: int) -> str:
        # Cached: HELP is the most frequent message and its answer depends only on these
        # arguments; a route change gives new `pairs`, hence a new entry.
        header = texts.HELP_HEADER[lang].format(code=code)
        examples = [texts.usage(canonical, shown, lang) for canonical, shown in pairs]
        with_example = [i for i, ex in enumerate(examples) if ex is not None]

        # Prefer examples for as many keywords as fit (in route order), then the bare list.
        for keep in range(len(with_example), -1, -1):
            chosen = set(with_example[:keep])
            lines = [(examples[i] if i in chosen else None) or shown for i, (_c, shown) in enumerate(pairs)]
            text = "\n".join([header, *lines])
            if texts.sms_parts(text) <= max_parts:
                return text

        # Even the bare list is too long: cut it and say so.
        shown_all = [shown for _c, shown in pairs]
        for n in range(len(shown_all) - 1, 0, -1):
            text = "\n".join([header, *shown_all[:n], texts.ELLIPSIS[lang]])
            if texts.sms_parts(text) <= max_parts:
                return text
        return "\n".join([header, shown_all[0]])


class UnknownKeywordHandler:
    """Says what was not understood and which keywords to send instead, in one SMS."""

    def __init__(self, router: KeywordSource) -> None:
        self._router = router

    def handle(self, req: Request) -> list[Reply]:
        lang = req.lang
        pairs = self._router.keyword_pairs(req.inbound.short_code, lang)
        # HELP first: if the list has to be cut, the survivor is the one that shows the rest.
        pairs.sort(key=lambda p: p[0] != "HELP")
        shown = [s for _c, s in pairs]
        sep = texts.LIST_SEP[lang]

        if req.args or req.keyword:
            quote = texts.quote_user_text(req.inbound.text, lang)
            head = texts.NOT_UNDERSTOOD[lang].format(q=quote)
            tail = texts.SEND_ONE_OF[lang]
        else:
            head, tail = "", texts.PLEASE_SEND[lang]

        for n in range(len(shown), 0, -1):
            text = head + tail.format(kws=sep.join(shown[:n]))
            if texts.sms_parts(text) == 1:
                return [req.reply(text)]
        if head:
            return [req.reply(head)]
        return [req.reply(texts.HELP_NONE[lang].format(code=req.inbound.short_code))]


# The name the architecture notes use.
UnknownKeyword = UnknownKeywordHandler
