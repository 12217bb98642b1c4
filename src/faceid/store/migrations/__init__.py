"""Alembic migration scripts for the store; :mod:`faceid.store.database` runs them when a store opens."""
