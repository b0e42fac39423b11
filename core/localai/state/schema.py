"""The state database's schema, as numbered migrations; a database records the versions it has (``schema_version``).

Each version is applied once, in order, in one transaction, and never edited once released: an upgrade adds a
version. Statements are written in the SQL both SQLite and PostgreSQL accept. Version 1 is the Responses store as
it was before versions were recorded (``IF NOT EXISTS``), so an existing SQLite store adopts it untouched.
"""

from __future__ import annotations

MIGRATIONS: list[tuple[int, list[str]]] = [
    (1, [
        "CREATE TABLE IF NOT EXISTS responses (id TEXT PRIMARY KEY, created_at INTEGER NOT NULL, status TEXT NOT NULL,"
        " resource TEXT NOT NULL, context TEXT NOT NULL)",
        "CREATE TABLE IF NOT EXISTS items (id TEXT PRIMARY KEY, response_id TEXT NOT NULL, item TEXT NOT NULL)",
        "CREATE INDEX IF NOT EXISTS items_by_response ON items(response_id)",
        "CREATE TABLE IF NOT EXISTS events (response_id TEXT NOT NULL, seq INTEGER NOT NULL, type TEXT NOT NULL,"
        " data TEXT NOT NULL, PRIMARY KEY (response_id, seq))",
    ]),
    # Responses running on one replica, seen from the others: who runs it, until when its lease holds (the
    # runner renews it; past it, any replica fails the response), and a cancel asked for through another replica.
    (2, [
        "ALTER TABLE responses ADD COLUMN owner TEXT",
        "ALTER TABLE responses ADD COLUMN lease_until DOUBLE PRECISION",
        "ALTER TABLE responses ADD COLUMN cancel_requested INTEGER NOT NULL DEFAULT 0",
        "CREATE INDEX IF NOT EXISTS responses_running ON responses(status, lease_until)",
    ]),
    # Model and backend install jobs (LocalAI's gallery op status JSON in ``data``), mirrored by the replica that
    # runs each (localai.state.jobs), leased and cancellable like responses.
    (3, [
        "CREATE TABLE jobs (uuid TEXT PRIMARY KEY, kind TEXT NOT NULL, data TEXT NOT NULL, owner TEXT NOT NULL,"
        " lease_until DOUBLE PRECISION NOT NULL, processed INTEGER NOT NULL, cancel_requested INTEGER NOT NULL DEFAULT 0)",
        "CREATE INDEX jobs_by_kind ON jobs(kind)",
    ]),
]
