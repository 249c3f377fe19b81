"""The language each number chose in the USSD menus, remembered across dialogues (stored).

A schema component of its own ("ussd_menus"). Reads go through a small in-memory map, because the
first screen of every dialogue needs the answer and the store is the only writer of the truth.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TYPE_CHECKING

from smsgw.message import Lang

if TYPE_CHECKING:
    from smsgw.migrations import Component
    from smsgw.store import Connection, Store

SCHEMA: Component = (
    "ussd_menus",
    (
        # 1: one row per number that chose a language on the language screen.
        (
            """CREATE TABLE ussd_language (
                msisdn     TEXT PRIMARY KEY,
                lang       TEXT NOT NULL,
                chosen_at  REAL NOT NULL
            )""",
        ),
    ),
)

#: Numbers whose choice is kept in memory; beyond that the oldest are forgotten (the store keeps all).
CACHE_SIZE = 50_000


class LanguagePrefs:
    def __init__(self, store: Store, now: Callable[[], float]) -> None:
        self._store = store
        self._now = now
        self._known: dict[str, Lang | None] = {}

    async def get(self, msisdn: str) -> Lang | None:
        """The language `msisdn` chose, or None if it never did."""
        if msisdn in self._known:
            return self._known[msisdn]
        value = await self._store.read(_op_get, msisdn)
        lang = Lang(value) if value in (Lang.EN.value, Lang.AR.value) else None
        self._remember(msisdn, lang)
        return lang

    async def set(self, msisdn: str, lang: Lang) -> None:
        await self._store.write(functools.partial(_op_set, msisdn=msisdn, lang=lang.value, at=self._now()))
        self._remember(msisdn, lang)

    def _remember(self, msisdn: str, lang: Lang | None) -> None:
        if len(self._known) >= CACHE_SIZE:
            self._known.pop(next(iter(self._known)))
        self._known[msisdn] = lang


def _op_get(conn: Connection, msisdn: str) -> str | None:
    row = conn.execute("SELECT lang FROM ussd_language WHERE msisdn = ?", (msisdn,)).fetchone()
    return row[0] if row else None


def _op_set(conn: Connection, msisdn: str, lang: str, at: float) -> None:
    conn.execute(
        "INSERT INTO ussd_language (msisdn, lang, chosen_at) VALUES (?, ?, ?)"
        " ON CONFLICT (msisdn) DO UPDATE SET lang = excluded.lang, chosen_at = excluded.chosen_at",
        (msisdn, lang, at),
    )
