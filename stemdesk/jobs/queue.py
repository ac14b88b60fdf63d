"""Background jobs: one serial queue (one worker thread) per compute device, so a CPU job and a GPU job run side by
side while two jobs on the same device never fight over it. No Qt here: the app passes an ``on_event`` callback
that forwards events to its main thread; nothing in a worker ever touches a widget.
"""

from __future__ import annotations

import itertools
import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..core.cancel import CancelToken
from ..core.errors import Cancelled, OutOfMemory, StemDeskError

log = logging.getLogger("stemdesk.jobs")
_ids = itertools.count(1)

QUEUED, RUNNING, DONE, FAILED, CANCELLED = "queued", "running", "done", "failed", "cancelled"


@dataclass
class Job:
    """``work(job)`` runs on the device's worker thread; it reports progress with ``job.report({...})`` and checks
    ``job.cancel_token``. Its return value becomes ``job.result``."""

    kind: str  # "separate", "export", "train", ...
    title: str
    work: Callable[[Job], Any]
    device: str = "cpu"
    model: str = ""  # the model it uses, for the jobs list
    id: int = field(default_factory=lambda: next(_ids))
    status: str = QUEUED
    fraction: float = 0.0
    eta: float | None = None  # seconds left, from the progress so far
    message: str = ""
    result: Any = None
    error: str | None = None  # a StemDeskError's message: show it
    exception: BaseException | None = None  # what failed, for the front end to word (a StemDeskError's setting)
    unexpected: bool = False  # a bug: show the log file's path
    cancel_token: CancelToken = field(default_factory=CancelToken)
    started: float | None = None
    finished: float | None = None
    _queue: JobQueue | None = field(default=None, repr=False)

    def report(self, event: dict) -> None:
        """Progress from the work: {"done": n, "total": n} and/or {"message": str}."""
        total = event.get("total") or 0
        if total:
            self.fraction = min(1.0, event.get("done", 0) / total)
            elapsed = time.monotonic() - (self.started or time.monotonic())
            self.eta = elapsed * (1 - self.fraction) / self.fraction if self.fraction > 0.01 else None
        if "message" in event:
            self.message = str(event["message"])
        if self._queue is not None:
            self._queue._emit(self, "progress", event)

    def cancel(self) -> None:
        self.cancel_token.cancel()
        if self._queue is not None:
            self._queue._cancel_queued(self)


class JobQueue:
    """``on_event(job, what, payload)`` is called from worker threads with what in "queued", "started",
    "progress", "done", "failed", "cancelled"."""

    def __init__(self, on_event: Callable[[Job, str, Any], None] | None = None):
        self.on_event = on_event or (lambda job, what, payload: None)
        self._queues: dict[str, queue.Queue] = {}
        self._threads: dict[str, threading.Thread] = {}
        self._lock = threading.Lock()
        self._closed = False
        self.jobs: list[Job] = []

    def _emit(self, job: Job, what: str, payload: Any = None) -> None:
        try:
            self.on_event(job, what, payload)
        except Exception:  # a broken listener must not kill the worker
            log.exception("job event listener failed")

    def submit(self, job: Job) -> Job:
        with self._lock:
            if self._closed:
                raise StemDeskError("The job queue is shut down.")
            job._queue = self
            self.jobs.append(job)
            device = job.device
            if device not in self._queues:
                self._queues[device] = queue.Queue()
                thread = threading.Thread(target=self._run, args=(device,), name=f"stemdesk-jobs-{device}", daemon=True)
                self._threads[device] = thread
                thread.start()
            self._queues[device].put(job)
        self._emit(job, "queued")
        return job

    def _cancel_queued(self, job: Job) -> None:
        with self._lock:
            if job.status != QUEUED:
                return
            job.status = CANCELLED
        self._emit(job, "cancelled")

    def _run(self, device: str) -> None:
        jobs = self._queues[device]
        while True:
            job = jobs.get()
            if job is None:
                return
            with self._lock:
                if job.status != QUEUED:
                    continue
                job.status = RUNNING
            job.started = time.monotonic()
            self._emit(job, "started")
            try:
                job.cancel_token.raise_if_cancelled()
                job.result = job.work(job)
                job.status, what = DONE, "done"
                job.fraction, job.eta = 1.0, 0.0
            except Cancelled:
                job.status, what = CANCELLED, "cancelled"
            except StemDeskError as error:
                job.status, job.error, job.exception, what = FAILED, str(error), error, "failed"
            except MemoryError:
                job.exception = OutOfMemory(
                    "Out of memory: use a smaller segment or close other programs.", setting="segment_seconds"
                )
                job.status, job.error, what = FAILED, str(job.exception), "failed"
            except Exception as error:  # a bug: logged with its traceback, shown with the log's path
                log.exception("job %s (%s) failed", job.id, job.title)
                job.status, job.error, job.unexpected, what = FAILED, f"{type(error).__name__}: {error}", True, "failed"
            job.finished = time.monotonic()
            self._emit(job, what)

    def active(self) -> list[Job]:
        return [j for j in self.jobs if j.status in (QUEUED, RUNNING)]

    def shutdown(self, cancel: bool = True, timeout: float = 30.0) -> bool:
        """Stop the workers (cancelling what runs when ``cancel``). True when every worker thread has exited."""
        with self._lock:
            self._closed = True
            threads = list(self._threads.values())
            for q in self._queues.values():
                q.put(None)
        if cancel:
            for job in self.active():
                job.cancel()
        deadline = time.monotonic() + timeout
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        return not any(t.is_alive() for t in threads)
