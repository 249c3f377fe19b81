"""Files with phone numbers on disk: the store (with its -wal and -shm) and the settlement CSVs are
private from creation, an existing store open to others is warned about at start, and no CSV cell
the gateway writes can start a spreadsheet formula.  A gateway bound over real SMPP to the
simulators; the files read back from disk."""

from __future__ import annotations

import csv
import grp
import os
import sqlite3
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog

from handlers.parking.settlement import write_settlement
from smsgw.abuse import AbuseConfig
from smsgw.csvfile import neutralise
from smsgw.files import STORE_SUFFIXES
from tests.parking_support import PARKING, on_loop
from tests.stack import Stack, eventually, start_stack
from tests.test_parking_e2e import business_clock, next_sunday, stack_features, stack_routes


@pytest.fixture(autouse=True)
def permissive_umask() -> Iterator[None]:
    """The usual umask (022) would leave new files world-readable: the code must not rely on it."""
    before = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(before)


def mode(path: Path | str) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def a_group() -> tuple[str, int]:
    """A group this process may give its files to: a supplementary one if it has any."""
    gids = [g for g in os.getgroups() if g != os.getgid()] or [os.getgid()]
    return grp.getgrgid(gids[0]).gr_name, gids[0]


async def parking_stack(tmp_path: Path, **overrides: object) -> Stack:
    return await start_stack(tmp_path, features=stack_features(), routes=stack_routes(),
                             service_clock=business_clock(), carriers=["omantel"], **overrides)


async def book(stack: Stack, sender: str, text: str = "1234AB 60") -> None:
    """`sender` books; waits for the charge in the ledger (an alphanumeric sender gets no SMS back)."""
    before = await ledger_rows(stack)
    stack.smsc("omantel").inject_mo(sender, PARKING, text)
    await eventually(lambda: _more(stack, before))


async def ledger_rows(stack: Stack) -> int:
    assert stack.gateway.store is not None
    return await stack.gateway.store.read(lambda c: c.execute("SELECT COUNT(*) FROM parking_ledger").fetchone()[0])


async def _more(stack: Stack, before: int) -> bool:
    return await ledger_rows(stack) > before


# -- point 6: formula injection ----------------------------------------------------------------------------


@on_loop
async def test_sender_ids_that_look_like_formulas_are_neutralised_in_the_settlement_csv(tmp_path: Path) -> None:
    stack = await parking_stack(tmp_path, abuse=AbuseConfig(alphanumeric_senders="process"))
    try:
        await book(stack, "=2+5", "1234AB 60")
        await book(stack, "@SUM(1+1)", "555K 30")
        await book(stack, "96891234567", "77M 30")
        [path] = await write_settlement(stack.gateway.store, next_sunday(), "omantel", tmp_path / "out")
    finally:
        await stack.stop()
    raw = path.read_text(encoding="utf-8")
    rows = list(csv.reader(raw.splitlines()))
    senders = [row[6] for row in rows[1:-1]]
    assert senders == ["'=2+5", "'@SUM(1+1)", "96891234567"]
    # No cell of the file starts a formula, in any column.
    assert not [cell for row in rows for cell in row if cell[:1] in ("=", "+", "-", "@", "\t", "\r")]
    assert ",=" not in raw and "\n=" not in raw and ",@" not in raw


@pytest.mark.parametrize("cell, written", [
    ("=2+5", "'=2+5"), ("+96891234567", "'+96891234567"), ("-1+1", "'-1+1"), ("@SUM(1+1)", "'@SUM(1+1)"),
    ("\t=1", "'\t=1"), ("\r=1", "'\r=1"), ("1234AB", "1234AB"), ("", ""), (-500, -500), (200, 200),
    ("a=b", "a=b"),
])
def test_neutralise(cell: object, written: object) -> None:
    assert neutralise(cell) == written


# -- point 7: private files ----------------------------------------------------------------------------


@on_loop
async def test_the_store_its_wal_and_shm_and_settlement_files_are_created_0600(tmp_path: Path) -> None:
    stack = await parking_stack(tmp_path)
    try:
        await book(stack, "96891234567")
        store = stack.config.store_path
        assert {suffix: mode(store + suffix) for suffix in STORE_SUFFIXES} == {"": 0o600, "-wal": 0o600, "-shm": 0o600}
        [path] = await write_settlement(stack.gateway.store, next_sunday(), "omantel", tmp_path / "out")
        assert mode(path) == 0o600
    finally:
        await stack.stop()


@on_loop
async def test_with_a_file_group_they_are_0640_and_belong_to_it(tmp_path: Path) -> None:
    name, gid = a_group()
    stack = await parking_stack(tmp_path, file_group=name)
    try:
        await book(stack, "96891234567")
        store = stack.config.store_path
        for suffix in STORE_SUFFIXES:
            assert (mode(store + suffix), os.stat(store + suffix).st_gid) == (0o640, gid), suffix
        [path] = await write_settlement(stack.gateway.store, next_sunday(), "omantel", tmp_path / "out",
                                        file_group=name)
        assert (mode(path), os.stat(path).st_gid) == (0o640, gid)
    finally:
        await stack.stop()


@on_loop
async def test_an_existing_store_readable_by_others_is_warned_about_at_start(tmp_path: Path) -> None:
    store = tmp_path / "smsgw.sqlite3"
    sqlite3.connect(store).close()
    os.chmod(store, 0o644)  # as an earlier version created it
    with structlog.testing.capture_logs() as logs:
        stack = await start_stack(tmp_path, carriers=["omantel"])
        await stack.stop()
    warnings = [e for e in logs if e["event"] == "store_readable_by_others"]
    assert [(e["path"], e["mode"], e["log_level"]) for e in warnings][:1] == [(str(store), "0644", "warning")]
    assert mode(store) == 0o644  # warned about, not changed behind the operator's back
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    with structlog.testing.capture_logs() as logs:
        stack = await start_stack(fresh, carriers=["omantel"])
        await stack.stop()
    assert not [e for e in logs if e["event"] == "store_readable_by_others"]


def test_file_group_is_checked_with_file_line_and_key() -> None:
    from smsgw.config import ConfigError, parse_config
    from tests.test_config import BASE, FILE

    name, _ = a_group()
    text = BASE.replace("[gateway]\n", f'[gateway]\nfile_group = "{name}"\n', 1)
    assert parse_config(text, FILE).file_group == name
    with pytest.raises(ConfigError) as info:
        parse_config(BASE.replace("[gateway]\n", '[gateway]\nfile_group = "no-such-group-here"\n', 1), FILE)
    assert f'{FILE}:2: gateway.file_group: no group named "no-such-group-here" on this machine' in str(info.value)


def test_shipped_config_has_no_file_group() -> None:
    from smsgw.config import load_config
    from tests.stack import SHIPPED_CONFIG

    assert load_config(SHIPPED_CONFIG).file_group is None
