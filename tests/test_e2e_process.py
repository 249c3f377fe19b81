"""The gateway as an operator runs it: its own process, killed, restarted, signalled."""

from __future__ import annotations

import asyncio
import importlib.util
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from twisted.internet import reactor

from carriers.faults import FaultPlan
from carriers.main import SimulatorSpec, start_simulators
from tests import engines
from tests.stack import ROOT, eventually, log_events, on_loop, spawn_gateway, wait, write_process_config

pytestmark = pytest.mark.usefixtures("store_engine")

SPECS = [
    SimulatorSpec("omantel", "omantel", password="omt_dev1"),
    SimulatorSpec("ooredoo", "ooredoo", password="ord_dev1"),
    SimulatorSpec("friendi", "friendi", password="frd_dev1"),
]


def outbound_states(store: Path) -> list[str]:
    where = engines.location(store.parent, store.name)
    if not engines.is_postgres():
        if not store.exists():
            return []
        where = f"file:{store}?mode=ro"
    try:
        return [row[0] for row in engines.query(where, "SELECT state FROM outbound ORDER BY id")]
    except Exception:  # noqa: BLE001 - not created yet (either engine's "no such table")
        return []


async def wait_exit(proc: subprocess.Popen[bytes], timeout: float) -> int | None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while proc.poll() is None and loop.time() < deadline:
        await asyncio.sleep(0.05)
    return proc.poll()


@on_loop
async def test_killed_with_mts_queued_restart_delivers_each_once(tmp_path: Path) -> None:
    """kill -9 while every reply is still queued (the SMSC throttles all submits); after a
    restart each reply reaches the handset exactly once, and SIGTERM then exits 0."""
    faults = {"omantel": FaultPlan(throttle_storm=True)}
    sims = await wait(start_simulators(SPECS, control_port=None, reactor=reactor, faults=faults))
    store = tmp_path / "gw.sqlite3"
    config = write_process_config(tmp_path, sims.ports, store)
    log = tmp_path / "gateway.log"
    proc = spawn_gateway(config, log)
    try:
        smsc = sims.smsc("omantel")
        await eventually(lambda: len(smsc.bound_sessions()) == 1, timeout=15)
        msisdns = [f"968914{n:05d}" for n in range(5)]
        for msisdn in msisdns:
            smsc.inject_mo(msisdn, "90091", "HELP")
        await eventually(lambda: outbound_states(store) == ["queued"] * 5, timeout=10)
        await eventually(lambda: smsc.counters["throttled"] >= 5, timeout=10)
        proc.send_signal(signal.SIGKILL)
        assert await wait_exit(proc, 5) == -signal.SIGKILL
        assert smsc.handset_messages == []

        faults["omantel"].reset()
        proc = spawn_gateway(config, log)
        waits = [wait(smsc.wait_handset(m, 1, since_index=0, timeout=15)) for m in msisdns]
        await asyncio.gather(*waits)
        await asyncio.sleep(1.0)
        assert sorted(m.msisdn for m in smsc.handset_messages) == msisdns
        assert outbound_states(store).count("queued") == 0
        assert len(outbound_states(store)) == 5  # no MO was answered twice

        proc.send_signal(signal.SIGTERM)
        assert await wait_exit(proc, 10) == 0
        events = [e.get("event") for e in log_events(log)]
        assert "gateway_stopped" in events
    finally:
        if proc.poll() is None:
            proc.kill()
        await wait(sims.stop())


@pytest.mark.parametrize("launched", ["foreground", "as a background job"])
@on_loop
async def test_run_with_embedded_simulators_answers_send_and_stops_on_sigint(tmp_path: Path, launched: str) -> None:
    """`smsgw run` with its embedded simulators; `smsgw send` gets the HELP reply; SIGINT → exit 0.
    Whether the suite itself runs in the foreground or as a background job (SIGINT ignored, and
    inherited so by every child)."""
    store = tmp_path / "gw.sqlite3"
    ports = {"omantel": _free_port(), "ooredoo": _free_port(), "friendi": _free_port()}
    control = _free_port()
    config = write_process_config(tmp_path, ports, store, embedded=True, control_port=control)
    log = tmp_path / "gateway.log"
    before = signal.getsignal(signal.SIGINT)
    if launched != "foreground":
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # what a shell does to a job started with `&`
    try:
        proc = spawn_gateway(config, log)
    finally:
        signal.signal(signal.SIGINT, before)
    try:
        await eventually(lambda: "gateway_started" in [e.get("event") for e in log_events(log)], timeout=15)
        await eventually(
            lambda: sum(e.get("event") == "bind_ok" for e in log_events(log)) >= 4, timeout=10
        )
        # The loop under the reactor: uvloop's when it is installed (smsgw/reactor.py).
        [loop] = [e["loop"] for e in log_events(log) if e.get("event") == "event_loop"]
        assert loop == ("uvloop" if importlib.util.find_spec("uvloop") is not None else "asyncio")
        send = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "smsgw.cli", "send", "--config", str(config), "--carrier", "ooredoo",
            "--from", "96891234567", "--to", "90091", "HELP", cwd=str(ROOT),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(send.communicate(), 20)
        assert send.returncode == 0, err.decode()
        assert "90091" in out.decode() and "HELP" in out.decode()
        proc.send_signal(signal.SIGINT)
        assert await wait_exit(proc, 10) == 0
        text = log.read_text(encoding="utf-8")
        assert "96891234567" not in text  # MSISDNs masked
        assert not any(secret in text for secret in ("omt_dev1", "ord_dev1", "frd_dev1"))  # no passwords
        assert "HELP" not in text  # no message bodies at info level
    finally:
        if proc.poll() is None:
            proc.kill()


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_check_config_names_file_line_and_key(tmp_path: Path) -> None:
    """A config error is reported as file:line: key: problem, exit status 2."""
    bad = tmp_path / "gateway.toml"
    text = (ROOT / "config" / "gateway.toml").read_text(encoding="utf-8").replace("window = 10", 'window = "ten"', 1)
    bad.write_text(text, encoding="utf-8")
    line = text.splitlines().index('window = "ten"') + 1
    result = subprocess.run(
        [sys.executable, "-m", "smsgw.cli", "check-config", "--config", str(bad)],
        capture_output=True, text=True, cwd=str(ROOT), env=dict(os.environ),
    )
    assert result.returncode == 2
    assert f"{bad}:{line}: carriers.omantel.window:" in result.stderr


def test_check_config_reads_the_feature_files_too(tmp_path: Path) -> None:
    """check-config reads parking.toml, transactions.toml and ussd.toml beside the gateway's file
    as start-up would, and reports every bad one (file:line: key), not just the first."""
    for name in ("gateway.toml", "parking.toml", "transactions.toml", "ussd.toml"):
        (tmp_path / name).write_text((ROOT / "config" / name).read_text(encoding="utf-8"), encoding="utf-8")
    parking = (tmp_path / "parking.toml").read_text(encoding="utf-8")
    (tmp_path / "parking.toml").write_text(parking.replace("reminder_lead_minutes = 10", "reminder_lead_minutes = -5", 1),
                                           encoding="utf-8")
    menus = (tmp_path / "ussd.toml").read_text(encoding="utf-8")
    (tmp_path / "ussd.toml").write_text(menus.replace('default_language = "en"', 'default_language = "fr"', 1),
                                        encoding="utf-8")
    parking_line = parking.splitlines().index("reminder_lead_minutes = 10") + 1
    menus_line = menus.splitlines().index('default_language = "en"') + 1
    result = subprocess.run(
        [sys.executable, "-m", "smsgw.cli", "check-config", "--config", str(tmp_path / "gateway.toml")],
        capture_output=True, text=True, cwd=str(tmp_path), env=dict(os.environ),
    )
    assert result.returncode == 2, result
    assert f"{tmp_path / 'parking.toml'}:{parking_line}: parking.reminder_lead_minutes:" in result.stderr
    assert f"{tmp_path / 'ussd.toml'}:{menus_line}: service.default_language:" in result.stderr
    assert "transactions.toml: ok" in result.stdout and "gateway.toml: ok" in result.stdout
