"""Worker processes for ingest, each with its own task queue, so each can keep its files open.

`WorkerPool` deals batches round-robin to N spawned processes running
`worker.worker_main`, hands their results back in submission order, and at
`close` has every worker close its Parquet files and confirm. `InProcess` runs
the same worker code in the calling process (workers=0: tests, debugging).
"""

from __future__ import annotations

import multiprocessing
import queue

from mementos.foundation.errors import WorkerDied
from mementos.ingest import worker

POLL_S = 0.2  # how often a wait for results checks that every worker is alive


class InProcess:
    def __init__(self, initargs: tuple):
        worker.init_worker(*initargs, worker_id=0)
        self._done: dict[int, object] = {}

    def submit(self, task) -> None:
        self._done[task.seq] = worker.process(task)

    def result(self, seq: int):
        return self._done.pop(seq)

    def close(self) -> None:
        worker.finish()

    def abort(self) -> None:
        worker.finish(complete=False)


class WorkerPool:
    def __init__(self, workers: int, initargs: tuple, what: str):
        # spawn: forking a process that has DuckDB and Arrow thread pools running is unsafe.
        ctx = multiprocessing.get_context("spawn")
        self.what = what  # for errors: "the default config of 'name'"
        self.workers = workers
        self._results = ctx.Queue()
        self._tasks = [ctx.Queue() for _ in range(workers)]
        self._procs = [ctx.Process(target=worker.worker_main, args=(i, initargs, q, self._results),
                                   name=f"mementos-ingest-{i}", daemon=True)
                       for i, q in enumerate(self._tasks)]
        for p in self._procs:
            p.start()
        self._done: dict[int, object] = {}
        self._closed: set[int] = set()

    def submit(self, task) -> None:
        self._tasks[task.seq % len(self._tasks)].put(task)

    def result(self, seq: int):
        while seq not in self._done:
            self._receive()
        return self._done.pop(seq)

    def close(self) -> None:
        """Every worker closes its files; returns when all have, and their processes ended."""
        for q in self._tasks:
            q.put(None)
        while len(self._closed) < len(self._procs):
            self._receive()
        for p in self._procs:
            p.join()

    def abort(self) -> None:
        """Stop every worker now; their files are incomplete and the caller removes them."""
        for p in self._procs:
            if p.is_alive():
                p.terminate()
        for p in self._procs:
            p.join()

    def _receive(self) -> None:
        try:
            kind, key, value = self._results.get(timeout=POLL_S)
        except queue.Empty:
            dead = [p for i, p in enumerate(self._procs) if not p.is_alive() and i not in self._closed]
            if dead:
                raise WorkerDied(
                    f"a worker process died while ingesting {self.what} (exit code {dead[0].exitcode}: killed, or "
                    f"out of memory); nothing was changed. Retry, with fewer --workers if memory is short") from None
            return
        if kind == "done":
            self._done[key] = value
        elif kind == "closed":
            self._closed.add(key)
        else:
            raise value
