"""Real infrastructure for the storage and batch tests: an S3-compatible server (moto's server mode, a
subprocess on 127.0.0.1) and a Dask cluster (``distributed.LocalCluster``, two worker processes), each
started once per session and only when a test asks for it. Nothing is mocked in-process: the code under test
talks HTTP to the server and pickles tasks to the workers.

``s3_env`` points the backend's own environment at the server (``AWS_ENDPOINT_URL_S3`` and dummy keys, as a
user's environment would), so the code under test gets no endpoint or credential through its arguments.
"""

from __future__ import annotations

import os
import select
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

#: the backend environment a user would have (moto accepts any keys)
S3_KEYS = {
    "AWS_ACCESS_KEY_ID": "nkreplay-test-key",
    "AWS_SECRET_ACCESS_KEY": "nkreplay-test-secret",
    "AWS_DEFAULT_REGION": "us-east-1",
}
_START_TIMEOUT = 90.0  # seconds: moto's import is slow on a busy machine
#: endpoint -> the server's log (one line per HTTP request it served)
SERVER_LOGS: dict[str, Path] = {}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def s3_environment(endpoint: str) -> dict[str, str]:
    return dict(S3_KEYS, AWS_ENDPOINT_URL_S3=endpoint)


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: Any) -> Iterator[str]:
    """The endpoint URL of a moto S3 server running as a subprocess for the whole session."""
    pytest.importorskip("moto.server", reason="moto[server] is in the test extra: pip install -e '.[test]'")
    pytest.importorskip("s3fs", reason="s3fs is in the s3 and test extras: pip install -e '.[test]'")
    port = free_port()
    log = tmp_path_factory.mktemp("moto") / "server.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    endpoint = f"http://127.0.0.1:{port}"
    SERVER_LOGS[endpoint] = Path(log)
    try:
        deadline = time.monotonic() + _START_TIMEOUT
        while True:
            try:
                urllib.request.urlopen(endpoint + "/", timeout=5).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"moto server did not start: {Path(log).read_text()[-2000:]}") from None
                time.sleep(0.2)
        yield endpoint
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture
def s3_env(s3_server: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """The S3 environment set for this test (undone after it); fsspec's cached S3 clients are dropped, so
    the code under test builds its own from this environment."""
    import s3fs

    for key, value in s3_environment(s3_server).items():
        monkeypatch.setenv(key, value)
    s3fs.S3FileSystem.clear_instance_cache()
    return s3_server


@pytest.fixture
def bucket(s3_env: str) -> str:
    """A new empty bucket on the test server: ``s3://NAME``."""
    import s3fs

    name = f"nkreplay-{uuid.uuid4().hex[:12]}"
    s3fs.S3FileSystem().mkdir(name)
    return f"s3://{name}"


_CLUSTER_MAIN = """
import sys

import dask
from distributed import LocalCluster

from replay.regression._dask import DASK_CONFIG

with dask.config.set(DASK_CONFIG):
    cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address="127.0.0.1:0")
print(cluster.scheduler_address, flush=True)
sys.stdin.read()  # until the test session closes it
cluster.close(timeout=30)
"""


@dataclass(frozen=True)
class Cluster:
    """A running LocalCluster: its scheduler's address (``tcp://...``) and the pid of the process that holds it
    (the scheduler and the nannies; each worker process is its child)."""

    address: str
    pid: int

    def ready(self, workers: int = 2, timeout: float = 180.0) -> str:
        """The ``dask://`` address, once ``workers`` workers are up: a test before this one may have had one
        killed, and its nanny's restart takes a while on a busy machine."""
        from distributed import Client

        with Client(self.address, timeout=timeout) as client:
            client.wait_for_workers(workers, timeout=timeout)
        return self.address.replace("tcp://", "dask://")

    def is_worker(self, pid: int) -> bool:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            return False
        return int(stat.rsplit(")", 1)[1].split()[1]) == self.pid


@pytest.fixture(scope="session")
def dask_cluster(s3_server: str, tmp_path_factory: Any) -> Iterator[Cluster]:
    """A ``distributed.LocalCluster`` of two worker processes (one thread each), run by a subprocess so that
    its scheduler's threads stay out of the test process, with the S3 server in its environment; configured as
    ``run-all --executor dask`` configures its own (a task whose worker is lost twice fails with
    ``KilledWorker``; a worker holds only the task it runs)."""
    pytest.importorskip("distributed", reason="dask[distributed] is in the dask and test extras")
    log = tmp_path_factory.mktemp("dask") / "cluster.log"
    with open(log, "wb") as err:
        proc = subprocess.Popen(
            [sys.executable, "-c", _CLUSTER_MAIN],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=err,
            env=dict(os.environ, **s3_environment(s3_server)),
        )
    assert proc.stdin is not None and proc.stdout is not None
    try:
        ready, _, _ = select.select([proc.stdout], [], [], _START_TIMEOUT)
        address = proc.stdout.readline().decode().strip() if ready else ""
        if not address.startswith("tcp://"):
            raise RuntimeError(f"the Dask cluster did not start: {Path(log).read_text()[-3000:]}")
        yield Cluster(address, proc.pid)
    finally:
        proc.stdin.close()
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
