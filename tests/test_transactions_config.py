"""config/transactions.toml: the shipped file, the defaults, and errors naming file, line and key."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from handlers.transactions.config import (
    ConfigError,
    TransactionsConfig,
    load_transactions_config,
    parse_transactions_config,
)
from smsgw.message import Lang

SHIPPED = Path(__file__).resolve().parent.parent / "config" / "transactions.toml"
CARRIERS = {"omantel": ("90091", "90092"), "ooredoo": ("90091", "90092"), "friendi": ("90091",)}
FILE = "conf/transactions.toml"


def issues(text: str, carriers: dict[str, tuple[str, ...]] | None = CARRIERS) -> list[tuple[int, str, str]]:
    with pytest.raises(ConfigError) as info:
        parse_transactions_config(text, FILE, carriers)
    return [(i.line, i.key, i.message) for i in info.value.issues]


def test_shipped_file_spells_out_the_defaults() -> None:
    """The shipped file and the built-in defaults are the same, so a missing file changes nothing."""
    shipped = load_transactions_config(SHIPPED, CARRIERS)
    assert dataclasses.replace(shipped, path="<defaults>") == TransactionsConfig()
    assert shipped.short_code == "90092" and shipped.call_centre == "1111"
    assert list(shipped.statuses) == [
        "received", "under_review", "awaiting_documents", "approved", "rejected", "completed",
    ]
    assert shipped.open_statuses == ("received", "under_review", "awaiting_documents", "approved")
    assert shipped.status_name("under_review", Lang.AR) == "قيد المراجعة"
    assert shipped.service_name("parking_permit", Lang.EN) == "Parking permit"
    assert (shipped.max_failed_lookups, shipped.lookup_window_s) == (10, 3600.0)


def test_missing_file_means_defaults(tmp_path: Path) -> None:
    config = load_transactions_config(tmp_path / "transactions.toml", CARRIERS)
    assert dataclasses.replace(config, path="<defaults>") == TransactionsConfig()


def test_local_time_is_muscat() -> None:
    """Oman is UTC+4 all year: 06:30 UTC is 10:30 in Muscat."""
    config = TransactionsConfig()
    assert config.local_time(1773297000) == "2026-03-12 10:30"
    assert config.iso_time(1773297000) == "2026-03-12T10:30:00+04:00"


def test_statuses_replace_the_defaults() -> None:
    text = (
        '[statuses.open_case]\nen = "Open"\nar = "مفتوح"\n'
        '[statuses.closed_case]\nen = "Closed"\nar = "مغلق"\nopen = false\nnotify = false\n'
    )
    config = parse_transactions_config(text, FILE, CARRIERS)
    assert list(config.statuses) == ["open_case", "closed_case"]
    assert config.open_statuses == ("open_case",)
    assert config.statuses["closed_case"].notify is False


def test_errors_name_line_and_key() -> None:
    text = (
        'short_code = "9009"\n'  # 1: not served by any carrier
        'timezone = "Asia/Muskat"\n'  # 2
        "[reference]\n"
        'pattern = "MM-YYYY"\n'  # 4
        "[lookups]\n"
        "max_failed = 0\n"  # 6
        "[notifications]\n"
        'en = "Status {stauts}"\n'  # 8
        "[statuses.under_review]\n"
        'en = "Under review"\n'
        'ar = "Under review"\n'  # 11: not Arabic
        "[statuses.Done]\n"  # 12
        'en = "Done ✓"\n'  # 13: not 7-bit
        'ar = "تم"\n'
    )
    found = issues(text)
    assert [(line, key) for line, key, _ in found] == [
        (1, "short_code"),
        (2, "timezone"),
        (4, "reference.pattern"),
        (6, "lookups.max_failed"),
        (8, "notifications.en"),
        (11, "statuses.under_review.ar"),
        (12, "statuses.Done"),
        (13, "statuses.Done.en"),
    ]
    messages = {(line, key): message for line, key, message in found}
    assert messages[(1, "short_code")] == '"9009" is not served by any enabled carrier'
    assert "unknown time zone" in messages[(2, "timezone")]
    assert "digit group" in messages[(4, "reference.pattern")]
    assert "unknown placeholder {stauts}" in messages[(8, "notifications.en")]
    assert "plain ASCII" in messages[(13, "statuses.Done.en")]


def test_the_short_notification_must_keep_the_note() -> None:
    found = issues('[notifications]\nshort_en = "MM: {ref} is {status}. STOP to {code}"\nshort_ar = "بلدية مسقط {note} {colour}"\n')
    assert found == [(2, "notifications.short_en", "must contain {note}"),
                     (3, "notifications.short_ar", "unknown placeholder {colour} (allowed here: {ref}, {service}, "
                                                    "{status}, {updated}, {note}, {code})")]


def test_default_carrier_must_serve_the_short_code() -> None:
    found = issues('[notifications]\ndefault_carrier = "friendi"\n')
    assert found == [(2, "notifications.default_carrier",
                      '"friendi" is not an enabled carrier serving 90092 (those are "omantel", "ooredoo")')]
    # Without the gateway's carriers (e.g. a syntax check) it is not checked.
    assert parse_transactions_config('[notifications]\ndefault_carrier = "friendi"\n', FILE, None)


def test_unknown_keys_are_errors() -> None:
    found = issues("[lookups]\nmax_failures = 5\n")
    assert found[0][:2] == (2, "lookups.max_failures")
    assert 'did you mean "max_failed"' in found[0][2]
