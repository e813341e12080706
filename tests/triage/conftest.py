"""Test support for the triage tests: a throwaway PostgreSQL cluster, and store targets to run against.

``postgres_cluster()`` starts one cluster per test session with ``initdb`` and ``pg_ctl`` (found on PATH
or under /usr/lib/postgresql/*/bin, the Debian layout), listening on 127.0.0.1 only, trust
authentication, in a temporary folder removed afterwards. PostgreSQL refuses to run as root, so as root the
cluster runs as the ``postgres`` user through ``runuser`` (the Debian package creates that user). When
something is missing the PostgreSQL variant of a test is skipped, saying what is missing.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest


def _pg_bin() -> Path | None:
    found = shutil.which("initdb")
    if found and shutil.which("pg_ctl"):
        return Path(found).resolve().parent
    for d in sorted(
        glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: [int(x) if x.isdigit() else x for x in p.split("/")]
    ):
        if os.access(os.path.join(d, "initdb"), os.X_OK) and os.access(os.path.join(d, "pg_ctl"), os.X_OK):
            return Path(d)
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def why_no_postgres() -> str | None:
    """None when a throwaway cluster can be started here, else the reason it cannot."""
    try:
        import psycopg  # noqa: F401
    except ImportError:
        return "psycopg is not installed (pip install 'nakama-replay[postgres]'; .ci/run does)"
    if _pg_bin() is None:
        return "initdb/pg_ctl not found (apt-get install postgresql; .ci/run does)"
    if os.geteuid() == 0 and (shutil.which("runuser") is None or _user_exists("postgres") is False):
        return "running as root without runuser or a 'postgres' user to run PostgreSQL as"
    return None


def _user_exists(name: str) -> bool:
    import pwd

    try:
        pwd.getpwnam(name)
        return True
    except KeyError:
        return False


class Cluster:
    def __init__(self) -> None:
        bin_dir = _pg_bin()
        assert bin_dir is not None
        self.bin = bin_dir
        self.root = Path(tempfile.mkdtemp(prefix="nkreplay-pg-"))
        self.data = self.root / "data"
        self.port = _free_port()
        self.as_root = os.geteuid() == 0
        if self.as_root:
            os.chmod(self.root, 0o755)
            shutil.chown(self.root, "postgres")
        self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8")
        self._run(
            "pg_ctl",
            "-D",
            str(self.data),
            "-l",
            str(self.root / "log"),
            "-w",
            "-t",
            "120",
            "-o",
            f"-p {self.port} -h 127.0.0.1 -k {self.root} -c fsync=off -c max_connections=40",
            "start",
        )

    def _run(self, tool: str, *args: str) -> None:
        cmd = [str(self.bin / tool), *args]
        if self.as_root:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=180)
        if proc.returncode != 0:
            raise RuntimeError(f"{tool} failed: {proc.stderr.strip() or proc.stdout.strip()}")

    def url(self, db: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{db}"

    def new_database(self) -> str:
        import psycopg

        name = "t_" + uuid.uuid4().hex[:12]
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name}")
        return self.url(name)

    def stop(self) -> None:
        try:
            self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_cluster() -> Iterator[Cluster]:
    reason = why_no_postgres()
    if reason is not None:
        pytest.skip(f"PostgreSQL variant skipped: {reason}")
    cluster = Cluster()
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def store_target(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh, empty crash store: a SQLite file, or a new database in the throwaway cluster."""
    if request.param == "sqlite":
        return str(tmp_path / "triage.sqlite")
    cluster = request.getfixturevalue("postgres_cluster")
    return cluster.new_database()
