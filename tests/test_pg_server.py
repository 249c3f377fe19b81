"""The throwaway PostgreSQL server the engine tests run on: it really starts, serves, dies and
comes back (kill -9 included), as the fault tests need."""

from __future__ import annotations

import psycopg
import pytest

from scripts.pgserver import PgServer


def test_a_database_per_test_is_empty_and_answers(pg_url: str) -> None:
    """Each test gets its own empty database on the shared server."""
    with psycopg.connect(pg_url, autocommit=True) as conn:
        assert conn.execute("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'").fetchone() == (0,)
        assert conn.execute("SHOW server_version_num").fetchone()[0] >= "150000"


def test_the_server_survives_kill_9_and_restart() -> None:
    """A server killed with -9 starts again on its directory and keeps what was committed."""
    server = PgServer().start()
    try:
        url = server.create_database("k")
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("CREATE TABLE t (x int)")
            conn.execute("INSERT INTO t VALUES (42)")
        server.kill()
        with pytest.raises(psycopg.OperationalError):
            psycopg.connect(url, connect_timeout=2)
        server.start()
        with psycopg.connect(url, autocommit=True) as conn:
            assert conn.execute("SELECT x FROM t").fetchall() == [(42,)]
    finally:
        server.destroy()


def test_terminate_drops_one_applications_connections(pg_server: PgServer, pg_url: str) -> None:
    """Dropping a node's connections (by application name) leaves the others alone."""
    with psycopg.connect(pg_url, application_name="node-a", autocommit=True) as a, \
            psycopg.connect(pg_url, application_name="node-b", autocommit=True) as b:
        assert pg_server.terminate(application_name="node-a") == 1
        with pytest.raises(psycopg.OperationalError):
            a.execute("SELECT 1")
        assert b.execute("SELECT 1").fetchone() == (1,)
