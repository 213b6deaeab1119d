"""One thread that makes every model call, batching the requests that wait for it.

Web requests arrive on many server threads at once. Instead of each calling TensorFlow (which would
oversubscribe two cores and share a Keras model between threads), each hands its job to this thread and
waits. While one batch runs, new jobs queue up; the next batch takes all of them and runs each group of
jobs with the same key (the same compiled function and input shapes) as one call. At 1 client a job
runs alone; at 20 clients the 20 waiting jobs cost about one call, not 20 in a row.
"""
from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, Hashable
from concurrent.futures import Future
from typing import Any

log = logging.getLogger("keras_latent")

_STOP = object()


class WorkerStopped(RuntimeError):
    """The worker was closed before (or while) the job could run."""


class BatchingWorker:
    """Runs `run_group(key, items) -> results` (one result per item, in order) on one thread.

    `submit(key, item)` blocks until its result is ready, or raises what `run_group` raised for its group.
    At most `max_batch` items go into one call.
    """

    def __init__(self, run_group: Callable[[Hashable, list], list], max_batch: int = 64,
                 name: str = "keras-latent-model"):
        self._run_group = run_group
        self._max_batch = max_batch
        self._jobs: queue.SimpleQueue = queue.SimpleQueue()
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)
        self._thread.start()

    def submit(self, key: Hashable, item: Any, timeout_s: float | None = 60.0) -> Any:
        if self._closed.is_set():
            raise WorkerStopped("the model worker has stopped")
        future: Future = Future()
        self._jobs.put((key, item, future))
        return future.result(timeout=timeout_s)

    def close(self, timeout_s: float = 10.0) -> None:
        """Finish the jobs already queued, then stop the thread."""
        if not self._closed.is_set():
            self._closed.set()
            self._jobs.put(_STOP)
            self._thread.join(timeout_s)

    def _take_batch(self) -> tuple[list, bool]:
        """Block for one job, then take whatever else is already queued (up to max_batch): (jobs, stop seen)."""
        first = self._jobs.get()
        if first is _STOP:
            return [], True
        jobs = [first]
        while len(jobs) < self._max_batch:
            try:
                job = self._jobs.get_nowait()
            except queue.Empty:
                break
            if job is _STOP:
                return jobs, True
            jobs.append(job)
        return jobs, False

    def _loop(self) -> None:
        stop = False
        while not stop:
            jobs, stop = self._take_batch()
            groups: dict[Hashable, list] = {}
            for key, item, future in jobs:
                groups.setdefault(key, []).append((item, future))
            for key, group in groups.items():
                self._run(key, group)
        while True:  # jobs submitted while closing: refuse them rather than leave their callers waiting
            try:
                job = self._jobs.get_nowait()
            except queue.Empty:
                break
            if job is not _STOP:
                job[2].set_exception(WorkerStopped("the model worker has stopped"))

    def _run(self, key: Hashable, group: list) -> None:
        try:
            results = self._run_group(key, [item for item, _ in group])
        except BaseException as err:  # the callers get the error; the thread keeps serving
            for _, future in group:
                future.set_exception(err)
            return
        for (_, future), result in zip(group, results):
            future.set_result(result)
