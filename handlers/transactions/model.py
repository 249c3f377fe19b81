"""Value types shared by the service, the SMS wording and the API."""

from __future__ import annotations

from dataclasses import dataclass

from smsgw.message import Lang


@dataclass(frozen=True, slots=True)
class Transaction:
    """A stored transaction as the service hands it out (never with its numbers: see `Detail`)."""

    ref: str
    service: str
    status: str
    note_en: str | None
    note_ar: str | None
    updated_at: float | None  # None: the stored value is no usable time (see service._stored_time)
    created_at: float | None

    def note(self, lang: Lang) -> str | None:
        """The note in `lang`, else the other one: the information matters more than the script."""
        first, second = (self.note_ar, self.note_en) if lang is Lang.AR else (self.note_en, self.note_ar)
        return first or second


@dataclass(frozen=True, slots=True)
class Change:
    """One status change the feed made; old_status None when the feed created the transaction."""

    old_status: str | None
    new_status: str
    updated_at: float
    changed_at: float
    source: str


@dataclass(frozen=True, slots=True)
class Detail:
    """Everything about a transaction, for the back office (admin API), not for SMS."""

    transaction: Transaction
    msisdns: tuple[str, ...]
    opted_out: tuple[str, ...]  # those of `msisdns` that sent STOP
    changes: tuple[Change, ...]  # newest first


@dataclass(frozen=True, slots=True)
class Caller:
    """Who is asking, as their MO tells: the number, and the carrier and language it used."""

    msisdn: str
    carrier: str | None = None
    lang: Lang = Lang.EN
