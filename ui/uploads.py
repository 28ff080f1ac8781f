"""Uploaded files -> checked, safely named files under `<data_dir>/uploads/<collection>/` -> indexed.

Nothing here knows about Streamlit: the page hands over (name, bytes) pairs and shows the `UploadReport`. A file is
checked by its content (magic bytes, UTF-8 text), not only by its name; a bad file is reported with its reason and
never written. A saved file never replaces another one (same name, other content: a new name), and only the saved
files are indexed, so an upload cannot touch anything indexed before.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

import filetype

if TYPE_CHECKING:
    from mmrag.indexer.embedders import ImageEncoder, TextEncoder

from mmrag.core.filetypes import IMAGE_SUFFIXES, PDF_SUFFIXES, SUPPORTED_SUFFIXES, SVG_SUFFIXES, TEXT_SUFFIXES
from mmrag.core.settings import Settings

_UNSAFE = re.compile(r"[^\w.-]+")
_MAX_STEM = 100
_MAX_NAME_BYTES = 200
"""UTF-8 bytes of a saved name: with save_upload's ``-N`` and its ``.NAME.part`` file, still under 255."""
_TEXT_PROBE = 64 * 1024
_SNIFFED_IMAGES = frozenset({"png", "jpg", "webp", "gif", "bmp", "tif"})


class BadUploadError(Exception):
    """An uploaded file that is refused; the message is the reason shown to the user."""


@dataclass(frozen=True)
class Upload:
    """One file as the browser sent it."""

    name: str
    data: bytes


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


def uploads_dir(data_dir: Path, collection: str) -> Path:
    return data_dir / "uploads" / collection


def family(suffix: str) -> str | None:
    """`image`, `svg`, `pdf` or `text` for a supported suffix (with its dot), else None."""
    suffix = suffix.lower()
    if suffix in SVG_SUFFIXES:
        return "svg"
    if suffix in IMAGE_SUFFIXES:
        return "image"
    if suffix in PDF_SUFFIXES:
        return "pdf"
    return "text" if suffix in TEXT_SUFFIXES else None


def sniff(data: bytes) -> str:
    """What the bytes are: `image`, `pdf`, `text` (UTF-8 without NUL bytes), or a description of something else."""
    kind = filetype.guess(data)
    if kind is not None:
        if kind.extension in _SNIFFED_IMAGES:
            return "image"
        return "pdf" if kind.mime == "application/pdf" else f"{kind.mime} data"
    probe = data[:_TEXT_PROBE]
    if b"\0" in probe:
        return "binary data"
    try:
        probe.decode("utf-8")
    except UnicodeDecodeError as e:
        if e.start < len(probe) - 4:  # not just a multi-byte character cut by the probe's end
            return "text that is not UTF-8"
    return "text"


def check_upload(upload: Upload, max_bytes: int) -> None:
    """Raise BadUploadError (with the reason) unless the file may be saved and indexed."""
    suffix = Path(safe_name(upload.name)).suffix  # the suffix of the file as saved, so it is indexed as checked
    expected = family(suffix)
    if expected is None:
        supported = " ".join(sorted(SUPPORTED_SUFFIXES))
        raise BadUploadError(f"unsupported file type {suffix or '(no extension)'}; supported: {supported}")
    if len(upload.data) > max_bytes:
        raise BadUploadError(f"too large ({_mb(len(upload.data))}; at most {_mb(max_bytes)})")
    if not upload.data:
        raise BadUploadError("empty file")
    found = sniff(upload.data)
    if expected == "svg" and found == "text" and b"<svg" in upload.data[:65536].lower():
        return  # SVG is XML text: what it draws is checked when it is indexed
    if found != expected:
        raise BadUploadError(f"named {suffix} but its content is {_describe(found)}, not {_describe(expected)}")


def safe_name(name: str) -> str:
    """A plain file name from whatever the browser sent: no folders, no hidden files, no odd characters.

    The name is the last part of any ``/`` or ``\\`` path (``a/chart.png/`` is ``chart.png``); its lower-cased
    suffix is kept, and the stem is cut to 100 characters and to _MAX_NAME_BYTES in UTF-8.
    """
    base = PurePosixPath(unicodedata.normalize("NFKC", name).replace("\\", "/")).name
    suffix = Path(base).suffix.lower()
    if not re.fullmatch(r"\.[a-z0-9]{1,10}", suffix):
        suffix = ""
    stem = base[: len(base) - len(suffix)] if suffix else base
    stem = re.sub(r"\.{2,}", ".", _UNSAFE.sub("_", stem)).strip("._- ")[:_MAX_STEM]
    stem = stem.encode()[: _MAX_NAME_BYTES - len(suffix)].decode("utf-8", "ignore").rstrip("._- ")
    return (stem or "upload") + suffix


def save_upload(upload: Upload, folder: Path) -> Path:
    """Write the file under a safe name (an identical file already there is reused, another one is never replaced)."""
    folder.mkdir(parents=True, exist_ok=True)
    name = safe_name(upload.name)
    stem, suffix = name[: len(name) - len(Path(name).suffix)], Path(name).suffix
    for attempt in range(1000):
        target = folder / (name if attempt == 0 else f"{stem}-{attempt}{suffix}")
        if target.exists():
            if target.is_file() and target.read_bytes() == upload.data:
                return target
            continue
        partial = folder / f".{target.name}.part"
        partial.write_bytes(upload.data)
        partial.replace(target)
        return target
    raise BadUploadError(f"too many files named like {name} already")


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


def _describe(found: str) -> str:
    return {"image": "an image", "pdf": "a PDF", "text": "text", "svg": "an SVG drawing"}.get(found, found)


def _mb(size: int) -> str:
    return f"{size / (1024 * 1024):.1f} MB"
