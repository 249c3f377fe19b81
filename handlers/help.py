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

    def keyword_entries(self, short_code: str, lang: Lang) -> list[tuple[str, str, str]]: ...


def _parts(req: Request) -> tuple[int, int]:
    """(parts a HELP answer should fit, parts it may take so that every line says what it does).

    A USSD answer is one screen. An English SMS is one part (GSM 160), an Arabic one two (UCS-2,
    134 characters); a list too long for that may take one part more rather than leave a keyword
    unexplained, and only past that loses its explanations, from the end."""
    if req.inbound.channel is Channel.USSD:
        return 1, 1
    return (2, 3) if req.lang is Lang.AR else (1, 2)


class HelpHandler:
    """Lists the keywords on the short code, each with what it does, in the sender's language."""

    def __init__(self, router: KeywordSource) -> None:
        self._router = router

    def handle(self, req: Request) -> list[Reply]:
        lang = req.lang
        code = req.inbound.short_code
        entries = self._router.keyword_entries(code, lang)
        if not entries:
            return [req.reply(texts.HELP_NONE[lang].format(code=code))]
        # The sender already knows HELP: list it last so the space for examples goes to services.
        entries.sort(key=lambda e: e[0] == "HELP")
        return [req.reply(self._compose(tuple(entries), lang, code, *_parts(req)))]

    @staticmethod
    @functools.lru_cache(maxsize=256)
    def _compose(entries: tuple[tuple[str, str, str], ...], lang: Lang, code: str, parts: int, most: int) -> str:
        # Cached: HELP is the most frequent message and its answer depends only on these
        # arguments; a route change gives new `entries`, hence a new entry.
        header = texts.HELP_HEADER[lang].format(code=code)
        examples = [texts.usage(canonical, shown, lang, handler) for canonical, shown, handler in entries]
        with_example = [i for i, ex in enumerate(examples) if ex is not None]

        def listed(keep: int) -> str:
            chosen = set(with_example[:keep])
            lines = [(examples[i] if i in chosen else None) or shown for i, (_c, shown, _h) in enumerate(entries)]
            return "\n".join([header, *lines])

        # Every line explained, in the fewest parts up to `most`; then examples for as many
        # keywords as fit (in route order), then the bare list.
        complete = listed(len(with_example))
        if texts.sms_parts(complete) <= most:
            return complete
        for keep in range(len(with_example), -1, -1):
            text = listed(keep)
            if texts.sms_parts(text) <= parts:
                return text

        # Even the bare list is too long: cut it and say so.
        shown_all = [shown for _c, shown, _h in entries]
        for n in range(len(shown_all) - 1, 0, -1):
            text = "\n".join([header, *shown_all[:n], texts.ELLIPSIS[lang]])
            if texts.sms_parts(text) <= parts:
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
