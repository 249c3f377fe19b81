"""Process harness for the long-running scripts (chaos, soak, fuzz).

The gateway runs as an operator runs it (`smsgw run --no-simulators`), the three carrier
simulators as `python -m carriers`; both listen only on 127.0.0.1 ports found free at start. The
scripts drive traffic and faults through the simulators' JSON-lines control port, read the
gateway's store read-only with sqlite3, and watch the gateway's RSS in /proc.
"""

from __future__ import annotations

import json
import os
import random
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from carriers.control import control_request  # noqa: E402

SHIPPED_CONFIG = ROOT / "config" / "gateway.toml"
#: Carrier → the password of its simulator account (the shipped config's dev credentials).
CARRIERS = {"omantel": "omt_dev1", "ooredoo": "ord_dev1", "friendi": "frd_dev1"}
#: Bound sessions each carrier needs: Ooredoo takes a transmitter and a receiver.
SESSIONS_NEEDED = {"omantel": 1, "ooredoo": 2, "friendi": 1}
_SHIPPED_PORTS = {"omantel": 12775, "ooredoo": 12776, "friendi": 12777}


def exit_on_sigterm() -> None:
    """SIGTERM runs the script's `finally` blocks (as Ctrl-C does) instead of ending it outright, so
    the gateway and simulator processes it started do not outlive it."""
    signal.signal(signal.SIGTERM, lambda signum, _frame: sys.exit(128 + signum))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _set_in_section(text: str, section: str, key: str, value: str) -> str:
    """Set `key = value` inside `[section]` only (keys such as `port` recur in other sections)."""
    pattern = rf"(?m)^(\[{re.escape(section)}\](?:\n(?!\[).*)*?\n{re.escape(key)} = ).*$"
    return re.sub(pattern, lambda m: m.group(1) + value, text, count=1)


def fresh_directory(directory: Path) -> Path:
    """A work directory without a previous run's store and logs: a store left over would make the
    simulators' new MO ids look like redeliveries of the old ones."""
    directory.mkdir(parents=True, exist_ok=True)
    for leftover in [*directory.glob("*.sqlite3*"), *directory.glob("*.log"), *directory.glob("*.toml")]:
        leftover.unlink()
    return directory


def write_config(
    directory: Path,
    *,
    ports: Mapping[str, int],
    control_port: int,
    store_path: Path,
    log_level: str = "warning",
    settings: Mapping[str, float | int | str] | None = None,
) -> Path:
    """The shipped config on these ports and this store, mode 0600 as the gateway wants it.

    `settings` sets each key wherever it appears, so a carrier key (tps, window, response_timeout_s)
    applies to every carrier; strings are written quoted.
    """
    text = SHIPPED_CONFIG.read_text(encoding="utf-8")
    text = re.sub(r"(?m)^store_path = .*$", f'store_path = "{store_path.as_posix()}"', text)
    text = re.sub(r"(?m)^embedded_simulators = .*$", "embedded_simulators = false", text)
    text = re.sub(r"(?m)^log_level = .*$", f'log_level = "{log_level}"', text)
    for key, value in (settings or {}).items():
        shown = json.dumps(value) if isinstance(value, str) else value
        text = re.sub(rf"(?m)^{re.escape(key)} = .*$", lambda _: f"{key} = {shown}", text)
    for name, default in _SHIPPED_PORTS.items():
        text = text.replace(f"port = {default}", f"port = {ports[name]}")
    text = _set_in_section(text, "control", "port", str(control_port))
    text = _set_in_section(text, "admin", "port", "0")  # never collide with a gateway already running
    # Features read their own files (parking.toml...) from the gateway config's folder.
    for feature_config in SHIPPED_CONFIG.parent.glob("*.toml"):
        if feature_config != SHIPPED_CONFIG:
            (directory / feature_config.name).write_bytes(feature_config.read_bytes())
    path = directory / "gateway.toml"
    path.write_text(text, encoding="utf-8")
    os.chmod(path, 0o600)
    return path


def control(port: int, request: dict[str, Any], timeout: float = 30.0) -> dict[str, Any]:
    """One control-port request; returns its final answer line, raises RuntimeError on an error."""
    last: dict[str, Any] = {}
    for event in control_request("127.0.0.1", port, request, timeout=timeout):
        last = event
        if event.get("event") == "error":
            raise RuntimeError(f"control op {request.get('op')!r}: {event.get('message')}")
    return last


def all_bound(status: Mapping[str, Any]) -> bool:
    carriers = status.get("carriers", {})
    return all(len(carriers.get(name, {}).get("sessions", [])) >= need for name, need in SESSIONS_NEEDED.items())


def wait_bound(control_port: int, timeout: float = 30.0, poll_s: float = 0.05) -> float | None:
    """Seconds until every carrier has its bound sessions, or None if that took over `timeout`."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        try:
            if all_bound(control(control_port, {"op": "status"}, 5)):
                return time.monotonic() - start
        except (OSError, RuntimeError, ValueError):
            pass
        time.sleep(poll_s)
    return None


def require_bound(control_port: int, timeout: float = 30.0) -> float:
    """As wait_bound, for a script that cannot go on without the binds: exits when they fail."""
    took = wait_bound(control_port, timeout)
    if took is None:
        raise SystemExit(f"the gateway did not bind to the simulators within {timeout:g} s")
    return took


def _proc_status_mb(pid: int, field: str) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        return None
    return None


def rss_mb(pid: int) -> float | None:
    return _proc_status_mb(pid, "VmRSS")


def peak_rss_mb(pid: int) -> float | None:
    return _proc_status_mb(pid, "VmHWM")


def spawn_simulators(ports: Mapping[str, int], control_port: int, tps: float | None, log_path: Path,
                     log_level: str = "warning", max_binds: int | None = None) -> subprocess.Popen[bytes]:
    """`python -m carriers` with the three carriers on `ports` and the control port; its log
    goes to `log_path` (a pipe could fill and block it)."""
    args: list[str] = []
    for name, password in CARRIERS.items():
        spec = f"{name}:{ports[name]}:mm_smsgw:{password}"
        args += ["--sim", spec + (f":{tps}" if tps else "")]
    if max_binds is not None:
        args += ["--max-binds", str(max_binds)]
    with open(log_path, "ab") as log_file:
        return subprocess.Popen(
            [sys.executable, "-m", "carriers", *args, "--control-port", str(control_port), "--log-level", log_level],
            cwd=str(ROOT), env=dict(os.environ, PYTHONUNBUFFERED="1"), stdout=log_file, stderr=subprocess.STDOUT,
        )


class Simulators:
    """`python -m carriers` with the three carriers and a control port, in its own process."""

    def __init__(self, directory: Path, *, tps: float | None = None, log_level: str = "warning",
                 max_binds: int | None = None) -> None:
        self.directory = directory
        self.tps = tps
        self.max_binds = max_binds
        self.log_level = log_level
        self.ports = {name: free_port() for name in CARRIERS}
        self.control_port = free_port()
        self.log_path = directory / "simulators.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 20.0) -> None:
        self.proc = spawn_simulators(self.ports, self.control_port, self.tps, self.log_path, self.log_level,
                                     self.max_binds)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the simulators exited at start; see {self.log_path}")
            try:
                self.control({"op": "status"}, 2)
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("the simulators' control port did not open in time")

    def control(self, request: dict[str, Any], timeout: float = 30.0) -> dict[str, Any]:
        return control(self.control_port, request, timeout)

    def stop(self) -> None:
        stop_process(self.proc)


class GatewayProcess:
    """`smsgw run --no-simulators` on one config and store; killed and restarted at will."""

    def __init__(self, config_path: Path, log_path: Path, extra_args: Sequence[str] = ()) -> None:
        self.config_path = config_path
        self.log_path = log_path
        self.extra_args = list(extra_args)  # e.g. --node, --admin-port (several nodes on one store)
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self) -> None:
        with open(self.log_path, "ab") as log_file:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "smsgw.cli", "run", "--no-simulators", "--config", str(self.config_path),
                 *self.extra_args],
                cwd=str(ROOT), env=dict(os.environ, PYTHONUNBUFFERED="1"), stdout=log_file,
                stderr=subprocess.STDOUT,
            )
        self.starts += 1

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill9(self) -> None:
        """SIGKILL: no unbind, no flush, whatever was in memory is gone."""
        if self.alive():
            assert self.proc is not None
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> int | None:
        """SIGTERM and wait for a clean exit; returns the exit status."""
        return stop_process(self.proc)


def stop_process(proc: subprocess.Popen[bytes] | None, timeout: float = 20.0) -> int | None:
    """SIGTERM, wait for a clean exit (SIGKILL after `timeout`); returns the exit status."""
    if proc is None:
        return None
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
    return proc.returncode


def query_store(store_path: Path, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Read the gateway's store read-only (it may be running, or have been killed)."""
    with sqlite3.connect(f"file:{store_path}?mode=ro", uri=True, timeout=10) as conn:
        return [tuple(row) for row in conn.execute(sql, params)]


def store_tables(store_path: Path) -> dict[str, list[str]]:
    """Table name → column names, for checks on tables features add (a parking ledger...)."""
    tables = [row[0] for row in query_store(store_path, "SELECT name FROM sqlite_master WHERE type = 'table'")]
    return {t: [row[1] for row in query_store(store_path, f'PRAGMA table_info("{t}")')] for t in tables}


def log_problems(log_path: Path) -> dict[str, Any]:
    """What in a process log looks like a crash: tracebacks and Twisted's unhandled errors (written
    as plain text), and structured events logged with an exception or at critical level."""
    counts: Counter[str] = Counter()
    examples: list[str] = []
    try:
        lines = log_path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return {"tracebacks": 0, "exception_events": 0, "examples": []}
    for line in lines:
        try:
            event = json.loads(line)
        except ValueError:
            if line.startswith("Traceback") or "Unhandled Error" in line or "Unhandled error" in line:
                counts["tracebacks"] += 1
                if len(examples) < 5:
                    examples.append(line[:300])
            continue
        if isinstance(event, dict) and ("exception" in event or event.get("level") == "critical"):
            counts["exception_events"] += 1
            counts[f"event:{event.get('event')}"] += 1
            if len(examples) < 5:
                examples.append(line[:300])
    return {"tracebacks": counts.pop("tracebacks", 0), "exception_events": counts.pop("exception_events", 0),
            "by_event": dict(counts), "examples": examples}


# -- traffic: what handsets send ----------------------------------------------------------------

#: The `--mix` default: HELP in English (one part) and Arabic (a two-part UCS2 reply, so long MTs
#: meet the faults too); parking and STATUS once those features are routed. "{plate}" is a plate
#: number unique to the MO, so two bookings never meet on one car.
DEFAULT_MIX = "HELP@90091=2;مساعدة@90092=1;{plate} 30@90091=2;STATUS MM-2026-000001@90092=1"

@dataclass(frozen=True)
class MixEntry:
    template: str
    short_code: str
    weight: float

    def text(self, n: int) -> str:
        # Digits then letters, as the municipality's own example (`0000AB 30`).
        return self.template.replace("{plate}", f"{1000 + n % 9000}{'ABDHMRSWY'[n // 9000 % 9]}B")


def parse_mix(spec: str) -> list[MixEntry]:
    entries = []
    for item in filter(None, (part.strip() for part in spec.split(";"))):
        body, _, weight = item.rpartition("=")
        text, _, code = body.rpartition("@")
        if not text or not code or not weight:
            raise SystemExit(f"--mix entry {item!r}: expected TEXT@SHORT_CODE=WEIGHT")
        entries.append(MixEntry(text, code, float(weight)))
    if not entries:
        raise SystemExit("--mix is empty")
    return entries


class _RoutingProbe:
    """Stands in for a feature's handler when the router is only asked *which* handler would answer."""

    def __init__(self, name: str) -> None:
        self.name = name

    def handle(self, req: Any) -> Any:
        raise RuntimeError("a routing probe never handles a message")


def routed_mix(config_path: Path, mix: list[MixEntry]) -> tuple[list[MixEntry], list[str], dict[str, str]]:
    """The entries the gateway's configured routes send to a real handler (not 'unknown')."""
    from smsgw.app import load_checked_config
    from smsgw.message import Inbound
    from smsgw.router import UNKNOWN, Router

    config = load_checked_config(str(config_path))
    names = {route.handler for route in config.routes}
    router = Router(config.routes, {name: _RoutingProbe(name) for name in names if name not in ("help", UNKNOWN)})
    used, skipped, handlers = [], [], {}
    for entry in mix:
        text = entry.text(0)
        handler, _ = router.route(Inbound(0, "omantel", "96890000000", entry.short_code, text, 0.0))
        name = getattr(handler, "name", None) or ("help" if type(handler).__name__ == "HelpHandler" else UNKNOWN)
        if name == UNKNOWN:
            skipped.append(f"{entry.template}@{entry.short_code}")
        else:
            used.append(entry)
            handlers[f"{entry.template}@{entry.short_code}"] = name
    return used, skipped, handlers


@dataclass
class InjectedMo:
    carrier: str
    msisdn: str
    short_code: str
    text: str
    mo_id: str
    at: float


class Traffic(threading.Thread):
    """Injects MOs at `rate` a second across the carriers, each from a fresh MSISDN."""

    def __init__(self, sims: Simulators, mix: list[MixEntry], rate: float, seed: int, msisdn_base: int,
                 on_tick: Callable[[], None] = lambda: None) -> None:
        super().__init__(name="traffic", daemon=True)
        self.sims = sims
        self.mix = mix
        self.rate = rate
        self.rng = random.Random(f"{seed}:traffic")
        self.msisdn_base = msisdn_base
        self.on_tick = on_tick
        self.injected: list[InjectedMo] = []
        self.errors = 0
        self._halt = threading.Event()

    def stop(self) -> None:
        self._halt.set()
        self.join(30)

    def run(self) -> None:
        start = time.monotonic()
        weights = [e.weight for e in self.mix]
        carriers = list(CARRIERS)
        while not self._halt.is_set():
            due = int((time.monotonic() - start) * self.rate) - len(self.injected)
            batch = []
            for k in range(max(due, 0)):
                n = len(self.injected) + k
                entry = self.rng.choices(self.mix, weights)[0]
                batch.append({"carrier": self.rng.choice(carriers), "from": str(self.msisdn_base + n),
                              "to": entry.short_code, "text": entry.text(n)})
            if batch:
                try:
                    answer = self.sims.control({"op": "inject", "mos": batch}, 10)
                    now = time.time()
                    for mo, mo_id in zip(batch, answer["mo_ids"]):
                        self.injected.append(InjectedMo(mo["carrier"], mo["from"], mo["to"], mo["text"], mo_id, now))
                except (OSError, RuntimeError, KeyError) as exc:
                    self.errors += 1
                    print(f"inject failed ({exc}); retrying", file=sys.stderr, flush=True)
            self.on_tick()
            self._halt.wait(0.1)


def wait_port(port: int, timeout: float = 20.0, host: str = "127.0.0.1") -> bool:
    """True once something accepts TCP connections on `port`, False after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=1.0):
                return True
        except OSError:
            time.sleep(0.05)
    return False


def cpu_seconds(pids: "list[int] | tuple[int, ...]") -> float:
    """User + system CPU time used so far by these processes (all their threads), from /proc."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / ticks  # utime, stime
    return total
