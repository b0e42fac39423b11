"""The state database (localai.state) on SQLite and on a real PostgreSQL: versioned schema, outages, replayed writes."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from localai.state import Database, StoreUnavailable
from localai.state.schema import MIGRATIONS
from localai.testing import missing
from localai.testing.services import PostgresServer

LATEST = MIGRATIONS[-1][0]


@pytest.fixture(scope="module")
def pg() -> Iterator[PostgresServer]:
    try:
        server = PostgresServer()
    except FileNotFoundError as exc:
        missing(str(exc))
    with server:
        yield server


def versions(db: Database) -> list[int]:
    return asyncio.run(_versions(db))


async def _versions(db: Database) -> list[int]:
    await db.open()
    try:
        rows = await db.run(lambda c: c.execute("SELECT version FROM schema_version ORDER BY version").fetchall())
        return [int(r[0]) for r in rows]
    finally:
        await db.close()


def test_an_sqlite_store_from_before_versions_is_adopted_with_its_rows(tmp_path: Path) -> None:
    old = sqlite3.connect(tmp_path / "responses.sqlite3")
    for sql in MIGRATIONS[0][1]:
        old.execute(sql)
    old.execute("INSERT INTO responses (id, created_at, status, resource, context) VALUES ('resp_1', 1, 'completed', '{}', '[]')")
    old.commit()
    old.close()
    assert versions(Database(None, tmp_path)) == list(range(1, LATEST + 1))
    assert versions(Database(None, tmp_path)) == list(range(1, LATEST + 1))  # a second start applies nothing
    row = sqlite3.connect(tmp_path / "responses.sqlite3").execute("SELECT id, status, cancel_requested FROM responses").fetchall()
    assert row == [("resp_1", "completed", 0)]


def test_postgresql_gets_every_version_once(pg: PostgresServer, tmp_path: Path) -> None:
    assert versions(Database(pg.url, tmp_path)) == list(range(1, LATEST + 1))
    assert versions(Database(pg.url, tmp_path)) == list(range(1, LATEST + 1))


def test_a_bad_url_and_an_unreachable_server_say_so(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="expected postgresql://"):
        Database("mysql://x@y/z", tmp_path)
    db = Database("postgresql://u:secret@127.0.0.1:9/none", tmp_path)
    with pytest.raises(StoreUnavailable) as err:
        db.prepare()
    assert "cannot connect to postgresql://u:***@127.0.0.1:9/none" in err.value.message
    assert "secret" not in err.value.message and err.value.status == 503


def test_writes_queued_during_an_outage_land_in_order_once_it_is_back(pg: PostgresServer, tmp_path: Path) -> None:
    async def scenario() -> list[tuple[int, str]]:
        db = Database(pg.url, tmp_path)
        await db.open()
        await db.run(lambda c: c.execute("CREATE TABLE IF NOT EXISTS notes (n INTEGER PRIMARY KEY, text TEXT)"))
        await db.run(lambda c: c.execute("DELETE FROM notes"))
        pg.down()
        try:
            for n in range(3):
                db.submit(lambda c, n=n: c.execute("INSERT INTO notes (n, text) VALUES (?, ?)", (n, f"note {n}")))
            # A write that fails for its own reasons once replayed (a duplicate key) is dropped, not blocking.
            db.submit(lambda c: c.execute("INSERT INTO notes (n, text) VALUES (?, ?)", (0, "duplicate")))
            with pytest.raises(StoreUnavailable):
                await db.flush()
            assert await db.check() is not None
        finally:
            pg.up()
        await db.flush()
        db.submit(lambda c: c.execute("INSERT INTO notes (n, text) VALUES (?, ?)", (3, "after")))
        rows = await db.run(lambda c: c.execute("SELECT n, text FROM notes ORDER BY n").fetchall())
        assert await db.check() is None
        await db.close()
        return [(int(n), t) for n, t in rows]

    assert asyncio.run(scenario()) == [(0, "note 0"), (1, "note 1"), (2, "note 2"), (3, "after")]


def test_a_restart_between_calls_costs_no_error(pg: PostgresServer, tmp_path: Path) -> None:
    async def scenario() -> None:
        db = Database(pg.url, tmp_path)
        await db.open()
        pg.restart()
        assert await db.run(lambda c: c.execute("SELECT 1").fetchone()[0]) == 1  # the dead connection is replaced
        await db.close()

    asyncio.run(scenario())
