"""Uploaded files -> checked, safely named files under `<data_dir>/uploads/<collection>/` -> indexed.

Nothing here knows about Streamlit: the page hands over (name, bytes) pairs and shows the `UploadReport`. The checks
and the saving are the library's (`indexer.uploads`, shared with the REST API): a bad file is reported with its reason
and never written, a saved file never replaces another one, and only the saved files are indexed, so an upload cannot
touch anything indexed before.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from mmrag.core.settings import Settings
from mmrag.indexer.uploads import BadUploadError, Upload, check_upload, safe_name, save_upload, uploads_dir

if TYPE_CHECKING:
    from mmrag.indexer.embedders import ImageEncoder, TextEncoder

__all__ = [
    "BadUploadError",
    "Progress",
    "Upload",
    "UploadReport",
    "check_upload",
    "index_uploads",
    "safe_name",
    "save_upload",
    "uploads_dir",
]


@dataclass
class UploadReport:
    """What happened to the uploaded files, by the names the user gave them."""

    indexed: list[str] = field(default_factory=list)
    """Files now searchable (new, or already indexed with the same content)."""
    failures: list[tuple[str, str]] = field(default_factory=list)
    """(name, reason) of each file refused or not indexed."""
    unchanged: int = 0
    """Files that were already indexed with the same content."""
    written: int = 0
    """Objects written to the collection."""


Progress = Callable[[int, int], None]
"""(files done, files to index)."""


def index_uploads(
    settings: Settings,
    uploads: Sequence[Upload],
    *,
    progress: Progress | None = None,
    embedders: tuple[ImageEncoder, TextEncoder] | None = None,
) -> UploadReport:
    """Check and save the uploads, then index just the saved files into the settings' collection
    (with the caller's loaded embedders when given)."""
    from mmrag.indexer.service import index_paths

    report = UploadReport()
    folder = uploads_dir(settings.data_dir, settings.collection)
    max_bytes = settings.max_upload_mb * 1024 * 1024
    saved: list[tuple[str, Path]] = []
    for upload in uploads:
        try:
            check_upload(upload, max_bytes)
            saved.append((upload.name, save_upload(upload, folder)))
        except BadUploadError as e:
            report.failures.append((upload.name, str(e)))
    if not saved:
        return report

    def update(done: int, total: int, items: int) -> None:
        if progress is not None:
            progress(done, total)

    indexed = index_paths(
        settings, sorted({path for _, path in saved}), workers=0, progress=update, embedders=embedders
    )
    reasons = {path: reason for path, reason in indexed.failures}
    for name, path in saved:
        reason = reasons.get(str(path.resolve()))
        if reason is None:
            report.indexed.append(name)
        else:
            report.failures.append((name, reason))
    report.unchanged, report.written = indexed.unchanged, indexed.written
    return report
