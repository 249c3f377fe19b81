"""Shared fixtures: a throwaway PostgreSQL server for the tests that need one.

The server is started once per test run (initdb into a temporary directory, a free loopback
port) and stopped at the end; each test gets a database of its own.  Where the server binaries
are absent (the distribution's `postgresql` package is not installed) those tests skip, saying
so; CI installs the package, so there they run.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import pytest

from scripts.pgserver import PgServer, PgUnavailable

_databases = itertools.count(1)


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    try:
        server = PgServer()
    except PgUnavailable as exc:
        pytest.skip(str(exc))
    try:
        server.start()
    except Exception:
        server.destroy()
        raise
    try:
        yield server
    finally:
        server.destroy()


@pytest.fixture
def pg_url(pg_server: PgServer) -> Iterator[str]:
    """A fresh, empty database on the shared server; dropped after the test."""
    name = f"t{next(_databases)}"
    url = pg_server.create_database(name)
    try:
        yield url
    finally:
        try:
            pg_server.drop_database(name)
        except RuntimeError:
            pass  # the server was stopped by the test and not started again: nothing to drop
