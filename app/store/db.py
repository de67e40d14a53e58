"""Opening the evaluation log safely: checks first, then SQLite settings, then migrations.

Order matters. Everything that can refuse (a read-only location, a file that is not a SQLite database, a
corrupt database, one written by a newer version) is checked before anything is written, so a refused
file is left exactly as it was and a read-only location is reported before a batch loads a model.

SQLite settings, and why:
- WAL journal: readers never block the writer, so the desktop app can browse while a batch writes.
- ``synchronous=NORMAL``: in WAL mode a commit is durable against a killed process (the WAL is in the OS
  cache); only a power cut can lose the last commits, never corrupt the file. FULL costs an fsync per
  run for no gain against the failure that matters here (SIGKILL, a crash).
- ``foreign_keys=ON``: SQLite leaves them off by default.
- ``busy_timeout``: a writer waits for another process's write lock instead of failing at once; writes
  start with ``BEGIN IMMEDIATE`` so that wait happens up front (a deferred transaction that upgrades a
  read lock to a write lock can fail with SQLITE_BUSY without waiting at all).
"""

from __future__ import annotations

import os
import socket
import sqlite3
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy import Engine, create_engine, event, exc, update
from sqlalchemy.engine import Connection
from sqlalchemy.pool import QueuePool

from app.core.errors import StoreError
from app.core.privatefile import private_dir
from app.store.models import Base, Run

SQLITE_HEADER = b"SQLite format 3\x00"
DEFAULT_TIMEOUT_S = 10.0
"""How long a write waits for another process's lock: long enough for any single write (a migration of
a large log takes longer, but the second opener waits inside the same lock), short enough to report."""


@dataclass(frozen=True)
class OpenOptions:
    timeout_s: float = DEFAULT_TIMEOUT_S
    """Seconds to wait for a lock held by another process before reporting it."""
    check_integrity: bool = True
    """Run ``PRAGMA quick_check`` on open (a few hundred ms on a 100,000-run log)."""
    create: bool = True
    """Create a new log where there is none; False: a missing log is an error and nothing is created (a
    command that needs runs already logged: ``judge``, ``log import-ratings``)."""

    def __post_init__(self) -> None:
        if self.timeout_s < 0:
            raise ValueError(f"timeout_s must be >= 0, not {self.timeout_s}")


def _alembic_config() -> Config:
    cfg = Config()
    # A package path (not a file path) so migrations are found in an installed or frozen package.
    cfg.set_main_option("script_location", str(resources.files("app.store") / "migrations"))
    return cfg


def head_revision() -> str:
    head = ScriptDirectory.from_config(_alembic_config()).get_current_head()
    assert head is not None
    return head


def check_location(path: Path) -> None:
    """Refuse a location the log cannot be written in, before any work starts."""
    if path.exists() and not path.is_file():
        raise StoreError(f"evaluation log {path} is not a file")
    parent = path.parent
    existing = parent
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise StoreError(f"evaluation log directory {existing} is not a directory")
    # A WAL database needs its directory writable (for -wal and -shm) as well as the file itself.
    if not os.access(existing, os.W_OK | os.X_OK):
        raise StoreError(
            f"the evaluation log location {existing} is read-only; choose another database location "
            "in the settings (or --db)"
        )
    if path.exists() and not os.access(path, os.R_OK | os.W_OK):
        raise StoreError(f"the evaluation log {path} is read-only (or unreadable) for this user")


def check_existing(path: Path, timeout_s: float, integrity: bool) -> None:
    """Refuse a file that is not a healthy SQLite database, without writing to it."""
    if not path.exists() or path.stat().st_size == 0:
        return
    with open(path, "rb") as fh:
        header = fh.read(len(SQLITE_HEADER))
    if header != SQLITE_HEADER:
        raise StoreError(
            f"{path} is not a SQLite database (it may be corrupt or another kind of file); it was left "
            "untouched. Move it aside or choose another database location."
        )
    try:
        # Read-only: a check must never create, convert or write anything (nor need write access).
        uri = _uri(path, read_only=True, immutable=not _writable(path))
        con = sqlite3.connect(uri, timeout=timeout_s, isolation_level=None, uri=True)
        try:
            tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            if integrity:
                problems = [r[0] for r in con.execute("PRAGMA quick_check(5)")]
                if problems != ["ok"]:
                    raise StoreError(
                        f"the evaluation log {path} is corrupt ({'; '.join(problems)}); it was left "
                        "untouched. Restore a backup, or move it aside to start a new log."
                    )
        finally:
            con.close()
    except sqlite3.Error as e:
        raise StoreError(f"{translate(path, e)}; it was left untouched") from e
    if tables and "alembic_version" not in tables:
        raise StoreError(
            f"{path} is a SQLite database but not an Asclepius evaluation log (tables: "
            f"{', '.join(sorted(tables)[:5])}); it was left untouched"
        )


def _writable(path: Path) -> bool:
    """Whether SQLite can make the -shm/-wal files a WAL database needs even to be read."""
    return os.access(path, os.W_OK) and os.access(path.parent, os.W_OK | os.X_OK)


def _uri(path: Path, *, read_only: bool, immutable: bool = False) -> str:
    query = "mode=ro" + ("&immutable=1" if immutable else "") if read_only else "mode=rwc"
    return f"file:{urllib.parse.quote(str(path))}?{query}"


def _create_private_file(path: Path) -> None:
    try:
        # Directories we create are private; an existing one (the user's home, say) keeps its mode.
        if not path.parent.exists():
            private_dir(path.parent)  # every missing parent 0700, not only the last
        fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
        os.close(fd)
        # SQLite gives the -wal and -shm files the main file's permissions.
        os.chmod(path, 0o600)
    except OSError as e:
        raise StoreError(f"cannot create the evaluation log {path}: {e.strerror}") from e


def make_engine(path: Path, timeout_s: float, *, read_only: bool = False, immutable: bool = False) -> Engine:
    # A URI even for read-write, so an odd file name (spaces, "?", "#") is taken literally.
    url = f"sqlite:///{_uri(path, read_only=read_only, immutable=immutable)}&uri=true"
    engine = create_engine(
        url,
        # Autocommit at the driver so that the "begin" hook below decides how transactions start.
        connect_args={"timeout": timeout_s, "isolation_level": None, "check_same_thread": False},
        poolclass=QueuePool,
        pool_size=2,
        max_overflow=4,
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_con: sqlite3.Connection, _record: Any) -> None:
        dbapi_con.execute(f"PRAGMA busy_timeout = {int(timeout_s * 1000)}")
        dbapi_con.execute("PRAGMA foreign_keys = ON")
        dbapi_con.execute("PRAGMA synchronous = NORMAL")

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        immediate = conn.get_execution_options().get("sqlite_immediate", False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine


def writer(engine: Engine) -> Engine:
    """The same engine (and pool) whose transactions take the write lock at BEGIN."""
    return engine.execution_options(sqlite_immediate=True)


def translate(path: Path, e: BaseException) -> StoreError:
    """One clear StoreError (exit 6) for an error SQLite raised, wrapped by SQLAlchemy or not.

    Only the driver's own message is quoted, never SQLAlchemy's, which carries the statement.
    """
    err = getattr(e, "orig", None) or e
    msg = str(err)
    code = getattr(err, "sqlite_errorcode", None)
    # Python reports SQLite's extended result codes (SQLITE_IOERR_WRITE is 778): the primary code is the low byte.
    primary = code & 0xFF if isinstance(code, int) else None
    if primary == sqlite3.SQLITE_FULL or "database or disk is full" in msg:
        return StoreError(
            f"the disk holding the evaluation log {path} is full; nothing of the failed step was saved "
            "(earlier runs are safe). Free some space and try again"
        )
    if (primary == sqlite3.SQLITE_IOERR or "disk I/O error" in msg) and _disk_full(path):
        # With 0 bytes free SQLite often cannot even make its -shm/-wal files and says only "disk I/O error".
        return StoreError(
            f"the disk holding the evaluation log {path} is full (SQLite reported: {msg}); free some space"
        )
    for words, says in _BY_MESSAGE:
        if any(w in msg for w in words):
            return StoreError(says.format(path=path, msg=msg))
    return StoreError(f"evaluation log error on {path}: {msg}")


_BY_MESSAGE: tuple[tuple[tuple[str, ...], str], ...] = (
    (
        ("locked", "busy"),
        "the evaluation log {path} is locked by another process and stayed locked past the timeout; try again "
        "when the other program (a batch, the desktop app) has finished",
    ),
    (
        ("malformed", "not a database"),
        "the evaluation log {path} is corrupt ({msg}). Restore a backup, or move it aside to start a new log",
    ),
    (
        ("no such table", "no such column"),
        "the evaluation log {path} is damaged, or not an Asclepius log ({msg}). Restore a backup, or move it "
        "aside to start a new log",
    ),
    (("readonly", "read-only"), "the evaluation log {path} is read-only ({msg})"),
)
"""What SQLite's own message says, and what the user is told (checked in order, after a full disk)."""


def _disk_full(path: Path) -> bool:
    """SQLite sometimes says "disk I/O error" when a write hit ENOSPC; ask the file system."""
    try:
        st = os.statvfs(path.parent)
    except OSError:
        return False
    return st.f_bavail * st.f_frsize < 1 << 20


@contextmanager
def translated(path: Path) -> Iterator[None]:
    """Turn SQLite's errors into one clear StoreError (exit code 6): SQLAlchemy's, and the driver's own from
    code on the raw connection (WAL switch, bulk import), which SQLAlchemy never sees."""
    try:
        yield
    except (exc.DBAPIError, sqlite3.Error) as e:
        raise translate(path, e) from e


def current_revision(conn: Connection) -> str | None:
    return MigrationContext.configure(conn).get_current_revision()


def set_wal(engine: Engine, path: Path) -> None:
    """WAL mode is a property of the file; it cannot be switched inside a transaction."""
    raw = engine.raw_connection()
    try:
        mode = raw.driver_connection.execute("PRAGMA journal_mode = WAL").fetchone()[0]
    finally:
        raw.close()
    if str(mode).lower() != "wal":
        raise StoreError(f"the evaluation log {path} could not be switched to WAL mode (got {mode!r})")


def migrate(engine: Engine, path: Path, revision: str = "head") -> None:
    """Bring the schema to ``revision`` inside one write-locked transaction."""
    if revision == "head":
        # The common case (already at head) takes no write lock, so opening never waits on a batch.
        with engine.connect() as conn:
            if current_revision(conn) == head_revision():
                return
    _run_alembic(engine, command.upgrade, revision)


def downgrade(engine: Engine, revision: str) -> None:
    """Used by tests and by a documented manual rollback; the app itself only upgrades."""
    _run_alembic(engine, command.downgrade, revision)


def _run_alembic(engine: Engine, step: Any, revision: str) -> None:
    # Batch migrations rebuild a table (copy, drop, rename). With foreign keys on, dropping the old
    # "runs" would cascade-delete every rating, so they are off for the migration, as SQLite's own
    # ALTER TABLE procedure says, and checked before the commit. The pragma only works outside a
    # transaction, hence the raw driver call before BEGIN.
    with writer(engine).connect() as conn:
        raw = conn.connection.driver_connection
        assert raw is not None
        raw.execute("PRAGMA foreign_keys = OFF")
        try:
            with conn.begin():
                cfg = _alembic_config()
                cfg.attributes["connection"] = conn
                step(cfg, revision)
                broken = conn.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
                if broken:
                    raise StoreError(f"migration to {revision} would break {len(broken)} references; rolled back")
        finally:
            raw.execute("PRAGMA foreign_keys = ON")


def check_not_newer(engine: Engine, path: Path) -> None:
    with engine.connect() as conn:
        current = current_revision(conn)
    if current is None:
        return
    try:
        ScriptDirectory.from_config(_alembic_config()).get_revision(current)
    except CommandError:
        raise StoreError(
            f"the evaluation log {path} was written by a newer version of Asclepius Desk (schema "
            f"revision {current}); update the app to open it. It was left untouched."
        ) from None


def pid_alive(pid: int) -> bool:
    """Whether a process with this id exists on this machine (one we may not signal counts as alive)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def mark_interrupted(engine: Engine) -> int:
    """Runs left ``started`` by a process of this host that is no longer alive become ``interrupted``.

    A run whose process still lives (a batch running beside the app) is left alone. Runs started on
    another host (a log on a shared drive) cannot be checked and are left ``started``.
    """
    host = socket.gethostname()
    with engine.connect() as conn:
        rows = conn.execute(
            Run.__table__.select().with_only_columns(Run.id, Run.pid).where(Run.status == "started", Run.host == host)
        ).all()
    dead = [r.id for r in rows if r.pid is None or (r.pid != os.getpid() and not pid_alive(r.pid))]
    if not dead:
        return 0
    with writer(engine).begin() as conn:
        conn.execute(
            update(Run)
            .where(Run.id.in_(dead), Run.status == "started")
            .values(status="interrupted", error="the process running it ended before it finished")
        )
    return len(dead)


def check_exists(path: Path) -> None:
    """Refuse a missing log (a mistyped ``--db``) before anything is created."""
    if not path.exists():
        raise StoreError(f"no evaluation log at {path} (nothing was created); check --db or the settings")
    if not path.is_file():
        raise StoreError(f"evaluation log {path} is not a file")


def check_tables(engine: Engine, path: Path) -> None:
    """A log at the current revision holds every table of the schema: refuse one that lost a table up front,
    rather than fail with "no such table" half-way through a command."""
    with translated(path), engine.connect() as conn:
        tables = {r[0] for r in conn.exec_driver_sql("SELECT name FROM sqlite_master WHERE type = 'table'")}
    missing = sorted(set(Base.metadata.tables) - tables)
    if missing:
        raise StoreError(
            f"the evaluation log {path} is damaged, or not an Asclepius log (missing tables: {', '.join(missing)}); "
            "it was left untouched. Restore a backup, or move it aside to start a new log"
        )


def open_engine_readonly(path: Path, options: OpenOptions) -> Engine:
    """Open an EXISTING log for reading only: nothing is created, migrated or written.

    For commands that only read (export, stats): a mistyped ``--db`` is an error, not a new empty log, and
    a log the user may not write (a colleague's, on read-only media) still opens.
    """
    path = Path(path).expanduser().absolute()
    check_exists(path)
    if not os.access(path, os.R_OK):
        raise StoreError(f"the evaluation log {path} is not readable by this user")
    check_existing(path, options.timeout_s, options.check_integrity)
    # A WAL log needs its -shm file even to read; where we may not create it (read-only file or directory),
    # SQLite can read the file as immutable, since then no process of this user can be changing it.
    engine = make_engine(path, options.timeout_s, read_only=True, immutable=not _writable(path))
    try:
        with translated(path), engine.connect() as conn:
            current = current_revision(conn)
        if current is None:
            raise StoreError(f"{path} is empty or not an Asclepius evaluation log")
        check_not_newer(engine, path)
        if current != head_revision():
            raise StoreError(
                f"the evaluation log {path} uses an older schema ({current}); open it once with a command that "
                "writes (the desktop app, ask) to upgrade it, then try again"
            )
        check_tables(engine, path)
    except BaseException:
        engine.dispose()
        raise
    return engine


def open_engine(path: Path, options: OpenOptions) -> Engine:
    path = Path(path).expanduser().absolute()
    if not options.create:
        check_exists(path)
    check_location(path)
    check_existing(path, options.timeout_s, options.check_integrity)
    if not path.exists():
        # Left in place if the set-up below fails (a full disk): another process may be opening the same new
        # log at this moment, and an empty file reads as a new log next time.
        _create_private_file(path)
    engine = make_engine(path, options.timeout_s)
    try:
        with translated(path):
            set_wal(engine, path)
            check_not_newer(engine, path)
            migrate(engine, path)
            check_tables(engine, path)
            mark_interrupted(engine)
    except BaseException:
        engine.dispose()
        raise
    return engine
