"""explorer.worker: one thread runs every job; jobs that queue up while it is busy run as one call per key."""
import threading
import time

import pytest

from keras_latent.explorer.worker import BatchingWorker, WorkerStopped


def wait_until(condition, timeout_s: float = 20.0) -> None:
    """Poll `condition` until it holds (fails the test after `timeout_s`: a hang, not a slow machine)."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.01)


class GatedRecorder:
    """run_group that records each call's (key, items, thread) and holds its first call until `release`."""

    def __init__(self):
        self.calls, self.gate, self.entered = [], threading.Event(), threading.Event()

    def __call__(self, key, items):
        self.calls.append((key, list(items), threading.current_thread().name))
        if len(self.calls) == 1:
            self.entered.set()
            assert self.gate.wait(20)
        if "boom" in items:
            raise ValueError("bad item")
        return [f"{key}:{item}" for item in items]


def submit_in_threads(worker, jobs):
    """Submit each (key, item) from its own thread; returns the threads and a dict filled with results or errors."""
    results = {}

    def run(key, item):
        try:
            results[item] = worker.submit(key, item)
        except Exception as err:
            results[item] = err

    threads = [threading.Thread(target=run, args=job) for job in jobs]
    for t in threads:
        t.start()
    return threads, results


def test_jobs_queued_while_busy_run_as_one_call_per_key():
    recorder = GatedRecorder()
    worker = BatchingWorker(recorder, name="test-worker")
    try:
        first, first_result = submit_in_threads(worker, [("a", "x0")])
        assert recorder.entered.wait(20)  # the worker is inside its first call
        jobs = [("a", f"x{i}") for i in range(1, 5)] + [("b", "y1"), ("b", "y2")]
        threads, results = submit_in_threads(worker, jobs)
        wait_until(lambda: worker._jobs.qsize() == len(jobs))
        recorder.gate.set()
        for t in first + threads:
            t.join(20)
    finally:
        worker.close()
    assert first_result == {"x0": "a:x0"}
    assert results == {item: f"{key}:{item}" for key, item in jobs}  # every caller got its own result
    assert [(key, sorted(items)) for key, items, _ in recorder.calls] == [
        ("a", ["x0"]), ("a", ["x1", "x2", "x3", "x4"]), ("b", ["y1", "y2"])]
    assert {thread for _, _, thread in recorder.calls} == {"test-worker"}


def test_an_error_reaches_every_caller_of_its_group_and_the_worker_keeps_serving():
    recorder = GatedRecorder()
    recorder.gate.set()
    worker = BatchingWorker(recorder)
    try:
        with pytest.raises(ValueError, match="bad item"):
            worker.submit("k", "boom")
        assert worker.submit("k", "fine") == "k:fine"
    finally:
        worker.close()


def test_max_batch_bounds_one_call():
    recorder = GatedRecorder()
    worker = BatchingWorker(recorder, max_batch=3)
    try:
        first, _ = submit_in_threads(worker, [("a", "x0")])
        assert recorder.entered.wait(20)
        threads, results = submit_in_threads(worker, [("a", f"x{i}") for i in range(1, 8)])
        wait_until(lambda: worker._jobs.qsize() == 7)
        recorder.gate.set()
        for t in first + threads:
            t.join(20)
    finally:
        worker.close()
    assert len(results) == 7 and all(r == f"a:{i}" for i, r in results.items())
    assert [len(items) for _, items, _ in recorder.calls] == [1, 3, 3, 1]


def test_a_closed_worker_refuses_jobs():
    worker = BatchingWorker(lambda key, items: items)
    assert worker.submit("k", 1) == 1
    worker.close()
    with pytest.raises(WorkerStopped):
        worker.submit("k", 2)
