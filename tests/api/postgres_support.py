"""A throwaway PostgreSQL cluster from Debian's server binaries, for the flow tests.

initdb refuses to run as root, so as root the cluster is created and run as the
`postgres` system user (runuser); otherwise as the current user.  Trust authentication on
127.0.0.1 and a free port; fsync off (the data is thrown away).
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

PG_BIN = Path(os.environ.get("ICAO_PKI_PG_BIN", "/usr/lib/postgresql/15/bin"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def binaries_missing() -> str | None:
    for tool in ("initdb", "pg_ctl", "postgres"):
        if not (PG_BIN / tool).exists():
            return f"PostgreSQL server binary {PG_BIN / tool} not found (apt-get install postgresql; make test installs it)"
    if os.geteuid() == 0 and shutil.which("runuser") is None:
        return "running as root without runuser: cannot start PostgreSQL as a non-root user"
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            return "running as root and there is no 'postgres' user to run the cluster"
    return None


@dataclass
class PgCluster:
    port: int
    datadir: Path

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def create_database(self, template: str | None = None) -> str:
        """A new empty database, or a copy of `template` (which must have no open connection)."""
        import psycopg

        name = f"t_{uuid.uuid4().hex[:12]}"
        suffix = f' TEMPLATE "{template}"' if template else ""
        with psycopg.connect(f"host=127.0.0.1 port={self.port} user=postgres dbname=postgres", autocommit=True) as conn:
            for attempt in range(50):
                try:
                    conn.execute(f'CREATE DATABASE "{name}"{suffix}')
                    break
                except psycopg.errors.ObjectInUse:
                    # a closed client's backend may still be exiting: the template is briefly "in use"
                    if attempt == 49:
                        raise
                    time.sleep(0.1)
        return self.url(name)


def _as_cluster_user(cmd: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else cmd


@contextmanager
def pg_cluster() -> Iterator[PgCluster]:
    base = Path(tempfile.mkdtemp(prefix="icao-pki-pg-"))
    datadir = base / "data"
    if os.geteuid() == 0:
        pw = pwd.getpwnam("postgres")
        os.chown(base, pw.pw_uid, pw.pw_gid)
    port = _free_port()
    log = base / "server.log"
    try:
        subprocess.run(
            _as_cluster_user([str(PG_BIN / "initdb"), "-D", str(datadir), "-A", "trust", "-U", "postgres",
                              "--no-sync", "-E", "UTF8", "--locale=C"]),
            check=True, capture_output=True,
        )
        subprocess.run(
            _as_cluster_user([str(PG_BIN / "pg_ctl"), "-D", str(datadir), "-l", str(log), "-w", "-t", "60", "-o",
                              f"-p {port} -k {base} -c listen_addresses=127.0.0.1 -c fsync=off "
                              "-c synchronous_commit=off -c full_page_writes=off", "start"]),
            check=True, capture_output=True,
        )
        yield PgCluster(port=port, datadir=datadir)
    finally:
        if datadir.exists():
            subprocess.run(_as_cluster_user([str(PG_BIN / "pg_ctl"), "-D", str(datadir), "-m", "immediate", "stop"]),
                           capture_output=True)
        shutil.rmtree(base, ignore_errors=True)
