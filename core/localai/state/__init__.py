"""What the server keeps beyond one request: SQLite in the data folder by default (nothing to set up), PostgreSQL
when several replicas share it (``--database-url`` / ``LOCALAI_DATABASE_URL``)."""

from localai.state.database import Database, StoreUnavailable, redact, replica_id

__all__ = ["Database", "StoreUnavailable", "redact", "replica_id"]
