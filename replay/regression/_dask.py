"""run-all on a Dask cluster: ``--executor dask`` (a local cluster of worker processes on this machine) or
``--executor dask://HOST:PORT`` (a running scheduler; ``tls://`` too).

``DaskExecutor.submit`` returns ``concurrent.futures`` futures, so ``run_all``
collects results as they complete, into the same summary and progress as the process pool. Workers receive
the recording locations as given: URLs (``s3://...``) that each worker opens through its own environment's
credentials, or absolute paths that must exist on every worker. The handler file, and nakama-replay itself,
must be installed at the same path on every worker. Each worker thread supervises its own handler process
(``replay.runtime._supervisor``), as the threads of the process pool do.

A worker lost while it runs a task (killed, out of memory, its machine gone) costs only that task: the
scheduler runs it again on another worker, and when the second worker is lost too the task fails with
``KilledWorker`` and run-all reports that recording as ``error`` ("worker failed"). For that the scheduler
needs ``distributed.scheduler.allowed-failures: 1`` (one retry) and ``worker-saturation: 1.0`` (a worker holds
only the task it runs, so a lost worker takes no queued task down with it): the local cluster is started so;
a remote scheduler uses its own configuration (Dask's default allows 3 retries).
"""

from __future__ import annotations

from concurrent.futures import Future
from typing import Any

from recorder.errors import NakamaReplayError

__all__ = ["DASK_CONFIG", "DaskExecutor", "is_dask_spec"]

#: the scheduler settings of the local cluster (and the ones a remote scheduler should have)
DASK_CONFIG = {
    "distributed.scheduler.allowed-failures": 1,
    "distributed.scheduler.worker-saturation": 1.0,
}
_CONNECT_TIMEOUT = "30s"


def is_dask_spec(spec: str) -> bool:
    return spec == "dask" or spec.startswith(("dask://", "dask+tls://"))


class DaskExecutor:
    """``submit(fn, *args)`` on a Dask cluster; ``shutdown()`` closes the client (and the local cluster)."""

    def __init__(self, spec: str, workers: int) -> None:
        try:
            import dask
            from distributed import Client, LocalCluster
        except ImportError:
            raise NakamaReplayError(
                f"--executor {spec}: Dask is not installed (pip install 'nakama-replay[dask]')"
            ) from None
        self.cluster: Any = None
        self.workers = workers
        if spec == "dask":
            with dask.config.set(DASK_CONFIG):
                self.cluster = LocalCluster(
                    n_workers=workers,
                    threads_per_worker=1,
                    processes=True,
                    host="127.0.0.1",
                    dashboard_address="127.0.0.1:0",  # its HTTP server (health, metrics) on a free local port
                )
                self.client = Client(self.cluster)
            self.where = f"dask local cluster, {workers} worker processes"
        else:
            address = ("tls://" if spec.startswith("dask+tls://") else "tcp://") + spec.split("://", 1)[1]
            try:
                self.client = Client(address, timeout=_CONNECT_TIMEOUT)
            except (OSError, TimeoutError) as exc:
                raise NakamaReplayError(f"--executor {spec}: no Dask scheduler answers at {address}: {exc}") from None
            n = len(self.client.scheduler_info().get("workers", {}))
            self.where = f"dask scheduler {address}, {n} workers"
            self.workers = max(n, 1)  # run_all's tasks hold several recordings each on a big sweep (batch_size)

    def submit(self, fn: Any, /, *args: Any) -> Future[Any]:
        """A ``concurrent.futures`` future of ``fn(*args)`` on the cluster. Its result is fetched as soon as
        the task ends and the cluster's copy released, so a worker lost later takes no finished result down
        with it (the scheduler would run that task again)."""
        out: Future[Any] = Future()
        task = self.client.submit(fn, *args, pure=False)

        def fetched(done: Any) -> None:  # Dask calls it on a thread of its own
            try:
                out.set_result(done.result())
            except BaseException as exc:  # the task's, or the cluster's (KilledWorker): the caller's to report
                out.set_exception(exc)
            finally:
                done.release()

        task.add_done_callback(fetched)
        return out

    def shutdown(self, wait: bool = True) -> None:
        try:
            self.client.close()
        finally:
            if self.cluster is not None:
                self.cluster.close()
                self.cluster = None
