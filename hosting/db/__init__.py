"""Storage: the async engine, sessions and start-up migrations (models in `hosting.db.models`)."""

from hosting.db.engine import create_engine, migrate, session_factory

__all__ = ["create_engine", "migrate", "session_factory"]
