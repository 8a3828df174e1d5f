"""The durable store: SQLite by default, PostgreSQL for teams, migrated by Alembic."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

try:  # advisory file locks; absent on Windows, where one process per store is the rule
    import fcntl
except ImportError:  # pragma: no cover
    fcntl = None  # type: ignore[assignment]

from sqlalchemy import Connection, Engine
from sqlalchemy.orm import Session

from tutelage.settings import default_db_url
from tutelage.store import (  # noqa: F401  (registers their tables)
    dataset_tables,
    evaluation_tables,
    quality_tables,
    staging_tables,
    workspace_tables,
)
from tutelage.store.engine import READ_ONLY, StoreError, create_store_engine, normalise_url
from tutelage.store.migrate import current_revision, head_revision, upgrade

__all__ = ["Store", "StoreError", "core", "normalise_url", "open_store"]


def core(session: Session) -> Connection:
    """Return the connection of `session`'s transaction, to run a Core statement on.

    For the statements of the expert's hot paths: `Session.execute` spends about 20 us of
    ORM bookkeeping on each (as long as SQLite takes to run it), `Connection.execute` half
    that. Only for statements that load no ORM objects and need no pending ORM change
    flushed first (this skips the session's autoflush).
    """
    return session.connection()


class WriterLock:
    """Taken around every transaction; the default lets any number run at once."""

    def acquire(self, blocking: bool = True) -> bool:
        return True

    def release(self) -> None:
        pass


NO_WRITER_LOCK = WriterLock()


class SqliteWriterLock(WriterLock):
    """One writer at a time across the threads and processes using one SQLite file.

    SQLite allows one writer and makes the others retry on a sleeping busy handler, which
    adds tens of milliseconds under load. Waiting in turn on a lock instead costs
    microseconds: a thread lock within the process, then an advisory file lock (flock)
    beside the database between processes (several server workers, a CLI import while the
    server runs). A plain Lock, not an RLock: web frameworks may enter and leave a
    request's session in different threads, and only a Lock may be released by another.
    """

    def __init__(self, path: Path | None) -> None:
        self._threads = threading.Lock()
        self._path = path
        self._file: int | None = None
        self._pid = 0

    def acquire(self, blocking: bool = True) -> bool:
        if not self._threads.acquire(blocking):
            return False
        if self._path is None or fcntl is None:
            return True
        try:
            # A forked child shares its parent's open file and so its flock: open our own.
            if self._file is None or self._pid != os.getpid():
                self._file = os.open(self._path, os.O_RDWR | os.O_CREAT, 0o600)
                self._pid = os.getpid()
            fcntl.flock(self._file, fcntl.LOCK_EX if blocking else fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._threads.release()
            return False
        except BaseException:
            self._threads.release()
            raise
        return True

    def release(self) -> None:
        try:
            if self._file is not None and fcntl is not None:
                fcntl.flock(self._file, fcntl.LOCK_UN)
        finally:
            self._threads.release()


@dataclass(frozen=True)
class Store:
    """An open store: its URL and engine. Sessions come from `session()`."""

    url: str
    engine: Engine
    # SQLite has one writer at a time. Threads and processes queue on a lock rather
    # than on SQLite's busy handler, whose sleep-and-retry adds tens of milliseconds.
    _writer: WriterLock = field(default_factory=lambda: NO_WRITER_LOCK)

    @contextmanager
    def session(self) -> Iterator[Session]:
        """Yield a session in one transaction: committed on success, rolled back on error."""
        self._writer.acquire()
        with self._session_holding_writer() as session:
            yield session

    @contextmanager
    def read_session(self) -> Iterator[Session]:
        """Yield a session that only reads, from one snapshot, and is rolled back.

        On SQLite it takes no writer lock (a deferred transaction in WAL mode), so a long
        read such as an export of a large project never holds up the experts' submits,
        and a write in it fails (``query_only``). Elsewhere it is an ordinary
        transaction, rolled back.
        """
        engine = self.engine.execution_options(**{READ_ONLY: True})
        with Session(engine, autoflush=False, expire_on_commit=False) as session:
            session.begin()
            connection = session.connection()
            try:
                if self.is_local:
                    connection.exec_driver_sql("PRAGMA query_only = 1")  # writes fail
                    # the snapshot starts here, not at the caller's first read
                    connection.exec_driver_sql("SELECT 1 FROM sqlite_master LIMIT 1")
                yield session
            finally:
                if self.is_local:  # back in the pool, the connection must write again
                    connection.exec_driver_sql("PRAGMA query_only = 0")
                session.rollback()

    def session_if_free(self) -> AbstractContextManager[Session] | None:
        """Return `session()` if it can start at once, or None while another transaction
        holds SQLite's writer: for callers that must not wait, such as an event loop."""
        if not self._writer.acquire(blocking=False):
            return None
        return self._session_holding_writer()

    @contextmanager
    def _session_holding_writer(self) -> Iterator[Session]:
        try:
            with Session(self.engine, expire_on_commit=False) as session, session.begin():
                yield session
        finally:
            self._writer.release()

    @property
    def is_local(self) -> bool:
        """True for SQLite: statements run in this process, in microseconds, with no
        network wait, so a caller may run a short transaction without a thread."""
        return self.engine.dialect.name == "sqlite"

    @property
    def concurrent_transactions(self) -> int:
        """How many transactions can make progress at once: 1 for SQLite, the pool's size."""
        if self.engine.dialect.name == "sqlite":
            return 1
        pool = self.engine.pool
        size = getattr(pool, "size", lambda: 5)() + max(getattr(pool, "_max_overflow", 0), 0)
        return int(size)

    def close(self) -> None:
        self.engine.dispose()


def open_store(url: str | None = None, *, migrate: bool = True) -> Store:
    """Open the store at `url` (default: ``TUTELAGE_DB`` or ``~/.tutelage/tutelage.db``).

    An empty database is brought to the current schema (when `migrate`); a database at an
    older revision is left alone and refused, because migrating a shared team database
    is a decision for `tutelage db upgrade`, not a side effect of another command.
    """
    engine = create_store_engine(url or default_db_url())
    shown = engine.url.render_as_string(hide_password=True)
    try:
        revision = current_revision(engine)
    except Exception as exc:
        engine.dispose()
        raise StoreError(f"cannot open the store at {shown}: {exc}") from exc
    head = head_revision()
    if revision is None and migrate:
        upgrade(engine)
    elif revision != head:
        engine.dispose()
        raise StoreError(
            f"the store at {shown} is at schema revision {revision}, this version of "
            f"tutelage needs {head}: run `tutelage db upgrade --db URL`"
        )
    writer: WriterLock = NO_WRITER_LOCK
    if engine.dialect.name == "sqlite":
        database = engine.url.database
        on_disk = database and database != ":memory:" and not database.startswith("file::memory:")
        writer = SqliteWriterLock(Path(f"{database}.writer-lock") if on_disk else None)
    return Store(url=shown, engine=engine, _writer=writer)
