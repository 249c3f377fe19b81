"""Short code + first keyword -> handler.

The route table is compiled into plain dicts once (construction or `replace_routes`), so
`route()` costs a normalisation, a split and two dict look-ups whatever the number of routes.
The compiled table is one immutable object behind one attribute: a swap is atomic for any
caller that is in the middle of `route()`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Iterable, Mapping
from dataclasses import dataclass
from typing import Protocol

from smsgw.message import Inbound, Lang, Reply, Request
from smsgw.textnorm import detect_lang, normalise, split_normalised, tokens

__all__ = ["DEFAULT_KEYWORD", "UNKNOWN", "Handler", "RouteLike", "Route", "Router"]

DEFAULT_KEYWORD = "*"  # a route with this keyword catches keyword-less messages on its short codes
UNKNOWN = "unknown"  # handler name used when nothing matches
HELP = "help"

# Tried only after an exact miss, so "HELP." and "help!" still work while "?" stays an alias.
_TRAILING_PUNCT = ".,!?;:"


class Handler(Protocol):
    def handle(self, req: Request) -> list[Reply] | Awaitable[list[Reply]]: ...


class RouteLike(Protocol):
    @property
    def keyword(self) -> str: ...

    @property
    def aliases(self) -> tuple[str, ...]: ...

    @property
    def handler(self) -> str: ...

    @property
    def short_codes(self) -> tuple[str, ...]: ...


@dataclass(frozen=True)
class Route:
    keyword: str  # canonical English keyword, or DEFAULT_KEYWORD
    aliases: tuple[str, ...]  # other spellings, Arabic included; matched after normalisation
    handler: str  # name in the router's handler mapping
    short_codes: tuple[str, ...] = ()  # empty: valid on every short code


@dataclass(frozen=True, slots=True)
class _Target:
    keyword: str  # what Request.keyword gets: canonical keyword, "" for the default route
    handler: Handler
    route: RouteLike


@dataclass(frozen=True, slots=True)
class _Table:
    routes: tuple[RouteLike, ...]
    handlers: Mapping[str, Handler]
    by_code: Mapping[str, Mapping[str, _Target]]  # short code -> token -> target (wildcard routes merged in)
    anywhere: Mapping[str, _Target]  # routes without short codes, for codes not named by any route
    # (code or None, lang) -> (canonical, shown, handler name); None stands for codes no route names
    display: Mapping[tuple[str | None, Lang], tuple[tuple[str, str, str], ...]]


def _describe(route: RouteLike) -> str:
    codes = ",".join(route.short_codes) if route.short_codes else "all short codes"
    return f"{route.keyword!r} -> {route.handler!r} on {codes}"


def _as_str_tuple(value: Iterable[object] | None, what: str, route: RouteLike) -> tuple[str, ...]:
    # A bare string would silently become a tuple of characters.
    if isinstance(value, str) or value is None:
        raise ValueError(f"route {route.keyword!r}: {what} must be a sequence of strings, got {value!r}")
    return tuple(str(v) for v in value)


def _single_token(raw: str, what: str, route: RouteLike) -> str:
    toks = tokens(raw)
    if len(toks) != 1:
        raise ValueError(f"route {route.keyword!r}: {what} {raw!r} must be exactly one token after normalisation")
    return toks[0]


def _first_arabic(aliases: tuple[str, ...]) -> str | None:
    for alias in aliases:
        if detect_lang(alias) is Lang.AR:
            return alias.strip()
    return None


def _builtin_handlers(router: "Router") -> dict[str, Handler]:
    # Imported here: the handlers package imports smsgw modules, never the other way round at import time.
    from handlers.help import HelpHandler, UnknownKeywordHandler

    return {HELP: HelpHandler(router), UNKNOWN: UnknownKeywordHandler(router)}


class Router:
    """Maps (short code, first keyword) to a handler and builds the handler's Request.

    `handlers` maps handler names (as used in routes) to handler objects. "help" and "unknown"
    default to the built-in HelpHandler/UnknownKeywordHandler bound to this router; entries
    in `handlers` under those names replace them.
    """

    def __init__(self, routes: Iterable[RouteLike], handlers: Mapping[str, Handler]) -> None:
        self._builtins = _builtin_handlers(self)
        self._table = self._compile(tuple(routes), handlers)

    # -- hot path ---------------------------------------------------------------------------

    def route(self, inbound: Inbound) -> tuple[Handler, Request]:
        """The handler for this message and its Request.

        Keyword match: keyword=canonical keyword, args=the tokens after it. Default ("*")
        route or "unknown": keyword="", args=all tokens. Empty text: "unknown", no args.
        """
        table = self._table  # one read: a concurrent replace_routes cannot mix two tables
        toks = split_normalised(normalise(inbound.text))
        lang = detect_lang(inbound.text)
        if not toks:
            # Empty (or invisible-only) text never reaches a default route: a keyword-less
            # handler would only answer "missing plate". The unknown handler lists keywords.
            return table.handlers[UNKNOWN], Request(inbound, "", (), lang)
        lookup = table.by_code.get(inbound.short_code, table.anywhere)
        first = toks[0]
        target = lookup.get(first)
        if target is None:
            bare = first.rstrip(_TRAILING_PUNCT)
            if bare and bare != first:
                target = lookup.get(bare)
        if target is not None:
            return target.handler, Request(inbound, target.keyword, tuple(toks[1:]), lang)
        fallback = lookup.get(DEFAULT_KEYWORD)
        if fallback is not None:
            return fallback.handler, Request(inbound, "", tuple(toks), lang)
        return table.handlers[UNKNOWN], Request(inbound, "", tuple(toks), lang)

    # -- queries ----------------------------------------------------------------------------

    def keywords_for(self, short_code: str, lang: Lang) -> list[str]:
        """Keywords valid on `short_code` in route order; for AR the first Arabic alias where one exists."""
        return [shown for _canonical, shown in self.keyword_pairs(short_code, lang)]

    def keyword_pairs(self, short_code: str, lang: Lang) -> list[tuple[str, str]]:
        """Like `keywords_for`, paired with the canonical keyword (for looking up per-keyword texts)."""
        return [(canonical, shown) for canonical, shown, _handler in self.keyword_entries(short_code, lang)]

    def keyword_entries(self, short_code: str, lang: Lang) -> list[tuple[str, str, str]]:
        """Like `keyword_pairs`, with the name of the handler that answers each keyword there (one
        keyword may mean different services on different short codes)."""
        table = self._table
        key_code: str | None = short_code if short_code in table.by_code else None
        return list(table.display[(key_code, Lang.AR if lang is Lang.AR else Lang.EN)])

    @property
    def routes(self) -> tuple[RouteLike, ...]:
        return self._table.routes

    # -- configuration ----------------------------------------------------------------------

    def replace_routes(self, routes: Iterable[RouteLike], handlers: Mapping[str, Handler] | None = None) -> None:
        """Validate and swap in a new route table (and optionally a new handler mapping).

        On ValueError the old table stays in place untouched.
        """
        new_handlers = self._table.handlers if handlers is None else handlers
        self._table = self._compile(tuple(routes), new_handlers)

    def _compile(self, routes: tuple[RouteLike, ...], handlers: Mapping[str, Handler]) -> _Table:
        merged: dict[str, Handler] = {**self._builtins, **handlers}
        for name, h in merged.items():
            if not callable(getattr(h, "handle", None)):
                raise ValueError(f"handler {name!r} has no handle() method")

        anywhere: dict[str, _Target] = {}
        specific: dict[str, dict[str, _Target]] = {}
        compiled: list[tuple[RouteLike, tuple[str, ...], _Target, list[str]]] = []

        def collide(token: str, first: _Target, second: _Target, where: str) -> ValueError:
            return ValueError(
                f"keyword {token!r} is claimed twice on {where}: "
                f"route {_describe(first.route)} and route {_describe(second.route)}"
            )

        for route in routes:
            aliases = _as_str_tuple(route.aliases, "aliases", route)
            codes = tuple(dict.fromkeys(c.strip() for c in _as_str_tuple(route.short_codes, "short_codes", route)))
            if any(not c for c in codes):
                raise ValueError(f"route {route.keyword!r}: empty short code")
            if route.handler not in merged:
                raise ValueError(f"route {_describe(route)}: unknown handler {route.handler!r}")
            handler = merged[route.handler]

            if route.keyword.strip() == DEFAULT_KEYWORD:
                if aliases:
                    raise ValueError(f"route {_describe(route)}: a default route takes no aliases")
                keys = [DEFAULT_KEYWORD]
                target = _Target("", handler, route)
            else:
                canonical = _single_token(route.keyword, "keyword", route)
                keys = list(dict.fromkeys([canonical] + [_single_token(a, "alias", route) for a in aliases]))
                target = _Target(canonical, handler, route)
            compiled.append((route, codes, target, keys))

            # A route on every short code overlaps every route; a route on some codes
            # overlaps the every-code routes and the routes sharing one of its codes.
            for key in keys:
                if not codes:
                    if key in anywhere:
                        raise collide(key, anywhere[key], target, "all short codes")
                    for code, scope in specific.items():
                        if key in scope:
                            raise collide(key, scope[key], target, f"short code {code}")
                    anywhere[key] = target
                else:
                    for code in codes:
                        scope = specific.setdefault(code, {})
                        clash = scope.get(key) or anywhere.get(key)
                        if clash is not None:
                            raise collide(key, clash, target, f"short code {code}")
                        scope[key] = target

        by_code = {code: {**anywhere, **scope} for code, scope in specific.items()}

        display: dict[tuple[str | None, Lang], tuple[tuple[str, str, str], ...]] = {}
        for shown_code in [None, *by_code]:
            for lang in (Lang.EN, Lang.AR):
                shown: dict[str, tuple[str, str]] = {}
                for route, codes, target, _keys in compiled:
                    if not target.keyword or (codes and shown_code not in codes):
                        continue
                    word = target.keyword
                    if lang is Lang.AR:
                        word = _first_arabic(tuple(route.aliases)) or word
                    shown.setdefault(target.keyword, (word, route.handler))
                display[(shown_code, lang)] = tuple((kw, word, handler) for kw, (word, handler) in shown.items())

        return _Table(routes, merged, by_code, anywhere, display)
