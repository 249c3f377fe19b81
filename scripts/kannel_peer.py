"""Kannel as the benchmark's peer: the same carriers, simulators and load, answered by Kannel.

The distribution's `kannel` package (bearerbox + smsbox) is bound to the very simulators the
gateway was measured on, with a configuration written into the run's temporary directory from the
gateway's own bench config (same ports, credentials, bind modes, window, TPS, TON/NPI), so the
only thing that changes between the two runs is who answers.

What Kannel is asked to do, service by service (smsbox `sms-service` groups, no `get-url`):
  * HELP (and its aliases, on any short code): a static `text`, our own HELP answer.
  * STATUS on 90092 (and its Arabic aliases): `file = <dir>/<reference>.<sender>`, one file per
    (reference, registered number) pair, read per MO.  That is Kannel's look-up by reference and
    sender: a reference asked from a number it is not registered to has no file, and the answer is
    smsbox's `reply-emptymessage`, set to our "not registered to this number" text, as our privacy
    path answers.  Kannel answers in English only (no per-service coding), where we answer an
    Arabic request in Arabic (UCS-2, often two parts): Kannel writes a little less there.
  * anything else (the parking mix's bookings, extensions and MY on 90091): the default service,
    a static text, our own booking confirmation.  Kannel keeps no parking state: it does less.
Every reply asks for a delivery receipt (dlr-mask 3), as every MT of ours does (registered_delivery
1), so the SMSC's receipts come back and Kannel matches them in its DLR store; `msg-id-type` is set
per carrier from the id formats in our config, or the Omantel receipts (hex in submit_sm_resp,
decimal in the receipt) never match.  A DLR needs a `dlr-url` for smsbox to request it; it points
at smsbox's own HTTP port, which answers 404 at once (no application behind it).
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import subprocess
import time
import urllib.request
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: Kannel's `msg-id-type` bits: 0x01 the id in submit_sm_resp is hex, 0x02 the id in the receipt is.
#: Unset, Kannel compares the two as strings, which is what our "str" format means too.
_HEX = {"hex": True, "dec": False}


def kannel_available() -> str | None:
    """None when bearerbox and smsbox are installed, otherwise why the peer cannot run."""
    missing = [name for name in ("bearerbox", "smsbox") if shutil.which(name) is None]
    if missing:
        return f"Kannel is not installed ({' and '.join(missing)} not found; Debian package 'kannel')"
    return None


def kannel_version() -> str | None:
    try:
        out = subprocess.run(["dpkg-query", "-W", "-f=${Version}", "kannel"], capture_output=True, text=True,
                             timeout=10, check=False).stdout.strip()
    except OSError:
        return None
    return out or None


def msg_id_type(resp_id_format: str, receipt_id_format: str) -> int | None:
    if resp_id_format == "str" and receipt_id_format == "str":
        return None
    return (0x01 if _HEX.get(resp_id_format, True) else 0) | (0x02 if _HEX.get(receipt_id_format, True) else 0)


def _quoted(text: str) -> str:
    """A Kannel config string: one line, no double quotes, '%' kept literal (it starts an escape)."""
    return '"' + text.replace("\n", " ").replace('"', "'").replace("%", "%%") + '"'


def _alias(word: str) -> str:
    """An alias as Kannel wants it: lower case, and literal inside the regex Kannel builds from the
    aliases (each metacharacter in a class of its own; a backslash would need config escaping)."""
    return "".join(f"[{ch}]" if ch in ".^$*+?()[{}|" else ch for ch in word.lower())


@dataclass(frozen=True)
class KannelTexts:
    """The answers Kannel gives: copies of what the gateway answered in the same bench."""

    help: str
    default: str
    status_not_found: str


@dataclass(frozen=True)
class StatusKeywords:
    keyword: str
    aliases: tuple[str, ...]
    short_code: str


def write_status_files(directory: Path, rows: Iterable[tuple[str, Iterable[str], str]]) -> int:
    """One file per (reference, registered number): `<ref>.<number>` holding the answer.  Kannel's
    %p (the sender) comes URL-encoded with the '+' it adds to international numbers."""
    directory.mkdir(parents=True, exist_ok=True)
    written = 0
    for ref, numbers, answer in rows:
        data = answer.encode("utf-8")
        for number in numbers:
            (directory / f"{ref}.%2B{number}").write_bytes(data)
            written += 1
    return written


def kannel_config(tmp: Path, gateway_config: Any, texts: KannelTexts, *, window: int,
                  status: StatusKeywords | None, status_dir: Path | None, help_aliases: Iterable[str],
                  store: str = "none") -> tuple[Path, dict[str, Any]]:
    """Write kannel.conf for the carriers of `gateway_config`; returns its path and the ports used."""
    from scripts.procs import free_port

    ports = {"admin": free_port(), "smsbox": free_port(), "sendsms": free_port()}
    password = secrets.token_hex(8)
    core = [
        "group = core",
        f"admin-port = {ports['admin']}",
        "admin-interface = 127.0.0.1",
        f"admin-password = {password}",
        f"smsbox-port = {ports['smsbox']}",
        "box-allow-ip = 127.0.0.1",
        "admin-allow-ip = 127.0.0.1",
        f'log-file = "{tmp / "bearerbox.log"}"',
        "log-level = 4",
        "dlr-storage = internal",
    ]
    if store != "none":
        # "file": one append-only file; "spool": one file per queued message.
        core += [f"store-type = {store}", f'store-location = "{tmp / ("kannel.store" if store == "file" else "spool")}"']
        if store == "spool":
            (tmp / "spool").mkdir(exist_ok=True)
    groups = ["\n".join(core)]
    for carrier in gateway_config.carriers:
        if not carrier.enabled:
            continue
        common = [
            "group = smsc",
            "smsc = smpp",
            f"smsc-id = {carrier.name}",
            # A reply leaves by the carrier its MO came from, as ours do (the handset is that carrier's).
            f"allowed-smsc-id = {carrier.name}",
            f"host = {carrier.host}",
            f"smsc-username = {carrier.system_id}",
            f"smsc-password = {carrier.password}",
            f'system-type = "{carrier.system_type}"',
            f"max-pending-submits = {window}",
            f"throughput = {carrier.tps:g}",
            f"enquire-link-interval = {int(carrier.enquire_link_s)}",
            f"source-addr-ton = {carrier.source_addr_ton}",
            f"source-addr-npi = {carrier.source_addr_npi}",
            "source-addr-autodetect = false",
            f"dest-addr-ton = {carrier.dest_addr_ton}",
            f"dest-addr-npi = {carrier.dest_addr_npi}",
            "reconnect-delay = 1",
        ]
        id_type = msg_id_type(carrier.resp_id_format, carrier.receipt_id_format)
        if id_type is not None:
            common.append(f"msg-id-type = 0x{id_type:02x}")
        if carrier.default_alphabet == "latin1":
            common.append('alt-charset = "ISO-8859-1"')
        if carrier.bind_mode == "transceiver":
            groups.append("\n".join([*common, f"port = {carrier.port}", "transceiver-mode = true"]))
        else:
            # A transmitter and a receiver bind: Kannel 1.4.5 wants them as two groups of one smsc-id.
            groups.append("\n".join([*common, f"port = {carrier.port}"]))
            groups.append("\n".join([*common, f"receive-port = {carrier.port}"]))
    groups.append("\n".join([
        "group = smsbox",
        "bearerbox-host = 127.0.0.1",
        f"bearerbox-port = {ports['smsbox']}",
        f"sendsms-port = {ports['sendsms']}",
        "sendsms-interface = 127.0.0.1",
        f'log-file = "{tmp / "smsbox.log"}"',
        "log-level = 4",
        "mo-recode = true",
        f"reply-emptymessage = {_quoted(texts.status_not_found)}",
    ]))
    dlr = [f'dlr-url = "http://127.0.0.1:{ports["sendsms"]}/dlr"', "dlr-mask = 3", "max-messages = 10",
           "concatenation = true"]
    aliases = ";".join(_alias(a) for a in help_aliases)
    groups.append("\n".join(["group = sms-service", "keyword = help", *([f'aliases = "{aliases}"'] if aliases else []),
                             f"text = {_quoted(texts.help)}", *dlr]))
    if status is not None and status_dir is not None:
        status_aliases = ";".join(_alias(a) for a in status.aliases)
        groups.append("\n".join([
            "group = sms-service", f"keyword = {status.keyword.lower()}",
            *([f'aliases = "{status_aliases}"'] if status_aliases else []),
            f"allowed-receiver-prefix = {status.short_code}",
            # %s: the word after the keyword (the reference); %p: the sender, URL-encoded.
            f'file = "{status_dir}/%s.%p"', *dlr,
        ]))
    groups.append("\n".join(["group = sms-service", "keyword = default", f"text = {_quoted(texts.default)}", *dlr]))
    path = tmp / "kannel.conf"
    path.write_text("\n\n".join(groups) + "\n", encoding="utf-8")
    os.chmod(path, 0o600)
    return path, {**ports, "password": password}


class KannelPeer:
    """bearerbox and smsbox on one generated config, started and stopped as a pair."""

    def __init__(self, config: Path, ports: Mapping[str, Any], log_dir: Path) -> None:
        self.config = config
        self.ports = dict(ports)
        self.log_dir = log_dir
        self.bearerbox: subprocess.Popen[bytes] | None = None
        self.smsbox: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 20.0) -> None:
        from scripts.procs import wait_port

        self.bearerbox = self._spawn("bearerbox")
        if not wait_port(self.ports["smsbox"], timeout):
            raise SystemExit(f"bearerbox did not start:\n{self._tail('bearerbox')}")
        self.smsbox = self._spawn("smsbox")
        if not wait_port(self.ports["sendsms"], timeout):
            raise SystemExit(f"smsbox did not start:\n{self._tail('smsbox')}")

    def _tail(self, program: str) -> str:
        lines: list[str] = []
        for name in (f"{program}.out", f"{program}.log"):
            try:
                lines += (self.log_dir / name).read_text(errors="replace").splitlines()[-10:]
            except OSError:
                pass
        return "\n".join(lines)

    def _spawn(self, program: str) -> subprocess.Popen[bytes]:
        with open(self.log_dir / f"{program}.out", "ab") as out:
            # -v 4: panics only on the console, as log-level 4 in the files: no per-message logging.
            return subprocess.Popen([program, "-v", "4", str(self.config)], stdout=out, stderr=subprocess.STDOUT,
                                    cwd=str(self.log_dir))

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in (self.bearerbox, self.smsbox) if p is not None and p.poll() is None]

    def status(self) -> str:
        url = f"http://127.0.0.1:{self.ports['admin']}/status.txt?password={self.ports['password']}"
        with urllib.request.urlopen(url, timeout=10) as answer:  # noqa: S310 (loopback, our own Kannel)
            return answer.read().decode("utf-8", "replace")

    def dlrs_waiting(self) -> int | None:
        """Receipts requested and not yet matched (a wrong msg-id-type leaves them all here)."""
        try:
            found = re.search(r"DLR:\s*(\d+)\s+queued", self.status())
        except OSError:
            return None
        return int(found.group(1)) if found else None

    def stop(self) -> None:
        from scripts.procs import stop_process

        for proc in (self.smsbox, self.bearerbox):
            stop_process(proc, timeout=10.0)
        self.smsbox = self.bearerbox = None


def wait_until(predicate: Any, timeout: float, poll_s: float = 0.1) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(poll_s)
    return False
