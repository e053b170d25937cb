"""One scheduler leader among instances sharing a database.

APScheduler 3 must never run two schedulers on one job store.  On PostgreSQL the leader
holds a session-level ``pg_try_advisory_lock`` on a dedicated connection (released when
the connection or process dies, so a killed leader is replaced); on SQLite — one host —
an exclusive non-blocking ``flock`` on a file next to the database.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, text
from sqlalchemy.engine import make_url

#: advisory lock key: ASCII "SCHED"
SCHEDULER_LOCK_KEY = 0x5343484544


class LeaderLock:
    def __init__(self, engine: Engine, *, key: int = SCHEDULER_LOCK_KEY, lock_file: Path | None = None) -> None:
        self.engine = engine
        self.key = key
        self._conn: Any = None
        self._fd: int | None = None
        url = make_url(str(engine.url))
        self.dialect = url.get_backend_name()
        if self.dialect == "sqlite":
            database = url.database or ":memory:"
            default = Path(database + ".scheduler.lock") if database != ":memory:" else Path("scheduler.lock")
            self.lock_file = lock_file or default

    @property
    def held(self) -> bool:
        return self._conn is not None or self._fd is not None

    def try_acquire(self) -> bool:
        if self.held:
            return True
        if self.dialect == "postgresql":
            conn = self.engine.connect()
            got = bool(conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": self.key}).scalar())
            conn.commit()
            if got:
                self._conn = conn
            else:
                conn.close()
            return got
        fd = os.open(self.lock_file, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        self._fd = fd
        return True

    def release(self) -> None:
        if self._conn is not None:
            try:
                self._conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": self.key})
                self._conn.commit()
            finally:
                self._conn.close()
                self._conn = None
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None
