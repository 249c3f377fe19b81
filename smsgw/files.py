"""Files that hold phone numbers (the store, its -wal and -shm, settlement CSVs) are private.

They are created 0600, or 0640 when `[gateway] file_group` names a group whose members may read
them (a backup or finance account).  The mode is set explicitly after creation, so the process's
umask can neither open it up (umask 0) nor close the group out (umask 027).  A store that already
exists keeps its mode, but the gateway warns at start when others can read it (as it does for the
config file, which holds SMPP passwords): changing an operator's permissions behind their back
could break whatever they set them for.

SQLite creates -wal and -shm with the database file's own permissions, so a private database
gives private companions; their group is set here after the store is opened.
"""

from __future__ import annotations

import grp
import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from smsgw.log import get_logger

__all__ = ["STORE_SUFFIXES", "file_mode", "group_id", "open_private", "prepare_store", "secure_store_companions"]

log = get_logger(__name__)

#: The database file and the companions SQLite keeps beside it in WAL mode.
STORE_SUFFIXES = ("", "-wal", "-shm")


def file_mode(group: str | None) -> int:
    return 0o640 if group else 0o600


def group_id(group: str) -> int:
    """The id of a group by name; KeyError if there is none (the config check reports it)."""
    return grp.getgrnam(group).gr_gid


def _make_private(fd: int, group: str | None) -> None:
    if group:
        os.fchown(fd, -1, group_id(group))
    os.fchmod(fd, file_mode(group))


@contextmanager
def open_private(path: str | os.PathLike[str], group: str | None = None, encoding: str = "utf-8",
                 newline: str = "") -> Iterator[IO[str]]:
    """Open `path` for writing text (created or truncated) with the private mode, whatever the umask."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, file_mode(group))
    try:
        _make_private(fd, group)
    except BaseException:
        os.close(fd)
        raise
    with open(fd, "w", encoding=encoding, newline=newline) as f:
        yield f


def prepare_store(path: str, group: str | None = None) -> None:
    """Before SQLite opens `path`: create it (and its folder) private, or warn when an existing
    store (or a companion left beside it) is open to others."""
    if path == ":memory:" or path.startswith("file:"):
        return
    folder = Path(path).parent
    if not folder.exists():
        folder.mkdir(parents=True, mode=0o750 if group else 0o700)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, file_mode(group))
    except FileExistsError:
        warn_if_open(path, group)
        return
    try:
        _make_private(fd, group)
    finally:
        os.close(fd)


def secure_store_companions(path: str, group: str | None = None) -> None:
    """After the store is open: -wal and -shm exist now, with the database's mode; give them its
    group too (a new file takes the process's group, not the database's)."""
    if path == ":memory:" or path.startswith("file:") or not group:
        return
    gid = group_id(group)
    for suffix in STORE_SUFFIXES[1:]:
        try:
            if os.stat(path + suffix).st_gid != gid:
                os.chown(path + suffix, -1, gid)
        except FileNotFoundError:
            continue


def warn_if_open(path: str, group: str | None) -> None:
    allowed = stat.S_IRGRP if group else 0
    for suffix in STORE_SUFFIXES:
        try:
            mode = os.stat(path + suffix).st_mode
        except FileNotFoundError:
            continue
        extra = mode & 0o077 & ~allowed
        if extra:
            log.warning("store_readable_by_others", path=path + suffix, mode=f"{stat.S_IMODE(mode):04o}",
                        hint=f"the store holds phone numbers and messages; chmod {file_mode(group):o} it "
                             "(and its -wal and -shm), or set [gateway] file_group for a group that may read it")
