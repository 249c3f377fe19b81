"""Notification and status wording: the note is what residents need, so boilerplate gives way
before it does, and a note that must be shortened loses whole words only."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from handlers import texts
from handlers.transactions import wording
from handlers.transactions.config import load_transactions_config
from handlers.transactions.model import Transaction
from smsgw.message import Lang

CONFIG = load_transactions_config(Path(__file__).resolve().parent.parent / "config" / "transactions.toml")
NOTE_EN = ("Please bring a copy of the original lease contract and your ID card to the municipality office in "
           "Ruwi before the end of next week to complete the renewal of your lease contract.")
NOTE_AR = ("يرجى إحضار نسخة من عقد الإيجار الأصلي وبطاقة الهوية إلى مكتب البلدية في روي قبل نهاية الأسبوع "
           "القادم لاستكمال إجراءات تجديد عقد الإيجار الخاص بك")


def txn(note_en: str | None = None, note_ar: str | None = None) -> Transaction:
    return Transaction("MM-2026-000123", "lease_contract_renewal", "awaiting_documents", note_en, note_ar,
                       1795500000.0, 1795500000.0)


def note_part(text: str, lang: Lang) -> str:
    """The note as it appears in a notice (between the status sentence and the opt-out)."""
    status = CONFIG.status_name("awaiting_documents", lang)
    start = text.index(status + ".") + len(status) + 2
    end = text.index(" To stop" if lang is Lang.EN else " لإيقاف") if ("To stop" in text or " لإيقاف" in text) \
        else text.index(" Send STOP" if lang is Lang.EN else " للإيقاف")
    return text[start:end]


@pytest.mark.parametrize("max_parts", [1, 2, 3, 4])
@pytest.mark.parametrize(("lang", "note"), [(Lang.EN, NOTE_EN), (Lang.AR, NOTE_AR)])
def test_a_long_note_keeps_whole_words_and_the_way_to_stop(lang: Lang, note: str, max_parts: int) -> None:
    config = dataclasses.replace(CONFIG, notifications=dataclasses.replace(CONFIG.notifications, max_parts=max_parts))
    text = wording.notice(txn(NOTE_EN, NOTE_AR), lang, config)
    bare = wording.notice(txn(), lang, dataclasses.replace(
        config, notifications=dataclasses.replace(config.notifications, text=config.notifications.short_text)))
    if texts.sms_parts(bare) > max_parts:
        assert text == bare  # no room for a note at all (one Arabic part): the status and the way to stop
        return
    assert texts.sms_parts(text) <= max_parts
    assert ("STOP to 90092" in text) if lang is Lang.EN else ("إيقاف إلى 90092" in text)
    shown = note_part(text, lang)
    ellipsis = texts.ELLIPSIS[lang]
    if shown.endswith(ellipsis):
        kept = shown[: -len(ellipsis)]
        assert note.startswith(kept) and note[len(kept)] == " "  # cut between two words
        # As much as the parts allow: one more word would not fit.
        longer = note[: note.index(" ", len(kept) + 1)] if " " in note[len(kept) + 1:] else note
        assert texts.sms_parts(text.replace(kept + ellipsis, longer + ellipsis)) > max_parts
    else:
        assert shown in (note, note + ".")


@pytest.mark.parametrize(("lang", "expected"), [
    (Lang.EN, "Muscat Municipality: request MM-2026-000123 (Lease contract renewal) is now Awaiting documents. "
              "Bring your ID. To stop these SMS send STOP to 90092."),
    (Lang.AR, "بلدية مسقط: طلبك MM-2026-000123 (تجديد عقد إيجار) أصبح: بانتظار المستندات. أحضر الهوية. "
              "لإيقاف الرسائل أرسل إيقاف إلى 90092."),
])
def test_a_note_that_fits_keeps_the_full_template(lang: Lang, expected: str) -> None:
    assert wording.notice(txn("Bring your ID", "أحضر الهوية"), lang, CONFIG) == expected


@pytest.mark.parametrize(("lang", "expected"), [
    # Too long for the full template in two parts, whole in the short one: the boilerplate gives way.
    (Lang.EN, f"Muscat Municipality: MM-2026-000123 is now Awaiting documents. {NOTE_EN} Send STOP to 90092 to "
              "stop these SMS."),
    (Lang.AR, "بلدية مسقط: MM-2026-000123 أصبح: بانتظار المستندات. يرجى إحضار عقد الإيجار الأصلي وبطاقة "
              "الهوية. للإيقاف أرسل إيقاف إلى 90092."),
])
def test_the_boilerplate_shortens_before_the_note_does(lang: Lang, expected: str) -> None:
    note_ar = "يرجى إحضار عقد الإيجار الأصلي وبطاقة الهوية"
    assert wording.notice(txn(NOTE_EN, note_ar), lang, CONFIG) == expected
    assert texts.sms_parts(expected) == 2


def test_a_status_reply_cuts_its_note_at_a_word_too() -> None:
    reply = wording.status_reply(txn(NOTE_EN, NOTE_AR), Lang.AR, CONFIG)
    assert texts.sms_parts(reply) == CONFIG.status_max_parts
    kept = reply.split("ملاحظة: ", 1)[1].removesuffix("…")
    assert NOTE_AR.startswith(kept) and NOTE_AR[len(kept)] == " "
