"""A throwaway PostgreSQL server for the tests and the scripts: initdb into a directory, a free
loopback port, its unix socket in the same directory, stopped (and its files removed) after.

It runs the distribution's own binaries (`initdb`, `postgres`, `pg_ctl` from the `postgresql`
package).  PostgreSQL refuses to run as root, and CI runs as root: then the server runs as an
unprivileged account (the package's `postgres`, or one created for the purpose) through
`runuser`, and its directory is handed to that account.

Nothing here is a mock: the tests use it to run the real server, kill it (-9), restart it under
load, and cut a node off from it (see `TcpCutter` in tcpcut.py).
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

#: The account the server runs as when we are root (PostgreSQL will not run as root).
_ACCOUNTS = ("postgres", "smsgw-pg")
#: The superuser initdb creates: the gateway's nodes connect as it (trust, loopback only).
USER = "smsgw"


class PgUnavailable(RuntimeError):
    """No PostgreSQL server binaries on this machine (the `postgresql` package is absent)."""


def find_bindir() -> Path:
    """The directory holding initdb and postgres: on PATH, or the newest /usr/lib/postgresql/N."""
    initdb = shutil.which("initdb")
    if initdb and shutil.which("postgres"):
        return Path(os.path.realpath(initdb)).parent
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                        key=lambda p: int(Path(p).parent.parent.name) if Path(p).parent.parent.name.isdigit() else 0)
    if candidates:
        return Path(candidates[-1]).parent
    raise PgUnavailable("PostgreSQL server binaries (initdb, postgres) not found: install the "
                        "distribution's `postgresql` package")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _unprivileged_account() -> str:
    for name in _ACCOUNTS:
        try:
            pwd.getpwnam(name)
            return name
        except KeyError:
            continue
    name = _ACCOUNTS[-1]
    subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", name],
                   check=True, capture_output=True)
    return name


def _children(pid: int) -> list[int]:
    """Processes whose parent is `pid` (the postmaster's backends and workers)."""
    found = []
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            for line in status.read_text().splitlines():
                if line.startswith("PPid:"):
                    if int(line.split()[1]) == pid:
                        found.append(int(status.parent.name))
                    break
        except (OSError, ValueError):
            continue
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1][0]
    except (OSError, IndexError):
        return False
    return state != "Z"


class PgServer:
    """One PostgreSQL cluster in `directory` (a temporary one by default), on 127.0.0.1:`port`."""

    def __init__(self, directory: Path | None = None, *, port: int | None = None, fsync: bool = False,
                 max_connections: int = 200) -> None:
        self.bindir = find_bindir()
        # Under /tmp by default: a server run as another account must be able to reach its folder,
        # which a folder inside root's private temporary directories would not let it.
        self._owned_dir = directory is None
        self.directory = Path(directory) if directory is not None else Path(tempfile.mkdtemp(prefix="smsgw-pg-"))
        self.directory.mkdir(parents=True, exist_ok=True)
        self.data = self.directory / "data"
        self.port = port or _free_port()
        self.fsync = fsync
        self.max_connections = max_connections
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = self.directory / "postgres.log"
        self._as: list[str] = []
        if os.geteuid() == 0:
            account = _unprivileged_account()
            self._as = ["runuser", "-u", account, "--"]
            entry = pwd.getpwnam(account)
            os.chown(self.directory, entry.pw_uid, entry.pw_gid)
        os.chmod(self.directory, 0o700)

    # -- life cycle --------------------------------------------------------------------------

    def init(self) -> None:
        if (self.data / "PG_VERSION").exists():
            return
        subprocess.run(
            [*self._as, str(self.bindir / "initdb"), "-D", str(self.data), "-U", USER, "-A", "trust",
             "-E", "UTF8", "--locale=C", "--no-sync"],
            check=True, capture_output=True,
        )

    def start(self, timeout: float = 30.0) -> "PgServer":
        self.init()
        settings = {
            "listen_addresses": "127.0.0.1",
            "port": str(self.port),
            "unix_socket_directories": str(self.directory),
            "max_connections": str(self.max_connections),
            "fsync": "on" if self.fsync else "off",
            "synchronous_commit": "on",
            "full_page_writes": "on" if self.fsync else "off",
            "shared_buffers": "64MB",
            "max_prepared_transactions": "0",
            "log_min_messages": "warning",
        }
        args = [str(self.bindir / "postgres"), "-D", str(self.data)]
        for key, value in settings.items():
            args += ["-c", f"{key}={value}"]
        log_file = open(self.log_path, "ab")
        try:
            self.proc = subprocess.Popen([*self._as, *args], stdout=log_file, stderr=subprocess.STDOUT,
                                         start_new_session=True)
        finally:
            log_file.close()
        self._wait_ready(timeout)
        return self

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise RuntimeError(f"postgres exited at start: {self.log_tail()}")
            done = subprocess.run(
                [str(self.bindir / "pg_isready"), "-h", "127.0.0.1", "-p", str(self.port), "-U", USER, "-d", "postgres", "-q"],
                capture_output=True,
            )
            if done.returncode == 0:
                return
            time.sleep(0.05)
        raise RuntimeError(f"postgres did not accept connections within {timeout:g} s: {self.log_tail()}")

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    @property
    def postmaster_pid(self) -> int | None:
        try:
            return int((self.data / "postmaster.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def stop(self, mode: str = "fast") -> None:
        """Stop the server (`fast`: clients disconnected, a clean shutdown; `immediate`: like a
        crash, recovery at the next start)."""
        if self.proc is None:
            return
        sig = {"smart": signal.SIGTERM, "fast": signal.SIGINT, "immediate": signal.SIGQUIT}[mode]
        pid = self.postmaster_pid
        try:
            if pid is not None:
                os.kill(pid, sig)
            else:
                self.proc.send_signal(sig)
        except ProcessLookupError:
            pass
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.kill()
        self.proc = None

    def kill(self) -> None:
        """kill -9 of the postmaster and its backends (the machine's database process dies)."""
        if self.proc is None:
            return
        pid = self.postmaster_pid
        victims = [pid, *_children(pid)] if pid is not None else []
        for victim in victims:
            try:
                os.kill(victim, signal.SIGKILL)
            except ProcessLookupError:
                pass
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)
        deadline = time.monotonic() + 10
        while any(_alive(v) for v in victims) and time.monotonic() < deadline:
            time.sleep(0.02)
        self.proc = None

    def restart(self, mode: str = "fast", down_s: float = 0.0) -> None:
        self.stop(mode)
        if down_s:
            time.sleep(down_s)
        self.start()

    def destroy(self) -> None:
        """Stop and remove the whole cluster directory (a temporary one, or one we were given)."""
        try:
            self.stop("immediate")
        finally:
            if self._owned_dir:
                shutil.rmtree(self.directory, ignore_errors=True)

    # -- databases ---------------------------------------------------------------------------

    def url(self, database: str = "postgres", user: str = USER) -> str:
        return f"postgresql://{user}@127.0.0.1:{self.port}/{database}"

    def psql(self, sql: str, database: str = "postgres") -> str:
        done = subprocess.run(
            [str(self.bindir / "psql"), "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1",
             "-p", str(self.port), "-U", USER, "-d", database, "-c", sql],
            capture_output=True, text=True,
        )
        if done.returncode != 0:
            raise RuntimeError(f"psql failed: {done.stderr.strip()}")
        return done.stdout

    def create_database(self, name: str) -> str:
        """A new empty database; returns its URL."""
        self.psql(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def drop_database(self, name: str) -> None:
        self.psql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def terminate(self, application_name: str | None = None, database: str | None = None) -> int:
        """Drop the connections of one application (a node) or database: what a network cut or a
        DBA's pg_terminate_backend does.  Returns how many were dropped."""
        where = ["pid <> pg_backend_pid()", "backend_type = 'client backend'"]
        if application_name is not None:
            where.append(f"application_name = '{application_name}'")
        if database is not None:
            where.append(f"datname = '{database}'")
        out = self.psql(f"SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE {' AND '.join(where)}")
        return int(out.strip() or 0)

    def __enter__(self) -> "PgServer":
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.destroy()
