"""Indexing jobs: uploads are checked and saved when they arrive, then indexed in the background, one job at a time.

A job is queued the moment its files are saved (the request answers at once with its id); one worker thread takes
the jobs in order and indexes each with the server's loaded encoders, so two jobs never compete for the CPU and the
models, and a search still runs while a job indexes.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mmrag.api.errors import UnknownJobError
from mmrag.core.errors import MmragError, first_line
from mmrag.core.settings import Settings
from mmrag.indexer.uploads import BadUploadError, Upload, check_upload, save_upload, uploads_dir

if TYPE_CHECKING:
    from mmrag.indexer.embedders import ImageEncoder, TextEncoder

log = logging.getLogger(__name__)

MAX_JOBS_KEPT = 1000
"""Finished jobs remembered (the oldest finished ones are forgotten first)."""


@dataclass
class Job:
    """One upload's indexing: what the client polls."""

    id: str
    settings: Settings
    files: list[str]
    """The names the files were sent with."""
    paths: list[Path]
    """Where they were saved."""
    state: str = "queued"
    files_done: int = 0
    report: dict[str, Any] | None = None
    error: str | None = None
    created: float = field(default_factory=time.time)

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "state": self.state,
            "collection": self.settings.collection,
            "files_done": self.files_done,
            "files_total": len(set(self.paths)),
            "files": self.files,
            "report": self.report,
            "error": self.error,
        }


def save_uploads(settings: Settings, uploads: list[Upload]) -> list[Path]:
    """Check every file, then save them all under the collection's uploads folder; a refused file (BadUploadError,
    naming it) means nothing is saved."""
    max_bytes = settings.max_upload_mb * 1024 * 1024
    for upload in uploads:
        try:
            check_upload(upload, max_bytes)
        except BadUploadError as e:
            raise type(e)(f"{upload.name}: {e}") from e  # the same type: a file too large stays one
    folder = uploads_dir(settings.data_dir, settings.collection)
    return [save_upload(upload, folder) for upload in uploads]


class JobQueue:
    """Jobs by id, and the one worker thread that runs them in order (started with the first job)."""

    def __init__(self, embedders: Callable[[], tuple[ImageEncoder, TextEncoder]]) -> None:
        self._embedders = embedders
        self._jobs: dict[str, Job] = {}
        self._queue: queue.Queue[Job | None] = queue.Queue()
        self._lock = threading.Lock()
        self._worker: threading.Thread | None = None

    def submit(self, settings: Settings, names: list[str], paths: list[Path]) -> Job:
        job = Job(uuid.uuid4().hex, settings, names, paths)
        with self._lock:
            self._forget_old()
            self._jobs[job.id] = job
            if self._worker is None:
                self._worker = threading.Thread(target=self._run, name="mmrag-index-jobs", daemon=True)
                self._worker.start()
        self._queue.put(job)
        return job

    def get(self, job_id: str) -> Job:
        with self._lock:
            job = self._jobs.get(job_id)
        if job is None:
            raise UnknownJobError(f"no indexing job {job_id!r}")
        return job

    def stop(self, timeout: float = 5.0) -> None:
        """Let the running job finish (up to `timeout`); queued ones are dropped with the process."""
        if self._worker is not None:
            self._queue.put(None)
            self._worker.join(timeout)

    def _run(self) -> None:
        while (job := self._queue.get()) is not None:
            job.state = "running"
            try:
                job.report = _index(job, self._embedders())
                job.state = "done"
            except Exception as e:  # a job's failure is its state; the worker goes on with the next one
                if not isinstance(e, MmragError):
                    log.exception("indexing job %s failed", job.id)
                job.error, job.state = first_line(e), "failed"

    def _forget_old(self) -> None:
        finished = [j for j in self._jobs.values() if j.state in ("done", "failed")]
        for job in sorted(finished, key=lambda j: j.created)[: max(0, len(self._jobs) - MAX_JOBS_KEPT + 1)]:
            del self._jobs[job.id]


def _index(job: Job, embedders: tuple[ImageEncoder, TextEncoder]) -> dict[str, Any]:
    from mmrag.indexer.service import index_paths

    def progress(done: int, total: int, items: int) -> None:
        job.files_done = done

    report = index_paths(job.settings, sorted(set(job.paths)), workers=0, progress=progress, embedders=embedders)
    job.files_done = len(set(job.paths))
    return report.as_json()
