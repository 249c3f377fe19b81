"""What a new user meets first: the handset view, the ready line, check-config, `smsgw routes`."""

from __future__ import annotations

import asyncio
import os
import pty
import re
import subprocess
import sys
from pathlib import Path

from smsgw.message import Reply
from tests.stack import (
    ROOT,
    SHIPPED_CONFIG,
    SMSGW_AS_FOREGROUND,
    eventually,
    log_events,
    on_loop,
    spawn_gateway,
    start_stack,
    write_process_config,
)
from tests.test_e2e_process import _free_port, wait_exit

HANDSET = "96891234567"


@on_loop
async def test_smsgw_handset_prints_every_sms_the_handset_gets_as_it_arrives(tmp_path: Path) -> None:
    """`smsgw handset --from N` shows replies and the messages nobody asked for (a notice here),
    from whichever carrier delivers them, and nothing sent to other numbers."""
    stack = await start_stack(tmp_path)
    try:
        config = write_process_config(tmp_path, stack.sims.ports, tmp_path / "unused.sqlite3",
                                      control_port=stack.sims.control_port or 0)
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "smsgw.cli", "handset", "--config", str(config), "--from", HANDSET,
            "--count", "2", "--timeout", "30",
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, cwd=str(ROOT),
        )
        assert proc.stderr is not None
        first = await asyncio.wait_for(proc.stderr.readline(), 20)
        assert first.decode().startswith(f"watching {HANDSET} on omantel, ooredoo, friendi"), first
        await stack.send("friendi", "96899999999", "90091", "HELP")  # another handset: not shown
        await stack.send("omantel", HANDSET, "90091", "HELP")
        await stack.gateway.send(Reply("ooredoo", HANDSET, "90092", "Your request MM-2026-000123 is approved."))
        out, err = await asyncio.wait_for(proc.communicate(), 30)
        assert proc.returncode == 0, err.decode()
        lines = out.decode().splitlines()
        assert re.fullmatch(rf"\d\d:\d\d:\d\d omantel \[90091 → {HANDSET}\] Send to 90091:", lines[0]), lines
        assert lines[-1].endswith(f"ooredoo [90092 → {HANDSET}] Your request MM-2026-000123 is approved.")
        # The continuation lines of a multi-line SMS line up under its first line of text.
        assert lines[1].strip().startswith("PARK ") and lines[1].index("PARK") == lines[0].index("Send")
        assert "96899999999" not in out.decode()
    finally:
        await stack.stop()


@on_loop
async def test_smsgw_run_says_ready_in_one_plain_line_on_a_terminal(tmp_path: Path) -> None:
    """On a terminal, one line once every bind is up, naming the carriers, the admin API and the
    simulators' control port; in a log file only the JSON event."""
    ports = {"omantel": _free_port(), "ooredoo": _free_port(), "friendi": _free_port()}
    control = _free_port()
    config = write_process_config(tmp_path, ports, tmp_path / "gw.sqlite3", embedded=True, control_port=control)
    main, terminal = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-c", SMSGW_AS_FOREGROUND, "run", "--config", str(config)],
        stdin=subprocess.DEVNULL, stdout=terminal, stderr=terminal, cwd=str(ROOT),
        env=dict(os.environ, PYTHONUNBUFFERED="1"),
    )
    os.close(terminal)
    seen = bytearray()
    loop = asyncio.get_running_loop()
    loop.add_reader(main, lambda: seen.extend(_read(main)))
    try:
        ready = re.compile(
            rb"(?m)^ready: omantel, ooredoo, friendi bound; admin on http://127\.0\.0\.1:\d+/; "
            rb"handsets on 127\.0\.0\.1:" + str(control).encode() + rb" \(smsgw send, smsgw dial, smsgw handset\)\r?$"
        )
        await eventually(lambda: ready.search(seen), timeout=20)
        await asyncio.sleep(0.5)
        assert len(ready.findall(seen)) == 1
        proc.send_signal(2)
        assert await wait_exit(proc, 10) == 0
    finally:
        loop.remove_reader(main)
        os.close(main)
        if proc.poll() is None:
            proc.kill()

    # Not on a terminal: the JSON logs stay pure JSON, and the event says the same.
    log = tmp_path / "gateway.log"
    proc = spawn_gateway(config, log)
    try:
        await eventually(lambda: "gateway_ready" in [e.get("event") for e in log_events(log)], timeout=20)
        assert all(line.startswith("{") for line in log.read_text(encoding="utf-8").splitlines() if line)
        [event] = [e for e in log_events(log) if e.get("event") == "gateway_ready"]
        assert event["carriers"] == ["omantel", "ooredoo", "friendi"]
        assert event["summary"].startswith("ready: omantel, ooredoo, friendi bound; admin on http://127.0.0.1:")
    finally:
        proc.terminate()
        await wait_exit(proc, 10)
        if proc.poll() is None:
            proc.kill()


def _read(fd: int) -> bytes:
    try:
        return os.read(fd, 65536)
    except OSError:
        return b""  # the other end closed (EIO on Linux)


def _check_config(config: Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "smsgw.cli", "check-config", "--config", str(config)],
                          capture_output=True, text=True, cwd=str(cwd), env=dict(os.environ))


def _configs_in(folder: Path, edit: tuple[str, str] | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for source in SHIPPED_CONFIG.parent.glob("*.toml"):
        (folder / source.name).write_bytes(source.read_bytes())
    if edit is not None:
        path = folder / "gateway.toml"
        text = path.read_text(encoding="utf-8")
        assert edit[0] in text
        path.write_text(text.replace(edit[0], edit[1], 1), encoding="utf-8")
    return folder / "gateway.toml"


def _line_of(config: Path, text: str, after: str) -> int:
    lines = config.read_text(encoding="utf-8").splitlines()
    return lines.index(text, lines.index(after)) + 1


def test_check_config_refuses_a_carrier_port_that_is_our_own_admin_or_control_port(tmp_path: Path) -> None:
    """A carrier pointed at the admin API's or the control port's address would bind to our own
    server; with the simulators embedded, one pointed at another carrier's simulator binds to
    the wrong carrier. Each is reported on the carrier's port line, naming the other line."""
    config = _configs_in(tmp_path / "admin", ("port = 12776\n", "port = 12790\n"))
    result = _check_config(config, tmp_path)
    line = _line_of(config, "port = 12790", "[carriers.ooredoo]")
    admin = _line_of(config, "port = 12790", "[admin]")
    assert result.returncode == 2
    assert f"{config}:{line}: carriers.ooredoo.port: 12790 is admin.port (line {admin})" in result.stderr

    config = _configs_in(tmp_path / "control", ("embedded_simulators = true", "embedded_simulators = false"))
    text = config.read_text(encoding="utf-8").replace("port = 12777\n", "port = 12780\n", 1)
    config.write_text(text, encoding="utf-8")
    result = _check_config(config, tmp_path)
    line = _line_of(config, "port = 12780", "[carriers.friendi]")
    assert result.returncode == 2
    assert f"{config}:{line}: carriers.friendi.port: 12780 is control.port" in result.stderr

    config = _configs_in(tmp_path / "crossed", ("port = 12775\n", "port = 12777\n"))
    result = _check_config(config, tmp_path)
    line = _line_of(config, "port = 12777", "[carriers.omantel]")
    assert result.returncode == 2
    assert (f"{config}:{line}: carriers.omantel.port: 12777 is simulators.friendi.port" in result.stderr
            and "would bind to the friendi simulator" in result.stderr)

    result = _check_config(_configs_in(tmp_path / "good"), tmp_path)
    assert result.returncode == 0, result.stderr


def test_check_config_names_the_feature_files_as_the_config_path_was_given(tmp_path: Path) -> None:
    """`--config ../x/gateway.toml` → `../x/parking.toml: ok`; an absolute path stays absolute."""
    config = _configs_in(tmp_path / "x")
    work = tmp_path / "work"
    work.mkdir()
    result = _check_config(Path("../x/gateway.toml"), work)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "../x/gateway.toml: ok", "../x/parking.toml: ok", "../x/transactions.toml: ok", "../x/ussd.toml: ok"]
    result = _check_config(config, work)
    assert f"{tmp_path / 'x' / 'parking.toml'}: ok" in result.stdout.splitlines()
    result = _check_config(Path("gateway.toml"), tmp_path / "x")
    assert "parking.toml: ok" in result.stdout.splitlines()
