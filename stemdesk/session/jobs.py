"""Job bookkeeping for a front end, without Qt: which jobs it started are running (by kind), cancelling them by
kind, and what to do with each: ``on_progress(payload)`` at each report while it runs, ``on_done(result)`` when it
succeeded, ``on_end(job)`` however it ended, then the book announces it. The front end keeps no job of its own beside the book.

The front end feeds `event` with its queue's events on its own thread (the app: through its bridge)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .events import Announcement

ENDS = ("done", "failed", "cancelled")


@dataclass
class _Then:
    kind: str
    on_done: Callable[[Any], None] | None = None
    on_end: Callable[[Any], None] | None = None
    token: Any = None  # the front end's own, handed back when the job ends (the app: a signal to emit)
    cancel: Callable[[], None] | None = None  # asks the job to stop
    on_progress: Callable[[Any], None] | None = None  # each progress report's payload, while it runs


class JobBook:
    """Announces ``failed(job)`` when a job failed (after its callbacks) and ``ended(job, token)`` when any job
    it tracks ended (done, failed or cancelled), last."""

    def __init__(self) -> None:
        self._then: dict[int, _Then] = {}
        self.failed = Announcement()
        self.ended = Announcement()

    def track(
        self,
        job_id: int,
        kind: str,
        on_done: Callable[[Any], None] | None = None,
        on_end: Callable[[Any], None] | None = None,
        token: Any = None,
        cancel: Callable[[], None] | None = None,
        on_progress: Callable[[Any], None] | None = None,
    ) -> None:
        self._then[job_id] = _Then(kind, on_done, on_end, token, cancel, on_progress)

    def running(self, kind: str) -> int:
        """How many jobs of ``kind`` are running (queued or working)."""
        return sum(1 for then in self._then.values() if then.kind == kind)

    def cancel(self, kind: str) -> int:
        """Ask the running jobs of ``kind`` to stop (the Trainer dock's Cancel); how many were asked. Each still
        ends through `event`, as a cancelled job."""
        asked = [then.cancel for then in list(self._then.values()) if then.kind == kind and then.cancel is not None]
        for cancel in asked:
            cancel()
        return len(asked)

    def event(self, job: Any, what: str, payload: Any = None) -> bool:
        """A queue event of ``job`` (``what``: "started", "progress", "done", "failed", "cancelled"...; a progress
        report's ``payload`` goes to the job's ``on_progress``). True when it ended a job this book tracks."""
        if what not in ENDS:
            then = self._then.get(job.id)
            if what == "progress" and then is not None and then.on_progress is not None:
                then.on_progress(payload)
            return False
        then = self._then.pop(job.id, None)
        if then is not None and what == "done" and then.on_done is not None:
            then.on_done(job.result)
        if then is not None and then.on_end is not None:
            then.on_end(job)
        if what == "failed":
            self.failed.emit(job)
        self.ended.emit(job, then.token if then is not None else None)
        return then is not None
