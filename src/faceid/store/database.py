"""One database: its engine for either backend, and the schema migrations that run when it opens.

:func:`open_database` gives the :class:`Database` of a URL, one per URL in a process, shared by the store,
the accounts and the audit log, so that a server process keeps one connection pool per database.

SQLite: one file, WAL (readers never wait for the writer), foreign keys on, a generous busy
timeout, and write transactions opened with ``BEGIN IMMEDIATE`` so that two processes wanting
to write queue up instead of failing halfway. PostgreSQL: psycopg 3 and the pgvector extension.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import re
import threading
import weakref
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import create_engine, event, inspect, text
from sqlalchemy.engine import URL, Connection, Engine
from sqlalchemy.exc import OperationalError

if TYPE_CHECKING:
    from alembic.config import Config

from faceid.errors import BadInputError, StoreError
from faceid.store.config import describe_url, resolve_database_url

log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).with_name("migrations")
SQLITE_BUSY_TIMEOUT_MS = 60_000
# Any constant works; it names the lock that serialises migrations on one PostgreSQL database.
MIGRATION_LOCK_KEY = 0x46414345  # "FACE"
WRITE_OPTION = "faceid_write"
_REVISION_LINE = re.compile(r"""^(down_)?revision\s*=\s*['"]?([^'"\s]+)['"]?""", re.MULTILINE)


@functools.cache
def schema_head() -> str:
    """The newest migration, read from the scripts' ``revision`` lines: opening an up-to-date store
    compares with it and never loads Alembic (tests/store/test_migrations.py checks it against Alembic's)."""
    revisions: set[str] = set()
    parents: set[str] = set()
    for script in (MIGRATIONS_DIR / "versions").glob("*.py"):
        for down, value in _REVISION_LINE.findall(script.read_text(encoding="utf-8")):
            (parents if down else revisions).add(value)
    heads = sorted(revisions - parents)
    return heads[0] if len(heads) == 1 else ""  # several heads: let Alembic sort it out


def create_store_engine(url: URL) -> Engine:
    if url.get_backend_name() == "sqlite":
        return _sqlite_engine(url)
    engine = create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=10)
    return engine


def _sqlite_engine(url: URL) -> Engine:
    if url.database and url.database != ":memory:":
        Path(url.database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(
        url,
        connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000, "check_same_thread": False},
        # Opening a connection (and its pragmas) costs more than a whole identification; keep a few.
        pool_size=5,
        max_overflow=20,
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" event issue BEGIN itself (pysqlite's own would be deferred).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        # A deferred transaction that later writes can hit SQLITE_BUSY with no retry possible;
        # taking the write lock up front makes concurrent writers wait their turn instead.
        immediate = connection.get_execution_options().get(WRITE_OPTION, False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine


def _alembic_config(connection: Connection | None = None) -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def head_revision() -> str:
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(_alembic_config()).get_current_head()
    assert head is not None
    return head


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as connection:
        if not inspect(connection).has_table("alembic_version"):
            return None
        revision = connection.execute(text("SELECT version_num FROM alembic_version")).scalar()
        connection.rollback()
    return None if revision is None else str(revision)


def migrate(engine: Engine) -> None:
    """Bring the schema up to date; safe when several processes open the same new store at once."""
    try:
        current = current_revision(engine)
    except OperationalError as error:
        raise StoreError(f"cannot open the database {describe_url(engine.url)}: {error.orig}") from None
    if current is not None and current == schema_head():
        return
    from alembic import command
    from alembic.script import ScriptDirectory

    head = head_revision()
    known = {script.revision for script in ScriptDirectory.from_config(_alembic_config()).walk_revisions()}
    if current is not None and current not in known:
        raise StoreError(
            f"the database {describe_url(engine.url)} has schema revision {current}, newer than this faceid knows; "
            "upgrade faceid"
        )
    log.info("migrating the store schema from %s to %s", current or "empty", head)
    with migration_connection(engine) as connection:
        try:
            command.upgrade(_alembic_config(connection), "head")
        except OperationalError as error:
            raise StoreError(f"cannot create the store's tables: {error.orig}") from None


@contextlib.contextmanager
def migration_connection(engine: Engine) -> Iterator[Connection]:
    """A connection in a write transaction for Alembic: on PostgreSQL holding the migration lock; on SQLite
    with foreign keys off, so that a migration may rebuild a table (drop and rename) without the drop
    cascading to the rows that point at it (so a migration that deletes rows deletes what points at them itself).
    The links are checked before the transaction commits."""
    with engine.connect().execution_options(**{WRITE_OPTION: True}) as connection:
        sqlite = connection.dialect.name == "sqlite"
        if sqlite:  # only outside a transaction does this pragma take effect
            connection.connection.driver_connection.execute("PRAGMA foreign_keys=OFF")  # type: ignore[union-attr]
        try:
            with connection.begin():
                if not sqlite:
                    connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
                yield connection
                if sqlite:
                    broken = connection.exec_driver_sql("PRAGMA foreign_key_check").all()
                    if broken:
                        raise StoreError(f"a migration left {len(broken)} row(s) pointing at nothing: {broken[:5]}")
        finally:
            if sqlite:
                connection.connection.driver_connection.execute("PRAGMA foreign_keys=ON")  # type: ignore[union-attr]


class Database:
    """A database's engine (a connection pool) and its schema, migrated by :func:`open_database`.

    The store, :class:`faceid.store.accounts.Accounts` and :class:`faceid.store.audit.AuditLog` all work on one;
    nothing outside ``faceid.store`` reaches its tables (tests/store/test_boundaries.py checks it).
    """

    def __init__(self, url: URL) -> None:
        self.url = url
        self.engine: Engine = create_store_engine(url)
        self.backend: str = self.engine.dialect.name

    def __repr__(self) -> str:
        return f"Database({describe_url(self.url)!r})"

    def __enter__(self) -> Database:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.dispose()

    def migrate(self) -> None:
        """Bring the schema up to date (one query when it already is)."""
        migrate(self.engine)

    def dispose(self) -> None:
        """Close the pooled connections. The database stays usable: the next use opens new ones, so one
        owner closing does not break the others sharing it."""
        self.engine.dispose()

    @contextlib.contextmanager
    def write(self) -> Iterator[Connection]:
        """A write transaction (SQLite: the write lock taken up front), committed unless the block raises."""
        with self.engine.connect().execution_options(**{WRITE_OPTION: True}) as connection, connection.begin():
            yield connection

    @contextlib.contextmanager
    def read(self) -> Iterator[Connection]:
        """A read transaction (rolled back at the end: it changes nothing)."""
        with self.engine.connect() as connection, connection.begin():
            yield connection

    def ping(self) -> bool:
        """Whether the database answers."""
        try:
            with self.engine.connect() as connection:
                connection.execute(text("SELECT 1"))
        except Exception as error:  # any failure means "not reachable" to a health check
            log.debug("database ping failed: %s", error)
            return False
        return True

    def notify(self, channel: str, payload: str) -> None:
        """Send ``payload`` to every process listening on ``channel`` (PostgreSQL's NOTIFY; nothing on SQLite,
        whose processes poll)."""
        if self.backend != "postgresql":
            return
        with self.write() as connection:
            connection.execute(text("SELECT pg_notify(:channel, :payload)"), {"channel": channel, "payload": payload})

    @contextlib.contextmanager
    def listen(self, channel: str) -> Iterator[Callable[[float], Iterator[str]]]:
        """LISTEN on ``channel`` (PostgreSQL) for the block on a connection of its own; yields ``receive``:
        ``receive(timeout)`` gives the payloads that arrive until ``timeout`` seconds pass without one."""
        if self.backend != "postgresql":
            raise StoreError(f"{describe_url(self.url)}: only PostgreSQL has notifications")
        import psycopg

        if not channel.isidentifier():
            raise ValueError(f"not a channel name: {channel!r}")
        dsn = self.url.set(drivername="postgresql").render_as_string(hide_password=False)
        with psycopg.connect(dsn, autocommit=True) as connection:
            connection.execute(f"LISTEN {channel}")

            def receive(timeout: float) -> Iterator[str]:
                for note in connection.notifies(timeout=timeout):
                    yield note.payload

            yield receive


# One Database per URL in a process, for as long as something uses it; the process id is part of the key so
# that a forked child never shares its parent's pooled connections.
_databases: weakref.WeakValueDictionary[tuple[int, str], Database] = weakref.WeakValueDictionary()
_databases_lock = threading.Lock()


def open_database(url: URL | str) -> Database:
    """The :class:`Database` at ``url`` (a URL as :func:`faceid.store.config.resolve_database_url` makes, or
    text it understands: ``postgresql://...``, ``sqlite:///PATH`` or a SQLite file's path), shared with everything
    else in this process that opened the same URL, its schema migrated."""
    if isinstance(url, str):
        if not url:
            raise BadInputError("an empty database URL")
        url = resolve_database_url(url, Path.cwd())
    key = (os.getpid(), url.render_as_string(hide_password=False))
    with _databases_lock:
        database = _databases.get(key)
        if database is None:
            database = Database(url)
            _databases[key] = database
    # Every open checks (one query when up to date), as a store's open always did: another process may
    # have migrated or replaced the database since this one first opened it.
    database.migrate()
    return database
