"""Uploaded files -> checked, safely named files under `<data_dir>/uploads/<collection>/`.

What the UI and the REST API share: a file is checked by its content (magic bytes, UTF-8 text), not only by its
name, and by its size (MMRAG_MAX_UPLOAD_MB); a bad file is refused with its reason and never written. A saved file
never replaces another one (same name, other content: a new name), so an upload cannot touch anything indexed before.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import filetype

from mmrag.core.errors import MmragError
from mmrag.core.filetypes import (
    IMAGE_SUFFIXES,
    OFFICE_SUFFIXES,
    PDF_SUFFIXES,
    SUPPORTED_SUFFIXES,
    SVG_SUFFIXES,
    TEXT_SUFFIXES,
)

_UNSAFE = re.compile(r"[^\w.-]+")
_MAX_STEM = 100
_MAX_NAME_BYTES = 200
"""UTF-8 bytes of a saved name: with save_upload's ``-N`` and its ``.NAME.part`` file, still under 255."""
_TEXT_PROBE = 64 * 1024
_SNIFFED_IMAGES = frozenset({"png", "jpg", "webp", "gif", "bmp", "tif"})
_SNIFFED_OFFICE = frozenset({"docx", "pptx", "xlsx", "zip"})
"""Office Open XML files are zips; `filetype` names the three when their first part gives them away, else `zip`
(what is inside is checked when it is indexed)."""


class BadUploadError(MmragError):
    """An uploaded file that is refused; the message is the reason shown to the user."""


class UploadTooLargeError(BadUploadError):
    """An uploaded file over MMRAG_MAX_UPLOAD_MB."""


@dataclass(frozen=True)
class Upload:
    """One file as the client (a browser, an HTTP request) sent it."""

    name: str
    data: bytes


def uploads_dir(data_dir: Path, collection: str) -> Path:
    return data_dir / "uploads" / collection


def family(suffix: str) -> str | None:
    """`image`, `svg`, `pdf`, `office` or `text` for a supported suffix (with its dot), else None."""
    suffix = suffix.lower()
    if suffix in SVG_SUFFIXES:
        return "svg"
    if suffix in IMAGE_SUFFIXES:
        return "image"
    if suffix in PDF_SUFFIXES:
        return "pdf"
    if suffix in OFFICE_SUFFIXES:
        return "office"
    return "text" if suffix in TEXT_SUFFIXES else None


def sniff(data: bytes) -> str:
    """What the bytes are: `image`, `pdf`, `office` (a zip), `text` (UTF-8 without NUL bytes), or a description of
    something else."""
    kind = filetype.guess(data)
    if kind is not None:
        if kind.extension in _SNIFFED_IMAGES:
            return "image"
        if kind.extension in _SNIFFED_OFFICE:
            return "office"
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
        raise UploadTooLargeError(f"too large ({_mb(len(upload.data))}; at most {_mb(max_bytes)})")
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


def _describe(found: str) -> str:
    return {
        "image": "an image",
        "pdf": "a PDF",
        "text": "text",
        "svg": "an SVG drawing",
        "office": "an Office file",
    }.get(found, found)


def _mb(size: int) -> str:
    return f"{size / (1024 * 1024):.1f} MB"
